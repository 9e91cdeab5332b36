/* Unit tests for the qcow2 format (block/qcow2*.c) through the public
 * block API, with qemu-img as the oracle (check, compare, convert -c).
 * The binary also has helper modes for the integration tests, chosen by
 * the first argument:
 *   readcheck IMG RAW          read IMG through minikvm, compare with RAW
 *   randwrite IMG RAW SEED N   N random writes/zeroes/discards into IMG,
 *                              mirrored into the raw file RAW
 *   crashwriter IMG LOG SEED   endless random writes, discards and
 *                              flushes; after each completed flush appends
 *                              "seq" to LOG; data of write k is a pattern
 *                              of (SEED, k) so a checker can verify it
 *   crashverify IMG LOG SEED   replay the log: every write before the last
 *                              logged flush must read back */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "block/bfile.h"
#include "block/block.h"
#include "block/format.h"
#include "block/qcow2.h"

static char tdir[64];
static char errbuf[512];
static const char *self_exe = "./build/tests/test_qcow2";

static const char *tpath(const char *name)
{
	static char p[4][256];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tdir, name);
	return p[k];
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void fill(uint8_t *b, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < n; i++) {
		if (!(i & 7))
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b[i] = (uint8_t)(x >> ((i & 7) * 8));
	}
}

static uint64_t rnd(uint64_t *st)
{
	uint64_t x = *st;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*st = x;
	return x;
}

static int create_img(const char *path, uint64_t size, uint32_t cs, const char *compat,
		      unsigned rbits, bool lazy, const char *backing, const char *bfmt)
{
	const struct block_format *f = block_format_find("qcow2");
	struct block_create_opts o = { .size = size, .cluster_size = cs, .compat = compat,
				       .refcount_bits = rbits, .lazy_refcounts = lazy,
				       .backing_file = backing, .backing_format = bfmt };
	assert_non_null(f);
	return f->create(path, &o, errbuf, sizeof(errbuf));
}

static struct bdev *open_img(const char *path, bool ro)
{
	struct block_open_opts o = { .format = "qcow2", .read_only = ro };
	struct bdev *bs = NULL;
	int ret = bdev_open(path, &o, &bs, errbuf, sizeof(errbuf));
	if (ret < 0)
		fprintf(stderr, "open %s: %s\n", path, errbuf);
	assert_int_equal(ret, 0);
	return bs;
}

static int try_open(const char *path, bool ro)
{
	struct block_open_opts o = { .format = "qcow2", .read_only = ro };
	struct bdev *bs = NULL;
	int ret = bdev_open(path, &o, &bs, errbuf, sizeof(errbuf));
	if (ret == 0)
		bdev_close(bs);
	return ret;
}

static void write_file(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, n, f), n);
	fclose(f);
}

static void assert_reads(struct bdev *bs, const uint8_t *ref, uint64_t size)
{
	uint8_t *b = malloc(size);
	assert_int_equal(bdev_pread(bs, 0, b, size), 0);
	for (uint64_t i = 0; i < size; i++) {
		if (b[i] != ref[i]) {
			fprintf(stderr, "mismatch at %llu: %02x != %02x\n", (unsigned long long)i,
				b[i], ref[i]);
			fail();
		}
	}
	free(b);
}

/* ref[0, size) through the format's compressed-cluster write, one
 * cluster of cs bytes at a time (the caller holds bs->lock around format
 * ops, as the block layer does). */
static void write_compressed_all(struct bdev *bs, const uint8_t *ref, uint64_t size,
				 uint64_t cs)
{
	for (uint64_t off = 0; off < size; off += cs) {
		int r;

		pthread_mutex_lock(&bs->lock);
		r = bs->fmt->write_compressed(bs, off, ref + off, cs);
		pthread_mutex_unlock(&bs->lock);
		assert_int_equal(r, 0);
	}
}

/* Random writes (some unaligned, some spanning clusters) mirrored in ref. */
static void random_writes(struct bdev *bs, uint8_t *ref, uint64_t size, unsigned n,
			  uint64_t seed, bool zeroes)
{
	uint64_t st = seed | 1;
	uint8_t *buf = malloc(256 << 10);

	for (unsigned i = 0; i < n; i++) {
		uint64_t len = 1 + rnd(&st) % (256 << 10), off = rnd(&st) % size;
		unsigned kind = (unsigned)(rnd(&st) % 10);
		if (rnd(&st) % 3 == 0)
			off &= ~511ull;
		if (off + len > size)
			len = size - off;
		if (zeroes && kind == 0) {
			assert_int_equal(bdev_write_zeroes(bs, off, len, rnd(&st) & 1), 0);
			memset(ref + off, 0, len);
			continue;
		}
		fill(buf, len, rnd(&st));
		assert_int_equal(bdev_pwrite(bs, off, buf, len), 0);
		memcpy(ref + off, buf, len);
	}
	free(buf);
}

static void test_rw_patterns(void **state)
{
	static const uint32_t sizes[] = { 512, 4096, 65536, 2u << 20 };
	static const char *compat[] = { "0.10", "1.1" };
	uint64_t size = 6 << 20;
	uint8_t *ref = malloc(size);

	for (unsigned c = 0; c < 4; c++) {
		for (unsigned v = 0; v < 2; v++) {
			const char *img = tpath("rw.qcow2"), *raw = tpath("rw.raw");
			memset(ref, 0, size);
			assert_int_equal(create_img(img, size, sizes[c], compat[v], 0, false, NULL,
						    NULL), 0);
			struct bdev *bs = open_img(img, false);
			assert_int_equal(bdev_size(bs), size);
			random_writes(bs, ref, size, 60, c * 10 + v + 1, true);
			assert_reads(bs, ref, size);
			assert_int_equal(bdev_flush(bs), 0);
			bdev_close(bs);
			bs = open_img(img, true);
			assert_reads(bs, ref, size);
			bdev_close(bs);
			write_file(raw, ref, size);
			assert_int_equal(sh("qemu-img check -q %s", img), 0);
			assert_int_equal(sh("qemu-img compare -q -f qcow2 -F raw %s %s", img, raw), 0);
		}
	}
	free(ref);
}

static void aio_done_flag(void *opaque, int ret)
{
	*(int *)opaque = ret == 0 ? 1 : ret;
}

/* Reads 4 KiB at a time through the asynchronous API (the map() fast path
 * where clusters are plain data) and compares with ref. */
static void assert_aio_reads(struct bdev *bs, const uint8_t *ref, uint64_t size)
{
	uint8_t *b = aligned_alloc(4096, 4096);

	for (uint64_t off = 0; off < size; off += 4096) {
		struct iovec v = { b, 4096 };
		int done = 0;

		assert_int_equal(bdev_aio_readv(bs, off, &v, 1, aio_done_flag, &done), 0);
		while (!done)
			assert_true(bdev_aio_poll(bs, true) >= 0);
		assert_int_equal(done, 1);
		assert_memory_equal(b, ref + off, 4096);
	}
	free(b);
}

/* cache=none (O_DIRECT, on a file system that has it, not tmpfs):
 * refcount, L1 and refcount-table entries written in whole blocks, fresh
 * clusters past the end of the file written data-only, read back through
 * the fast path before the flush and after a reopen. */
static void test_direct_io(void **state)
{
	static const uint32_t sizes[] = { 512, 65536 };
	char dir[] = "/var/tmp/test_qcow2_direct.XXXXXX";
	uint64_t size = 4 << 20;
	uint8_t *ref = malloc(size), *buf = aligned_alloc(4096, 4096);

	if (!mkdtemp(dir))
		skip();
	for (unsigned c = 0; c < 2; c++) {
		struct block_open_opts o = { .format = "qcow2", .cache = BLOCK_CACHE_NONE,
					     .poll_completions = true };
		char img[128], raw[128];
		struct bdev *bs = NULL;

		snprintf(img, sizeof(img), "%s/d.qcow2", dir);
		snprintf(raw, sizeof(raw), "%s/d.raw", dir);
		memset(ref, 0, size);
		assert_int_equal(create_img(img, size, sizes[c], "1.1", 0, false, NULL, NULL), 0);
		if (bdev_open(img, &o, &bs, errbuf, sizeof(errbuf)) == -EINVAL) {
			sh("rm -rf %s", dir);
			skip();		/* no O_DIRECT here */
		}
		assert_non_null(bs);
		/* 4 KiB into the middle of fresh clusters: data-only writes */
		for (uint64_t off = 8192; off + 4096 <= size; off += 69632) {
			fill(buf, 4096, off);
			assert_int_equal(bdev_pwrite(bs, off, buf, 4096), 0);
			memcpy(ref + off, buf, 4096);
		}
		assert_aio_reads(bs, ref, size);
		random_writes(bs, ref, size, 40, c + 7, true);
		assert_aio_reads(bs, ref, size);
		assert_int_equal(bdev_flush(bs), 0);
		bdev_close(bs);
		assert_int_equal(bdev_open(img, &o, &bs, errbuf, sizeof(errbuf)), 0);
		assert_aio_reads(bs, ref, size);
		bdev_close(bs);
		write_file(raw, ref, size);
		assert_int_equal(sh("qemu-img check -q %s", img), 0);
		assert_int_equal(sh("qemu-img compare -q -f qcow2 -F raw %s %s", img, raw), 0);
	}
	sh("rm -rf %s", dir);
	free(ref);
	free(buf);
}

static void test_qemu_written_read(void **state)
{
	const char *img = tpath("q.qcow2"), *raw = tpath("q.raw");

	for (int v = 0; v < 2; v++) {
		assert_int_equal(sh("qemu-img create -q -f qcow2 -o compat=%s,cluster_size=4096 %s "
				    "4M && qemu-io -c 'write -P 0x5a 1000 70000' -c 'write -z 1M 64k' "
				    "-c 'write -P 7 3M 5000' %s >/dev/null",
				    v ? "1.1" : "0.10", img, img), 0);
		assert_int_equal(sh("qemu-img convert -O raw %s %s", img, raw), 0);
		assert_int_equal(sh("%s readcheck %s %s", self_exe, img, raw), 0);
	}
}

static void test_backing_cow(void **state)
{
	uint64_t size = 2 << 20;
	uint8_t *ref = malloc(size);
	const char *base = tpath("base.raw"), *top = tpath("top.qcow2"), *raw = tpath("top.raw");

	for (int v = 0; v < 2; v++) {
		fill(ref, size, 99);
		write_file(base, ref, size);
		assert_int_equal(create_img(top, 0, 4096, v ? "1.1" : "0.10", 0, false, "base.raw",
					    "raw"), 0);
		struct bdev *bs = open_img(top, false);
		assert_int_equal(bdev_size(bs), size);
		assert_non_null(bdev_backing(bs));
		assert_reads(bs, ref, size);
		random_writes(bs, ref, size, 40, 5 + v, false);
		assert_reads(bs, ref, size);
		/* discard: v3 reads zeroes, v2 reads the backing file again */
		assert_int_equal(bdev_discard(bs, 64 << 10, 64 << 10), 0);
		if (v) {
			memset(ref + (64 << 10), 0, 64 << 10);
		} else {
			uint8_t *b = malloc(size);
			fill(b, size, 99);
			memcpy(ref + (64 << 10), b + (64 << 10), 64 << 10);
			free(b);
		}
		assert_reads(bs, ref, size);
		bdev_close(bs);
		write_file(raw, ref, size);
		assert_int_equal(sh("qemu-img check -q %s", top), 0);
		assert_int_equal(sh("qemu-img compare -q %s %s", top, raw), 0);
	}
	free(ref);
}

/* make_empty (commit without -d): every cluster unallocated, reads equal
 * the backing file, snapshots keep their data, qemu-img check is clean and
 * the file shrinks back. */
static void test_make_empty(void **state)
{
	uint64_t size = 4 << 20;
	uint8_t *base = malloc(size), *buf = malloc(size);
	char b[256], top[256], exp[256];
	int64_t n;
	unsigned st;
	uint64_t host;
	struct stat sb;

	snprintf(b, sizeof(b), "%s", tpath("me.raw"));
	snprintf(top, sizeof(top), "%s", tpath("me.qcow2"));
	snprintf(exp, sizeof(exp), "%s", tpath("me-exp.raw"));
	fill(base, size, 41);
	write_file(b, base, size);
	for (int v = 0; v < 3; v++) {
		assert_int_equal(create_img(top, 0, 4096, v ? "1.1" : "0.10", 0, false, "me.raw",
					    "raw"), 0);
		struct bdev *bs = open_img(top, false);
		fill(buf, size, 42 + v);
		assert_int_equal(bdev_pwrite(bs, 0, buf, size / 2), 0);
		assert_int_equal(bdev_pwrite(bs, size - 5000, buf, 5000), 0);
		if (v == 2) {		/* a snapshot keeps the first half */
			assert_int_equal(bdev_flush(bs), 0);
			pthread_mutex_lock(&bs->lock);
			assert_int_equal(bs->fmt->snapshot_create(bs, "s1", errbuf,
								  sizeof(errbuf)), 0);
			pthread_mutex_unlock(&bs->lock);
		}
		assert_non_null(bs->fmt->make_empty);
		pthread_mutex_lock(&bs->lock);
		assert_int_equal(bs->fmt->make_empty(bs), 0);
		pthread_mutex_unlock(&bs->lock);
		assert_reads(bs, base, size);
		for (uint64_t off = 0; off < size; off += (uint64_t)n) {
			n = bdev_block_status(bs, off, size - off, &st, &host);
			assert_true(n > 0);
			assert_int_equal(st, BLOCK_STATUS_BACKING);
		}
		/* still writable afterwards */
		assert_int_equal(bdev_pwrite(bs, 8192, buf, 4096), 0);
		bdev_close(bs);
		assert_int_equal(sh("qemu-img check -q %s", top), 0);
		memcpy(buf + 8192, buf, 4096);
		memcpy(buf, base, 8192);
		memcpy(buf + 12288, base + 12288, size - 12288);
		write_file(exp, buf, size);
		assert_int_equal(sh("qemu-img compare -q %s %s", top, exp), 0);
		assert_int_equal(stat(top, &sb), 0);
		if (v < 2)		/* header, refcounts, L1, one L2 and a data cluster */
			assert_true(sb.st_size <= 8 * 4096);
		else
			assert_int_equal(sh("qemu-img snapshot -a s1 %s && qemu-img check -q %s",
					    top, top), 0);
	}
	free(base);
	free(buf);
}

static void test_zero_and_discard(void **state)
{
	uint64_t size = 1 << 20;
	uint8_t *ref = calloc(1, size), *buf = malloc(size);
	const char *img = tpath("z.qcow2");
	int64_t n;
	unsigned st;
	uint64_t host;

	assert_int_equal(create_img(img, size, 4096, "1.1", 0, false, NULL, NULL), 0);
	struct bdev *bs = open_img(img, false);
	fill(buf, size, 3);
	assert_int_equal(bdev_pwrite(bs, 0, buf, size), 0);
	memcpy(ref, buf, size);
	assert_int_equal(bdev_write_zeroes(bs, 8192, 3 * 4096 + 100, false), 0);
	memset(ref + 8192, 0, 3 * 4096 + 100);
	assert_int_equal(bdev_discard(bs, 65536, 65536), 0);
	memset(ref + 65536, 0, 65536);
	assert_reads(bs, ref, size);
	n = bdev_block_status(bs, 65536, 65536, &st, &host);
	assert_true(n > 0);
	assert_true(st & BLOCK_STATUS_ZERO);
	n = bdev_block_status(bs, 0, 4096, &st, &host);
	assert_true(n > 0);
	assert_true(st & BLOCK_STATUS_DATA);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	free(ref);
	free(buf);
}

static void test_refcount_widths(void **state)
{
	uint64_t size = 3 << 20;
	uint8_t *ref = malloc(size);
	const char *img = tpath("rc.qcow2"), *raw = tpath("rc.raw");

	for (unsigned bits = 1; bits <= 64; bits *= 2) {
		memset(ref, 0, size);
		assert_int_equal(create_img(img, size, 512, "1.1", bits, false, NULL, NULL), 0);
		struct bdev *bs = open_img(img, false);
		random_writes(bs, ref, size, 30, bits, true);
		assert_reads(bs, ref, size);
		bdev_close(bs);
		write_file(raw, ref, size);
		assert_int_equal(sh("qemu-img check -q %s", img), 0);
		assert_int_equal(sh("qemu-img compare -q %s %s", img, raw), 0);
	}
	free(ref);
}

static void test_compressed(void **state)
{
	const char *raw = tpath("c.raw"), *img = tpath("c.qcow2"), *img2 = tpath("c2.qcow2");
	uint64_t size = 1 << 20;
	uint8_t *ref = malloc(size);

	for (uint64_t i = 0; i < size; i += 4096)
		fill(ref + i, 2048, i);		/* half random, half zero: compressible */
	memset(ref + 4096, 0, 4096);
	write_file(raw, ref, size);
	assert_int_equal(sh("qemu-img convert -c -O qcow2 -o cluster_size=8192 %s %s", raw, img),
			 0);
	assert_int_equal(sh("%s readcheck %s %s", self_exe, img, raw), 0);
	struct bdev *bs = open_img(img, false);
	assert_reads(bs, ref, size);
	/* overwrite part of a compressed cluster: COW out of it */
	uint8_t pat[1000];
	fill(pat, sizeof(pat), 42);
	assert_int_equal(bdev_pwrite(bs, 20000, pat, sizeof(pat)), 0);
	memcpy(ref + 20000, pat, sizeof(pat));
	assert_reads(bs, ref, size);
	bdev_close(bs);
	write_file(raw, ref, size);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	assert_int_equal(sh("qemu-img compare -q %s %s", img, raw), 0);

	/* our compressed writes */
	assert_int_equal(create_img(img2, size, 8192, "1.1", 0, false, NULL, NULL), 0);
	bs = open_img(img2, false);
	write_compressed_all(bs, ref, size, 8192);
	assert_reads(bs, ref, size);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img2), 0);
	assert_int_equal(sh("qemu-img compare -q %s %s", img2, raw), 0);
	assert_int_equal(sh("qemu-img map --output=json %s | grep -q '\"compressed\": true' || "
			    "qemu-img check %s | grep -q 'compressed'", img2, img2), 0);
	free(ref);
}

static void test_snapshots(void **state)
{
	uint64_t size = 1 << 20;
	uint8_t *a = malloc(size), *b = malloc(size);
	const char *img = tpath("s.qcow2");
	struct block_snapshot_info *list;
	unsigned n;

	assert_int_equal(create_img(img, size, 4096, "1.1", 0, false, NULL, NULL), 0);
	struct bdev *bs = open_img(img, false);
	memset(a, 0, size);
	random_writes(bs, a, size, 20, 11, false);
	assert_int_equal(bs->fmt->snapshot_create(bs, "first", errbuf, sizeof(errbuf)), 0);
	memcpy(b, a, size);
	random_writes(bs, b, size, 20, 12, true);
	assert_reads(bs, b, size);
	assert_int_equal(bs->fmt->snapshot_create(bs, "second", errbuf, sizeof(errbuf)), 0);
	assert_int_not_equal(bs->fmt->snapshot_create(bs, "first", errbuf, sizeof(errbuf)), 0);
	assert_int_equal(bs->fmt->snapshot_list(bs, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "first");
	assert_string_equal(list[1].id, "2");
	free(list);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	assert_int_equal(sh("qemu-img snapshot -l %s | grep -q second", img), 0);

	bs = open_img(img, false);
	assert_int_equal(bs->fmt->snapshot_apply(bs, "first", errbuf, sizeof(errbuf)), 0);
	assert_reads(bs, a, size);
	random_writes(bs, a, size, 10, 13, false);
	assert_reads(bs, a, size);
	assert_int_equal(bs->fmt->snapshot_delete(bs, "first", errbuf, sizeof(errbuf)), 0);
	assert_reads(bs, a, size);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	bs = open_img(img, false);
	assert_int_equal(bs->fmt->snapshot_apply(bs, "second", errbuf, sizeof(errbuf)), 0);
	assert_reads(bs, b, size);
	assert_int_equal(bs->fmt->snapshot_delete(bs, "2", errbuf, sizeof(errbuf)), 0);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	/* a snapshot qemu-img made reads back */
	assert_int_equal(sh("qemu-img snapshot -c qsnap %s && qemu-io -c 'write -P 9 0 64k' %s "
			    ">/dev/null", img, img), 0);
	bs = open_img(img, false);
	assert_int_equal(bs->fmt->snapshot_apply(bs, "qsnap", errbuf, sizeof(errbuf)), 0);
	assert_reads(bs, b, size);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	free(a);
	free(b);
}

static void test_check_leak_and_repair(void **state)
{
	const char *img = tpath("k.qcow2");
	struct block_check_result r;
	uint8_t buf[8192];

	assert_int_equal(create_img(img, 1 << 20, 4096, "1.1", 0, false, NULL, NULL), 0);
	struct bdev *bs = open_img(img, false);
	fill(buf, sizeof(buf), 1);
	assert_int_equal(bdev_pwrite(bs, 0, buf, sizeof(buf)), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bs->fmt->check(bs, BLOCK_REPAIR_NONE, &r, NULL), 0);
	assert_int_equal(r.leaks + r.corruptions, 0);
	assert_int_equal(r.allocated_clusters, 2);
	/* leak two clusters */
	struct qcow2 *s = bs->opaque;
	int64_t leak = qcow2_alloc_clusters(s, 2);
	assert_true(leak > 0);
	assert_int_equal(bfile_pwrite(bs->file, (uint64_t)leak, buf, 8192), 0);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s >/dev/null 2>&1", img), 3);
	bs = open_img(img, false);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bs->fmt->check(bs, BLOCK_REPAIR_NONE, &r, NULL), 0);
	assert_int_equal(r.leaks, 2);
	assert_int_equal(r.corruptions, 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bs->fmt->check(bs, BLOCK_REPAIR_LEAKS, &r, NULL), 0);
	assert_int_equal(r.leaks_fixed, 2);
	assert_int_equal(r.leaks, 0);
	/* corruption: a used cluster's refcount dropped to 0 */
	s = bs->opaque;
	uint64_t l2 = s->l1[0] & L1E_OFFSET_MASK;
	assert_int_equal(qcow2_set_refcount(s, l2 >> s->cluster_bits, 0), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bs->fmt->check(bs, BLOCK_REPAIR_NONE, &r, NULL), 0);
	assert_true(r.corruptions >= 1);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s >/dev/null 2>&1", img), 2);
	struct block_open_opts o = { .format = "qcow2", .for_check = true };
	assert_int_equal(bdev_open(img, &o, &bs, errbuf, sizeof(errbuf)), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bs->fmt->check(bs, BLOCK_REPAIR_ALL, &r, NULL), 0);
	assert_int_equal(r.corruptions, 0);
	assert_true(r.corruptions_fixed >= 1);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	bs = open_img(img, true);
	uint8_t rb[8192];
	assert_int_equal(bdev_pread(bs, 0, rb, sizeof(rb)), 0);
	assert_memory_equal(rb, buf, sizeof(buf));
	bdev_close(bs);
}

static uint64_t header_u64(const char *path, unsigned off)
{
	uint8_t b[8];
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, 8, off), 8);
	close(fd);
	return ld_be64(b);
}

static void patch(const char *path, unsigned off, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, n, off), (ssize_t)n);
	close(fd);
}

static void test_lazy_refcounts_dirty(void **state)
{
	uint64_t size = 2 << 20;
	uint8_t *ref = calloc(1, size);
	const char *img = tpath("l.qcow2");
	pid_t pid;
	int st;

	assert_int_equal(create_img(img, size, 4096, "1.1", 0, true, NULL, NULL), 0);
	assert_int_equal(header_u64(img, QH_INCOMPAT) & 1, 0);
	pid = fork();
	if (pid == 0) {
		struct bdev *bs = open_img(img, false);
		random_writes(bs, ref, size, 30, 77, true);
		bdev_flush(bs);
		write_file(tpath("l.raw"), ref, size);
		_exit(0);	/* "crash": no close, the dirty bit stays set */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(header_u64(img, QH_INCOMPAT) & 1, 1);
	st = sh("qemu-img check -q %s >/dev/null 2>&1", img);
	assert_true(st == 0 || st == 3);
	/* read-only open leaves it dirty; read-write open repairs and cleans */
	struct bdev *bs = open_img(img, true);
	bdev_close(bs);
	assert_int_equal(header_u64(img, QH_INCOMPAT) & 1, 1);
	bs = open_img(img, false);
	assert_int_equal(header_u64(img, QH_INCOMPAT) & 1, 0);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	assert_int_equal(sh("qemu-img compare -q %s %s", img, tpath("l.raw")), 0);
	free(ref);
}

static void test_corrupt_bit(void **state)
{
	const char *img = tpath("cb.qcow2");
	uint8_t b[8];

	assert_int_equal(create_img(img, 1 << 20, 65536, "1.1", 0, false, NULL, NULL), 0);
	st_be64(b, 2);
	patch(img, QH_INCOMPAT, b, 8);
	assert_int_equal(try_open(img, false), -EACCES);
	assert_non_null(strstr(errbuf, "corrupt"));
	assert_non_null(strstr(errbuf, "cb.qcow2"));
	assert_int_equal(try_open(img, true), 0);

	/* an L2 entry pointing into the L1 table: the write is refused and
	 * the image gets marked corrupt instead of losing its metadata */
	uint8_t data[4096];
	assert_int_equal(create_img(img, 1 << 20, 4096, "1.1", 0, false, NULL, NULL), 0);
	struct bdev *bs = open_img(img, false);
	fill(data, sizeof(data), 1);
	assert_int_equal(bdev_pwrite(bs, 0, data, sizeof(data)), 0);
	assert_int_equal(bdev_flush(bs), 0);
	struct qcow2 *s = bs->opaque;
	uint64_t l2 = s->l1[0] & L1E_OFFSET_MASK, l1off = s->l1_offset;
	bdev_close(bs);
	st_be64(b, l1off | QCOW_OFLAG_COPIED);
	patch(img, (unsigned)l2, b, 8);
	bs = open_img(img, false);
	assert_int_equal(bdev_pwrite(bs, 0, data, sizeof(data)), -EIO);
	bdev_close(bs);
	assert_int_equal(header_u64(img, QH_INCOMPAT) & 2, 2);
	assert_int_equal(try_open(img, false), -EACCES);
}

struct bad_case {
	const char *name;
	unsigned off;
	unsigned len;
	uint64_t value;
	const char *expect;
};

static void test_malformed_headers(void **state)
{
	static const struct bad_case cases[] = {
		{ "cluster_bits 8", 20, 4, 8, "Unsupported cluster size: 2^8" },
		{ "cluster_bits 22", 20, 4, 22, "Unsupported cluster size: 2^22" },
		{ "huge l1_size", 36, 4, 0x7fffffff, "Active L1 table too large" },
		{ "l1 past eof", 40, 8, 1ull << 40, "Active L1 table extends past the end" },
		{ "l1 overlaps reftable", 40, 8, 65536, "overlaps the reference count table" },
		{ "refcount_order 7", 96, 4, 7, "Reference count entry width too large" },
		{ "unknown incompat", 72, 8, 1ull << 10,
		  "Unsupported qcow2 feature(s): Unknown incompatible feature: 400" },
		{ "huge size", 24, 8, 1ull << 63, "Image is too big" },
		{ "reftable clusters 0", 56, 4, 0, "does not contain a reference count table" },
		{ "reftable unaligned", 48, 8, 65536 + 8, "Reference count table offset invalid" },
		{ "version 4", 4, 4, 4, "Unsupported qcow2 version 4" },
		{ "header_length", 100, 4, 1 << 20, "qcow2 header exceeds cluster size" },
		{ "backing size", 16, 4, 5000, "Backing file name too long" },
		{ "snapshots", 60, 4, 100000, "Snapshot table too large" },
	};
	const char *good = tpath("good.qcow2"), *bad = tpath("bad.qcow2");

	assert_int_equal(create_img(good, 64 << 20, 65536, "1.1", 0, false, NULL, NULL), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		uint8_t b[8];
		assert_int_equal(sh("cp %s %s", good, bad), 0);
		if (c->off == 16)	/* backing name length needs an offset */
			st_be64(b, 512), patch(bad, 8, b, 8);
		if (c->len == 8)
			st_be64(b, c->value);
		else
			st_be32(b, (uint32_t)c->value);
		patch(bad, c->off, b, c->len);
		int ret = try_open(bad, true);
		if (ret == 0 || !strstr(errbuf, c->expect) || !strstr(errbuf, "bad.qcow2")) {
			fprintf(stderr, "case '%s': ret %d, error '%s'\n", c->name, ret, errbuf);
			fail();
		}
	}
	/* truncated file */
	assert_int_equal(sh("head -c 50 %s > %s", good, bad), 0);
	assert_true(try_open(bad, true) < 0);
	assert_non_null(strstr(errbuf, "qcow2 header too short"));	/* zeroes past EOF */
	assert_int_equal(sh("head -c 70000 %s > %s", good, bad), 0);
	assert_true(try_open(bad, true) < 0);
	/* extended L2 opens read-write; with clusters under 16 KiB it is refused */
	assert_int_equal(sh("qemu-img create -q -f qcow2 -o extended_l2=on %s 1M", bad), 0);
	assert_int_equal(try_open(bad, false), 0);
	assert_int_equal(sh("python3 -c 'import sys; f=open(sys.argv[1],\"r+b\"); f.seek(23); "
			    "f.write(bytes([13]))' %s", bad), 0);	/* cluster_bits 13 */
	assert_true(try_open(bad, true) < 0);
	assert_non_null(strstr(errbuf, "Unsupported subcluster size: 256"));
}

static void test_small_l2_cache_and_map(void **state)
{
	uint64_t size = 8 << 20;
	uint8_t *ref = calloc(1, size);
	const char *img = tpath("m.qcow2");
	struct block_open_opts o = { .format = "qcow2", .l2_cache_bytes = 2 * 4096 };
	struct block_extent ext;
	struct bdev *bs;
	uint8_t b[4096], f[4096];

	assert_int_equal(create_img(img, size, 4096, "1.1", 0, false, NULL, NULL), 0);
	/* a cache of two 4 KiB tables for an image needing four: eviction, no map() */
	assert_int_equal(bdev_open(img, &o, &bs, errbuf, sizeof(errbuf)), 0);
	random_writes(bs, ref, size, 40, 21, true);
	assert_reads(bs, ref, size);
	assert_int_equal(bs->fmt->map(bs, 0, 4096, &ext), -EAGAIN);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	/* full cache: map() returns the host offset of plain allocated data */
	bs = open_img(img, false);
	fill(b, sizeof(b), 8);
	assert_int_equal(bdev_pwrite(bs, 3 << 20, b, sizeof(b)), 0);
	assert_int_equal(bs->fmt->map(bs, (3 << 20) + 100, 50, &ext), 0);
	assert_int_equal(ext.status, BLOCK_STATUS_DATA);
	assert_int_equal(ext.len, 50);
	assert_int_equal(bfile_pread(bs->file, ext.host_offset - 100, f, sizeof(f)), 0);
	assert_memory_equal(f, b, sizeof(b));
	/* unallocated or zero clusters take the slow path */
	assert_int_equal(bdev_write_zeroes(bs, 3 << 20, 4096, true), 0);
	assert_int_equal(bs->fmt->map(bs, 3 << 20, 4096, &ext), -EAGAIN);
	bdev_close(bs);
	free(ref);
}

static void test_truncate_backing_info_prealloc(void **state)
{
	const char *img = tpath("t.qcow2"), *base = tpath("tb.raw");
	uint8_t b[4096], r[4096];
	struct bdev *bs;

	assert_int_equal(create_img(img, 1 << 20, 65536, "1.1", 0, false, NULL, NULL), 0);
	bs = open_img(img, false);
	fill(b, sizeof(b), 4);
	assert_int_equal(bdev_pwrite(bs, 0, b, sizeof(b)), 0);
	/* grow far enough to need a bigger L1 table */
	assert_int_equal(bs->fmt->truncate(bs, 3ull << 30, false, errbuf, sizeof(errbuf)), 0);
	assert_int_equal(bdev_size(bs), 3ull << 30);
	assert_int_equal(bdev_pwrite(bs, (3ull << 30) - 4096, b, sizeof(b)), 0);
	/* shrinking over data is refused; without --shrink too */
	assert_int_not_equal(bs->fmt->truncate(bs, 1 << 20, true, errbuf, sizeof(errbuf)), 0);
	assert_non_null(strstr(errbuf, "allocated"));
	assert_int_not_equal(bs->fmt->truncate(bs, 1 << 20, false, errbuf, sizeof(errbuf)), 0);
	assert_int_equal(bdev_discard(bs, (3ull << 30) - 65536, 65536), 0);
	assert_int_equal(bs->fmt->truncate(bs, 2 << 20, true, errbuf, sizeof(errbuf)), 0);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	assert_int_equal(sh("qemu-img info %s | grep -q 'virtual size: 2 MiB'", img), 0);
	/* rebase -u: set and remove a backing file */
	uint8_t *big = malloc(128 << 10);
	memset(big, 0x77, 128 << 10);
	write_file(base, big, 128 << 10);
	free(big);
	memset(r, 0x77, sizeof(r));
	bs = open_img(img, false);
	assert_int_equal(bs->fmt->change_backing(bs, "tb.raw", "raw"), 0);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img info %s | grep -q 'backing file format: raw'", img), 0);
	bs = open_img(img, true);
	assert_non_null(bdev_backing(bs));
	assert_string_equal(bs->backing_filename, "tb.raw");
	assert_int_equal(bdev_pread(bs, 65536, b, sizeof(b)), 0);
	assert_memory_equal(b, r, sizeof(b));
	bdev_close(bs);
	bs = open_img(img, false);
	assert_int_equal(bs->fmt->change_backing(bs, NULL, NULL), 0);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img info %s | grep -q backing", img), 1);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	/* preallocation modes */
	static const int modes[] = { PREALLOC_METADATA, PREALLOC_FALLOC, PREALLOC_FULL };
	for (int i = 0; i < 3; i++) {
		const struct block_format *f = block_format_find("qcow2");
		struct block_create_opts o = { .size = 4 << 20, .prealloc = modes[i] };
		assert_int_equal(f->create(img, &o, errbuf, sizeof(errbuf)), 0);
		assert_int_equal(sh("qemu-img check -q %s", img), 0);
		assert_int_equal(sh("qemu-img map --output=json %s | grep -q '\"data\": true'", img),
				 0);
		bs = open_img(img, true);
		assert_int_equal(bdev_pread(bs, 12345, b, sizeof(b)), 0);
		memset(r, 0, sizeof(r));
		assert_memory_equal(b, r, sizeof(b));
		bdev_close(bs);
	}
}

struct info_cap { char text[1024]; };

static void cap_str(void *o, const char *k, const char *v)
{
	struct info_cap *c = o;
	size_t n = strlen(c->text);
	snprintf(c->text + n, sizeof(c->text) - n, "%s=%s;", k, v);
}

static void cap_num(void *o, const char *k, uint64_t v)
{
	struct info_cap *c = o;
	size_t n = strlen(c->text);
	snprintf(c->text + n, sizeof(c->text) - n, "%s=%llu;", k, (unsigned long long)v);
}

static void cap_flag(void *o, const char *k, bool v)
{
	cap_str(o, k, v ? "true" : "false");
}

/* The format's info hook on a read-only open of img, as "key=value;" text. */
static void info_text(const char *img, struct info_cap *cap)
{
	struct block_info_writer w = { cap_str, cap_num, cap_flag, cap };
	struct bdev *bs = open_img(img, true);

	cap->text[0] = 0;
	assert_int_equal(bs->fmt->info(bs, &w), 0);
	bdev_close(bs);
}

static void test_info_and_extended_l2(void **state)
{
	const char *img = tpath("i.qcow2"), *x = tpath("x.qcow2"), *xr = tpath("x.raw");
	struct info_cap cap;

	assert_int_equal(create_img(img, 1 << 20, 0, "1.1", 8, true, NULL, NULL), 0);
	info_text(img, &cap);
	assert_non_null(strstr(cap.text, "compat=1.1;"));
	assert_non_null(strstr(cap.text, "lazy refcounts=true;"));
	assert_non_null(strstr(cap.text, "refcount bits=8;"));
	assert_non_null(strstr(cap.text, "corrupt=false;"));
	assert_int_equal(sh("qemu-img info %s | grep -q 'refcount bits: 8'", img), 0);
	/* extended L2 images written by qemu read back */
	assert_int_equal(sh("qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=65536 %s 4M"
			    " && qemu-io -c 'write -P 3 1000 5000' -c 'write -z 2M 4k' -c "
			    "'write -P 4 3M 64k' %s >/dev/null && qemu-img convert -O raw %s %s",
			    x, x, x, xr), 0);
	assert_int_equal(sh("%s readcheck %s %s", self_exe, x, xr), 0);
}

/* Format-specific info exactly as qemu-img 7.2 lists it (v2: no feature
 * flags), with the dirty bit as it is on disk: a read-only open neither
 * repairs nor clears it. */
static void assert_info(const char *img, const char *expect)
{
	struct info_cap cap;

	info_text(img, &cap);
	if (strcmp(cap.text, expect))
		fprintf(stderr, "info: %s\nexpected: %s\n", cap.text, expect);
	assert_string_equal(cap.text, expect);
}

static void test_info_v2_v3_dirty(void **state)
{
	const char *v2 = tpath("i2.qcow2"), *v3 = tpath("i3.qcow2");
	uint8_t b[8];

	assert_int_equal(create_img(v2, 1 << 20, 0, "0.10", 0, false, NULL, NULL), 0);
	assert_info(v2, "dirty-flag=false;compat=0.10;compression type=zlib;refcount bits=16;");
	assert_int_equal(create_img(v3, 1 << 20, 0, "1.1", 0, true, NULL, NULL), 0);
	assert_info(v3, "dirty-flag=false;compat=1.1;compression type=zlib;lazy refcounts=true;"
		    "refcount bits=16;corrupt=false;extended l2=false;");
	st_be64(b, QCOW2_INCOMPAT_DIRTY);
	patch(v3, QH_INCOMPAT, b, 8);
	assert_info(v3, "dirty-flag=true;compat=1.1;compression type=zlib;lazy refcounts=true;"
		    "refcount bits=16;corrupt=false;extended l2=false;");
	assert_int_equal(header_u64(v3, QH_INCOMPAT), QCOW2_INCOMPAT_DIRTY);
	assert_int_equal(sh("qemu-img info --output=json %s | grep -q '\"dirty-flag\": true'", v3),
			 0);
}

/* compression_type zstd (1, incompatible bit 3): created v3 only, shown
 * by info, taken by our compressed writes that qemu-img checks and
 * compares; a damaged zstd cluster reads as -EIO. At open the bit must
 * match the type and types above 1 are refused. */
static void test_zstd_compression_type(void **state)
{
	const struct block_format *f = block_format_find("qcow2");
	const char *raw = tpath("z.raw"), *img = tpath("z.qcow2"), *bad = tpath("zbad.qcow2");
	uint64_t size = 1 << 20, cs = 65536, l2, host;
	struct block_create_opts o = { .size = size, .compat = "0.10",
				       .compression_type = "zstd" };
	uint8_t *ref = calloc(1, size), b[8], junk[64];
	struct bdev *bs;

	assert_non_null(f);
	assert_int_equal(f->create(img, &o, errbuf, sizeof(errbuf)), -EINVAL);
	assert_non_null(strstr(errbuf, "Non-zlib compression type is only supported with "
				       "compatibility level 1.1 and above"));
	o.compat = NULL;
	assert_int_equal(f->create(img, &o, errbuf, sizeof(errbuf)), 0);
	assert_int_equal(header_u64(img, QH_INCOMPAT), QCOW2_INCOMPAT_COMPRESSION);
	assert_info(img, "dirty-flag=false;compat=1.1;compression type=zstd;lazy refcounts=false;"
		    "refcount bits=16;corrupt=false;extended l2=false;");
	for (uint64_t i = 0; i < size; i += 4096)
		fill(ref + i, 2048, i);		/* half random, half zero: compressible */
	write_file(raw, ref, size);
	bs = open_img(img, false);
	write_compressed_all(bs, ref, size, cs);
	assert_reads(bs, ref, size);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img check %s | grep -q '100.00%% compressed'", img), 0);
	assert_int_equal(sh("qemu-img compare -q %s %s", img, raw), 0);

	/* garbage over the first cluster's frame: an I/O error, no crash */
	assert_int_equal(sh("cp %s %s", img, bad), 0);
	l2 = header_u64(bad, (unsigned)(header_u64(bad, 40) & L1E_OFFSET_MASK));
	host = header_u64(bad, (unsigned)(l2 & L1E_OFFSET_MASK));
	assert_true(host & QCOW_OFLAG_COMPRESSED);
	memset(junk, 0xa5, sizeof(junk));
	patch(bad, (unsigned)(host & ((1ull << (62 - (16 - 8))) - 1)), junk, sizeof(junk));
	bs = open_img(bad, true);
	assert_int_equal(bdev_pread(bs, 0, ref, cs), -EIO);
	bdev_close(bs);

	/* the type and the incompatible bit at open */
	assert_int_equal(sh("cp %s %s", img, bad), 0);
	patch(bad, 104, "\2", 1);
	assert_true(try_open(bad, true) < 0);
	assert_non_null(strstr(errbuf, "qcow2: unknown compression type: 2"));
	assert_int_equal(sh("cp %s %s", img, bad), 0);
	memset(b, 0, sizeof(b));
	patch(bad, QH_INCOMPAT, b, 8);
	assert_true(try_open(bad, true) < 0);
	assert_non_null(strstr(errbuf, "Compression type incompatible feature bit must be set"));
	assert_int_equal(create_img(bad, size, 0, "1.1", 0, false, NULL, NULL), 0);
	st_be64(b, QCOW2_INCOMPAT_COMPRESSION);
	patch(bad, QH_INCOMPAT, b, 8);
	assert_true(try_open(bad, true) < 0);
	assert_non_null(strstr(errbuf, "Compression type incompatible feature bit must not be "
				       "set"));
	free(ref);
}

/* Check as qemu-img: a cluster in use whose refcount is 0 needs a rebuild
 * of the refcount structure, which -r leaks refuses (-EIO, one check
 * error) and -r all does (the old structure then leaks and is freed, not
 * counted); leaked clusters count towards the image end offset; a repair
 * that leaves no corruption clears the dirty bit. */
static void test_check_rebuild_as_qemu(void **state)
{
	const char *img = tpath("rb.qcow2");
	struct block_open_opts o = { .format = "qcow2", .for_check = true };
	struct block_check_result r;
	uint8_t buf[4096], rd[4096], b[8];
	struct bdev *bs;
	struct qcow2 *s;
	int64_t leak;
	uint64_t data;

	assert_int_equal(create_img(img, 1 << 20, 4096, "1.1", 0, true, NULL, NULL), 0);
	bs = open_img(img, false);
	fill(buf, sizeof(buf), 9);
	assert_int_equal(bdev_pwrite(bs, 0, buf, sizeof(buf)), 0);
	assert_int_equal(bdev_flush(bs), 0);
	s = bs->opaque;
	leak = qcow2_alloc_clusters(s, 1);		/* the last cluster, leaked */
	assert_true(leak > 0);
	assert_int_equal(bfile_pwrite(bs->file, (uint64_t)leak, buf, sizeof(buf)), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bs->fmt->check(bs, BLOCK_REPAIR_NONE, &r, NULL), 0);
	assert_int_equal(r.leaks, 1);
	assert_int_equal(r.image_end_offset, (uint64_t)leak + 4096);
	data = s->l1[0] & L1E_OFFSET_MASK;		/* the L2 table: refcount 0 */
	assert_int_equal(qcow2_set_refcount(s, data >> s->cluster_bits, 0), 0);
	bdev_close(bs);
	st_be64(b, QCOW2_INCOMPAT_DIRTY);		/* as a crash would leave it */
	patch(img, QH_INCOMPAT, b, 8);
	assert_int_equal(sh("qemu-img check -q %s >/dev/null 2>&1", img), 2);
	assert_int_equal(sh("cp %s %s.q && qemu-img check -q -r leaks %s.q >/dev/null 2>&1",
			    img, img, img), 1);
	assert_int_equal(bdev_open(img, &o, &bs, errbuf, sizeof(errbuf)), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bs->fmt->check(bs, BLOCK_REPAIR_LEAKS, &r, NULL), -EIO);
	assert_int_equal(r.check_errors, 1);
	assert_int_equal(r.leaks_fixed, 0);
	bdev_close(bs);
	assert_int_equal(header_u64(img, QH_INCOMPAT), QCOW2_INCOMPAT_DIRTY);
	assert_int_equal(bdev_open(img, &o, &bs, errbuf, sizeof(errbuf)), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bs->fmt->check(bs, BLOCK_REPAIR_ALL, &r, NULL), 0);
	assert_int_equal(r.corruptions + r.leaks + r.check_errors, 0);
	assert_true(r.corruptions_fixed >= 1);
	assert_int_equal(r.leaks_fixed, 1);		/* the leak, not the old structure */
	bdev_close(bs);
	assert_int_equal(header_u64(img, QH_INCOMPAT), 0);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	bs = open_img(img, true);
	assert_int_equal(bdev_pread(bs, 0, rd, sizeof(rd)), 0);
	assert_memory_equal(rd, buf, sizeof(buf));
	bdev_close(bs);
}

/* Extended L2 images (qemu-img create -o extended_l2=on) take writes: a
 * small write allocates the cluster and marks only the subclusters it
 * covers (the rest keeps reading the backing file), zeroes and discards
 * set the bitmap's zero bits; qemu-img check is clean, qemu-img compare and
 * map agree, qemu-io writes afterwards read back through us. */
static void test_extended_l2_writes(void **state)
{
	uint64_t size = 8 << 20, cs = 65536;
	uint8_t *ref = malloc(size), *buf = malloc(size);
	char base[256], img[256], raw[256];
	struct bdev *bs;

	snprintf(base, sizeof(base), "%s", tpath("xb.raw"));
	snprintf(img, sizeof(img), "%s", tpath("xw.qcow2"));
	snprintf(raw, sizeof(raw), "%s", tpath("xw.raw"));
	for (int back = 0; back < 2; back++) {
		fill(ref, size, 77);
		write_file(base, ref, size);
		if (!back)
			memset(ref, 0, size);
		assert_int_equal(sh("qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k"
				    "%s %s 8M && qemu-io -c 'write -P 3 %llu 5000' %s >/dev/null",
				    back ? " -b xb.raw -F raw" : "", img,
				    (unsigned long long)(3 * cs + 1000), img), 0);
		memset(ref + 3 * cs + 1000, 3, 5000);
		bs = open_img(img, false);
		fill(buf, 4096, 5);		/* subclusters 4..6 of cluster 0 */
		assert_int_equal(bdev_pwrite(bs, 10000, buf, 4096), 0);
		memcpy(ref + 10000, buf, 4096);
		fill(buf, 3000, 6);		/* into qemu's cluster, next to its data */
		assert_int_equal(bdev_pwrite(bs, 3 * cs + 8000, buf, 3000), 0);
		memcpy(ref + 3 * cs + 8000, buf, 3000);
		fill(buf, 3 * cs, 7);		/* spanning clusters */
		assert_int_equal(bdev_pwrite(bs, 5 * cs - 100, buf, 3 * cs), 0);
		memcpy(ref + 5 * cs - 100, buf, 3 * cs);
		assert_int_equal(bdev_write_zeroes(bs, 6 * cs, cs, back), 0);
		memset(ref + 6 * cs, 0, cs);
		assert_int_equal(bdev_write_zeroes(bs, 20 * cs + 10, 5000, false), 0);
		memset(ref + 20 * cs + 10, 0, 5000);
		random_writes(bs, ref, size, 30, 11 + back, true);
		assert_reads(bs, ref, size);
		assert_int_equal(bdev_flush(bs), 0);
		bdev_close(bs);
		write_file(raw, ref, size);
		assert_int_equal(sh("qemu-img check -q %s", img), 0);
		assert_int_equal(sh("qemu-img compare -q -f qcow2 -F raw %s %s", img, raw), 0);
		assert_int_equal(sh("%s readcheck %s %s", self_exe, img, raw), 0);
		/* qemu writes after us, we read */
		assert_int_equal(sh("qemu-io -c 'write -P 9 %llu 1000' %s >/dev/null",
				    (unsigned long long)(5 * cs + 3000), img), 0);
		memset(ref + 5 * cs + 3000, 9, 1000);
		write_file(raw, ref, size);
		assert_int_equal(sh("%s readcheck %s %s", self_exe, img, raw), 0);
	}
	/* clusters shared with an internal snapshot are copied, bitmaps kept */
	write_file(tpath("xs-snap.raw"), ref, size);
	bs = open_img(img, false);
	pthread_mutex_lock(&bs->lock);
	assert_int_equal(bs->fmt->snapshot_create(bs, "s", errbuf, sizeof(errbuf)), 0);
	pthread_mutex_unlock(&bs->lock);
	random_writes(bs, ref, size, 20, 99, true);
	assert_reads(bs, ref, size);
	bdev_close(bs);
	write_file(raw, ref, size);
	assert_int_equal(sh("qemu-img check -q %s && qemu-img compare -q -f qcow2 -F raw %s %s",
			    img, img, raw), 0);
	assert_int_equal(sh("qemu-img snapshot -a s %s && qemu-img compare -q -f qcow2 -F raw "
			    "%s %s && qemu-img check -q %s", img, img, tpath("xs-snap.raw"),
			    img), 0);

	/* only the touched subclusters of a fresh cluster are allocated */
	assert_int_equal(sh("qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k "
			    "-b xb.raw -F raw %s 8M", img), 0);
	bs = open_img(img, false);
	fill(buf, 4096, 8);
	assert_int_equal(bdev_pwrite(bs, 10000, buf, 4096), 0);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img map --output=json %s | head -3 | tr -d ' ' | "
			    "grep -q '\"start\":8192,\"length\":6144,\"depth\":0'", img), 0);
	assert_int_equal(sh("qemu-img check -q %s", img), 0);
	free(ref);
	free(buf);
}

static int check_img(const char *path, struct block_check_result *r)
{
	struct block_open_opts o = { .format = "qcow2", .read_only = true, .no_backing = true,
				     .for_check = true };
	struct bdev *bs = NULL;
	int ret = bdev_open(path, &o, &bs, errbuf, sizeof(errbuf));

	assert_int_equal(ret, 0);
	memset(r, 0, sizeof(*r));
	ret = bs->fmt->check(bs, BLOCK_REPAIR_NONE, r, NULL);
	bdev_close(bs);
	return ret;
}

/* Persistent dirty bitmaps (qemu-img bitmap --add): kept, marked in-use at
 * our first write as QEMU does while it has the image open; read-only use
 * and read-write opens without writes leave them alone; our check counts
 * their clusters; header rewrites keep the extension; resize is refused.
 * A directory that does not validate gets its autoclear bit cleared. */
/* The info hook lists the image's bitmaps (keys as qcow2.h describes)
 * between "lazy refcounts" and "refcount bits", as qemu-img. */
static void assert_bitmaps_info(const char *img, const char *expect)
{
	struct info_cap cap;

	info_text(img, &cap);
	if (!strstr(cap.text, expect))
		fprintf(stderr, "info: %s\nexpected: %s\n", cap.text, expect);
	assert_non_null(strstr(cap.text, expect));
	assert_non_null(strstr(cap.text, "lazy refcounts=false;bitmaps[0]"));
}

static void test_dirty_bitmaps(void **state)
{
	char img[256];
	struct block_check_result r;
	struct bdev *bs;
	uint8_t buf[4096];
	char err[256];

	snprintf(img, sizeof(img), "%s", tpath("bm.qcow2"));
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 8M && qemu-img bitmap --add %s b0 && "
			    "qemu-io -c 'write -P 1 0 1M' %s >/dev/null", img, img, img), 0);
	bs = open_img(img, false);			/* no write: untouched */
	assert_int_equal(bdev_pread(bs, 0, buf, sizeof(buf)), 0);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img info %s | grep -q in-use", img), 1);
	assert_bitmaps_info(img, "bitmaps[0].flags[]=;bitmaps[0].flags[0]=auto;"
			    "bitmaps[0].name=b0;bitmaps[0].granularity=65536;refcount bits=");
	assert_int_equal(check_img(img, &r), 0);
	assert_int_equal(r.leaks + r.corruptions, 0);	/* bitmap clusters counted */

	bs = open_img(img, false);
	pthread_mutex_lock(&bs->lock);
	assert_true(bs->fmt->truncate(bs, 16 << 20, false, err, sizeof(err)) < 0);
	pthread_mutex_unlock(&bs->lock);
	assert_non_null(strstr(err, "bitmaps"));
	memset(buf, 2, sizeof(buf));
	assert_int_equal(bdev_pwrite(bs, 2 << 20, buf, sizeof(buf)), 0);
	pthread_mutex_lock(&bs->lock);
	assert_int_equal(bs->fmt->change_backing(bs, NULL, NULL), 0);	/* header rewrite */
	pthread_mutex_unlock(&bs->lock);
	bdev_close(bs);
	assert_int_equal(sh("qemu-img info %s | grep -A4 bitmaps: | grep -q in-use", img), 0);
	/* in-use listed before auto; a disabled bitmap has no flags */
	assert_int_equal(sh("qemu-img bitmap --add -g 128k --disable %s 'b 1'", img), 0);
	assert_bitmaps_info(img, "bitmaps[0].flags[]=;bitmaps[0].flags[0]=in-use;"
			    "bitmaps[0].flags[1]=auto;bitmaps[0].name=b0;"
			    "bitmaps[0].granularity=65536;bitmaps[1].flags[]=;bitmaps[1].name=b 1;"
			    "bitmaps[1].granularity=131072;refcount bits=");
	assert_int_equal(sh("qemu-img check -q %s 2>&1 | grep -q . && exit 1; "
			    "qemu-img check -q %s", img, img), 0);
	assert_int_equal(check_img(img, &r), 0);
	assert_int_equal(r.leaks + r.corruptions, 0);
	assert_int_equal(sh("qemu-io -c 'read -P 2 2M 4k' %s | grep -q '^read 4096'", img), 0);

	/* a malformed directory (bitmap type 2): the autoclear bit goes */
	assert_int_equal(sh("python3 -c 'import struct,sys; f=open(sys.argv[1],\"r+b\"); "
			    "d=f.read(); p=struct.unpack(\">I\",d[100:104])[0]\n"
			    "while True:\n t,l=struct.unpack(\">II\",d[p:p+8])\n"
			    " if t==0x23852875: o=struct.unpack(\">Q\",d[p+24:p+32])[0]; "
			    "f.seek(o+16); f.write(bytes([2])); break\n"
			    " p+=8+((l+7)&~7)' %s", img), 0);
	bs = open_img(img, false);
	bdev_close(bs);
	assert_int_equal(sh("python3 -c 'import struct,sys; d=open(sys.argv[1],\"rb\").read(); "
			    "sys.exit(struct.unpack(\">Q\",d[88:96])[0])' %s", img), 0);
}

/* Extended L2 images with preallocation: every cluster allocated and
 * linked with an all-clear subcluster bitmap (as qemu-img writes them),
 * so they read as zeroes or from the backing file; writes then go into
 * the preallocated clusters in place. qemu-img check is clean and
 * compare agrees with a qemu-img-made image and with a raw mirror. */
static void test_extended_l2_prealloc(void **state)
{
	static const int modes[] = { PREALLOC_METADATA, PREALLOC_FALLOC, PREALLOC_FULL };
	static const char *names[] = { "metadata", "falloc", "full" };
	const struct block_format *f = block_format_find("qcow2");
	uint64_t size = 3 << 20, cs = 32768;
	uint8_t *ref = malloc(size);
	char img[256], qimg[256], base[256];
	struct stat st_before, st_after;
	struct bdev *bs;

	snprintf(img, sizeof(img), "%s", tpath("xp.qcow2"));
	snprintf(qimg, sizeof(qimg), "%s", tpath("xpq.qcow2"));
	snprintf(base, sizeof(base), "%s", tpath("xpb.raw"));
	fill(ref, size, 77);
	write_file(base, ref, size);
	for (int backed = 0; backed < 2; backed++) {
		for (int i = 0; i < 3; i++) {
			struct block_create_opts o = { .size = size, .cluster_size = (uint32_t)cs,
						       .extended_l2 = true, .prealloc = modes[i],
						       .backing_file = backed ? "xpb.raw" : NULL,
						       .backing_format = backed ? "raw" : NULL };

			assert_int_equal(f->create(img, &o, errbuf, sizeof(errbuf)), 0);
			assert_int_equal(sh("qemu-img check -q %s", img), 0);
			assert_int_equal(sh("qemu-img create -q -f qcow2 -o extended_l2=on,"
					    "cluster_size=%llu,preallocation=%s %s %s %llu",
					    (unsigned long long)cs, names[i],
					    backed ? "-b xpb.raw -F raw" : "", qimg,
					    (unsigned long long)size), 0);
			assert_int_equal(sh("qemu-img compare -q %s %s", img, qimg), 0);
			/* every cluster linked, no subcluster allocated or zero */
			assert_int_equal(sh("python3 -c 'import struct,sys; d=open(sys.argv[1],\"rb\")"
					    ".read(); l1=struct.unpack(\">Q\",d[40:48])[0]; "
					    "l2=struct.unpack(\">Q\",d[l1:l1+8])[0]&0xfffffffffe00; "
					    "e=[struct.unpack(\">QQ\",d[l2+16*k:l2+16*k+16]) for k in "
					    "range(%llu)]; sys.exit(not all(a>>63 and a&0xfffffffffe00 "
					    "and b==0 for a,b in e))' %s",
					    (unsigned long long)(size / cs), img), 0);
			if (!backed)
				memset(ref, 0, size);
			else
				fill(ref, size, 77);
			bs = open_img(img, false);
			assert_reads(bs, ref, size);
			assert_int_equal(stat(img, &st_before), 0);
			random_writes(bs, ref, size, 30, 500 + (uint64_t)i, false);
			assert_int_equal(bdev_flush(bs), 0);
			assert_int_equal(stat(img, &st_after), 0);
			assert_int_equal(st_after.st_size, st_before.st_size);	/* in place */
			random_writes(bs, ref, size, 20, 600 + (uint64_t)i, true);
			assert_reads(bs, ref, size);
			bdev_close(bs);
			write_file(tpath("xp.raw"), ref, size);
			assert_int_equal(sh("qemu-img check -q %s", img), 0);
			assert_int_equal(sh("qemu-img compare -q %s %s", img, tpath("xp.raw")), 0);
		}
	}
	free(ref);
	/* without extended L2, preallocated clusters would hide the backing
	 * file: refused, as by qemu-img */
	struct block_create_opts o = { .size = size, .prealloc = PREALLOC_METADATA,
				       .backing_file = "xpb.raw", .backing_format = "raw" };
	assert_int_not_equal(f->create(img, &o, errbuf, sizeof(errbuf)), 0);
	assert_non_null(strstr(errbuf, "extended_l2"));
}

/* ---- helper modes for the integration tests ---- */

static int mode_readcheck(const char *img, const char *raw)
{
	struct block_open_opts o = { .read_only = true };
	struct bdev *bs;
	FILE *f = fopen(raw, "rb");
	uint8_t *a = malloc(1 << 20), *b = malloc(1 << 20);
	int ret = bdev_open(img, &o, &bs, errbuf, sizeof(errbuf));

	if (ret < 0 || !f) {
		fprintf(stderr, "readcheck: %s\n", ret < 0 ? errbuf : raw);
		return 2;
	}
	for (uint64_t off = 0; off < bdev_size(bs); off += 1 << 20) {
		size_t n = bdev_size(bs) - off < (1 << 20) ? bdev_size(bs) - off : (1 << 20);
		memset(b, 0, n);
		if (fread(b, 1, n, f) == 0 && n) { /* raw may be shorter: zeroes */ }
		if (bdev_pread(bs, off, a, n) < 0) {
			fprintf(stderr, "readcheck: read error at %llu\n", (unsigned long long)off);
			return 1;
		}
		if (memcmp(a, b, n)) {
			for (size_t i = 0; i < n; i++)
				if (a[i] != b[i]) {
					fprintf(stderr, "readcheck: %s differs at %llu\n", img,
						(unsigned long long)(off + i));
					break;
				}
			return 1;
		}
	}
	bdev_close(bs);
	fclose(f);
	free(a);
	free(b);
	return 0;
}

static int mode_randwrite(const char *img, const char *raw, uint64_t seed, unsigned n)
{
	struct block_open_opts o = { 0 };
	struct bdev *bs;
	int fd = open(raw, O_RDWR);
	uint64_t st = seed | 1, size;
	uint8_t *buf = malloc(300 << 10);

	if (bdev_open(img, &o, &bs, errbuf, sizeof(errbuf)) < 0 || fd < 0) {
		fprintf(stderr, "randwrite: %s\n", errbuf);
		return 2;
	}
	size = bdev_size(bs);
	for (unsigned i = 0; i < n; i++) {
		uint64_t len = 1 + rnd(&st) % (300 << 10), off = rnd(&st) % size;
		unsigned kind = (unsigned)(rnd(&st) % 8);
		if (off + len > size)
			len = size - off;
		if (kind == 0 || kind == 1) {
			int r = kind ? bdev_write_zeroes(bs, off, len, true) :
				bdev_discard(bs, off & ~65535ull, 65536 < size - (off & ~65535ull) ?
					     65536 : size - (off & ~65535ull));
			if (r < 0)
				return 1;
			if (kind == 0) {	/* discard: read back what the image says */
				off &= ~65535ull;
				len = 65536 < size - off ? 65536 : size - off;
				if (bdev_pread(bs, off, buf, len) < 0)
					return 1;
			} else {
				memset(buf, 0, len);
			}
		} else {
			fill(buf, len, rnd(&st));
			if (bdev_pwrite(bs, off, buf, len) < 0)
				return 1;
		}
		if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
			return 2;
	}
	bdev_close(bs);
	close(fd);
	return 0;
}

/* Crash writer: write k covers a random range with pattern (seed, k).
 * The log gets "k" after a flush that completed after write k. */
static void crash_op(uint64_t seed, uint64_t k, uint64_t size, uint64_t *off, uint64_t *len,
		     unsigned *kind)
{
	uint64_t st = (seed * 1000003 + k) | 1;
	rnd(&st);
	*kind = (unsigned)(rnd(&st) % 10);	/* 0: discard, 1: zeroes, else write */
	*len = 1 + rnd(&st) % (128 << 10);
	*off = rnd(&st) % size;
	if (*off + *len > size)
		*len = size - *off;
}

static int mode_crashwriter(const char *img, const char *log, uint64_t seed)
{
	struct block_open_opts o = { 0 };
	struct bdev *bs;
	uint8_t *buf = malloc(128 << 10);
	FILE *lf = fopen(log, "a");

	if (bdev_open(img, &o, &bs, errbuf, sizeof(errbuf)) < 0 || !lf) {
		fprintf(stderr, "crashwriter: %s\n", errbuf);
		return 2;
	}
	for (uint64_t k = 0;; k++) {
		uint64_t off, len;
		unsigned kind;
		int r;
		crash_op(seed, k, bdev_size(bs), &off, &len, &kind);
		if (kind == 0)
			r = bdev_discard(bs, off, len);
		else if (kind == 1)
			r = bdev_write_zeroes(bs, off, len, true);
		else {
			fill(buf, len, seed * 7919 + k);
			r = bdev_pwrite(bs, off, buf, len);
		}
		if (r < 0) {
			fprintf(stderr, "crashwriter: op %llu failed: %d\n", (unsigned long long)k, r);
			return 1;
		}
		if (k % 4 == 3) {
			if (bdev_flush(bs) < 0)
				return 1;
			fprintf(lf, "%llu\n", (unsigned long long)k);
			fflush(lf);
		}
	}
}

/* Replays ops 0..last (last logged flush) into a reference: discarded
 * ranges are "don't care", everything else must match. */
static int mode_crashverify(const char *img, const char *log, uint64_t seed)
{
	struct block_open_opts o = { .read_only = true };
	struct bdev *bs;
	FILE *lf = fopen(log, "r");
	unsigned long long last = 0, v;
	bool any = false;
	uint8_t *ref, *care, *got, *buf = malloc(128 << 10);
	uint64_t size;

	while (lf && fscanf(lf, "%llu", &v) == 1)
		last = v, any = true;
	if (lf)
		fclose(lf);
	if (bdev_open(img, &o, &bs, errbuf, sizeof(errbuf)) < 0) {
		fprintf(stderr, "crashverify: %s\n", errbuf);
		return 2;
	}
	if (!any)
		return 0;
	size = bdev_size(bs);
	ref = calloc(1, size);
	care = calloc(1, size);
	got = malloc(size);
	for (uint64_t k = 0; k <= last; k++) {
		uint64_t off, len;
		unsigned kind;
		crash_op(seed, k, size, &off, &len, &kind);
		if (kind == 0) {
			memset(care + off, 0, len);
		} else if (kind == 1) {
			memset(ref + off, 0, len);
			memset(care + off, 1, len);
		} else {
			fill(buf, len, seed * 7919 + k);
			memcpy(ref + off, buf, len);
			memset(care + off, 1, len);
		}
	}
	/* ops after the flush may have landed too: they are don't-care */
	for (uint64_t k = last + 1; k <= last + 4; k++) {
		uint64_t off, len;
		unsigned kind;
		crash_op(seed, k, size, &off, &len, &kind);
		memset(care + off, 0, len);
	}
	if (bdev_pread(bs, 0, got, size) < 0)
		return 1;
	for (uint64_t i = 0; i < size; i++)
		if (care[i] && got[i] != ref[i]) {
			fprintf(stderr, "crashverify: byte %llu lost (op log up to %llu)\n",
				(unsigned long long)i, last);
			return 1;
		}
	bdev_close(bs);
	return 0;
}

static int setup(void **state)
{
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "readcheck"))
		return mode_readcheck(argv[2], argv[3]);
	if (argc >= 6 && !strcmp(argv[1], "randwrite"))
		return mode_randwrite(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				      (unsigned)strtoul(argv[5], NULL, 0));
	if (argc >= 5 && !strcmp(argv[1], "crashwriter"))
		return mode_crashwriter(argv[2], argv[3], strtoull(argv[4], NULL, 0));
	if (argc >= 5 && !strcmp(argv[1], "crashverify"))
		return mode_crashverify(argv[2], argv[3], strtoull(argv[4], NULL, 0));

	/* tmpfs when available: fdatasync is what the disk makes slow */
	static char exe[4096];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (el > 0) {
		exe[el] = 0;
		self_exe = exe;
	}
	snprintf(tdir, sizeof(tdir), "%s/test_qcow2.XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(tdir))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rw_patterns),
		cmocka_unit_test(test_qemu_written_read),
		cmocka_unit_test(test_backing_cow),
		cmocka_unit_test(test_make_empty),
		cmocka_unit_test(test_zero_and_discard),
		cmocka_unit_test(test_refcount_widths),
		cmocka_unit_test(test_compressed),
		cmocka_unit_test(test_snapshots),
		cmocka_unit_test(test_check_leak_and_repair),
		cmocka_unit_test(test_lazy_refcounts_dirty),
		cmocka_unit_test(test_corrupt_bit),
		cmocka_unit_test(test_malformed_headers),
		cmocka_unit_test(test_small_l2_cache_and_map),
		cmocka_unit_test(test_truncate_backing_info_prealloc),
		cmocka_unit_test(test_info_and_extended_l2),
		cmocka_unit_test(test_info_v2_v3_dirty),
		cmocka_unit_test(test_zstd_compression_type),
		cmocka_unit_test(test_check_rebuild_as_qemu),
		cmocka_unit_test(test_extended_l2_writes),
		cmocka_unit_test(test_extended_l2_prealloc),
		cmocka_unit_test(test_dirty_bitmaps),
		cmocka_unit_test(test_direct_io),
	};
	if (getenv("QCOW2_TEST"))
		cmocka_set_test_filter(getenv("QCOW2_TEST"));
	int ret = cmocka_run_group_tests(tests, setup, NULL);
	if (!getenv("KEEP_TMP"))
		sh("rm -rf %s", tdir);
	return ret;
}
