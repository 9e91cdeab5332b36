/* Unit tests for the block-layer helpers: iovec copying at offsets across
 * element boundaries, block_resolve_relative (relative to the image's
 * directory; absolute paths, ".." and protocols refused unless allowed),
 * and the cache-mode and engine parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "block/format.h"

static void test_iov_helpers(void **state)
{
	char a[3], b[0 + 1], c[5], flat[16];
	struct iovec iov[4] = { { a, 3 }, { b, 0 }, { c, 5 }, { NULL, 0 } };

	assert_int_equal(iov_size(iov, 4), 8);
	assert_int_equal(iov_size(iov, 0), 0);
	assert_int_equal(iov_from_buf(iov, 4, 0, "abcdefgh", 8), 8);
	assert_memory_equal(a, "abc", 3);
	assert_memory_equal(c, "defgh", 5);
	/* offsets that start inside and past elements */
	memset(flat, 0, sizeof(flat));
	assert_int_equal(iov_to_buf(iov, 4, 2, flat, 4), 4);
	assert_memory_equal(flat, "cdef", 4);
	assert_int_equal(iov_to_buf(iov, 4, 6, flat, 10), 2);	/* clipped at the end */
	assert_memory_equal(flat, "gh", 2);
	assert_int_equal(iov_to_buf(iov, 4, 8, flat, 1), 0);
	assert_int_equal(iov_to_buf(iov, 4, 100, flat, 1), 0);
	assert_int_equal(iov_from_buf(iov, 4, 3, "XY", 2), 2);
	assert_memory_equal(c, "XYfgh", 5);
	iov_memset(iov, 4, 1, '-', 5);
	assert_memory_equal(a, "a--", 3);
	assert_memory_equal(c, "---gh", 5);
	iov_memset(iov, 4, 7, 0, 100);		/* clipped too */
	assert_int_equal(c[4], 0);
	assert_int_equal(c[3], 'g');
}

static char *resolve(const char *image, const char *name, bool allow, char *err)
{
	struct bdev bs = { .filename = (char *)image };

	return block_resolve_relative(&bs, name, allow, err, 256);
}

static void expect_path(const char *image, const char *name, bool allow, const char *want)
{
	char err[256] = "";
	char *p = resolve(image, name, allow, err);

	assert_non_null(p);
	assert_string_equal(p, want);
	free(p);
}

static void expect_refused(const char *image, const char *name, bool allow, const char *why)
{
	char err[256] = "";
	char *p = resolve(image, name, allow, err);

	assert_null(p);
	assert_non_null(strstr(err, why));
	assert_non_null(strstr(err, image));	/* the error names the image */
}

static void test_resolve_relative(void **state)
{
	expect_path("/images/vm/top.qcow2", "base.qcow2", false, "/images/vm/base.qcow2");
	expect_path("/images/vm/top.qcow2", "sub/base.img", false, "/images/vm/sub/base.img");
	expect_path("top.qcow2", "base.qcow2", false, "base.qcow2");
	expect_path("dir/top.qcow2", "base.qcow2", false, "dir/base.qcow2");
	expect_path("/top.qcow2", "base", false, "/base");
	expect_path("/a/top", "..foo/x..", false, "/a/..foo/x..");	/* not a ".." component */
	expect_path("/a/./top", "./b", false, "/a/././b");

	expect_refused("/images/top.qcow2", "/etc/shadow", false, "absolute");
	expect_refused("/images/top.qcow2", "../secret", false, "'..'");
	expect_refused("/images/top.qcow2", "a/../../secret", false, "'..'");
	expect_refused("/images/top.qcow2", "a/..", false, "'..'");
	expect_refused("/images/top.qcow2", "", false, "empty");
	expect_refused("/images/top.qcow2", "json:{\"file.filename\":\"/etc/passwd\"}", true,
		       "protocol");
	expect_refused("/images/top.qcow2", "nbd:localhost:10809", true, "protocol");

	/* allowed by the user */
	expect_path("/images/top.qcow2", "/srv/base.img", true, "/srv/base.img");
	expect_path("/images/top.qcow2", "../base.img", true, "/images/../base.img");
	/* a colon after a slash is just a file name */
	expect_path("/images/top.qcow2", "./a:b", false, "/images/./a:b");
}

static void test_parse(void **state)
{
	enum block_cache_mode m = BLOCK_CACHE_UNSAFE;
	enum block_engine_kind k = BLOCK_ENGINE_DEFAULT;

	assert_int_equal(block_parse_cache_mode("writeback", &m), 0);
	assert_int_equal(m, BLOCK_CACHE_WRITEBACK);
	assert_int_equal(block_parse_cache_mode("none", &m), 0);
	assert_int_equal(m, BLOCK_CACHE_NONE);
	assert_int_equal(block_parse_cache_mode("writethrough", &m), 0);
	assert_int_equal(m, BLOCK_CACHE_WRITETHROUGH);
	assert_int_equal(block_parse_cache_mode("directsync", &m), 0);
	assert_int_equal(m, BLOCK_CACHE_DIRECTSYNC);
	assert_int_equal(block_parse_cache_mode("unsafe", &m), 0);
	assert_int_equal(m, BLOCK_CACHE_UNSAFE);
	assert_int_equal(block_parse_cache_mode("off", &m), 0);
	assert_int_equal(m, BLOCK_CACHE_NONE);
	assert_int_equal(block_parse_cache_mode("None", &m), -1);
	assert_int_equal(block_parse_cache_mode("", &m), -1);
	assert_int_equal(block_parse_cache_mode(NULL, &m), -1);

	assert_int_equal(block_parse_engine("threads", &k), 0);
	assert_int_equal(k, BLOCK_ENGINE_THREADS);
	assert_int_equal(block_parse_engine("native", &k), 0);
	assert_int_equal(k, BLOCK_ENGINE_NATIVE);
	assert_int_equal(block_parse_engine("io_uring", &k), 0);
	assert_int_equal(k, BLOCK_ENGINE_IO_URING);
	assert_int_equal(block_parse_engine("iouring", &k), -1);
	assert_int_equal(block_parse_engine(NULL, &k), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iov_helpers),
		cmocka_unit_test(test_resolve_relative),
		cmocka_unit_test(test_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
