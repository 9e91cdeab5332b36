/* Unit tests for minikvm-img's shared helpers (tools/img/util.c): size
 * parsing with suffixes, -o option lists, qemu's human sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tools/img/util.c"

static void test_sizes(void **state)
{
	uint64_t v = 0;

	assert_int_equal(img_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(img_parse_size("1k", &v), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(img_parse_size("64M", &v), 0);
	assert_int_equal(v, 64ULL << 20);
	assert_int_equal(img_parse_size("2G", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(img_parse_size("1T", &v), 0);
	assert_int_equal(v, 1ULL << 40);
	assert_int_equal(img_parse_size("1.5M", &v), 0);
	assert_int_equal(v, 3ULL << 19);
	assert_int_equal(img_parse_size("512b", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(img_parse_size("1Mb", &v), 0);
	assert_int_equal(v, 1ULL << 20);
	v = 7;
	assert_int_equal(img_parse_size("", &v), -1);
	assert_int_equal(img_parse_size("-1", &v), -1);
	assert_int_equal(img_parse_size("1Q", &v), -1);
	assert_int_equal(img_parse_size("1MM", &v), -1);
	assert_int_equal(img_parse_size("k", &v), -1);
	assert_int_equal(img_parse_size("1.", &v), -1);
	assert_int_equal(img_parse_size("99999999999999999999", &v), -1);
	assert_int_equal(img_parse_size("16E", &v), -1);	/* above INT64_MAX */
	assert_int_equal(img_parse_size("100000000T", &v), -1);
	assert_int_equal(v, 7);
}

static void test_create_opts(void **state)
{
	struct block_create_opts o = { 0 };

	assert_int_equal(img_parse_create_opts("cluster_size=4k,lazy_refcounts=on,compat=v2,"
					       "refcount_bits=8,preallocation=metadata,size=1G",
					       &o), 0);
	assert_int_equal(o.cluster_size, 4096);
	assert_true(o.lazy_refcounts);
	assert_string_equal(o.compat, "0.10");
	assert_int_equal(o.refcount_bits, 8);
	assert_int_equal(o.prealloc, PREALLOC_METADATA);
	assert_int_equal(o.size, 1ULL << 30);
	assert_int_equal(img_parse_create_opts("cluster_size=3000", &o), -1);
	assert_int_equal(img_parse_create_opts("cluster_size=4M", &o), -1);
	assert_int_equal(img_parse_create_opts("refcount_bits=3", &o), -1);
	assert_int_equal(img_parse_create_opts("preallocation=some", &o), -1);
	assert_int_equal(img_parse_create_opts("bogus=1", &o), -1);
	assert_int_equal(img_parse_create_opts("compat", &o), -1);
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
