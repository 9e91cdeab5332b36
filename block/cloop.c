/* cloop compressed read-only images (the Knoppix compressed loop format,
 * version 2, as create_compressed_fs writes and qemu-img reads): a 128-byte
 * shell-script preamble, block_size and n_blocks (u32 big-endian), then
 * n_blocks + 1 u64 big-endian file offsets; block i is the zlib stream
 * between offsets[i] and offsets[i+1] and inflates to exactly block_size
 * bytes. The whole offsets table is validated at open (QEMU's checks in
 * its words, then where the table and blocks lie); one decompressed block
 * is cached. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "block/bfile.h"
#include "block/endian.h"
#include "block/format.h"
#include "vmm/log.h"

#define CLOOP_PREAMBLE		128
#define CLOOP_HEADER		(CLOOP_PREAMBLE + 8)
#define CLOOP_MAX_BLOCK_SIZE	(64u << 20)			/* as QEMU */
#define CLOOP_MAX_OFFSETS_BYTES	(512u << 20)			/* as QEMU */
#define CLOOP_MAX_COMPRESSED	(2ull * CLOOP_MAX_BLOCK_SIZE)	/* as QEMU */
#define CLOOP_MAX_ERRORS_LOGGED	8

struct cloop_state {
	uint32_t block_size, n_blocks;
	uint64_t *offsets;		/* n_blocks + 1, host order */
	uint64_t max_compressed;	/* largest compressed block */
	uint8_t *cbuf;			/* max_compressed bytes */
	uint8_t *block;			/* block_size bytes */
	int64_t cached;			/* block in `block`, or -1 */
	unsigned errors_logged;
};

static int cloop_probe(const uint8_t *head, size_t len, const char *filename)
{
	static const char magic[] = "#!/bin/sh\n#V2.0 Format\n";

	if (len >= sizeof(magic) - 1 && !memcmp(head, magic, sizeof(magic) - 1))
		return 100;
	return 0;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)

/* block_size and n_blocks, checked in the order and words of QEMU's
 * cloop_open. */
static int cloop_check_geometry(uint32_t block_size, uint32_t n_blocks, const char *fn,
				char *err, size_t errlen)
{
	if (block_size % 512)
		FAIL("%s: block_size %u must be a multiple of 512", fn, block_size);
	if (block_size == 0)
		FAIL("%s: block_size cannot be zero", fn);
	if (block_size > CLOOP_MAX_BLOCK_SIZE)
		FAIL("%s: block_size %u must be %u MB or less", fn, block_size,
		     CLOOP_MAX_BLOCK_SIZE >> 20);
	if (n_blocks > (UINT32_MAX - 1) / 8)
		FAIL("%s: n_blocks %u must be %u or less", fn, n_blocks, (UINT32_MAX - 1) / 8);
	if (((uint64_t)n_blocks + 1) * 8 > CLOOP_MAX_OFFSETS_BYTES)
		FAIL("%s: image requires too many offsets, try increasing block size", fn);
	return 0;
}

/* Entry i of the offsets table as QEMU reads it: raw holds the `have`
 * bytes of the table inside the file, the rest reads as zeroes. */
static uint64_t cloop_offset_at(const uint8_t *raw, size_t have, uint32_t i)
{
	uint8_t e[8] = { 0 };
	size_t at = (size_t)i * 8;

	if (at < have)
		memcpy(e, raw + at, have - at < 8 ? have - at : 8);
	return ld_be64(e);
}

/* QEMU's checks: offsets never decrease and no compressed block is
 * larger than twice the largest block size. */
static int cloop_check_sizes(struct cloop_state *s, const uint8_t *raw, size_t have,
			     const char *fn, char *err, size_t errlen)
{
	uint64_t prev = cloop_offset_at(raw, have, 0), cur, size;

	for (uint32_t i = 1; i <= s->n_blocks; i++, prev = cur) {
		cur = cloop_offset_at(raw, have, i);
		if (cur < prev)
			FAIL("%s: offsets not monotonically increasing at index %u, image file is "
			     "corrupt", fn, i);
		size = cur - prev;
		if (size > CLOOP_MAX_COMPRESSED)
			FAIL("%s: invalid compressed block size at index %u, image file is corrupt",
			     fn, i);
		if (size > s->max_compressed)
			s->max_compressed = size;
	}
	return 0;
}

/* Our own checks (QEMU reads zeroes or the header instead): the table
 * lies inside the file, the blocks after it and inside the file too. */
static int cloop_check_placement(struct cloop_state *s, size_t have, uint64_t file_size,
				 const char *fn, char *err, size_t errlen)
{
	uint64_t table = ((uint64_t)s->n_blocks + 1) * 8;

	if (have < table)
		FAIL("%s: offsets table extends past the end of the file, image file is corrupt",
		     fn);
	if (s->offsets[0] < CLOOP_HEADER + table)
		FAIL("%s: offset at index 0 points into the header, image file is corrupt", fn);
	if (s->offsets[s->n_blocks] > file_size)	/* offsets never decrease */
		FAIL("%s: offset at index %u points past the end of the file, image file is "
		     "corrupt", fn, s->n_blocks);
	return 0;
}

static void cloop_close(struct bdev *bs)
{
	struct cloop_state *s = bs->opaque;

	if (!s)
		return;
	free(s->offsets);
	free(s->cbuf);
	free(s->block);
	free(s);
	bs->opaque = NULL;
}

/* Reads the offsets table (only as much as the file holds) and checks
 * it; the table entries end up in host order in s->offsets. */
static int cloop_load(struct bdev *bs, struct cloop_state *s, uint64_t file_size, char *err,
		      size_t errlen)
{
	uint64_t table = ((uint64_t)s->n_blocks + 1) * 8;
	size_t have = file_size > CLOOP_HEADER ? (size_t)(file_size - CLOOP_HEADER) : 0;
	int ret;

	if (have > table)
		have = (size_t)table;
	s->offsets = malloc(have ? have : 1);
	if (!s->offsets)
		FAIL("%s: Could not allocate offsets table", bs->filename);
	ret = bfile_pread(bs->file, CLOOP_HEADER, s->offsets, have);
	if (ret < 0) {
		snprintf(err, errlen, "%s: Could not read the offsets table: %s", bs->filename,
			 strerror(-ret));
		return ret;
	}
	ret = cloop_check_sizes(s, (const uint8_t *)s->offsets, have, bs->filename, err, errlen);
	if (ret < 0)
		return ret;
	for (uint32_t i = 0; (size_t)i * 8 + 8 <= have; i++)
		s->offsets[i] = be64toh(s->offsets[i]);
	ret = cloop_check_placement(s, have, file_size, bs->filename, err, errlen);
	if (ret < 0)
		return ret;
	s->cbuf = malloc(s->max_compressed ? s->max_compressed : 1);
	s->block = malloc(s->block_size);
	if (!s->cbuf || !s->block)
		FAIL("%s: Could not allocate the block buffers", bs->filename);
	return 0;
}

static int cloop_open(struct bdev *bs, char *err, size_t errlen)
{
	uint8_t hdr[CLOOP_HEADER];
	struct cloop_state *s;
	int64_t fsize;
	int ret;

	if (!bs->read_only)
		FAIL("%s: Image is read-only", bs->filename);
	/* a short file reads as zeroes past its end, as in QEMU */
	ret = block_read_header(bs, "cloop", hdr, sizeof(hdr), 0, &fsize, err, errlen);
	if (ret < 0)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		FAIL("%s: out of memory", bs->filename);
	bs->opaque = s;
	s->block_size = ld_be32(hdr + CLOOP_PREAMBLE);
	s->n_blocks = ld_be32(hdr + CLOOP_PREAMBLE + 4);
	s->cached = -1;
	ret = cloop_check_geometry(s->block_size, s->n_blocks, bs->filename, err, errlen);
	if (ret == 0)
		ret = cloop_load(bs, s, (uint64_t)fsize, err, errlen);
	if (ret < 0) {
		cloop_close(bs);
		return ret;
	}
	bs->size = (uint64_t)s->n_blocks * s->block_size;
	return 0;
}

static int cloop_corrupt(struct bdev *bs, const char *what, uint32_t block)
{
	struct cloop_state *s = bs->opaque;

	if (s->errors_logged < CLOOP_MAX_ERRORS_LOGGED) {
		s->errors_logged++;
		log_error("cloop: %s: block %u: %s", bs->filename, block, what);
	}
	return -EIO;
}

/* Decompress block i into s->block. */
static int cloop_load_block(struct bdev *bs, uint32_t i)
{
	struct cloop_state *s = bs->opaque;
	uint64_t csize = s->offsets[i + 1] - s->offsets[i];
	z_stream z = { 0 };
	int ret, zret;

	if (s->cached == i)
		return 0;
	s->cached = -1;
	ret = bfile_pread(bs->file, s->offsets[i], s->cbuf, csize);
	if (ret < 0)
		return ret;
	if (inflateInit(&z) != Z_OK)
		return -ENOMEM;
	z.next_in = s->cbuf;
	z.avail_in = csize;
	z.next_out = s->block;
	z.avail_out = s->block_size;
	zret = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	if (zret != Z_STREAM_END || z.avail_out != 0)
		return cloop_corrupt(bs, "does not inflate to block_size bytes", i);
	s->cached = i;
	return 0;
}

static int cloop_preadv(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct cloop_state *s = bs->opaque;
	size_t total = iov_size(iov, iovcnt), done = 0;
	int ret;

	if (offset > bs->size || total > bs->size - offset)
		return -EINVAL;
	while (done < total) {
		uint64_t pos = offset + done;
		uint32_t i = pos / s->block_size, in = pos % s->block_size;
		size_t n = s->block_size - in;

		if (n > total - done)
			n = total - done;
		ret = cloop_load_block(bs, i);
		if (ret < 0)
			return ret;
		iov_from_buf(iov, iovcnt, done, s->block + in, n);
		done += n;
	}
	return 0;
}

static int cloop_pwritev(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	return -EROFS;
}

static int cloop_flush(struct bdev *bs)
{
	return 0;
}

static int cloop_block_status(struct bdev *bs, uint64_t offset, uint64_t len,
			      struct block_extent *ext)
{
	if (len == 0 || offset >= bs->size)
		return -EINVAL;
	ext->len = len < bs->size - offset ? len : bs->size - offset;
	ext->status = BLOCK_STATUS_DATA | BLOCK_STATUS_COMPRESSED;
	ext->host_offset = 0;
	return 0;
}

struct block_format block_format_cloop = {	/* not static: unit tests link it by name */
	.name = "cloop",
	.probe = cloop_probe,
	.open = cloop_open,
	.close = cloop_close,
	.preadv = cloop_preadv,
	.pwritev = cloop_pwritev,
	.flush = cloop_flush,
	.block_status = cloop_block_status,
	/* no info or cluster size: qemu-img shows neither for cloop */
};

BLOCK_FORMAT_REGISTER(block_format_cloop)
