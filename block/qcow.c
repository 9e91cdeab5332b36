/* QEMU's qcow version 1 image format: open (header fields checked in
 * QEMU's order and words, the backing file name, the L1 table kept in
 * memory), the two-level cluster table walk with a small L2 cache, the
 * read and write paths (compressed clusters inflated on read and
 * rewritten uncompressed on write, unallocated ones read from the backing
 * file), compressed writes (convert -c), block status, commit's
 * make_empty and the ops table. Creation and the backing file name
 * rewrite live in qcow_create.c, the consistency check (QEMU has none) in
 * qcow_check.c, the on-disk layout in qcow.h. As in QEMU: no resize,
 * discard is a no-op, no format-specific info. Encrypted images are
 * refused.
 * Crash order on write: data, then the L2 entry; a new L2 table is
 * written zeroed before its L1 entry. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "block/bfile.h"
#include "block/endian.h"
#include "block/qcow.h"
#include "vmm/log.h"

/* A metadata problem found during I/O: logged a few times per image. */
static int qcow_corrupt(struct bdev *bs, const char *what, uint64_t value)
{
	struct qcow_state *s = bs->opaque;

	if (s->errors_logged < QCOW_MAX_ERRORS_LOGGED) {
		s->errors_logged++;
		log_error("qcow: %s: %s (0x%llx)", bs->filename, what, (unsigned long long)value);
	}
	return -EIO;
}

static int qcow_probe(const uint8_t *head, size_t len, const char *filename)
{
	if (len >= 8 && ld_be32(head) == QCOW_MAGIC && ld_be32(head + 4) == QCOW_VERSION)
		return 100;
	return 0;
}

/* ---- header parsing ---- */

struct qcow_header {
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint64_t size;
	unsigned cluster_bits, l2_bits;
	uint32_t crypt_method;
	uint64_t l1_table_offset;
};

static void qcow_header_decode(const uint8_t *b, struct qcow_header *h)
{
	h->backing_file_offset = ld_be64(b + 8);
	h->backing_file_size = ld_be32(b + 16);
	h->size = ld_be64(b + 24);
	h->cluster_bits = b[32];
	h->l2_bits = b[33];
	h->crypt_method = ld_be32(b + 36);
	h->l1_table_offset = ld_be64(b + 40);
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)

/* Header fields in the order and words of QEMU's qcow_open; the checks it
 * lacks (where the L1 table and the backing file name lie) come last, in
 * the same style. */
static int qcow_header_check(const struct qcow_header *h, const char *fn, uint64_t file_size,
			     uint32_t *l1_size, char *err, size_t errlen)
{
	unsigned shift;
	uint64_t l1;

	if (h->size <= 1)
		FAIL("%s: Image size is too small (must be at least 2 bytes)", fn);
	if (h->cluster_bits < 9 || h->cluster_bits > 16)
		FAIL("%s: Cluster size must be between 512 and 64k", fn);
	if (h->l2_bits < 6 || h->l2_bits > 13)
		FAIL("%s: L2 table size must be between 512 and 64k", fn);
	if (h->crypt_method > QCOW_CRYPT_AES)
		FAIL("%s: invalid encryption method in qcow header", fn);
	if (h->crypt_method == QCOW_CRYPT_AES)
		FAIL("%s: Use of AES-CBC encrypted qcow images is not supported", fn);
	shift = h->cluster_bits + h->l2_bits;
	if (h->size > UINT64_MAX - (1ull << shift))
		FAIL("%s: Image too large", fn);
	l1 = (h->size + (1ull << shift) - 1) >> shift;
	if (l1 > QCOW_MAX_L1_BYTES / 8)		/* QEMU's bound, INT_MAX bytes, is larger */
		FAIL("%s: Image too large", fn);
	if (h->backing_file_offset && h->backing_file_size > QCOW_MAX_BACKING_NAME)
		FAIL("%s: Backing file name too long", fn);
	if (h->l1_table_offset < QCOW_HEADER_SIZE || h->l1_table_offset > file_size ||
	    l1 * 8 > file_size - h->l1_table_offset)
		FAIL("%s: L1 table lies outside the image file", fn);
	if (h->backing_file_offset && (h->backing_file_offset > file_size ||
				       h->backing_file_size > file_size - h->backing_file_offset))
		FAIL("%s: Backing file name lies outside the image file", fn);
	*l1_size = (uint32_t)l1;
	return 0;
}

/* An empty name (size 0) is no backing file, as in QEMU. */
static int qcow_read_backing_name(struct bdev *bs, const struct qcow_header *h,
				  char *err, size_t errlen)
{
	char name[QCOW_MAX_BACKING_NAME + 1];
	int ret;

	if (!h->backing_file_offset || !h->backing_file_size)
		return 0;
	ret = bfile_pread(bs->file, h->backing_file_offset, name, h->backing_file_size);
	if (ret < 0) {
		snprintf(err, errlen, "%s: Could not read the backing file name: %s",
			 bs->filename, strerror(-ret));
		return ret;
	}
	name[h->backing_file_size] = 0;
	if (strlen(name) != h->backing_file_size)
		FAIL("%s: Backing file name contains a NUL byte", bs->filename);
	bs->backing_filename = strdup(name);
	return bs->backing_filename ? 0 : -ENOMEM;
}

static int qcow_alloc_buffers(struct qcow_state *s)
{
	unsigned i;

	s->cluster_buf = malloc(s->cluster_size);
	s->zbuf = malloc(s->cluster_size);
	if (!s->cluster_buf || !s->zbuf)
		return -ENOMEM;
	for (i = 0; i < QCOW_L2_CACHE_SIZE; i++) {
		s->l2[i].table = malloc((size_t)s->l2_entries * 8);
		if (!s->l2[i].table)
			return -ENOMEM;
	}
	return 0;
}

static int qcow_load_l1(struct bdev *bs, char *err, size_t errlen)
{
	struct qcow_state *s = bs->opaque;
	uint32_t i;
	int ret;

	s->l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	if (!s->l1) {
		snprintf(err, errlen, "%s: Could not allocate memory for L1 table", bs->filename);
		return -ENOMEM;
	}
	ret = bfile_pread(bs->file, s->l1_table_offset, s->l1, (size_t)s->l1_size * 8);
	if (ret < 0) {
		snprintf(err, errlen, "%s: Could not read L1 table: %s", bs->filename,
			 strerror(-ret));
		return ret;
	}
	for (i = 0; i < s->l1_size; i++) {
		s->l1[i] = be64toh(s->l1[i]);
		/* check reports (and -r all clears) such entries itself */
		if (s->l1[i] && !bs->opts.for_check &&
		    (s->l1[i] >= s->file_end ||
		     s->l1[i] + (uint64_t)s->l2_entries * 8 > s->file_end))
			FAIL("%s: L1 entry %u (0x%llx) points past the end of the image file",
			     bs->filename, i, (unsigned long long)s->l1[i]);
	}
	return 0;
}

static void qcow_close(struct bdev *bs)
{
	struct qcow_state *s = bs->opaque;
	unsigned i;

	if (!s)
		return;
	for (i = 0; i < QCOW_L2_CACHE_SIZE; i++)
		free(s->l2[i].table);
	free(s->l1);
	free(s->cluster_buf);
	free(s->zbuf);
	free(s);
	bs->opaque = NULL;
}

static int qcow_open(struct bdev *bs, char *err, size_t errlen)
{
	uint8_t buf[QCOW_HEADER_SIZE];
	struct qcow_header h;
	struct qcow_state *s;
	int64_t fsize;
	uint32_t l1_size;
	int ret;

	/* a short file reads as zeroes past its end, as in QEMU */
	ret = block_read_header(bs, "qcow", buf, sizeof(buf), 0, &fsize, err, errlen);
	if (ret < 0)
		return ret;
	if (ld_be32(buf) != QCOW_MAGIC)
		FAIL("%s: Image not in qcow format", bs->filename);
	if (ld_be32(buf + 4) != QCOW_VERSION) {
		snprintf(err, errlen, "%s: qcow (v1) does not support qcow version %u%s",
			 bs->filename, ld_be32(buf + 4),
			 ld_be32(buf + 4) == 2 || ld_be32(buf + 4) == 3 ?
			 "\nTry the 'qcow2' driver instead." : "");
		return -ENOTSUP;
	}
	qcow_header_decode(buf, &h);
	ret = qcow_header_check(&h, bs->filename, (uint64_t)fsize, &l1_size, err, errlen);
	if (ret < 0)
		return ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	bs->opaque = s;
	s->cluster_bits = h.cluster_bits;
	s->l2_bits = h.l2_bits;
	s->cluster_size = 1u << h.cluster_bits;
	s->l2_entries = 1u << h.l2_bits;
	s->cluster_offset_mask = (1ull << (63 - h.cluster_bits)) - 1;
	s->l1_table_offset = h.l1_table_offset;
	s->l1_size = l1_size;
	s->file_end = (uint64_t)fsize;
	bs->size = h.size & ~(uint64_t)(BDRV_SECTOR_SIZE - 1);	/* as QEMU: whole sectors */

	ret = qcow_alloc_buffers(s);
	if (ret < 0)
		snprintf(err, errlen, "%s: out of memory opening a qcow image", bs->filename);
	if (ret == 0)
		ret = qcow_load_l1(bs, err, errlen);
	if (ret == 0)
		ret = qcow_read_backing_name(bs, &h, err, errlen);
	if (ret < 0)
		qcow_close(bs);
	return ret;
}

/* ---- cluster lookup ---- */

/* Return the cached L2 table at l2_offset, reading it if needed. */
static int qcow_l2_get(struct bdev *bs, uint64_t l2_offset, bool fresh, uint64_t **table)
{
	struct qcow_state *s = bs->opaque;
	struct qcow_l2_slot *victim = &s->l2[0];
	size_t bytes = (size_t)s->l2_entries * 8;
	unsigned i;
	int ret;

	for (i = 0; i < QCOW_L2_CACHE_SIZE; i++) {
		if (s->l2[i].offset == l2_offset) {
			s->l2[i].last_use = ++s->use_clock;
			*table = s->l2[i].table;
			return 0;
		}
		if (s->l2[i].last_use < victim->last_use)
			victim = &s->l2[i];
	}
	victim->offset = 0;
	if (fresh) {
		memset(victim->table, 0, bytes);
	} else {
		if (l2_offset + bytes > s->file_end || l2_offset < QCOW_HEADER_SIZE)
			return qcow_corrupt(bs, "L2 table offset outside the file", l2_offset);
		ret = bfile_pread(bs->file, l2_offset, victim->table, bytes);
		if (ret < 0)
			return ret;
		for (i = 0; i < s->l2_entries; i++)
			victim->table[i] = be64toh(victim->table[i]);
	}
	victim->offset = l2_offset;
	victim->last_use = ++s->use_clock;
	*table = victim->table;
	return 0;
}

void qcow_l2_cache_drop(struct qcow_state *s)
{
	for (unsigned i = 0; i < QCOW_L2_CACHE_SIZE; i++)
		s->l2[i].offset = 0;
}

/* Next allocation point, aligned to a cluster. */
static uint64_t qcow_alloc(struct qcow_state *s, uint64_t bytes)
{
	uint64_t off = (s->file_end + s->cluster_size - 1) & ~(uint64_t)(s->cluster_size - 1);

	s->file_end = off + bytes;
	return off;
}

/* Find (or with alloc, create) the L2 table covering offset; *table is
 * NULL when unallocated and !alloc. *index is the entry within it. */
static int qcow_l2_lookup(struct bdev *bs, uint64_t offset, bool alloc, uint64_t **table,
			  uint32_t *index, uint64_t *l2_offset_out)
{
	struct qcow_state *s = bs->opaque;
	uint64_t l1_index = offset >> (s->cluster_bits + s->l2_bits);
	uint64_t l2_offset, be;
	size_t bytes = (size_t)s->l2_entries * 8;
	int ret;

	*table = NULL;
	*index = (offset >> s->cluster_bits) & (s->l2_entries - 1);
	if (l1_index >= s->l1_size)
		return qcow_corrupt(bs, "offset beyond the L1 table", offset);
	l2_offset = s->l1[l1_index];
	if (l2_offset) {
		*l2_offset_out = l2_offset;
		return qcow_l2_get(bs, l2_offset, false, table);
	}
	if (!alloc)
		return 0;
	l2_offset = qcow_alloc(s, bytes);
	ret = bfile_write_zeroes(bs->file, l2_offset, bytes);
	if (ret < 0)
		return ret;
	be = htobe64(l2_offset);
	ret = bfile_pwrite(bs->file, s->l1_table_offset + l1_index * 8, &be, 8);
	if (ret < 0)
		return ret;
	s->l1[l1_index] = l2_offset;
	*l2_offset_out = l2_offset;
	return qcow_l2_get(bs, l2_offset, true, table);
}

/* The L2 entry for the cluster containing offset (0 = unallocated). */
static int qcow_entry(struct bdev *bs, uint64_t offset, uint64_t *entry)
{
	uint64_t *table, l2_offset;
	uint32_t index;
	int ret;

	ret = qcow_l2_lookup(bs, offset, false, &table, &index, &l2_offset);
	*entry = (ret == 0 && table) ? table[index] : 0;
	return ret;
}

/* Validate a plain (uncompressed) cluster offset. */
static int qcow_check_data_offset(struct bdev *bs, uint64_t host)
{
	struct qcow_state *s = bs->opaque;

	if (host < QCOW_HEADER_SIZE || host >= s->file_end)
		return qcow_corrupt(bs, "cluster offset outside the file", host);
	return 0;
}

/* Inflate the compressed cluster described by entry into s->cluster_buf. */
static int qcow_decompress(struct bdev *bs, uint64_t entry)
{
	struct qcow_state *s = bs->opaque;
	uint64_t coffset = entry & s->cluster_offset_mask;
	uint32_t csize = (entry >> (63 - s->cluster_bits)) & (s->cluster_size - 1);
	z_stream z = { 0 };
	int ret, zret;

	if (csize == 0 || coffset < QCOW_HEADER_SIZE || coffset >= s->file_end ||
	    csize > s->file_end - coffset)
		return qcow_corrupt(bs, "compressed cluster outside the file", coffset);
	ret = bfile_pread(bs->file, coffset, s->zbuf, csize);
	if (ret < 0)
		return ret;
	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = s->zbuf;
	z.avail_in = csize;
	z.next_out = s->cluster_buf;
	z.avail_out = s->cluster_size;
	zret = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	if ((zret != Z_STREAM_END && zret != Z_BUF_ERROR) || z.avail_out != 0)
		return qcow_corrupt(bs, "compressed cluster does not inflate to a cluster",
				    coffset);
	return 0;
}

/* ---- data path ---- */

static int qcow_preadv(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct qcow_state *s = bs->opaque;
	size_t total = iov_size(iov, iovcnt), done = 0;
	uint8_t *bounce = NULL;
	int ret = 0;

	while (done < total) {
		uint64_t pos = offset + done, entry;
		uint32_t in = pos & (s->cluster_size - 1);
		size_t n = s->cluster_size - in;

		if (n > total - done)
			n = total - done;
		ret = qcow_entry(bs, pos, &entry);
		if (ret < 0)
			break;
		if (entry & QCOW_OFLAG_COMPRESSED) {
			ret = qcow_decompress(bs, entry);
			if (ret < 0)
				break;
			iov_from_buf(iov, iovcnt, done, s->cluster_buf + in, n);
		} else if (entry) {
			ret = qcow_check_data_offset(bs, entry);
			if (ret < 0)
				break;
			ret = bfile_pread(bs->file, entry + in, s->cluster_buf, n);
			if (ret < 0)
				break;
			iov_from_buf(iov, iovcnt, done, s->cluster_buf, n);
		} else {
			if (!bounce) {
				bounce = malloc(s->cluster_size);
				if (!bounce) {
					ret = -ENOMEM;
					break;
				}
			}
			ret = block_read_backing(bs, pos, bounce, n);
			if (ret < 0)
				break;
			iov_from_buf(iov, iovcnt, done, bounce, n);
		}
		done += n;
	}
	free(bounce);
	return ret;
}

/* Write part of one cluster: in place when allocated, else build the whole
 * cluster (backing data or decompressed contents, then the new bytes) in a
 * newly allocated one and point the L2 entry at it. */
static int qcow_write_cluster(struct bdev *bs, uint64_t pos, const struct iovec *iov,
			      int iovcnt, size_t iov_off, size_t n)
{
	struct qcow_state *s = bs->opaque;
	uint64_t cluster_start = pos & ~(uint64_t)(s->cluster_size - 1);
	uint32_t in = pos - cluster_start, index;
	uint64_t *table, l2_offset, entry, host, be;
	int ret;

	ret = qcow_l2_lookup(bs, pos, true, &table, &index, &l2_offset);
	if (ret < 0)
		return ret;
	entry = table[index];
	if (entry && !(entry & QCOW_OFLAG_COMPRESSED)) {
		ret = qcow_check_data_offset(bs, entry);
		if (ret < 0)
			return ret;
		iov_to_buf(iov, iovcnt, iov_off, s->cluster_buf, n);
		return bfile_pwrite(bs->file, entry + in, s->cluster_buf, n);
	}
	if (n < s->cluster_size) {
		if (entry)
			ret = qcow_decompress(bs, entry);
		else
			ret = block_read_backing(bs, cluster_start, s->cluster_buf,
						 s->cluster_size);
		if (ret < 0)
			return ret;
	}
	iov_to_buf(iov, iovcnt, iov_off, s->cluster_buf + in, n);
	host = qcow_alloc(s, s->cluster_size);
	ret = bfile_pwrite(bs->file, host, s->cluster_buf, s->cluster_size);
	if (ret < 0)
		return ret;
	be = htobe64(host);
	ret = bfile_pwrite(bs->file, l2_offset + (uint64_t)index * 8, &be, 8);
	if (ret < 0)
		return ret;
	table[index] = host;	/* the backing read used another bdev's cache */
	return 0;
}

static int qcow_pwritev(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct qcow_state *s = bs->opaque;
	size_t total = iov_size(iov, iovcnt), done = 0;
	int ret;

	if (offset > bs->size || total > bs->size - offset)
		return -EINVAL;
	while (done < total) {
		uint64_t pos = offset + done;
		size_t n = s->cluster_size - (pos & (s->cluster_size - 1));

		if (n > total - done)
			n = total - done;
		ret = qcow_write_cluster(bs, pos, iov, iovcnt, done, n);
		if (ret < 0)
			return ret;
		done += n;
	}
	return 0;
}

static int qcow_flush(struct bdev *bs)
{
	return bfile_flush(bs->file);
}

/* Status of one cluster's entry. An unallocated cluster without a
 * backing file reads as zeroes but is not present in this layer
 * (qemu-img map's "present": false), as qcow2 and vmdk report it. */
static unsigned qcow_entry_status(const struct bdev *bs, uint64_t entry)
{
	if (entry & QCOW_OFLAG_COMPRESSED)
		return BLOCK_STATUS_DATA | BLOCK_STATUS_COMPRESSED;
	if (entry)
		return BLOCK_STATUS_DATA;
	return bs->backing ? BLOCK_STATUS_BACKING :
			     BLOCK_STATUS_ZERO | BLOCK_STATUS_UNALLOCATED;
}

static int qcow_block_status(struct bdev *bs, uint64_t offset, uint64_t len,
			     struct block_extent *ext)
{
	struct qcow_state *s = bs->opaque;
	uint64_t done = 0, first_entry = 0;
	unsigned status = 0;
	int ret;

	if (len == 0 || offset >= bs->size)
		return -EINVAL;
	if (len > bs->size - offset)
		len = bs->size - offset;
	while (done < len) {
		uint64_t pos = offset + done, entry;
		uint32_t in = pos & (s->cluster_size - 1);
		uint64_t n = s->cluster_size - in;
		unsigned st;

		ret = qcow_entry(bs, pos, &entry);
		if (ret < 0)
			return ret;
		st = qcow_entry_status(bs, entry);
		if (done == 0) {
			status = st;
			first_entry = entry + in;
		} else if (st != status || (st == BLOCK_STATUS_DATA &&
					    entry + in != first_entry + done)) {
			break;
		}
		done += n < len - done ? n : len - done;
	}
	ext->len = done;
	ext->status = status;
	ext->host_offset = status == BLOCK_STATUS_DATA ? first_entry : 0;
	return 0;
}

static uint32_t qcow_cluster_size(struct bdev *bs)
{
	return ((struct qcow_state *)bs->opaque)->cluster_size;
}

/* ---- compressed writes (convert -c) ---- */

static int qcow_write_compressed(struct bdev *bs, uint64_t offset, const void *buf, size_t len)
{
	struct qcow_state *s = bs->opaque;
	uint64_t *table, l2_offset, host, entry, be;
	uint32_t index;
	z_stream z = { 0 };
	size_t out_len;
	int ret, zret;

	if (len != s->cluster_size || (offset & (s->cluster_size - 1)) ||
	    offset >= bs->size)
		return -EINVAL;
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)buf;
	z.avail_in = len;
	z.next_out = s->zbuf;
	z.avail_out = s->cluster_size;
	zret = deflate(&z, Z_FINISH);
	out_len = s->cluster_size - z.avail_out;
	deflateEnd(&z);
	if (zret != Z_STREAM_END || out_len >= s->cluster_size) {
		struct iovec v = { (void *)buf, len };

		return qcow_pwritev(bs, offset, &v, 1);	/* incompressible */
	}
	ret = qcow_l2_lookup(bs, offset, true, &table, &index, &l2_offset);
	if (ret < 0)
		return ret;
	if (table[index])
		return -EEXIST;		/* as QEMU: only into unallocated clusters */
	host = s->file_end;
	s->file_end += out_len;
	ret = bfile_pwrite(bs->file, host, s->zbuf, out_len);
	if (ret < 0)
		return ret;
	entry = host | QCOW_OFLAG_COMPRESSED | ((uint64_t)out_len << (63 - s->cluster_bits));
	be = htobe64(entry);
	ret = bfile_pwrite(bs->file, l2_offset + (uint64_t)index * 8, &be, 8);
	if (ret < 0)
		return ret;
	table[index] = entry;
	return 0;
}


/* Commit's make_empty, as QEMU does it: a zeroed L1 table, the file cut
 * right after it, and no cached L2 table. */
static int qcow_make_empty(struct bdev *bs)
{
	struct qcow_state *s = bs->opaque;
	uint64_t l1_bytes = (uint64_t)s->l1_size * 8;
	int ret;

	ret = bfile_write_zeroes(bs->file, s->l1_table_offset, (uint64_t)s->l1_size * 8);
	if (ret == 0)
		ret = bfile_flush(bs->file);
	if (ret < 0)
		return ret;
	memset(s->l1, 0, (size_t)s->l1_size * 8);
	qcow_l2_cache_drop(s);
	s->file_end = s->l1_table_offset + l1_bytes;
	return bfile_truncate(bs->file, s->file_end);
}

struct block_format block_format_qcow = {	/* not static: unit tests link it by name */
	.name = "qcow",
	.probe = qcow_probe,
	.open = qcow_open,
	.close = qcow_close,
	.preadv = qcow_preadv,
	.pwritev = qcow_pwritev,
	.flush = qcow_flush,
	.block_status = qcow_block_status,
	.create = qcow_create,
	.change_backing = qcow_change_backing,
	.write_compressed = qcow_write_compressed,
	.cluster_size = qcow_cluster_size,
	.make_empty = qcow_make_empty,
	.check = qcow_check,
};

BLOCK_FORMAT_REGISTER(block_format_qcow)
