/* MP spec 1.4 floating pointer and configuration table. Interrupt
 * assignments mirror the ACPI MADT/DSDT of acpi.c: ISA IRQ n on IOAPIC pin
 * n except IRQ 0 on pin 2 (IRQ 2 is the cascade and has no entry), IRQs
 * 5, 9, 10, 11 level/active-high like QEMU's pc; PCI slot S pin P on the
 * PIIX PIRQ (S + P - 1) & 3 default IRQ, slot 1 INTA on the SCI (IRQ 9).
 * Above MPTABLE_MAX_CPUS CPUs (8-bit APIC IDs run out) there is no MP
 * table; the ACPI MADT's x2APIC entries describe the machine. */
#include <errno.h>
#include <string.h>

#include "vmm/mptable.h"
#include "vmm/memory.h"
#include "vmm/platform.h"

#define MPF_LEN		16
#define MPC_HDR_LEN	44
#define MP_SPEC_REV	4		/* 1.4 */

enum mp_entry {
	MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_IOINTR = 3, MP_LINTR = 4,
};
enum mp_irq_type { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };

#define MP_CPU_ENABLED	0x01
#define MP_CPU_BSP	0x02
#define MP_LAPIC_VERSION  0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_CPU_SIGNATURE  0x600		/* family 6 */
#define MP_CPU_FEATURES   0x201		/* FPU, APIC */
#define MP_LEVEL_HIGH	0x000d		/* trigger level, polarity high */
#define MP_PCI_SLOTS	31		/* slots 1..31, INTA..INTD each */
#define MP_ISA_ENTRIES	15		/* IRQ 0..15 without 2 */

static size_t n_entries_fixed(void)
{
	return 2 /* buses */ + 1 /* ioapic */ + MP_ISA_ENTRIES + MP_PCI_SLOTS * 4 + 2 /* lint */;
}

size_t mptable_config_size(unsigned ncpus)
{
	if (ncpus == 0 || ncpus > MPTABLE_MAX_CPUS)
		return 0;
	return MPC_HDR_LEN + 20 * ncpus + 8 * n_entries_fixed();
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

static uint8_t *put(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len)
{
	memset(p, ' ', len);
	memcpy(p, s, strnlen(s, len));
	return p + len;
}

static uint8_t *mp_processor(uint8_t *p, unsigned id)
{
	p = put(p, MP_PROCESSOR, 1);
	p = put(p, id, 1);
	p = put(p, MP_LAPIC_VERSION, 1);
	p = put(p, MP_CPU_ENABLED | (id == 0 ? MP_CPU_BSP : 0), 1);
	p = put(p, MP_CPU_SIGNATURE, 4);
	p = put(p, MP_CPU_FEATURES, 4);
	return put(p, 0, 8);
}

static uint8_t *mp_bus(uint8_t *p, unsigned id, const char *type)
{
	p = put(p, MP_BUS, 1);
	p = put(p, id, 1);
	return put_str(p, type, 6);
}

static uint8_t *mp_intr(uint8_t *p, uint8_t entry, uint8_t type, uint16_t flags,
			uint8_t bus, uint8_t bus_irq, uint8_t dst_id, uint8_t dst_pin)
{
	p = put(p, entry, 1);
	p = put(p, type, 1);
	p = put(p, flags, 2);
	p = put(p, bus, 1);
	p = put(p, bus_irq, 1);
	p = put(p, dst_id, 1);
	return put(p, dst_pin, 1);
}

static uint16_t isa_irq_flags(unsigned irq)
{
	return (irq == 5 || irq == ACPI_SCI_IRQ || irq == 10 || irq == 11) ? MP_LEVEL_HIGH : 0;
}

static unsigned pci_irq(unsigned slot, unsigned pin)
{
	static const unsigned pirq_irqs[4] = PIRQ_DEFAULT_IRQS;

	if (slot == 1 && pin == 0)
		return ACPI_SCI_IRQ;
	return pirq_irqs[(slot + pin - 1) & 3];
}

static void build_config(uint8_t *t, size_t len, unsigned ncpus)
{
	uint8_t ioapic_id = ncpus;	/* after the CPUs, as SeaBIOS does */
	uint8_t *p = t;

	memset(t, 0, len);
	p = put_str(p, "PCMP", 4);
	p = put(p, len, 2);
	p = put(p, MP_SPEC_REV, 1);
	p = put(p, 0, 1);		/* checksum */
	p = put_str(p, "MINIKVM", 8);
	p = put_str(p, "PC", 12);
	p = put(p, 0, 4);		/* OEM table */
	p = put(p, 0, 2);
	p = put(p, ncpus + n_entries_fixed(), 2);
	p = put(p, LAPIC_BASE, 4);
	p = put(p, 0, 4);		/* extended table length, checksum, reserved */

	for (unsigned i = 0; i < ncpus; i++)
		p = mp_processor(p, i);
	p = mp_bus(p, MPTABLE_PCI_BUS_ID, "PCI");
	p = mp_bus(p, MPTABLE_ISA_BUS_ID, "ISA");

	p = put(p, MP_IOAPIC, 1);
	p = put(p, ioapic_id, 1);
	p = put(p, MP_IOAPIC_VERSION, 1);
	p = put(p, 1, 1);		/* enabled */
	p = put(p, IOAPIC_BASE, 4);

	for (unsigned irq = 0; irq < 16; irq++) {
		if (irq == 2)
			continue;
		p = mp_intr(p, MP_IOINTR, MP_INT, isa_irq_flags(irq), MPTABLE_ISA_BUS_ID, irq,
			    ioapic_id, irq == PIT_IRQ ? 2 : irq);
	}
	for (unsigned slot = 1; slot <= MP_PCI_SLOTS; slot++)
		for (unsigned pin = 0; pin < 4; pin++)
			p = mp_intr(p, MP_IOINTR, MP_INT, MP_LEVEL_HIGH, MPTABLE_PCI_BUS_ID,
				    (slot << 2) | pin, ioapic_id, pci_irq(slot, pin));

	p = mp_intr(p, MP_LINTR, MP_EXTINT, 0, MPTABLE_ISA_BUS_ID, 0, 0xff, 0);
	mp_intr(p, MP_LINTR, MP_NMI, 0, MPTABLE_ISA_BUS_ID, 0, 0xff, 1);
	t[7] = checksum(t, len);
}

static void build_floating_pointer(uint8_t *f)
{
	memset(f, 0, MPF_LEN);
	memcpy(f, "_MP_", 4);
	put(f + 4, MPTABLE_CONFIG_ADDR, 4);
	f[8] = 1;			/* length in 16-byte units */
	f[9] = MP_SPEC_REV;
	/* feature byte 1 = 0: a configuration table is present; feature
	 * byte 2 = 0: virtual wire mode, no IMCR */
	f[10] = checksum(f, MPF_LEN);
}

/* Too many CPUs for 8-bit APIC IDs: no MP table, the ACPI MADT alone
 * describes the processors. */
static int mptable_omit(struct guest_memory *mem)
{
	uint8_t *mpf = gpa_to_hva(mem, MPTABLE_ADDR, MPF_LEN);

	if (mpf)
		memset(mpf, 0, MPF_LEN);
	return 0;
}

int mptable_install(struct guest_memory *mem, unsigned ncpus)
{
	size_t len = mptable_config_size(ncpus);
	uint8_t *mpf, *mpc;

	if (ncpus == 0)
		return -EINVAL;
	if (ncpus > MPTABLE_MAX_CPUS)
		return mptable_omit(mem);
	if (MPTABLE_CONFIG_ADDR + len > BIOS_AREA_START + BIOS_AREA_SIZE)
		return -EINVAL;
	mpf = gpa_to_hva(mem, MPTABLE_ADDR, MPF_LEN);
	mpc = gpa_to_hva(mem, MPTABLE_CONFIG_ADDR, len);
	if (!mpf || !mpc)
		return -EFAULT;
	build_config(mpc, len, ncpus);
	build_floating_pointer(mpf);
	return 0;
}
