/* Helpers shared by the image-format unit tests (test_qcow.c, test_cow.c,
 * test_cloop.c): a scratch directory, raw file writes and patches, opening
 * images and comparing their contents with a reference buffer. Header-only
 * (static functions); include after cmocka.h. */
#ifndef TESTS_UNIT_FMT_TEST_UTIL_H
#define TESTS_UNIT_FMT_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "block/block.h"
#include "block/format.h"

static char fmt_dir[256];

static inline int fmt_rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static inline int fmt_setup(void **state)
{
	snprintf(fmt_dir, sizeof(fmt_dir), "/tmp/minikvm-fmt-XXXXXX");
	assert_non_null(mkdtemp(fmt_dir));
	return 0;
}

static inline int fmt_teardown(void **state)
{
	nftw(fmt_dir, fmt_rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* A path inside the scratch directory (static buffer rotation of 4). */
static inline const char *fmt_path(const char *name)
{
	static char bufs[4][512];
	static unsigned n;
	char *b = bufs[n++ % 4];

	snprintf(b, 512, "%s/%s", fmt_dir, name);
	return b;
}

static inline void fmt_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

static inline void fmt_patch(const char *path, off_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static inline void fmt_truncate(const char *path, off_t len)
{
	assert_int_equal(truncate(path, len), 0);
}

static inline void *fmt_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n ? n : 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, n, f), (size_t)n);
	fclose(f);
	*len = n;
	return buf;
}

/* Deterministic bytes that differ per offset and seed. */
static inline void fmt_pattern(uint8_t *buf, size_t len, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) * 2654435761u + seed * 40503u;

		buf[i] = (uint8_t)(x >> 13) ^ (uint8_t)seed;
	}
}

static inline int fmt_open(const char *path, const char *format, bool ro, struct bdev **bs,
		    char *err, size_t errlen)
{
	struct block_open_opts o = { .format = format, .read_only = ro };

	return bdev_open(path, &o, bs, err, errlen);
}

/* Open must fail; the message must contain `want`. */
static inline void fmt_expect_open_error(const char *path, const char *format, const char *want)
{
	struct bdev *bs = NULL;
	char err[512] = "";
	int ret = fmt_open(path, format, true, &bs, err, sizeof(err));

	if (ret == 0)
		bdev_close(bs);
	if (ret == 0 || !strstr(err, want))
		print_error("open of %s: ret %d, err '%s', wanted '%s'\n", path, ret, err, want);
	assert_true(ret < 0);
	assert_non_null(strstr(err, want));
}

/* Whole-image comparison with a reference buffer. */
static inline void fmt_assert_contents(struct bdev *bs, const uint8_t *ref, size_t len)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	assert_int_equal(bdev_size(bs), len);
	assert_int_equal(bdev_pread(bs, 0, buf, len), 0);
	assert_memory_equal(buf, ref, len);
	free(buf);
}

/* Formats register from constructors; naming the table pulls the format's
 * object out of the archive (unit tests do not link it whole). */
static inline int fmt_create(const struct block_format *f, const char *path,
		      const struct block_create_opts *o, char *err, size_t errlen)
{
	assert_non_null(f);
	assert_ptr_equal(block_format_find(f->name), f);
	assert_non_null(f->create);
	return f->create(path, o, err, errlen);
}

#endif
