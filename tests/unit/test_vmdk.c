/* Unit tests for the vmdk format (block/vmdk*.c): create, write and read
 * back every subformat, grain allocation with consistent GD/RGD, zeroed
 * grains, compressed grains (streamOptimized, also with a footer), extent
 * path confinement, rejection of malformed headers and descriptors, check
 * as qemu-img 7.2 does it, the info keys qemu-img shows, the extent file
 * named for map and block status over flat extents' holes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "block/block.h"
#include "block/format.h"
#include "block/vmdk.h"

#define MiB (1024ULL * 1024)
#define GiB (1024ULL * MiB)

static char tmpdir[64];
static char errbuf[512];

static const char *tpath(const char *name)
{
	static char p[4][256];
	static unsigned i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, name);
	return p[i];
}

static int setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_vmdk.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int create_img(const char *name, const char *sub, uint64_t size, bool zeroed)
{
	struct block_create_opts o = { .size = size, .subformat = sub };
	struct vmdk_create_params p = { .zeroed_grain = zeroed };

	return vmdk_create_ex(tpath(name), &o, &p, errbuf, sizeof(errbuf));
}

static struct bdev *open_img(const char *name, bool ro)
{
	struct block_open_opts o = { .format = "vmdk", .read_only = ro };
	struct bdev *bs = NULL;
	int ret = bdev_open(tpath(name), &o, &bs, errbuf, sizeof(errbuf));

	if (ret < 0)
		fail_msg("open %s: %s", name, errbuf);
	return bs;
}

static int try_open(const char *name, bool allow_abs)
{
	struct block_open_opts o = { .format = "vmdk", .read_only = true,
				     .allow_absolute_paths = allow_abs };
	struct bdev *bs = NULL;
	int ret;

	errbuf[0] = 0;
	ret = bdev_open(tpath(name), &o, &bs, errbuf, sizeof(errbuf));
	if (ret == 0)
		bdev_close(bs);
	return ret;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 + seed + (i >> 9));
}

static void write_file(const char *name, const void *data, size_t n)
{
	int fd = open(tpath(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static void *read_file(const char *name, size_t *n)
{
	struct stat st;
	int fd = open(tpath(name), O_RDONLY);
	void *buf;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc(st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, st.st_size), st.st_size);
	close(fd);
	*n = st.st_size;
	return buf;
}

static uint64_t file_size(const char *name)
{
	struct stat st;

	assert_int_equal(stat(tpath(name), &st), 0);
	return st.st_size;
}

/* Writes patterns at awkward offsets, reads them back before and after a
 * reopen, and checks untouched areas read as zero. */
static void roundtrip(const char *name, const char *sub, uint64_t size)
{
	static const uint64_t offs[] = { 0, 512, 65536 - 100, 3 * MiB + 7 };
	const size_t n = 200000;
	uint8_t *w = malloc(n), *r = malloc(n);
	struct bdev *bs;

	assert_int_equal(create_img(name, sub, size, false), 0);
	bs = open_img(name, false);
	assert_int_equal(bdev_size(bs), size);
	assert_string_equal(bdev_format_name(bs), "vmdk");
	assert_int_equal(bdev_pread(bs, 1 * MiB, r, 4096), 0);
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(r[i], 0);
	for (unsigned k = 0; k < 4; k++) {
		fill(w, n, k);
		assert_int_equal(bdev_pwrite(bs, offs[k] + (k == 3 ? 0 : k * 300000ULL), w, n), 0);
	}
	if (size > 2 * GiB) {	/* across the 2 GiB extent boundary */
		fill(w, n, 99);
		assert_int_equal(bdev_pwrite(bs, 2 * GiB - 1000, w, n), 0);
		assert_int_equal(bdev_pwrite(bs, size - n, w, n), 0);
	}
	assert_int_equal(bdev_flush(bs), 0);
	bdev_close(bs);

	bs = open_img(name, true);
	for (unsigned k = 0; k < 4; k++) {
		fill(w, n, k);
		assert_int_equal(bdev_pread(bs, offs[k] + (k == 3 ? 0 : k * 300000ULL), r, n), 0);
		assert_memory_equal(w, r, n);
	}
	if (size > 2 * GiB) {
		fill(w, n, 99);
		assert_int_equal(bdev_pread(bs, 2 * GiB - 1000, r, n), 0);
		assert_memory_equal(w, r, n);
		assert_int_equal(bdev_pread(bs, size - n, r, n), 0);
		assert_memory_equal(w, r, n);
	}
	assert_int_equal(bdev_pread(bs, 4 * MiB, r, 4096), 0);
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(r[i], 0);
	assert_true(bdev_pwrite(bs, 0, w, 512) < 0);	/* read-only */
	bdev_close(bs);
	free(w);
	free(r);
}

static void test_monolithic_sparse(void **state)
{
	roundtrip("ms.vmdk", "monolithicSparse", 8 * MiB);
}

static void test_monolithic_flat(void **state)
{
	roundtrip("mf.vmdk", "monolithicFlat", 8 * MiB);
	assert_int_equal(file_size("mf-flat.vmdk"), 8 * MiB);
}

static void test_two_gb_sparse(void **state)
{
	roundtrip("ts.vmdk", "twoGbMaxExtentSparse", 5 * GiB);
	assert_true(file_size("ts-s003.vmdk") > 0);
}

static void test_two_gb_flat(void **state)
{
	roundtrip("tf.vmdk", "twoGbMaxExtentFlat", 5 * GiB);
	assert_int_equal(file_size("tf-f001.vmdk"), 2 * GiB);
	assert_int_equal(file_size("tf-f003.vmdk"), 1 * GiB);
}

static void test_stream_optimized(void **state)
{
	roundtrip("so.vmdk", "streamOptimized", 8 * MiB);
}

static uint32_t le32_at(const uint8_t *p, uint64_t off)
{
	uint32_t v;

	memcpy(&v, p + off, 4);
	return le32toh(v);
}

static uint64_t le64_at(const uint8_t *p, uint64_t off)
{
	uint64_t v;

	memcpy(&v, p + off, 8);
	return le64toh(v);
}

/* One grain write appends exactly one grain and records it in both the
 * grain table and the redundant grain table. */
static void test_grain_allocation(void **state)
{
	uint8_t buf[4096], *img;
	size_t n;
	struct bdev *bs;
	uint64_t before;

	assert_int_equal(create_img("ga.vmdk", "monolithicSparse", 64 * MiB, false), 0);
	before = file_size("ga.vmdk");
	assert_int_equal(before % 65536, 0);
	bs = open_img("ga.vmdk", false);
	fill(buf, sizeof(buf), 5);
	assert_int_equal(bdev_pwrite(bs, 40 * MiB + 1024, buf, sizeof(buf)), 0);
	assert_int_equal(bdev_pwrite(bs, 40 * MiB + 8192, buf, sizeof(buf)), 0); /* same grain */
	bdev_close(bs);
	assert_int_equal(file_size("ga.vmdk"), before + 65536);

	img = read_file("ga.vmdk", &n);
	uint64_t rgd = le64_at(img, 48) * 512, gd = le64_at(img, 56) * 512;
	uint64_t grain = 40 * MiB / 65536;		/* 640: GT 1, entry 128 */
	uint32_t gt = le32_at(img, gd + 4), rgt = le32_at(img, rgd + 4);
	assert_true(gt && rgt && gt != rgt);
	uint32_t e = le32_at(img, gt * 512ULL + (grain % 512) * 4);
	assert_int_equal(e, le32_at(img, rgt * 512ULL + (grain % 512) * 4));
	assert_int_equal((uint64_t)e * 512, before);
	assert_memory_equal(img + before + 1024, buf, sizeof(buf));
	assert_memory_equal(img + before + 8192, buf, sizeof(buf));
	free(img);

	/* block status: the allocated grain is DATA at its host offset */
	struct bdev *b2 = open_img("ga.vmdk", true);
	unsigned st;
	uint64_t host;
	int64_t len = bdev_block_status(b2, 40 * MiB, 1 * MiB, &st, &host);
	assert_int_equal(len, 65536);
	assert_true(st & BLOCK_STATUS_DATA);
	assert_int_equal(host, before);
	len = bdev_block_status(b2, 0, 40 * MiB, &st, &host);
	assert_int_equal(len, 40 * MiB);
	assert_false(st & BLOCK_STATUS_DATA);
	bdev_close(b2);
}

/* Grains larger than 128 sectors (QEMU accepts up to 0x200000): a fresh
 * image patched to 256-sector grains takes partial and spanning writes;
 * discard is a no-op and resize unsupported, as in QEMU's driver. */
static void test_large_grains(void **state)
{
	uint64_t size = 16 * MiB, g = 256 * 512;
	uint8_t *ref = calloc(1, size), *buf = malloc(300000), *img;
	uint64_t v = htole64(256);
	struct bdev *bs;
	size_t n;

	assert_int_equal(create_img("lg.vmdk", "monolithicSparse", size, false), 0);
	img = read_file("lg.vmdk", &n);
	memcpy(img + 20, &v, 8);
	write_file("lg.vmdk", img, n);
	free(img);
	bs = open_img("lg.vmdk", false);
	assert_int_equal(bs->fmt->cluster_size(bs), g);
	assert_null(bs->fmt->truncate);
	assert_null(bs->fmt->discard);
	fill(buf, 300000, 7);
	assert_int_equal(bdev_pwrite(bs, g - 1000, buf, 300000), 0);	/* spans 3 grains */
	memcpy(ref + g - 1000, buf, 300000);
	assert_int_equal(bdev_pwrite(bs, 5 * g + 512, buf, 512), 0);
	memcpy(ref + 5 * g + 512, buf, 512);
	assert_int_equal(bdev_discard(bs, 0, 4 * g), 0);		/* advisory: kept */
	img = malloc(size);
	assert_int_equal(bdev_pread(bs, 0, img, size), 0);
	assert_memory_equal(img, ref, size);
	bdev_close(bs);
	assert_int_equal(file_size("lg.vmdk") % g, 0);
	bs = open_img("lg.vmdk", true);
	assert_int_equal(bdev_pread(bs, 0, img, size), 0);
	assert_memory_equal(img, ref, size);
	bdev_close(bs);
	free(img);
	free(ref);
	free(buf);
}

/* A grain directory entry of 0 (no grain table, as VMware streams leave
 * them) reads as unallocated; a write there creates the grain tables. */
static void test_missing_grain_table(void **state)
{
	uint8_t *img, b[4096], r[4096];
	struct bdev *bs;
	unsigned st;
	uint64_t host;
	size_t n;

	assert_int_equal(create_img("mg.vmdk", "monolithicSparse", 64 * MiB, false), 0);
	img = read_file("mg.vmdk", &n);
	uint64_t rgd = le64_at(img, 48) * 512, gd = le64_at(img, 56) * 512;
	memset(img + gd + 4, 0, 4);
	memset(img + rgd + 4, 0, 4);
	write_file("mg.vmdk", img, n);
	free(img);

	bs = open_img("mg.vmdk", false);
	assert_int_equal(bdev_block_status(bs, 16 * MiB, 48 * MiB, &st, &host), 48 * MiB);
	assert_int_equal(st, BLOCK_STATUS_ZERO | BLOCK_STATUS_UNALLOCATED);	/* no backing */
	assert_int_equal(bdev_write_zeroes(bs, 32 * MiB, 32 * MiB, false), 0);
	assert_int_equal(file_size("mg.vmdk"), n);	/* nothing to zero */
	fill(b, sizeof(b), 3);
	assert_int_equal(bdev_pwrite(bs, 40 * MiB + 512, b, sizeof(b)), 0);
	bdev_close(bs);

	bs = open_img("mg.vmdk", true);
	assert_int_equal(bdev_pread(bs, 40 * MiB + 512, r, sizeof(r)), 0);
	assert_memory_equal(b, r, sizeof(r));
	bdev_close(bs);
	img = read_file("mg.vmdk", &n);
	assert_true(le32_at(img, gd + 4) != 0);
	assert_true(le32_at(img, rgd + 4) != 0);
	assert_true(le32_at(img, gd + 4) != le32_at(img, rgd + 4));
	free(img);
}

static void test_zeroed_grain(void **state)
{
	uint8_t buf[65536], r[65536], *img;
	struct bdev *bs;
	size_t n;
	unsigned st;
	uint64_t host;

	assert_int_equal(create_img("zg.vmdk", "monolithicSparse", 4 * MiB, true), 0);
	bs = open_img("zg.vmdk", false);
	fill(buf, sizeof(buf), 1);
	assert_int_equal(bdev_pwrite(bs, 65536, buf, sizeof(buf)), 0);
	assert_int_equal(bdev_pwrite(bs, 3 * 65536, buf, sizeof(buf)), 0);
	assert_int_equal(bdev_write_zeroes(bs, 65536, 65536 + 512, false), 0);
	assert_int_equal(bdev_pread(bs, 65536, r, sizeof(r)), 0);
	for (size_t i = 0; i < sizeof(r); i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(bdev_pread(bs, 2 * 65536, r, 512), 0);
	assert_int_equal(r[0], 0);
	assert_int_equal(bdev_block_status(bs, 65536, 65536, &st, &host), 65536);
	assert_int_equal(st, BLOCK_STATUS_ZERO);
	bdev_close(bs);

	img = read_file("zg.vmdk", &n);
	assert_int_equal(le32_at(img, 4), 2);			/* version */
	assert_true(le32_at(img, 8) & VMDK_FLAG_ZERO_GRAIN);
	uint64_t gd = le64_at(img, 56) * 512;
	uint32_t gt = le32_at(img, gd);
	assert_int_equal(le32_at(img, gt * 512ULL + 4), 1);	/* grain 1 zeroed */
	assert_true(le32_at(img, gt * 512ULL + 12) > 1);	/* grain 3 data */
	free(img);
}

static void test_stream_compressed(void **state)
{
	uint8_t g[65536], r[65536], *img;
	const struct block_format *f = block_format_find("vmdk");
	struct bdev *bs;
	size_t n;
	unsigned st;
	uint64_t host;

	assert_non_null(f);
	assert_int_equal(create_img("sc.vmdk", "streamOptimized", 1 * MiB, false), 0);
	bs = open_img("sc.vmdk", false);
	for (unsigned i = 0; i < 16; i += 2) {
		memset(g, 'a' + i, sizeof(g));
		assert_int_equal(f->write_compressed(bs, i * 65536ULL, g, sizeof(g)), 0);
	}
	assert_true(f->write_compressed(bs, 100, g, sizeof(g)) < 0);	/* unaligned */
	assert_int_equal(bdev_block_status(bs, 0, 1 * MiB, &st, &host), 65536);
	assert_int_equal(st, BLOCK_STATUS_DATA | BLOCK_STATUS_COMPRESSED);
	bdev_close(bs);
	assert_true(file_size("sc.vmdk") < 65536 + 16 * 4096);

	bs = open_img("sc.vmdk", true);
	for (unsigned i = 0; i < 16; i++) {
		assert_int_equal(bdev_pread(bs, i * 65536ULL, r, sizeof(r)), 0);
		memset(g, i % 2 ? 0 : 'a' + i, sizeof(g));
		assert_memory_equal(g, r, sizeof(g));
	}
	bdev_close(bs);
	img = read_file("sc.vmdk", &n);
	assert_int_equal(le32_at(img, 4), 3);
	assert_int_equal(le32_at(img, 8) & 0x30000, 0x30000);
	free(img);
}

/* A VMware-style stream: header with gdOffset at end, grain markers, GT,
 * GD, footer and end-of-stream markers. */
static void test_stream_footer(void **state)
{
	uint8_t *img = calloc(1, 64 * 512), g[65536];
	struct vmdk_sparse_header h = { .version = 3, .flags = 0x30003, .capacity = 2048,
		.grain_size = 128, .gtes_per_gt = 512, .gd_offset = VMDK_GD_AT_END,
		.overhead = 1, .compress_algorithm = 1 };
	uLongf clen = 60 * 512;
	uint64_t pos = 1;
	uint32_t v;

	vmdk_header_encode(&h, img);
	/* grain 3 at sector 1 */
	memset(g, 0x5a, sizeof(g));
	assert_int_equal(compress2(img + 512 + 12, &clen, g, sizeof(g), 9), Z_OK);
	uint64_t lba = htole64(3 * 128);
	memcpy(img + 512, &lba, 8);
	v = htole32((uint32_t)clen);
	memcpy(img + 512 + 8, &v, 4);
	pos += (12 + clen + 511) / 512;
	/* GT marker + GT (4 sectors) */
	uint64_t val = htole64(4);
	memcpy(img + pos * 512, &val, 8);
	v = htole32(VMDK_MARKER_GT);
	memcpy(img + pos * 512 + 12, &v, 4);
	uint64_t gt = pos + 1;
	v = htole32(1);
	memcpy(img + gt * 512 + 3 * 4, &v, 4);
	pos = gt + 4;
	/* GD marker + GD (1 sector) */
	val = htole64(1);
	memcpy(img + pos * 512, &val, 8);
	v = htole32(VMDK_MARKER_GD);
	memcpy(img + pos * 512 + 12, &v, 4);
	uint64_t gd = pos + 1;
	v = htole32((uint32_t)gt);
	memcpy(img + gd * 512, &v, 4);
	pos = gd + 1;
	/* footer marker, footer header, EOS */
	val = htole64(1);
	memcpy(img + pos * 512, &val, 8);
	v = htole32(VMDK_MARKER_FOOTER);
	memcpy(img + pos * 512 + 12, &v, 4);
	h.gd_offset = gd;
	vmdk_header_encode(&h, img + (pos + 1) * 512);
	pos += 3;	/* EOS marker is all zeroes */
	write_file("foot.vmdk", img, pos * 512);

	struct bdev *bs = open_img("foot.vmdk", true);
	uint8_t r[65536];
	assert_int_equal(bdev_size(bs), 1 * MiB);
	assert_int_equal(bdev_pread(bs, 3 * 65536, r, sizeof(r)), 0);
	assert_memory_equal(r, g, sizeof(r));
	assert_int_equal(bdev_pread(bs, 0, r, 512), 0);
	assert_int_equal(r[0], 0);
	bdev_close(bs);

	/* a footer with a wrong marker type is refused */
	v = htole32(VMDK_MARKER_GT);
	memcpy(img + (pos - 3) * 512 + 12, &v, 4);
	write_file("foot2.vmdk", img, pos * 512);
	assert_true(try_open("foot2.vmdk", false) < 0);
	assert_non_null(strstr(errbuf, "footer"));
	free(img);
}

/* Corrupt one header field of a good monolithicSparse image and expect a
 * clean refusal naming the file and the field. */
static void expect_bad_header(const uint8_t *good, size_t n, unsigned off, uint64_t val,
			      unsigned width, const char *field)
{
	uint8_t *img = malloc(n);

	memcpy(img, good, n);
	if (width == 4) {
		uint32_t v = htole32((uint32_t)val);
		memcpy(img + off, &v, 4);
	} else if (width == 2) {
		img[off] = (uint8_t)val;
		img[off + 1] = (uint8_t)(val >> 8);
	} else {
		uint64_t v = htole64(val);
		memcpy(img + off, &v, 8);
	}
	write_file("bad.vmdk", img, n);
	free(img);
	assert_true(try_open("bad.vmdk", false) < 0);
	if (!strstr(errbuf, field) || !strstr(errbuf, "bad.vmdk"))
		fail_msg("field %s: error was '%s'", field, errbuf);
}

static void test_bad_headers(void **state)
{
	uint8_t *good;
	size_t n;

	assert_int_equal(create_img("good.vmdk", "monolithicSparse", 64 * MiB, false), 0);
	good = read_file("good.vmdk", &n);
	expect_bad_header(good, n, 4, 4, 4, "version");
	expect_bad_header(good, n, 4, 0, 4, "version");
	expect_bad_header(good, n, 12, 1ULL << 62, 8, "capacity");
	expect_bad_header(good, n, 12, 1ULL << 50, 8, "grain tables");
	expect_bad_header(good, n, 20, 0, 8, "grainSize");
	expect_bad_header(good, n, 20, 4, 8, "grainSize");
	expect_bad_header(good, n, 20, 96, 8, "grainSize");
	expect_bad_header(good, n, 20, 0x400000, 8, "grainSize");	/* beyond QEMU's 1 GiB */
	expect_bad_header(good, n, 28, n / 512, 8, "descriptor");
	expect_bad_header(good, n, 36, 1ULL << 40, 8, "descriptor");
	expect_bad_header(good, n, 44, 0, 4, "numGTEsPerGT");
	expect_bad_header(good, n, 44, 1024, 4, "numGTEsPerGT");
	expect_bad_header(good, n, 48, 1ULL << 60, 8, "rgdOffset");
	expect_bad_header(good, n, 56, 0, 8, "gdOffset");
	expect_bad_header(good, n, 56, n / 512, 8, "gdOffset");
	expect_bad_header(good, n, 56, 0xffffffffffffffffULL, 8, "footer");
	expect_bad_header(good, n, 64, 1ULL << 55, 8, "overHead");
	expect_bad_header(good, n, 8, 0x30003, 4, "compressAlgorithm");
	expect_bad_header(good, n, 75, '\n', 2, "newline");
	/* a GD entry pointing past the end of the file */
	uint64_t gd = le64_at(good, 56) * 512;
	expect_bad_header(good, n, (unsigned)gd, n / 512, 4, "gdOffset entry");
	/* embedded descriptor whose extents disagree with the capacity */
	uint8_t *ed = malloc(n);
	memcpy(ed, good, n);
	char *rw = memmem(ed + 512, 10240, "RW 131072 SPARSE", 16);
	assert_non_null(rw);
	memcpy(rw, "RW 131073", 9);
	write_file("bad.vmdk", ed, n);
	assert_true(try_open("bad.vmdk", false) < 0);
	assert_non_null(strstr(errbuf, "capacity"));
	free(ed);
	/* truncated file */
	write_file("bad.vmdk", good, 100);
	assert_true(try_open("bad.vmdk", false) < 0);
	/* version 3 without compression must be read-only */
	uint8_t *v3 = malloc(n);
	memcpy(v3, good, n);
	v3[4] = 3;
	write_file("v3.vmdk", v3, n);
	struct block_open_opts o = { .format = "vmdk" };
	struct bdev *bs;
	assert_true(bdev_open(tpath("v3.vmdk"), &o, &bs, errbuf, sizeof(errbuf)) < 0);
	assert_non_null(strstr(errbuf, "read-only"));
	assert_int_equal(try_open("v3.vmdk", false), 0);
	free(v3);
	free(good);
}

static void expect_bad_desc(const char *text, const char *what)
{
	write_file("d.vmdk", text, strlen(text));
	assert_true(try_open("d.vmdk", false) < 0);
	if (!strstr(errbuf, what) || !strstr(errbuf, "d.vmdk"))
		fail_msg("expected '%s' in '%s'", what, errbuf);
}

#define DHEAD "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"

static void test_bad_descriptors(void **state)
{
	char big[8192];
	char *huge;

	write_file("x-flat.vmdk", "", 0);
	assert_int_equal(truncate(tpath("x-flat.vmdk"), 1 * MiB), 0);
	/* qemu-img's words for a missing and an unknown create type */
	expect_bad_desc(DHEAD "RW 2048 FLAT \"x-flat.vmdk\" 0\n",
			"invalid VMDK image descriptor");
	expect_bad_desc(DHEAD "createType=\"fullDevice\"\nRW 2048 FLAT \"x-flat.vmdk\" 0\n",
			"Unsupported image type 'fullDevice'");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\nRW 2x48 FLAT \"x-flat.vmdk\" 0\n",
			"extent size");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\nRW 2048 FLAT \"x-flat.vmdk\" q\n",
			"offset");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\nRW 2048 FLAT \"x-flat.vmdk\n",
			"file name");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\nRW 2048 FLAT\n", "file name");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\nRW 2048 VMFSSPARSE \"x\"\n",
			"unsupported extent type");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\nRW 0 FLAT \"x-flat.vmdk\" 0\n",
			"size");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\n"
			"RW 10000000000000000 FLAT \"x-flat.vmdk\" 0\n"
			"RW 10000000000000000 FLAT \"x-flat.vmdk\" 0\n", "overflow");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\nNOACCESS 2048 FLAT \"x\" 0\n",
			"NOACCESS");
	expect_bad_desc("# Disk DescriptorFile\nversion=1\nCID=zz\n", "CID");
	/* no descriptor version 1-3: not a descriptor, in qemu-img's words */
	expect_bad_desc("# Disk DescriptorFile\nversion=7\n", "invalid VMDK image descriptor");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/passwd\" 0\n",
			"/etc/passwd");
	expect_bad_desc(DHEAD "createType=\"monolithicFlat\"\nRW 2048 FLAT \"../x-flat.vmdk\" 0\n",
			"..");
	/* a SPARSE extent whose header disagrees with the descriptor size */
	assert_int_equal(create_img("sp.vmdk", "twoGbMaxExtentSparse", 1 * MiB, false), 0);
	expect_bad_desc(DHEAD "createType=\"twoGbMaxExtentSparse\"\n"
			"RW 4096 SPARSE \"sp-s001.vmdk\"\n", "capacity");
	/* one sparse file used twice cannot be opened for writing */
	const char *twice = DHEAD "createType=\"twoGbMaxExtentSparse\"\n"
			    "RW 2048 SPARSE \"sp-s001.vmdk\"\nRW 2048 SPARSE \"sp-s001.vmdk\"\n";
	write_file("d.vmdk", twice, strlen(twice));
	assert_int_equal(try_open("d.vmdk", false), 0);
	struct block_open_opts rw = { .format = "vmdk" };
	struct bdev *tb;
	assert_true(bdev_open(tpath("d.vmdk"), &rw, &tb, errbuf, sizeof(errbuf)) < 0);
	assert_non_null(strstr(errbuf, "also extent 0"));
	/* too many extents */
	size_t cap = 64 + 5000 * 40;
	huge = malloc(cap);
	size_t len = (size_t)snprintf(huge, cap, DHEAD "createType=\"custom\"\n");
	for (unsigned i = 0; i < 5000; i++)
		len += (size_t)snprintf(huge + len, cap - len, "RW 1 ZERO\n");
	expect_bad_desc(huge, "extents");
	free(huge);
	/* too big a descriptor file */
	huge = calloc(1, VMDK_MAX_DESC_BYTES + 100);
	memcpy(huge, DHEAD, strlen(DHEAD));
	memset(huge + strlen(DHEAD), '#', VMDK_MAX_DESC_BYTES);
	expect_bad_desc(huge, "too large");
	free(huge);
	/* a long line */
	memset(big, 'a', sizeof(big));
	memcpy(big, DHEAD, strlen(DHEAD));
	big[sizeof(big) - 1] = 0;
	expect_bad_desc(big, "too long");

	/* zero-sized disks (qemu-img writes them without extents) */
	static const char *const subs[] = { "monolithicSparse", "monolithicFlat",
		"twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized" };
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(create_img("zero.vmdk", subs[i], 0, false), 0);
		struct bdev *zb = open_img("zero.vmdk", false);
		uint8_t x;
		assert_int_equal(bdev_size(zb), 0);
		assert_true(bdev_pread(zb, 0, &x, 1) < 0);
		bdev_close(zb);
	}

	/* absolute paths are allowed with allow_absolute_paths */
	char text[512];
	snprintf(text, sizeof(text), DHEAD "createType=\"monolithicFlat\"\n"
		 "RW 2048 FLAT \"%s\" 0\nRW 100 ZERO\n", tpath("x-flat.vmdk"));
	write_file("abs.vmdk", text, strlen(text));
	assert_true(try_open("abs.vmdk", false) < 0);
	assert_int_equal(try_open("abs.vmdk", true), 0);

	/* a valid hand-written descriptor with a ZERO extent and an offset */
	const char *okd = DHEAD "createType=\"monolithicFlat\"\r\n"
			  "RW 1024 FLAT \"x-flat.vmdk\" 1024\r\nRDONLY 100 ZERO\r\n";
	write_file("ok.vmdk", okd, strlen(okd));
	struct bdev *bs = open_img("ok.vmdk", false);
	uint8_t b[512];
	assert_int_equal(bdev_size(bs), 1124 * 512);
	memset(b, 0x11, sizeof(b));
	assert_int_equal(bdev_pwrite(bs, 0, b, 512), 0);
	assert_true(bdev_pwrite(bs, 1024 * 512, b, 512) < 0);	/* RDONLY/ZERO */
	bdev_close(bs);
	size_t n;
	uint8_t *flat = read_file("x-flat.vmdk", &n);
	assert_int_equal(flat[1024 * 512], 0x11);
	assert_int_equal(flat[0], 0);
	free(flat);
}

static void test_desc_parser(void **state)
{
	struct vmdk_desc d;
	const char *t = "  # c\n\nversion = 1\nCID=0000abcd\nparentCID=ffffffff\n"
			"createType = \"twoGbMaxExtentSparse\"\n"
			"parentFileNameHint=\"base.vmdk\"\n"
			"RW 4194304 SPARSE \"a b-s001.vmdk\"\nRDONLY 100 FLAT \"f\" 7\nRW 9 ZERO\n"
			"ddb.adapterType = \"ide\"\n";

	assert_int_equal(vmdk_desc_parse(t, strlen(t), "x", &d, errbuf, sizeof(errbuf)), 0);
	assert_int_equal(d.cid, 0xabcd);
	assert_int_equal(d.parent_cid, 0xffffffff);
	assert_string_equal(d.create_type, "twoGbMaxExtentSparse");
	assert_string_equal(d.parent_hint, "base.vmdk");
	assert_int_equal(d.nextents, 3);
	assert_string_equal(d.extents[0].file, "a b-s001.vmdk");
	assert_int_equal(d.extents[0].sectors, 4194304);
	assert_int_equal(d.extents[1].access, 1);
	assert_int_equal(d.extents[1].offset, 7);
	assert_null(d.extents[2].file);
	vmdk_desc_free(&d);
	assert_true(vmdk_desc_probe((const uint8_t *)t, strlen(t)));
	assert_false(vmdk_desc_probe((const uint8_t *)"QFI\xfb", 4));

	/* a descriptor stops at the first NUL */
	const char z[] = "version=1\n\0RW 1 SPARSE \"x\n";
	assert_int_equal(vmdk_desc_parse(z, sizeof(z), "x", &d, errbuf, sizeof(errbuf)), 0);
	assert_int_equal(d.nextents, 0);
	vmdk_desc_free(&d);
}

/* A child created on a vmdk backing file records the parent's CID and
 * name, reads unallocated grains from it and merges partial-grain writes. */
static void test_backing(void **state)
{
	struct block_create_opts o = { .backing_file = "base.vmdk" };
	uint8_t b[65536], r[65536];
	struct bdev *bs;
	char *text;
	size_t n;

	assert_int_equal(create_img("base.vmdk", "monolithicSparse", 4 * MiB, false), 0);
	bs = open_img("base.vmdk", false);
	memset(b, 0x77, sizeof(b));
	assert_int_equal(bdev_pwrite(bs, 65536, b, sizeof(b)), 0);
	bdev_close(bs);

	assert_int_equal(vmdk_create_ex(tpath("child.vmdk"), &o, NULL, errbuf, sizeof(errbuf)), 0);
	bs = open_img("child.vmdk", false);
	assert_int_equal(bdev_size(bs), 4 * MiB);
	assert_non_null(bdev_backing(bs));
	assert_int_equal(bdev_pread(bs, 65536, r, sizeof(r)), 0);
	assert_memory_equal(b, r, sizeof(r));
	memset(b + 100, 0x88, 50);
	assert_int_equal(bdev_pwrite(bs, 65536 + 100, b + 100, 50), 0);
	bdev_close(bs);

	o.backing_file = NULL;
	o.size = 4 * MiB;
	bs = open_img("child.vmdk", true);
	assert_int_equal(bdev_pread(bs, 65536, r, sizeof(r)), 0);
	assert_memory_equal(b, r, sizeof(r));
	bdev_close(bs);
	bs = open_img("base.vmdk", true);	/* the base is untouched */
	assert_int_equal(bdev_pread(bs, 65536 + 100, r, 50), 0);
	assert_int_equal(r[0], 0x77);
	bdev_close(bs);

	text = read_file("child.vmdk", &n);
	assert_non_null(memmem(text, n, "parentFileNameHint=\"base.vmdk\"", 30));
	assert_null(memmem(text, n, "parentCID=ffffffff", 18));
	free(text);

	/* writing to the base gives it a new CID: the child's view is stale */
	bs = open_img("base.vmdk", true);
	uint32_t cid_before = ((struct vmdk_state *)bs->opaque)->desc.cid;
	bdev_close(bs);
	bs = open_img("base.vmdk", false);
	assert_int_equal(((struct vmdk_state *)bs->opaque)->desc.cid, cid_before);
	assert_int_equal(bdev_pwrite(bs, 0, b, 512), 0);
	assert_int_not_equal(((struct vmdk_state *)bs->opaque)->desc.cid, cid_before);
	bdev_close(bs);
	bs = open_img("child.vmdk", true);
	assert_int_equal(bdev_pread(bs, 65536, r, sizeof(r)), 0);	/* allocated here */
	assert_int_equal(bdev_pread(bs, 0, r, 512), -EINVAL);		/* from the parent */
	bdev_close(bs);

	/* make_empty (commit): the grains go, parentCID takes the parent's new
	 * CID, so the child reads the parent again; the file shrinks back */
	uint64_t empty_size = file_size("base.vmdk");
	bs = open_img("child.vmdk", false);
	assert_non_null(bs->fmt->make_empty);
	pthread_mutex_lock(&bs->lock);
	assert_int_equal(bs->fmt->make_empty(bs), 0);
	pthread_mutex_unlock(&bs->lock);
	bdev_close(bs);
	bs = open_img("child.vmdk", true);
	assert_int_equal(bdev_pread(bs, 0, r, 512), 0);
	assert_memory_equal(r, b, 512);
	assert_int_equal(bdev_pread(bs, 65536, r, sizeof(r)), 0);
	assert_int_equal(r[100], 0x77);					/* the parent's */
	unsigned st;
	uint64_t host;
	assert_int_equal(bdev_block_status(bs, 0, 4 * MiB, &st, &host), 4 * MiB);
	assert_true(st & BLOCK_STATUS_BACKING);
	bdev_close(bs);
	assert_true(file_size("child.vmdk") < empty_size);		/* no grains left */

	/* a flat image cannot have a backing file */
	o.backing_file = "base.vmdk";
	o.subformat = "monolithicFlat";
	assert_true(vmdk_create_ex(tpath("fb.vmdk"), &o, NULL, errbuf, sizeof(errbuf)) < 0);
}

/* Sets grain table entry `grain` of a KDMV file to value (host order). */
static void set_gte(const char *name, uint32_t grain, uint32_t value)
{
	uint8_t hdr[512];
	uint32_t gtes, gt, le;
	uint64_t gd;
	int fd = open(tpath(name), O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), sizeof(hdr));
	memcpy(&gtes, hdr + 44, 4);
	memcpy(&gd, hdr + 56, 8);
	gtes = le32toh(gtes);
	gd = le64toh(gd);
	assert_int_equal(pread(fd, &gt, 4, (off_t)(gd * 512 + grain / gtes * 4)), 4);
	gt = le32toh(gt);
	assert_int_not_equal(gt, 0);
	le = htole32(value);
	assert_int_equal(pwrite(fd, &le, 4, (off_t)(gt * 512ULL + grain % gtes * 4)), 4);
	close(fd);
}

/* Runs the format's check with fix; *report gets what it printed. */
static int run_check(const char *name, enum block_repair fix, struct block_check_result *res,
		     char **report)
{
	struct bdev *bs = open_img(name, fix == BLOCK_REPAIR_NONE);
	size_t len;
	FILE *rep = open_memstream(report, &len);
	int ret;

	assert_non_null(rep);
	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&bs->lock);
	ret = bs->fmt->check(bs, fix, res, rep);
	pthread_mutex_unlock(&bs->lock);
	fclose(rep);
	bdev_close(bs);
	return ret;
}

/* qemu-img 7.2's vmdk check: no repair; a clean image counts nothing; the
 * first grain past the end of its extent file (a flat extent starting
 * past the end of its file) fails with QEMU's ERROR line and errno. */
static void test_info_and_check(void **state)
{
	static const struct block_check_result clean = {0};
	struct block_check_result res;
	struct bdev *bs;
	uint8_t b[512] = {1};
	char *rep;

	assert_int_equal(create_img("ic.vmdk", "monolithicSparse", 1 * MiB, true), 0);
	bs = open_img("ic.vmdk", false);
	assert_int_equal(bdev_pwrite(bs, 4096, b, sizeof(b)), 0);
	assert_int_equal(bdev_pwrite(bs, 3 * 65536, b, sizeof(b)), 0);
	assert_int_equal(bdev_write_zeroes(bs, 5 * 65536, 65536, true), 0);
	assert_int_equal(bs->fmt->cluster_size(bs), 65536);
	bdev_close(bs);
	assert_int_equal(run_check("ic.vmdk", BLOCK_REPAIR_NONE, &res, &rep), 0);
	assert_memory_equal(&res, &clean, sizeof(res));
	assert_string_equal(rep, "");
	free(rep);
	assert_int_equal(run_check("ic.vmdk", BLOCK_REPAIR_LEAKS, &res, &rep), -ENOTSUP);
	free(rep);
	assert_int_equal(run_check("ic.vmdk", BLOCK_REPAIR_ALL, &res, &rep), -ENOTSUP);
	free(rep);

	set_gte("ic.vmdk", 3, 0x100000);		/* 512 MiB: past the end */
	assert_int_equal(run_check("ic.vmdk", BLOCK_REPAIR_NONE, &res, &rep), -EINVAL);
	assert_string_equal(rep, "ERROR: cluster offset for sector 384 points after EOF\n");
	assert_int_equal(res.corruptions, 1);
	free(rep);

	/* a flat extent whose file is empty */
	assert_int_equal(create_img("icf.vmdk", "monolithicFlat", 1 * MiB, false), 0);
	assert_int_equal(run_check("icf.vmdk", BLOCK_REPAIR_NONE, &res, &rep), 0);
	free(rep);
	assert_int_equal(truncate(tpath("icf-flat.vmdk"), 0), 0);
	assert_int_equal(run_check("icf.vmdk", BLOCK_REPAIR_NONE, &res, &rep), -EINVAL);
	assert_string_equal(rep, "ERROR: cluster offset for sector 0 points after EOF\n");
	free(rep);
}

/* The info hook's keys, one "key=value" line each, in call order. */
struct info_lines {
	char text[4096];
	size_t len;
};

static void info_add(void *o, const char *k, const char *fmt, ...)
{
	struct info_lines *l = o;
	va_list ap;

	l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s=", k);
	va_start(ap, fmt);
	l->len += (size_t)vsnprintf(l->text + l->len, sizeof(l->text) - l->len, fmt, ap);
	va_end(ap);
	l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "\n");
}

static void info_str(void *o, const char *k, const char *v) { info_add(o, k, "%s", v); }
static void info_num(void *o, const char *k, uint64_t v) { info_add(o, k, "%llu", (unsigned long long)v); }
static void info_flag(void *o, const char *k, bool v) { info_add(o, k, "%s", v ? "true" : "false"); }

static void info_of(const char *name, struct info_lines *l)
{
	struct block_info_writer w = { info_str, info_num, info_flag, l };
	struct bdev *bs = open_img(name, true);

	l->len = 0;
	l->text[0] = 0;
	assert_int_equal(bs->fmt->info(bs, &w), 0);
	bdev_close(bs);
}

/* Everything after the CID lines, which are random. */
static const char *after_cids(const struct info_lines *l)
{
	const char *p = strstr(l->text, "create-type=");

	assert_non_null(p);
	assert_non_null(strstr(l->text, "cid="));
	assert_non_null(strstr(l->text, "parent-cid=4294967295\n"));
	return p;
}

/* qemu-img 7.2's ImageInfoSpecificVmdk: create type, then "extents" with
 * compressed (only when true), virtual-size, filename (the extent's file
 * as opened), cluster-size (sparse only) and format (the descriptor's
 * type, "" for a KDMV image). One row per subformat. */
struct info_case {
	const char *image, *subformat;
	uint64_t size;
	bool compressed, sparse;
	const char *type;
	unsigned nextents;
	struct { uint64_t size; const char *file; } extents[2];
};

static const struct info_case info_cases[] = {
	{ "ik-ms.vmdk", "monolithicSparse", 4 * MiB, false, true, "", 1,
	  { { 4 * MiB, "ik-ms.vmdk" } } },
	{ "ik-so.vmdk", "streamOptimized", 4 * MiB, true, true, "", 1,
	  { { 4 * MiB, "ik-so.vmdk" } } },
	{ "ik-ts.vmdk", "twoGbMaxExtentSparse", 3 * GiB, false, true, "SPARSE", 2,
	  { { 2 * GiB, "ik-ts-s001.vmdk" }, { 1 * GiB, "ik-ts-s002.vmdk" } } },
	{ "ik-mf.vmdk", "monolithicFlat", 4 * MiB, false, false, "FLAT", 1,
	  { { 4 * MiB, "ik-mf-flat.vmdk" } } },
	{ "ik-tf.vmdk", "twoGbMaxExtentFlat", 3 * GiB, false, false, "FLAT", 2,
	  { { 2 * GiB, "ik-tf-f001.vmdk" }, { 1 * GiB, "ik-tf-f002.vmdk" } } },
};

static void expected_info(const struct info_case *c, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "create-type=%s\nextents[]=\n", c->subformat);

	for (unsigned i = 0; i < c->nextents; i++) {
		if (c->compressed)
			n += (size_t)snprintf(buf + n, len - n, "extents[%u].compressed=true\n", i);
		n += (size_t)snprintf(buf + n, len - n,
				      "extents[%u].virtual-size=%llu\nextents[%u].filename=%s\n", i,
				      (unsigned long long)c->extents[i].size, i,
				      tpath(c->extents[i].file));
		if (c->sparse)
			n += (size_t)snprintf(buf + n, len - n, "extents[%u].cluster-size=65536\n",
					      i);
		n += (size_t)snprintf(buf + n, len - n, "extents[%u].format=%s\n", i, c->type);
	}
}

static void test_info_keys(void **state)
{
	struct info_lines l;
	char want[2048];

	for (size_t i = 0; i < sizeof(info_cases) / sizeof(info_cases[0]); i++) {
		const struct info_case *c = &info_cases[i];

		assert_int_equal(create_img(c->image, c->subformat, c->size, false), 0);
		info_of(c->image, &l);
		expected_info(c, want, sizeof(want));
		assert_string_equal(after_cids(&l), want);
	}
}

/* The file map's File column names: the extent file holding each offset. */
static void test_data_filename(void **state)
{
	struct bdev *bs;

	assert_int_equal(create_img("df.vmdk", "twoGbMaxExtentSparse", 3 * GiB, false), 0);
	bs = open_img("df.vmdk", true);
	assert_non_null(bs->fmt->data_filename);
	assert_string_equal(bs->fmt->data_filename(bs, 0), tpath("df-s001.vmdk"));
	assert_string_equal(bs->fmt->data_filename(bs, 2 * GiB - 1), tpath("df-s001.vmdk"));
	assert_string_equal(bs->fmt->data_filename(bs, 2 * GiB), tpath("df-s002.vmdk"));
	bdev_close(bs);
	assert_int_equal(create_img("dm.vmdk", "monolithicSparse", 1 * MiB, false), 0);
	bs = open_img("dm.vmdk", true);
	assert_string_equal(bs->fmt->data_filename(bs, 0), tpath("dm.vmdk"));
	bdev_close(bs);
}

/* A flat extent is data; over holes of its file (and past its end) it
 * reads as zeroes, as qemu-img map reports (zero and data). */
static void test_flat_holes(void **state)
{
	uint8_t b[65536];
	struct bdev *bs;
	unsigned st;
	uint64_t host;

	assert_int_equal(create_img("fh.vmdk", "monolithicFlat", 4 * MiB, false), 0);
	bs = open_img("fh.vmdk", false);
	memset(b, 0x5a, sizeof(b));
	assert_int_equal(bdev_pwrite(bs, 1 * MiB, b, sizeof(b)), 0);
	assert_int_equal(bdev_flush(bs), 0);
	assert_int_equal(bdev_block_status(bs, 0, 4 * MiB, &st, &host), 1 * MiB);
	assert_int_equal(st, BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO);
	assert_int_equal(host, 0);
	assert_int_equal(bdev_block_status(bs, 1 * MiB, 3 * MiB, &st, &host), 65536);
	assert_int_equal(st, BLOCK_STATUS_DATA);
	assert_int_equal(host, 1 * MiB);
	assert_int_equal(bdev_block_status(bs, 1 * MiB + 65536, 3 * MiB - 65536, &st, &host),
			 3 * MiB - 65536);
	assert_int_equal(st, BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO);
	bdev_close(bs);
	assert_int_equal(truncate(tpath("fh-flat.vmdk"), 2 * MiB), 0);	/* short file */
	bs = open_img("fh.vmdk", true);
	assert_int_equal(bdev_block_status(bs, 3 * MiB, 1 * MiB, &st, &host), 1 * MiB);
	assert_int_equal(st, BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO);
	assert_int_equal(host, 3 * MiB);
	bdev_close(bs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_desc_parser),
		cmocka_unit_test(test_monolithic_sparse),
		cmocka_unit_test(test_monolithic_flat),
		cmocka_unit_test(test_two_gb_sparse),
		cmocka_unit_test(test_two_gb_flat),
		cmocka_unit_test(test_stream_optimized),
		cmocka_unit_test(test_grain_allocation),
		cmocka_unit_test(test_large_grains),
		cmocka_unit_test(test_missing_grain_table),
		cmocka_unit_test(test_zeroed_grain),
		cmocka_unit_test(test_stream_compressed),
		cmocka_unit_test(test_stream_footer),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_bad_descriptors),
		cmocka_unit_test(test_backing),
		cmocka_unit_test(test_info_and_check),
		cmocka_unit_test(test_info_keys),
		cmocka_unit_test(test_data_filename),
		cmocka_unit_test(test_flat_holes),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
