/* acpi.c: ACPI table discovery and checks for the kit. Finds the RSDP (EBDA,
 * then 0xE0000-0xFFFFF), walks the RSDT/XSDT verifying every checksum,
 * extracts the FADT (PM1a_CNT, PM timer, DSDT) and MADT (local APICs,
 * IOAPIC, ISA overrides), finds _S5_ in the AML and powers off via S5. */
#include "tests/guest/kit.h"

struct acpi_info acpi;

struct sdt_header {
	char sig[4];
	u32 length;
	u8 revision;
	u8 checksum;
	char oem[6];
	char oem_table[8];
	u32 oem_rev;
	u32 creator;
	u32 creator_rev;
} __attribute__((packed));

static u8 sum_bytes(const void *p, size_t n)
{
	const u8 *b = p;
	u8 s = 0;

	while (n--)
		s += *b++;
	return s;
}

static u64 rsdp_scan(u64 start, u64 len)
{
	for (u64 a = start; a < start + len; a += 16)
		if (!memcmp((const void *)a, "RSD PTR ", 8) && !sum_bytes((void *)a, 20))
			return a;
	return 0;
}

static u64 rsdp_find(void)
{
	u64 ebda = (u64)*(volatile u16 *)0x40e << 4;
	u64 r = 0;

	if (ebda >= 0x80000 && ebda < 0xa0000)
		r = rsdp_scan(ebda, 1024);
	if (!r)
		r = rsdp_scan(0xe0000, 0x20000);
	return r;
}

static u32 rd32(u64 a) { return *(volatile u32 *)a; }
static u64 rd64(u64 a) { return *(volatile u64 *)a; }

static int madt_parse(u64 madt)
{
	const struct sdt_header *h = (const void *)madt;
	u64 p = madt + 44, end = madt + h->length;

	for (int i = 0; i < 16; i++) {
		acpi.irq_to_gsi[i] = i;
		acpi.irq_flags[i] = 0;
	}
	while (p + 2 <= end) {
		u8 type = *(u8 *)p, len = *(u8 *)(p + 1);

		if (len < 2 || p + len > end)
			return fail("MADT entry at %#lx has bad length %u", p, len);
		if (type == 0 && (rd32(p + 4) & 3) && acpi.ncpus < MAX_CPUS)
			acpi.apic_ids[acpi.ncpus++] = *(u8 *)(p + 3);
		if (type == 9 && (rd32(p + 8) & 3) && acpi.ncpus < MAX_CPUS)
			acpi.apic_ids[acpi.ncpus++] = rd32(p + 4);
		if (type == 1 && !acpi.has_ioapic) {
			acpi.has_ioapic = true;
			acpi.ioapic_addr = rd32(p + 4);
		}
		if (type == 2) {
			u8 src = *(u8 *)(p + 3);

			if (src < 16) {
				acpi.irq_to_gsi[src] = rd32(p + 4);
				acpi.irq_flags[src] = *(u16 *)(p + 8);
			}
			acpi.noverrides++;
		}
		p += len;
	}
	return 0;
}

/* Decode the AML PkgLength at p; returns its size in bytes. */
static int pkg_length_bytes(const u8 *p)
{
	return 1 + (p[0] >> 6);
}

/* Find `_S5_` in an AML table: NameOp _S5_ PackageOp PkgLength NumElements
 * then the first element (SLP_TYPa). */
static int s5_find(u64 table)
{
	const struct sdt_header *h = (const void *)table;
	const u8 *aml = (const u8 *)table + 36;
	u32 n = h->length - 36;

	for (u32 i = 1; i + 10 < n; i++) {
		if (memcmp(aml + i, "_S5_", 4))
			continue;
		if (aml[i - 1] != 0x08 && !(aml[i - 1] == '\\' && i >= 2 && aml[i - 2] == 0x08))
			continue;
		const u8 *p = aml + i + 4;

		if (*p++ != 0x12)	/* PackageOp */
			continue;
		p += pkg_length_bytes(p);
		p++;			/* NumElements */
		switch (*p) {
		case 0x0a:		/* BytePrefix */
			return p[1];
		case 0x0b:		/* WordPrefix */
			return p[1] | p[2] << 8;
		case 0x00:		/* ZeroOp */
			return 0;
		case 0x01:		/* OneOp */
			return 1;
		default:
			if (*p < 0x08)	/* bare small value seen in some tables */
				return *p;
		}
	}
	return -1;
}

static int table_check(u64 addr, const char **sig_out)
{
	const struct sdt_header *h = (const void *)addr;

	*sig_out = h->sig;
	if (h->length < sizeof(*h) || h->length > 0x100000)
		return fail("table %c%c%c%c at %#lx: bad length %u", h->sig[0], h->sig[1],
			    h->sig[2], h->sig[3], addr, h->length);
	if (sum_bytes(h, h->length))
		return fail("table %c%c%c%c at %#lx: bad checksum", h->sig[0], h->sig[1],
			    h->sig[2], h->sig[3], addr);
	return 0;
}

static void fadt_parse(u64 f)
{
	const struct sdt_header *h = (const void *)f;

	acpi.dsdt = rd32(f + 40);
	if (h->length >= 148 && rd64(f + 140))
		acpi.dsdt = rd64(f + 140);
	acpi.smi_cmd = rd32(f + 48);
	acpi.pm1a_evt = rd32(f + 56);
	acpi.pm1a_cnt = rd32(f + 64);
	acpi.pm_tmr = rd32(f + 76);
}

/* Walk everything; quiet unless verbose. Returns 0 when consistent. */
static int acpi_walk(bool verbose)
{
	u64 r = rsdp_find();
	u64 entries[64];
	int n = 0, esz, rc = 0;

	memset(&acpi, 0, sizeof(acpi));
	acpi.slp_typa = -1;
	if (!r)
		return fail("no RSDP in the EBDA or 0xE0000-0xFFFFF");
	acpi.rsdp = r;
	u8 rev = *(u8 *)(r + 15);

	if (rev >= 2 && sum_bytes((void *)r, rd32(r + 20)))
		return fail("RSDP extended checksum bad");
	acpi.rsdt = rd32(r + 16);
	if (rev >= 2)
		acpi.xsdt = rd64(r + 24);
	if (verbose)
		info("RSDP at %#lx rev %u OEM %c%c%c%c%c%c RSDT %#lx XSDT %#lx", r, rev,
		     *(char *)(r + 9), *(char *)(r + 10), *(char *)(r + 11), *(char *)(r + 12),
		     *(char *)(r + 13), *(char *)(r + 14), acpi.rsdt, acpi.xsdt);

	u64 root = acpi.xsdt ? acpi.xsdt : acpi.rsdt;
	const char *sig;

	esz = acpi.xsdt ? 8 : 4;
	if (!root || table_check(root, &sig))
		return fail("no valid RSDT/XSDT");
	if (memcmp(sig, acpi.xsdt ? "XSDT" : "RSDT", 4))
		return fail("root table signature %c%c%c%c", sig[0], sig[1], sig[2], sig[3]);
	if (acpi.xsdt && acpi.rsdt && table_check(acpi.rsdt, &sig))
		return -1;
	u32 len = ((struct sdt_header *)root)->length;

	for (u64 p = root + 36; p + esz <= root + len && n < 64; p += esz)
		entries[n++] = esz == 8 ? rd64(p) : rd32(p);
	for (int i = 0; i < n; i++) {
		if (table_check(entries[i], &sig)) {
			rc = -1;
			continue;
		}
		if (verbose)
			info("table %c%c%c%c at %#lx length %u", sig[0], sig[1], sig[2], sig[3],
			     entries[i], ((struct sdt_header *)entries[i])->length);
		if (!memcmp(sig, "FACP", 4)) {
			acpi.fadt = entries[i];
			fadt_parse(entries[i]);
		} else if (!memcmp(sig, "APIC", 4)) {
			acpi.madt = entries[i];
			if (madt_parse(entries[i]))
				rc = -1;
		}
	}
	if (!acpi.fadt)
		return fail("no FADT");
	if (!acpi.dsdt || table_check(acpi.dsdt, &sig) || memcmp(sig, "DSDT", 4))
		return fail("no valid DSDT");
	if (verbose)
		info("table DSDT at %#lx length %u", acpi.dsdt,
		     ((struct sdt_header *)acpi.dsdt)->length);
	acpi.slp_typa = s5_find(acpi.dsdt);
	for (int i = 0; i < n && acpi.slp_typa < 0; i++)
		if (!memcmp((void *)entries[i], "SSDT", 4))
			acpi.slp_typa = s5_find(entries[i]);
	acpi.found = true;
	return rc;
}

int acpi_init(void)
{
	const char *saved = current_case;
	int rc;

	current_case = "acpi";
	rc = acpi_walk(false);
	current_case = saved;
	return rc;
}

u32 isa_irq_gsi(u32 irq)
{
	if (!acpi.found)
		acpi_init();
	return irq < 16 ? acpi.irq_to_gsi[irq] : irq;
}

void acpi_poweroff(void)
{
	if (!acpi.found || !acpi.pm1a_cnt || acpi.slp_typa < 0) {
		kprintf("testkit: acpi: cannot power off (PM1a_CNT %#x, SLP_TYPa %d)\n",
			acpi.pm1a_cnt, acpi.slp_typa);
		return;
	}
	kprintf("testkit: poweroff via ACPI S5 (PM1a_CNT %#x SLP_TYPa %d)\n", acpi.pm1a_cnt,
		acpi.slp_typa);
	outw(acpi.pm1a_cnt, (u16)((acpi.slp_typa & 7) << 10 | 1 << 13));
	delay_ns(200000000);
	kprintf("testkit: still running after S5\n");
}

/* The PM timer (3.579545 MHz, 24 or 32 bits) must advance at its rate. */
static int pm_timer_check(void)
{
	u32 mask = (rd32(acpi.fadt + 112) & (1 << 8)) ? 0xffffffff : 0xffffff;
	u32 a = inl(acpi.pm_tmr) & mask;
	u64 t0 = now_ns();

	delay_ns(20000000);
	u32 b = inl(acpi.pm_tmr) & mask;
	u64 dt = now_ns() - t0;
	u64 ticks = (b - a) & mask;
	u64 expect = dt * 3579545ull / 1000000000ull;

	info("PM timer at %#x: %lu ticks in %lu us (expected %lu)", acpi.pm_tmr, ticks,
	     dt / 1000, expect);
	if (ticks < expect * 8 / 10 || ticks > expect * 12 / 10)
		return fail("PM timer rate off: %lu ticks, expected %lu", ticks, expect);
	return 0;
}

int case_acpi(void)
{
	if (acpi_walk(true))
		return -1;
	info("FADT: PM1a_EVT %#x PM1a_CNT %#x PM_TMR %#x SMI_CMD %#x DSDT %#lx", acpi.pm1a_evt,
	     acpi.pm1a_cnt, acpi.pm_tmr, acpi.smi_cmd, acpi.dsdt);
	if (!acpi.pm1a_cnt)
		return fail("FADT has no PM1a_CNT_BLK");
	if (!acpi.madt)
		return fail("no MADT");
	info("MADT: %u local APICs, IOAPIC %s at %#x, %d ISA overrides, IRQ0 -> GSI %u",
	     acpi.ncpus, acpi.has_ioapic ? "present" : "missing", acpi.ioapic_addr,
	     acpi.noverrides, acpi.irq_to_gsi[0]);
	if (!acpi.ncpus)
		return fail("MADT lists no enabled local APIC");
	if (!acpi.has_ioapic)
		return fail("MADT lists no IOAPIC");
	if (acpi.slp_typa < 0)
		return fail("no _S5_ package in the DSDT/SSDTs");
	info("_S5_ SLP_TYPa = %d", acpi.slp_typa);
	if (acpi.pm_tmr && pm_timer_check())
		return -1;
	return 0;
}
