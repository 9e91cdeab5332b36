/* The boot order list and fw_cfg's "bootorder" file: sorting by
 * bootindex, QEMU's duplicate rule, the exact bytes QEMU 7.2 serves (paths
 * separated by '\n', NUL-ended, "HALT" for strict), the OpenFirmware PCI
 * paths, bootindex parsing, and the -boot items read through the fw_cfg
 * guest interface after devices registered late. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hw/bootorder.h"
#include "hw/fw_cfg.h"
#include "vmm/config.h"

#define BLK4 "/pci@i0cf8/scsi@4/disk@0,0"
#define BLK5 "/pci@i0cf8/scsi@5/disk@0,0"
#define NET6 "/pci@i0cf8/ethernet@6/ethernet-phy@0"

static void assert_file(const struct bootorder *b, const char *want, size_t want_len)
{
	char *data;
	size_t len;

	assert_int_equal(bootorder_build(b, &data, &len), 0);
	assert_int_equal(len, want_len);
	if (want_len)
		assert_memory_equal(data, want, want_len);
	else
		assert_null(data);
	free(data);
}

static void test_empty_list_is_an_empty_file(void **state)
{
	struct bootorder b;

	bootorder_init(&b);
	assert_file(&b, NULL, 0);
	/* strict=on adds HALT only after a non-empty list, like QEMU. */
	b.strict = true;
	assert_file(&b, NULL, 0);
}

static void test_sorted_by_index_with_qemu_layout(void **state)
{
	static const char want[] = BLK5 "\n" NET6 "\n" BLK4;
	struct bootorder b;

	bootorder_init(&b);
	assert_int_equal(bootorder_add(&b, 3, BLK4), 0);
	assert_int_equal(bootorder_add(&b, 1, BLK5), 0);
	assert_int_equal(bootorder_add(&b, 2, NET6), 0);
	assert_int_equal(b.n, 3);
	/* sizeof(want) counts the final NUL, which QEMU serves too. */
	assert_file(&b, want, sizeof(want));
}

static void test_strict_appends_halt(void **state)
{
	static const char want[] = BLK5 "\n" BLK4 "\nHALT";
	struct bootorder b;

	bootorder_init(&b);
	b.strict = true;
	assert_int_equal(bootorder_add(&b, 7, BLK4), 0);
	assert_int_equal(bootorder_add(&b, 0, BLK5), 0);
	assert_file(&b, want, sizeof(want));
}

static void test_duplicate_and_negative_index(void **state)
{
	static const char want[] = BLK4;
	struct bootorder b;

	bootorder_init(&b);
	assert_int_equal(bootorder_add(&b, 1, BLK4), 0);
	assert_int_equal(bootorder_add(&b, 1, BLK5), -EEXIST);
	/* Negative: no entry (QEMU's default bootindex is -1), no error. */
	assert_int_equal(bootorder_add(&b, -1, NET6), 0);
	assert_int_equal(bootorder_add(&b, -5, BLK5), 0);
	assert_int_equal(b.n, 1);
	assert_file(&b, want, sizeof(want));
}

static void test_bounds(void **state)
{
	struct bootorder b;
	char longpath[BOOTORDER_PATH_MAX + 8];

	bootorder_init(&b);
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = 0;
	assert_int_equal(bootorder_add(&b, 1, longpath), -EINVAL);
	assert_int_equal(bootorder_add(&b, 1, ""), -EINVAL);
	for (int i = 0; i < BOOTORDER_MAX; i++)
		assert_int_equal(bootorder_add(&b, BOOTORDER_MAX - i, BLK4), 0);
	assert_int_equal(bootorder_add(&b, 1000, BLK4), -ENOSPC);
	assert_int_equal(b.entries[0].index, 1);
	assert_int_equal(b.entries[BOOTORDER_MAX - 1].index, BOOTORDER_MAX);
}

static void test_pci_paths(void **state)
{
	char p[BOOTORDER_PATH_MAX];

	assert_int_equal(bootorder_pci_path(p, sizeof(p), "scsi", 4 << 3, BOOTORDER_SUFFIX_DISK),
			 0);
	assert_string_equal(p, BLK4);
	assert_int_equal(bootorder_pci_path(p, sizeof(p), "ethernet", 6 << 3,
					    BOOTORDER_SUFFIX_NET), 0);
	assert_string_equal(p, NET6);
	/* Hex slot; the function only when nonzero, after a comma. */
	assert_int_equal(bootorder_pci_path(p, sizeof(p), "scsi", 0x1f << 3 | 3,
					    BOOTORDER_SUFFIX_DISK), 0);
	assert_string_equal(p, "/pci@i0cf8/scsi@1f,3/disk@0,0");
	assert_int_equal(bootorder_pci_path(p, 12, "scsi", 4 << 3, BOOTORDER_SUFFIX_DISK),
			 -ENAMETOOLONG);
}

static void test_parse_index(void **state)
{
	int32_t v;

	assert_int_equal(bootorder_parse_index("1", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(bootorder_parse_index("0x10", &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(bootorder_parse_index("-1", &v), 0);
	assert_int_equal(v, -1);
	assert_int_equal(bootorder_parse_index("2147483647", &v), 0);
	assert_int_equal(v, INT32_MAX);
	assert_int_equal(bootorder_parse_index("2147483648", &v), -EINVAL);
	assert_int_equal(bootorder_parse_index("x", &v), -EINVAL);
	assert_int_equal(bootorder_parse_index("1x", &v), -EINVAL);
	assert_int_equal(bootorder_parse_index("", &v), -EINVAL);
	assert_int_equal(bootorder_parse_index(NULL, &v), -EINVAL);
}

/* --- through fw_cfg ------------------------------------------------------ */

static void read_bytes(struct fw_cfg *s, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = fw_cfg_read_byte(s);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/* Read file name through the directory as SeaBIOS does: its size, -1 when
 * absent. */
static int read_file(struct fw_cfg *s, const char *name, uint8_t *buf, size_t size)
{
	uint8_t count[4], e[64];

	fw_cfg_select(s, FW_CFG_FILE_DIR);
	read_bytes(s, count, 4);
	for (uint32_t i = 0; i < be32(count); i++) {
		read_bytes(s, e, sizeof(e));
		if (strcmp((char *)e + 8, name))
			continue;
		assert_true(be32(e) <= size);
		fw_cfg_select(s, e[4] << 8 | e[5]);
		read_bytes(s, buf, be32(e));
		return (int)be32(e);
	}
	return -1;
}

static void test_fw_cfg_files(void **state)
{
	static const char want[] = BLK5 "\n" BLK4 "\nHALT";
	struct vm_config cfg = { 0 };
	struct bootorder b;
	struct fw_cfg s;
	uint8_t buf[512];

	bootorder_init(&b);
	fw_cfg_init_model(&s, NULL);
	cfg.boot_menu = true;
	cfg.boot_strict = true;
	cfg.has_splash_time = true;
	cfg.boot_splash_time = 0x1234;
	assert_int_equal(fw_cfg_model_add_boot(&s, &cfg, &b), 0);
	/* Devices register after fw_cfg is set up. */
	assert_int_equal(bootorder_add(&b, 2, BLK4), 0);
	assert_int_equal(bootorder_add(&b, 1, BLK5), 0);
	assert_int_equal(read_file(&s, "bootorder", buf, sizeof(buf)), (int)sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(read_file(&s, "etc/boot-menu-wait", buf, sizeof(buf)), 2);
	assert_int_equal(buf[0] | buf[1] << 8, 0x1234);
	/* reboot-timeout not given: -1, never reboot. */
	assert_int_equal(read_file(&s, "etc/boot-fail-wait", buf, sizeof(buf)), 4);
	assert_int_equal(buf[0] & buf[1] & buf[2] & buf[3], 0xff);
	fw_cfg_select(&s, FW_CFG_BOOT_MENU);
	read_bytes(&s, buf, 2);
	assert_int_equal(buf[0] | buf[1] << 8, 1);
	fw_cfg_free_model(&s);
}

static void test_fw_cfg_defaults(void **state)
{
	struct vm_config cfg = { 0 };
	struct bootorder b;
	struct fw_cfg s;
	uint8_t buf[64];

	bootorder_init(&b);
	fw_cfg_init_model(&s, NULL);
	cfg.has_reboot_timeout = true;
	cfg.boot_reboot_timeout = 500;
	assert_int_equal(fw_cfg_model_add_boot(&s, &cfg, &b), 0);
	/* No bootindex: an empty file; no splash-time: no boot-menu-wait. */
	assert_int_equal(read_file(&s, "bootorder", buf, sizeof(buf)), 0);
	assert_int_equal(read_file(&s, "etc/boot-menu-wait", buf, sizeof(buf)), -1);
	assert_int_equal(read_file(&s, "etc/boot-fail-wait", buf, sizeof(buf)), 4);
	assert_int_equal(buf[0] | buf[1] << 8 | buf[2] << 16 | buf[3] << 24, 500);
	fw_cfg_select(&s, FW_CFG_BOOT_MENU);
	read_bytes(&s, buf, 2);
	assert_int_equal(buf[0] | buf[1] << 8, 0);
	fw_cfg_free_model(&s);
}

/* --- -boot options on the command line ----------------------------------- */

static int parse_boot(struct vm_config *cfg, const char *arg)
{
	char *argv[] = { "minikvm", "-boot", (char *)arg, NULL };
	char err[256];

	return cli_parse(3, argv, cfg, err, sizeof(err));
}

static void test_boot_options(void **state)
{
	struct vm_config cfg;

	assert_int_equal(parse_boot(&cfg, "order=n,menu=on,strict=on,splash-time=0x10,"
				    "reboot-timeout=-1"), 0);
	assert_string_equal(cfg.boot_order, "n");
	assert_true(cfg.boot_menu);
	assert_true(cfg.boot_strict);
	assert_true(cfg.has_splash_time);
	assert_int_equal(cfg.boot_splash_time, 16);
	assert_true(cfg.has_reboot_timeout);
	assert_int_equal(cfg.boot_reboot_timeout, -1);
	assert_int_equal(parse_boot(&cfg, "menu=off,strict=no,reboot-timeout=65535"), 0);
	assert_false(cfg.boot_menu);
	assert_false(cfg.boot_strict);
	assert_false(cfg.has_splash_time);
	assert_int_equal(cfg.boot_reboot_timeout, 65535);
	assert_int_equal(parse_boot(&cfg, "cdn"), 0);
	assert_string_equal(cfg.boot_order, "cdn");
	/* QEMU's rejections. */
	assert_int_equal(parse_boot(&cfg, "order=cc"), -1);
	assert_int_equal(parse_boot(&cfg, "order=x"), -1);
	assert_int_equal(parse_boot(&cfg, "order="), -1);
	assert_int_equal(parse_boot(&cfg, "menu=maybe"), -1);
	assert_int_equal(parse_boot(&cfg, "splash-time=-1"), -1);
	assert_int_equal(parse_boot(&cfg, "splash-time=65536"), -1);
	assert_int_equal(parse_boot(&cfg, "reboot-timeout=-2"), -1);
	assert_int_equal(parse_boot(&cfg, "reboot-timeout=70000"), -1);
	assert_int_equal(parse_boot(&cfg, "splash=logo.bmp"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_list_is_an_empty_file),
		cmocka_unit_test(test_sorted_by_index_with_qemu_layout),
		cmocka_unit_test(test_strict_appends_halt),
		cmocka_unit_test(test_duplicate_and_negative_index),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_pci_paths),
		cmocka_unit_test(test_parse_index),
		cmocka_unit_test(test_fw_cfg_files),
		cmocka_unit_test(test_fw_cfg_defaults),
		cmocka_unit_test(test_boot_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
