/* Unit tests for backing chains, with a tiny copy-on-write format defined
 * only here ("fakecow": a 512-byte header naming the size, backing file and
 * backing format, a sector bitmap, then sectors): reads fall through the
 * chain, and bdev_open enforces the depth limit, loop detection (device +
 * inode), recorded and overridden backing formats, read-only backing
 * images, no_backing, and the relative-path rules. */
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
#include "block/bfile.h"
#include "block/format.h"

#define SECTOR 512u
#define MAX_SECTORS 4096u
#define BITMAP_OFF 512u
#define DATA_OFF 4096u

struct fake_hdr {
	char magic[8];
	uint64_t size_le;
	char backing[256];
	char backing_fmt[32];
};

struct fake {
	uint8_t bitmap[MAX_SECTORS / 8];
};

static int fake_probe(const uint8_t *head, size_t len, const char *filename)
{
	return len >= 8 && !memcmp(head, "FAKECOW", 8) ? 100 : 0;
}

static int fake_open(struct bdev *bs, char *err, size_t errlen)
{
	struct fake_hdr h;
	struct fake *s = calloc(1, sizeof(*s));

	if (!s || bfile_pread(bs->file, 0, &h, sizeof(h)) < 0 ||
	    bfile_pread(bs->file, BITMAP_OFF, s->bitmap, sizeof(s->bitmap)) < 0) {
		free(s);
		snprintf(err, errlen, "'%s': cannot read header", bs->filename);
		return -EIO;
	}
	bs->size = le64toh(h.size_le);
	if (bs->size > MAX_SECTORS * SECTOR) {
		free(s);
		snprintf(err, errlen, "'%s': size too large", bs->filename);
		return -EINVAL;
	}
	h.backing[sizeof(h.backing) - 1] = 0;
	h.backing_fmt[sizeof(h.backing_fmt) - 1] = 0;
	if (h.backing[0])
		bs->backing_filename = strdup(h.backing);
	if (h.backing_fmt[0])
		bs->backing_format = strdup(h.backing_fmt);
	bs->opaque = s;
	return 0;
}

static void fake_close(struct bdev *bs)
{
	free(bs->opaque);
}

static bool allocated(struct bdev *bs, uint64_t sector)
{
	struct fake *s = bs->opaque;

	return s->bitmap[sector / 8] & (1u << (sector % 8));
}

static int fake_preadv(struct bdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	size_t len = iov_size(iov, iovcnt);
	uint8_t buf[SECTOR];

	assert_int_equal(off % SECTOR, 0);
	assert_int_equal(len % SECTOR, 0);
	for (size_t done = 0; done < len; done += SECTOR) {
		uint64_t sector = (off + done) / SECTOR;
		int ret = allocated(bs, sector) ?
			  bfile_pread(bs->file, DATA_OFF + sector * SECTOR, buf, SECTOR) :
			  block_read_backing(bs, off + done, buf, SECTOR);

		if (ret < 0)
			return ret;
		iov_from_buf(iov, iovcnt, done, buf, SECTOR);
	}
	return 0;
}

static int fake_pwritev(struct bdev *bs, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct fake *s = bs->opaque;
	size_t len = iov_size(iov, iovcnt);
	uint8_t buf[SECTOR];

	for (size_t done = 0; done < len; done += SECTOR) {
		uint64_t sector = (off + done) / SECTOR;

		iov_to_buf(iov, iovcnt, done, buf, SECTOR);
		if (bfile_pwrite(bs->file, DATA_OFF + sector * SECTOR, buf, SECTOR) < 0)
			return -EIO;
		s->bitmap[sector / 8] |= (uint8_t)(1u << (sector % 8));
	}
	return bfile_pwrite(bs->file, BITMAP_OFF, s->bitmap, sizeof(s->bitmap));
}

static int fake_flush(struct bdev *bs)
{
	return bfile_flush(bs->file);
}

static int fake_block_status(struct bdev *bs, uint64_t off, uint64_t len,
			     struct block_extent *ext)
{
	uint64_t sector = off / SECTOR;
	bool a = allocated(bs, sector);
	uint64_t n = SECTOR - off % SECTOR;

	while (n < len && allocated(bs, (off + n) / SECTOR) == a)
		n += SECTOR;
	ext->len = n < len ? n : len;
	ext->status = a ? BLOCK_STATUS_DATA : BLOCK_STATUS_BACKING;
	ext->host_offset = DATA_OFF + sector * SECTOR + off % SECTOR;
	return 0;
}

static struct block_format fakecow = {
	.name = "fakecow",
	.probe = fake_probe,
	.open = fake_open,
	.close = fake_close,
	.preadv = fake_preadv,
	.pwritev = fake_pwritev,
	.flush = fake_flush,
	.block_status = fake_block_status,
};
BLOCK_FORMAT_REGISTER(fakecow)

static char dir[64];

static const char *in_dir(const char *name)
{
	static char bufs[4][160];
	static int n;
	char *p = bufs[n++ % 4];

	snprintf(p, 160, "%s/%s", dir, name);
	return p;
}

static void make_fake(const char *name, uint64_t size, const char *backing, const char *bfmt)
{
	struct fake_hdr h = { .magic = "FAKECOW" };
	int fd = open(in_dir(name), O_RDWR | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	h.size_le = htole64(size);
	snprintf(h.backing, sizeof(h.backing), "%s", backing ? backing : "");
	snprintf(h.backing_fmt, sizeof(h.backing_fmt), "%s", bfmt ? bfmt : "");
	assert_int_equal(pwrite(fd, &h, sizeof(h), 0), sizeof(h));
	assert_int_equal(ftruncate(fd, DATA_OFF), 0);
	close(fd);
}

static void make_raw(const char *name, uint64_t size, uint8_t fill)
{
	int fd = open(in_dir(name), O_RDWR | O_CREAT | O_TRUNC, 0644);
	uint8_t *buf = malloc(size);

	assert_true(fd >= 0 && buf);
	memset(buf, fill, size);
	assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
	close(fd);
	free(buf);
}

static int open_top(const char *name, struct block_open_opts *o, struct bdev **bs, char *err)
{
	struct block_open_opts def = { 0 };

	return bdev_open(in_dir(name), o ? o : &def, bs, err, 256);
}

static void write_sector(const char *name, uint64_t sector, uint8_t fill)
{
	struct block_open_opts o = { .format = "fakecow", .no_backing = true };
	uint8_t buf[SECTOR];
	struct bdev *bs;
	char err[256];

	assert_int_equal(open_top(name, &o, &bs, err), 0);
	memset(buf, fill, sizeof(buf));
	assert_int_equal(bdev_pwrite(bs, sector * SECTOR, buf, SECTOR), 0);
	bdev_close(bs);
}

static void expect_sector(struct bdev *bs, uint64_t sector, uint8_t fill)
{
	uint8_t buf[SECTOR];

	assert_int_equal(bdev_pread(bs, sector * SECTOR, buf, SECTOR), 0);
	for (unsigned i = 0; i < SECTOR; i++)
		assert_int_equal(buf[i], fill);
}

static int setup(void **state)
{
	strcpy(dir, "/var/tmp/test_block_chain.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_three_level_chain(void **state)
{
	struct bdev *bs;
	char err[256];
	unsigned status;

	make_raw("base.raw", 2 * SECTOR * 4, 0xba);		/* 4 KiB: shorter than the top */
	make_fake("mid.fc", 64 * 1024, "base.raw", "raw");
	make_fake("top.fc", 64 * 1024, "mid.fc", NULL);	/* probed */
	write_sector("mid.fc", 1, 0x11);
	write_sector("top.fc", 2, 0x22);

	assert_int_equal(open_top("top.fc", NULL, &bs, err), 0);
	assert_string_equal(bdev_format_name(bs), "fakecow");
	assert_non_null(bdev_backing(bs));
	assert_string_equal(bdev_format_name(bdev_backing(bs)), "fakecow");
	assert_string_equal(bdev_format_name(bdev_backing(bdev_backing(bs))), "raw");
	assert_null(bdev_backing(bdev_backing(bdev_backing(bs))));
	assert_string_equal(bdev_filename(bdev_backing(bs)), in_dir("mid.fc"));
	assert_true(bdev_is_read_only(bdev_backing(bs)));
	assert_false(bdev_is_read_only(bs));
	assert_int_equal(bdev_backing(bdev_backing(bs))->depth, 2);

	expect_sector(bs, 0, 0xba);
	expect_sector(bs, 1, 0x11);
	expect_sector(bs, 2, 0x22);
	expect_sector(bs, 7, 0xba);
	expect_sector(bs, 8, 0x00);		/* past the end of base */
	expect_sector(bs, 127, 0x00);

	assert_int_equal(bdev_block_status(bs, 0, 64 * 1024, &status, NULL), 2 * SECTOR);
	assert_int_equal(status, BLOCK_STATUS_BACKING);
	assert_int_equal(bdev_block_status(bs, 2 * SECTOR, 64 * 1024, &status, NULL), SECTOR);
	assert_int_equal(status, BLOCK_STATUS_DATA);
	bdev_close(bs);

	/* the top without its chain: unallocated reads as zeroes */
	struct block_open_opts o = { .no_backing = true };

	assert_int_equal(open_top("top.fc", &o, &bs, err), 0);
	assert_null(bdev_backing(bs));
	expect_sector(bs, 0, 0x00);
	expect_sector(bs, 2, 0x22);
	assert_int_equal(bdev_block_status(bs, 0, SECTOR, &status, NULL), SECTOR);
	assert_int_equal(status, BLOCK_STATUS_ZERO);
	bdev_close(bs);
}

static void test_backing_format_override(void **state)
{
	struct block_open_opts o = { .backing_format = "raw" };
	uint8_t hdr_like[SECTOR];
	struct bdev *bs;
	char err[256];
	int fd;

	/* a raw backing file whose content looks like a fakecow header */
	make_raw("looks.raw", 8 * SECTOR, 0x33);
	fd = open(in_dir("looks.raw"), O_WRONLY);
	memset(hdr_like, 0, sizeof(hdr_like));
	memcpy(hdr_like, "FAKECOW", 8);
	assert_int_equal(pwrite(fd, hdr_like, sizeof(hdr_like), 0), SECTOR);
	close(fd);
	make_fake("ov.fc", 8 * SECTOR, "looks.raw", NULL);
	/* probed: the backing would be a (zero-size) fakecow image */
	assert_int_equal(open_top("ov.fc", NULL, &bs, err), 0);
	assert_string_equal(bdev_format_name(bdev_backing(bs)), "fakecow");
	bdev_close(bs);
	/* overridden: raw, and its sector 1 shows through */
	assert_int_equal(open_top("ov.fc", &o, &bs, err), 0);
	assert_string_equal(bdev_format_name(bdev_backing(bs)), "raw");
	expect_sector(bs, 1, 0x33);
	bdev_close(bs);
	/* a recorded format that does not exist */
	make_fake("badfmt.fc", 8 * SECTOR, "looks.raw", "nosuch");
	assert_int_equal(open_top("badfmt.fc", NULL, &bs, err), -EINVAL);
	assert_non_null(strstr(err, "nosuch"));
}

static void test_loops(void **state)
{
	struct bdev *bs = (struct bdev *)1;
	char err[256];

	make_fake("self.fc", 4096, "self.fc", NULL);
	assert_int_equal(open_top("self.fc", NULL, &bs, err), -ELOOP);
	assert_null(bs);
	assert_non_null(strstr(err, "loops"));

	make_fake("a.fc", 4096, "b.fc", NULL);
	make_fake("b.fc", 4096, "c.fc", "fakecow");
	make_fake("c.fc", 4096, "a.fc", NULL);
	assert_int_equal(open_top("a.fc", NULL, &bs, err), -ELOOP);
	assert_non_null(strstr(err, "loops"));

	/* a hard link is the same image under another name */
	assert_int_equal(link(in_dir("self.fc"), in_dir("hard.fc")), 0);
	make_fake("viahard.fc", 4096, "hard.fc", NULL);
	make_fake("hardtop.fc", 4096, "viahard.fc", NULL);
	make_fake("self.fc", 4096, "hardtop.fc", NULL);
	assert_int_equal(open_top("hardtop.fc", NULL, &bs, err), -ELOOP);
}

static void test_depth_limit(void **state)
{
	struct block_open_opts o = { 0 };
	struct bdev *bs;
	char err[256], name[32], next[32];

	/* d0 -> d1 -> ... -> d19 (20 images) */
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "d%d.fc", i);
		snprintf(next, sizeof(next), "d%d.fc", i + 1);
		make_fake(name, 4096, i < 19 ? next : NULL, NULL);
	}
	assert_int_equal(open_top("d0.fc", NULL, &bs, err), -ELOOP);	/* default 16 */
	assert_non_null(strstr(err, "longer than 16"));
	assert_int_equal(open_top("d4.fc", NULL, &bs, err), 0);	/* 16 images */
	bdev_close(bs);
	o.max_chain_depth = 3;
	assert_int_equal(open_top("d17.fc", &o, &bs, err), 0);
	bdev_close(bs);
	assert_int_equal(open_top("d16.fc", &o, &bs, err), -ELOOP);
	o.max_chain_depth = 100;
	assert_int_equal(open_top("d0.fc", &o, &bs, err), 0);
	bdev_close(bs);
}

static void test_path_rules(void **state)
{
	struct block_open_opts o = { .allow_absolute_paths = true };
	struct bdev *bs;
	char err[256], sub[160];

	make_raw("plain.raw", 4096, 0x44);
	make_fake("abs.fc", 4096, in_dir("plain.raw"), "raw");
	assert_int_equal(open_top("abs.fc", NULL, &bs, err), -EINVAL);
	assert_non_null(strstr(err, "absolute"));
	assert_non_null(strstr(err, in_dir("abs.fc")));
	assert_int_equal(open_top("abs.fc", &o, &bs, err), 0);
	expect_sector(bs, 0, 0x44);
	bdev_close(bs);

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	make_fake("sub/up.fc", 4096, "../plain.raw", "raw");
	assert_int_equal(open_top("sub/up.fc", NULL, &bs, err), -EINVAL);
	assert_non_null(strstr(err, ".."));
	assert_int_equal(open_top("sub/up.fc", &o, &bs, err), 0);
	expect_sector(bs, 0, 0x44);
	bdev_close(bs);

	make_fake("proto.fc", 4096, "json:{\"driver\":\"raw\"}", NULL);
	assert_int_equal(open_top("proto.fc", &o, &bs, err), -EINVAL);
	assert_non_null(strstr(err, "protocol"));

	make_fake("missing.fc", 4096, "nothere.raw", "raw");
	assert_int_equal(open_top("missing.fc", NULL, &bs, err), -ENOENT);
	assert_non_null(strstr(err, "nothere.raw"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_level_chain),
		cmocka_unit_test(test_backing_format_override),
		cmocka_unit_test(test_loops),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_path_rules),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
