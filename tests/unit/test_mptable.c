/* Tests for vmm/mptable.c: the MP floating pointer and configuration table
 * written into a fake guest RAM, walked entry by entry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/mptable.h"
#include "vmm/memory.h"
#include "vmm/platform.h"

#define RAM_SIZE (2 * MiB)

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

static void fake_ram(struct guest_memory *m, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	memory_layout(m, size);
	m->host = calloc(1, size);
	assert_non_null(m->host);
}

static int all_zero(const uint8_t *p, size_t len)
{
	while (len--)
		if (*p++)
			return 0;
	return 1;
}

struct counts {
	unsigned cpus, buses, ioapics, isa, pci, lint;
	int isa_pin[16];
	uint16_t isa_flags[16];
};

static void check_ncpus(unsigned ncpus)
{
	static const unsigned pirq[4] = PIRQ_DEFAULT_IRQS;
	struct guest_memory m;
	struct counts c = { 0 };
	uint8_t *f, *t, *p, ioapic_id = 0xee;
	uint16_t len, count;

	fake_ram(&m, RAM_SIZE);
	assert_int_equal(mptable_install(&m, ncpus), 0);

	f = m.host + MPTABLE_ADDR;
	assert_memory_equal(f, "_MP_", 4);
	assert_int_equal(sum8(f, 16), 0);
	assert_int_equal(f[8], 1);
	assert_int_equal(f[9], 4);
	assert_int_equal(f[11], 0);			/* config table present */
	assert_int_equal(le(f + 4, 4), MPTABLE_CONFIG_ADDR);

	t = m.host + MPTABLE_CONFIG_ADDR;
	assert_memory_equal(t, "PCMP", 4);
	len = le(t + 4, 2);
	assert_int_equal(len, mptable_config_size(ncpus));
	assert_true(MPTABLE_CONFIG_ADDR + len <= BIOS_AREA_START + BIOS_AREA_SIZE);
	assert_int_equal(t[6], 4);
	assert_int_equal(sum8(t, len), 0);
	assert_int_equal(le(t + 36, 4), LAPIC_BASE);
	count = le(t + 34, 2);

	memset(c.isa_pin, -1, sizeof(c.isa_pin));
	p = t + 44;
	for (unsigned i = 0; i < count; i++) {
		assert_true(p < t + len);
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], c.cpus);			/* APIC ID */
			assert_int_equal(p[3] & 1, 1);			/* enabled */
			assert_int_equal(!!(p[3] & 2), c.cpus == 0);	/* BSP */
			c.cpus++;
			p += 20;
			break;
		case 1:
			if (p[1] == MPTABLE_PCI_BUS_ID)
				assert_memory_equal(p + 2, "PCI   ", 6);
			else
				assert_memory_equal(p + 2, "ISA   ", 6);
			c.buses++;
			p += 8;
			break;
		case 2:
			ioapic_id = p[1];
			assert_int_equal(p[3] & 1, 1);
			assert_int_equal(le(p + 4, 4), IOAPIC_BASE);
			assert_true(ioapic_id >= ncpus);		/* no clash */
			assert_true(ioapic_id != 0xff);			/* not broadcast */
			c.ioapics++;
			p += 8;
			break;
		case 3:
			assert_int_equal(c.ioapics, 1);			/* declared first */
			assert_int_equal(p[1], 0);			/* INT */
			assert_int_equal(p[6], ioapic_id);
			if (p[4] == MPTABLE_ISA_BUS_ID) {
				assert_true(p[5] < 16);
				c.isa_pin[p[5]] = p[7];
				c.isa_flags[p[5]] = le(p + 2, 2);
				c.isa++;
			} else {
				unsigned slot = p[5] >> 2, pin = p[5] & 3;

				assert_int_equal(p[4], MPTABLE_PCI_BUS_ID);
				assert_true(slot >= 1 && slot < 32);
				if (slot == 1 && pin == 0)
					assert_int_equal(p[7], ACPI_SCI_IRQ);
				else
					assert_int_equal(p[7], pirq[(slot + pin - 1) & 3]);
				assert_int_equal(le(p + 2, 2), 0xd);	/* level, high */
				c.pci++;
			}
			p += 8;
			break;
		case 4:
			assert_int_equal(p[6], 0xff);			/* all CPUs */
			if (p[1] == 3)
				assert_int_equal(p[7], 0);		/* ExtINT on LINT0 */
			else {
				assert_int_equal(p[1], 1);		/* NMI on LINT1 */
				assert_int_equal(p[7], 1);
			}
			c.lint++;
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, t + len);
	assert_int_equal(c.cpus, ncpus);
	assert_int_equal(c.buses, 2);
	assert_int_equal(c.ioapics, 1);
	assert_int_equal(c.isa, 15);
	assert_int_equal(c.pci, 31 * 4);
	assert_int_equal(c.lint, 2);
	assert_int_equal(c.isa_pin[0], 2);		/* PIT on pin 2 */
	assert_int_equal(c.isa_pin[2], -1);		/* cascade: no entry */
	for (unsigned irq = 1; irq < 16; irq++)
		if (irq != 2)
			assert_int_equal(c.isa_pin[irq], irq);
	assert_int_equal(c.isa_flags[9], 0xd);
	assert_int_equal(c.isa_flags[4], 0);
	free(m.host);
}

static void test_1cpu(void **state)    { check_ncpus(1); }
static void test_2cpus(void **state)   { check_ncpus(2); }
static void test_8cpus(void **state)   { check_ncpus(8); }
static void test_254cpus(void **state) { check_ncpus(MPTABLE_MAX_CPUS); }

/* 8-bit APIC IDs run out: no MP table at all (ACPI describes the CPUs),
 * not an error; a floating pointer left from before a reset is wiped. */
static void check_omitted(unsigned ncpus)
{
	struct guest_memory m;

	fake_ram(&m, RAM_SIZE);
	memcpy(m.host + MPTABLE_ADDR, "_MP_", 4);
	assert_int_equal(mptable_config_size(ncpus), 0);
	assert_int_equal(mptable_install(&m, ncpus), 0);
	assert_true(all_zero(m.host, RAM_SIZE));
	free(m.host);
}

static void test_255cpus_omitted(void **state)  { check_omitted(255); }
static void test_256cpus_omitted(void **state)  { check_omitted(256); }
static void test_300cpus_omitted(void **state)  { check_omitted(300); }
static void test_1024cpus_omitted(void **state) { check_omitted(1024); }

static void test_refuses_bad_ncpus(void **state)
{
	struct guest_memory m;

	fake_ram(&m, RAM_SIZE);
	assert_int_equal(mptable_install(&m, 0), -EINVAL);
	assert_int_equal(mptable_config_size(MPTABLE_MAX_CPUS + 1), 0);
	assert_true(all_zero(m.host, RAM_SIZE));
	free(m.host);
}

static void test_refuses_missing_ram(void **state)
{
	struct guest_memory m;

	fake_ram(&m, RAM_SIZE);
	m.below_4g = MPTABLE_CONFIG_ADDR + 100;		/* config table would overflow */
	assert_int_equal(mptable_install(&m, 8), -EFAULT);
	assert_true(all_zero(m.host, RAM_SIZE));
	free(m.host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_1cpu),
		cmocka_unit_test(test_2cpus),
		cmocka_unit_test(test_8cpus),
		cmocka_unit_test(test_254cpus),
		cmocka_unit_test(test_255cpus_omitted),
		cmocka_unit_test(test_256cpus_omitted),
		cmocka_unit_test(test_300cpus_omitted),
		cmocka_unit_test(test_1024cpus_omitted),
		cmocka_unit_test(test_refuses_bad_ncpus),
		cmocka_unit_test(test_refuses_missing_ram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
