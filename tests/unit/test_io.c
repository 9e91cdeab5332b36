/* Unit tests for the PIO/MMIO registration and dispatch table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>
#include "vmm/io.h"

struct fake_dev {
	uint64_t last_off, last_val;
	unsigned last_size, writes;
};

static uint64_t fake_read(void *opaque, uint64_t off, unsigned size)
{
	struct fake_dev *d = opaque;

	d->last_off = off;
	d->last_size = size;
	return 0x1122334455667788ULL;
}

static void fake_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct fake_dev *d = opaque;

	d->last_off = off;
	d->last_val = val;
	d->last_size = size;
	d->writes++;
}

static const struct io_ops fake_ops = { fake_read, fake_write };

static void test_dispatch_offsets(void **state)
{
	struct io_bus *bus = io_bus_new();
	struct fake_dev a = { 0 }, b = { 0 };
	uint32_t v = 0xdeadbeef;

	assert_int_equal(io_register(bus, IO_SPACE_PIO, 0x3f8, 8, &fake_ops, &a), 0);
	assert_int_equal(io_register(bus, IO_SPACE_PIO, 0x2f8, 8, &fake_ops, &b), 0);
	assert_true(io_dispatch(bus, IO_SPACE_PIO, 0x3fb, &v, 1, true));
	assert_int_equal(a.last_off, 3);
	assert_int_equal(a.last_val, 0xef);
	assert_int_equal(b.writes, 0);
	assert_true(io_dispatch(bus, IO_SPACE_PIO, 0x2f8, &v, 4, false));
	assert_int_equal(v, 0x55667788);
	assert_int_equal(b.last_size, 4);
	io_bus_free(bus);
}

static void test_unassigned_reads_ones(void **state)
{
	struct io_bus *bus = io_bus_new();
	uint16_t v = 0;

	assert_false(io_dispatch(bus, IO_SPACE_PIO, 0x1234, &v, 2, false));
	assert_int_equal(v, 0xffff);
	assert_false(io_dispatch(bus, IO_SPACE_MMIO, 0xfee00000, &v, 2, true));
	assert_false(io_dispatch(bus, IO_SPACE_PIO, 0x1234, &v, 0, false));
	assert_false(io_dispatch(bus, IO_SPACE_PIO, 0x1234, &v, 9, false));
	io_bus_free(bus);
}

static void test_overlap_and_unregister(void **state)
{
	struct io_bus *bus = io_bus_new();
	struct fake_dev a = { 0 };
	uint8_t v = 0;

	assert_int_equal(io_register(bus, IO_SPACE_MMIO, 0x1000, 0x100, &fake_ops, &a), 0);
	assert_int_equal(io_register(bus, IO_SPACE_MMIO, 0x10ff, 1, &fake_ops, &a), -EEXIST);
	assert_int_equal(io_register(bus, IO_SPACE_MMIO, 0xf00, 0x101, &fake_ops, &a), -EEXIST);
	assert_int_equal(io_register(bus, IO_SPACE_MMIO, 0xf00, 0x100, &fake_ops, &a), 0);
	assert_int_equal(io_register(bus, IO_SPACE_MMIO, 0, 0, &fake_ops, &a), -EINVAL);
	assert_int_equal(io_register(bus, IO_SPACE_MMIO, ~0ULL, 2, &fake_ops, &a), -EINVAL);
	/* the same range in the other space is independent */
	assert_int_equal(io_register(bus, IO_SPACE_PIO, 0x1000, 0x100, &fake_ops, &a), 0);
	assert_int_equal(io_unregister(bus, IO_SPACE_MMIO, 0x1000), 0);
	assert_false(io_dispatch(bus, IO_SPACE_MMIO, 0x1010, &v, 1, false));
	assert_true(io_dispatch(bus, IO_SPACE_MMIO, 0xf10, &v, 1, false));
	assert_int_equal(io_unregister(bus, IO_SPACE_MMIO, 0x1000), -ENOENT);
	io_bus_free(bus);
}

static void test_many_regions_sorted(void **state)
{
	struct io_bus *bus = io_bus_new();
	struct fake_dev d[100] = { 0 };
	uint8_t v = 0;

	/* registered in a scrambled order; each lookup must find its owner */
	for (unsigned i = 0; i < 100; i++) {
		unsigned k = (i * 37) % 100;
		assert_int_equal(io_register(bus, IO_SPACE_PIO, k * 16, 16, &fake_ops, &d[k]), 0);
	}
	for (unsigned k = 0; k < 100; k++) {
		assert_true(io_dispatch(bus, IO_SPACE_PIO, k * 16 + 5, &v, 1, true));
		assert_int_equal(d[k].writes, 1);
		assert_int_equal(d[k].last_off, 5);
	}
	io_bus_free(bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_offsets),
		cmocka_unit_test(test_unassigned_reads_ones),
		cmocka_unit_test(test_overlap_and_unregister),
		cmocka_unit_test(test_many_regions_sorted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
