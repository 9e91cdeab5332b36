/* Unit tests for the QEMU-compatible command line parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "vmm/config.h"

static struct vm_config cfg;
static char err[256];

static int parse(const char *first, ...)
{
	char *argv[64] = { "minikvm" };
	int argc = 1;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	err[0] = 0;
	return cli_parse(argc, argv, &cfg, err, sizeof(err));
}

static void test_defaults(void **state)
{
	assert_int_equal(parse(NULL), 0);
	assert_int_equal(cfg.ram_size, 128ULL << 20);
	assert_int_equal(cfg.ncpus, 1);
	assert_int_equal(cfg.n_serial, 0);
	assert_null(cfg.kernel);
}

static void test_memory_sizes(void **state)
{
	assert_int_equal(parse("-m", "64", NULL), 0);
	assert_int_equal(cfg.ram_size, 64ULL << 20);
	assert_int_equal(parse("-m", "64M", NULL), 0);
	assert_int_equal(cfg.ram_size, 64ULL << 20);
	assert_int_equal(parse("-m", "size=2G", NULL), 0);
	assert_int_equal(cfg.ram_size, 2ULL << 30);
	assert_int_equal(parse("-m", "64G", NULL), 0);
	assert_int_equal(cfg.ram_size, 64ULL << 30);
	assert_int_equal(parse("-m", "1.5G", NULL), 0);
	assert_int_equal(cfg.ram_size, 3ULL << 29);
	assert_int_equal(parse("--m", "32MiB", NULL), 0);
	assert_int_equal(cfg.ram_size, 32ULL << 20);
}

static void test_bad_memory(void **state)
{
	assert_int_equal(parse("-m", "banana", NULL), -1);
	assert_non_null(strstr(err, "-m"));
	assert_int_equal(parse("-m", "-5", NULL), -1);
	assert_int_equal(parse("-m", "12Q", NULL), -1);
	assert_int_equal(parse("-m", "0", NULL), -1);
	assert_int_equal(parse("-m", "99999999T", NULL), -1);
	assert_int_equal(parse("-m", NULL), -1);
	assert_non_null(strstr(err, "needs an argument"));
}

static void test_smp(void **state)
{
	assert_int_equal(parse("-smp", "4", NULL), 0);
	assert_int_equal(cfg.ncpus, 4);
	assert_int_equal(parse("-smp", "cpus=2,sockets=1,cores=2,threads=1", NULL), 0);
	assert_int_equal(cfg.ncpus, 2);
	assert_int_equal(cfg.cores, 2);
	assert_int_equal(parse("-smp", "0", NULL), -1);
	assert_int_equal(parse("-smp", "4,maxcpus=2", NULL), -1);
	assert_int_equal(parse("-smp", "2,bogus=1", NULL), -1);
	assert_int_equal(parse("-smp", "100000", NULL), -1);
}

static void test_cpu(void **state)
{
	assert_int_equal(parse("-cpu", "host,-arch-capabilities,+x2apic,kvm-pv-eoi=off", NULL), 0);
	assert_int_equal(cfg.n_cpu_edits, 3);
	assert_string_equal(cfg.cpu_edits[0].name, "arch-capabilities");
	assert_false(cfg.cpu_edits[0].enable);
	assert_true(cfg.cpu_edits[1].enable);
	assert_false(cfg.cpu_edits[2].enable);
	assert_int_equal(parse("-cpu", "host,+frobnicate", NULL), -1);
	assert_non_null(strstr(err, "frobnicate"));
	assert_int_equal(parse("-cpu", "pentium2", NULL), -1);
	assert_int_equal(parse("-cpu", "host,xsave=maybe", NULL), -1);
}

static void test_kernel_boot(void **state)
{
	assert_int_equal(parse("-kernel", "k", "-initrd", "i", "-append", "console=ttyS0", NULL), 0);
	assert_string_equal(cfg.kernel, "k");
	assert_string_equal(cfg.initrd, "i");
	assert_string_equal(cfg.append, "console=ttyS0");
	assert_int_equal(parse("-initrd", "i", NULL), -1);
	assert_non_null(strstr(err, "-kernel"));
}

static void test_serial_and_nographic(void **state)
{
	assert_int_equal(parse("-nographic", NULL), 0);
	assert_int_equal(cfg.n_serial, 1);
	assert_string_equal(cfg.serial[0], "mon:stdio");
	assert_int_equal(parse("-nographic", "-nodefaults", NULL), 0);
	assert_int_equal(cfg.n_serial, 0);
	assert_int_equal(parse("-nographic", "-serial", "file:/tmp/x", "-serial", "null", NULL), 0);
	assert_int_equal(cfg.n_serial, 2);
	assert_string_equal(cfg.serial[0], "file:/tmp/x");
	assert_int_equal(parse("-serial", "none", NULL), 0);
	assert_null(cfg.serial[0]);
	assert_int_equal(parse("-serial", "a", "-serial", "b", "-serial", "c", "-serial", "d",
			       "-serial", "e", NULL), -1);
}

static void test_exit_device(void **state)
{
	assert_int_equal(parse("-device", "isa-debug-exit,iobase=0xf4,iosize=4", NULL), 0);
	assert_true(cfg.exit_port);
	assert_int_equal(cfg.exit_port_base, 0xf4);
	assert_int_equal(cfg.exit_port_size, 4);
	assert_int_equal(parse("-device", "isa-debug-exit", NULL), 0);
	assert_int_equal(cfg.exit_port_base, 0x501);
	assert_int_equal(parse("-device", "isa-debug-exit,iobase=0x10000", NULL), -1);
	assert_int_equal(parse("-device", "e1000", NULL), -1);
	assert_non_null(strstr(err, "e1000"));
	assert_non_null(strstr(err, "supported: isa-debug-exit, virtio-blk-pci"));
}

/* Models registered by hw/ say which keys a -device spec may carry; the
 * spec is kept for the model. */
static void test_device_models(void **state)
{
	assert_int_equal(parse("-device", "virtio-blk-pci,drive=d0,size-max=64K,addr=5,id=x",
			       NULL), 0);
	assert_int_equal(cfg.n_devices, 1);
	assert_string_equal(cfg.devices[0], "virtio-blk-pci,drive=d0,size-max=64K,addr=5,id=x");
	assert_int_equal(parse("-device", "virtio-blk-pci,drive=d0,netdev=n0", NULL), -1);
	assert_non_null(strstr(err, "virtio-blk-pci: unknown or bad parameter 'netdev'"));
	assert_int_equal(parse("-device", "virtio-net-pci,netdev=n0,host_mtu=9000", NULL), 0);
	assert_int_equal(parse("-device", "virtio-rng-pci,drive=d0", NULL), -1);
	assert_int_equal(parse("-device", "help", NULL), 1);
}

static void test_misc_options(void **state)
{
	assert_int_equal(parse("-enable-kvm", "-machine", "pc,accel=kvm", "-M", "pc-i440fx-7.2",
			       "-accel", "kvm", "-display", "none", "-name", "guest=vm1",
			       "-uuid", "12345678-9abc-def0-1234-56789abcdef0", "-no-reboot",
			       "-rtc", "base=localtime", "-boot", "order=cd", "-vga", "none", NULL), 0);
	assert_string_equal(cfg.name, "vm1");
	assert_true(cfg.has_uuid);
	assert_int_equal(cfg.uuid[0], 0x12);
	assert_int_equal(cfg.uuid[15], 0xf0);
	assert_true(cfg.no_reboot);
	assert_true(cfg.rtc_localtime);
	assert_string_equal(cfg.boot_order, "cd");
	assert_int_equal(parse("-machine", "q35", NULL), -1);
	assert_int_equal(parse("-accel", "tcg", NULL), -1);
	assert_int_equal(parse("-uuid", "not-a-uuid", NULL), -1);
	assert_int_equal(parse("-boot", "order=xyz", NULL), -1);
	assert_int_equal(parse("-display", "gtk", NULL), -1);
	assert_int_equal(parse("-d", "nonsense", NULL), -1);
}

/* Values taken from key=value lists must outlive the parse (they once
 * pointed into a stack buffer reused by the next option). */
static void test_values_outlive_parse(void **state)
{
	assert_int_equal(parse("-boot", "order=dc", "-smp", "cpus=2,sockets=1", "-cpu", "host",
			       "-rtc", "base=utc", NULL), 0);
	assert_string_equal(cfg.boot_order, "dc");
	assert_string_equal(cfg.cpu_model, "host");
}

static void test_unknown_and_stray(void **state)
{
	assert_int_equal(parse("-frobnicate", NULL), -1);
	assert_non_null(strstr(err, "unknown option"));
	assert_int_equal(parse("disk.img", NULL), -1);
	assert_int_equal(parse("-", NULL), -1);
	assert_int_equal(parse("--help", NULL), 1);
	assert_int_equal(parse("-version", NULL), 1);
}

/* The key=value syntax every such option shares (vmm/opts.c). */
static void test_option_syntax(void **state)
{
	char big[4200], many[200] = "1";

	/* Implied first key, repeated keys (applied in turn: the last wins),
	 * an empty trailing item. */
	assert_int_equal(parse("-m", "size=64M,size=32M", "-smp", "2,", NULL), 0);
	assert_int_equal(cfg.ram_size, 32ULL << 20);
	assert_int_equal(cfg.ncpus, 2);
	assert_int_equal(parse("-m", "64,slots=2", NULL), -1);
	assert_string_equal(err, "-m: memory hotplug (slots=) is not supported");
	/* ",," is a comma: here inside the first, bare word. */
	assert_int_equal(parse("-cpu", "host,,x", NULL), -1);
	assert_non_null(strstr(err, "unsupported CPU model 'host,x'"));
	/* Booleans as QEMU reads them. */
	assert_int_equal(parse("-boot", "menu=y,strict=no", "-cpu", "host,x2apic=yes", NULL), 0);
	assert_true(cfg.boot_menu);
	assert_false(cfg.boot_strict);
	assert_true(cfg.cpu_edits[0].enable);
	assert_int_equal(parse("-boot", "menu=1", NULL), -1);
	assert_string_equal(err, "-boot: parameter 'menu' expects 'on' or 'off'");
	/* Bounds. */
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(parse("-smp", big, NULL), -1);
	assert_string_equal(err, "-smp: argument too long (at most 4095 characters)");
	for (int i = 0; i < 64; i++)
		strcat(many, ",dies=1");
	assert_int_equal(parse("-smp", many, NULL), -1);
	assert_string_equal(err, "-smp: too many items (at most 64)");
	many[strlen(many) - 7] = 0;
	assert_int_equal(parse("-smp", many, NULL), 0);
	/* Numbers: a digit first. */
	assert_int_equal(parse("-smp", "0x4", NULL), 0);
	assert_int_equal(cfg.ncpus, 4);
	assert_int_equal(parse("-smp", "+4", NULL), -1);
	assert_int_equal(parse("-smp", "cpus=", NULL), -1);
	assert_string_equal(err, "-smp: invalid value for cpus: '' (1 to 1024)");
}

static void test_size_parser(void **state)
{
	uint64_t v;

	assert_int_equal(parse_size("4k", 'M', &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("1T", 'M', &v), 0);
	assert_int_equal(v, 1ULL << 40);
	assert_int_equal(parse_size("", 'M', &v), -1);
	assert_int_equal(parse_size("1MX", 'M', &v), -1);
	assert_int_equal(parse_size(" 1", 'M', &v), -1);
	assert_int_equal(parse_size("nan", 'M', &v), -1);
	assert_int_equal(parse_size("1e3", 'M', &v), -1);
	assert_int_equal(parse("-m", "nan", NULL), -1);
	assert_string_equal(err, "-m: invalid RAM size 'nan'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_memory_sizes),
		cmocka_unit_test(test_bad_memory),
		cmocka_unit_test(test_smp),
		cmocka_unit_test(test_cpu),
		cmocka_unit_test(test_kernel_boot),
		cmocka_unit_test(test_serial_and_nographic),
		cmocka_unit_test(test_exit_device),
		cmocka_unit_test(test_device_models),
		cmocka_unit_test(test_misc_options),
		cmocka_unit_test(test_values_outlive_parse),
		cmocka_unit_test(test_unknown_and_stray),
		cmocka_unit_test(test_option_syntax),
		cmocka_unit_test(test_size_parser),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
