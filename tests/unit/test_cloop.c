/* Unit tests for cloop images, block/cloop.c: images built here from the
 * format description (preamble, block_size, n_blocks, offsets, zlib
 * blocks), read whole and in unaligned pieces, refused for writing, and
 * hostile geometry, offsets and block data rejected (QEMU's checks in its
 * words, then our own on where the table and blocks lie). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <endian.h>
#include <zlib.h>
#include "tests/unit/fmt_test_util.h"

extern struct block_format block_format_cloop;

static const char preamble[] = "#!/bin/sh\n#V2.0 Format\n"
	"modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\nexit $?\n";

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

/* Writes a cloop image of data (n_blocks * block_size bytes); returns the
 * offset of the offsets table entries (136). */
static void build_cloop(const char *path, uint32_t block_size, uint32_t n_blocks,
			const uint8_t *data)
{
	size_t table = ((size_t)n_blocks + 1) * 8, pos = 136 + table;
	uLongf clen = compressBound(block_size);
	uint8_t hdr[136] = { 0 }, *offs = malloc(table), *z = malloc(clen);

	memcpy(hdr, preamble, sizeof(preamble) - 1);
	be32_at(hdr + 128, block_size);
	be32_at(hdr + 132, n_blocks);
	fmt_write_file(path, hdr, sizeof(hdr));
	for (uint32_t i = 0; i < n_blocks; i++) {
		clen = compressBound(block_size);
		assert_int_equal(compress2(z, &clen, data + (size_t)i * block_size, block_size, 9),
				 Z_OK);
		be64_at(offs + i * 8, pos);
		fmt_patch(path, pos, z, clen);
		pos += clen;
	}
	be64_at(offs + (size_t)n_blocks * 8, pos);
	fmt_patch(path, 136, offs, table);
	free(offs);
	free(z);
}

static struct bdev *open_cloop(const char *path)
{
	struct bdev *bs = NULL;
	char err[512] = "";

	if (fmt_open(path, "cloop", true, &bs, err, sizeof(err)) < 0)
		fail_msg("open %s: %s", path, err);
	return bs;
}

#define BS	(64 * 1024)
#define NB	5

static uint8_t *sample(void)
{
	uint8_t *d = malloc(BS * NB);

	fmt_pattern(d, BS * NB, 0, 1);
	memset(d + BS, 0, BS);				/* a zero block */
	for (size_t i = 0; i < BS; i++)			/* a text block */
		d[2 * BS + i] = "cloop block "[i % 12];
	return d;
}

static void test_read(void **state)
{
	uint8_t *d = sample(), buf[100000];
	const char *p = fmt_path("a.cloop");
	static const struct { uint64_t off; size_t len; } r[] = {
		{ 0, 1 }, { BS - 1, 2 }, { 3, 100000 }, { 4 * BS + 7, BS - 7 }, { 2 * BS, BS },
		{ BS * NB - 100, 100 },
	};
	struct bdev *bs;
	unsigned st;
	uint64_t host;

	build_cloop(p, BS, NB, d);
	bs = open_cloop(p);
	assert_string_equal(bdev_format_name(bs), "cloop");
	fmt_assert_contents(bs, d, BS * NB);
	for (unsigned i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		assert_int_equal(bdev_pread(bs, r[i].off, buf, r[i].len), 0);
		assert_memory_equal(buf, d + r[i].off, r[i].len);
	}
	assert_int_equal(bdev_pread(bs, BS * NB - 1, buf, 2), -EINVAL);
	assert_int_equal(bdev_pwrite(bs, 0, buf, 1), -EROFS);
	assert_int_equal(bdev_block_status(bs, 0, BS * NB, &st, &host), BS * NB);
	assert_true(st & BLOCK_STATUS_DATA);
	bdev_close(bs);
	free(d);
}

static void test_probe_and_read_only(void **state)
{
	uint8_t *d = sample();
	const char *p = fmt_path("p.cloop");
	struct block_open_opts o = { .read_only = true };
	struct bdev *bs = NULL;
	char err[256];

	build_cloop(p, 512, 4, d);
	assert_int_equal(bdev_open(p, &o, &bs, err, sizeof(err)), 0);	/* probed */
	assert_string_equal(bdev_format_name(bs), "cloop");
	assert_int_equal(bdev_size(bs), 2048);
	bdev_close(bs);
	o.read_only = false;
	o.format = "cloop";
	assert_true(bdev_open(p, &o, &bs, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "Image is read-only"));
	assert_int_equal(block_format_cloop.probe((const uint8_t *)"#!/bin/bash\n", 12, "x"), 0);
	free(d);
}

static const char *bad(const char *name, size_t off, const void *bytes, size_t len)
{
	uint8_t *d = sample();
	const char *p = fmt_path(name);

	build_cloop(p, BS, NB, d);
	free(d);
	if (bytes)
		fmt_patch(p, off, bytes, len);
	return p;
}

/* QEMU's checks, in its order and words. */
static void test_bad_geometry(void **state)
{
	uint8_t b4[4];

	be32_at(b4, 0);
	fmt_expect_open_error(bad("bs0.cloop", 128, b4, 4), "cloop", "block_size cannot be zero");
	be32_at(b4, 1000);
	fmt_expect_open_error(bad("bs1000.cloop", 128, b4, 4), "cloop",
			      "block_size 1000 must be a multiple of 512");
	be32_at(b4, 128u << 20);
	fmt_expect_open_error(bad("bsbig.cloop", 128, b4, 4), "cloop",
			      "block_size 134217728 must be 64 MB or less");
	be32_at(b4, 0xffffffffu);
	fmt_expect_open_error(bad("nbmax.cloop", 132, b4, 4), "cloop",
			      "n_blocks 4294967295 must be 536870911 or less");
	be32_at(b4, 100000000);
	fmt_expect_open_error(bad("nbmany.cloop", 132, b4, 4), "cloop",
			      "image requires too many offsets, try increasing block size");
}

static void test_bad_offsets(void **state)
{
	uint8_t b8[8], b4[4];
	const char *p;

	be64_at(b8, 1ull << 40);
	fmt_expect_open_error(bad("eof.cloop", 136 + 2 * 8, b8, 8), "cloop",
			      "invalid compressed block size at index 2, image file is corrupt");
	be64_at(b8, 200);
	fmt_expect_open_error(bad("mono.cloop", 136 + 3 * 8, b8, 8), "cloop",
			      "offsets not monotonically increasing at index 3, image file is "
			      "corrupt");
	/* A 150 MiB block in a sparse file: beyond what QEMU accepts. */
	p = bad("huge.cloop", 0, NULL, 0);
	fmt_truncate(p, 200 << 20);
	be64_at(b8, 150 << 20);
	fmt_patch(p, 136 + NB * 8, b8, 8);
	fmt_expect_open_error(p, "cloop", "invalid compressed block size at index 5");
	/* The table reads as zeroes past the end of the file, as in QEMU: a
	 * table that runs into the blocks decreases somewhere. */
	be32_at(b4, 1000);
	fmt_expect_open_error(bad("nbeof.cloop", 132, b4, 4), "cloop",
			      "image file is corrupt");
	p = bad("short.cloop", 0, NULL, 0);
	fmt_truncate(p, 160);
	fmt_expect_open_error(p, "cloop", "offsets not monotonically increasing at index 3");
}

/* Our checks where QEMU would read zeroes or the header as data. */
static void test_bad_placement(void **state)
{
	uint8_t b8[8];
	const char *p;

	be64_at(b8, 100);
	fmt_expect_open_error(bad("hdr.cloop", 136, b8, 8), "cloop",
			      "offset at index 0 points into the header, image file is corrupt");
	p = bad("end.cloop", 0, NULL, 0);
	fmt_truncate(p, 200000);
	be64_at(b8, 300000);
	fmt_patch(p, 136 + NB * 8, b8, 8);
	fmt_expect_open_error(p, "cloop", "offset at index 5 points past the end of the file");
	p = bad("tiny.cloop", 0, NULL, 0);	/* n_blocks 0: the 8-byte table is cut */
	fmt_truncate(p, 140);
	be64_at(b8, 0);
	fmt_patch(p, 128, b8, 8);
	fmt_patch(p, 128, "\0\0\x02\0", 4);
	fmt_expect_open_error(p, "cloop", "offsets table extends past the end of the file");
}

static void test_bad_block_data(void **state)
{
	const char *p = bad("data.cloop", 0, NULL, 0);
	uint8_t junk[64], buf[512], b8[8];
	struct bdev *bs;
	uint8_t *file;
	size_t len;

	file = fmt_read_file(p, &len);
	memset(junk, 0x5a, sizeof(junk));
	memcpy(b8, file + 136 + 8, 8);			/* start of block 1 */
	free(file);
	fmt_patch(p, be64toh(*(uint64_t *)b8), junk, sizeof(junk));
	bs = open_cloop(p);
	assert_int_equal(bdev_pread(bs, 0, buf, sizeof(buf)), 0);
	assert_int_equal(bdev_pread(bs, BS, buf, sizeof(buf)), -EIO);
	bdev_close(bs);

	/* A valid stream that inflates to less than block_size. */
	p = fmt_path("shortblk.cloop");
	{
		uint8_t *d = sample();

		build_cloop(p, BS, 1, d);
		free(d);
		be32_at(b8, 2 * BS);
		fmt_patch(p, 128, b8, 4);
	}
	bs = open_cloop(p);
	assert_int_equal(bdev_pread(bs, 0, buf, sizeof(buf)), -EIO);
	bdev_close(bs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_probe_and_read_only),
		cmocka_unit_test(test_bad_geometry),
		cmocka_unit_test(test_bad_offsets),
		cmocka_unit_test(test_bad_placement),
		cmocka_unit_test(test_bad_block_data),
	};

	return cmocka_run_group_tests(tests, fmt_setup, fmt_teardown);
}
