/* Unit tests for hw/port92.c: the system control port A model (A20 latch,
 * fast reset on a 0->1 edge of bit 0) with a fake reset hook, its migration
 * state, then the glue on a VM shell (I/O bus, no KVM). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include "hw/port92.h"
#include "vmm/device.h"
#include "vmm/io.h"
#include "vmm/platform.h"
#include "vmm/vm.h"

static void count_reset(void *opaque)
{
	(*(int *)opaque)++;
}

static void test_power_on_state(void **state)
{
	struct port92 p;

	port92_init(&p, NULL);
	assert_int_equal(port92_read(&p), 0);	/* QEMU: A20 off here, on in the i8042 */
	assert_false(port92_a20_enabled(&p));
	port92_destroy(&p);
}

static void test_a20_latch_reads_back(void **state)
{
	int resets = 0;
	struct port92_hooks hooks = { .reset_request = count_reset, .opaque = &resets };
	struct port92 p;

	port92_init(&p, &hooks);
	port92_write(&p, PORT92_A20);
	assert_true(port92_a20_enabled(&p));
	assert_int_equal(port92_read(&p), PORT92_A20);
	port92_write(&p, 0x00);
	assert_false(port92_a20_enabled(&p));
	port92_write(&p, 0xf2);			/* other bits read back as written */
	assert_int_equal(port92_read(&p), 0xf2);
	assert_int_equal(resets, 0);
	port92_destroy(&p);
}

static void test_fast_reset_edge(void **state)
{
	int resets = 0;
	struct port92_hooks hooks = { .reset_request = count_reset, .opaque = &resets };
	struct port92 p;

	port92_init(&p, &hooks);
	port92_write(&p, PORT92_A20 | PORT92_FAST_RESET);	/* 0 -> 1: reset */
	assert_int_equal(resets, 1);
	assert_true(port92_a20_enabled(&p));
	port92_write(&p, PORT92_A20 | PORT92_FAST_RESET);	/* 1 -> 1: nothing */
	assert_int_equal(resets, 1);
	port92_write(&p, PORT92_A20);				/* 1 -> 0: nothing */
	assert_int_equal(resets, 1);
	port92_write(&p, PORT92_FAST_RESET);			/* 0 -> 1 again */
	assert_int_equal(resets, 2);
	/* The system reset drops bit 0 and keeps A20, so the next edge works. */
	port92_write(&p, PORT92_A20 | PORT92_FAST_RESET);
	assert_int_equal(resets, 2);
	port92_reset(&p);
	assert_int_equal(port92_read(&p), PORT92_A20);
	port92_write(&p, PORT92_A20 | PORT92_FAST_RESET);
	assert_int_equal(resets, 3);
	port92_destroy(&p);
}

static void test_no_hook_is_harmless(void **state)
{
	struct port92 p;

	port92_init(&p, NULL);
	port92_write(&p, PORT92_FAST_RESET);
	assert_int_equal(port92_read(&p), PORT92_FAST_RESET);
	port92_destroy(&p);
}

static void test_vmstate_round_trip(void **state)
{
	int resets = 0;
	struct port92_hooks hooks = { .reset_request = count_reset, .opaque = &resets };
	struct port92 src, dst;
	uint8_t buf[16];
	char err[128];
	size_t n;

	assert_true(vmstate_size(&port92_vmstate) <= sizeof(buf));
	port92_init(&src, NULL);
	port92_init(&dst, &hooks);
	port92_write(&src, PORT92_A20 | PORT92_FAST_RESET);
	n = vmstate_save(&port92_vmstate, &src.s, buf);
	assert_int_equal(vmstate_load(&port92_vmstate, &dst.s, sizeof(dst.s), buf, n,
				      err, sizeof(err)), 0);
	assert_int_equal(port92_read(&dst), PORT92_A20 | PORT92_FAST_RESET);
	/* Bit 0 was already set on the source: writing it again is no edge. */
	port92_write(&dst, PORT92_A20 | PORT92_FAST_RESET);
	assert_int_equal(resets, 0);
	assert_int_not_equal(vmstate_load(&port92_vmstate, &dst.s, sizeof(dst.s), buf, n - 1,
					  err, sizeof(err)), 0);
	port92_destroy(&src);
	port92_destroy(&dst);
}

/* The glue on a VM with only an I/O bus and the lifecycle lock. */
static void test_glue_on_vm(void **state)
{
	struct vm_config cfg = { 0 };
	struct vm vm = { 0 };
	uint32_t v;

	vm.cfg = &cfg;
	vm.io = io_bus_new();
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.cond, NULL);
	assert_int_equal(port92_setup(&vm), 0);

	v = PORT92_A20;
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, PORT92_PORT, &v, 1, true));
	v = 0;
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, PORT92_PORT, &v, 1, false));
	assert_int_equal(v, PORT92_A20);
	assert_false(vm.reset_requested);
	v = PORT92_A20 | PORT92_FAST_RESET;
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, PORT92_PORT, &v, 1, true));
	assert_true(vm.reset_requested);
	assert_int_equal(vm.exit_reason, VM_RUNNING);
	assert_false(io_dispatch(vm.io, IO_SPACE_PIO, PORT92_PORT + 1, &v, 1, false));
	for (struct reset_hook *h = vm.reset_hooks; h; h = h->next)
		h->reset(h->opaque);
	v = 0;
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, PORT92_PORT, &v, 1, false));
	assert_int_equal(v, PORT92_A20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_on_state),
		cmocka_unit_test(test_a20_latch_reads_back),
		cmocka_unit_test(test_fast_reset_edge),
		cmocka_unit_test(test_no_hook_is_harmless),
		cmocka_unit_test(test_vmstate_round_trip),
		cmocka_unit_test(test_glue_on_vm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
