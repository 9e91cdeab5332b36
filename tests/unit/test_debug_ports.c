/* Unit tests for hw/debug_ports.c: the debugcon, POST and isa-debug-exit
 * models directly, then the glue on a VM shell (I/O bus, no KVM). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "hw/debug_ports.h"
#include "vmm/chardev.h"
#include "vmm/platform.h"
#include "vmm/vm.h"

static int last_code = -1;

static void record_poweroff(void *opaque, int code)
{
	last_code = code;
	(*(int *)opaque)++;
}

static void test_debug_exit_semantics(void **state)
{
	int calls = 0;
	struct debug_exit e = { .poweroff = record_poweroff, .opaque = &calls };

	debug_exit_write(&e, 0, 1);
	assert_int_equal(last_code, 1);
	debug_exit_write(&e, 0x10, 1);
	assert_int_equal(last_code, 0x21);
	debug_exit_write(&e, 0x1234, 1);		/* byte access keeps the low byte */
	assert_int_equal(last_code, (0x34 << 1) | 1);
	debug_exit_write(&e, 0x1234, 2);
	assert_int_equal(last_code, (0x1234 << 1) | 1);
	assert_int_equal(calls, 4);
}

static void test_post_latch(void **state)
{
	struct post_port p = { 0 };

	post_port_write(&p, 0x12);
	post_port_write(&p, 0xab);
	assert_int_equal(p.last, 0xab);
	assert_int_equal(p.writes, 2);
	assert_int_equal(p.valid, 1);
	assert_int_equal(post_port_read(&p), 0xff);
}

static void test_debugcon_model(void **state)
{
	char path[128], spec[160], err[256], got[16] = "";
	struct debugcon d = { .readback = DEBUGCON_READBACK };
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/minikvm-test-debugcon-%d", (int)getpid());
	snprintf(spec, sizeof(spec), "file:%s", path);
	assert_int_equal(debugcon_read(&d, 0, 1), 0xe9);
	debugcon_write(&d, 0, 'x', 1);		/* no backend: dropped */
	d.chr = chardev_open(spec, err, sizeof(err));
	assert_non_null(d.chr);
	debugcon_write(&d, 0, 'o', 1);
	debugcon_write(&d, 0, 'k' | ('!' << 8), 2);
	chardev_close(d.chr);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(got, 1, sizeof(got) - 1, f), 3);
	fclose(f);
	assert_string_equal(got, "ok!");
	unlink(path);
}

/* The glue on a VM with only an I/O bus and the lifecycle lock. */
static void test_glue_on_vm(void **state)
{
	char path[128], spec[160], got[16] = "";
	struct vm_config cfg = { 0 };
	struct vm vm = { 0 };
	uint32_t v;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/minikvm-test-debugcon-glue-%d", (int)getpid());
	snprintf(spec, sizeof(spec), "file:%s", path);
	cfg.debugcon = spec;
	cfg.exit_port = true;
	cfg.exit_port_base = 0xf4;
	cfg.exit_port_size = 4;
	vm.cfg = &cfg;
	vm.io = io_bus_new();
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.cond, NULL);
	assert_int_equal(debug_ports_setup(&vm), 0);

	v = 0;
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, DEBUGCON_PORT, &v, 1, false));
	assert_int_equal(v, 0xe9);
	v = 'S';
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, DEBUGCON_PORT, &v, 1, true));
	v = 0x55;
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, POST_PORT, &v, 1, true));
	assert_int_equal(debug_post_port.last, 0x55);
	assert_int_equal(vm.exit_reason, VM_RUNNING);
	v = 0x02;
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, 0xf4, &v, 4, true));
	assert_int_equal(vm.exit_reason, VM_POWEROFF);
	assert_int_equal(vm.exit_code, 5);
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, 0xf7, &v, 1, true));	/* inside iosize */
	assert_false(io_dispatch(vm.io, IO_SPACE_PIO, 0xf8, &v, 1, true));
	for (struct reset_hook *h = vm.reset_hooks; h; h = h->next)
		h->reset(h->opaque);
	assert_int_equal(debug_post_port.valid, 0);

	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(got, 1, sizeof(got) - 1, f), 1);
	fclose(f);
	assert_string_equal(got, "S");
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_debug_exit_semantics),
		cmocka_unit_test(test_post_latch),
		cmocka_unit_test(test_debugcon_model),
		cmocka_unit_test(test_glue_on_vm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
