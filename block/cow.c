/* User Mode Linux COW images: a header naming the backing file, a bitmap
 * with one bit per sector (set: the sector lives in this file, clear: read
 * it from the backing file; LSB first within each byte) and a data area
 * where sector i sits at data_offset + i * sectorsize. Reads and writes
 * versions 1 to 3 and creates versions 2 and 3.
 *
 * Header flavours (v2 and v3 fields big-endian, v1 in the x86 byte order
 * UML used, as UML reads it):
 *   v1 (UML, packed, 280 bytes): magic, version, backing_file[256],
 *      mtime u32, size u64, sectorsize s32
 *   v2 (QEMU's old driver, natural C alignment, 1056 bytes): magic,
 *      version, backing_file[1024], mtime i32, pad, size u64 at 1040,
 *      sectorsize u32 at 1048; bitmap at 1056, data at the next 512 bytes
 *   v2 (UML, packed, 4120 bytes): backing_file[4096], mtime, size,
 *      sectorsize; detected when the QEMU fields do not make sense
 *   v3 (UML, packed, 4128 bytes): magic, version, mtime u32, size u64,
 *      sectorsize u32, alignment u32, cow_format u32, backing_file[4096];
 *      bitmap and data each start on an `alignment` boundary
 *   v3 "broken" (64-bit UML builds, 4136 bytes): mtime as u64, natural
 *      alignment; recognised by the zero cow_format where the name starts.
 * Crash order on write: the data, then the bitmap bits.
 *
 * The backing file's mtime and size are recorded in the header (the size
 * field is the backing file's size: a cow image covers its backing file).
 * As UML does, opening the chain compares them with the backing file and
 * refuses on a mismatch (the backing file changed under the image, so the
 * sectors not in the bitmap may no longer be what the image was written
 * against). Choices: an mtime of 0 is QEMU's old "unknown" (its cow driver
 * wrote 0 when it could not stat the backing file and never checked), so
 * it is not compared; the size is compared only with a raw backing file
 * (UML's case; for another format the file size is not the disk size).
 * Opting out: `minikvm-img rebase -u -b FILE img.cow` re-records the
 * current mtime (UML does the same when switching backing files), or the
 * open option skip_backing_check. Creation records both. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/bfile.h"
#include "block/endian.h"
#include "block/format.h"
#include "vmm/log.h"

#define COW_MAGIC		0x4f4f4f4du
#define COW_V1_HEADER		280
#define COW_V1_NAME		256
#define COW_V2Q_HEADER		1056
#define COW_V2Q_NAME		1024
#define COW_V2U_HEADER		4120
#define COW_V3_HEADER		4128
#define COW_V3B_HEADER		4136
#define COW_V3_NAME		4096
#define COW_MAX_HEADER		COW_V3B_HEADER
#define COW_MAX_BITMAP		(256u << 20)	/* 1 TiB of 512-byte sectors */
#define COW_MAX_ALIGN		(1u << 20)
#define COW_MAX_SIZE		(1ull << 60)
#define COW_CHUNK		(1u << 20)	/* bounce buffer for one pass */
#define COW_DEFAULT_ALIGN	4096		/* what UML's ubd uses */

enum cow_flavour { COW_V1, COW_V2_QEMU, COW_V2_UML, COW_V3, COW_V3_BROKEN };

struct cow_state {
	enum cow_flavour flavour;
	unsigned version;
	uint32_t sector_size;
	uint64_t sectors;
	uint64_t bitmap_offset, bitmap_len, data_offset;
	uint64_t name_offset, name_len;	/* the backing_file field */
	uint64_t header_size_field;	/* the size field: the backing file's size */
	uint64_t mtime_offset;
	unsigned mtime_bytes;
	bool mtime_le;
	uint8_t *bitmap;
	uint8_t *bounce;		/* COW_CHUNK bytes */
};

struct cow_layout {			/* decoded header */
	enum cow_flavour flavour;
	unsigned version;
	uint64_t mtime;			/* of the backing file, 0 = unknown */
	uint64_t mtime_offset;		/* byte offset of the field */
	unsigned mtime_bytes;		/* 4, or 8 in the 64-bit v3 layout */
	bool mtime_le;			/* v1: x86 byte order */
	uint64_t size;
	uint32_t sector_size, align, cow_format;
	uint64_t header_size, name_offset, name_len;
};

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t round_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) / align * align;
}

/* Magic in either byte order (v1 may be host order); returns the version. */
static int cow_magic_version(const uint8_t *head, size_t len)
{
	if (len < 8)
		return -1;
	if (ld_be32(head) == COW_MAGIC)
		return (int)(ld_be32(head + 4) & 0x7fffffff);
	if (ld_le32(head) == COW_MAGIC)
		return (int)(ld_le32(head + 4) & 0x7fffffff);
	return -1;
}

static int cow_probe(const uint8_t *head, size_t len, const char *filename)
{
	int v = cow_magic_version(head, len);

	return v >= 1 && v <= 3 ? 100 : 0;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)

/* The QEMU v2 layout when its size and sector size make sense there. */
static bool cow_v2_is_qemu(const uint8_t *h, size_t n)
{
	return n >= COW_V2Q_HEADER && ld_be32(h + 1048) == 512 && ld_be64(h + 1040) != 0 &&
	       memchr(h + 8, 0, COW_V2Q_NAME);
}

static int cow_decode(const uint8_t *h, size_t n, struct cow_layout *l, const char *fn,
		      char *err, size_t errlen)
{
	int v = cow_magic_version(h, n);

	memset(l, 0, sizeof(*l));
	l->mtime_bytes = 4;
	if (v < 0)
		FAIL("%s: not a cow image (bad magic)", fn);
	l->version = v;
	switch (v) {
	case 1:
		if (n < COW_V1_HEADER)
			FAIL("%s: cow v1 header truncated", fn);
		l->flavour = COW_V1;
		l->mtime = ld_le32(h + 264);
		l->mtime_offset = 264;
		l->mtime_le = true;
		l->size = ld_le64(h + 268);
		l->sector_size = ld_le32(h + 276);
		l->align = l->sector_size;
		l->header_size = COW_V1_HEADER;
		l->name_offset = 8;
		l->name_len = COW_V1_NAME;
		return 0;
	case 2:
		if (cow_v2_is_qemu(h, n)) {
			l->flavour = COW_V2_QEMU;
			l->mtime = ld_be32(h + 1032);
			l->mtime_offset = 1032;
			l->size = ld_be64(h + 1040);
			l->sector_size = 512;
			l->header_size = COW_V2Q_HEADER;
			l->name_len = COW_V2Q_NAME;
		} else {
			if (n < COW_V2U_HEADER)
				FAIL("%s: cow v2 header truncated", fn);
			l->flavour = COW_V2_UML;
			l->mtime = ld_be32(h + 4104);
			l->mtime_offset = 4104;
			l->size = ld_be64(h + 4108);
			l->sector_size = ld_be32(h + 4116);
			l->header_size = COW_V2U_HEADER;
			l->name_len = COW_V3_NAME;
		}
		l->align = l->sector_size;
		l->name_offset = 8;
		return 0;
	case 3:
		if (n < COW_V3_HEADER)
			FAIL("%s: cow v3 header truncated", fn);
		if (ld_le32(h + 32) != 0) {
			l->flavour = COW_V3;
			l->mtime = ld_be32(h + 8);
			l->mtime_offset = 8;
			l->size = ld_be64(h + 12);
			l->sector_size = ld_be32(h + 20);
			l->align = ld_be32(h + 24);
			l->cow_format = ld_be32(h + 28);
			l->header_size = COW_V3_HEADER;
			l->name_offset = 32;
		} else {
			if (n < COW_V3B_HEADER)
				FAIL("%s: cow v3 header truncated", fn);
			l->flavour = COW_V3_BROKEN;
			l->mtime = ld_be64(h + 8);
			l->mtime_offset = 8;
			l->mtime_bytes = 8;
			l->size = ld_be64(h + 16);
			l->sector_size = ld_be32(h + 24);
			l->align = ld_be32(h + 28);
			l->cow_format = ld_be32(h + 32);
			l->header_size = COW_V3B_HEADER;
			l->name_offset = 36;
		}
		l->name_len = COW_V3_NAME;
		return 0;
	default:
		FAIL("%s: cow version %d is not supported (1 to 3)", fn, v);
	}
}

/* Bitmap and data placement, as UML (and QEMU for its v2) computes them. */
static int cow_place(const struct cow_layout *l, uint64_t file_size, struct cow_state *s,
		     const char *fn, char *err, size_t errlen)
{
	uint64_t need;

	if (l->sector_size < 512 || l->sector_size > 65536 || !is_pow2(l->sector_size))
		FAIL("%s: cow sectorsize %u must be a power of two in 512..65536", fn,
		     l->sector_size);
	if (!is_pow2(l->align) || l->align > COW_MAX_ALIGN)
		FAIL("%s: cow alignment %u must be a power of two up to %u", fn, l->align,
		     COW_MAX_ALIGN);
	if (l->cow_format != 0)
		FAIL("%s: cow_format %u is not supported (only 0, bitmap)", fn, l->cow_format);
	if (l->size < l->sector_size || l->size > COW_MAX_SIZE)
		FAIL("%s: cow size %llu out of range", fn, (unsigned long long)l->size);
	s->sector_size = l->sector_size;
	s->sectors = l->size / l->sector_size;
	need = (s->sectors + 7) / 8;
	if (l->flavour == COW_V3 || l->flavour == COW_V3_BROKEN) {
		s->bitmap_offset = round_up(l->header_size, l->align);
		s->bitmap_len = need;
		s->data_offset = round_up(s->bitmap_offset + need, l->align);
	} else if (l->flavour == COW_V2_QEMU) {
		s->bitmap_offset = l->header_size;
		s->bitmap_len = need;
		s->data_offset = round_up(s->bitmap_offset + need, 512);
	} else {
		/* UML's pre-v3 rounding: the bitmap length rounds down. */
		s->bitmap_offset = l->header_size;
		s->bitmap_len = (l->size + l->sector_size - 1) / (8ull * l->sector_size);
		s->data_offset = round_up(s->bitmap_offset + s->bitmap_len, l->sector_size);
		if (s->bitmap_offset + need > s->data_offset)
			FAIL("%s: cow bitmap overlaps the data area (size %llu)", fn,
			     (unsigned long long)l->size);
		s->bitmap_len = need;
	}
	if (need > COW_MAX_BITMAP)
		FAIL("%s: cow size %llu needs a %llu-byte bitmap (too large)", fn,
		     (unsigned long long)l->size, (unsigned long long)need);
	if (s->bitmap_offset + need > file_size)
		FAIL("%s: cow bitmap (%llu bytes at %llu) extends past the end of the file", fn,
		     (unsigned long long)need, (unsigned long long)s->bitmap_offset);
	s->name_offset = l->name_offset;
	s->name_len = l->name_len;
	s->header_size_field = l->size;
	s->mtime_offset = l->mtime_offset;
	s->mtime_bytes = l->mtime_bytes;
	s->mtime_le = l->mtime_le;
	s->flavour = l->flavour;
	s->version = l->version;
	return 0;
}

static int cow_backing_name(struct bdev *bs, const uint8_t *h, const struct cow_layout *l,
			    char *err, size_t errlen)
{
	const char *name = (const char *)h + l->name_offset;
	size_t len = strnlen(name, l->name_len);

	if (len == l->name_len)
		FAIL("%s: cow backing_file is not NUL-terminated", bs->filename);
	if (len == 0)
		FAIL("%s: cow backing_file is empty", bs->filename);
	bs->backing_filename = strdup(name);
	if (!bs->backing_filename)
		FAIL("%s: out of memory", bs->filename);
	return 0;
}

/* The backing file's mtime, size and whether it is a raw regular file (a
 * probe of its first sector), for path resolved as the block layer does. */
static int cow_backing_facts(const char *path, struct stat *st, bool *raw)
{
	uint8_t head[BLOCK_PROBE_BUF_SIZE] = { 0 };
	const struct block_format *f;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		close(fd);
		return -errno;
	}
	n = pread(fd, head, sizeof(head), 0);
	close(fd);
	f = block_probe(head, n > 0 ? (size_t)n : 0, path);
	/* a block device's st_size is 0: its size is not compared */
	*raw = S_ISREG(st->st_mode) && (!f || !strcmp(f->name, "raw"));
	return 0;
}

/* UML's check: the backing file is still the one the image was made on. */
static int cow_check_backing(struct bdev *bs, const struct cow_layout *l, char *err,
			     size_t errlen)
{
	char ignored[256];
	char *path = block_resolve_relative(bs, bs->backing_filename,
					    bs->opts.allow_absolute_paths, ignored,
					    sizeof(ignored));
	struct stat st;
	uint64_t disk_mtime;
	bool raw = false;
	int ret;

	if (!path)
		return 0;		/* the layer reports the name itself */
	ret = cow_backing_facts(path, &st, &raw);
	free(path);
	if (ret < 0)
		return 0;		/* likewise a missing backing file */
	disk_mtime = l->mtime_bytes == 8 ? (uint64_t)st.st_mtime : (uint32_t)st.st_mtime;
	if (l->mtime && l->mtime != disk_mtime)
		FAIL("%s: cow backing file '%s' was modified after the image was made (mtime "
		     "%llu in the header, %llu on disk); 'minikvm-img rebase -u -b %s %s' "
		     "accepts it", bs->filename, bs->backing_filename,
		     (unsigned long long)l->mtime, (unsigned long long)disk_mtime,
		     bs->backing_filename, bs->filename);
	if (raw && (uint64_t)st.st_size != l->size)
		FAIL("%s: cow backing file '%s' has %llu bytes but the header records %llu",
		     bs->filename, bs->backing_filename, (unsigned long long)st.st_size,
		     (unsigned long long)l->size);
	return 0;
}

/* rebase and commit: record the backing file's current mtime, as UML does
 * when it switches backing files; its size must still be the header's. */
static int cow_record_backing(struct bdev *bs, const char *file)
{
	struct cow_state *s = bs->opaque;
	char ignored[256];
	char *path = block_resolve_relative(bs, file, true, ignored, sizeof(ignored));
	uint8_t field[8];
	struct stat st;
	bool raw = false;
	int ret;

	if (!path)
		return -EINVAL;
	ret = cow_backing_facts(path, &st, &raw);
	free(path);
	if (ret < 0)
		return ret;
	if (raw && (uint64_t)st.st_size != s->header_size_field)
		return -EINVAL;		/* the bitmap covers the old size */
	if (s->mtime_bytes == 8)
		st_be64(field, (uint64_t)st.st_mtime);
	else if (s->mtime_le)
		st_le32(field, (uint32_t)st.st_mtime);
	else
		st_be32(field, (uint32_t)st.st_mtime);
	return bfile_pwrite(bs->file, s->mtime_offset, field, s->mtime_bytes);
}

static void cow_close(struct bdev *bs)
{
	struct cow_state *s = bs->opaque;

	if (!s)
		return;
	free(s->bitmap);
	free(s->bounce);
	free(s);
	bs->opaque = NULL;
}

static int cow_open(struct bdev *bs, char *err, size_t errlen)
{
	struct cow_layout l;
	struct cow_state *s;
	uint8_t *h;
	int64_t fsize;
	size_t n;
	int ret;

	fsize = bfile_size(bs->file);
	if (fsize < 0) {
		snprintf(err, errlen, "%s: cannot get the file size: %s", bs->filename,
			 strerror((int)-fsize));
		return (int)fsize;
	}
	n = fsize < COW_MAX_HEADER ? (size_t)fsize : COW_MAX_HEADER;
	h = calloc(1, COW_MAX_HEADER);
	s = calloc(1, sizeof(*s));
	if (!h || !s) {
		free(h);
		free(s);
		FAIL("%s: out of memory", bs->filename);
	}
	bs->opaque = s;
	ret = bfile_pread(bs->file, 0, h, n);
	if (ret < 0)
		snprintf(err, errlen, "%s: cannot read the cow header: %s", bs->filename,
			 strerror(-ret));
	if (ret == 0)
		ret = cow_decode(h, n, &l, bs->filename, err, errlen);
	if (ret == 0)
		ret = cow_place(&l, (uint64_t)fsize, s, bs->filename, err, errlen);
	if (ret == 0)
		ret = cow_backing_name(bs, h, &l, err, errlen);
	if (ret == 0 && !bs->opts.no_backing && !bs->opts.skip_backing_check)
		ret = cow_check_backing(bs, &l, err, errlen);
	free(h);
	if (ret == 0) {
		s->bitmap = calloc(1, s->bitmap_len ? s->bitmap_len : 1);
		s->bounce = malloc(COW_CHUNK);
		if (!s->bitmap || !s->bounce) {
			snprintf(err, errlen, "%s: out of memory for the cow bitmap",
				 bs->filename);
			ret = -ENOMEM;
		}
	}
	if (ret == 0) {
		ret = bfile_pread(bs->file, s->bitmap_offset, s->bitmap, s->bitmap_len);
		if (ret < 0)
			snprintf(err, errlen, "%s: cannot read the cow bitmap: %s",
				 bs->filename, strerror(-ret));
	}
	if (ret < 0) {
		cow_close(bs);
		return ret;
	}
	bs->size = s->sectors * s->sector_size;
	return 0;
}

static bool cow_bit(const struct cow_state *s, uint64_t sector)
{
	return s->bitmap[sector / 8] & (1u << (sector % 8));
}

/* Sectors from `sector` (at most max) sharing the first one's bit. */
static uint64_t cow_run(const struct cow_state *s, uint64_t sector, uint64_t max, bool *set)
{
	uint64_t n = 1;

	*set = cow_bit(s, sector);
	while (n < max && cow_bit(s, sector + n) == *set)
		n++;
	return n;
}

/* Read [offset, offset+len) of the virtual disk into buf (len <= COW_CHUNK). */
static int cow_read_flat(struct bdev *bs, uint64_t offset, uint8_t *buf, size_t len)
{
	struct cow_state *s = bs->opaque;
	size_t done = 0;
	int ret;

	while (done < len) {
		uint64_t pos = offset + done, sector = pos / s->sector_size;
		uint64_t last = (offset + len - 1) / s->sector_size;
		uint64_t run_end, n;
		bool set;

		run_end = (sector + cow_run(s, sector, last - sector + 1, &set)) * s->sector_size;
		n = (run_end < offset + len ? run_end : offset + len) - pos;
		if (set)
			ret = bfile_pread(bs->file, s->data_offset + pos, buf + done, n);
		else
			ret = block_read_backing(bs, pos, buf + done, n);
		if (ret < 0)
			return ret;
		done += n;
	}
	return 0;
}

static int cow_preadv(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct cow_state *s = bs->opaque;
	size_t total = iov_size(iov, iovcnt), done = 0;
	int ret;

	if (offset > bs->size || total > bs->size - offset)
		return -EINVAL;
	while (done < total) {
		size_t n = total - done < COW_CHUNK ? total - done : COW_CHUNK;

		ret = cow_read_flat(bs, offset + done, s->bounce, n);
		if (ret < 0)
			return ret;
		iov_from_buf(iov, iovcnt, done, s->bounce, n);
		done += n;
	}
	return 0;
}

/* Set the bits of sectors [first, last] and write the bitmap bytes. */
static int cow_set_bits(struct bdev *bs, uint64_t first, uint64_t last)
{
	struct cow_state *s = bs->opaque;
	uint64_t i, b0 = first / 8, b1 = last / 8;
	bool changed = false;

	for (i = first; i <= last; i++) {
		if (!cow_bit(s, i)) {
			s->bitmap[i / 8] |= 1u << (i % 8);
			changed = true;
		}
	}
	if (!changed)
		return 0;
	return bfile_pwrite(bs->file, s->bitmap_offset + b0, s->bitmap + b0, b1 - b0 + 1);
}

/* Write one chunk: whole sectors assembled in the bounce buffer (partial
 * head/tail sectors completed from their current contents), data first,
 * then the bitmap. */
static int cow_write_chunk(struct bdev *bs, uint64_t offset, const struct iovec *iov,
			   int iovcnt, size_t iov_off, size_t len)
{
	struct cow_state *s = bs->opaque;
	uint32_t ss = s->sector_size;
	uint64_t start = offset / ss * ss, end = round_up(offset + len, ss);
	uint64_t first = start / ss, last = end / ss - 1;
	int ret;

	if (start != offset) {
		ret = cow_read_flat(bs, start, s->bounce, ss);
		if (ret < 0)
			return ret;
	}
	/* The tail sector, unless it is the head sector already read. */
	if (end != offset + len && !(end - ss == start && start != offset)) {
		ret = cow_read_flat(bs, end - ss, s->bounce + (end - ss - start), ss);
		if (ret < 0)
			return ret;
	}
	iov_to_buf(iov, iovcnt, iov_off, s->bounce + (offset - start), len);
	ret = bfile_pwrite(bs->file, s->data_offset + start, s->bounce, end - start);
	if (ret < 0)
		return ret;
	return cow_set_bits(bs, first, last);
}

static int cow_pwritev(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct cow_state *s = bs->opaque;
	size_t total = iov_size(iov, iovcnt), done = 0;
	/* Leave room for the partial sectors at both ends of a chunk. */
	size_t max = COW_CHUNK - 2 * s->sector_size;
	int ret;

	if (offset > bs->size || total > bs->size - offset)
		return -EINVAL;
	while (done < total) {
		size_t n = total - done < max ? total - done : max;

		ret = cow_write_chunk(bs, offset + done, iov, iovcnt, done, n);
		if (ret < 0)
			return ret;
		done += n;
	}
	return 0;
}

static int cow_flush(struct bdev *bs)
{
	return bfile_flush(bs->file);
}

static int cow_block_status(struct bdev *bs, uint64_t offset, uint64_t len,
			    struct block_extent *ext)
{
	struct cow_state *s = bs->opaque;
	uint64_t sector, last, end;
	bool set;

	if (len == 0 || offset >= bs->size)
		return -EINVAL;
	if (len > bs->size - offset)
		len = bs->size - offset;
	sector = offset / s->sector_size;
	last = (offset + len - 1) / s->sector_size;
	end = (sector + cow_run(s, sector, last - sector + 1, &set)) * s->sector_size;
	ext->len = (end < offset + len ? end : offset + len) - offset;
	if (set) {
		ext->status = BLOCK_STATUS_DATA;
		ext->host_offset = s->data_offset + offset;
	} else {
		ext->status = bs->backing ? BLOCK_STATUS_BACKING : BLOCK_STATUS_ZERO;
		ext->host_offset = 0;
	}
	return 0;
}

static int cow_info(struct bdev *bs, const struct block_info_writer *w)
{
	struct cow_state *s = bs->opaque;
	static const char *const names[] = {
		[COW_V1] = "1 (UML)", [COW_V2_QEMU] = "2 (QEMU)", [COW_V2_UML] = "2 (UML)",
		[COW_V3] = "3 (UML)", [COW_V3_BROKEN] = "3 (UML 64-bit layout)",
	};

	w->str(w->opaque, "cow-version", names[s->flavour]);
	w->num(w->opaque, "sector-size", s->sector_size);
	w->num(w->opaque, "data-offset", s->data_offset);
	return 0;
}

static uint32_t cow_cluster_size(struct bdev *bs)
{
	return ((struct cow_state *)bs->opaque)->sector_size;
}

static int cow_change_backing(struct bdev *bs, const char *file, const char *fmt)
{
	struct cow_state *s = bs->opaque;
	char *field;
	int ret;

	if (!file || !*file)
		return -EINVAL;		/* a cow image always has a backing file */
	if (strlen(file) >= s->name_len)
		return -ENAMETOOLONG;
	field = calloc(1, s->name_len);
	if (!field)
		return -ENOMEM;
	strcpy(field, file);
	ret = cow_record_backing(bs, file);
	if (ret == 0)
		ret = bfile_pwrite(bs->file, s->name_offset, field, s->name_len);
	free(field);
	if (ret < 0)
		return ret;
	free(bs->backing_filename);
	bs->backing_filename = strdup(file);
	return bfile_flush(bs->file);
}

/* Commit's make_empty (QEMU's cow driver had none): a cleared bitmap,
 * then the data area deallocated (QEMU's v2 files end after the bitmap;
 * UML's stay sparse at their full length). */
static int cow_make_empty(struct bdev *bs)
{
	struct cow_state *s = bs->opaque;
	int64_t fsize;
	int ret;

	ret = bfile_write_zeroes(bs->file, s->bitmap_offset, s->bitmap_len);
	if (ret == 0)
		ret = bfile_flush(bs->file);
	if (ret < 0)
		return ret;
	memset(s->bitmap, 0, s->bitmap_len);
	/* the commit just wrote the backing file: this image now reads as it */
	ret = cow_record_backing(bs, bs->backing_filename);
	if (ret < 0)
		return ret;
	if (s->flavour == COW_V2_QEMU)
		return bfile_truncate(bs->file, s->bitmap_offset + s->bitmap_len);
	fsize = bfile_size(bs->file);
	if (fsize < 0)
		return (int)fsize;
	if ((uint64_t)fsize > s->data_offset)
		bfile_discard(bs->file, s->data_offset, (uint64_t)fsize - s->data_offset);
	return 0;
}

/* ---- create ---- */

/* The backing file's mtime, size and rawness, resolved next to the new
 * image as the block layer will resolve it. */
static int cow_backing_stat(const char *path, const char *backing, struct stat *st, bool *raw)
{
	char *dup = strdup(path), *full = NULL;
	int ret;

	if (!dup)
		return -ENOMEM;
	if (backing[0] == '/' || asprintf(&full, "%s/%s", dirname(dup), backing) < 0)
		full = NULL;
	ret = cow_backing_facts(full ? full : backing, st, raw);
	free(full);
	free(dup);
	return ret;
}

/* The header, bitmap offset and data offset of a new image. */
static size_t cow_build_header(uint8_t *h, unsigned version, const char *backing,
			       uint64_t size, uint32_t mtime, uint32_t align)
{
	memset(h, 0, COW_MAX_HEADER);
	st_be32(h, COW_MAGIC);
	st_be32(h + 4, version);
	if (version == 2) {
		strcpy((char *)h + 8, backing);
		st_be32(h + 1032, mtime);
		st_be64(h + 1040, size);
		st_be32(h + 1048, 512);
		return COW_V2Q_HEADER;
	}
	st_be32(h + 8, mtime);
	st_be64(h + 12, size);
	st_be32(h + 20, 512);
	st_be32(h + 24, align);
	st_be32(h + 28, 0);
	strcpy((char *)h + 32, backing);
	return COW_V3_HEADER;
}

static int cow_create(const char *path, const struct block_create_opts *o, char *err,
		      size_t errlen)
{
	unsigned version = 3;
	uint32_t align = o->cluster_size ? o->cluster_size : COW_DEFAULT_ALIGN;
	uint64_t size = o->size, bitmap_offset, need, data_offset, file_len;
	struct stat st = { 0 };
	bool have_backing, raw = false;
	uint8_t *h;
	struct bfile *f;
	size_t hlen;
	int ret;

	if (!o->backing_file || !*o->backing_file)
		FAIL("%s: a cow image needs a backing file", path);
	/* compat: "2"/"v2" (QEMU's layout) or "3"/"v3" (UML's); minikvm-img
	 * passes v2/v3 on as qcow2's "0.10"/"1.1". */
	if (o->compat && (!strcmp(o->compat, "2") || !strcmp(o->compat, "v2") ||
			  !strcmp(o->compat, "0.10")))
		version = 2;
	else if (o->compat && strcmp(o->compat, "3") && strcmp(o->compat, "v3") &&
		 strcmp(o->compat, "1.1"))
		FAIL("%s: cow compat must be v2 (QEMU layout) or v3 (UML)", path);
	if (strlen(o->backing_file) >= (version == 2 ? COW_V2Q_NAME : COW_V3_NAME))
		FAIL("%s: backing file name too long for a cow v%u header", path, version);
	if (version == 3 && (!is_pow2(align) || align < 512 || align > COW_MAX_ALIGN))
		FAIL("%s: cow alignment (cluster_size) %u must be a power of two in 512..%u",
		     path, align, COW_MAX_ALIGN);
	if (o->prealloc != PREALLOC_OFF)
		FAIL("%s: cow does not support preallocation", path);
	/* the backing file's mtime and size, when it exists (else 0: unknown) */
	have_backing = cow_backing_stat(path, o->backing_file, &st, &raw) == 0;
	if (size == 0) {
		ret = block_backing_size_for_create(path, o, &size, err, errlen);
		if (ret < 0)
			return ret;
	}
	if (have_backing && raw && size != (uint64_t)st.st_size)
		FAIL("%s: cow size %llu differs from the backing file's %llu bytes (a cow image "
		     "covers its whole backing file)", path, (unsigned long long)size,
		     (unsigned long long)st.st_size);
	/* the header records the backing file's size; the disk is whole sectors */
	if (size < 512 || size > COW_MAX_SIZE || (size / 512 + 7) / 8 > COW_MAX_BITMAP)
		FAIL("%s: cow image size %llu out of range", path, (unsigned long long)size);

	h = malloc(COW_MAX_HEADER);
	if (!h)
		FAIL("%s: out of memory", path);
	hlen = cow_build_header(h, version, o->backing_file, size,
				have_backing ? (uint32_t)st.st_mtime : 0, align);
	need = (size / 512 + 7) / 8;
	size &= ~511ull;
	bitmap_offset = version == 2 ? hlen : round_up(hlen, align);
	data_offset = round_up(bitmap_offset + need, version == 2 ? 512 : align);
	/* QEMU ends a v2 file after the bitmap; UML sizes the file sparse. */
	file_len = version == 2 ? bitmap_offset + need : data_offset + size;

	ret = bfile_open(path, O_RDWR | O_CREAT | O_TRUNC, BLOCK_CACHE_WRITEBACK,
			 BLOCK_ENGINE_DEFAULT, &f, err, errlen);
	if (ret < 0) {
		free(h);
		return ret;
	}
	ret = bfile_pwrite(f, 0, h, hlen);
	if (ret == 0)
		ret = bfile_truncate(f, file_len);
	if (ret == 0)
		ret = bfile_flush(f);
	bfile_close(f);
	free(h);
	if (ret < 0)
		snprintf(err, errlen, "%s: cannot write the cow image: %s", path, strerror(-ret));
	return ret;
}

struct block_format block_format_cow = {	/* not static: unit tests link it by name */
	.name = "cow",
	.probe = cow_probe,
	.open = cow_open,
	.close = cow_close,
	.preadv = cow_preadv,
	.pwritev = cow_pwritev,
	.flush = cow_flush,
	.block_status = cow_block_status,
	.create = cow_create,
	.change_backing = cow_change_backing,
	.info = cow_info,
	.cluster_size = cow_cluster_size,
	.make_empty = cow_make_empty,
};

BLOCK_FORMAT_REGISTER(block_format_cow)
