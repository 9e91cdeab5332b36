/* ACPI table builder: RSDP, RSDT, XSDT, FADT, FACS, MADT and the DSDT's
 * content, written from the constants of vmm/platform.h (never from device
 * code). Two outputs: tables copied into the BIOS area for direct boot, or
 * the fw_cfg blobs plus BIOS linker/loader script that SeaBIOS and OVMF use.
 * The byte buffer, AML and resource-descriptor encoding is vmm/acpi_aml.c.
 *
 * Choices worth knowing:
 * - Power button: fixed-feature (FADT PWR_BUTTON flag clear, the button is
 *   PWRBTN_STS/EN in PM1), so there is no PNP0C0C device in the DSDT.
 * - PCI INTx: like QEMU's PIIX, slot S pin P (0 = INTA) drives PIRQ
 *   (S + P - 1) & 3. The _PRT names link devices LNKA..LNKD whose only
 *   possible and current IRQ is the PIRQ_DEFAULT_IRQS value SeaBIOS
 *   programs (10, 10, 11, 11), level/active-high/shared; _SRS accepts it.
 *   Slot 1 INTA (the PIIX4 PM function) goes to LNKS, the SCI (IRQ 9),
 *   as QEMU does. The same GSIs are valid in PIC and IOAPIC mode.
 * - CPUs: vCPU i has APIC ID and ACPI UID i. The MADT lists IDs 0..254 as
 *   Processor Local APIC entries and IDs from 255 on as Processor Local
 *   x2APIC entries with a Local x2APIC NMI for them (ACPI 6.x 5.2.12.12),
 *   as QEMU and real firmware do; MADT revision 1 like QEMU's pc.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/acpi.h"
#include "vmm/acpi_aml.h"
#include "vmm/memory.h"
#include "vmm/platform.h"

/* ---- common table header ---- */

#define HDR_LEN		36
#define HDR_CHECKSUM	9
#define OEM_ID		"MINKVM"
#define OEM_TABLE_ID	"MINIKVM "
#define CREATOR_ID	"MKVM"

static size_t table_begin(struct acpi_buf *b, const char *sig, uint8_t rev)
{
	size_t start = b->len;

	acpi_buf_put(b, sig, 4);
	acpi_buf_u32(b, 0);			/* length, set by table_end */
	acpi_buf_u8(b, rev);
	acpi_buf_u8(b, 0);			/* checksum, set by table_end */
	acpi_buf_put(b, OEM_ID, 6);
	acpi_buf_put(b, OEM_TABLE_ID, 8);
	acpi_buf_u32(b, 1);			/* OEM revision */
	acpi_buf_put(b, CREATOR_ID, 4);
	acpi_buf_u32(b, 1);			/* creator revision */
	return start;
}

static void table_end(struct acpi_buf *b, size_t start)
{
	if (b->oom)
		return;
	acpi_put_le(b->d + start + 4, b->len - start, 4);
	b->d[start + HDR_CHECKSUM] = 0;
	b->d[start + HDR_CHECKSUM] = acpi_checksum(b->d + start, b->len - start);
}

/* ---- DSDT ---- */

static void dsdt_pci_crs(struct acpi_buf *b, const struct acpi_config *cfg)
{
	struct acpi_buf r = { 0 };

	res_word(&r, RES_TYPE_BUS, 0, 0, 0xff);		/* buses 0-255 */
	res_io(&r, PCI_CONFIG_ADDR, 8);				/* 0xcf8-0xcff */
	res_word(&r, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, 0, PCI_CONFIG_ADDR - 1);
	res_word(&r, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, 0xd00, 0xffff);
	res_dword_mem(&r, RES_MEM_RW | RES_MEM_CACHEABLE, VGA_HOLE_START, 0xbffff);
	res_dword_mem(&r, RES_MEM_RW, PCI_MMIO_START, PCI_MMIO_END - 1);
	if (cfg->pci64_size)
		res_qword_mem(&r, RES_MEM_RW, cfg->pci64_start,
			      cfg->pci64_start + cfg->pci64_size - 1);
	aml_name_resources(b, "_CRS", &r);
}

static const char *const pirq_links[4] = { "LNKA", "LNKB", "LNKC", "LNKD" };

static void dsdt_pci_prt(struct acpi_buf *b)
{
	size_t prt;

	acpi_buf_u8(b, AML_NAME);
	aml_namestring(b, "_PRT");
	prt = aml_open(b, AML_PACKAGE);
	acpi_buf_u8(b, 31 * 4);
	for (unsigned slot = 1; slot < 32; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			size_t e = aml_open(b, AML_PACKAGE);

			acpi_buf_u8(b, 4);
			aml_int(b, (slot << 16) | 0xffff);
			aml_int(b, pin);
			if (slot == 1 && pin == 0)
				aml_namestring(b, "LNKS");
			else
				aml_namestring(b, pirq_links[(slot + pin - 1) & 3]);
			aml_int(b, 0);
			aml_close(b, e);
		}
	}
	aml_close(b, prt);
}

static void dsdt_isa_device(struct acpi_buf *b, const char *name, const char *hid, int uid,
			    struct acpi_buf *res)
{
	size_t dev = aml_device_begin(b, name);

	aml_name_eisaid(b, "_HID", hid);
	if (uid >= 0)
		aml_name_int(b, "_UID", (unsigned)uid);
	aml_name_resources(b, "_CRS", res);
	aml_close(b, dev);
}

static void dsdt_isa(struct acpi_buf *b, const struct acpi_config *cfg)
{
	size_t isa = aml_device_begin(b, "ISA");
	struct acpi_buf r = { 0 };

	aml_name_int(b, "_ADR", 0x00010000);

	res_io(&r, RTC_PORT, 2);
	res_irq(&r, RTC_IRQ);
	dsdt_isa_device(b, "RTC", "PNP0B00", -1, &r);

	res_io(&r, I8042_DATA_PORT, 1);
	res_io(&r, I8042_CMD_PORT, 1);
	res_irq(&r, I8042_KBD_IRQ);
	dsdt_isa_device(b, "KBD", "PNP0303", -1, &r);

	if (cfg->ps2_mouse) {
		res_irq(&r, I8042_AUX_IRQ);
		dsdt_isa_device(b, "MOU", "PNP0F13", -1, &r);
	}
	if (cfg->com_mask & ACPI_COM1) {
		res_io(&r, COM1_PORT, 8);
		res_irq(&r, COM1_IRQ);
		dsdt_isa_device(b, "COM1", "PNP0501", 1, &r);
	}
	if (cfg->com_mask & ACPI_COM2) {
		res_io(&r, COM2_PORT, 8);
		res_irq(&r, COM2_IRQ);
		dsdt_isa_device(b, "COM2", "PNP0501", 2, &r);
	}
	aml_close(b, isa);
}

static void dsdt_pci0(struct acpi_buf *b, const struct acpi_config *cfg)
{
	size_t dev = aml_device_begin(b, "PCI0");

	aml_name_eisaid(b, "_HID", "PNP0A03");
	aml_name_int(b, "_ADR", 0);
	aml_name_int(b, "_UID", 0);
	aml_name_int(b, "_BBN", 0);
	dsdt_pci_crs(b, cfg);
	dsdt_pci_prt(b);
	dsdt_isa(b, cfg);
	aml_close(b, dev);
}

/* A PCI interrupt link with one fixed IRQ (the PIRQ router default). */
static void dsdt_link(struct acpi_buf *b, const char *name, unsigned uid, unsigned gsi)
{
	size_t dev = aml_device_begin(b, name);
	struct acpi_buf r = { 0 };

	aml_name_eisaid(b, "_HID", "PNP0C0F");
	aml_name_int(b, "_UID", uid);
	res_irq_level_shared(&r, gsi);
	aml_name_resources(b, "_PRS", &r);
	res_irq_level_shared(&r, gsi);
	aml_name_resources(b, "_CRS", &r);
	aml_empty_method(b, "_SRS", 1);
	aml_close(b, dev);
}

/* Processor devices C000..C3FF: "C" and three hex digits give unique
 * 4-character names for up to 4096 CPUs (ACPI_MAX_CPUS is 1024). About
 * 30 bytes each: with the MADT, 1024 CPUs take about 48 KiB of the 64 KiB
 * direct-boot area. */
_Static_assert(ACPI_MAX_CPUS <= 0x1000, "CPU device names have 3 hex digits");

static void dsdt_cpus(struct acpi_buf *b, unsigned ncpus)
{
	for (unsigned i = 0; i < ncpus; i++) {
		char name[16];
		size_t dev;

		snprintf(name, sizeof(name), "C%03X", i & 0xfff);
		dev = aml_device_begin(b, name);
		aml_name_string(b, "_HID", "ACPI0007");
		aml_name_int(b, "_UID", i);
		aml_close(b, dev);
	}
}

static void build_dsdt(struct acpi_buf *b, const struct acpi_config *cfg)
{
	static const unsigned pirq_irqs[4] = PIRQ_DEFAULT_IRQS;
	size_t start = table_begin(b, "DSDT", 2);	/* rev 2: 64-bit integers */
	size_t sb, s5;

	sb = aml_open(b, AML_SCOPE);
	aml_namestring(b, "\\_SB");
	dsdt_pci0(b, cfg);
	for (unsigned i = 0; i < 4; i++)
		dsdt_link(b, pirq_links[i], i, pirq_irqs[i]);
	dsdt_link(b, "LNKS", 4, ACPI_SCI_IRQ);
	dsdt_cpus(b, cfg->ncpus);
	aml_close(b, sb);

	acpi_buf_u8(b, AML_NAME);
	aml_namestring(b, "\\_S5");
	s5 = aml_open(b, AML_PACKAGE);
	acpi_buf_u8(b, 4);
	aml_int(b, ACPI_S5_SLP_TYP);	/* PM1a_CNT.SLP_TYP */
	aml_int(b, ACPI_S5_SLP_TYP);	/* PM1b_CNT.SLP_TYP */
	aml_int(b, 0);
	aml_int(b, 0);
	aml_close(b, s5);
	table_end(b, start);
}

/* ---- FACS, FADT, MADT, RSDT, XSDT, RSDP ---- */

static void build_facs(struct acpi_buf *b)
{
	size_t start = b->len;

	acpi_buf_put(b, "FACS", 4);
	acpi_buf_u32(b, 64);
	acpi_buf_zero(b, 56);		/* hw signature, vectors, lock, flags */
	if (!b->oom)
		b->d[start + 32] = 1;	/* version */
}

enum gas_space { GAS_MEM = 0, GAS_IO = 1 };
enum gas_access { GAS_BYTE = 1, GAS_WORD = 2, GAS_DWORD = 3 };

static void gas(struct acpi_buf *b, uint8_t space, uint8_t bits, uint8_t access, uint64_t addr)
{
	acpi_buf_u8(b, space);
	acpi_buf_u8(b, bits);
	acpi_buf_u8(b, 0);			/* bit offset */
	acpi_buf_u8(b, access);
	acpi_buf_u64(b, addr);
}

#define FADT_REV		3
#define FADT_LEN		244
#define FADT_FIRMWARE_CTRL	36
#define FADT_DSDT		40
#define FADT_X_DSDT		140

enum fadt_flags {
	FADT_WBINVD = 1u << 0, FADT_PROC_C1 = 1u << 2, FADT_PWR_BUTTON = 1u << 4,
	FADT_SLP_BUTTON = 1u << 5, FADT_RTC_S4 = 1u << 7, FADT_TMR_VAL_EXT = 1u << 8,
	FADT_RESET_REG_SUP = 1u << 10,
};
enum boot_arch { BOOT_ARCH_LEGACY = 1u << 0, BOOT_ARCH_8042 = 1u << 1, BOOT_ARCH_NO_VGA = 1u << 2 };

#define RESET_VALUE 0x06	/* 0xcf9: full reset | reset CPU */
#define RTC_CENTURY 0x32

static void build_fadt(struct acpi_buf *b, const struct acpi_config *cfg, uint64_t facs,
		       uint64_t dsdt)
{
	size_t start = table_begin(b, "FACP", FADT_REV);
	uint32_t flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_RTC_S4 |
			 FADT_RESET_REG_SUP;
	uint16_t boot_arch = BOOT_ARCH_LEGACY | BOOT_ARCH_8042;

	if (cfg->pm_timer_32bit)
		flags |= FADT_TMR_VAL_EXT;
	if (!cfg->vga_present)
		boot_arch |= BOOT_ARCH_NO_VGA;

	acpi_buf_u32(b, facs);		/* FIRMWARE_CTRL (X_FIRMWARE_CTRL stays 0) */
	acpi_buf_u32(b, dsdt);
	acpi_buf_u8(b, 0);			/* reserved (INT_MODEL) */
	acpi_buf_u8(b, 0);			/* preferred PM profile: unspecified */
	acpi_buf_u16(b, ACPI_SCI_IRQ);
	acpi_buf_u32(b, ACPI_SMI_CMD);
	acpi_buf_u8(b, 0xf1);		/* ACPI_ENABLE */
	acpi_buf_u8(b, 0xf0);		/* ACPI_DISABLE */
	acpi_buf_u8(b, 0);			/* S4BIOS_REQ */
	acpi_buf_u8(b, 0);			/* PSTATE_CNT */
	acpi_buf_u32(b, ACPI_PM1_EVT);
	acpi_buf_u32(b, 0);			/* PM1b_EVT_BLK */
	acpi_buf_u32(b, ACPI_PM1_CNT);
	acpi_buf_u32(b, 0);			/* PM1b_CNT_BLK */
	acpi_buf_u32(b, 0);			/* PM2_CNT_BLK */
	acpi_buf_u32(b, ACPI_PM_TMR);
	acpi_buf_u32(b, ACPI_GPE0_BASE);
	acpi_buf_u32(b, 0);			/* GPE1_BLK */
	acpi_buf_u8(b, 4);			/* PM1_EVT_LEN */
	acpi_buf_u8(b, 2);			/* PM1_CNT_LEN */
	acpi_buf_u8(b, 0);			/* PM2_CNT_LEN */
	acpi_buf_u8(b, 4);			/* PM_TMR_LEN */
	acpi_buf_u8(b, ACPI_GPE0_LEN);
	acpi_buf_u8(b, 0);			/* GPE1_BLK_LEN */
	acpi_buf_u8(b, 0);			/* GPE1_BASE */
	acpi_buf_u8(b, 0);			/* CST_CNT */
	acpi_buf_u16(b, 0xfff);		/* P_LVL2_LAT > 100: no C2 */
	acpi_buf_u16(b, 0x3e9);		/* P_LVL3_LAT > 1000: no C3 */
	acpi_buf_u16(b, 0);			/* FLUSH_SIZE */
	acpi_buf_u16(b, 0);			/* FLUSH_STRIDE */
	acpi_buf_u8(b, 0);			/* DUTY_OFFSET */
	acpi_buf_u8(b, 0);			/* DUTY_WIDTH */
	acpi_buf_u8(b, 0);			/* DAY_ALRM */
	acpi_buf_u8(b, 0);			/* MON_ALRM */
	acpi_buf_u8(b, RTC_CENTURY);
	acpi_buf_u16(b, boot_arch);
	acpi_buf_u8(b, 0);
	acpi_buf_u32(b, flags);
	gas(b, GAS_IO, 8, GAS_BYTE, RESET_CONTROL_PORT);
	acpi_buf_u8(b, RESET_VALUE);
	acpi_buf_u16(b, 0);			/* ARM_BOOT_ARCH */
	acpi_buf_u8(b, 0);			/* FADT minor version */
	acpi_buf_u64(b, 0);			/* X_FIRMWARE_CTRL */
	acpi_buf_u64(b, dsdt);		/* X_DSDT */
	gas(b, GAS_IO, 32, GAS_WORD, ACPI_PM1_EVT);
	gas(b, GAS_MEM, 0, 0, 0);	/* X_PM1b_EVT_BLK */
	gas(b, GAS_IO, 16, GAS_WORD, ACPI_PM1_CNT);
	gas(b, GAS_MEM, 0, 0, 0);	/* X_PM1b_CNT_BLK */
	gas(b, GAS_MEM, 0, 0, 0);	/* X_PM2_CNT_BLK */
	gas(b, GAS_IO, 32, GAS_DWORD, ACPI_PM_TMR);
	gas(b, GAS_IO, ACPI_GPE0_LEN * 8, GAS_BYTE, ACPI_GPE0_BASE);
	gas(b, GAS_MEM, 0, 0, 0);	/* X_GPE1_BLK */
	table_end(b, start);
}

enum madt_type {
	MADT_LAPIC = 0, MADT_IOAPIC = 1, MADT_ISO = 2, MADT_LAPIC_NMI = 4,
	MADT_X2APIC = 9, MADT_X2APIC_NMI = 0xa,
};
#define MADT_PCAT_COMPAT 1u
#define MPS_LEVEL_HIGH	0x000d		/* polarity 01 active-high, trigger 11 level */
#define ACPI_IOAPIC_ID	0		/* as QEMU; the KVM IOAPIC's ID register */

static void madt_override(struct acpi_buf *b, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	acpi_buf_u8(b, MADT_ISO);
	acpi_buf_u8(b, 10);
	acpi_buf_u8(b, 0);			/* bus: ISA */
	acpi_buf_u8(b, irq);
	acpi_buf_u32(b, gsi);
	acpi_buf_u16(b, flags);
}

/* One processor: xAPIC entry while the ID fits 8 bits (0xff is the
 * broadcast ID), x2APIC entry from 255 on. The ACPI processor UID is the
 * vCPU index, as the DSDT processor device's _UID. */
static void madt_cpu(struct acpi_buf *b, uint32_t uid, uint32_t apic_id)
{
	if (apic_id < XAPIC_ID_LIMIT) {
		acpi_buf_u8(b, MADT_LAPIC);
		acpi_buf_u8(b, 8);
		acpi_buf_u8(b, uid);
		acpi_buf_u8(b, apic_id);
		acpi_buf_u32(b, 1);		/* enabled */
	} else {
		acpi_buf_u8(b, MADT_X2APIC);
		acpi_buf_u8(b, 16);
		acpi_buf_u16(b, 0);		/* reserved */
		acpi_buf_u32(b, apic_id);
		acpi_buf_u32(b, 1);		/* enabled */
		acpi_buf_u32(b, uid);
	}
}

#define MADT_ALL_XAPIC_UIDS	0xff
#define MADT_ALL_X2APIC_UIDS	0xffffffffu
#define MADT_LINT1		1

/* NMI on LINT1 of every processor: one entry per kind of processor entry
 * (a Local APIC NMI only covers xAPIC entries, a Local x2APIC NMI only
 * x2APIC entries). */
static void madt_nmis(struct acpi_buf *b, unsigned ncpus)
{
	acpi_buf_u8(b, MADT_LAPIC_NMI);
	acpi_buf_u8(b, 6);
	acpi_buf_u8(b, MADT_ALL_XAPIC_UIDS);
	acpi_buf_u16(b, 0);			/* conforming */
	acpi_buf_u8(b, MADT_LINT1);
	if (ncpus <= XAPIC_ID_LIMIT)
		return;
	acpi_buf_u8(b, MADT_X2APIC_NMI);
	acpi_buf_u8(b, 12);
	acpi_buf_u16(b, 0);			/* conforming */
	acpi_buf_u32(b, MADT_ALL_X2APIC_UIDS);
	acpi_buf_u8(b, MADT_LINT1);
	acpi_buf_zero(b, 3);			/* reserved */
}

static void build_madt(struct acpi_buf *b, const struct acpi_config *cfg)
{
	static const uint8_t level_irqs[] = { 5, ACPI_SCI_IRQ, 10, 11 };
	size_t start = table_begin(b, "APIC", 1);

	acpi_buf_u32(b, LAPIC_BASE);
	acpi_buf_u32(b, MADT_PCAT_COMPAT);
	for (unsigned i = 0; i < cfg->ncpus; i++)
		madt_cpu(b, i, i);	/* APIC ID = vCPU index, as CPUID says */
	acpi_buf_u8(b, MADT_IOAPIC);
	acpi_buf_u8(b, 12);
	acpi_buf_u8(b, ACPI_IOAPIC_ID);
	acpi_buf_u8(b, 0);
	acpi_buf_u32(b, IOAPIC_BASE);
	acpi_buf_u32(b, 0);			/* GSI base */

	madt_override(b, PIT_IRQ, 2, 0);
	for (size_t i = 0; i < sizeof(level_irqs); i++)
		madt_override(b, level_irqs[i], level_irqs[i], MPS_LEVEL_HIGH);
	madt_nmis(b, cfg->ncpus);
	table_end(b, start);
}

#define RSDP_LEN		36
#define RSDP_CHECKSUM		8
#define RSDP_RSDT		16
#define RSDP_XSDT		24
#define RSDP_EXT_CHECKSUM	32

static void build_rsdp(uint8_t *p, uint64_t rsdt, uint64_t xsdt)
{
	memset(p, 0, RSDP_LEN);
	memcpy(p, "RSD PTR ", 8);
	memcpy(p + 9, OEM_ID, 6);
	p[15] = 2;			/* revision: ACPI 2.0+ */
	acpi_put_le(p + RSDP_RSDT, rsdt, 4);
	acpi_put_le(p + 20, RSDP_LEN, 4);
	acpi_put_le(p + RSDP_XSDT, xsdt, 8);
	p[RSDP_CHECKSUM] = acpi_checksum(p, 20);
	p[RSDP_EXT_CHECKSUM] = acpi_checksum(p, RSDP_LEN);
}

/* Offsets of the tables inside the tables blob. */
struct layout {
	size_t facs, dsdt, fadt, madt, rsdt, xsdt, end;
	size_t dsdt_len, fadt_len, madt_len, rsdt_len, xsdt_len;
};

#define N_SDT_ENTRIES 2			/* FADT, MADT */

/* Tables at b offset 0 (64-byte aligned); base is the address of that
 * offset as the consumer will see it (0 for the relocatable blob). */
static int build_tables(struct acpi_buf *b, uint64_t base, const struct acpi_config *cfg,
			struct layout *lo)
{
	size_t entries[N_SDT_ENTRIES];
	size_t start;

	lo->facs = b->len;
	build_facs(b);
	lo->dsdt = b->len;
	build_dsdt(b, cfg);
	lo->dsdt_len = b->len - lo->dsdt;
	acpi_buf_align(b, 8);

	lo->fadt = b->len;
	build_fadt(b, cfg, base + lo->facs, base + lo->dsdt);
	lo->fadt_len = b->len - lo->fadt;
	acpi_buf_align(b, 8);

	lo->madt = b->len;
	build_madt(b, cfg);
	lo->madt_len = b->len - lo->madt;
	acpi_buf_align(b, 8);

	entries[0] = lo->fadt;
	entries[1] = lo->madt;
	lo->rsdt = start = table_begin(b, "RSDT", 1);
	for (unsigned i = 0; i < N_SDT_ENTRIES; i++)
		acpi_buf_u32(b, base + entries[i]);
	table_end(b, start);
	lo->rsdt_len = b->len - lo->rsdt;
	acpi_buf_align(b, 8);

	lo->xsdt = start = table_begin(b, "XSDT", 1);
	for (unsigned i = 0; i < N_SDT_ENTRIES; i++)
		acpi_buf_u64(b, base + entries[i]);
	table_end(b, start);
	lo->xsdt_len = b->len - lo->xsdt;
	lo->end = b->len;
	return b->oom ? -ENOMEM : 0;
}

static int check_config(const struct acpi_config *cfg)
{
	if (!cfg || cfg->ncpus == 0 || cfg->ncpus > ACPI_MAX_CPUS)
		return -EINVAL;
	if (cfg->pci64_size && cfg->pci64_start + cfg->pci64_size < cfg->pci64_start)
		return -EINVAL;
	return 0;
}

void acpi_config_default(struct acpi_config *cfg, unsigned ncpus)
{
	*cfg = (struct acpi_config){
		.ncpus = ncpus,
		.ps2_mouse = true,
		.com_mask = ACPI_COM1 | ACPI_COM2,
	};
}

/* ---- direct boot ---- */

#define ACPI_DIRECT_TABLES_OFF 64	/* RSDP first, tables 64-byte aligned */

int acpi_install(struct guest_memory *mem, const struct acpi_config *cfg)
{
	uint64_t base = ACPI_TABLES_ADDR + ACPI_DIRECT_TABLES_OFF;
	uint64_t limit = ACPI_TABLES_END - ACPI_TABLES_ADDR;
	struct acpi_buf b = { 0 };
	struct layout lo;
	uint64_t span;
	uint8_t *hva;
	int ret;

	ret = check_config(cfg);
	if (ret)
		return ret;
	ret = build_tables(&b, base, cfg, &lo);
	if (ret)
		goto out;
	span = ACPI_DIRECT_TABLES_OFF + b.len;
	if (span > limit) {
		ret = -ENOSPC;
		goto out;
	}
	hva = gpa_to_hva(mem, ACPI_TABLES_ADDR, span);
	if (!hva) {
		ret = -EFAULT;
		goto out;
	}
	/* memory.c already reserves the whole BIOS area; this is a no-op then */
	if (e820_add(mem, ACPI_TABLES_ADDR, (span + 0xfff) & ~0xfffull, E820_RESERVED) < 0) {
		ret = -ENOSPC;
		goto out;
	}
	memset(hva, 0, ACPI_DIRECT_TABLES_OFF);
	build_rsdp(hva, base + lo.rsdt, base + lo.xsdt);
	memcpy(hva + ACPI_DIRECT_TABLES_OFF, b.d, b.len);
out:
	free(b.d);
	return ret;
}

/* ---- firmware boot: fw_cfg blobs and linker/loader script ---- */

static void loader_name(struct acpi_buf *l, const char *name)
{
	char f[LOADER_FILESZ] = { 0 };

	strncpy(f, name, LOADER_FILESZ - 1);
	acpi_buf_put(l, f, LOADER_FILESZ);
}

static void loader_allocate(struct acpi_buf *l, const char *file, uint32_t align, uint8_t zone)
{
	size_t start = l->len;

	acpi_buf_u32(l, LOADER_CMD_ALLOCATE);
	loader_name(l, file);
	acpi_buf_u32(l, align);
	acpi_buf_u8(l, zone);
	acpi_buf_zero(l, LOADER_ENTRY_SIZE - (l->len - start));
}

static void loader_add_pointer(struct acpi_buf *l, const char *dest, const char *src,
			       uint32_t offset, uint8_t size)
{
	size_t start = l->len;

	acpi_buf_u32(l, LOADER_CMD_ADD_POINTER);
	loader_name(l, dest);
	loader_name(l, src);
	acpi_buf_u32(l, offset);
	acpi_buf_u8(l, size);
	acpi_buf_zero(l, LOADER_ENTRY_SIZE - (l->len - start));
}

static void loader_add_checksum(struct acpi_buf *l, const char *file, uint32_t offset,
				uint32_t start_off, uint32_t length)
{
	size_t start = l->len;

	acpi_buf_u32(l, LOADER_CMD_ADD_CHECKSUM);
	loader_name(l, file);
	acpi_buf_u32(l, offset);
	acpi_buf_u32(l, start_off);
	acpi_buf_u32(l, length);
	acpi_buf_zero(l, LOADER_ENTRY_SIZE - (l->len - start));
}

static void loader_table_checksum(struct acpi_buf *l, size_t table, size_t len)
{
	loader_add_checksum(l, ACPI_FW_CFG_TABLES, table + HDR_CHECKSUM, table, len);
}

/* Pointers of a table are patched before its checksum is computed. */
static void build_loader(struct acpi_buf *l, const struct layout *lo)
{
	const char *t = ACPI_FW_CFG_TABLES, *r = ACPI_FW_CFG_RSDP;

	loader_allocate(l, t, 64, LOADER_ZONE_HIGH);
	loader_allocate(l, r, 16, LOADER_ZONE_FSEG);

	loader_table_checksum(l, lo->dsdt, lo->dsdt_len);

	loader_add_pointer(l, t, t, lo->fadt + FADT_FIRMWARE_CTRL, 4);
	loader_add_pointer(l, t, t, lo->fadt + FADT_DSDT, 4);
	loader_add_pointer(l, t, t, lo->fadt + FADT_X_DSDT, 8);
	loader_table_checksum(l, lo->fadt, lo->fadt_len);

	loader_table_checksum(l, lo->madt, lo->madt_len);

	for (unsigned i = 0; i < N_SDT_ENTRIES; i++)
		loader_add_pointer(l, t, t, lo->rsdt + HDR_LEN + 4 * i, 4);
	loader_table_checksum(l, lo->rsdt, lo->rsdt_len);
	for (unsigned i = 0; i < N_SDT_ENTRIES; i++)
		loader_add_pointer(l, t, t, lo->xsdt + HDR_LEN + 8 * i, 8);
	loader_table_checksum(l, lo->xsdt, lo->xsdt_len);

	loader_add_pointer(l, r, t, RSDP_RSDT, 4);
	loader_add_pointer(l, r, t, RSDP_XSDT, 8);
	loader_add_checksum(l, r, RSDP_CHECKSUM, 0, 20);
	loader_add_checksum(l, r, RSDP_EXT_CHECKSUM, 0, RSDP_LEN);
}

void acpi_fw_cfg_blobs_free(struct acpi_fw_cfg_blobs *blobs)
{
	free(blobs->tables);
	free(blobs->rsdp);
	free(blobs->loader);
	*blobs = (struct acpi_fw_cfg_blobs){ 0 };
}

int acpi_build_fw_cfg(const struct acpi_config *cfg, struct acpi_fw_cfg_blobs *out)
{
	struct acpi_buf t = { 0 }, l = { 0 };
	struct layout lo;
	int ret;

	*out = (struct acpi_fw_cfg_blobs){ 0 };
	ret = check_config(cfg);
	if (ret)
		return ret;
	ret = build_tables(&t, 0, cfg, &lo);
	if (!ret) {
		build_loader(&l, &lo);
		out->rsdp = malloc(RSDP_LEN);
		if (l.oom || !out->rsdp)
			ret = -ENOMEM;
	}
	if (ret) {
		free(t.d);
		free(l.d);
		free(out->rsdp);
		out->rsdp = NULL;
		return ret;
	}
	build_rsdp(out->rsdp, lo.rsdt, lo.xsdt);
	out->rsdp_len = RSDP_LEN;
	out->tables = t.d;
	out->tables_len = t.len;
	out->loader = l.d;
	out->loader_len = l.len;
	return 0;
}
