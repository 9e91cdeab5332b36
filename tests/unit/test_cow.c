/* Unit tests for User Mode Linux COW images, block/cow.c. QEMU no longer
 * writes this format, so the images are built here from the layout
 * description (v1, QEMU's v2, UML's v2, v3 and the 64-bit "broken" v3),
 * then read through the backing file, written (data then bitmap, checked
 * on disk), created, and fed hostile headers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <endian.h>
#include <sys/stat.h>
#include <time.h>
#include "tests/unit/fmt_test_util.h"

extern struct block_format block_format_cow;

enum flavour { V1, V2Q, V2U, V3, V3B };

static void be32_at(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void be64_at(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static void le32_at(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void le64_at(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint64_t up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* Header bytes for a flavour; returns its length and the bitmap and data
 * offsets the format description gives. */
static size_t cow_header(uint8_t *h, enum flavour f, const char *backing, uint64_t size,
			 uint32_t align, uint64_t *bitmap_off, uint64_t *data_off)
{
	uint64_t sectors = size / 512, need = (sectors + 7) / 8;
	size_t len = 0;

	memset(h, 0, 4136);
	switch (f) {
	case V1:
		le32_at(h, 0x4f4f4f4d);
		le32_at(h + 4, 1);
		strcpy((char *)h + 8, backing);
		le64_at(h + 268, size);
		le32_at(h + 276, 512);
		len = 280;
		*bitmap_off = len;
		*data_off = up(len + (size + 511) / 4096, 512);
		break;
	case V2Q:
		be32_at(h, 0x4f4f4f4d);
		be32_at(h + 4, 2);
		strcpy((char *)h + 8, backing);
		be32_at(h + 1032, 0);		/* mtime unknown (QEMU's dummy) */
		be64_at(h + 1040, size);
		be32_at(h + 1048, 512);
		len = 1056;
		*bitmap_off = len;
		*data_off = up(len + need, 512);
		break;
	case V2U:
		be32_at(h, 0x4f4f4f4d);
		be32_at(h + 4, 2);
		strcpy((char *)h + 8, backing);
		be64_at(h + 4108, size);
		be32_at(h + 4116, 512);
		len = 4120;
		*bitmap_off = len;
		*data_off = up(len + (size + 511) / 4096, 512);
		break;
	case V3:
		be32_at(h, 0x4f4f4f4d);
		be32_at(h + 4, 3);
		be64_at(h + 12, size);
		be32_at(h + 20, 512);
		be32_at(h + 24, align);
		strcpy((char *)h + 32, backing);
		len = 4128;
		*bitmap_off = up(len, align);
		*data_off = up(*bitmap_off + need, align);
		break;
	case V3B:
		be32_at(h, 0x4f4f4f4d);
		be32_at(h + 4, 3);
		be64_at(h + 16, size);
		be32_at(h + 24, 512);
		be32_at(h + 28, align);
		strcpy((char *)h + 36, backing);
		len = 4136;
		*bitmap_off = up(len, align);
		*data_off = up(*bitmap_off + need, align);
		break;
	}
	return len;
}

/* A cow image whose sectors with bit set in `bits` hold top[] data. */
static uint64_t build_cow(const char *path, enum flavour f, const char *backing, uint64_t size,
			  uint32_t align, const uint8_t *bits, const uint8_t *top)
{
	uint8_t h[4136];
	uint64_t bo, dof, need = (size / 512 + 7) / 8;
	size_t hl = cow_header(h, f, backing, size, align, &bo, &dof);

	fmt_write_file(path, h, hl);
	fmt_patch(path, bo, bits, need);
	for (uint64_t s = 0; s < size / 512; s++) {
		if (bits[s / 8] & (1u << (s % 8)))
			fmt_patch(path, dof + s * 512, top + s * 512, 512);
	}
	fmt_truncate(path, dof + size);
	return dof;
}

static struct bdev *open_cow(const char *path, bool ro)
{
	struct bdev *bs = NULL;
	char err[512] = "";

	if (fmt_open(path, "cow", ro, &bs, err, sizeof(err)) < 0)
		fail_msg("open %s: %s", path, err);
	return bs;
}

#define SIZE	(64 * 512 + 512 * 3)	/* 67 sectors: a partial bitmap byte */

static void check_flavour(enum flavour f, const char *name)
{
	uint8_t *base = malloc(SIZE), *top = malloc(SIZE), *ref = malloc(SIZE);
	uint8_t bits[9] = { 0x05, 0x80, 0, 0xff, 0, 0, 0, 0, 0x04 };
	struct bdev *bs;
	unsigned st;
	uint64_t host, dof;

	fmt_pattern(base, SIZE, 0, 1);
	fmt_pattern(top, SIZE, 0, 2);
	fmt_write_file(fmt_path("base.img"), base, SIZE);
	dof = build_cow(fmt_path(name), f, "base.img", SIZE, 4096, bits, top);
	for (unsigned s = 0; s < SIZE / 512; s++) {
		bool set = bits[s / 8] & (1u << (s % 8));

		memcpy(ref + s * 512, (set ? top : base) + s * 512, 512);
	}
	bs = open_cow(fmt_path(name), true);
	assert_string_equal(bdev_format_name(bs), "cow");
	fmt_assert_contents(bs, ref, SIZE);
	assert_int_equal(bdev_block_status(bs, 0, SIZE, &st, &host), 512);
	assert_int_equal(st, BLOCK_STATUS_DATA);
	assert_int_equal(host, dof);
	assert_int_equal(bdev_block_status(bs, 512, SIZE, &st, &host), 512);
	assert_int_equal(st, BLOCK_STATUS_BACKING);
	assert_int_equal(bdev_block_status(bs, 24 * 512, SIZE, &st, &host), 8 * 512);
	assert_int_equal(st, BLOCK_STATUS_DATA);
	bdev_close(bs);
	free(base);
	free(top);
	free(ref);
}

static void test_read_v1(void **state) { check_flavour(V1, "v1.cow"); }
static void test_read_v2_qemu(void **state) { check_flavour(V2Q, "v2q.cow"); }
static void test_read_v2_uml(void **state) { check_flavour(V2U, "v2u.cow"); }
static void test_read_v3(void **state) { check_flavour(V3, "v3.cow"); }
static void test_read_v3_broken(void **state) { check_flavour(V3B, "v3b.cow"); }

/* Writes land at data_offset + offset with their bits set, partial sectors
 * completed from the backing file; both flavours we create. */
static void check_write(enum flavour f, const char *name)
{
	uint8_t *base = malloc(SIZE), *ref = malloc(SIZE), *file, data[3000];
	uint8_t bits[9] = { 0 }, h[4136];
	uint64_t bo, dof;
	size_t len;
	struct bdev *bs;

	fmt_pattern(base, SIZE, 0, 1);
	fmt_write_file(fmt_path("base.img"), base, SIZE);
	build_cow(fmt_path(name), f, "base.img", SIZE, 4096, bits, base);
	cow_header(h, f, "base.img", SIZE, 4096, &bo, &dof);
	memcpy(ref, base, SIZE);

	bs = open_cow(fmt_path(name), false);
	fmt_pattern(data, sizeof(data), 0, 3);
	assert_int_equal(bdev_pwrite(bs, 700, data, 100), 0);		/* inside sector 1 */
	memcpy(ref + 700, data, 100);
	assert_int_equal(bdev_pwrite(bs, 5 * 512 + 10, data, sizeof(data)), 0);
	memcpy(ref + 5 * 512 + 10, data, sizeof(data));
	assert_int_equal(bdev_pwrite(bs, SIZE - 512, data, 512), 0);	/* last sector */
	memcpy(ref + SIZE - 512, data, 512);
	fmt_assert_contents(bs, ref, SIZE);
	assert_int_equal(bdev_pwrite(bs, SIZE - 10, data, 20), -EINVAL);
	assert_int_equal(bdev_flush(bs), 0);
	bdev_close(bs);

	file = fmt_read_file(fmt_path(name), &len);
	assert_true(len >= dof + SIZE);
	assert_int_equal(file[bo], 0xe2);		/* sectors 1, 5, 6, 7 (LSB first) */
	assert_int_equal(file[bo + 1], 0x07);		/* sectors 8, 9, 10 */
	assert_int_equal(file[bo + 8], 0x04);		/* sector 66 */
	assert_memory_equal(file + dof + 512, ref + 512, 512);
	assert_memory_equal(file + dof + 5 * 512, ref + 5 * 512, 6 * 512);
	assert_memory_equal(file + dof + SIZE - 512, ref + SIZE - 512, 512);
	free(file);

	bs = open_cow(fmt_path(name), true);
	fmt_assert_contents(bs, ref, SIZE);
	bdev_close(bs);
	free(base);
	free(ref);
}

static void test_write_v2_qemu(void **state) { check_write(V2Q, "w2.cow"); }
static void test_write_v3(void **state) { check_write(V3, "w3.cow"); }
static void test_write_v1(void **state) { check_write(V1, "w1.cow"); }

/* make_empty (commit): a cleared bitmap on disk, reads from the backing
 * file again, QEMU's v2 cut after the bitmap, UML's data area punched. */
static void check_make_empty(enum flavour f, const char *name)
{
	uint8_t *base = malloc(SIZE), *top = malloc(SIZE), *file;
	uint8_t bits[9] = { 0x05, 0x80, 0, 0xff, 0, 0, 0, 0, 0x04 }, zero[9] = { 0 };
	uint64_t dof, bo = f == V2Q ? 1056 : 4096;
	struct bdev *bs;
	unsigned st;
	uint64_t host;
	size_t len;

	fmt_pattern(base, SIZE, 0, 1);
	fmt_pattern(top, SIZE, 0, 2);
	fmt_write_file(fmt_path("base.img"), base, SIZE);
	dof = build_cow(fmt_path(name), f, "base.img", SIZE, 4096, bits, top);
	bs = open_cow(fmt_path(name), false);
	assert_non_null(bs->fmt->make_empty);
	pthread_mutex_lock(&bs->lock);
	assert_int_equal(bs->fmt->make_empty(bs), 0);
	pthread_mutex_unlock(&bs->lock);
	fmt_assert_contents(bs, base, SIZE);
	assert_int_equal(bdev_block_status(bs, 0, SIZE, &st, &host), SIZE);
	assert_int_equal(st, BLOCK_STATUS_BACKING);
	bdev_close(bs);
	file = fmt_read_file(fmt_path(name), &len);
	assert_memory_equal(file + bo, zero, sizeof(zero));
	if (f == V2Q)
		assert_int_equal(len, bo + sizeof(zero));
	else
		assert_int_equal(len, dof + SIZE);
	free(file);
	bs = open_cow(fmt_path(name), false);		/* writable again */
	assert_int_equal(bdev_pwrite(bs, 512, top, 512), 0);
	memcpy(base + 512, top, 512);
	fmt_assert_contents(bs, base, SIZE);
	bdev_close(bs);
	free(base);
	free(top);
}

static void test_make_empty_v2_qemu(void **state) { check_make_empty(V2Q, "e2.cow"); }
static void test_make_empty_v3(void **state) { check_make_empty(V3, "e3.cow"); }

/* create writes the described headers; the backing's size is the default. */
static void test_create(void **state)
{
	uint8_t *base = malloc(SIZE), *file, h[4136];
	struct block_create_opts o = { .backing_file = "base.img", .compat = "2" };
	uint64_t bo, dof;
	char err[256];
	size_t len, hl;
	struct bdev *bs;

	fmt_pattern(base, SIZE, 0, 4);
	fmt_write_file(fmt_path("base.img"), base, SIZE);
	assert_int_equal(fmt_create(&block_format_cow, fmt_path("c2.cow"), &o, err,
				    sizeof(err)), 0);
	file = fmt_read_file(fmt_path("c2.cow"), &len);
	hl = cow_header(h, V2Q, "base.img", SIZE, 512, &bo, &dof);
	assert_int_equal(len, 1056 + 9);		/* as QEMU: header + bitmap */
	assert_memory_equal(file, h, 1032);		/* mtime differs */
	assert_memory_equal(file + 1036, h + 1036, hl - 1036);
	free(file);
	bs = open_cow(fmt_path("c2.cow"), true);
	fmt_assert_contents(bs, base, SIZE);
	bdev_close(bs);

	o.compat = NULL;
	o.size = 8192;		/* a cow image covers its whole (raw) backing file */
	assert_true(fmt_create(&block_format_cow, fmt_path("c3.cow"), &o, err,
			       sizeof(err)) < 0);
	assert_non_null(strstr(err, "differs from the backing file's"));
	o.size = SIZE;
	assert_int_equal(fmt_create(&block_format_cow, fmt_path("c3.cow"), &o, err,
				    sizeof(err)), 0);
	file = fmt_read_file(fmt_path("c3.cow"), &len);
	hl = cow_header(h, V3, "base.img", SIZE, 4096, &bo, &dof);
	assert_int_equal(len, dof + SIZE);		/* as UML: sparse up to the data end */
	assert_memory_equal(file, h, 8);
	assert_memory_equal(file + 12, h + 12, hl - 12);
	{		/* the backing file's mtime is recorded */
		struct stat st;

		assert_int_equal(stat(fmt_path("base.img"), &st), 0);
		assert_int_equal(be32toh(*(uint32_t *)(file + 8)), (uint32_t)st.st_mtime);
	}
	free(file);
	bs = open_cow(fmt_path("c3.cow"), true);
	fmt_assert_contents(bs, base, SIZE);
	bdev_close(bs);

	o.backing_file = NULL;
	assert_true(fmt_create(&block_format_cow, fmt_path("c4.cow"), &o, err,
			       sizeof(err)) < 0);
	assert_non_null(strstr(err, "backing"));
	free(base);
}

static const char *bad_v3(const char *name, size_t off, const void *bytes, size_t len)
{
	uint8_t bits[9] = { 0 }, dummy[SIZE];
	const char *p = fmt_path(name);

	build_cow(p, V3, "base.img", SIZE, 4096, bits, dummy);
	if (bytes)
		fmt_patch(p, off, bytes, len);
	return p;
}

static void test_bad_headers(void **state)
{
	uint8_t b4[4], b8[8], name[4096];
	uint8_t base[SIZE] = { 0 };
	const char *p;

	fmt_write_file(fmt_path("base.img"), base, SIZE);
	p = bad_v3("short.cow", 0, NULL, 0);
	fmt_truncate(p, 4000);
	fmt_expect_open_error(p, "cow", "truncated");
	fmt_truncate(p, 4);
	fmt_expect_open_error(p, "cow", "magic");

	be32_at(b4, 4);
	fmt_expect_open_error(bad_v3("v4.cow", 4, b4, 4), "cow", "version 4");
	be32_at(b4, 1000);
	fmt_expect_open_error(bad_v3("ss.cow", 20, b4, 4), "cow", "sectorsize 1000");
	be32_at(b4, 0);
	fmt_expect_open_error(bad_v3("ss0.cow", 20, b4, 4), "cow", "sectorsize 0");
	be32_at(b4, 3000);
	fmt_expect_open_error(bad_v3("al.cow", 24, b4, 4), "cow", "alignment 3000");
	be32_at(b4, 1u << 30);
	fmt_expect_open_error(bad_v3("al2.cow", 24, b4, 4), "cow", "alignment");
	be32_at(b4, 1);
	fmt_expect_open_error(bad_v3("fmt.cow", 28, b4, 4), "cow", "cow_format 1");
	be64_at(b8, 0);
	fmt_expect_open_error(bad_v3("size0.cow", 12, b8, 8), "cow", "size 0");
	be64_at(b8, UINT64_MAX);
	fmt_expect_open_error(bad_v3("sizemax.cow", 12, b8, 8), "cow", "size");
	be64_at(b8, 1ull << 45);	/* bitmap of 8 GiB */
	fmt_expect_open_error(bad_v3("sizebig.cow", 12, b8, 8), "cow", "too large");
	be64_at(b8, 1ull << 30);	/* bitmap fits in memory, not in the file */
	p = bad_v3("sizeeof.cow", 12, b8, 8);
	fmt_truncate(p, 8192);
	fmt_expect_open_error(p, "cow", "past the end");
	memset(name, 'a', sizeof(name));
	fmt_expect_open_error(bad_v3("name.cow", 32, name, sizeof(name)), "cow",
			      "NUL-terminated");
}

/* As UML: the backing file's mtime (when recorded) and a raw backing
 * file's size must match the header; rebase -u (change_backing) records
 * the current mtime; skip_backing_check and no_backing opt out. */
static void set_mtime(const char *path, time_t t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void check_mtime(enum flavour f, const char *name, size_t mtime_off, unsigned width,
			bool le)
{
	uint8_t bits[9] = { 0 }, data[SIZE] = { 0 }, m[8] = { 0 };
	const char *base = fmt_path("mt.img");
	struct block_open_opts o = { .format = "cow", .read_only = true };
	struct bdev *bs = NULL;
	char err[512] = "", path[512];
	size_t len;
	uint8_t *file;

	snprintf(path, sizeof(path), "%s", fmt_path(name));
	fmt_write_file(base, data, SIZE);
	set_mtime(base, 1000000);
	build_cow(path, f, "mt.img", SIZE, 4096, bits, data);
	if (width == 8)
		be64_at(m, 1000000);
	else if (le)
		le32_at(m, 1000000);
	else
		be32_at(m, 1000000);
	fmt_patch(path, mtime_off, m, width);
	bs = open_cow(path, true);
	bdev_close(bs);

	set_mtime(base, 2000000);
	fmt_expect_open_error(path, "cow", "was modified after the image was made");
	o.skip_backing_check = true;
	assert_int_equal(bdev_open(path, &o, &bs, err, sizeof(err)), 0);
	bdev_close(bs);
	o.skip_backing_check = false;
	o.no_backing = true;
	o.read_only = false;
	assert_int_equal(bdev_open(path, &o, &bs, err, sizeof(err)), 0);
	pthread_mutex_lock(&bs->lock);
	assert_int_equal(bs->fmt->change_backing(bs, "mt.img", NULL), 0);	/* rebase -u */
	pthread_mutex_unlock(&bs->lock);
	bdev_close(bs);
	file = fmt_read_file(path, &len);
	if (width == 8)
		assert_int_equal(be64toh(*(uint64_t *)(file + mtime_off)), 2000000);
	else
		assert_int_equal(le ? le32toh(*(uint32_t *)(file + mtime_off)) :
				 be32toh(*(uint32_t *)(file + mtime_off)), 2000000);
	free(file);
	bs = open_cow(path, true);
	bdev_close(bs);

	fmt_truncate(base, SIZE + 512);		/* a raw backing file of another size */
	set_mtime(base, 2000000);
	fmt_expect_open_error(path, "cow", "has 34816 bytes but the header records 34304");
}

static void test_backing_mtime_v1(void **state) { check_mtime(V1, "m1.cow", 264, 4, true); }
static void test_backing_mtime_v2(void **state) { check_mtime(V2Q, "m2.cow", 1032, 4, false); }
static void test_backing_mtime_v2u(void **state) { check_mtime(V2U, "m2u.cow", 4104, 4, false); }
static void test_backing_mtime_v3(void **state) { check_mtime(V3, "m3.cow", 8, 4, false); }
static void test_backing_mtime_v3b(void **state) { check_mtime(V3B, "m3b.cow", 8, 8, false); }

static void test_backing_names(void **state)
{
	uint8_t bits[9] = { 0 }, data[SIZE] = { 0 };

	fmt_write_file(fmt_path("base.img"), data, SIZE);
	build_cow(fmt_path("abs.cow"), V3, fmt_path("base.img"), SIZE, 512, bits, data);
	fmt_expect_open_error(fmt_path("abs.cow"), "cow", "absolute");
	build_cow(fmt_path("dd.cow"), V2Q, "../base.img", SIZE, 512, bits, data);
	fmt_expect_open_error(fmt_path("dd.cow"), "cow", "..");
	build_cow(fmt_path("self.cow"), V3, "self.cow", SIZE, 512, bits, data);
	fmt_expect_open_error(fmt_path("self.cow"), "cow", "loop");
	build_cow(fmt_path("a.cow"), V3, "b.cow", SIZE, 512, bits, data);
	build_cow(fmt_path("b.cow"), V2Q, "a.cow", SIZE, 512, bits, data);
	fmt_expect_open_error(fmt_path("a.cow"), "cow", "loop");
	build_cow(fmt_path("none.cow"), V3, "missing.img", SIZE, 512, bits, data);
	fmt_expect_open_error(fmt_path("none.cow"), "cow", "missing.img");
}

static void test_probe(void **state)
{
	uint8_t h[8];

	be32_at(h, 0x4f4f4f4d);
	for (uint32_t v = 0; v < 5; v++) {
		be32_at(h + 4, v);
		assert_int_equal(block_format_cow.probe(h, 8, "x"), v >= 1 && v <= 3 ? 100 : 0);
	}
	le32_at(h, 0x4f4f4f4d);
	le32_at(h + 4, 1);
	assert_int_equal(block_format_cow.probe(h, 8, "x"), 100);
	assert_int_equal(block_format_cow.probe(h, 4, "x"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_v1),
		cmocka_unit_test(test_read_v2_qemu),
		cmocka_unit_test(test_read_v2_uml),
		cmocka_unit_test(test_read_v3),
		cmocka_unit_test(test_read_v3_broken),
		cmocka_unit_test(test_write_v1),
		cmocka_unit_test(test_write_v2_qemu),
		cmocka_unit_test(test_write_v3),
		cmocka_unit_test(test_make_empty_v2_qemu),
		cmocka_unit_test(test_make_empty_v3),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_backing_mtime_v1),
		cmocka_unit_test(test_backing_mtime_v2),
		cmocka_unit_test(test_backing_mtime_v2u),
		cmocka_unit_test(test_backing_mtime_v3),
		cmocka_unit_test(test_backing_mtime_v3b),
		cmocka_unit_test(test_backing_names),
		cmocka_unit_test(test_probe),
	};

	return cmocka_run_group_tests(tests, fmt_setup, fmt_teardown);
}
