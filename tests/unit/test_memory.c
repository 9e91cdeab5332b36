/* Unit tests for the PC memory layout, e820 table and guest access. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include "vmm/memory.h"
#include "vmm/platform.h"

static uint64_t e820_total(const struct guest_memory *m, uint32_t type)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < m->n_e820; i++)
		if (m->e820[i].type == type)
			t += m->e820[i].size;
	return t;
}

static void assert_sorted_disjoint(const struct guest_memory *m)
{
	for (unsigned i = 1; i < m->n_e820; i++)
		assert_true(m->e820[i - 1].addr + m->e820[i - 1].size <= m->e820[i].addr);
}

static void test_small_ram(void **state)
{
	struct guest_memory m = { 0 };

	memory_layout(&m, 64 * MiB);
	assert_int_equal(m.below_4g, 64 * MiB);
	assert_int_equal(m.above_4g, 0);
	assert_int_equal(m.e820[0].addr, 0);
	assert_int_equal(m.e820[0].size, EBDA_START);
	assert_int_equal(m.e820[0].type, E820_RAM);
	/* all RAM except the legacy area below 1 MiB is usable */
	assert_int_equal(e820_total(&m, E820_RAM), 64 * MiB - MiB + EBDA_START);
	assert_sorted_disjoint(&m);
}

static void test_large_ram_splits_at_pci_hole(void **state)
{
	struct guest_memory m = { 0 };

	memory_layout(&m, 8 * GiB);
	assert_int_equal(m.below_4g, PCI_HOLE_START);
	assert_int_equal(m.above_4g, 8 * GiB - PCI_HOLE_START);
	assert_int_equal(m.e820[m.n_e820 - 1].addr, HIGH_RAM_START);
	assert_int_equal(m.e820[m.n_e820 - 1].size, m.above_4g);
	for (unsigned i = 0; i < m.n_e820; i++)
		if (m.e820[i].type == E820_RAM)
			assert_true(m.e820[i].addr + m.e820[i].size <= PCI_HOLE_START ||
				    m.e820[i].addr >= HIGH_RAM_START);
	assert_sorted_disjoint(&m);
}

static void test_gpa_translation(void **state)
{
	struct guest_memory m = { 0 };
	static uint8_t fake[16];

	memory_layout(&m, 4 * GiB);
	m.host = fake;	/* only pointer arithmetic is checked */
	assert_int_equal((uintptr_t)gpa_to_hva(&m, 0x1000, 16) - (uintptr_t)fake, 0x1000);
	assert_int_equal((uintptr_t)gpa_to_hva(&m, HIGH_RAM_START, 1) - (uintptr_t)fake,
			 PCI_HOLE_START);
	assert_null(gpa_to_hva(&m, PCI_HOLE_START, 1));		/* in the hole */
	assert_null(gpa_to_hva(&m, PCI_HOLE_START - 8, 16));	/* straddles it */
	assert_null(gpa_to_hva(&m, HIGH_RAM_START + GiB, 1));	/* past the end */
	assert_null(gpa_to_hva(&m, ~0ULL - 4, 16));		/* wraps */
}

static void test_e820_add_keeps_order(void **state)
{
	struct guest_memory m = { 0 };
	unsigned n;

	memory_layout(&m, 256 * MiB);
	n = m.n_e820;
	assert_int_equal(e820_add(&m, 0xfec00000, 0x1000, E820_RESERVED), 0);
	assert_int_equal(m.n_e820, n + 1);
	/* a range inside an existing reserved entry is not duplicated */
	assert_int_equal(e820_add(&m, BIOS_AREA_START + 0x100, 0x100, E820_RESERVED), 0);
	assert_int_equal(m.n_e820, n + 1);
	assert_sorted_disjoint(&m);
	while (m.n_e820 < E820_MAX)
		assert_int_equal(e820_add(&m, 0xfed00000 + m.n_e820 * 0x1000, 0x1000, E820_RESERVED), 0);
	assert_int_not_equal(e820_add(&m, 0xff000000, 0x1000, E820_RESERVED), 0);
}

static void test_alloc_64g_sparse(void **state)
{
	struct guest_memory m = { 0 };
	char err[128];

	/* 64 GiB on a smaller host: pages are only reserved, never touched */
	assert_int_equal(memory_alloc(&m, 64 * GiB, err, sizeof(err)), 0);
	assert_int_equal(guest_write(&m, HIGH_RAM_START + 60 * GiB, "abc", 3), 0);
	char back[3];
	assert_int_equal(guest_read(&m, HIGH_RAM_START + 60 * GiB, back, 3), 0);
	assert_memory_equal(back, "abc", 3);
	assert_int_not_equal(guest_write(&m, PCI_HOLE_START, "x", 1), 0);
	memory_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_ram),
		cmocka_unit_test(test_large_ram_splits_at_pci_hole),
		cmocka_unit_test(test_gpa_translation),
		cmocka_unit_test(test_e820_add_keeps_order),
		cmocka_unit_test(test_alloc_64g_sparse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
