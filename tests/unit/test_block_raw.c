/* Unit tests for the raw format and the block layer's synchronous path:
 * create with each preallocation mode, read/write at odd offsets, range and
 * read-only checks, discard and write-zeroes with block status, resize,
 * sizes that are not whole sectors (rounded up as in QEMU), cache modes (O_DIRECT refused by tmpfs with QEMU's message), async I/O. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "block/bfile.h"
#include "block/format.h"

#define MIB (1024 * 1024)

static char dir[64];

static void path_in_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static int setup(void **state)
{
	strcpy(dir, "/var/tmp/test_block_raw.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void create_raw(const char *path, uint64_t size, int prealloc)
{
	const struct block_format *raw = block_format_find("raw");
	struct block_create_opts o = { .size = size };
	char err[256];

	assert_non_null(raw);
	o.prealloc = prealloc;
	assert_int_equal(raw->create(path, &o, err, sizeof(err)), 0);
}

static struct bdev *open_raw(const char *path, enum block_cache_mode cache, bool ro)
{
	struct block_open_opts o = { .format = "raw", .cache = cache, .read_only = ro };
	struct bdev *bs = NULL;
	char err[256];
	int ret = bdev_open(path, &o, &bs, err, sizeof(err));

	if (ret)
		fprintf(stderr, "open: %s\n", err);
	assert_int_equal(ret, 0);
	return bs;
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + seed);
}

static void test_create_prealloc(void **state)
{
	char p[128];
	struct stat st;

	path_in_dir(p, sizeof(p), "off.raw");
	create_raw(p, 4 * MIB, PREALLOC_OFF);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 4 * MIB);
	assert_true(st.st_blocks < 64);

	path_in_dir(p, sizeof(p), "falloc.raw");
	create_raw(p, 4 * MIB, PREALLOC_FALLOC);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 4 * MIB);
	assert_true(st.st_blocks * 512 >= 4 * MIB);

	path_in_dir(p, sizeof(p), "full.raw");
	create_raw(p, 4 * MIB + 512, PREALLOC_FULL);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 4 * MIB + 512);
	assert_true(st.st_blocks * 512 >= 4 * MIB);
}

static void rw_roundtrip(enum block_cache_mode cache)
{
	static uint8_t wbuf[300000], rbuf[300000];
	char p[128];
	struct bdev *bs;

	path_in_dir(p, sizeof(p), "rw.raw");
	create_raw(p, 2 * MIB, PREALLOC_OFF);
	bs = open_raw(p, cache, false);
	assert_int_equal(bdev_size(bs), 2 * MIB);
	assert_string_equal(bdev_format_name(bs), "raw");
	assert_null(bdev_backing(bs));
	fill_pattern(wbuf, sizeof(wbuf), (unsigned)cache);
	/* odd offset and length: bounced under O_DIRECT */
	assert_int_equal(bdev_pwrite(bs, 12345, wbuf, sizeof(wbuf)), 0);
	assert_int_equal(bdev_pwrite(bs, 2 * MIB - 7, wbuf, 7), 0);
	assert_int_equal(bdev_flush(bs), 0);
	memset(rbuf, 0xaa, sizeof(rbuf));
	assert_int_equal(bdev_pread(bs, 12345, rbuf, sizeof(rbuf)), 0);
	assert_memory_equal(rbuf, wbuf, sizeof(wbuf));
	assert_int_equal(bdev_pread(bs, 2 * MIB - 7, rbuf, 7), 0);
	assert_memory_equal(rbuf, wbuf, 7);
	/* never-written bytes read as zero, neighbours intact */
	assert_int_equal(bdev_pread(bs, 12000, rbuf, 345), 0);
	for (int i = 0; i < 345; i++)
		assert_int_equal(rbuf[i], 0);
	bdev_close(bs);

	bs = open_raw(p, BLOCK_CACHE_WRITEBACK, true);
	assert_int_equal(bdev_pread(bs, 12345, rbuf, sizeof(rbuf)), 0);
	assert_memory_equal(rbuf, wbuf, sizeof(wbuf));
	bdev_close(bs);
}

static void test_rw_writeback(void **state)
{
	rw_roundtrip(BLOCK_CACHE_WRITEBACK);
}

static void test_rw_none(void **state)
{
	rw_roundtrip(BLOCK_CACHE_NONE);
}

static void test_rw_writethrough_directsync_unsafe(void **state)
{
	rw_roundtrip(BLOCK_CACHE_WRITETHROUGH);
	rw_roundtrip(BLOCK_CACHE_DIRECTSYNC);
	rw_roundtrip(BLOCK_CACHE_UNSAFE);
}

static void test_range_and_read_only(void **state)
{
	char p[128];
	uint8_t buf[16] = { 1 };
	struct bdev *bs;

	path_in_dir(p, sizeof(p), "range.raw");
	create_raw(p, MIB, PREALLOC_OFF);
	bs = open_raw(p, BLOCK_CACHE_WRITEBACK, false);
	assert_int_equal(bdev_pwrite(bs, MIB - 8, buf, 16), -EINVAL);
	assert_int_equal(bdev_pread(bs, MIB, buf, 1), -EINVAL);
	assert_int_equal(bdev_pread(bs, UINT64_MAX - 4, buf, 16), -EINVAL);
	assert_int_equal(bdev_pread(bs, MIB, buf, 0), 0);
	bdev_close(bs);

	bs = open_raw(p, BLOCK_CACHE_WRITEBACK, true);
	assert_true(bdev_is_read_only(bs));
	assert_int_equal(bdev_pwrite(bs, 0, buf, 16), -EROFS);
	assert_int_equal(bdev_discard(bs, 0, 4096), -EROFS);
	assert_int_equal(bdev_write_zeroes(bs, 0, 4096, false), -EROFS);
	assert_int_equal(bdev_pread(bs, 0, buf, 16), 0);
	bdev_close(bs);
}

static void expect_status(struct bdev *bs, uint64_t off, uint64_t len, unsigned want_status,
			  uint64_t want_len)
{
	unsigned status = 0;
	uint64_t host = 0;
	int64_t n = bdev_block_status(bs, off, len, &status, &host);

	assert_int_equal(n, (int64_t)want_len);
	assert_int_equal(status, want_status);
}

static void test_discard_zeroes_status(void **state)
{
	static uint8_t buf[MIB];
	char p[128];
	struct bdev *bs;

	path_in_dir(p, sizeof(p), "sparse.raw");
	create_raw(p, 4 * MIB, PREALLOC_OFF);
	bs = open_raw(p, BLOCK_CACHE_WRITEBACK, false);
	expect_status(bs, 0, 4 * MIB, BLOCK_STATUS_ZERO, 4 * MIB);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(bdev_pwrite(bs, MIB, buf, MIB), 0);
	expect_status(bs, 0, 4 * MIB, BLOCK_STATUS_ZERO, MIB);
	expect_status(bs, MIB, 4 * MIB - MIB, BLOCK_STATUS_DATA, MIB);
	expect_status(bs, 2 * MIB, 2 * MIB, BLOCK_STATUS_ZERO, 2 * MIB);

	/* discard punches a hole that reads as zeroes */
	assert_int_equal(bdev_discard(bs, MIB, 64 * 1024), 0);
	expect_status(bs, MIB, MIB, BLOCK_STATUS_ZERO, 64 * 1024);
	assert_int_equal(bdev_pread(bs, MIB, buf, 64 * 1024), 0);
	for (int i = 0; i < 64 * 1024; i++)
		assert_int_equal(buf[i], 0);

	/* write zeroes with and without unmap */
	assert_int_equal(bdev_write_zeroes(bs, MIB + 128 * 1024, 4096, false), 0);
	assert_int_equal(bdev_write_zeroes(bs, MIB + 256 * 1024, 8192, true), 0);
	assert_int_equal(bdev_write_zeroes(bs, MIB + 300000, 777, false), 0);
	assert_int_equal(bdev_pread(bs, MIB + 64 * 1024, buf, MIB - 64 * 1024), 0);
	for (size_t i = 0; i < MIB - 64 * 1024; i++) {
		uint64_t off = MIB + 64 * 1024 + i;
		bool zero = (off >= MIB + 128 * 1024 && off < MIB + 128 * 1024 + 4096) ||
			    (off >= MIB + 256 * 1024 && off < MIB + 256 * 1024 + 8192) ||
			    (off >= MIB + 300000 && off < MIB + 300000 + 777);

		assert_int_equal(buf[i], zero ? 0 : 0x5a);
	}
	expect_status(bs, MIB + 256 * 1024, 8192, BLOCK_STATUS_ZERO, 8192);
	assert_int_equal(bdev_block_status(bs, 4 * MIB, 1, NULL, NULL), -EINVAL);
	bdev_close(bs);
}

static void test_truncate(void **state)
{
	const struct block_format *raw = block_format_find("raw");
	char p[128], err[256];
	uint8_t b = 0x11;
	struct bdev *bs;
	struct stat st;

	path_in_dir(p, sizeof(p), "resize.raw");
	create_raw(p, MIB, PREALLOC_OFF);
	bs = open_raw(p, BLOCK_CACHE_WRITEBACK, false);
	assert_int_equal(raw->truncate(bs, 3 * MIB, false, err, sizeof(err)), 0);
	assert_int_equal(bdev_size(bs), 3 * MIB);
	assert_int_equal(bdev_pwrite(bs, 3 * MIB - 1, &b, 1), 0);
	assert_int_not_equal(raw->truncate(bs, MIB, false, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "shrink"));
	assert_int_equal(raw->truncate(bs, MIB, true, err, sizeof(err)), 0);
	assert_int_equal(bdev_size(bs), MIB);
	bdev_close(bs);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, MIB);
}

/* QEMU: "Could not open 'X': filesystem does not support O_DIRECT". tmpfs
 * accepts O_DIRECT since Linux 6.6, procfs never does. */
static void test_o_direct_refused(void **state)
{
	struct block_open_opts o = { .format = "raw", .cache = BLOCK_CACHE_NONE,
				     .read_only = true };
	const char *p = "/dev/shm/test_block_raw_tmpfs.raw";
	struct bdev *bs = NULL;
	char err[256];
	FILE *f = fopen(p, "w");
	int fd = -1;

	if (f) {
		fclose(f);
		fd = open(p, O_RDONLY | O_DIRECT);
	}
	if (fd >= 0 || !f) {
		if (fd >= 0)
			close(fd);
		unlink(p);
		p = "/proc/version";
	}
	assert_int_equal(bdev_open(p, &o, &bs, err, sizeof(err)), -EINVAL);
	assert_null(bs);
	assert_string_equal(strstr(err, "filesystem does not support O_DIRECT") ? "ok" : err,
			    "ok");
	assert_non_null(strstr(err, p));
	o.cache = BLOCK_CACHE_WRITEBACK;
	assert_int_equal(bdev_open(p, &o, &bs, err, sizeof(err)), 0);
	bdev_close(bs);
	if (strcmp(p, "/proc/version"))
		unlink(p);
}

static void test_open_errors(void **state)
{
	struct block_open_opts o = { .format = "nosuchformat" };
	struct bdev *bs = NULL;
	char err[256], p[128];

	path_in_dir(p, sizeof(p), "missing.raw");
	assert_int_equal(bdev_open(p, NULL, &bs, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, p));
	create_raw(p, 4096, PREALLOC_OFF);
	assert_int_equal(bdev_open(p, &o, &bs, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nosuchformat"));
	assert_int_equal(bdev_open(dir, NULL, &bs, err, sizeof(err)), -EISDIR);
}

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending, calls, errors;
};

static void waiter_cb(void *opaque, int ret)
{
	struct waiter *w = opaque;

	pthread_mutex_lock(&w->lock);
	w->calls++;
	if (ret)
		w->errors++;
	if (--w->pending == 0)
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void waiter_wait(struct waiter *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->pending > 0)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void test_async(void **state)
{
	static uint8_t wbuf[64][1000], rbuf[64][1000];
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };
	struct iovec wv[64], rv[64];
	char p[128];
	struct bdev *bs;

	path_in_dir(p, sizeof(p), "async.raw");
	create_raw(p, MIB, PREALLOC_OFF);
	bs = open_raw(p, BLOCK_CACHE_WRITEBACK, false);
	w.pending = 64;
	for (int i = 0; i < 64; i++) {
		fill_pattern(wbuf[i], sizeof(wbuf[i]), (unsigned)i);
		wv[i] = (struct iovec){ wbuf[i], sizeof(wbuf[i]) };
		assert_int_equal(bdev_aio_writev(bs, 4096u * i + 3, &wv[i], 1, waiter_cb, &w), 0);
	}
	waiter_wait(&w);
	assert_int_equal(w.calls, 64);
	assert_int_equal(w.errors, 0);
	w.pending = 1;
	assert_int_equal(bdev_aio_flush(bs, waiter_cb, &w), 0);
	waiter_wait(&w);
	w.pending = 64;
	for (int i = 0; i < 64; i++) {
		rv[i] = (struct iovec){ rbuf[i], sizeof(rbuf[i]) };
		assert_int_equal(bdev_aio_readv(bs, 4096u * i + 3, &rv[i], 1, waiter_cb, &w), 0);
	}
	waiter_wait(&w);
	assert_int_equal(w.errors, 0);
	assert_memory_equal(rbuf, wbuf, sizeof(wbuf));
	/* immediate error: callback runs once, inside the call */
	w.pending = 1;
	assert_int_equal(bdev_aio_readv(bs, MIB, &rv[0], 1, waiter_cb, &w), -EINVAL);
	assert_int_equal(w.pending, 0);
	assert_int_equal(w.errors, 1);
	w.pending = 2;
	assert_int_equal(bdev_aio_discard(bs, 0, 4096, waiter_cb, &w), 0);
	assert_int_equal(bdev_aio_write_zeroes(bs, 8192, 4096, false, waiter_cb, &w), 0);
	waiter_wait(&w);
	assert_int_equal(w.errors, 1);
	bdev_close(bs);
}

/* A file whose size is not a multiple of 512: as in QEMU the disk is the
 * file rounded up to whole sectors; the tail past EOF reads as zeroes
 * (synchronously and through every engine), shows as zero in block
 * status, and a write there extends the file. */
static void unaligned_tail_async(const char *path, enum block_engine_kind engine)
{
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };
	struct block_open_opts o = { .format = "raw", .read_only = true, .engine = engine };
	uint8_t buf[512];
	struct iovec v = { buf, sizeof(buf) };
	struct bdev *bs = NULL;
	char err[256];

	assert_int_equal(bdev_open(path, &o, &bs, err, sizeof(err)), 0);
	memset(buf, 0xee, sizeof(buf));
	w.pending = 1;
	assert_int_equal(bdev_aio_readv(bs, 512, &v, 1, waiter_cb, &w), 0);
	waiter_wait(&w);
	assert_int_equal(w.errors, 0);
	for (int i = 0; i < 512; i++)
		assert_int_equal(buf[i], i < 488 ? (uint8_t)((512 + i) * 7 + 3) : 0);
	bdev_close(bs);
}

static void test_unaligned_size(void **state)
{
	const struct block_format *raw = block_format_find("raw");
	uint8_t data[1000], buf[1024], b = 0x77;
	char p[128], err[256];
	struct bdev *bs;
	struct stat st;
	int fd;

	path_in_dir(p, sizeof(p), "odd.raw");
	fill_pattern(data, sizeof(data), 3);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	close(fd);

	bs = open_raw(p, BLOCK_CACHE_WRITEBACK, false);
	assert_int_equal(bdev_size(bs), 1024);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(bdev_pread(bs, 0, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, data, sizeof(data));
	for (int i = 1000; i < 1024; i++)
		assert_int_equal(buf[i], 0);
	expect_status(bs, 0, 1024, BLOCK_STATUS_DATA, 1000);
	expect_status(bs, 1000, 24, BLOCK_STATUS_ZERO, 24);
	bdev_close(bs);

	unaligned_tail_async(p, BLOCK_ENGINE_THREADS);
	unaligned_tail_async(p, BLOCK_ENGINE_NATIVE);
	unaligned_tail_async(p, BLOCK_ENGINE_DEFAULT);

	bs = open_raw(p, BLOCK_CACHE_WRITEBACK, false);
	assert_int_equal(bdev_pwrite(bs, 1010, &b, 1), 0);	/* past EOF: extends */
	bdev_close(bs);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 1011);

	bs = open_raw(p, BLOCK_CACHE_WRITEBACK, false);
	assert_int_equal(raw->truncate(bs, 1500, false, err, sizeof(err)), 0);
	assert_int_equal(bdev_size(bs), 1536);
	assert_int_equal(bdev_pread(bs, 1024, buf, 512), 0);
	for (int i = 0; i < 512; i++)
		assert_int_equal(buf[i], 0);
	bdev_close(bs);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 1500);
}

/* inline_memory_io: on tmpfs, data I/O finishes inside the submit call
 * (callback included; for a polled bdev the callback waits for the next
 * poll); on a disk file it stays asynchronous and still completes. */
static void inline_io_on(const char *path, bool polled, bool expect_inline)
{
	static uint8_t wbuf[8192], rbuf[8192];
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };
	struct block_open_opts o = { .format = "raw", .inline_memory_io = true,
				     .poll_completions = polled };
	struct iovec wv = { wbuf, sizeof(wbuf) }, rv = { rbuf, sizeof(rbuf) };
	struct bdev *bs = NULL;
	char err[256];

	create_raw(path, MIB, PREALLOC_OFF);
	assert_int_equal(bdev_open(path, &o, &bs, err, sizeof(err)), 0);
	fill_pattern(wbuf, sizeof(wbuf), 7);
	w.pending = 1;
	assert_int_equal(bdev_aio_writev(bs, 12345, &wv, 1, waiter_cb, &w), 0);
	if (expect_inline)
		assert_int_equal(w.pending, polled ? 1 : 0);
	if (polled)
		while (w.pending)
			assert_true(bdev_aio_poll(bs, true) >= 0);
	waiter_wait(&w);
	w.pending = 1;
	assert_int_equal(bdev_aio_readv(bs, 12345, &rv, 1, waiter_cb, &w), 0);
	if (expect_inline && !polled)
		assert_int_equal(w.pending, 0);
	if (polled) {
		assert_int_equal(bdev_aio_poll(bs, true), 1);
		assert_int_equal(w.pending, 0);
	}
	waiter_wait(&w);
	assert_int_equal(w.errors, 0);
	assert_memory_equal(rbuf, wbuf, sizeof(wbuf));
	bdev_close(bs);
	unlink(path);
}

static void test_inline_memory_io(void **state)
{
	char p[128], shm[] = "/dev/shm/test_block_raw_inline.raw";

	inline_io_on(shm, false, true);
	inline_io_on(shm, true, true);
	path_in_dir(p, sizeof(p), "inline.raw");	/* /var/tmp: not in memory */
	inline_io_on(p, false, false);
}

/* A block device (a loop device over a file; skipped without root or
 * losetup): size from BLKGETSIZE64, O_DIRECT with the sector size, I/O,
 * write-zeroes, and no growing. */
static void test_block_device(void **state)
{
	const struct block_format *raw = block_format_find("raw");
	static uint8_t wbuf[70000], rbuf[70000];
	char p[128], cmd[256], loop[64] = "", err[256];
	struct bdev *bs;
	FILE *f;

	path_in_dir(p, sizeof(p), "loop.img");
	create_raw(p, 4 * MIB, PREALLOC_OFF);
	snprintf(cmd, sizeof(cmd), "losetup -f --show '%s' 2>/dev/null", p);
	f = geteuid() == 0 ? popen(cmd, "r") : NULL;
	if (f) {
		if (!fgets(loop, sizeof(loop), f))
			loop[0] = 0;
		pclose(f);
	}
	loop[strcspn(loop, "\n")] = 0;
	if (strncmp(loop, "/dev/loop", 9))
		skip();
	for (int cache = BLOCK_CACHE_WRITEBACK; cache <= BLOCK_CACHE_NONE; cache++) {
		bs = open_raw(loop, (enum block_cache_mode)cache, false);
		assert_int_equal(bdev_size(bs), 4 * MIB);
		fill_pattern(wbuf, sizeof(wbuf), 9u + (unsigned)cache);
		assert_int_equal(bdev_pwrite(bs, 1001, wbuf, sizeof(wbuf)), 0);
		assert_int_equal(bdev_flush(bs), 0);
		assert_int_equal(bdev_pread(bs, 1001, rbuf, sizeof(rbuf)), 0);
		assert_memory_equal(rbuf, wbuf, sizeof(wbuf));
		assert_int_equal(bdev_write_zeroes(bs, 4096, 8192, false), 0);
		assert_int_equal(bdev_pread(bs, 4096, rbuf, 8192), 0);
		for (int i = 0; i < 8192; i++)
			assert_int_equal(rbuf[i], 0);
		assert_int_not_equal(raw->truncate(bs, 8 * MIB, false, err, sizeof(err)), 0);
		assert_non_null(strstr(err, "Cannot grow"));
		bdev_close(bs);
	}
	snprintf(cmd, sizeof(cmd), "losetup -d '%s'", loop);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_prealloc),
		cmocka_unit_test(test_rw_writeback),
		cmocka_unit_test(test_rw_none),
		cmocka_unit_test(test_rw_writethrough_directsync_unsafe),
		cmocka_unit_test(test_range_and_read_only),
		cmocka_unit_test(test_discard_zeroes_status),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_unaligned_size),
		cmocka_unit_test(test_o_direct_refused),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_inline_memory_io),
		cmocka_unit_test(test_block_device),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
