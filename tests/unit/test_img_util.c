/* Unit tests for minikvm-img's shared helpers (tools/img/util.c): size
 * parsing with suffixes, -o option lists, qemu's human sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tools/img/util.c"

/* img_strtosz reads sizes as qemu_strtosz does. */
static void test_sizes(void **state)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "4096", 4096 }, { "1k", 1024 }, { "64M", 64ULL << 20 }, { "2G", 2ULL << 30 },
		{ "1T", 1ULL << 40 }, { "1.5M", 3ULL << 19 }, { "512b", 512 }, { "512B", 512 },
		{ "0x1000", 4096 }, { "1E", 1ULL << 60 },
	};
	static const char *const bad[] = {
		"", "-1", "1Q", "1MM", "1Mb", "k", "1.5", "0x1.5M", "99999999999999999999", "16E",
		"100000000T",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 0;
		assert_int_equal(img_strtosz(good[i].s, &v), 0);
		assert_int_equal(v, good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		assert_true(img_strtosz(bad[i], &v) < 0);
		assert_int_equal(v, 7);
	}
}

static void test_create_opts(void **state)
{
	struct block_create_opts o = { 0 };

	assert_int_equal(img_parse_create_opts_for("cluster_size=4k,lazy_refcounts=on,compat=v2,"
					       "refcount_bits=8,preallocation=metadata,size=1G",
					       NULL, "", &o), 0);
	assert_int_equal(o.cluster_size, 4096);
	assert_true(o.lazy_refcounts);
	assert_string_equal(o.compat, "0.10");
	assert_int_equal(o.refcount_bits, 8);
	assert_int_equal(o.prealloc, PREALLOC_METADATA);
	assert_int_equal(o.size, 1ULL << 30);
	assert_int_equal(img_parse_create_opts_for("cluster_size=3000", NULL, "", &o), -1);
	assert_int_equal(img_parse_create_opts_for("cluster_size=4M", NULL, "", &o), -1);
	assert_int_equal(img_parse_create_opts_for("refcount_bits=3", NULL, "", &o), -1);
	assert_int_equal(img_parse_create_opts_for("preallocation=some", NULL, "", &o), -1);
	assert_int_equal(img_parse_create_opts_for("bogus=1", NULL, "", &o), -1);
	assert_int_equal(img_parse_create_opts_for("compat", NULL, "", &o), -1);
}

static void test_human_size(void **state)
{
	char b[32];

	img_human_size(0, b, sizeof(b));
	assert_string_equal(b, "0 B");
	img_human_size(67108864, b, sizeof(b));
	assert_string_equal(b, "64 MiB");
	img_human_size(1114112, b, sizeof(b));
	assert_string_equal(b, "1.06 MiB");
	img_human_size(405504, b, sizeof(b));
	assert_string_equal(b, "396 KiB");
	img_human_size(1000, b, sizeof(b));
	assert_string_equal(b, "0.977 KiB");
	img_human_size(999, b, sizeof(b));
	assert_string_equal(b, "999 B");
}

static void test_zero_detect(void **state)
{
	static uint8_t buf[4099];

	assert_true(img_buf_is_zero(buf, sizeof(buf)));
	buf[4098] = 1;
	assert_false(img_buf_is_zero(buf, sizeof(buf)));
	assert_true(img_buf_is_zero(buf + 1, 4097));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_create_opts),
		cmocka_unit_test(test_human_size),
		cmocka_unit_test(test_zero_detect),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
