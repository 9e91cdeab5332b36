/* Tests for vmm/acpi.c: direct-boot tables in a fake guest RAM, the DSDT's
 * AML structure (a small parser walks every PkgLength and finds \_S5_),
 * the fw_cfg blobs run through a SeaBIOS-like loader, and iasl (acpica-
 * tools) disassembling the tables when it is installed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/acpi.h"
#include "vmm/memory.h"
#include "vmm/platform.h"

/* ---- a view of guest-physical memory made of a few host buffers ---- */

struct region {
	uint64_t gpa;
	uint8_t *host;
	size_t len;
};

struct space {
	struct region r[3];
	unsigned n;
};

static uint8_t *at(const struct space *s, uint64_t gpa, size_t len)
{
	for (unsigned i = 0; i < s->n; i++)
		if (gpa >= s->r[i].gpa && gpa - s->r[i].gpa + len <= s->r[i].len)
			return s->r[i].host + (gpa - s->r[i].gpa);
	return NULL;
}

static uint64_t le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* A table with a valid header and checksum at gpa; returns it. */
static uint8_t *table(const struct space *s, uint64_t gpa, const char *sig)
{
	uint8_t *t = at(s, gpa, 36);
	uint32_t len;

	assert_non_null(t);
	assert_memory_equal(t, sig, 4);
	len = le(t + 4, 4);
	assert_true(len >= 36);
	t = at(s, gpa, len);
	assert_non_null(t);
	assert_int_equal(sum8(t, len), 0);
	return t;
}

static uint64_t find_rsdp(const struct space *s)
{
	for (uint64_t a = BIOS_AREA_START; a < BIOS_AREA_START + BIOS_AREA_SIZE; a += 16) {
		uint8_t *p = at(s, a, 36);

		if (p && !memcmp(p, "RSD PTR ", 8))
			return a;
	}
	return 0;
}

/* ---- tiny AML parser: structure check and \_S5_ lookup ---- */

#define MAX_DEVICES 2048

struct aml_walk {
	const uint8_t *base;
	int s5_found;
	uint64_t s5[4];
	unsigned devices, names;
	char dev_names[MAX_DEVICES][5];	/* last NameSeg of each Device */
	int64_t dev_uid[MAX_DEVICES];	/* its _UID, -1 if none */
	int cur_dev;			/* Device being walked, -1 at top */
};

static size_t pkglength(const uint8_t *p, size_t avail, size_t *len)
{
	unsigned n = (p[0] >> 6) + 1;

	assert_true(n <= avail);
	if (n == 1) {
		*len = p[0] & 0x3f;
		return 1;
	}
	assert_int_equal(p[0] & 0x30, 0);	/* reserved bits for multi-byte */
	*len = p[0] & 0x0f;
	for (unsigned i = 1; i < n; i++)
		*len |= (size_t)p[i] << (4 + 8 * (i - 1));
	return n;
}

static int is_lead(uint8_t c)  { return (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_name(uint8_t c)  { return is_lead(c) || (c >= '0' && c <= '9'); }

/* Parses a NameString into "\\_SB_.PCI0" form; returns bytes used. */
static size_t namestring(const uint8_t *p, size_t avail, char *out)
{
	size_t i = 0, o = 0;
	unsigned segs;

	while (i < avail && (p[i] == '\\' || p[i] == '^'))
		out[o++] = p[i++];
	assert_true(i < avail);
	if (p[i] == 0) {
		segs = 0;
		i++;
	} else if (p[i] == 0x2e) {
		segs = 2;
		i++;
	} else if (p[i] == 0x2f) {
		segs = p[i + 1];
		i += 2;
	} else {
		segs = 1;
	}
	for (unsigned s = 0; s < segs; s++) {
		assert_true(i + 4 <= avail);
		assert_true(is_lead(p[i]));
		for (unsigned k = 0; k < 4; k++) {
			assert_true(is_name(p[i + k]));
			out[o++] = p[i + k];
		}
		if (s + 1 < segs)
			out[o++] = '.';
		i += 4;
	}
	out[o] = 0;
	return i;
}

static size_t term(struct aml_walk *w, const uint8_t *p, size_t avail, uint64_t *ival);

static void term_list(struct aml_walk *w, const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len)
		i += term(w, p + i, len - i, NULL);
	assert_int_equal(i, len);
}

/* Parses one term (the subset acpi.c emits); returns its size. Integers
 * are returned in *ival when asked. */
static size_t term(struct aml_walk *w, const uint8_t *p, size_t avail, uint64_t *ival)
{
	char name[128];
	size_t n, len, i;
	uint64_t v = 0;

	assert_true(avail >= 1);
	switch (p[0]) {
	case 0x00: case 0x01: case 0xff:
		v = p[0] == 0xff ? ~0ull : p[0];
		n = 1;
		break;
	case 0x0a: case 0x0b: case 0x0c: case 0x0e: {
		unsigned bytes = p[0] == 0x0a ? 1 : p[0] == 0x0b ? 2 : p[0] == 0x0c ? 4 : 8;

		assert_true(avail >= 1 + bytes);
		v = le(p + 1, bytes);
		n = 1 + bytes;
		break;
	}
	case 0x0d:
		n = strnlen((const char *)p + 1, avail - 1) + 2;
		assert_true(n <= avail);
		break;
	case 0x08: {		/* Name */
		uint64_t vals[1];

		n = 1 + namestring(p + 1, avail - 1, name);
		w->names++;
		if (!strcmp(name, "_UID") && w->cur_dev >= 0) {
			uint64_t uid;

			term(w, p + n, avail - n, &uid);
			assert_int_equal(w->dev_uid[w->cur_dev], -1);	/* one _UID */
			w->dev_uid[w->cur_dev] = (int64_t)uid;
		}
		if (!strcmp(name, "\\_S5_")) {
			const uint8_t *pk = p + n;

			assert_int_equal(pk[0], 0x12);
			i = 1 + pkglength(pk + 1, avail - n - 1, &len);
			assert_int_equal(pk[i], 4);
			i++;
			for (unsigned e = 0; e < 4; e++) {
				i += term(w, pk + i, 1 + len - i, vals);
				w->s5[e] = vals[0];
			}
			w->s5_found++;
		}
		n += term(w, p + n, avail - n, NULL);
		break;
	}
	case 0x10: case 0x12: case 0x11: case 0x14: case 0x5b: {
		uint8_t op = p[0];
		size_t off = 1;

		if (op == 0x5b) {
			assert_int_equal(p[1], 0x82);	/* Device */
			off = 2;
			w->devices++;
		}
		i = off + pkglength(p + off, avail - off, &len);
		assert_true(off + len <= avail);	/* object fits its parent */
		n = off + len;
		if (op == 0x12) {			/* Package */
			size_t j = i + 1;
			unsigned count = 0;

			while (j < n) {
				if (is_lead(p[j]) || p[j] == '\\' || p[j] == '^')
					j += namestring(p + j, n - j, name);
				else
					j += term(w, p + j, n - j, NULL);
				count++;
			}
			assert_int_equal(j, n);
			assert_int_equal(count, p[i]);
		} else if (op == 0x11) {		/* Buffer */
			uint64_t size;

			i += term(w, p + i, n - i, &size);
			assert_int_equal(size, n - i);
		} else {				/* Scope, Device, Method */
			int outer = w->cur_dev;

			i += namestring(p + i, n - i, name);
			if (op == 0x14)
				i++;			/* method flags */
			if (op == 0x5b) {
				unsigned d = w->devices - 1;
				size_t nl = strlen(name);

				assert_true(d < MAX_DEVICES && nl >= 4);
				memcpy(w->dev_names[d], name + nl - 4, 5);
				w->dev_uid[d] = -1;
				w->cur_dev = d;
			}
			term_list(w, p + i, n - i);
			w->cur_dev = outer;
		}
		break;
	}
	default:
		fail_msg("unexpected AML opcode 0x%02x at offset %zu", p[0], (size_t)(p - w->base));
		return 0;
	}
	if (ival)
		*ival = v;
	return n;
}

/* Processor devices: "C" and 3 upper-case hex digits naming their _UID,
 * one for each CPU; every Device name in the DSDT is distinct. */
static void check_dsdt_cpus(const struct aml_walk *w, unsigned ncpus)
{
	unsigned cpus = 0;
	uint8_t *seen = calloc(ncpus, 1);

	assert_non_null(seen);
	for (unsigned d = 0; d < w->devices; d++) {
		const char *nm = w->dev_names[d];
		char expect[8];

		for (unsigned e = 0; e < d; e++)
			assert_string_not_equal(nm, w->dev_names[e]);
		if (nm[0] != 'C' || !strncmp(nm, "COM", 3))
			continue;
		assert_true(w->dev_uid[d] >= 0 && w->dev_uid[d] < (int64_t)ncpus);
		snprintf(expect, sizeof(expect), "C%03X", (unsigned)w->dev_uid[d]);
		assert_string_equal(nm, expect);
		assert_int_equal(seen[w->dev_uid[d]], 0);
		seen[w->dev_uid[d]] = 1;
		cpus++;
	}
	assert_int_equal(cpus, ncpus);
	free(seen);
}

static void check_dsdt(const uint8_t *dsdt, unsigned ncpus)
{
	struct aml_walk w = { .base = dsdt, .cur_dev = -1 };	/* ~26 KiB */
	uint32_t len = le(dsdt + 4, 4);

	assert_int_equal(dsdt[8], 2);			/* 64-bit integers */
	term_list(&w, dsdt + 36, len - 36);		/* consumes exactly len */
	assert_int_equal(w.s5_found, 1);
	assert_int_equal(w.s5[0], ACPI_S5_SLP_TYP);
	assert_int_equal(w.s5[1], ACPI_S5_SLP_TYP);
	/* PCI0, ISA, RTC, KBD, MOU, COM1, COM2, 5 links, one per CPU */
	assert_int_equal(w.devices, 12 + ncpus);
	assert_non_null(memmem(dsdt, len, "_PRT", 4));
	assert_non_null(memmem(dsdt, len, "\x0c\x41\xd0\x0a\x03", 5));	/* PNP0A03 */
	check_dsdt_cpus(&w, ncpus);
}

/* ---- whole table set, reached from the RSDP ---- */

struct found {
	uint8_t *fadt, *madt, *dsdt, *facs;
};

static void check_fadt(const struct space *s, uint8_t *f, struct found *out)
{
	uint64_t facs = le(f + 36, 4), dsdt = le(f + 40, 4);

	assert_true(f[8] >= 3);
	assert_int_equal(le(f + 4, 4), 244);
	assert_int_equal(le(f + 140, 8), dsdt);		/* X_DSDT */
	assert_int_equal(le(f + 132, 8), 0);		/* X_FIRMWARE_CTRL */
	assert_int_equal(facs % 64, 0);
	out->facs = at(s, facs, 64);
	assert_non_null(out->facs);
	assert_memory_equal(out->facs, "FACS", 4);
	assert_int_equal(le(out->facs + 4, 4), 64);
	out->dsdt = table(s, dsdt, "DSDT");

	assert_int_equal(le(f + 46, 2), ACPI_SCI_IRQ);
	assert_int_equal(le(f + 48, 4), 0xb2);
	assert_int_equal(f[52], 0xf1);
	assert_int_equal(f[53], 0xf0);
	assert_int_equal(le(f + 56, 4), ACPI_PM1_EVT);
	assert_int_equal(le(f + 64, 4), ACPI_PM1_CNT);
	assert_int_equal(le(f + 76, 4), ACPI_PM_TMR);
	assert_int_equal(le(f + 80, 4), ACPI_GPE0_BASE);
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 4);
	assert_int_equal(f[92], ACPI_GPE0_LEN);
	assert_int_equal(le(f + 109, 2), 0x7);		/* legacy, 8042, no VGA */
	/* flags: WBINVD, PROC_C1, SLP_BUTTON, RTC_S4, RESET_REG_SUP; fixed
	 * power button (PWR_BUTTON clear); 24-bit timer by default */
	assert_int_equal(le(f + 112, 4), 0x1 | 0x4 | 0x20 | 0x80 | 0x400);
	assert_int_equal(f[116], 1);			/* reset reg: I/O */
	assert_int_equal(f[117], 8);
	assert_int_equal(le(f + 120, 8), 0xcf9);
	assert_int_equal(f[128], 0x06);
	/* X_ GAS blocks agree with the 32-bit ones */
	assert_int_equal(f[148], 1);
	assert_int_equal(f[149], 32);
	assert_int_equal(le(f + 152, 8), ACPI_PM1_EVT);
	assert_int_equal(f[173], 16);
	assert_int_equal(le(f + 176, 8), ACPI_PM1_CNT);
	assert_int_equal(f[209], 32);
	assert_int_equal(le(f + 212, 8), ACPI_PM_TMR);
	assert_int_equal(f[221], ACPI_GPE0_LEN * 8);
	assert_int_equal(le(f + 224, 8), ACPI_GPE0_BASE);
}

/* CPU i has APIC ID and UID i: IDs 0..254 as Processor Local APIC
 * entries (type 0), in order, then the others as Processor Local x2APIC
 * entries (type 9), with a Local x2APIC NMI (type 0xA) only then. */
static void check_madt(uint8_t *m, unsigned ncpus)
{
	uint32_t len = le(m + 4, 4), off = 44;
	unsigned lapics = 0, x2apics = 0, ioapics = 0, nmis = 0, x2nmis = 0, isos = 0;
	unsigned want_lapics = ncpus < XAPIC_ID_LIMIT ? ncpus : XAPIC_ID_LIMIT;
	int iso_flags[16];

	memset(iso_flags, -1, sizeof(iso_flags));
	assert_int_equal(le(m + 36, 4), LAPIC_BASE);
	while (off < len) {
		uint8_t type = m[off], elen = m[off + 1];

		assert_true(elen >= 2 && off + elen <= len);
		switch (type) {
		case 0:
			assert_int_equal(elen, 8);
			assert_int_equal(x2apics, 0);		/* xAPIC entries first */
			assert_int_equal(m[off + 2], lapics);	/* UID */
			assert_int_equal(m[off + 3], lapics);	/* APIC ID */
			assert_true(m[off + 3] < 0xff);		/* never broadcast */
			assert_int_equal(le(m + off + 4, 4), 1);
			lapics++;
			break;
		case 9:
			assert_int_equal(elen, 16);
			assert_int_equal(le(m + off + 2, 2), 0);	/* reserved */
			assert_int_equal(le(m + off + 4, 4), XAPIC_ID_LIMIT + x2apics);
			assert_int_equal(le(m + off + 8, 4), 1);	/* enabled */
			assert_int_equal(le(m + off + 12, 4), XAPIC_ID_LIMIT + x2apics);
			x2apics++;
			break;
		case 1:
			assert_int_equal(elen, 12);
			assert_int_equal(m[off + 2], 0);
			assert_int_equal(le(m + off + 4, 4), IOAPIC_BASE);
			assert_int_equal(le(m + off + 8, 4), 0);
			ioapics++;
			break;
		case 2: {
			uint8_t irq = m[off + 3];

			assert_int_equal(elen, 10);
			assert_int_equal(m[off + 2], 0);
			assert_true(irq < 16);
			iso_flags[irq] = le(m + off + 8, 2);
			assert_int_equal(le(m + off + 4, 4), irq == 0 ? 2 : irq);
			isos++;
			break;
		}
		case 4:
			assert_int_equal(elen, 6);
			assert_int_equal(m[off + 2], 0xff);
			assert_int_equal(m[off + 5], 1);	/* LINT1 */
			nmis++;
			break;
		case 0xa:
			assert_int_equal(elen, 12);
			assert_int_equal(le(m + off + 2, 2), 0);	/* flags: conforming */
			assert_int_equal(le(m + off + 4, 4), 0xffffffffu);	/* all CPUs */
			assert_int_equal(m[off + 8], 1);		/* LINT1 */
			assert_int_equal(le(m + off + 9, 3), 0);
			x2nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry %u", type);
		}
		off += elen;
	}
	assert_int_equal(off, len);
	assert_int_equal(lapics, want_lapics);
	assert_int_equal(x2apics, ncpus - want_lapics);
	assert_int_equal(ioapics, 1);
	assert_int_equal(nmis, 1);
	assert_int_equal(x2nmis, x2apics ? 1 : 0);
	assert_int_equal(isos, 5);
	assert_int_equal(iso_flags[0], 0);
	assert_int_equal(iso_flags[5], 0xd);
	assert_int_equal(iso_flags[9], 0xd);
	assert_int_equal(iso_flags[10], 0xd);
	assert_int_equal(iso_flags[11], 0xd);
}

static struct found check_all(const struct space *s, uint64_t rsdp_gpa, unsigned ncpus)
{
	uint8_t *r = at(s, rsdp_gpa, 36), *rsdt, *xsdt;
	struct found f = { 0 };

	assert_non_null(r);
	assert_int_equal(rsdp_gpa % 16, 0);
	assert_int_equal(r[15], 2);
	assert_int_equal(sum8(r, 20), 0);
	assert_int_equal(le(r + 20, 4), 36);
	assert_int_equal(sum8(r, 36), 0);
	rsdt = table(s, le(r + 16, 4), "RSDT");
	xsdt = table(s, le(r + 24, 8), "XSDT");
	assert_int_equal(le(rsdt + 4, 4), 36 + 2 * 4);
	assert_int_equal(le(xsdt + 4, 4), 36 + 2 * 8);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(le(rsdt + 36 + 4 * i, 4), le(xsdt + 36 + 8 * i, 8));
	f.fadt = table(s, le(xsdt + 36, 8), "FACP");
	f.madt = table(s, le(xsdt + 44, 8), "APIC");
	check_fadt(s, f.fadt, &f);
	check_madt(f.madt, ncpus);
	check_dsdt(f.dsdt, ncpus);
	return f;
}

/* ---- direct boot ---- */

#define RAM_SIZE (2 * MiB)

static void fake_ram(struct guest_memory *m, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	memory_layout(m, size);
	m->host = calloc(1, size);
	assert_non_null(m->host);
}

static struct space ram_space(struct guest_memory *m)
{
	struct space s = { .n = 1 };

	s.r[0] = (struct region){ 0, m->host, m->below_4g };
	return s;
}

static void direct_boot_ncpus(unsigned ncpus)
{
	struct guest_memory m;
	struct acpi_config cfg;
	struct space s;
	struct found f;
	uint64_t rsdp;

	fake_ram(&m, RAM_SIZE);
	acpi_config_default(&cfg, ncpus);
	assert_int_equal(acpi_install(&m, &cfg), 0);
	s = ram_space(&m);
	rsdp = find_rsdp(&s);
	assert_int_equal(rsdp, ACPI_TABLES_ADDR);
	f = check_all(&s, rsdp, ncpus);
	/* every table inside [ACPI_TABLES_ADDR, ACPI_TABLES_END) */
	uint8_t *tables[] = { f.fadt, f.madt, f.dsdt, f.facs };
	for (unsigned i = 0; i < 4; i++) {
		uint64_t gpa = tables[i] - m.host;

		assert_true(gpa >= ACPI_TABLES_ADDR);
		assert_true(gpa + le(tables[i] + 4, 4) <= ACPI_TABLES_END);
	}
	/* nothing written at or beyond ACPI_TABLES_END */
	for (uint64_t a = ACPI_TABLES_END; a < BIOS_AREA_START + BIOS_AREA_SIZE; a++)
		assert_int_equal(m.host[a], 0);
	/* the BIOS area is reserved in e820 */
	int covered = 0;
	for (unsigned i = 0; i < m.n_e820; i++)
		if (m.e820[i].type == E820_RESERVED && m.e820[i].addr <= ACPI_TABLES_ADDR &&
		    m.e820[i].addr + m.e820[i].size >= ACPI_TABLES_END)
			covered = 1;
	assert_true(covered);
	free(m.host);
}

static void test_direct_1cpu(void **state)   { direct_boot_ncpus(1); }
static void test_direct_2cpus(void **state)  { direct_boot_ncpus(2); }
static void test_direct_8cpus(void **state)  { direct_boot_ncpus(8); }
static void test_direct_255cpus(void **state) { direct_boot_ncpus(255); }
static void test_direct_256cpus(void **state) { direct_boot_ncpus(256); }
static void test_direct_300cpus(void **state) { direct_boot_ncpus(300); }
static void test_direct_1024cpus(void **state) { direct_boot_ncpus(ACPI_MAX_CPUS); }

static int all_zero(const uint8_t *p, size_t len)
{
	while (len--)
		if (*p++)
			return 0;
	return 1;
}

static void test_refuses_bad_config(void **state)
{
	struct guest_memory m;
	struct acpi_config cfg;
	struct acpi_fw_cfg_blobs b;

	fake_ram(&m, RAM_SIZE);
	acpi_config_default(&cfg, 0);
	assert_int_equal(acpi_install(&m, &cfg), -EINVAL);
	acpi_config_default(&cfg, ACPI_MAX_CPUS + 1);
	assert_int_equal(acpi_install(&m, &cfg), -EINVAL);
	assert_int_equal(acpi_build_fw_cfg(&cfg, &b), -EINVAL);
	assert_null(b.tables);
	cfg.ncpus = 4;
	cfg.pci64_start = ~0ull - 10;
	cfg.pci64_size = 100;
	assert_int_equal(acpi_install(&m, &cfg), -EINVAL);
	assert_true(all_zero(m.host, RAM_SIZE));
	free(m.host);
}

static void test_refuses_missing_ram(void **state)
{
	struct guest_memory m;
	struct acpi_config cfg;

	/* RAM ends inside the BIOS area: the tables do not fit, nothing is
	 * written past it (and nothing at all). */
	fake_ram(&m, RAM_SIZE);
	m.below_4g = ACPI_TABLES_ADDR + 256;
	acpi_config_default(&cfg, 8);
	assert_int_equal(acpi_install(&m, &cfg), -EFAULT);
	assert_true(all_zero(m.host, RAM_SIZE));
	free(m.host);
}

static void test_options(void **state)
{
	struct guest_memory m;
	struct acpi_config cfg;
	struct space s;
	struct found f;

	fake_ram(&m, RAM_SIZE);
	acpi_config_default(&cfg, 2);
	cfg.pm_timer_32bit = true;
	cfg.vga_present = true;
	cfg.pci64_start = 0x800000000ull;
	cfg.pci64_size = 0x800000000ull;
	assert_int_equal(acpi_install(&m, &cfg), 0);
	s = ram_space(&m);
	f.fadt = table(&s, le(at(&s, le(at(&s, ACPI_TABLES_ADDR, 36) + 24, 8), 52) + 36, 8),
		       "FACP");
	assert_true(le(f.fadt + 112, 4) & 0x100);	/* TMR_VAL_EXT */
	assert_int_equal(le(f.fadt + 109, 2) & 0x4, 0);	/* VGA present */
	/* QWordMemory descriptor with the window */
	f.dsdt = table(&s, le(f.fadt + 40, 4), "DSDT");
	uint8_t *q = memmem(f.dsdt, le(f.dsdt + 4, 4), "\x8a\x2b\x00", 3);
	assert_non_null(q);
	assert_int_equal(le(q + 14, 8), 0x800000000ull);
	assert_int_equal(le(q + 22, 8), 0xfffffffffull);
	free(m.host);
}

/* ---- firmware boot: apply the loader like SeaBIOS ---- */

struct blob {
	const char *name;
	uint8_t *data;
	size_t len;
	uint64_t gpa;
};

static struct blob *blob_find(struct blob *b, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (!strncmp(b[i].name, name, LOADER_FILESZ))
			return &b[i];
	fail_msg("loader names unknown file %.56s", name);
	return NULL;
}

static void run_loader(const struct acpi_fw_cfg_blobs *fw, struct blob *files,
		       unsigned *counts)
{
	for (size_t off = 0; off < fw->loader_len; off += LOADER_ENTRY_SIZE) {
		const uint8_t *e = fw->loader + off;
		uint32_t cmd = le(e, 4);

		assert_true(cmd >= 1 && cmd <= 3);
		counts[cmd]++;
		if (cmd == LOADER_CMD_ALLOCATE) {
			struct blob *b = blob_find(files, 2, (const char *)e + 4);
			uint32_t align = le(e + 60, 4);
			uint8_t zone = e[64];

			assert_true(align && !(align & (align - 1)));
			assert_int_equal(b->gpa % align, 0);
			if (zone == LOADER_ZONE_FSEG)
				assert_true(b->gpa >= 0xe0000 && b->gpa + b->len <= 0x100000);
			else
				assert_int_equal(zone, LOADER_ZONE_HIGH);
			assert_true(all_zero(e + 65, LOADER_ENTRY_SIZE - 65));
		} else if (cmd == LOADER_CMD_ADD_POINTER) {
			struct blob *d = blob_find(files, 2, (const char *)e + 4);
			struct blob *s = blob_find(files, 2, (const char *)e + 60);
			uint32_t at_off = le(e + 116, 4);
			uint8_t size = e[120];
			uint64_t ptr;

			assert_true(size == 4 || size == 8);
			assert_true(at_off + size <= d->len);
			ptr = le(d->data + at_off, size);
			assert_true(ptr < s->len);		/* offset inside src */
			ptr += s->gpa;
			for (unsigned i = 0; i < size; i++)
				d->data[at_off + i] = (uint8_t)(ptr >> (8 * i));
			assert_true(all_zero(e + 121, LOADER_ENTRY_SIZE - 121));
		} else {
			struct blob *b = blob_find(files, 2, (const char *)e + 4);
			uint32_t at_off = le(e + 60, 4), start = le(e + 64, 4), len = le(e + 68, 4);

			assert_true(start + len <= b->len && start + len >= start);
			assert_true(at_off >= start && at_off < start + len);
			b->data[at_off] -= sum8(b->data + start, len);
			assert_true(all_zero(e + 72, LOADER_ENTRY_SIZE - 72));
		}
	}
}

static void fw_cfg_ncpus(unsigned ncpus)
{
	struct acpi_fw_cfg_blobs fw;
	struct acpi_config cfg;
	struct blob files[2];
	unsigned counts[4] = { 0 };
	struct space s = { .n = 2 };
	uint8_t *hi, *fseg;

	acpi_config_default(&cfg, ncpus);
	assert_int_equal(acpi_build_fw_cfg(&cfg, &fw), 0);
	assert_int_equal(fw.rsdp_len, 36);
	assert_int_equal(fw.loader_len % LOADER_ENTRY_SIZE, 0);
	/* 2 ALLOCATE, 3 FADT + 2 RSDT + 2 XSDT + 2 RSDP pointers,
	 * 5 table checksums + 2 RSDP checksums */
	assert_int_equal(fw.loader_len / LOADER_ENTRY_SIZE, 2 + 9 + 7);
	assert_int_equal(le(fw.loader, 4), LOADER_CMD_ALLOCATE);
	assert_string_equal((const char *)fw.loader + 4, ACPI_FW_CFG_TABLES);

	hi = calloc(1, fw.tables_len);
	fseg = calloc(1, fw.rsdp_len);
	memcpy(hi, fw.tables, fw.tables_len);
	memcpy(fseg, fw.rsdp, fw.rsdp_len);
	files[0] = (struct blob){ ACPI_FW_CFG_TABLES, hi, fw.tables_len, 0x7ff00000 };
	files[1] = (struct blob){ ACPI_FW_CFG_RSDP, fseg, fw.rsdp_len, 0xf5a30 };
	/* checksums must come from the loader, not from the blobs */
	for (size_t off = 0; off < fw.loader_len; off += LOADER_ENTRY_SIZE)
		if (le(fw.loader + off, 4) == LOADER_CMD_ADD_CHECKSUM)
			blob_find(files, 2, (char *)fw.loader + off + 4)
				->data[le(fw.loader + off + 60, 4)] ^= 0x5a;
	run_loader(&fw, files, counts);
	assert_int_equal(counts[1], 2);
	assert_int_equal(counts[2], 9);
	assert_int_equal(counts[3], 7);

	s.r[0] = (struct region){ files[0].gpa, hi, fw.tables_len };
	s.r[1] = (struct region){ files[1].gpa, fseg, fw.rsdp_len };
	check_all(&s, files[1].gpa, ncpus);
	free(hi);
	free(fseg);
	acpi_fw_cfg_blobs_free(&fw);
	assert_null(fw.loader);
}

static void test_fw_cfg_1cpu(void **state)   { fw_cfg_ncpus(1); }
static void test_fw_cfg_255cpus(void **state) { fw_cfg_ncpus(255); }
static void test_fw_cfg_256cpus(void **state) { fw_cfg_ncpus(256); }
static void test_fw_cfg_300cpus(void **state) { fw_cfg_ncpus(300); }
static void test_fw_cfg_1024cpus(void **state) { fw_cfg_ncpus(ACPI_MAX_CPUS); }

/* The two outputs describe the same tables, only relocated. */
static void test_fw_cfg_matches_direct(void **state)
{
	struct acpi_fw_cfg_blobs fw;
	struct acpi_config cfg;
	struct guest_memory m;
	uint8_t *dsdt;

	fake_ram(&m, RAM_SIZE);
	acpi_config_default(&cfg, 4);
	assert_int_equal(acpi_install(&m, &cfg), 0);
	assert_int_equal(acpi_build_fw_cfg(&cfg, &fw), 0);
	dsdt = memmem(fw.tables, fw.tables_len, "DSDT", 4);
	assert_non_null(dsdt);
	assert_non_null(memmem(m.host + ACPI_TABLES_ADDR, 0x10000, dsdt, le(dsdt + 4, 4)));
	acpi_fw_cfg_blobs_free(&fw);
	free(m.host);
}

/* ---- iasl (acpica-tools) ---- */

static int run(const char *cmd)
{
	int rc = system(cmd);

	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static void iasl_check(const char *dir, const char *name, const uint8_t *t)
{
	char path[512], cmd[1200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(t, 1, le(t + 4, 4), f), le(t + 4, 4));
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat > %s.log 2>&1", dir, name, name);
	assert_int_equal(run(cmd), 0);
	/* the disassembly must say nothing is wrong */
	snprintf(cmd, sizeof(cmd), "grep -qiE 'error|warning|invalid|unknown' %s/%s.dsl", dir, name);
	assert_int_not_equal(run(cmd), 0);
}

static void iasl_ncpus(unsigned ncpus)
{
	char dir[] = "/tmp/test_acpi.XXXXXX", cmd[600];
	struct guest_memory m;
	struct acpi_config cfg;
	struct space s;
	struct found f;

	if (run("command -v iasl > /dev/null 2>&1") != 0)
		skip();
	fake_ram(&m, RAM_SIZE);
	acpi_config_default(&cfg, ncpus);
	assert_int_equal(acpi_install(&m, &cfg), 0);
	s = ram_space(&m);
	f = check_all(&s, ACPI_TABLES_ADDR, ncpus);
	assert_non_null(mkdtemp(dir));
	iasl_check(dir, "dsdt", f.dsdt);
	iasl_check(dir, "facp", f.fadt);
	iasl_check(dir, "apic", f.madt);
	/* the disassembled DSDT names what we wrote and compiles back */
	snprintf(cmd, sizeof(cmd), "grep -qF 'Name (\\_S5, Package (0x04)' %s/dsdt.dsl && "
		 "grep -q 'EisaId (\"PNP0A03\")' %s/dsdt.dsl && "
		 "grep -q 'Device (LNKA)' %s/dsdt.dsl", dir, dir, dir);
	assert_int_equal(run(cmd), 0);
	/* iasl decodes the x2APIC entries with the IDs we wrote */
	if (ncpus > XAPIC_ID_LIMIT) {
		snprintf(cmd, sizeof(cmd), "test $(grep -c 'Subtable Type : 09' %s/apic.dsl) -eq %u"
			 " && grep -q 'Processor x2Apic ID : %08X' %s/apic.dsl"
			 " && grep -q 'Subtable Type : 0A' %s/apic.dsl",
			 dir, ncpus - XAPIC_ID_LIMIT, ncpus - 1, dir, dir);
		assert_int_equal(run(cmd), 0);
	}
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -p recompiled dsdt.dsl > recompile.log 2>&1",
		 dir);
	assert_int_equal(run(cmd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	run(cmd);
	free(m.host);
}

static void test_iasl(void **state)        { iasl_ncpus(4); }
static void test_iasl_300cpus(void **state) { iasl_ncpus(300); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct_1cpu),
		cmocka_unit_test(test_direct_2cpus),
		cmocka_unit_test(test_direct_8cpus),
		cmocka_unit_test(test_direct_255cpus),
		cmocka_unit_test(test_direct_256cpus),
		cmocka_unit_test(test_direct_300cpus),
		cmocka_unit_test(test_direct_1024cpus),
		cmocka_unit_test(test_refuses_bad_config),
		cmocka_unit_test(test_refuses_missing_ram),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_fw_cfg_1cpu),
		cmocka_unit_test(test_fw_cfg_255cpus),
		cmocka_unit_test(test_fw_cfg_256cpus),
		cmocka_unit_test(test_fw_cfg_300cpus),
		cmocka_unit_test(test_fw_cfg_1024cpus),
		cmocka_unit_test(test_fw_cfg_matches_direct),
		cmocka_unit_test(test_iasl),
		cmocka_unit_test(test_iasl_300cpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
