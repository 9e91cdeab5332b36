/* qcow (version 1) image creation with qemu-img's defaults (4 KiB
 * clusters, or 512-byte clusters and 4096-entry L2 tables over a backing
 * file; the L1 table zeroed in whole sectors right after the header and
 * backing file name), and the backing file name rewrite of an open image
 * (rebase), which has only the room before the L1 table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>

#include "block/bfile.h"
#include "block/endian.h"
#include "block/qcow.h"

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)

int qcow_create(const char *path, const struct block_create_opts *o, char *err, size_t errlen)
{
	uint8_t hdr[QCOW_HEADER_SIZE] = { 0 };
	unsigned cluster_bits = 12, l2_bits = 9, shift;
	uint64_t size = o->size & ~(uint64_t)(BDRV_SECTOR_SIZE - 1);
	uint64_t header_size = QCOW_HEADER_SIZE, l1_size, l1_bytes;
	size_t blen = 0;
	struct bfile *f;
	int ret;

	if (o->backing_file) {
		blen = strlen(o->backing_file);
		if (blen == 0 || blen > QCOW_MAX_BACKING_NAME)
			FAIL("%s: qcow backing file name must be 1..%u bytes", path,
			     QCOW_MAX_BACKING_NAME);
		cluster_bits = 9;	/* qemu-img's choice: sector-sized COW */
		l2_bits = 12;
	}
	if (size == 0 && o->backing_file) {
		ret = block_backing_size_for_create(path, o, &size, err, errlen);
		if (ret < 0)
			return ret;
		size &= ~(uint64_t)(BDRV_SECTOR_SIZE - 1);
	}
	if (o->cluster_size) {
		if (o->cluster_size < 512 || o->cluster_size > 65536 ||
		    (o->cluster_size & (o->cluster_size - 1)))
			FAIL("%s: qcow cluster_size %u must be a power of two in 512..65536",
			     path, o->cluster_size);
		cluster_bits = __builtin_ctz(o->cluster_size);
	}
	if (size < BDRV_SECTOR_SIZE)
		FAIL("%s: qcow image size must be at least 512 bytes", path);
	if (o->prealloc != PREALLOC_OFF)
		FAIL("%s: qcow does not support preallocation", path);
	shift = cluster_bits + l2_bits;
	if (size > UINT64_MAX - (1ull << shift))
		FAIL("%s: qcow image size too large", path);
	l1_size = (size + (1ull << shift) - 1) >> shift;
	if (l1_size > QCOW_MAX_L1_BYTES / 8)
		FAIL("%s: qcow image size too large for its L1 table", path);
	st_be32(hdr, QCOW_MAGIC);
	st_be32(hdr + 4, QCOW_VERSION);
	if (blen) {
		st_be64(hdr + 8, header_size);
		st_be32(hdr + 16, blen);
		header_size += blen;
	}
	header_size = (header_size + 7) & ~7ull;
	st_be64(hdr + 24, size);
	hdr[32] = cluster_bits;
	hdr[33] = l2_bits;
	st_be64(hdr + 40, header_size);
	l1_bytes = (l1_size * 8 + 511) & ~511ull;

	ret = bfile_open(path, O_RDWR | O_CREAT | O_TRUNC, BLOCK_CACHE_WRITEBACK,
			 BLOCK_ENGINE_DEFAULT, &f, err, errlen);
	if (ret < 0)
		return ret;
	ret = bfile_pwrite(f, 0, hdr, sizeof(hdr));
	if (ret == 0 && blen)
		ret = bfile_pwrite(f, QCOW_HEADER_SIZE, o->backing_file, blen);
	if (ret == 0)
		ret = bfile_write_zeroes(f, header_size, l1_bytes);
	if (ret == 0)
		ret = bfile_truncate(f, header_size + l1_bytes);
	if (ret == 0)
		ret = bfile_flush(f);
	bfile_close(f);
	if (ret < 0)
		snprintf(err, errlen, "%s: cannot write the qcow image: %s", path, strerror(-ret));
	return ret;
}

int qcow_change_backing(struct bdev *bs, const char *file, const char *fmt)
{
	struct qcow_state *s = bs->opaque;
	uint8_t hdr[12];
	size_t blen = file ? strlen(file) : 0;
	uint64_t space = s->l1_table_offset - QCOW_HEADER_SIZE;
	int ret;

	if (blen > QCOW_MAX_BACKING_NAME || blen > space)
		return -ENOSPC;		/* no room before the L1 table */
	if (blen) {
		ret = bfile_pwrite(bs->file, QCOW_HEADER_SIZE, file, blen);
		if (ret < 0)
			return ret;
	}
	st_be64(hdr, blen ? QCOW_HEADER_SIZE : 0);
	st_be32(hdr + 8, blen);
	ret = bfile_pwrite(bs->file, 8, hdr, sizeof(hdr));
	if (ret < 0)
		return ret;
	free(bs->backing_filename);
	bs->backing_filename = blen ? strdup(file) : NULL;
	return bfile_flush(bs->file);
}
