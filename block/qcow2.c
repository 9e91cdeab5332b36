/* qcow2 format (versions 2 and 3): probing, header and header-extension
 * parsing with every field validated, feature bits (dirty, corrupt,
 * extended L2, unknown ones refused by name), open/close, flush, create,
 * truncate, info, rebase -u and the ops table. Cluster mapping lives in
 * qcow2_cluster.c, refcounts in qcow2_refcount.c, snapshots in
 * qcow2_snapshot.c, check/repair in qcow2_check.c, persistent dirty
 * bitmaps in qcow2_bitmap.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/qcow2.h"

struct feature_name {
	uint8_t type;		/* 0 incompatible, 1 compatible, 2 autoclear */
	uint8_t bit;
	const char *name;
};

static const struct feature_name known_features[] = {
	{ 0, 0, "dirty bit" },
	{ 0, 1, "corrupt bit" },
	{ 0, 2, "external data file" },
	{ 0, 3, "compression type" },
	{ 0, 4, "extended L2 entries" },
	{ 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" },
	{ 2, 1, "raw external data" },
};

/* As QEMU: the magic and a version from 2 on (open then refuses versions
 * it does not know by number). */
static int qcow2_probe(const uint8_t *head, size_t len, const char *filename)
{
	if (len < 8 || ld_be32(head) != QCOW2_MAGIC)
		return 0;
	return ld_be32(head + 4) >= 2 ? 100 : 0;
}

bool qcow2_offset_sane(const struct qcow2 *s, uint64_t off, uint64_t len)
{
	return off <= L2E_OFFSET_MASK && len <= L2E_OFFSET_MASK - off;
}

uint64_t qcow2_l1_needed(const struct qcow2 *s, uint64_t size)
{
	unsigned shift = s->cluster_bits + s->l2_bits;

	return (size >> shift) + ((size & ((1ull << shift) - 1)) ? 1 : 0);
}

int qcow2_write_header_fields(struct qcow2 *s, unsigned off, const void *buf, size_t len)
{
	if (qcow2_rb_writeback(s) < 0 || bfile_pwrite(s->file, off, buf, len) < 0)
		return -EIO;
	if (s->header_raw && off + len <= s->header_length)
		memcpy(s->header_raw + off, buf, len);
	return 0;
}

void *qcow2_alloc_aligned(size_t len, bool zero)
{
	void *p;

	if (posix_memalign(&p, QCOW2_BUF_ALIGN, len ? len : 1))
		return NULL;
	if (zero)
		memset(p, 0, len);
	return p;
}

void qcow2_meta_span(const struct qcow2 *s, uint64_t base, uint64_t room, uint64_t off,
		     uint64_t len, uint64_t *lo, uint64_t *hi)
{
	uint64_t a = bfile_alignment(s->file);
	uint64_t alo = (base + off) & ~(a - 1), ahi = qc_align_up(base + off + len, a);

	*lo = off;
	*hi = off + len;
	if (a > 1 && alo >= base && ahi <= base + room) {
		*lo = alo - base;
		*hi = ahi - base;
	}
}

int qcow2_write_u64_entries(struct qcow2 *s, uint64_t base, const uint64_t *tab, uint64_t nent,
			    uint64_t first, uint64_t count, uint64_t *written_end)
{
	uint64_t room = qc_align_up(nent * 8, s->cluster_size), lo, hi;
	uint64_t stackbuf[512] __attribute__((aligned(QCOW2_BUF_ALIGN)));
	uint64_t *buf = stackbuf;
	int ret;

	if (qcow2_rb_writeback(s) < 0)
		return -EIO;
	qcow2_meta_span(s, base, room, first * 8, count * 8, &lo, &hi);
	if (hi - lo > sizeof(stackbuf) && !(buf = qcow2_alloc_aligned(hi - lo, false)))
		return -ENOMEM;
	for (uint64_t i = lo / 8; i < hi / 8; i++)	/* past the table: its padding */
		st_be64((uint8_t *)&buf[i - lo / 8], i < nent ? tab[i] : 0);
	ret = bfile_pwrite(s->file, base + lo, buf, hi - lo) < 0 ? -EIO : 0;
	if (buf != stackbuf)
		free(buf);
	if (written_end)
		*written_end = hi / 8 < nent ? hi / 8 : nent;
	return ret;
}

/* The file covers every cluster written data-only (file_end_needed). */
static int extend_file(struct qcow2 *s)
{
	int64_t size;

	if (!s->file_end_needed)
		return 0;
	size = bfile_size(s->file);
	if (size < 0)
		return -EIO;
	if ((uint64_t)size < s->file_end_needed && bfile_truncate(s->file, s->file_end_needed) < 0)
		return -EIO;
	s->file_end_needed = 0;
	return 0;
}

int qcow2_sync(struct qcow2 *s)
{
	if (extend_file(s) < 0 || qcow2_rb_writeback(s) < 0)
		return -EIO;
	return bfile_flush(s->file) < 0 ? -EIO : 0;
}

int qcow2_flush_barrier(struct qcow2 *s)
{
	int ret = extend_file(s);

	if (ret == 0)
		ret = qcow2_rb_writeback(s);
	if (ret < 0 || s->lazy)
		return ret;
	return bfile_flush(s->file) < 0 ? -EIO : 0;
}

static int write_incompat(struct qcow2 *s)
{
	uint8_t b[8];

	if (s->version < 3)
		return 0;
	st_be64(b, s->incompat);
	return qcow2_write_header_fields(s, QH_INCOMPAT, b, 8);
}

int qcow2_mark_dirty(struct qcow2 *s)
{
	int ret;

	if (s->incompat & QCOW2_INCOMPAT_DIRTY) {
		s->dirty_set = true;
		return 0;
	}
	s->incompat |= QCOW2_INCOMPAT_DIRTY;
	ret = write_incompat(s);
	if (ret == 0)
		ret = qcow2_sync(s) < 0 ? -EIO : 0;
	if (ret == 0)
		s->dirty_set = true;
	return ret;
}

int qcow2_mark_clean(struct qcow2 *s)
{
	if (!(s->incompat & QCOW2_INCOMPAT_DIRTY))
		return 0;
	if (qcow2_sync(s) < 0)
		return -EIO;
	s->incompat &= ~QCOW2_INCOMPAT_DIRTY;
	if (write_incompat(s) < 0 || qcow2_sync(s) < 0)
		return -EIO;
	s->dirty_set = false;
	return 0;
}

void qcow2_signal_corruption(struct qcow2 *s, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->broken || s->corruption_reported)
		return;
	s->corruption_reported = true;
	if (s->read_only) {
		fprintf(stderr, "qcow2: %s: corrupt metadata: %s\n", s->fname, msg);
		return;
	}
	fprintf(stderr, "qcow2: %s: corrupt metadata: %s; image marked corrupt, "
		"further writes refused\n", s->fname, msg);
	s->broken = true;
	if (s->version >= 3) {
		s->incompat |= QCOW2_INCOMPAT_CORRUPT;
		if (write_incompat(s) == 0)
			bfile_flush(s->file);
	}
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

/* Open errors read as QEMU's qcow2 driver words them (qcow2_do_open), in
 * its order; checks QEMU lacks come after its own and are worded in the
 * same style. The block layer prefixes "qcow2: FILE: ", which qemu-img's
 * line drops. */
static int open_error(struct qcow2 *s, char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int open_error(struct qcow2 *s, char *err, size_t errlen, int ret, const char *fmt, ...)
{
	int n = snprintf(err, errlen, "qcow2: %s: ", s->fname);
	va_list ap;

	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* "Unsupported qcow2 feature(s): " with the names the image's feature
 * table gives the unknown incompatible bits (up to its first unnamed
 * entry), then "Unknown incompatible feature: HEX" for the rest. */
static void unsupported_features(const uint8_t *table, uint32_t ntable, uint64_t bits, char *out,
				 size_t outlen)
{
	size_t used = (size_t)snprintf(out, outlen, "Unsupported qcow2 feature(s): ");
	bool first = true;

	for (uint32_t i = 0; table && i < ntable && table[i * 48 + 2]; i++) {
		const uint8_t *e = table + i * 48;

		if (e[0] != 0 || e[1] >= 64 || !(bits & (1ull << e[1])))
			continue;
		used += (size_t)snprintf(out + used, used < outlen ? outlen - used : 0, "%s%.*s",
					 first ? "" : ", ", (int)strnlen((const char *)e + 2, 46),
					 (const char *)e + 2);
		bits &= ~(1ull << e[1]);
		first = false;
	}
	if (bits)
		snprintf(out + used, used < outlen ? outlen - used : 0,
			 "%sUnknown incompatible feature: %llx", first ? "" : ", ",
			 (unsigned long long)bits);
}

/* The header extensions between start and end of cluster 0 as QEMU walks
 * them: an extension header or body past end is "too large"; the padding
 * of the last one may run past end. */
struct ext_walk {
	uint64_t pos, end;
	uint32_t type, len;
	const uint8_t *data;
};

static int ext_next(const uint8_t *c0, struct ext_walk *w)
{
	if (w->pos >= w->end)
		return 0;
	if (w->end - w->pos < 8 || ld_be32(c0 + w->pos + 4) > w->end - w->pos - 8)
		return -EINVAL;
	w->type = ld_be32(c0 + w->pos);
	w->len = ld_be32(c0 + w->pos + 4);
	w->data = c0 + w->pos + 8;
	w->pos += 8 + qc_align_up(w->len, 8);
	return w->type == QCOW2_EXT_END ? 0 : 1;
}

/* The feature table, looked up only to name unknown incompatible bits:
 * the walk stops quietly where the strict one would fail. */
static void find_feature_table(const uint8_t *c0, uint64_t start, uint64_t end,
			       const uint8_t **ftab, uint32_t *nftab)
{
	struct ext_walk w = { .pos = start, .end = end };

	while (ext_next(c0, &w) > 0) {
		if (w.type == QCOW2_EXT_BACKING_FMT && w.len >= 16)
			return;
		if (w.type == QCOW2_EXT_CRYPTO)
			return;
		if (w.type == QCOW2_EXT_FEATURES) {
			*ftab = w.data;
			*nftab = w.len / 48;
		}
	}
}

static int keep_unknown_ext(struct qcow2 *s, const struct ext_walk *w)
{
	uint32_t padded = (uint32_t)qc_align_up(w->len, 8);
	uint8_t *k = realloc(s->ext_keep, s->ext_keep_len + 8 + padded);

	if (!k)
		return -ENOMEM;
	s->ext_keep = k;
	k += s->ext_keep_len;
	memcpy(k, w->data - 8, 8 + w->len);
	memset(k + 8 + w->len, 0, padded - w->len);
	s->ext_keep_len += 8 + padded;
	return 0;
}

/* Parse the header extensions between start and end of cluster 0. */
static int parse_extensions(struct qcow2 *s, const uint8_t *c0, uint64_t start, uint64_t end,
			    bool *data_file_ext, char *err, size_t errlen)
{
	struct ext_walk w = { .pos = start, .end = end };
	int more;

	while ((more = ext_next(c0, &w)) > 0) {
		switch (w.type) {
		case QCOW2_EXT_BACKING_FMT:
			if (w.len >= 16)
				return open_error(s, err, errlen, -EINVAL, "ERROR: ext_backing_format: "
						  "len=%u too large (>=16)", w.len);
			free(s->bs->backing_format);
			s->bs->backing_format = w.len ? strndup((const char *)w.data, w.len) : NULL;
			if (w.len && !s->bs->backing_format)
				return -ENOMEM;
			break;
		case QCOW2_EXT_FEATURES:
			break;
		case QCOW2_EXT_BITMAPS:	/* validated and kept, or dropped: qcow2_bitmap.c */
			qcow2_bitmaps_parse_ext(s, w.data, w.len);
			break;
		case QCOW2_EXT_CRYPTO:	/* encrypted images were refused before */
			return open_error(s, err, errlen, -EINVAL, "CRYPTO header extension only "
					  "expected with LUKS encryption method");
		default:	/* kept as found (a data file name among them) */
			*data_file_ext |= w.type == QCOW2_EXT_DATA_FILE;
			if (keep_unknown_ext(s, &w) < 0)
				return -ENOMEM;
			break;
		}
	}
	if (more < 0)
		return open_error(s, err, errlen, -EINVAL, "Header extension too large");
	return 0;
}

/* The compression type as QEMU validates it: zlib (0) or zstd (1), the
 * incompatible feature bit set exactly for non-zlib types. */
static int check_compression_type(struct qcow2 *s, const uint8_t *c0, char *err, size_t errlen)
{
	uint8_t type = s->header_length > 104 ? c0[104] : QCOW2_COMPRESSION_ZLIB;
	bool bit = s->incompat & QCOW2_INCOMPAT_COMPRESSION;

	if (type > QCOW2_COMPRESSION_ZSTD)
		return open_error(s, err, errlen, -ENOTSUP, "qcow2: unknown compression type: %u",
				  type);
	if (type == QCOW2_COMPRESSION_ZLIB && bit)
		return open_error(s, err, errlen, -EINVAL, "qcow2: Compression type incompatible "
				  "feature bit must not be set");
	if (type != QCOW2_COMPRESSION_ZLIB && !bit)
		return open_error(s, err, errlen, -EINVAL, "qcow2: Compression type incompatible "
				  "feature bit must be set");
	s->compression_type = type;
	return 0;
}

/* Magic, version and cluster size, from the first bytes of the file
 * (zeroes past its end, as QEMU reads them). */
static int check_version(struct qcow2 *s, const uint8_t *head, char *err, size_t errlen)
{
	if (ld_be32(head) != QCOW2_MAGIC)
		return open_error(s, err, errlen, -EINVAL, "Image is not in qcow2 format");
	s->version = ld_be32(head + 4);
	if (s->version < 2 || s->version > 3)
		return open_error(s, err, errlen, -ENOTSUP, "Unsupported qcow2 version %u",
				  s->version);
	s->cluster_bits = ld_be32(head + 20);
	if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS || s->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return open_error(s, err, errlen, -EINVAL, "Unsupported cluster size: 2^%u",
				  s->cluster_bits);
	s->cluster_size = 1ull << s->cluster_bits;
	return 0;
}

/* Header length, backing file offset, compression type, feature bits,
 * subcluster size, refcount width and encryption. */
static int check_header_fields(struct qcow2 *s, const uint8_t *c0, uint64_t ext_end,
			       char *err, size_t errlen)
{
	uint32_t crypt = ld_be32(c0 + 32);
	const uint8_t *ftab = NULL;
	uint32_t nftab = 0;
	int ret;

	if (s->version >= 3) {
		s->incompat = ld_be64(c0 + 72);
		s->compat = ld_be64(c0 + 80);
		s->autoclear = ld_be64(c0 + 88);
		s->refcount_order = ld_be32(c0 + 96);
		s->header_length = ld_be32(c0 + 100);
		if (s->header_length < QCOW2_V3_HEADER_LEN)
			return open_error(s, err, errlen, -EINVAL, "qcow2 header too short");
	} else {
		s->refcount_order = 4;
		s->header_length = QCOW2_V2_HEADER_LEN;
	}
	if (s->header_length > s->cluster_size)
		return open_error(s, err, errlen, -EINVAL, "qcow2 header exceeds cluster size");
	if (s->backing_offset > s->cluster_size)
		return open_error(s, err, errlen, -EINVAL, "Invalid backing file offset");
	ret = check_compression_type(s, c0, err, errlen);
	if (ret < 0)
		return ret;
	if (s->incompat & ~QCOW2_INCOMPAT_KNOWN) {
		char msg[256];

		find_feature_table(c0, qc_align_up(s->header_length, 8), ext_end, &ftab, &nftab);
		unsupported_features(ftab, nftab, s->incompat & ~QCOW2_INCOMPAT_KNOWN, msg,
				     sizeof(msg));
		return open_error(s, err, errlen, -ENOTSUP, "%s", msg);
	}
	if (s->incompat & QCOW2_INCOMPAT_CORRUPT && !s->read_only && !s->bs->opts.for_check)
		return open_error(s, err, errlen, -EACCES, "qcow2: Image is corrupt; cannot be "
				  "opened read/write");
	s->extended_l2 = !!(s->incompat & QCOW2_INCOMPAT_EXTL2);
	if (s->extended_l2 && s->cluster_bits < 14)
		return open_error(s, err, errlen, -EINVAL, "Unsupported subcluster size: %llu",
				  (unsigned long long)(s->cluster_size / 32));
	if (s->refcount_order > 6)
		return open_error(s, err, errlen, -EINVAL, "Reference count entry width too "
				  "large; may not exceed 64 bits");
	if (crypt > 2)
		return open_error(s, err, errlen, -EINVAL, "Unsupported encryption method %u",
				  crypt);
	if (crypt)
		return open_error(s, err, errlen, -ENOTSUP, "Use of %s encrypted qcow2 images is "
				  "not supported", crypt == 1 ? "AES-CBC" : "LUKS");
	return 0;
}

/* QEMU's qcow2_validate_table: at most max_bytes of entries, at a
 * cluster-aligned offset whose table ends below INT64_MAX. */
static int validate_table(struct qcow2 *s, const char *name, uint64_t offset, uint64_t entries,
			  uint64_t entry_len, uint64_t max_bytes, char *err, size_t errlen)
{
	if (entries > max_bytes / entry_len)
		return open_error(s, err, errlen, -EFBIG, "%s too large", name);
	if (INT64_MAX - entries * entry_len < offset || (offset & (s->cluster_size - 1)))
		return open_error(s, err, errlen, -EINVAL, "%s offset invalid", name);
	return 0;
}

/* A table QEMU accepted must still lie inside the file and not over the
 * header (QEMU would read zeroes, or the header, as entries). */
static int check_table_place(struct qcow2 *s, const char *name, uint64_t off, uint64_t bytes,
			     uint64_t fsize, char *err, size_t errlen)
{
	if (!bytes)
		return 0;
	if (off < s->cluster_size)
		return open_error(s, err, errlen, -EINVAL, "%s overlaps the qcow2 header", name);
	if (off > fsize || bytes > fsize - off)
		return open_error(s, err, errlen, -EINVAL, "%s extends past the end of the file",
				  name);
	return 0;
}

/* L1 entries QEMU's size_to_l1() asks for (its 64-bit arithmetic wraps). */
static uint64_t l1_entries_for(const struct qcow2 *s, uint64_t size)
{
	unsigned shift = s->cluster_bits + s->l2_bits;

	return (size + (1ull << shift) - 1) >> shift;
}

/* Refcount table, snapshot table and L1 table as QEMU checks them, then
 * where they lie in the file. */
static int check_tables(struct qcow2 *s, uint64_t size, uint64_t fsize, char *err, size_t errlen)
{
	uint64_t rt_bytes = (uint64_t)s->rt_clusters * s->cluster_size;
	uint64_t l1_bytes = (uint64_t)s->l1_size * 8, l1_needed;
	int ret;

	if (!s->rt_clusters)
		return open_error(s, err, errlen, -EINVAL, "Image does not contain a reference "
				  "count table");
	ret = validate_table(s, "Reference count table", s->rt_offset, s->rt_clusters,
			     s->cluster_size, QCOW2_MAX_RT_BYTES, err, errlen);
	if (ret == 0)
		ret = validate_table(s, "Snapshot table", s->snapshots_offset, s->nb_snapshots, 40,
				     40ull * QCOW2_MAX_SNAPSHOTS, err, errlen);
	if (ret == 0)
		ret = validate_table(s, "Active L1 table", s->l1_offset, s->l1_size, 8,
				     QCOW2_MAX_L1_BYTES, err, errlen);
	if (ret < 0)
		return ret;
	l1_needed = l1_entries_for(s, size);
	if (l1_needed > INT32_MAX)
		return open_error(s, err, errlen, -EFBIG, "Image is too big");
	if (s->l1_size < l1_needed)
		return open_error(s, err, errlen, -EINVAL, "L1 table is too small");
	ret = check_table_place(s, "Reference count table", s->rt_offset, rt_bytes, fsize, err,
				errlen);
	if (ret == 0)
		ret = check_table_place(s, "Active L1 table", s->l1_offset, l1_bytes, fsize, err,
					errlen);
	if (ret == 0 && s->nb_snapshots)
		ret = check_table_place(s, "Snapshot table", s->snapshots_offset, 40, fsize, err,
					errlen);
	if (ret == 0 && ranges_overlap(s->l1_offset, l1_bytes, s->rt_offset, rt_bytes))
		ret = open_error(s, err, errlen, -EINVAL, "Active L1 table overlaps the reference "
				 "count table");
	return ret;
}

/* The backing file name: QEMU's length limit, and (our own check) not
 * inside the fixed header. An empty name is no backing file, as QEMU. */
static int read_backing_name(struct qcow2 *s, const uint8_t *c0, char *err, size_t errlen)
{
	uint64_t room = s->cluster_size - s->backing_offset;

	if (!s->backing_offset)
		return 0;
	if (s->backing_size > (room < QCOW2_MAX_BACKING_NAME ? room : QCOW2_MAX_BACKING_NAME))
		return open_error(s, err, errlen, -EINVAL, "Backing file name too long");
	if (!s->backing_size)
		return 0;
	if (s->backing_offset < s->header_length)
		return open_error(s, err, errlen, -EINVAL, "Backing file name overlaps the qcow2 "
				  "header");
	s->bs->backing_filename = strndup((const char *)c0 + s->backing_offset, s->backing_size);
	return s->bs->backing_filename ? 0 : -ENOMEM;
}

static void set_geometry(struct qcow2 *s)
{
	s->l2_entry_bytes = s->extended_l2 ? 16 : 8;
	s->l2_bits = s->cluster_bits - (s->extended_l2 ? 4 : 3);
	s->l2_entries = 1ull << s->l2_bits;
	s->sc_bits = s->extended_l2 ? s->cluster_bits - 5 : s->cluster_bits;
	s->refcount_bits = 1u << s->refcount_order;
	s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX : (1ull << s->refcount_bits) - 1;
	s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
}

/* The fixed header and its tables (everything before reading them). */
static int parse_header(struct qcow2 *s, uint8_t *c0, uint64_t fsize, char *err, size_t errlen)
{
	uint64_t size = ld_be64(c0 + 24);
	int ret;

	s->backing_offset = ld_be64(c0 + 8);
	s->backing_size = ld_be32(c0 + 16);
	s->l1_size = ld_be32(c0 + 36);
	s->l1_offset = ld_be64(c0 + 40);
	s->rt_offset = ld_be64(c0 + 48);
	s->rt_clusters = ld_be32(c0 + 56);
	s->nb_snapshots = ld_be32(c0 + 60);
	s->snapshots_offset = ld_be64(c0 + 64);
	ret = check_header_fields(s, c0, s->backing_offset ? s->backing_offset : s->cluster_size,
				  err, errlen);
	if (ret < 0)
		return ret;
	set_geometry(s);
	ret = check_tables(s, size, fsize, err, errlen);
	if (ret < 0)
		return ret;
	if (size / 512 > INT64_MAX / 512)	/* QEMU's block layer refuses it */
		return open_error(s, err, errlen, -EFBIG, "Could not refresh total sector count: "
				  "File too large");
	/* QEMU counts whole sectors: the guest sees the size rounded down */
	s->bs->size = size / 512 * 512;
	s->header_raw = malloc(s->header_length);
	if (!s->header_raw)
		return -ENOMEM;
	memcpy(s->header_raw, c0, s->header_length);
	s->lazy = s->version >= 3 && (s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS);
	return 0;
}

/* What follows the tables in QEMU's order: header extensions, the data
 * file, the backing file name. */
static int parse_after_tables(struct qcow2 *s, const uint8_t *c0, char *err, size_t errlen)
{
	uint64_t ext_end = s->backing_offset ? s->backing_offset : s->cluster_size;
	bool data_file_ext = false;
	int ret;

	ret = parse_extensions(s, c0, qc_align_up(s->header_length, 8), ext_end, &data_file_ext,
			       err, errlen);
	if (ret < 0)
		return ret;
	if (s->incompat & QCOW2_INCOMPAT_DATA_FILE)
		return data_file_ext ?
		       open_error(s, err, errlen, -ENOTSUP, "External data files are not supported") :
		       open_error(s, err, errlen, -EINVAL, "'data-file' is required for this image");
	return read_backing_name(s, c0, err, errlen);
}

static int read_l1(struct qcow2 *s, char *err, size_t errlen)
{
	uint64_t bytes = (uint64_t)s->l1_size * 8;
	int ret;

	s->l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	if (!s->l1)
		return open_error(s, err, errlen, -ENOMEM, "Could not allocate L1 table");
	ret = bytes ? bfile_pread(s->file, s->l1_offset, s->l1, bytes) : 0;
	if (ret < 0)
		return open_error(s, err, errlen, ret, "Could not read L1 table: %s", strerror(-ret));
	for (uint32_t i = 0; i < s->l1_size; i++)
		s->l1[i] = ld_be64((uint8_t *)&s->l1[i]);
	return 0;
}

static void qcow2_free_state(struct qcow2 *s)
{
	if (!s)
		return;
	qcow2_snapshots_free(s);
	qcow2_l2_cache_fini(s);
	qcow2_refcount_fini(s);
	free(s->l1);
	free(s->header_raw);
	free(s->ext_keep);
	free(s);
}

/* Cluster 0 (zeroes past the end of the file, as QEMU reads it) once the
 * first bytes gave the cluster size. */
static int read_header_cluster(struct qcow2 *s, uint8_t **c0, char *err, size_t errlen)
{
	uint8_t head[112] = { 0 };
	int ret = bfile_pread(s->file, 0, head, sizeof(head));

	if (ret < 0)
		return open_error(s, err, errlen, ret, "Could not read qcow2 header: %s",
				  strerror(-ret));
	ret = check_version(s, head, err, errlen);
	if (ret < 0)
		return ret;
	*c0 = calloc(1, s->cluster_size);
	if (!*c0)
		return -ENOMEM;
	ret = bfile_pread(s->file, 0, *c0, s->cluster_size);
	if (ret < 0)
		return open_error(s, err, errlen, ret, "Could not read qcow2 header: %s",
				  strerror(-ret));
	return 0;
}

/* Read-write opens: drop the autoclear bits of what we do not keep, and
 * repair a dirty image (lazy refcounts) as QEMU does. */
static int open_read_write(struct qcow2 *s, char *err, size_t errlen)
{
	uint64_t keep = s->bitmaps ? QCOW2_AUTOCLEAR_BITMAPS : 0;
	struct block_check_result r;
	uint8_t z[8];
	int ret;

	if (s->autoclear & ~keep) {
		s->autoclear &= keep;
		st_be64(z, s->autoclear);
		if (qcow2_write_header_fields(s, QH_AUTOCLEAR, z, 8) < 0 || qcow2_sync(s) < 0)
			return open_error(s, err, errlen, -EIO, "Could not update qcow2 header: %s",
					  strerror(EIO));
	}
	if (!(s->incompat & QCOW2_INCOMPAT_DIRTY) || s->bs->opts.for_check)
		return 0;
	memset(&r, 0, sizeof(r));
	ret = qcow2_check_fix(s, BLOCK_REPAIR_ALL, &r, NULL);
	if (ret >= 0 && (r.corruptions || r.check_errors))
		ret = -EIO;
	if (ret == 0)
		ret = qcow2_mark_clean(s);
	if (ret < 0)
		return open_error(s, err, errlen, ret, "Could not repair dirty image: %s",
				  strerror(-ret));
	return 0;
}

static int qcow2_open(struct bdev *bs, char *err, size_t errlen)
{
	struct qcow2 *s = calloc(1, sizeof(*s));
	uint8_t *c0 = NULL;
	int64_t fsize;
	int ret;

	if (!s)
		return -ENOMEM;
	s->bs = bs;
	s->file = bs->file;
	s->fname = bs->filename ? bs->filename : "?";
	s->read_only = bs->read_only;
	fsize = bfile_size(bs->file);
	ret = fsize < 0 ? open_error(s, err, errlen, (int)fsize, "Could not read qcow2 header: %s",
				     strerror((int)-fsize)) :
			  read_header_cluster(s, &c0, err, errlen);
	if (ret == 0)
		ret = parse_header(s, c0, (uint64_t)fsize, err, errlen);
	if (ret == 0)
		ret = read_l1(s, err, errlen);
	if (ret == 0)
		ret = qcow2_refcount_init(s, err, errlen);
	if (ret == 0)
		ret = parse_after_tables(s, c0, err, errlen);
	if (ret == 0)
		ret = qcow2_snapshots_read(s, err, errlen);
	if (ret < 0)
		goto fail;
	bs->opaque = s;
	ret = qcow2_l2_cache_init(s);
	if (ret < 0) {
		open_error(s, err, errlen, ret, "Could not allocate the L2 table cache");
		goto fail;
	}
	ret = qcow2_bitmaps_load(s);
	if (ret < 0) {
		open_error(s, err, errlen, ret, "Could not allocate the bitmap directory");
		goto fail;
	}
	if (!s->read_only) {
		ret = open_read_write(s, err, errlen);
		if (ret < 0)
			goto fail;
	}
	free(c0);
	return 0;
fail:
	free(c0);
	bs->opaque = NULL;
	qcow2_free_state(s);
	return ret;
}

static void qcow2_close(struct bdev *bs)
{
	struct qcow2 *s = bs->opaque;

	if (!s)
		return;
	if (!s->read_only && !s->broken) {
		qcow2_commit(s);
		qcow2_sync(s);
		if (s->dirty_set)
			qcow2_mark_clean(s);
	}
	qcow2_free_state(s);
	bs->opaque = NULL;
}

static int qcow2_flush(struct bdev *bs)
{
	struct qcow2 *s = bs->opaque;

	int ret;

	if (s->read_only)
		return 0;
	ret = qcow2_commit(s);
	if (ret < 0)
		return ret;
	return qcow2_sync(s) < 0 ? -EIO : 0;
}

static uint32_t qcow2_cluster_size(struct bdev *bs)
{
	return (uint32_t)((struct qcow2 *)bs->opaque)->cluster_size;
}

static size_t put_ext(uint8_t *buf, size_t pos, uint32_t type, const void *data, uint32_t len)
{
	st_be32(buf + pos, type);
	st_be32(buf + pos + 4, len);
	memcpy(buf + pos + 8, data, len);
	memset(buf + pos + 8 + len, 0, qc_align_up(len, 8) - len);
	return pos + 8 + qc_align_up(len, 8);
}

/* Rewrite cluster 0: fixed header, extensions, backing file name. */
int qcow2_rewrite_header(struct qcow2 *s, const char *backing, const char *backing_fmt,
			 char *err, size_t errlen)
{
	uint64_t cs = s->cluster_size;
	size_t need, pos, blen = backing ? strlen(backing) : 0;
	size_t flen = backing_fmt ? strlen(backing_fmt) : 0;
	size_t ftab_len = sizeof(known_features) / sizeof(known_features[0]) * 48, bm_len;
	uint8_t *buf, bm_ext[24];
	int ret;

	if (blen > QCOW2_MAX_BACKING_NAME || flen > 1023) {
		snprintf(err, errlen, "qcow2: %s: backing file name or format too long", s->fname);
		return -ENAMETOOLONG;
	}
	bm_len = qcow2_bitmaps_ext(s, bm_ext);
	need = qc_align_up(s->header_length, 8) + (flen ? 8 + qc_align_up(flen, 8) : 0) +
	       (s->version >= 3 ? 8 + qc_align_up(ftab_len, 8) : 0) + s->ext_keep_len +
	       (bm_len ? 8 + bm_len : 0) + 8 + blen;
	if (need > cs && s->version >= 3)	/* drop the optional feature table */
		need -= 8 + qc_align_up(ftab_len, 8), ftab_len = 0;
	if (need > cs) {
		snprintf(err, errlen, "qcow2: %s: backing file name does not fit in the header "
			 "cluster (%llu bytes)", s->fname, (unsigned long long)cs);
		return -ENOSPC;
	}
	buf = calloc(1, cs);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, s->header_raw, s->header_length);
	st_be32(buf, QCOW2_MAGIC);
	st_be32(buf + 4, s->version);
	st_be32(buf + 20, s->cluster_bits);
	st_be64(buf + 24, s->bs->size);
	st_be32(buf + 32, 0);
	st_be32(buf + 36, s->l1_size);
	st_be64(buf + 40, s->l1_offset);
	st_be64(buf + 48, s->rt_offset);
	st_be32(buf + 56, s->rt_clusters);
	st_be32(buf + 60, s->nb_snapshots);
	st_be64(buf + 64, s->snapshots_offset);
	if (s->version >= 3) {
		st_be64(buf + 72, s->incompat);
		st_be64(buf + 80, s->compat);
		st_be64(buf + 88, s->autoclear);
		st_be32(buf + 96, s->refcount_order);
		st_be32(buf + 100, s->header_length);
	}
	pos = qc_align_up(s->header_length, 8);
	if (flen)
		pos = put_ext(buf, pos, QCOW2_EXT_BACKING_FMT, backing_fmt, (uint32_t)flen);
	if (s->version >= 3 && ftab_len) {
		uint8_t ft[sizeof(known_features) / sizeof(known_features[0]) * 48];
		memset(ft, 0, sizeof(ft));
		for (size_t i = 0; i < sizeof(known_features) / sizeof(known_features[0]); i++) {
			ft[i * 48] = known_features[i].type;
			ft[i * 48 + 1] = known_features[i].bit;
			strncpy((char *)ft + i * 48 + 2, known_features[i].name, 46);
		}
		pos = put_ext(buf, pos, QCOW2_EXT_FEATURES, ft, (uint32_t)ftab_len);
	}
	if (s->ext_keep_len)
		memcpy(buf + pos, s->ext_keep, s->ext_keep_len);
	pos += s->ext_keep_len;
	if (bm_len)
		pos = put_ext(buf, pos, QCOW2_EXT_BITMAPS, bm_ext, (uint32_t)bm_len);
	pos += 8;	/* end of extensions */
	st_be64(buf + 8, blen ? pos : 0);
	st_be32(buf + 16, (uint32_t)blen);
	if (blen)
		memcpy(buf + pos, backing, blen);
	ret = bfile_pwrite(s->file, 0, buf, cs) < 0 ? -EIO : 0;
	if (ret == 0)
		ret = qcow2_sync(s) < 0 ? -EIO : 0;
	if (ret == 0) {
		memcpy(s->header_raw, buf, s->header_length);
		free(s->bs->backing_filename);
		free(s->bs->backing_format);
		s->bs->backing_filename = blen ? strdup(backing) : NULL;
		s->bs->backing_format = flen ? strdup(backing_fmt) : NULL;
		s->backing_offset = blen ? pos : 0;
		s->backing_size = (uint32_t)blen;
	} else {
		snprintf(err, errlen, "qcow2: %s: cannot write the header", s->fname);
	}
	free(buf);
	return ret;
}

int qcow2_grow_l1(struct qcow2 *s, uint64_t min_size)
{
	uint64_t cs = s->cluster_size, bytes, n;
	uint64_t *nl1, *be, **ntab, old_off = s->l1_offset;
	uint64_t old_bytes = qc_align_up((uint64_t)s->l1_size * 8, cs);
	int64_t off;
	int ret;

	if (min_size <= s->l1_size)
		return 0;
	if (min_size * 8 > QCOW2_MAX_L1_BYTES)
		return -EFBIG;
	ret = qcow2_commit(s);
	if (ret < 0)
		return ret;
	bytes = qc_align_up(min_size * 8, cs);
	n = bytes / cs;
	nl1 = calloc(1, bytes);
	be = calloc(1, bytes);
	ntab = calloc(min_size, sizeof(*ntab));
	if (!nl1 || !be || !ntab) {
		free(nl1);
		free(be);
		free(ntab);
		return -ENOMEM;
	}
	memcpy(nl1, s->l1, (size_t)s->l1_size * 8);
	for (uint64_t i = 0; i < min_size; i++)
		st_be64((uint8_t *)&be[i], nl1[i]);
	off = qcow2_alloc_clusters(s, n);
	ret = off < 0 ? (int)off : 0;
	if (ret == 0)
		ret = bfile_pwrite(s->file, (uint64_t)off, be, bytes) < 0 ? -EIO : 0;
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	if (ret == 0) {
		uint8_t h[12];
		st_be32(h, (uint32_t)min_size);
		st_be64(h + 4, (uint64_t)off);
		ret = qcow2_write_header_fields(s, QH_L1_SIZE, h, 12);
	}
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	free(be);
	if (ret < 0) {
		free(nl1);
		free(ntab);
		return ret;
	}
	ret = qcow2_dirty_resize(s, (uint32_t)min_size);
	if (ret < 0) {
		free(nl1);
		free(ntab);
		return ret;
	}
	free(s->l1);
	s->l1 = nl1;
	s->l1_offset = (uint64_t)off;
	s->l1_size = (uint32_t)min_size;
	/* publish the bigger L2 slot array before its capacity (map() reads
	 * the capacity first) */
	memcpy(ntab, s->l2_tab, sizeof(*ntab) * s->l2_cap);
	{
		uint64_t **old = s->l2_tab;
		__atomic_store_n(&s->l2_tab, ntab, __ATOMIC_RELEASE);
		__atomic_store_n(&s->l2_cap, (uint32_t)min_size, __ATOMIC_RELEASE);
		if (s->map_ok)
			qcow2_grave_add(s, old);
		else
			free(old);
	}
	if (old_off && old_bytes)
		ret = qcow2_free_clusters(s, old_off, old_bytes, true);
	return ret;
}

static int set_size(struct qcow2 *s, uint64_t size)
{
	uint8_t b[8];

	st_be64(b, size);
	if (qcow2_write_header_fields(s, QH_SIZE, b, 8) < 0 || qcow2_sync(s) < 0)
		return -EIO;
	s->bs->size = size;
	return 0;
}

static int qcow2_truncate(struct bdev *bs, uint64_t new_size, bool shrink_ok, char *err,
			  size_t errlen)
{
	struct qcow2 *s = bs->opaque;
	int ret;

	if (s->read_only)
		return -EROFS;
	ret = qcow2_commit(s);
	if (ret < 0)
		return ret;
	if (s->bitmaps && new_size != bs->size) {
		/* QEMU resizes the bitmaps too; ours could only go inconsistent */
		snprintf(err, errlen, "qcow2: %s: cannot resize an image with persistent dirty "
			 "bitmaps (remove them with qemu-img bitmap --remove)", s->fname);
		return -ENOTSUP;
	}
	if (new_size & 511) {
		snprintf(err, errlen, "qcow2: %s: new size %llu is not a multiple of 512", s->fname,
			 (unsigned long long)new_size);
		return -EINVAL;
	}
	if (new_size > (1ull << 62) || qcow2_l1_needed(s, new_size) * 8 > QCOW2_MAX_L1_BYTES) {
		snprintf(err, errlen, "qcow2: %s: new size %llu is too large", s->fname,
			 (unsigned long long)new_size);
		return -EFBIG;
	}
	if (new_size < bs->size) {
		int e = 0;
		if (!shrink_ok) {
			snprintf(err, errlen, "qcow2: %s: shrinking needs --shrink", s->fname);
			return -EINVAL;
		}
		if (s->nb_snapshots) {
			snprintf(err, errlen, "qcow2: %s: cannot shrink an image with internal "
				 "snapshots", s->fname);
			return -ENOTSUP;
		}
		if (qcow2_has_data_beyond(s, new_size, &e)) {
			snprintf(err, errlen, "qcow2: %s: cannot shrink: clusters are allocated "
				 "beyond %llu", s->fname, (unsigned long long)new_size);
			return e ? e : -ENOTSUP;
		}
		if (new_size & (s->cluster_size - 1)) {
			/* the tail of the last cluster must read as zeroes on regrow */
			ret = qcow2_write_zeroes(bs, new_size, bs->size - new_size < s->cluster_size ?
						 bs->size - new_size : s->cluster_size -
						 (new_size & (s->cluster_size - 1)), false);
			if (ret < 0)
				return ret;
		}
		return set_size(s, new_size);
	}
	ret = qcow2_grow_l1(s, qcow2_l1_needed(s, new_size));
	if (ret < 0) {
		snprintf(err, errlen, "qcow2: %s: cannot grow the L1 table: %s", s->fname,
			 strerror(-ret));
		return ret;
	}
	ret = set_size(s, new_size);
	if (ret < 0)
		snprintf(err, errlen, "qcow2: %s: cannot write the new size", s->fname);
	return ret;
}

static int qcow2_change_backing(struct bdev *bs, const char *file, const char *fmt)
{
	struct qcow2 *s = bs->opaque;
	char err[256];
	int ret;

	if (s->read_only)
		return -EROFS;
	ret = qcow2_rewrite_header(s, file && *file ? file : NULL, file && *file ? fmt : NULL,
				   err, sizeof(err));
	if (ret < 0)
		fprintf(stderr, "%s\n", err);
	return ret;
}

/* qemu-img 7.2's format-specific data, in its order: v2 images have no
 * feature bits to show; v3 images list their bitmaps after the lazy
 * refcounts flag. The dirty bit is reported as it is on disk (a
 * read-only open never repairs nor clears it): "dirty-flag" is the
 * image's own flag, not a format-specific field. */
static int qcow2_info(struct bdev *bs, const struct block_info_writer *w)
{
	struct qcow2 *s = bs->opaque;
	int ret;

	w->flag(w->opaque, "dirty-flag", !!(s->incompat & QCOW2_INCOMPAT_DIRTY));
	w->str(w->opaque, "compat", s->version >= 3 ? "1.1" : "0.10");
	w->str(w->opaque, "compression type",
	       s->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib");
	if (s->version < 3) {
		w->num(w->opaque, "refcount bits", s->refcount_bits);
		return 0;
	}
	w->flag(w->opaque, "lazy refcounts", !!(s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS));
	ret = qcow2_bitmaps_info(s, w);
	w->num(w->opaque, "refcount bits", s->refcount_bits);
	w->flag(w->opaque, "corrupt", !!(s->incompat & QCOW2_INCOMPAT_CORRUPT));
	w->flag(w->opaque, "extended l2", s->extended_l2);
	return ret;
}

/* Write an empty image: header, a one-cluster refcount table and one
 * refcount block covering clusters 0..2, no L1 table yet (size 0). */
static int write_empty_image(const char *path, const struct block_create_opts *o,
			     unsigned version, unsigned cluster_bits, unsigned refcount_order,
			     uint8_t ctype, char *err, size_t errlen)
{
	uint64_t cs = 1ull << cluster_bits;
	struct qcow2 tmp;
	struct bfile *f;
	uint8_t *buf;
	int ret;

	ret = bfile_open(path, O_RDWR | O_CREAT | O_TRUNC, BLOCK_CACHE_WRITEBACK,
			 BLOCK_ENGINE_THREADS, &f, err, errlen);
	if (ret < 0)
		return ret;
	buf = calloc(3, cs);
	if (!buf) {
		bfile_close(f);
		return -ENOMEM;
	}
	st_be32(buf, QCOW2_MAGIC);
	st_be32(buf + 4, version);
	st_be32(buf + 20, cluster_bits);
	st_be64(buf + 40, 3 * cs);		/* L1 (empty) */
	st_be64(buf + 48, cs);			/* refcount table */
	st_be32(buf + 56, 1);
	if (version >= 3) {
		st_be64(buf + 72, (o->extended_l2 ? QCOW2_INCOMPAT_EXTL2 : 0) |
			(ctype ? QCOW2_INCOMPAT_COMPRESSION : 0));
		st_be64(buf + 80, o->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
		st_be32(buf + 96, refcount_order);
		st_be32(buf + 100, ctype ? QCOW2_ZSTD_HEADER_LEN : QCOW2_V3_HEADER_LEN);
		buf[104] = ctype;
	}
	st_be64(buf + cs, 2 * cs);		/* refcount block */
	memset(&tmp, 0, sizeof(tmp));
	tmp.refcount_bits = 1u << refcount_order;
	for (unsigned i = 0; i < 3; i++)
		qcow2_rb_set(&tmp, buf + 2 * cs, i, 1);
	ret = bfile_pwrite(f, 0, buf, 3 * cs) < 0 ? -EIO : 0;
	if (ret == 0)
		ret = bfile_flush(f) < 0 ? -EIO : 0;
	if (ret < 0)
		snprintf(err, errlen, "qcow2: %s: cannot write the new image", path);
	free(buf);
	bfile_close(f);
	return ret;
}

static int backing_size_of(const char *path, const struct block_create_opts *o, uint64_t *size,
			   char *err, size_t errlen)
{
	struct block_open_opts bo = { .format = o->backing_format, .read_only = true,
				      .allow_absolute_paths = true };
	struct bdev *b;
	char *full = NULL;
	int ret;

	if (o->backing_file[0] != '/' && strrchr(path, '/')) {
		size_t dl = (size_t)(strrchr(path, '/') - path);
		full = malloc(dl + strlen(o->backing_file) + 2);
		if (!full)
			return -ENOMEM;
		sprintf(full, "%.*s/%s", (int)dl, path, o->backing_file);
	}
	ret = bdev_open(full ? full : o->backing_file, &bo, &b, err, errlen);
	free(full);
	if (ret < 0)
		return ret;
	*size = bdev_size(b);
	bdev_close(b);
	return 0;
}

/* The compression_type create option as QEMU checks it: non-zlib types
 * need a v3 image. */
static int create_compression_type(const char *path, const struct block_create_opts *o,
				   unsigned version, uint8_t *ctype, char *err, size_t errlen)
{
	*ctype = QCOW2_COMPRESSION_ZLIB;
	if (!o->compression_type || !strcmp(o->compression_type, "zlib"))
		return 0;
	if (version < 3) {
		snprintf(err, errlen, "%s: Non-zlib compression type is only supported with "
			 "compatibility level 1.1 and above (use version=v3 or greater)", path);
		return -EINVAL;
	}
	if (strcmp(o->compression_type, "zstd")) {
		snprintf(err, errlen, "%s: Unknown compression type", path);
		return -EINVAL;
	}
	*ctype = QCOW2_COMPRESSION_ZSTD;
	return 0;
}

static int qcow2_create(const char *path, const struct block_create_opts *o, char *err,
			size_t errlen)
{
	unsigned version = 3, cluster_bits, refcount_order = 4;
	uint32_t cs = o->cluster_size ? o->cluster_size : 65536;
	unsigned rb = o->refcount_bits ? o->refcount_bits : 16;
	uint64_t size = o->size;
	struct block_open_opts oo = { .format = "qcow2", .no_backing = true };
	struct bdev *bs;
	struct qcow2 *s;
	uint8_t ctype;
	int ret;

	if (o->compat && (!strcmp(o->compat, "0.10") || !strcmp(o->compat, "v2")))
		version = 2;
	else if (o->compat && strcmp(o->compat, "1.1") && strcmp(o->compat, "v3")) {
		snprintf(err, errlen, "%s: Parameter 'version' does not accept value '%s'", path,
			 o->compat);
		return -EINVAL;
	}
	/* qemu's checks, in qcow2_co_create's order and words */
	if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1))) {
		snprintf(err, errlen, "%s: Cluster size must be a power of two between 512 and "
			 "2048k", path);
		return -EINVAL;
	}
	cluster_bits = (unsigned)__builtin_ctz(cs);
	if (o->extended_l2 && version < 3) {
		snprintf(err, errlen, "%s: Extended L2 entries are only supported with "
			 "compatibility level 1.1 and above (use version=v3 or greater)", path);
		return -EINVAL;
	}
	if (o->extended_l2 && cs < 16384) {
		snprintf(err, errlen, "%s: Extended L2 entries are only supported with cluster "
			 "sizes of at least 16384 bytes", path);
		return -EINVAL;
	}
	if (version < 3 && o->lazy_refcounts) {
		snprintf(err, errlen, "%s: Lazy refcounts only supported with compatibility level "
			 "1.1 and above (use version=v3 or greater)", path);
		return -EINVAL;
	}
	if (rb > 64 || (rb & (rb - 1))) {
		snprintf(err, errlen, "%s: Refcount width must be a power of two and may not exceed "
			 "64 bits", path);
		return -EINVAL;
	}
	refcount_order = (unsigned)__builtin_ctz(rb);
	if (version < 3 && rb != 16) {
		snprintf(err, errlen, "%s: Different refcount widths than 16 bits require "
			 "compatibility level 1.1 or above (use version=v3 or greater)", path);
		return -EINVAL;
	}
	if (o->backing_file && o->prealloc != PREALLOC_OFF && !o->extended_l2) {
		/* preallocated clusters would hide the backing file (as QEMU) */
		snprintf(err, errlen, "%s: Backing file and preallocation can only be used at the "
			 "same time if extended_l2 is on", path);
		return -EINVAL;
	}
	if (o->backing_format && !o->backing_file) {
		snprintf(err, errlen, "%s: Backing format cannot be used without backing file",
			 path);
		return -EINVAL;
	}
	ret = create_compression_type(path, o, version, &ctype, err, errlen);
	if (ret < 0)
		return ret;
	if (o->backing_file && !size) {
		ret = backing_size_of(path, o, &size, err, errlen);
		if (ret < 0)
			return ret;
	}
	size = qc_align_up(size, 512);
	ret = write_empty_image(path, o, version, cluster_bits, refcount_order, ctype, err,
				errlen);
	if (ret < 0)
		return ret;
	ret = bdev_open(path, &oo, &bs, err, errlen);
	if (ret < 0)
		return ret;
	s = bs->opaque;
	ret = qcow2_truncate(bs, size, false, err, errlen);
	if (ret == 0 && (o->backing_file || version >= 3))
		ret = qcow2_rewrite_header(s, o->backing_file, o->backing_format, err, errlen);
	if (ret == 0 && o->prealloc != PREALLOC_OFF) {
		ret = qcow2_preallocate(s, 0, size, o->prealloc);
		if (ret < 0)
			snprintf(err, errlen, "qcow2: %s: preallocation failed: %s", path,
				 strerror(-ret));
	}
	if (ret == 0 && qcow2_sync(s) < 0)
		ret = -EIO;
	bdev_close(bs);
	return ret;
}

static struct block_format qcow2_format = {
	.name = "qcow2",
	.probe = qcow2_probe,
	.open = qcow2_open,
	.close = qcow2_close,
	.preadv = qcow2_preadv,
	.pwritev = qcow2_pwritev,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.map = qcow2_map,
	.block_status = qcow2_block_status,
	.create = qcow2_create,
	.check = qcow2_check,
	.truncate = qcow2_truncate,
	.change_backing = qcow2_change_backing,
	.info = qcow2_info,
	.snapshot_list = qcow2_snapshot_list,
	.snapshot_create = qcow2_snapshot_create,
	.snapshot_apply = qcow2_snapshot_apply,
	.snapshot_delete = qcow2_snapshot_delete,
	.write_compressed = qcow2_write_compressed,
	.cluster_size = qcow2_cluster_size,
	.make_empty = qcow2_make_empty,
};

BLOCK_FORMAT_REGISTER(qcow2_format)
