/* The raw format: the image file (or block device) is the disk, byte for
 * byte. Sparse-aware block status (SEEK_DATA/SEEK_HOLE), discard punches
 * holes, write-zeroes uses ZERO_RANGE or a hole when unmapping is allowed,
 * create with preallocation off/falloc/full, resize. When the format was
 * probed rather than given, a write that would make sector 0 look like
 * another format fails with EPERM (QEMU's rule, CVE-2008-2004).
 * As in QEMU, the disk is the file rounded up to whole 512-byte sectors:
 * the tail past the end of the file reads as zeroes (and shows as zero in
 * block status), and a write there extends the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/format.h"

struct block_format block_format_raw;

static int raw_probe(const uint8_t *head, size_t len, const char *filename)
{
	return 1;	/* anything is a raw image, with the least confidence */
}

/* QEMU counts a file in whole sectors, the last one partly past EOF. */
static uint64_t raw_disk_size(uint64_t file_size)
{
	return (file_size + BDRV_SECTOR_SIZE - 1) & ~(uint64_t)(BDRV_SECTOR_SIZE - 1);
}

static int raw_open(struct bdev *bs, char *err, size_t errlen)
{
	int64_t size = bfile_size(bs->file);

	if (size < 0) {
		snprintf(err, errlen, "Could not get the size of '%s': %s", bs->filename,
			 strerror((int)-size));
		return (int)size;
	}
	bs->size = raw_disk_size((uint64_t)size);
	return 0;
}

static void raw_close(struct bdev *bs)
{
}

static int raw_preadv(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	return bfile_preadv(bs->file, offset, iov, iovcnt);
}

/* With a probed format, sector 0 as it would be after this write must
 * still probe as raw. */
static int check_sector0(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	uint8_t sector[BLOCK_PROBE_BUF_SIZE];
	size_t len = iov_size(iov, iovcnt), n;
	int ret;

	if (!bs->probed || offset >= sizeof(sector) || len == 0)
		return 0;
	ret = bfile_pread(bs->file, 0, sector, sizeof(sector));
	if (ret < 0)
		return ret;
	n = sizeof(sector) - (size_t)offset;
	if (n > len)
		n = len;
	iov_to_buf(iov, iovcnt, 0, sector + offset, n);
	return block_probe(sector, sizeof(sector), NULL) == &block_format_raw ? 0 : -EPERM;
}

static int raw_pwritev(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	int ret = check_sector0(bs, offset, iov, iovcnt);

	return ret < 0 ? ret : bfile_pwritev(bs->file, offset, iov, iovcnt);
}

static int raw_flush(struct bdev *bs)
{
	return bfile_flush(bs->file);
}

static int raw_discard(struct bdev *bs, uint64_t offset, uint64_t len)
{
	int ret = bfile_discard(bs->file, offset, len);

	/* Discard is a hint: a file system without hole punching ignores it. */
	return ret == -EOPNOTSUPP || ret == -ENOSYS ? 0 : ret;
}

static int raw_write_zeroes(struct bdev *bs, uint64_t offset, uint64_t len, bool may_unmap)
{
	if (may_unmap && bfile_discard(bs->file, offset, len) == 0)
		return 0;	/* a punched hole reads as zeroes */
	return bfile_write_zeroes(bs->file, offset, len);
}

static int raw_map(struct bdev *bs, uint64_t offset, uint64_t len, struct block_extent *ext)
{
	if (bs->probed && offset < BLOCK_PROBE_BUF_SIZE && !bs->read_only)
		return -EAGAIN;		/* sector 0 writes need the check */
	*ext = (struct block_extent){ len, BLOCK_STATUS_DATA, offset };
	return 0;
}

static int raw_block_status(struct bdev *bs, uint64_t offset, uint64_t len,
			    struct block_extent *ext)
{
	int64_t data = bfile_seek_data(bs->file, offset, false);
	int64_t end;

	if (data == -ENXIO)		/* no data from here to EOF */
		data = (int64_t)(offset + len);
	if (data < 0) {			/* no SEEK_DATA (or a device): all data */
		*ext = (struct block_extent){ len, BLOCK_STATUS_DATA, offset };
		return 0;
	}
	if ((uint64_t)data > offset) {	/* in a hole */
		end = data;
		ext->status = BLOCK_STATUS_ZERO;
	} else {
		end = bfile_seek_data(bs->file, offset, true);
		if (end < 0 || (uint64_t)end <= offset)
			end = (int64_t)(offset + len);
		ext->status = BLOCK_STATUS_DATA;
	}
	ext->len = (uint64_t)end - offset < len ? (uint64_t)end - offset : len;
	ext->host_offset = offset;
	return 0;
}

/* preallocation=full: really write the zeroes (falloc only reserves). */
static int raw_full_prealloc(struct bfile *f, uint64_t size)
{
	const size_t chunk = 1u << 20;
	void *zero = calloc(1, chunk);
	int ret = zero ? 0 : -ENOMEM;

	for (uint64_t off = 0; ret == 0 && off < size; off += chunk)
		ret = bfile_pwrite(f, off, zero, size - off < chunk ? (size_t)(size - off) : chunk);
	free(zero);
	return ret;
}

static int raw_create(const char *path, const struct block_create_opts *o, char *err,
		      size_t errlen)
{
	struct bfile *f;
	int ret;

	if (o->backing_file) {
		snprintf(err, errlen, "'%s': raw images have no backing file", path);
		return -EINVAL;
	}
	if (o->prealloc == PREALLOC_METADATA) {
		snprintf(err, errlen, "'%s': Unsupported preallocation mode 'metadata'", path);
		return -EINVAL;
	}
	ret = bfile_open(path, O_RDWR | O_CREAT | O_TRUNC, BLOCK_CACHE_WRITEBACK,
			 BLOCK_ENGINE_THREADS, &f, err, errlen);
	if (ret < 0)
		return ret;
	ret = bfile_truncate(f, o->size);
	if (ret == 0 && o->prealloc == PREALLOC_FALLOC && o->size)
		ret = bfile_fallocate(f, 0, o->size);
	else if (ret == 0 && o->prealloc == PREALLOC_FULL && o->size)
		ret = raw_full_prealloc(f, o->size);
	if (ret == 0)
		ret = bfile_flush(f);
	if (ret < 0)
		snprintf(err, errlen, "'%s': could not create the image: %s", path,
			 strerror(-ret));
	bfile_close(f);
	return ret;
}

static int raw_truncate(struct bdev *bs, uint64_t new_size, bool shrink_ok, char *err,
			size_t errlen)
{
	int ret;

	if (new_size < bs->size && !shrink_ok) {
		snprintf(err, errlen, "'%s': shrinking needs --shrink", bs->filename);
		return -EINVAL;
	}
	ret = bfile_truncate(bs->file, new_size);
	if (ret == -EINVAL && new_size > bs->size) {
		snprintf(err, errlen, "'%s': Cannot grow device files", bs->filename);
		return ret;
	}
	if (ret < 0) {
		snprintf(err, errlen, "'%s': could not resize: %s", bs->filename, strerror(-ret));
		return ret;
	}
	bs->size = raw_disk_size(new_size);
	return 0;
}

struct block_format block_format_raw = {
	.name = "raw",
	.probe = raw_probe,
	.open = raw_open,
	.close = raw_close,
	.preadv = raw_preadv,
	.pwritev = raw_pwritev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.map = raw_map,
	.block_status = raw_block_status,
	.create = raw_create,
	.truncate = raw_truncate,
};
BLOCK_FORMAT_REGISTER(block_format_raw)
