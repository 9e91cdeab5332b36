/* i440FX PAM decoding: register values to the map of 0xC0000-0xFFFFF
 * (what the KVM slots will be), as a pure function. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "hw/i440fx.h"

static void assert_range(const struct pam_range *r, uint32_t start, uint32_t size,
			 enum pam_map kind)
{
	assert_int_equal(r->start, start);
	assert_int_equal(r->size, size);
	assert_int_equal(r->kind, kind);
}

static void test_segment_layout(void **state)
{
	uint32_t start, size, total = 0;
	unsigned reg, shift;

	pam_segment(0, &start, &size, &reg, &shift);
	assert_true(start == 0xc0000 && size == 0x4000 && reg == 1 && shift == 0);
	pam_segment(1, &start, &size, &reg, &shift);
	assert_true(start == 0xc4000 && reg == 1 && shift == 4);
	pam_segment(11, &start, &size, &reg, &shift);
	assert_true(start == 0xec000 && reg == 6 && shift == 4);
	pam_segment(12, &start, &size, &reg, &shift);
	assert_true(start == 0xf0000 && size == 0x10000 && reg == 0 && shift == 4);
	for (unsigned i = 0; i < PAM_SEGMENTS; i++) {
		pam_segment(i, &start, &size, &reg, &shift);
		assert_int_equal(start, PAM_AREA_START + total);
		total += size;
	}
	assert_int_equal(total, PAM_AREA_END - PAM_AREA_START);
}

static void test_reset_state_shows_rom(void **state)
{
	const uint8_t pam[7] = { 0 };
	struct pam_range r[PAM_SEGMENTS];

	/* 256 KiB image: only its last 128 KiB appear below 1 MiB. */
	assert_int_equal(pam_compute_map(pam, 256 * 1024, r), 2);
	assert_range(&r[0], 0xc0000, 0x20000, PAM_MAP_NONE);
	assert_range(&r[1], 0xe0000, 0x20000, PAM_MAP_ROM);
	/* 64 KiB image: only the F segment. */
	assert_int_equal(pam_compute_map(pam, 64 * 1024, r), 2);
	assert_range(&r[0], 0xc0000, 0x30000, PAM_MAP_NONE);
	assert_range(&r[1], 0xf0000, 0x10000, PAM_MAP_ROM);
	/* No image (direct boot layout): nothing. */
	assert_int_equal(pam_compute_map(pam, 0, r), 1);
	assert_range(&r[0], 0xc0000, 0x40000, PAM_MAP_NONE);
}

static void test_seabios_shadow_enable(void **state)
{
	/* SeaBIOS make_bios_writable: PAM1..6 = 0x33, PAM0 = 0x30. */
	const uint8_t pam[7] = { 0x30, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33 };
	struct pam_range r[PAM_SEGMENTS];

	assert_int_equal(pam_compute_map(pam, 128 * 1024, r), 1);
	assert_range(&r[0], 0xc0000, 0x40000, PAM_MAP_RAM_RW);
	/* PAM0 low nibble is reserved: ignored. */
	assert_int_equal(pam_segment_mode(pam, 12), PAM_READ_WRITE);
}

static void test_mixed_modes_merge(void **state)
{
	/* F: RO; EC000: RO; E8000: RW; E0000-E7FFF: disabled (ROM);
	 * C0000-C3FFF: write-only (treated as RW); rest disabled. */
	const uint8_t pam[7] = { 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x13 };
	struct pam_range r[PAM_SEGMENTS];
	unsigned n = pam_compute_map(pam, 128 * 1024, r);

	assert_int_equal(n, 5);
	assert_range(&r[0], 0xc0000, 0x4000, PAM_MAP_RAM_RW);
	assert_range(&r[1], 0xc4000, 0x1c000, PAM_MAP_NONE);
	assert_range(&r[2], 0xe0000, 0x8000, PAM_MAP_ROM);
	assert_range(&r[3], 0xe8000, 0x4000, PAM_MAP_RAM_RW);
	assert_range(&r[4], 0xec000, 0x14000, PAM_MAP_RAM_RO);
	assert_int_equal(pam_segment_mode(pam, 0), PAM_WRITE_ONLY);
}

static void test_alternating_never_exceeds_segments(void **state)
{
	const uint8_t pam[7] = { 0x10, 0x31, 0x31, 0x31, 0x31, 0x31, 0x31 };
	struct pam_range r[PAM_SEGMENTS];
	unsigned n = pam_compute_map(pam, 128 * 1024, r);
	uint32_t next = PAM_AREA_START;

	assert_int_equal(n, PAM_SEGMENTS);	/* RO, RW, ..., EC000 RW, F RO */
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(r[i].start, next);
		next += r[i].size;
		if (i)
			assert_int_not_equal(r[i].kind, r[i - 1].kind);
	}
	assert_int_equal(next, PAM_AREA_END);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segment_layout),
		cmocka_unit_test(test_reset_state_shows_rom),
		cmocka_unit_test(test_seabios_shadow_enable),
		cmocka_unit_test(test_mixed_modes_merge),
		cmocka_unit_test(test_alternating_never_exceeds_segments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
