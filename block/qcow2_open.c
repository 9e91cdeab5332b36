/* qcow2 open and close: cluster 0 and the version, every field of the
 * fixed header validated, feature bits (unknown incompatible ones refused
 * by name from the image's feature table), the placement of the L1 and
 * refcount tables, header extensions (unknown ones kept for header
 * rewrites), the backing file name, the L1 table, the caches, and the
 * repairs of a read-write open; errors worded as QEMU's qcow2_do_open
 * words them. Close commits, syncs and frees the open state. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/qcow2.h"

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

int qcow2_open(struct bdev *bs, char *err, size_t errlen)
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

void qcow2_close(struct bdev *bs)
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
