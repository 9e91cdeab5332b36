/* Unit tests for the qcow (version 1) format, block/qcow.c: creation with
 * qemu-img's layout, read/write round trips across clusters and L2 tables,
 * backing files and copy-on-write of partial clusters, compressed
 * clusters, block status of unallocated clusters, and hostile headers and
 * tables rejected with clear errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <endian.h>
#include "tests/unit/fmt_test_util.h"

extern struct block_format block_format_qcow;

static void put_be32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

static void create_qcow(const char *path, uint64_t size, const char *backing, uint32_t cluster)
{
	struct block_create_opts o = { .size = size, .backing_file = backing,
				       .cluster_size = cluster };
	char err[256] = "";

	if (fmt_create(&block_format_qcow, path, &o, err, sizeof(err)) < 0)
		fail_msg("create %s: %s", path, err);
}

static struct bdev *open_rw(const char *path)
{
	struct bdev *bs = NULL;
	char err[512] = "";

	if (fmt_open(path, "qcow", false, &bs, err, sizeof(err)) < 0)
		fail_msg("open %s: %s", path, err);
	return bs;
}

/* Same bytes as `qemu-img create -f qcow a.qcow 10M` (and with -b). */
static void test_create_layout_matches_qemu(void **state)
{
	const char *a = fmt_path("a.qcow"), *b = fmt_path("b.qcow");
	static const uint8_t want_a[48] = {
		'Q', 'F', 'I', 0xfb, 0, 0, 0, 1, [24] = 0, 0, 0, 0, 0, 0xa0, 0, 0,
		[32] = 12, 9, [47] = 0x30,
	};
	static const uint8_t want_b[56] = {
		'Q', 'F', 'I', 0xfb, 0, 0, 0, 1, [15] = 0x30, [19] = 8,
		[24] = 0, 0, 0, 0, 0, 0xa0, 0, 0, [32] = 9, 12, [47] = 0x38,
		'b', 'a', 's', 'e', '.', 'r', 'a', 'w',
	};
	uint8_t *buf;
	size_t len;

	create_qcow(a, 10 << 20, NULL, 0);
	buf = fmt_read_file(a, &len);
	assert_int_equal(len, 560);
	assert_memory_equal(buf, want_a, sizeof(want_a));
	free(buf);

	create_qcow(b, 10 << 20, "base.raw", 0);
	buf = fmt_read_file(b, &len);
	assert_int_equal(len, 568);
	assert_memory_equal(buf, want_b, sizeof(want_b));
	free(buf);
}

static void test_round_trip(void **state)
{
	const char *p = fmt_path("rt.qcow");
	size_t size = 6 << 20;
	uint8_t *ref = calloc(1, size), *chunk = malloc(300000);
	static const struct { uint64_t off; size_t len; } w[] = {
		{ 0, 512 }, { 100, 7 }, { 4095, 2 }, { 8192, 4096 }, { 65536 + 3, 70000 },
		{ (2 << 20) - 1000, 3000 },		/* crosses an L2 table */
		{ (6 << 20) - 4096, 4096 }, { 3 << 20, 300000 }, { 4090, 20 },
	};
	struct bdev *bs;

	create_qcow(p, size, NULL, 0);
	bs = open_rw(p);
	fmt_assert_contents(bs, ref, size);
	for (unsigned i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		fmt_pattern(chunk, w[i].len, w[i].off, i + 1);
		assert_int_equal(bdev_pwrite(bs, w[i].off, chunk, w[i].len), 0);
		memcpy(ref + w[i].off, chunk, w[i].len);
	}
	fmt_assert_contents(bs, ref, size);
	assert_int_equal(bdev_flush(bs), 0);
	bdev_close(bs);

	bs = open_rw(p);
	fmt_assert_contents(bs, ref, size);
	assert_int_equal(bdev_pwrite(bs, size - 1, chunk, 2), -EINVAL);
	bdev_close(bs);
	free(ref);
	free(chunk);
}

static void test_backing_and_partial_cow(void **state)
{
	const char *base = fmt_path("base.raw"), *top = fmt_path("top.qcow");
	size_t size = 1 << 20;
	uint8_t *ref = malloc(size), data[5000];
	struct block_create_opts o = { .size = size, .backing_file = "base.raw",
				       .cluster_size = 4096 };
	struct bdev *bs;
	unsigned st;
	uint64_t host;
	char err[256];

	fmt_pattern(ref, size, 0, 77);
	fmt_write_file(base, ref, size);
	assert_int_equal(fmt_create(&block_format_qcow, top, &o, err, sizeof(err)), 0);
	bs = open_rw(top);
	assert_non_null(bdev_backing(bs));
	fmt_assert_contents(bs, ref, size);
	assert_int_equal(bdev_block_status(bs, 0, size, &st, &host), (int64_t)size);
	assert_int_equal(st, BLOCK_STATUS_BACKING);

	/* A write into the middle of a 4 KiB cluster keeps the backing bytes around it. */
	fmt_pattern(data, 100, 0, 5);
	assert_int_equal(bdev_pwrite(bs, 4096 + 1000, data, 100), 0);
	memcpy(ref + 4096 + 1000, data, 100);
	fmt_pattern(data, sizeof(data), 0, 6);
	assert_int_equal(bdev_pwrite(bs, 20000, data, sizeof(data)), 0);
	memcpy(ref + 20000, data, sizeof(data));
	fmt_assert_contents(bs, ref, size);
	assert_int_equal(bdev_block_status(bs, 0, size, &st, &host), 4096);
	assert_int_equal(st, BLOCK_STATUS_BACKING);
	assert_int_equal(bdev_block_status(bs, 4096, size - 4096, &st, &host), 4096);
	assert_int_equal(st, BLOCK_STATUS_DATA);
	bdev_close(bs);

	bs = open_rw(top);
	fmt_assert_contents(bs, ref, size);

	/* make_empty (commit): as QEMU, a zeroed L1 and the file cut after it */
	assert_non_null(bs->fmt->make_empty);
	pthread_mutex_lock(&bs->lock);
	assert_int_equal(bs->fmt->make_empty(bs), 0);
	pthread_mutex_unlock(&bs->lock);
	fmt_pattern(ref, size, 0, 77);
	fmt_assert_contents(bs, ref, size);
	assert_int_equal(bdev_block_status(bs, 0, size, &st, &host), (int64_t)size);
	assert_int_equal(st, BLOCK_STATUS_BACKING);
	fmt_pattern(data, 100, 0, 8);
	assert_int_equal(bdev_pwrite(bs, 300, data, 100), 0);
	memcpy(ref + 300, data, 100);
	bdev_close(bs);
	{
		size_t len;
		uint8_t *file = fmt_read_file(top, &len);

		assert_int_equal(len, 4096 + 4096 * 8 + 4096);	/* L1; aligned L2; a cluster */
		free(file);
	}
	bs = open_rw(top);
	fmt_assert_contents(bs, ref, size);
	bdev_close(bs);
	free(ref);
}

static void test_compressed_clusters(void **state)
{
	const char *p = fmt_path("c.qcow");
	const struct block_format *f = &block_format_qcow;
	size_t size = 64 << 10;
	uint8_t *ref = calloc(1, size), patch[300];
	struct bdev *bs;
	unsigned st;
	uint64_t host;

	create_qcow(p, size, NULL, 0);
	bs = open_rw(p);
	for (size_t i = 0; i < 4096; i++)
		ref[i] = "compressible text "[i % 18];
	for (uint64_t i = 0, x = 88172645463325252ull; i < 4096; i++) {	/* incompressible */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		ref[4096 + i] = (uint8_t)x;
	}
	pthread_mutex_lock(&bs->lock);
	assert_int_equal(f->write_compressed(bs, 0, ref, 4096), 0);
	assert_int_equal(f->write_compressed(bs, 4096, ref + 4096, 4096), 0);
	assert_int_equal(f->write_compressed(bs, 0, ref, 4096), -EEXIST);
	pthread_mutex_unlock(&bs->lock);
	bdev_close(bs);

	bs = open_rw(p);
	fmt_assert_contents(bs, ref, size);
	assert_int_equal(bdev_block_status(bs, 0, size, &st, &host), 4096);
	assert_int_equal(st, BLOCK_STATUS_DATA | BLOCK_STATUS_COMPRESSED);
	assert_int_equal(bdev_block_status(bs, 4096, size - 4096, &st, &host), 4096);
	assert_int_equal(st, BLOCK_STATUS_DATA);	/* stored plain: did not shrink */
	/* Unallocated without a backing file: zeroes, not present (qemu-img map). */
	assert_int_equal(bdev_block_status(bs, 8192, size - 8192, &st, &host),
			 (int64_t)(size - 8192));
	assert_int_equal(st, BLOCK_STATUS_ZERO | BLOCK_STATUS_UNALLOCATED);
	assert_int_equal(host, 0);
	/* Writing into a compressed cluster rewrites it uncompressed. */
	fmt_pattern(patch, sizeof(patch), 0, 3);
	assert_int_equal(bdev_pwrite(bs, 1000, patch, sizeof(patch)), 0);
	memcpy(ref + 1000, patch, sizeof(patch));
	fmt_assert_contents(bs, ref, size);
	assert_int_equal(bdev_block_status(bs, 0, size, &st, &host), 4096);
	assert_int_equal(st, BLOCK_STATUS_DATA);
	bdev_close(bs);
	free(ref);
}

/* A valid 1 MiB image with one written cluster, header patched by the caller. */
static const char *hostile(const char *name, size_t off, const void *bytes, size_t len)
{
	const char *p = fmt_path(name);
	uint8_t one[512];
	struct bdev *bs;

	create_qcow(p, 1 << 20, NULL, 0);
	bs = open_rw(p);
	memset(one, 0xab, sizeof(one));
	assert_int_equal(bdev_pwrite(bs, 0, one, sizeof(one)), 0);
	bdev_close(bs);
	if (bytes)
		fmt_patch(p, off, bytes, len);
	return p;
}

static void test_bad_headers(void **state)
{
	uint8_t b8, b4[4], b8x[8];
	const char *p;

	p = hostile("short.qcow", 0, NULL, 0);
	fmt_truncate(p, 40);	/* reads as zeroes past the end: an L1 offset of 0 */
	fmt_expect_open_error(p, "qcow", "L1 table lies outside the image file");

	put_be32(b4, 2);
	fmt_expect_open_error(hostile("v2.qcow", 4, b4, 4), "qcow", "qcow (v1) does not support qcow version 2\nTry the 'qcow2' driver instead.");
	b8 = 8;
	fmt_expect_open_error(hostile("cb8.qcow", 32, &b8, 1), "qcow", "Cluster size must be between 512 and 64k");
	b8 = 17;
	fmt_expect_open_error(hostile("cb17.qcow", 32, &b8, 1), "qcow", "Cluster size must be between 512 and 64k");
	b8 = 5;
	fmt_expect_open_error(hostile("l2b5.qcow", 33, &b8, 1), "qcow", "L2 table size must be between 512 and 64k");
	b8 = 14;
	fmt_expect_open_error(hostile("l2b14.qcow", 33, &b8, 1), "qcow", "L2 table size must be between 512 and 64k");
	put_be32(b4, 1);
	fmt_expect_open_error(hostile("aes.qcow", 36, b4, 4), "qcow",
			      "Use of AES-CBC encrypted qcow images is not supported");
	put_be32(b4, 7);
	fmt_expect_open_error(hostile("crypt7.qcow", 36, b4, 4), "qcow",
			      "invalid encryption method in qcow header");
	put_be64(b8x, 0);
	fmt_expect_open_error(hostile("size0.qcow", 24, b8x, 8), "qcow",
			      "Image size is too small (must be at least 2 bytes)");
	put_be64(b8x, UINT64_MAX - 5);
	fmt_expect_open_error(hostile("huge.qcow", 24, b8x, 8), "qcow", "Image too large");
	put_be64(b8x, 1ull << 50);	/* L1 table would be 1 GiB */
	fmt_expect_open_error(hostile("bigl1.qcow", 24, b8x, 8), "qcow", "Image too large");
	put_be64(b8x, 1ull << 36);	/* L1 fits in memory, not in the file */
	fmt_expect_open_error(hostile("l1eof.qcow", 24, b8x, 8), "qcow",
			      "L1 table lies outside the image file");
	put_be64(b8x, 1ull << 40);
	fmt_expect_open_error(hostile("l1off.qcow", 40, b8x, 8), "qcow",
			      "L1 table lies outside the image file");
	put_be64(b8x, 1ull << 40);
	fmt_expect_open_error(hostile("l1ent.qcow", 48, b8x, 8), "qcow",
			      "L1 entry 0 (0x10000000000) points past the end of the image file");
}

static void test_bad_backing_fields(void **state)
{
	uint8_t f[12];

	put_be64(f, 48);
	put_be32(f + 8, 2000);
	fmt_expect_open_error(hostile("blen.qcow", 8, f, 12), "qcow", "Backing file name too long");
	put_be64(f, 1ull << 40);
	put_be32(f + 8, 8);
	fmt_expect_open_error(hostile("boff.qcow", 8, f, 12), "qcow",
			      "Backing file name lies outside the image file");
	put_be64(f, 48);
	put_be32(f + 8, 8);		/* the name field holds the zero L1 table */
	fmt_expect_open_error(hostile("bnul.qcow", 8, f, 12), "qcow",
			      "Backing file name contains a NUL byte");
}

/* Where QEMU accepts what looks odd, so do we: an empty backing file
 * name is no backing file. A version QEMU knows as qcow2 gets its hint
 * line. */
static void test_qemu_quirks(void **state)
{
	uint8_t f[12], b4[4];
	struct bdev *bs = NULL;
	char err[512] = "";

	put_be64(f, 48);
	put_be32(f + 8, 0);
	assert_int_equal(fmt_open(hostile("bempty.qcow", 8, f, 12), "qcow", true, &bs, err,
				  sizeof(err)), 0);
	assert_null(bdev_backing(bs));
	assert_null(bs->backing_filename);
	bdev_close(bs);
	put_be32(b4, 3);
	fmt_expect_open_error(hostile("v3.qcow", 4, b4, 4), "qcow",
			      "version 3\nTry the 'qcow2' driver instead.");
	put_be32(b4, 7);
	fmt_expect_open_error(hostile("v7.qcow", 4, b4, 4), "qcow", "qcow version 7");
	put_be32(b4, 0);
	fmt_expect_open_error(hostile("magic.qcow", 0, b4, 4), "qcow", "Image not in qcow format");
}

static void test_backing_names_refused(void **state)
{
	const char *top;
	struct bdev *bs = NULL;
	struct block_open_opts o = { .format = "qcow", .read_only = true,
				     .allow_absolute_paths = true };
	uint8_t img[512] = { 0 };
	char err[512];

	fmt_write_file(fmt_path("b.raw"), img, sizeof(img));
	top = fmt_path("abs.qcow");
	create_qcow(top, 512, fmt_path("b.raw"), 0);
	fmt_expect_open_error(top, "qcow", "absolute");
	assert_int_equal(bdev_open(top, &o, &bs, err, sizeof(err)), 0);
	assert_non_null(bdev_backing(bs));
	bdev_close(bs);

	top = fmt_path("dotdot.qcow");
	create_qcow(top, 512, "../b.raw", 0);
	fmt_expect_open_error(top, "qcow", "..");

	top = fmt_path("loop.qcow");
	create_qcow(top, 512, "loop.qcow", 0);
	fmt_expect_open_error(top, "qcow", "loop");

	create_qcow(fmt_path("l1.qcow"), 512, "l2.qcow", 0);
	create_qcow(fmt_path("l2.qcow"), 512, "l1.qcow", 0);
	fmt_expect_open_error(fmt_path("l1.qcow"), "qcow", "loop");
}

/* Tables pointing outside the file fail the I/O, not the process. */
static void test_hostile_tables(void **state)
{
	const char *p = hostile("l2.qcow", 0, NULL, 0);
	uint8_t hdr[56], e[8], buf[512];
	uint64_t l2;
	struct bdev *bs;
	size_t len;
	uint8_t *file = fmt_read_file(p, &len);

	memcpy(hdr, file, sizeof(hdr));
	l2 = get_be64(file + get_be64(hdr + 40));
	free(file);
	assert_true(l2 > 0);

	put_be64(e, 1ull << 40);			/* data cluster past EOF */
	fmt_patch(p, l2, e, 8);
	bs = open_rw(p);
	assert_int_equal(bdev_pread(bs, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(bdev_pwrite(bs, 0, buf, sizeof(buf)), -EIO);
	bdev_close(bs);

	put_be64(e, (1ull << 63) | (100ull << 51) | 600);	/* garbage compressed data */
	fmt_patch(p, l2, e, 8);
	bs = open_rw(p);
	assert_int_equal(bdev_pread(bs, 0, buf, sizeof(buf)), -EIO);
	bdev_close(bs);

	put_be64(e, (1ull << 63) | (4000ull << 51) | (1ull << 40));
	fmt_patch(p, l2, e, 8);
	bs = open_rw(p);
	assert_int_equal(bdev_pread(bs, 0, buf, sizeof(buf)), -EIO);
	bdev_close(bs);
}

static int run_check(const char *path, enum block_repair fix, struct block_check_result *r)
{
	struct block_open_opts o = { .format = "qcow", .read_only = fix == BLOCK_REPAIR_NONE,
				     .no_backing = true, .for_check = true };
	struct bdev *bs = NULL;
	char err[512] = "";
	int ret;

	if (bdev_open(path, &o, &bs, err, sizeof(err)) < 0)
		fail_msg("open %s for check: %s", path, err);
	assert_non_null(bs->fmt->check);
	memset(r, 0, sizeof(*r));
	pthread_mutex_lock(&bs->lock);
	ret = bs->fmt->check(bs, fix, r, NULL);
	pthread_mutex_unlock(&bs->lock);
	bdev_close(bs);
	return ret;
}

/* check: clean images, leaked space at the end (repairable), entries
 * beyond the end of the file (repairable with -r all) and overlapping
 * clusters (reported). */
static void test_check(void **state)
{
	const char *p = fmt_path("chk.qcow");
	uint8_t buf[8192], e[8], *file;
	struct block_check_result r;
	uint64_t l1_off, l2, d0;
	struct bdev *bs;
	size_t len;

	create_qcow(p, 4 << 20, NULL, 0);
	bs = open_rw(p);
	fmt_pattern(buf, sizeof(buf), 0, 9);
	assert_int_equal(bdev_pwrite(bs, 0, buf, sizeof(buf)), 0);	/* clusters 0, 1 */
	assert_int_equal(bdev_pwrite(bs, 1 << 20, buf, 4096), 0);
	bdev_close(bs);
	assert_int_equal(run_check(p, BLOCK_REPAIR_NONE, &r), 0);
	assert_int_equal(r.corruptions + r.leaks + r.check_errors, 0);
	assert_int_equal(r.allocated_clusters, 3);
	assert_int_equal(r.total_clusters, 1024);
	file = fmt_read_file(p, &len);
	assert_int_equal(r.image_end_offset, len);
	l1_off = get_be64(file + 40);
	l2 = get_be64(file + l1_off);
	d0 = get_be64(file + l2);
	free(file);

	/* two leaked clusters at the end: -r leaks cuts them */
	fmt_truncate(p, len + 8192);
	assert_int_equal(run_check(p, BLOCK_REPAIR_NONE, &r), 0);
	assert_int_equal(r.leaks, 2);
	assert_int_equal(r.corruptions, 0);
	assert_int_equal(run_check(p, BLOCK_REPAIR_LEAKS, &r), 0);
	assert_int_equal(r.leaks_fixed, 2);
	assert_int_equal(run_check(p, BLOCK_REPAIR_NONE, &r), 0);
	assert_int_equal(r.leaks, 0);

	/* a second entry sharing cluster 0's data: an overlap */
	put_be64(e, d0);
	fmt_patch(p, l2 + 8 * 5, e, 8);
	assert_int_equal(run_check(p, BLOCK_REPAIR_NONE, &r), 0);
	assert_int_equal(r.corruptions, 1);

	/* a data cluster on top of the L1 table (and the first L2 table) */
	put_be64(e, l1_off);
	fmt_patch(p, l2 + 8 * 5, e, 8);
	assert_int_equal(run_check(p, BLOCK_REPAIR_NONE, &r), 0);
	assert_int_equal(r.corruptions, 2);

	/* a data cluster and an L2 table beyond the end: -r all clears them */
	put_be64(e, 1ull << 40);
	fmt_patch(p, l2 + 8 * 5, e, 8);
	put_be64(e, 1ull << 41);
	fmt_patch(p, l1_off + 8, e, 8);
	fmt_expect_open_error(p, "qcow", "past the end");
	assert_int_equal(run_check(p, BLOCK_REPAIR_NONE, &r), 0);
	assert_int_equal(r.corruptions, 2);
	assert_int_equal(run_check(p, BLOCK_REPAIR_ALL, &r), 0);
	assert_int_equal(r.corruptions_fixed, 2);
	assert_int_equal(run_check(p, BLOCK_REPAIR_NONE, &r), 0);
	assert_int_equal(r.corruptions + r.leaks, 0);
	bs = open_rw(p);
	assert_int_equal(bdev_pread(bs, 0, e, 8), 0);
	assert_memory_equal(e, buf, 8);
	bdev_close(bs);
}

/* As in QEMU's qcow driver: no resize, discard is a no-op. */
static void test_no_resize_discard_ignored(void **state)
{
	const char *p = fmt_path("nr.qcow");
	uint8_t buf[4096], back[4096];
	struct bdev *bs;

	create_qcow(p, 1 << 20, NULL, 0);
	bs = open_rw(p);
	assert_null(bs->fmt->truncate);
	fmt_pattern(buf, sizeof(buf), 0, 3);
	assert_int_equal(bdev_pwrite(bs, 0, buf, sizeof(buf)), 0);
	assert_int_equal(bdev_discard(bs, 0, sizeof(buf)), 0);
	assert_int_equal(bdev_pread(bs, 0, back, sizeof(back)), 0);
	assert_memory_equal(back, buf, sizeof(buf));
	assert_int_equal(bdev_write_zeroes(bs, 0, 1000, true), 0);
	memset(buf, 0, 1000);
	assert_int_equal(bdev_pread(bs, 0, back, sizeof(back)), 0);
	assert_memory_equal(back, buf, sizeof(buf));
	bdev_close(bs);
}

static void test_probe_and_create_errors(void **state)
{
	const struct block_format *f = &block_format_qcow;
	struct block_create_opts o = { .size = 1 << 20, .cluster_size = 3000 };
	uint8_t head[8] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 1 };
	char err[256];

	assert_int_equal(f->probe(head, sizeof(head), "x"), 100);
	head[7] = 2;
	assert_int_equal(f->probe(head, sizeof(head), "x"), 0);
	assert_true(f->create(fmt_path("bad.qcow"), &o, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "cluster_size"));
	o.cluster_size = 0;
	o.size = 100;
	assert_true(f->create(fmt_path("bad.qcow"), &o, err, sizeof(err)) < 0);
	o.size = 0;
	o.backing_file = "nothere.raw";
	assert_true(f->create(fmt_path("bad.qcow"), &o, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "nothere.raw"));
}

/* Without a size, an overlay takes its backing image's virtual size. */
static void test_create_size_from_backing(void **state)
{
	struct block_create_opts o = { .size = 1 << 20 };
	struct bdev *bs;
	char err[256];

	create_qcow(fmt_path("sb.qcow"), 3 << 20, NULL, 0);
	o.size = 0;
	o.backing_file = "sb.qcow";
	assert_int_equal(fmt_create(&block_format_qcow, fmt_path("sb2.qcow"), &o, err,
				    sizeof(err)), 0);
	bs = open_rw(fmt_path("sb2.qcow"));
	assert_int_equal(bdev_size(bs), 3 << 20);
	assert_string_equal(bdev_format_name(bdev_backing(bs)), "qcow");
	bdev_close(bs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_layout_matches_qemu),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_backing_and_partial_cow),
		cmocka_unit_test(test_compressed_clusters),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_bad_backing_fields),
		cmocka_unit_test(test_qemu_quirks),
		cmocka_unit_test(test_backing_names_refused),
		cmocka_unit_test(test_hostile_tables),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_no_resize_discard_ignored),
		cmocka_unit_test(test_probe_and_create_errors),
		cmocka_unit_test(test_create_size_from_backing),
	};

	return cmocka_run_group_tests(tests, fmt_setup, fmt_teardown);
}
