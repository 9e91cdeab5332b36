/* qcow2 format (versions 2 and 3): probing, the known feature names,
 * small header field updates and header rewrites, dirty/corrupt bits,
 * metadata write helpers (aligned buffers, O_DIRECT spans, u64 tables),
 * flush, L1 growth, truncate, info, rebase -u, create and the ops table.
 * Open/close and header parsing live in qcow2_open.c, cluster mapping and
 * reads in qcow2_cluster.c, writes in qcow2_write.c, compressed clusters
 * in qcow2_compress.c, refcounts in qcow2_refcount.c, snapshots in
 * qcow2_snapshot.c, check/repair in qcow2_check*.c and qcow2_rebuild.c,
 * persistent dirty bitmaps in qcow2_bitmap.c. */
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
