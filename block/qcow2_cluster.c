/* qcow2 guest cluster mapping: the L2 table cache (one slot per L1 index,
 * covering the whole image unless l2_cache_bytes limits it; updates kept
 * dirty until qcow2_commit writes them in order), lookups of
 * guest ranges (normal, zero, unallocated, compressed; subclusters with
 * extended L2 entries), reads, allocating writes with copy-on-write of
 * partial clusters (per subcluster with extended L2; fresh clusters past
 * the end of the file get only their data written when the rest would be
 * zeroes), discard, write zeroes, make_empty (commit), compressed
 * clusters (zlib or zstd, compressed without the image lock), the
 * lock-free map() fast path and block status. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>
#include "block/bfile.h"
#include "block/qcow2.h"

#define QCOW2_MAX_RUN_BYTES (8u << 20)	/* clusters allocated per step */

struct qext {
	enum qcow2_ctype type;
	uint64_t len;		/* bytes from the queried offset */
	uint64_t host;		/* host offset of the queried byte: NORMAL, and ZERO or
				 * UNALLOCATED units that keep a host cluster; else 0 */
	uint64_t entry;		/* raw L2 entry (compressed clusters) */
};

static inline uint64_t l2_get(const uint64_t *tab, uint64_t i)
{
	return __atomic_load_n(&tab[i], __ATOMIC_ACQUIRE);
}

static inline void l2_put(uint64_t *tab, uint64_t i, uint64_t v)
{
	__atomic_store_n(&tab[i], v, __ATOMIC_RELEASE);
}

void qcow2_grave_add(struct qcow2 *s, void *ptr)
{
	struct qcow2_grave *g = malloc(sizeof(*g));

	if (!g) {		/* leak rather than free memory map() may read */
		return;
	}
	g->ptr = ptr;
	g->next = s->graves;
	s->graves = g;
}

int qcow2_l2_cache_init(struct qcow2 *s)
{
	uint64_t want = s->bs->opts.l2_cache_bytes;
	uint64_t full = (uint64_t)s->l1_size << s->cluster_bits;

	s->l2_cap = s->l1_size ? s->l1_size : 1;
	s->l2_tab = calloc(s->l2_cap, sizeof(*s->l2_tab));
	s->l2_dirty = calloc(s->l2_cap, 1);
	s->l1_dirty = calloc(s->l2_cap, 1);
	if (!s->l2_tab || !s->l2_dirty || !s->l1_dirty)
		return -ENOMEM;
	if (!want || want >= full) {
		s->l2_cache_max = UINT64_MAX;
		s->map_ok = true;
	} else {
		s->l2_cache_max = want >> s->cluster_bits;
		if (s->l2_cache_max < 2)
			s->l2_cache_max = 2;
		s->map_ok = false;
	}
	s->cbuf = malloc(s->cluster_size);
	return s->cbuf ? 0 : -ENOMEM;
}

void qcow2_l2_cache_drop(struct qcow2 *s)
{
	if (s->n_l2_dirty && qcow2_commit(s) < 0)
		return;
	for (uint32_t i = 0; i < s->l2_cap; i++) {
		uint64_t *t = s->l2_tab[i];
		if (!t)
			continue;
		__atomic_store_n(&s->l2_tab[i], NULL, __ATOMIC_RELEASE);
		if (s->map_ok)
			qcow2_grave_add(s, t);
		else
			free(t);
	}
	s->l2_cached = 0;
}

void qcow2_l2_cache_fini(struct qcow2 *s)
{
	if (s->l2_tab) {
		for (uint32_t i = 0; i < s->l2_cap; i++)
			free(s->l2_tab[i]);
	}
	free(s->l2_tab);
	s->l2_tab = NULL;
	free(s->l2_dirty);
	free(s->l1_dirty);
	free(s->pending_free);
	s->l2_dirty = s->l1_dirty = NULL;
	s->pending_free = NULL;
	while (s->graves) {
		struct qcow2_grave *g = s->graves;
		s->graves = g->next;
		free(g->ptr);
		free(g);
	}
	free(s->cbuf);
	s->cbuf = NULL;
}

int qcow2_read_l2(struct qcow2 *s, uint64_t l2_off, uint64_t *tab)
{
	if (bfile_pread(s->file, l2_off, tab, s->cluster_size) < 0)
		return -EIO;
	for (uint64_t i = 0; i < s->cluster_size / 8; i++)
		tab[i] = ld_be64((uint8_t *)&tab[i]);
	return 0;
}

int qcow2_write_l2(struct qcow2 *s, uint64_t l2_off, const uint64_t *tab)
{
	uint64_t *buf = qcow2_alloc_aligned(s->cluster_size, false);
	int ret;

	if (!buf)
		return -ENOMEM;
	if (qcow2_rb_writeback(s) < 0) {
		free(buf);
		return -EIO;
	}
	for (uint64_t i = 0; i < s->cluster_size / 8; i++)
		st_be64((uint8_t *)&buf[i], l2_get(tab, i));
	ret = bfile_pwrite(s->file, l2_off, buf, s->cluster_size) < 0 ? -EIO : 0;
	free(buf);
	return ret;
}

int qcow2_write_l1_entry(struct qcow2 *s, uint32_t idx)
{
	return qcow2_write_u64_entries(s, s->l1_offset, s->l1, s->l1_size, idx, 1, NULL);
}

void qcow2_compressed_range(const struct qcow2 *s, uint64_t entry, uint64_t *off, uint64_t *len)
{
	unsigned shift = 62 - (s->cluster_bits - 8);
	uint64_t nsec = ((entry >> shift) & ((1ull << (s->cluster_bits - 8)) - 1)) + 1;

	*off = entry & ((1ull << shift) - 1);
	*len = nsec * 512 - (*off & 511);
}

enum qcow2_ctype qcow2_entry_type(const struct qcow2 *s, uint64_t entry)
{
	if (entry & QCOW_OFLAG_COMPRESSED)
		return QC_COMPRESSED;
	if (!s->extended_l2 && s->version >= 3 && (entry & QCOW_OFLAG_ZERO))
		return QC_ZERO;
	if (!(entry & L2E_OFFSET_MASK))
		return QC_UNALLOCATED;
	return QC_NORMAL;
}

static void evict_one(struct qcow2 *s, uint32_t keep)
{
	if (s->n_l2_dirty && qcow2_commit(s) < 0)
		return;		/* keep dirty tables: the cache grows instead */
	for (uint32_t n = 0; n < s->l2_cap; n++) {
		uint32_t i = s->evict_hand++ % s->l2_cap;
		if (i != keep && s->l2_tab[i]) {
			free(s->l2_tab[i]);
			s->l2_tab[i] = NULL;
			s->l2_cached--;
			return;
		}
	}
}

static bool l2_offset_ok(struct qcow2 *s, uint32_t idx, uint64_t off)
{
	if ((off & (s->cluster_size - 1)) || !qcow2_offset_sane(s, off, s->cluster_size)) {
		qcow2_signal_corruption(s, "L2 table offset %#llx of L1 entry %u is invalid",
					(unsigned long long)off, idx);
		return false;
	}
	return true;
}

/* The cached L2 table of an L1 index, or NULL (with 0) when unallocated. */
static int get_l2(struct qcow2 *s, uint32_t idx, uint64_t **out)
{
	uint64_t off, *t;

	*out = NULL;
	if (idx >= s->l1_size)
		return -EINVAL;
	if (s->l2_tab[idx]) {
		*out = s->l2_tab[idx];
		return 0;
	}
	off = s->l1[idx] & L1E_OFFSET_MASK;
	if (!off)
		return 0;
	if (!l2_offset_ok(s, idx, off))
		return -EIO;
	t = qcow2_alloc_aligned(s->cluster_size, false);
	if (!t)
		return -ENOMEM;
	if (qcow2_read_l2(s, off, t) < 0) {
		free(t);
		return -EIO;
	}
	if (s->l2_cached >= s->l2_cache_max)
		evict_one(s, idx);
	__atomic_store_n(&s->l2_tab[idx], t, __ATOMIC_RELEASE);
	s->l2_cached++;
	*out = t;
	return 0;
}

static void mark_l2_dirty(struct qcow2 *s, uint32_t idx)
{
	if (!s->l2_dirty[idx]) {
		s->l2_dirty[idx] = 1;
		s->n_l2_dirty++;
	}
}

static int defer_free(struct qcow2 *s, uint64_t entry)
{
	if (!(qcow2_entry_type(s, entry) == QC_COMPRESSED || (entry & L2E_OFFSET_MASK)))
		return 0;
	if (s->n_pending == s->cap_pending) {
		uint32_t cap = s->cap_pending ? s->cap_pending * 2 : 64;
		uint64_t *p = realloc(s->pending_free, sizeof(*p) * cap);
		if (!p)
			return -ENOMEM;
		s->pending_free = p;
		s->cap_pending = cap;
	}
	s->pending_free[s->n_pending++] = entry;
	return 0;
}

/* Bound the deferred work so a commit stays short. */
static int maybe_commit(struct qcow2 *s)
{
	if (s->n_l2_dirty > 256 || s->n_pending > 8192)
		return qcow2_commit(s);
	return 0;
}

int qcow2_dirty_resize(struct qcow2 *s, uint32_t new_size)
{
	uint8_t *a = calloc(new_size ? new_size : 1, 1), *b = calloc(new_size ? new_size : 1, 1);

	if (!a || !b) {
		free(a);
		free(b);
		return -ENOMEM;
	}
	free(s->l2_dirty);
	free(s->l1_dirty);
	s->l2_dirty = a;
	s->l1_dirty = b;
	s->n_l2_dirty = s->n_l1_dirty = 0;
	return 0;
}

int qcow2_commit(struct qcow2 *s)
{
	int ret;

	if (!s->n_l2_dirty && !s->n_l1_dirty && !s->n_pending)
		return 0;
	if (s->broken)
		return -EIO;
	/* 1. data and refcounts before the L2 entries that reference them */
	ret = qcow2_flush_barrier(s);
	for (uint32_t i = 0; i < s->l2_cap && s->n_l2_dirty && ret == 0; i++) {
		if (!s->l2_dirty[i])
			continue;
		ret = qcow2_write_l2(s, s->l1[i] & L1E_OFFSET_MASK, s->l2_tab[i]);
		if (ret == 0) {
			s->l2_dirty[i] = 0;
			s->n_l2_dirty--;
		}
	}
	/* 2. new L2 tables before the L1 entries that point at them (a
	 * write covers the dirty entries of a whole O_DIRECT block) */
	if (ret == 0 && s->n_l1_dirty) {
		ret = qcow2_flush_barrier(s);
		for (uint32_t i = 0; i < s->l1_size && s->n_l1_dirty && ret == 0; i++) {
			uint64_t end;

			if (!s->l1_dirty[i])
				continue;
			ret = qcow2_write_u64_entries(s, s->l1_offset, s->l1, s->l1_size, i, 1,
						      &end);
			for (; ret == 0 && i < end; i++) {
				if (s->l1_dirty[i]) {
					s->l1_dirty[i] = 0;
					s->n_l1_dirty--;
				}
			}
			i--;
		}
	}
	/* 3. the new entries are stable before old clusters lose a reference */
	if (ret == 0 && s->n_pending) {
		ret = qcow2_flush_barrier(s);
		while (ret == 0 && s->n_pending) {
			ret = qcow2_free_l2_entry(s, s->pending_free[s->n_pending - 1], true);
			if (ret == 0)
				s->n_pending--;
		}
	}
	return ret;
}

/* The L2 table of idx, allocated and owned by the active L1 alone
 * (COPIED), ready for entry updates. */
static int get_l2_for_write(struct qcow2 *s, uint32_t idx, uint64_t **out, uint64_t *l2_off)
{
	uint64_t old = s->l1[idx] & L1E_OFFSET_MASK, *t;
	int64_t noff;
	int ret;

	ret = get_l2(s, idx, &t);
	if (ret < 0)
		return ret;
	if (t && (s->l1[idx] & QCOW_OFLAG_COPIED)) {
		*out = t;
		*l2_off = old;
		return 0;
	}
	noff = qcow2_alloc_clusters(s, 1);
	if (noff < 0)
		return (int)noff;
	if (!t) {
		t = qcow2_alloc_aligned(s->cluster_size, true);
		if (!t)
			return -ENOMEM;
		if (s->l2_cached >= s->l2_cache_max)
			evict_one(s, idx);
		__atomic_store_n(&s->l2_tab[idx], t, __ATOMIC_RELEASE);
		s->l2_cached++;
	}
	/* the table is written at commit, before the L1 entry; a table shared
	 * with a snapshot loses this reference after both are stable */
	s->l1[idx] = (uint64_t)noff | QCOW_OFLAG_COPIED;
	mark_l2_dirty(s, idx);
	if (!s->l1_dirty[idx]) {
		s->l1_dirty[idx] = 1;
		s->n_l1_dirty++;
	}
	if (old && (ret = defer_free(s, old)) < 0)
		return ret;
	*out = t;
	*l2_off = (uint64_t)noff;
	return 0;
}

/* Type and host offset of one allocation unit (cluster, or subcluster
 * with extended L2). */
static enum qcow2_ctype unit_type(struct qcow2 *s, const uint64_t *t, uint64_t l2i, unsigned sc,
				  uint64_t *host, uint64_t *entry)
{
	uint64_t e, bm;

	*host = 0;
	if (!t) {
		*entry = 0;
		return QC_UNALLOCATED;
	}
	if (!s->extended_l2) {
		e = l2_get(t, l2i);
		*entry = e;
		*host = e & L2E_OFFSET_MASK;
		return qcow2_entry_type(s, e);
	}
	e = l2_get(t, l2i * 2);
	bm = l2_get(t, l2i * 2 + 1);
	*entry = e;
	if (e & QCOW_OFLAG_COMPRESSED)
		return QC_COMPRESSED;
	/* an allocated cluster keeps its host offset for zero and
	 * unallocated subclusters too (QEMU's ZERO_ALLOC, UNALLOCATED_ALLOC) */
	if (e & L2E_OFFSET_MASK)
		*host = (e & L2E_OFFSET_MASK) + ((uint64_t)sc << s->sc_bits);
	if (bm & (1ull << sc))
		return (e & L2E_OFFSET_MASK) ? QC_NORMAL : QC_UNALLOCATED;
	if (bm & (1ull << (32 + sc)))
		return QC_ZERO;
	return QC_UNALLOCATED;
}

/* How the guest range starting at off maps (at most max bytes, never
 * crossing an L2 table). */
static int get_extent(struct qcow2 *s, uint64_t off, uint64_t max, struct qext *x)
{
	uint64_t cl = off >> s->cluster_bits;
	uint32_t idx = (uint32_t)(cl >> s->l2_bits);
	uint64_t l2i = cl & (s->l2_entries - 1);
	uint64_t unit = 1ull << s->sc_bits, nunits = s->cluster_size >> s->sc_bits;
	unsigned sc = (unsigned)((off >> s->sc_bits) & (nunits - 1));
	uint64_t *t, host, entry, len;
	int ret;

	if ((uint64_t)idx >= s->l1_size || (cl >> s->l2_bits) > UINT32_MAX)
		return -EIO;
	ret = get_l2(s, idx, &t);
	if (ret < 0)
		return ret;
	x->type = unit_type(s, t, l2i, sc, &host, &entry);
	x->entry = entry;
	if (x->type == QC_NORMAL) {
		if ((entry & L2E_OFFSET_MASK) & (s->cluster_size - 1)) {
			qcow2_signal_corruption(s, "data cluster offset %#llx (guest %#llx) is "
						"not cluster aligned", (unsigned long long)host,
						(unsigned long long)off);
			return -EIO;
		}
		x->host = host + (off & (unit - 1));
	} else if (x->type == QC_COMPRESSED || !host) {
		x->host = 0;
	} else {
		x->host = host + (off & (unit - 1));	/* preallocated zero/unallocated */
	}
	len = unit - (off & (unit - 1));
	if (x->type == QC_COMPRESSED) {
		x->len = len < max ? len : max;
		return 0;
	}
	/* extend over following units of the same kind (contiguous on the host) */
	while (len < max) {
		uint64_t nh, ne;
		sc++;
		if (sc == nunits) {
			sc = 0;
			if (++l2i == s->l2_entries)
				break;
		}
		enum qcow2_ctype nt = unit_type(s, t, l2i, sc, &nh, &ne);
		if (nt != x->type)
			break;
		if (x->host ? nh != host + len + (off & (unit - 1)) : nh != 0)
			break;
		len += unit;
	}
	x->len = len < max ? len : max;
	return 0;
}


/* A zlib cluster: raw inflate (window 2^12) into one cluster; a stream
 * that ends early leaves the rest zeroes. */
static int zlib_decompress(uint8_t *dst, size_t dlen, uint8_t *src, size_t slen)
{
	z_stream z;
	int zr;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = src;
	z.avail_in = (uInt)slen;
	z.next_out = dst;
	z.avail_out = (uInt)dlen;
	zr = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	if (!(zr == Z_STREAM_END || ((zr == Z_OK || zr == Z_BUF_ERROR) && z.avail_out == 0)))
		return -EIO;
	if (z.avail_out)
		memset(dst + (dlen - z.avail_out), 0, z.avail_out);
	return 0;
}

/* A zstd cluster as QEMU's qcow2_zstd_decompress reads it: frames are
 * streamed until the cluster is full, the last one ending exactly there;
 * what follows in the sector range (padding) is ignored. No progress, a
 * decoding error or a frame longer than the cluster is -EIO. The window
 * is bounded by the largest cluster (what QEMU's frames need). */
static int zstd_decompress(uint8_t *dst, size_t dlen, const uint8_t *src, size_t slen)
{
	ZSTD_outBuffer out = { .dst = dst, .size = dlen, .pos = 0 };
	ZSTD_inBuffer in = { .src = src, .size = slen, .pos = 0 };
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	size_t zr = 0;
	int ret = 0;

	if (!dctx)
		return -ENOMEM;
	if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax,
						QCOW2_MAX_CLUSTER_BITS))) {
		ZSTD_freeDCtx(dctx);
		return -EINVAL;
	}
	while (out.pos < out.size) {
		size_t in_pos = in.pos, out_pos = out.pos;

		zr = ZSTD_decompressStream(dctx, &out, &in);
		if (ZSTD_isError(zr) || (in.pos <= in_pos && out.pos <= out_pos)) {
			ret = -EIO;
			break;
		}
	}
	if (zr > 0)
		ret = -EIO;
	ZSTD_freeDCtx(dctx);
	return ret;
}

/* Decode the compressed cluster of an L2 entry into s->cbuf (kept as
 * a one-cluster cache keyed by the entry). */
static int decompress_cluster(struct qcow2 *s, uint64_t entry)
{
	uint64_t off, len;
	uint8_t *in;
	int ret;

	if (s->cbuf_key == entry)
		return 0;
	s->cbuf_key = 0;
	qcow2_compressed_range(s, entry, &off, &len);
	if (!off || !qcow2_offset_sane(s, off, len)) {
		qcow2_signal_corruption(s, "compressed cluster offset %#llx is invalid",
					(unsigned long long)off);
		return -EIO;
	}
	in = malloc(len);
	if (!in)
		return -ENOMEM;
	if (bfile_pread(s->file, off, in, len) < 0) {
		free(in);
		return -EIO;
	}
	if (s->compression_type == QCOW2_COMPRESSION_ZSTD)
		ret = zstd_decompress(s->cbuf, s->cluster_size, in, len);
	else
		ret = zlib_decompress(s->cbuf, s->cluster_size, in, len);
	free(in);
	if (ret == -EIO)
		fprintf(stderr, "qcow2: %s: compressed cluster at %#llx does not decompress\n",
			s->fname, (unsigned long long)off);
	if (ret < 0)
		return ret;
	s->cbuf_key = entry;
	return 0;
}

static int read_unallocated(struct qcow2 *s, uint64_t off, const struct iovec *iov, int cnt,
			    uint64_t pos, uint64_t len)
{
	uint64_t chunk = len < (1u << 20) ? len : (1u << 20);
	uint8_t *buf;

	if (!s->bs->backing) {
		iov_memset(iov, cnt, pos, 0, len);
		return 0;
	}
	buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	while (len) {
		uint64_t n = len < chunk ? len : chunk;
		int ret = block_read_backing(s->bs, off, buf, n);
		if (ret < 0) {
			free(buf);
			return ret;
		}
		iov_from_buf(iov, cnt, pos, buf, n);
		off += n;
		pos += n;
		len -= n;
	}
	free(buf);
	return 0;
}

int qcow2_preadv(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct qcow2 *s = bs->opaque;
	uint64_t total = iov_size(iov, iovcnt), pos = 0;
	struct iovec *sub = malloc(sizeof(*sub) * (size_t)(iovcnt > 0 ? iovcnt : 1));
	int ret = 0;

	if (!sub)
		return -ENOMEM;
	while (pos < total) {
		struct qext x;
		uint64_t off = offset + pos;
		ret = get_extent(s, off, total - pos, &x);
		if (ret < 0)
			break;
		switch (x.type) {
		case QC_UNALLOCATED:
			ret = read_unallocated(s, off, iov, iovcnt, pos, x.len);
			break;
		case QC_ZERO:
			iov_memset(iov, iovcnt, pos, 0, x.len);
			break;
		case QC_NORMAL: {
			int n = iov_slice(iov, iovcnt, pos, x.len, sub);
			ret = bfile_preadv(s->file, x.host, sub, n) < 0 ? -EIO : 0;
			break;
		}
		case QC_COMPRESSED:
			ret = decompress_cluster(s, x.entry);
			if (ret == 0)
				iov_from_buf(iov, iovcnt, pos,
					     s->cbuf + (off & (s->cluster_size - 1)), x.len);
			break;
		}
		if (ret < 0)
			break;
		pos += x.len;
	}
	free(sub);
	return ret;
}

static int read_flat(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	struct iovec v = { .iov_base = buf, .iov_len = len };

	return qcow2_preadv(bs, off, &v, 1);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

/* Would a data write to [host, host+len) hit the header, the L1 table,
 * the refcount table or the snapshot table? (hostile images) */
static bool hits_metadata(struct qcow2 *s, uint64_t host, uint64_t len)
{
	if (host < s->cluster_size ||
	    overlaps(host, len, s->l1_offset, (uint64_t)s->l1_size * 8) ||
	    overlaps(host, len, s->rt_offset, (uint64_t)s->rt_clusters << s->cluster_bits) ||
	    overlaps(host, len, s->snapshots_offset, s->snapshots_size)) {
		qcow2_signal_corruption(s, "data write at %#llx would overwrite metadata",
					(unsigned long long)host);
		return true;
	}
	return false;
}

/* Is the L2 entry usable for an in-place write? */
static bool entry_writable(struct qcow2 *s, uint64_t e)
{
	return qcow2_entry_type(s, e) == QC_NORMAL && (e & QCOW_OFLAG_COPIED);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	return !len || (!p[0] && !memcmp(p, p + 1, len - 1));
}

/* Can a write into fresh clusters at host skip their copy-on-write areas
 * (head bytes before the data, tail bytes after it)? When those are
 * zeroes and the clusters lie past the end of the file, which reads as
 * zeroes (a hole once the file is extended over them). */
static bool data_only_ok(struct qcow2 *s, uint64_t host, const uint8_t *head, uint64_t hlen,
			 const uint8_t *tail, uint64_t tlen)
{
	int64_t size;

	if (!hlen && !tlen)
		return false;		/* nothing to skip */
	if (!all_zero(head, hlen) || !all_zero(tail, tlen))
		return false;
	size = bfile_size(s->file);
	return size >= 0 && host >= (uint64_t)size;
}

/* Allocate n clusters for the guest clusters starting at cluster index
 * `cl` (all in one L2 table), write the data at [off, off+len) (within
 * them) with copy-on-write of the partial head and tail, then link them. */
static int write_alloc_run(struct qcow2 *s, uint64_t *t, uint64_t l2_off, uint64_t cl,
			   uint64_t n, uint64_t off, const struct iovec *iov, int iovcnt,
			   uint64_t pos, uint64_t len)
{
	uint64_t cs = s->cluster_size, l2i = cl & (s->l2_entries - 1);
	uint64_t start = cl << s->cluster_bits, end = start + n * cs;
	uint64_t head = off - start, tail = end - (off + len);
	uint8_t *hbuf = NULL, *tbuf = NULL;
	struct iovec *v = NULL;
	uint64_t *old = NULL;
	int64_t host;
	int ret = 0, nv;

	hbuf = head ? qcow2_alloc_aligned(cs, false) : NULL;
	tbuf = tail ? qcow2_alloc_aligned(cs, false) : NULL;
	v = malloc(sizeof(*v) * (size_t)(iovcnt + 2));
	old = malloc(sizeof(*old) * n);
	if ((head && !hbuf) || (tail && !tbuf) || !v || !old) {
		ret = -ENOMEM;
		goto out;
	}
	/* old contents for the partial clusters, read before anything changes */
	if (head && (ret = read_flat(s->bs, start, hbuf, cs)) < 0)
		goto out;
	if (tail && (ret = read_flat(s->bs, end - cs, tbuf, cs)) < 0)
		goto out;
	host = qcow2_alloc_clusters(s, n);
	if (host < 0) {
		ret = (int)host;
		goto out;
	}
	if (data_only_ok(s, (uint64_t)host, hbuf, head, tail ? tbuf + (cs - tail) : NULL,
			 tail)) {
		/* as QEMU zeroes the copy-on-write areas without writing them */
		nv = iov_slice(iov, iovcnt, pos, len, v);
		if (bfile_pwritev(s->file, (uint64_t)host + head, v, nv) < 0) {
			ret = -EIO;
			goto out;
		}
		if (s->file_end_needed < end - start + (uint64_t)host)
			s->file_end_needed = end - start + (uint64_t)host;
		goto link;
	}
	nv = 0;
	if (head) {
		v[nv].iov_base = hbuf;
		v[nv++].iov_len = head;
	}
	nv += iov_slice(iov, iovcnt, pos, len, v + nv);
	if (tail) {
		v[nv].iov_base = tbuf + (cs - tail);
		v[nv++].iov_len = tail;
	}
	if (bfile_pwritev(s->file, (uint64_t)host, v, nv) < 0) {
		ret = -EIO;
		goto out;
	}
link:
	/* the L2 entries reach the disk at the next commit, after the data
	 * and refcounts are stable; replaced clusters are freed after that */
	for (uint64_t i = 0; i < n; i++) {
		old[i] = l2_get(t, l2i + i);
		l2_put(t, l2i + i, ((uint64_t)host + i * cs) | QCOW_OFLAG_COPIED);
	}
	mark_l2_dirty(s, (uint32_t)(cl >> s->l2_bits));
	s->cbuf_key = 0;
	for (uint64_t i = 0; i < n && ret == 0; i++)
		ret = defer_free(s, old[i]);
	if (ret == 0)
		ret = maybe_commit(s);
out:
	free(hbuf);
	free(tbuf);
	free(v);
	free(old);
	return ret;
}

static int check_writable(struct bdev *bs, struct qcow2 *s, uint64_t offset, uint64_t len)
{
	if (s->read_only)
		return -EROFS;
	if (s->broken)
		return -EIO;
	if (offset > bs->size || len > bs->size - offset)
		return -EINVAL;
	if (s->bitmaps && !s->bitmaps_in_use) {
		int ret = qcow2_bitmaps_mark_in_use(s);

		if (ret < 0)
			return ret;
	}
	if (s->lazy && !s->dirty_set)
		return qcow2_mark_dirty(s);
	return 0;
}

/* ---- extended L2 entries: 32 subclusters per cluster ----
 * An entry is a pair: the cluster descriptor (host offset, COPIED,
 * COMPRESSED) and a bitmap whose low 32 bits mark allocated subclusters
 * and high 32 bits subclusters that read as zeroes. A write allocates a
 * full cluster when needed (zero-filled, or a copy of a shared one) and
 * sets the allocation bits of the subclusters it covers; subclusters it
 * does not touch keep their state (backing file, zeroes). */

#define QCOW2_BM_ALLOC_ALL	0x00000000ffffffffull
#define QCOW2_BM_ZERO_ALL	0xffffffff00000000ull

/* Subcluster allocation bits [first, last]. */
static uint64_t sc_mask(unsigned first, unsigned last)
{
	uint64_t upto = last == 31 ? QCOW2_BM_ALLOC_ALL : (1ull << (last + 1)) - 1;

	return upto & ~((1ull << first) - 1);
}

/* The new contents of subclusters [first_sc, last_sc] of the cluster at
 * guest offset cstart: their current bytes around the written range (past
 * the end of the disk, inside its last cluster, that reads as zeroes). */
static int ext_build_span(struct qcow2 *s, uint64_t cstart, unsigned first_sc,
			  unsigned last_sc, uint64_t off, uint64_t len, const struct iovec *iov,
			  int iovcnt, uint64_t pos, uint8_t *span)
{
	uint64_t sstart = cstart + ((uint64_t)first_sc << s->sc_bits);
	uint64_t send = cstart + ((uint64_t)(last_sc + 1) << s->sc_bits);
	int ret;

	if (off > sstart && (ret = read_flat(s->bs, sstart, span, off - sstart)) < 0)
		return ret;
	if (off + len < send &&
	    (ret = read_flat(s->bs, off + len, span + (off + len - sstart), send - off - len)) < 0)
		return ret;
	iov_to_buf(iov, iovcnt, pos, span + (off - sstart), len);
	return 0;
}

/* A new cluster for an extended entry: zeroes, the bytes of the shared
 * cluster it replaces, or (compressed) its whole decompressed contents. */
static int ext_new_cluster(struct qcow2 *s, uint64_t entry, uint64_t cstart, uint8_t *cbuf,
			   int64_t *host)
{
	uint64_t cs = s->cluster_size, old = entry & L2E_OFFSET_MASK;
	int ret = 0;

	if (entry & QCOW_OFLAG_COMPRESSED)
		ret = read_flat(s->bs, cstart, cbuf, cs);
	else if (old && bfile_pread(s->file, old, cbuf, cs) < 0)
		ret = -EIO;
	else if (!old)
		memset(cbuf, 0, cs);
	if (ret < 0)
		return ret;
	*host = qcow2_alloc_clusters(s, 1);
	return *host < 0 ? (int)*host : 0;
}

/* Write [off, off+len) inside one cluster of an extended-L2 image. */
static int ext_write_cluster(struct qcow2 *s, uint64_t off, uint64_t len,
			     const struct iovec *iov, int iovcnt, uint64_t pos, uint8_t *cbuf,
			     uint8_t *span)
{
	uint64_t cs = s->cluster_size, cl = off >> s->cluster_bits, cstart = cl << s->cluster_bits;
	uint32_t idx = (uint32_t)(cl >> s->l2_bits);
	uint64_t l2i = cl & (s->l2_entries - 1), *t, l2_off, e, bm, nb, mask;
	unsigned first = (unsigned)((off - cstart) >> s->sc_bits);
	unsigned last = (unsigned)((off + len - 1 - cstart) >> s->sc_bits);
	uint64_t soff = (uint64_t)first << s->sc_bits;
	uint64_t slen = (uint64_t)(last - first + 1) << s->sc_bits;
	int64_t host;
	int ret;

	ret = ext_build_span(s, cstart, first, last, off, len, iov, iovcnt, pos, span);
	if (ret == 0)
		ret = get_l2_for_write(s, idx, &t, &l2_off);
	if (ret < 0)
		return ret;
	e = l2_get(t, l2i * 2);
	bm = l2_get(t, l2i * 2 + 1);
	mask = sc_mask(first, last);
	if (qcow2_entry_type(s, e) == QC_COMPRESSED) {
		mask = QCOW2_BM_ALLOC_ALL;	/* the whole cluster becomes plain data */
		bm = 0;
	} else if (!(e & L2E_OFFSET_MASK)) {
		bm &= QCOW2_BM_ZERO_ALL;	/* no cluster: nothing can be allocated */
	}
	if ((e & L2E_OFFSET_MASK) && (e & QCOW_OFLAG_COPIED) && !(e & QCOW_OFLAG_COMPRESSED)) {
		host = (int64_t)(e & L2E_OFFSET_MASK);
		if ((host & (cs - 1)) || hits_metadata(s, (uint64_t)host, cs)) {
			qcow2_signal_corruption(s, "data cluster offset %#llx is invalid",
						(unsigned long long)host);
			return -EIO;
		}
		if (bfile_pwrite(s->file, (uint64_t)host + soff, span, slen) < 0)
			return -EIO;
	} else {
		ret = ext_new_cluster(s, e, cstart, cbuf, &host);
		if (ret < 0)
			return ret;
		memcpy(cbuf + soff, span, slen);
		if (bfile_pwrite(s->file, (uint64_t)host, cbuf, cs) < 0)
			return -EIO;
		l2_put(t, l2i * 2, (uint64_t)host | QCOW_OFLAG_COPIED);
		ret = defer_free(s, e);
		if (ret < 0)
			return ret;
	}
	nb = (bm | mask) & ~(mask << 32);
	if (nb != bm || l2_get(t, l2i * 2) != e) {
		l2_put(t, l2i * 2 + 1, nb);
		mark_l2_dirty(s, idx);
	}
	s->cbuf_key = 0;
	return maybe_commit(s);
}

static int ext_pwritev(struct qcow2 *s, uint64_t offset, const struct iovec *iov, int iovcnt,
		       uint64_t total)
{
	uint64_t cs = s->cluster_size, pos = 0;
	uint8_t *cbuf = malloc(cs), *span = malloc(cs);
	int ret = cbuf && span ? 0 : -ENOMEM;

	while (ret == 0 && pos < total) {
		uint64_t off = offset + pos, len = cs - (off & (cs - 1));

		if (len > total - pos)
			len = total - pos;
		ret = ext_write_cluster(s, off, len, iov, iovcnt, pos, cbuf, span);
		pos += len;
	}
	free(cbuf);
	free(span);
	return ret;
}

int qcow2_pwritev(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	struct qcow2 *s = bs->opaque;
	uint64_t total = iov_size(iov, iovcnt), pos = 0, cs = s->cluster_size;
	struct iovec *sub;
	int ret = check_writable(bs, s, offset, total);

	if (ret < 0)
		return ret;
	if (s->extended_l2)
		return ext_pwritev(s, offset, iov, iovcnt, total);
	sub = malloc(sizeof(*sub) * (size_t)(iovcnt > 0 ? iovcnt : 1));
	if (!sub)
		return -ENOMEM;
	while (pos < total) {
		uint64_t off = offset + pos, cl = off >> s->cluster_bits;
		uint32_t idx = (uint32_t)(cl >> s->l2_bits);
		uint64_t l2i = cl & (s->l2_entries - 1), *t, l2_off, e, n, len;
		uint64_t room = (s->l2_entries - l2i) * cs - (off & (cs - 1));

		if (room > total - pos)
			room = total - pos;
		ret = get_l2(s, idx, &t);
		if (ret < 0)
			break;
		e = t ? l2_get(t, l2i) : 0;
		if (t && entry_writable(s, e)) {
			/* in place: extend over host-contiguous writable clusters */
			uint64_t host = e & L2E_OFFSET_MASK;
			len = cs - (off & (cs - 1));
			for (n = 1; len < room; n++) {
				uint64_t ne = l2_get(t, l2i + n);
				if (!entry_writable(s, ne) || (ne & L2E_OFFSET_MASK) != host + n * cs)
					break;
				len += cs;
			}
			if (len > room)
				len = room;
			if (host & (cs - 1)) {
				qcow2_signal_corruption(s, "data cluster offset %#llx unaligned",
							(unsigned long long)host);
				ret = -EIO;
				break;
			}
			if (hits_metadata(s, host, len + (off & (cs - 1)))) {
				ret = -EIO;
				break;
			}
			int nv = iov_slice(iov, iovcnt, pos, len, sub);
			if (bfile_pwritev(s->file, host + (off & (cs - 1)), sub, nv) < 0) {
				ret = -EIO;
				break;
			}
			pos += len;
			continue;
		}
		ret = get_l2_for_write(s, idx, &t, &l2_off);
		if (ret < 0)
			break;
		len = cs - (off & (cs - 1));
		for (n = 1; len < room && n * cs < QCOW2_MAX_RUN_BYTES; n++) {
			if (entry_writable(s, l2_get(t, l2i + n)))
				break;
			len += cs;
		}
		if (len > room)
			len = room;
		ret = write_alloc_run(s, t, l2_off, cl, n, off, iov, iovcnt, pos, len);
		if (ret < 0)
			break;
		pos += len;
	}
	free(sub);
	return ret;
}

/* set_clusters for extended L2 entries: ZERO sets every zero bit (the
 * cluster is kept, unallocated, with keep_alloc), 0 clears the pair. */
static int set_clusters_ext(struct qcow2 *s, uint64_t first, uint64_t count, uint64_t new_entry,
			    bool keep_alloc)
{
	uint64_t nb = new_entry ? QCOW2_BM_ZERO_ALL : 0;
	int ret = 0;

	while (count && ret == 0) {
		uint32_t idx = (uint32_t)(first >> s->l2_bits);
		uint64_t l2i = first & (s->l2_entries - 1), n = s->l2_entries - l2i, *t, l2_off;
		bool change = false;

		if (n > count)
			n = count;
		ret = get_l2(s, idx, &t);
		for (uint64_t i = 0; i < n && ret == 0 && t; i++)
			if (l2_get(t, (l2i + i) * 2) || l2_get(t, (l2i + i) * 2 + 1) != nb)
				change = true;
		if (ret == 0 && !t && nb)
			change = true;
		if (ret == 0 && change)
			ret = get_l2_for_write(s, idx, &t, &l2_off);
		for (uint64_t i = 0; i < n && ret == 0 && change; i++) {
			uint64_t e = l2_get(t, (l2i + i) * 2), ne = 0;

			if (keep_alloc && entry_writable(s, e))
				ne = e;
			else
				ret = defer_free(s, e);
			l2_put(t, (l2i + i) * 2, ne);
			l2_put(t, (l2i + i) * 2 + 1, nb);
		}
		if (ret == 0 && change) {
			mark_l2_dirty(s, idx);
			s->cbuf_key = 0;
			ret = maybe_commit(s);
		}
		first += n;
		count -= n;
	}
	return ret;
}

/* Replace the entries of full clusters [first, first+count) with new_entry
 * (0 or ZERO; keep_alloc keeps a writable allocation as preallocated
 * zero), freeing what they referenced after the L2 update. */
static int set_clusters(struct qcow2 *s, uint64_t first, uint64_t count, uint64_t new_entry,
			bool keep_alloc, bool discard)
{
	uint64_t *old = NULL;
	int ret = 0;

	if (s->extended_l2)
		return set_clusters_ext(s, first, count, new_entry, keep_alloc);

	while (count) {
		uint32_t idx = (uint32_t)(first >> s->l2_bits);
		uint64_t l2i = first & (s->l2_entries - 1), n = s->l2_entries - l2i, *t, l2_off;
		bool change = false, need_free = false;

		if (n > count)
			n = count;
		ret = get_l2(s, idx, &t);
		if (ret < 0)
			break;
		/* without a backing file, unallocated already reads as zeroes */
		bool zero_ok = !s->bs->backing;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t e = t ? l2_get(t, l2i + i) : 0;
			if (e != new_entry && !(zero_ok && e == 0))
				change = true;
		}
		if (change) {
			ret = get_l2_for_write(s, idx, &t, &l2_off);
			if (ret < 0)
				break;
			old = malloc(sizeof(*old) * n);
			if (!old) {
				ret = -ENOMEM;
				break;
			}
			for (uint64_t i = 0; i < n; i++) {
				uint64_t e = l2_get(t, l2i + i), ne = new_entry;
				if (zero_ok && e == 0)
					ne = 0;
				if (keep_alloc && entry_writable(s, e))
					ne = (e & L2E_OFFSET_MASK) | QCOW_OFLAG_COPIED | QCOW_OFLAG_ZERO;
				old[i] = (ne & L2E_OFFSET_MASK) ? 0 : e;
				if (qcow2_entry_type(s, old[i]) == QC_COMPRESSED ||
				    (old[i] & L2E_OFFSET_MASK))
					need_free = true;
				l2_put(t, l2i + i, ne);
			}
			mark_l2_dirty(s, idx);
			s->cbuf_key = 0;
			for (uint64_t i = 0; i < n && ret == 0 && need_free; i++)
				ret = defer_free(s, old[i]);
			if (ret == 0)
				ret = maybe_commit(s);
			free(old);
			old = NULL;
			if (ret < 0)
				break;
		}
		first += n;
		count -= n;
	}
	return ret;
}

/* Full clusters inside [off, off+len); the image's last partial cluster
 * counts as full when the range reaches the end of the disk. */
static void full_clusters(struct qcow2 *s, uint64_t off, uint64_t len, uint64_t *first,
			  uint64_t *count)
{
	uint64_t cs = s->cluster_size;
	uint64_t a = qc_align_up(off, cs), b = (off + len) & ~(cs - 1);

	if (off + len == s->bs->size)
		b = qc_align_up(off + len, cs);
	*first = a >> s->cluster_bits;
	*count = b > a ? (b - a) >> s->cluster_bits : 0;
}

int qcow2_discard(struct bdev *bs, uint64_t offset, uint64_t len)
{
	struct qcow2 *s = bs->opaque;
	uint64_t first, count, ne;
	int ret = check_writable(bs, s, offset, len);

	if (ret < 0)
		return ret;
	full_clusters(s, offset, len, &first, &count);
	ne = (s->version >= 3 && bs->backing) ? QCOW_OFLAG_ZERO : 0;
	return set_clusters(s, first, count, ne, false, true);
}

/* An L2 table of the active L1 alone whose entries are all unallocated
 * loses its L1 entry; the cluster is freed once the L1 update is stable. */
static int release_empty_l2(struct qcow2 *s, uint32_t idx)
{
	uint64_t *t, off = s->l1[idx] & L1E_OFFSET_MASK;
	uint64_t words = s->l2_entries * (s->l2_entry_bytes / 8);
	int ret;

	if (!off || !(s->l1[idx] & QCOW_OFLAG_COPIED) || s->l2_dirty[idx])
		return 0;
	ret = get_l2(s, idx, &t);
	if (ret < 0 || !t)
		return ret;
	for (uint64_t i = 0; i < words; i++)
		if (l2_get(t, i))
			return 0;
	__atomic_store_n(&s->l2_tab[idx], NULL, __ATOMIC_RELEASE);
	if (s->map_ok)
		qcow2_grave_add(s, t);
	else
		free(t);
	s->l2_cached--;
	s->l1[idx] = 0;
	if (!s->l1_dirty[idx]) {
		s->l1_dirty[idx] = 1;
		s->n_l1_dirty++;
	}
	return defer_free(s, off);
}

/* Cut the file after its last referenced cluster. */
static int trim_file_end(struct qcow2 *s)
{
	int64_t fsize = bfile_size(s->file);
	uint64_t c, rc;
	int ret;

	if (fsize < 0)
		return (int)fsize;
	c = qc_align_up((uint64_t)fsize, s->cluster_size) >> s->cluster_bits;
	while (c > 1) {
		ret = qcow2_get_refcount(s, c - 1, &rc);
		if (ret < 0)
			return ret;
		if (rc)
			break;
		c--;
	}
	if ((c << s->cluster_bits) >= (uint64_t)fsize)
		return 0;
	if (s->free_hint > c)
		s->free_hint = c;
	return bfile_truncate(s->file, c << s->cluster_bits);
}

/* Commit's make_empty: every entry of the active L1 becomes unallocated
 * (QEMU's full discard), so the image reads through to its backing file;
 * emptied L2 tables are freed and the file is cut after its last used
 * cluster (QEMU rebuilds a v3 image without snapshots from scratch, with
 * the same guest-visible result). */
int qcow2_make_empty(struct bdev *bs)
{
	struct qcow2 *s = bs->opaque;
	uint64_t count = qc_align_up(bs->size, s->cluster_size) >> s->cluster_bits;
	int ret = check_writable(bs, s, 0, 0);

	if (ret < 0)
		return ret;
	ret = set_clusters(s, 0, count, 0, false, true);
	if (ret == 0)
		ret = qcow2_commit(s);
	for (uint32_t i = 0; i < s->l1_size && ret == 0; i++)
		ret = release_empty_l2(s, i);
	if (ret == 0)
		ret = qcow2_commit(s);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	if (ret == 0)
		ret = trim_file_end(s);
	return ret;
}

static int write_zero_bytes(struct bdev *bs, uint64_t off, uint64_t len)
{
	uint64_t chunk = len < (1u << 20) ? len : (1u << 20);
	uint8_t *z = calloc(1, chunk ? chunk : 1);
	int ret = 0;

	if (!z)
		return -ENOMEM;
	while (len && ret == 0) {
		uint64_t n = len < chunk ? len : chunk;
		struct iovec v = { .iov_base = z, .iov_len = n };
		ret = qcow2_pwritev(bs, off, &v, 1);
		off += n;
		len -= n;
	}
	free(z);
	return ret;
}

int qcow2_write_zeroes(struct bdev *bs, uint64_t offset, uint64_t len, bool may_unmap)
{
	struct qcow2 *s = bs->opaque;
	uint64_t first, count, cs = s->cluster_size;
	int ret = check_writable(bs, s, offset, len);

	if (ret < 0)
		return ret;
	full_clusters(s, offset, len, &first, &count);
	if (!count || (s->version < 3 && bs->backing))
		return write_zero_bytes(bs, offset, len);
	uint64_t a = first << s->cluster_bits, b = (first + count) << s->cluster_bits;
	if (b > offset + len)
		b = offset + len;
	if (a > offset && (ret = write_zero_bytes(bs, offset, a - offset)) < 0)
		return ret;
	if (s->version >= 3)
		ret = set_clusters(s, first, count, QCOW_OFLAG_ZERO, !may_unmap, false);
	else
		ret = set_clusters(s, first, count, 0, false, false);
	if (ret < 0)
		return ret;
	if (b < offset + len && (first + count) * cs < offset + len)
		ret = write_zero_bytes(bs, b, offset + len - b);
	return ret;
}

int qcow2_map(struct bdev *bs, uint64_t offset, uint64_t len, struct block_extent *ext)
{
	struct qcow2 *s = bs->opaque;
	uint64_t cs = s->cluster_size, cl = offset >> s->cluster_bits, **tabs, *t, e, host, got;
	uint64_t idx = cl >> s->l2_bits, l2i = cl & (s->l2_entries - 1);

	if (!s->map_ok || s->extended_l2 || offset >= bs->size)
		return -EAGAIN;
	/* capacity first: a grown array is published before its capacity */
	if (idx >= __atomic_load_n(&s->l2_cap, __ATOMIC_ACQUIRE))
		return -EAGAIN;
	tabs = __atomic_load_n(&s->l2_tab, __ATOMIC_ACQUIRE);
	t = __atomic_load_n(&tabs[idx], __ATOMIC_ACQUIRE);
	if (!t)
		return -EAGAIN;
	e = l2_get(t, l2i);
	if (!entry_writable(s, e) || (e & (cs - 1) & L2E_OFFSET_MASK))
		return -EAGAIN;
	host = e & L2E_OFFSET_MASK;
	if (host < cs || (host >= s->l1_offset && host < s->l1_offset + (uint64_t)s->l1_size * 8) ||
	    (host >= s->rt_offset &&
	     host < s->rt_offset + ((uint64_t)s->rt_clusters << s->cluster_bits)))
		return -EAGAIN;		/* the slow path reports it */
	got = cs - (offset & (cs - 1));
	for (uint64_t i = 1; got < len && l2i + i < s->l2_entries; i++) {
		uint64_t ne = l2_get(t, l2i + i);
		if (!entry_writable(s, ne) || (ne & L2E_OFFSET_MASK) != host + i * cs)
			break;
		got += cs;
	}
	if (got > len)
		got = len;
	if (got > bs->size - offset)
		got = bs->size - offset;
	ext->len = got;
	ext->status = BLOCK_STATUS_DATA;
	ext->host_offset = host + (offset & (cs - 1));
	return 0;
}

/* QEMU's guess that the image was created with preallocation=metadata:
 * at least max(real*10/9, real+2) clusters of the file have a refcount,
 * where real is the number of clusters the file really occupies. */
static bool looks_meta_preallocated(struct qcow2 *s)
{
	int64_t flen = bfile_size(s->file);
	uint64_t real, threshold, end, count = 0, rc;
	struct stat st;

	if (flen < 0 || fstat(bfile_fd(s->file), &st) < 0)
		return false;
	real = (uint64_t)st.st_blocks * 512 / s->cluster_size;
	threshold = real * 10 / 9 > real + 2 ? real * 10 / 9 : real + 2;
	end = ((uint64_t)flen + s->cluster_size - 1) >> s->cluster_bits;
	for (uint64_t c = 0; c < end && count < threshold; c++) {
		if (qcow2_get_refcount(s, c, &rc) < 0)
			return false;
		count += rc != 0;
	}
	return count >= threshold;
}

/* In a metadata-preallocated image, data clusters over holes of the file
 * read as zeroes: say so (DATA|ZERO) and cut the run where the file
 * switches between hole and data, as QEMU's block status does. */
static void probe_file_holes(struct qcow2 *s, struct block_extent *ext)
{
	int64_t data, hole;

	if (!s->meta_prealloc)
		s->meta_prealloc = looks_meta_preallocated(s) ? 2 : 1;
	if (s->meta_prealloc != 2)
		return;
	data = bfile_seek_data(s->file, ext->host_offset, false);
	if (data == -ENXIO) {		/* a hole up to the end of the file, or past it */
		ext->status |= BLOCK_STATUS_ZERO;
		return;
	}
	if (data < 0)
		return;
	if ((uint64_t)data > ext->host_offset) {
		ext->status |= BLOCK_STATUS_ZERO;
		if ((uint64_t)data - ext->host_offset < ext->len)
			ext->len = (uint64_t)data - ext->host_offset;
		return;
	}
	hole = bfile_seek_data(s->file, ext->host_offset, true);
	if (hole > (int64_t)ext->host_offset && (uint64_t)hole - ext->host_offset < ext->len)
		ext->len = (uint64_t)hole - ext->host_offset;
}

/* Zero and unallocated ranges report the host offset of a cluster they
 * still own (preallocated), 0 when they own none. */
int qcow2_block_status(struct bdev *bs, uint64_t offset, uint64_t len, struct block_extent *ext)
{
	struct qcow2 *s = bs->opaque;
	struct qext x;
	int ret = get_extent(s, offset, len, &x);

	if (ret < 0)
		return ret;
	ext->len = x.len;
	ext->host_offset = x.host;
	switch (x.type) {
	case QC_UNALLOCATED:
		ext->status = bs->backing ? BLOCK_STATUS_BACKING :
			      BLOCK_STATUS_ZERO | BLOCK_STATUS_UNALLOCATED;
		break;
	case QC_ZERO:
		ext->status = BLOCK_STATUS_ZERO;
		break;
	case QC_NORMAL:
		ext->status = BLOCK_STATUS_DATA;
		probe_file_holes(s, ext);
		break;
	case QC_COMPRESSED:
		ext->status = BLOCK_STATUS_DATA | BLOCK_STATUS_COMPRESSED;
		ext->host_offset = 0;
		break;
	}
	return 0;
}

/* Byte-granular space for compressed data, packed into partly used
 * clusters (each user of a cluster holds one reference). */
static int64_t alloc_bytes(struct qcow2 *s, uint64_t size)
{
	uint64_t cs = s->cluster_size;
	int64_t off;

	if (s->comp_next) {
		uint64_t used = s->comp_next & (cs - 1);
		if (used && cs - used >= size) {
			int ret = qcow2_update_refcount(s, s->comp_next, 1, 1);
			if (ret < 0)
				return ret;
			off = (int64_t)s->comp_next;
			s->comp_next += size;
			if (!(s->comp_next & (cs - 1)))
				s->comp_next = 0;
			return off;
		}
	}
	off = qcow2_alloc_clusters(s, 1);
	if (off < 0)
		return off;
	s->comp_next = (uint64_t)off + size;
	if (!(s->comp_next & (cs - 1)))
		s->comp_next = 0;
	return off;
}

/* Raw deflate (window 2^12) of one cluster, as QEMU's zlib compression;
 * *csize is 0 when the result is not smaller than the cluster. */
static int zlib_compress(uint8_t *out, uint8_t *in, size_t cs, size_t *csize)
{
	z_stream z;
	int zr;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	z.next_in = in;
	z.avail_in = (uInt)cs;
	z.next_out = out;
	z.avail_out = (uInt)cs;
	zr = deflate(&z, Z_FINISH);
	*csize = zr == Z_STREAM_END && z.avail_out ? cs - z.avail_out : 0;
	deflateEnd(&z);
	return 0;
}

/* One zstd frame for one cluster, as QEMU's qcow2_zstd_compress writes
 * it: a single ZSTD_compressStream2(ZSTD_e_end) call with default
 * parameters into cs - 1 bytes; *csize is 0 when it does not fit. */
static int zstd_compress(uint8_t *out, const uint8_t *in, size_t cs, size_t *csize)
{
	ZSTD_outBuffer o = { .dst = out, .size = cs - 1, .pos = 0 };
	ZSTD_inBuffer i = { .src = in, .size = cs, .pos = 0 };
	ZSTD_CCtx *cctx = ZSTD_createCCtx();

	if (!cctx)
		return -ENOMEM;
	*csize = ZSTD_compressStream2(cctx, &o, &i, ZSTD_e_end) == 0 ? o.pos : 0;
	ZSTD_freeCCtx(cctx);
	return 0;
}

int qcow2_write_compressed(struct bdev *bs, uint64_t offset, const void *buf, size_t len)
{
	struct qcow2 *s = bs->opaque;
	uint64_t cs = s->cluster_size, cl = offset >> s->cluster_bits;
	uint64_t l2i = cl & (s->l2_entries - 1), *t, l2_off, old;
	uint8_t *in = NULL, *out = NULL;
	unsigned shift = 62 - (s->cluster_bits - 8);
	size_t csize;
	int64_t host;
	int ret = check_writable(bs, s, offset, len);

	if (ret < 0)
		return ret;
	if ((offset & (cs - 1)) || len > cs || (len < cs && offset + len != bs->size))
		return -EINVAL;
	in = calloc(1, cs);
	out = malloc(cs);
	if (!in || !out) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(in, buf, len);
	/* compression touches no image state: other writers may run
	 * meanwhile (convert -c compresses on several threads). The caller
	 * holds bs->lock, as for every format op. */
	pthread_mutex_unlock(&bs->lock);
	if (s->compression_type == QCOW2_COMPRESSION_ZSTD)
		ret = zstd_compress(out, in, cs, &csize);
	else
		ret = zlib_compress(out, in, cs, &csize);
	pthread_mutex_lock(&bs->lock);
	if (ret < 0)
		goto out;
	if (check_writable(bs, s, offset, len) < 0) {	/* broken meanwhile */
		ret = -EIO;
		goto out;
	}
	if (!csize) {	/* incompressible: store plain */
		struct iovec v = { .iov_base = in, .iov_len = len };
		ret = qcow2_pwritev(bs, offset, &v, 1);
		goto out;
	}
	ret = get_l2_for_write(s, (uint32_t)(cl >> s->l2_bits), &t, &l2_off);
	if (ret < 0)
		goto out;
	host = alloc_bytes(s, csize);
	if (host < 0) {
		ret = (int)host;
		goto out;
	}
	if (bfile_pwrite(s->file, (uint64_t)host, out, csize) < 0) {
		ret = -EIO;
		goto out;
	}
	{
		uint64_t nsec = (((uint64_t)host + csize - 1) >> 9) - ((uint64_t)host >> 9);
		unsigned w = s->l2_entry_bytes / 8;

		old = l2_get(t, l2i * w);
		l2_put(t, l2i * w, QCOW_OFLAG_COMPRESSED | (nsec << shift) | (uint64_t)host);
		if (w == 2)		/* a compressed cluster has no subcluster bitmap */
			l2_put(t, l2i * 2 + 1, 0);
	}
	mark_l2_dirty(s, (uint32_t)(cl >> s->l2_bits));
	s->cbuf_key = 0;
	ret = defer_free(s, old);
	if (ret == 0)
		ret = maybe_commit(s);
out:
	free(in);
	free(out);
	return ret;
}

/* Point the L2 entry of a cluster without one at the preallocated host
 * cluster; false when it already has a cluster (host stays unused). With
 * extended L2 entries the subcluster bitmap is left as it is, as QEMU
 * does: unallocated subclusters keep reading from the backing file (or as
 * zeroes), zero ones as zeroes, and a later write fills the cluster in
 * place. Without them the cluster reads its (zero) host contents. */
static bool prealloc_link(struct qcow2 *s, uint64_t *t, uint64_t l2i, uint64_t host)
{
	uint64_t slot = s->extended_l2 ? l2i * 2 : l2i, e = l2_get(t, slot);

	if (s->extended_l2 ? e != 0 : qcow2_entry_type(s, e) != QC_UNALLOCATED)
		return false;
	l2_put(t, slot, host | QCOW_OFLAG_COPIED);
	return true;
}

int qcow2_preallocate(struct qcow2 *s, uint64_t from, uint64_t to, int mode)
{
	uint64_t cs = s->cluster_size, cl = from >> s->cluster_bits;
	uint64_t last = qc_align_up(to, cs) >> s->cluster_bits;
	int ret = 0;

	while (cl < last) {
		uint32_t idx = (uint32_t)(cl >> s->l2_bits);
		uint64_t l2i = cl & (s->l2_entries - 1), n = s->l2_entries - l2i, *t, l2_off;
		int64_t host;

		if (n > last - cl)
			n = last - cl;
		ret = get_l2_for_write(s, idx, &t, &l2_off);
		if (ret < 0)
			return ret;
		host = qcow2_alloc_clusters(s, n);
		if (host < 0)
			return (int)host;
		if (mode == PREALLOC_FALLOC || mode == PREALLOC_FULL) {
			if (bfile_fallocate(s->file, (uint64_t)host, n * cs) < 0 &&
			    mode == PREALLOC_FALLOC)
				bfile_write_zeroes(s->file, (uint64_t)host, n * cs);
		}
		if (mode == PREALLOC_FULL) {
			uint8_t *z = calloc(1, cs);
			if (!z)
				return -ENOMEM;
			for (uint64_t i = 0; i < n && ret == 0; i++)
				ret = bfile_pwrite(s->file, (uint64_t)host + i * cs, z, cs) < 0 ? -EIO : 0;
			free(z);
			if (ret < 0)
				return ret;
		} else {
			/* make the file cover the data so reads are defined */
			int64_t fs = bfile_size(s->file);
			if (fs >= 0 && (uint64_t)fs < (uint64_t)host + n * cs &&
			    bfile_truncate(s->file, (uint64_t)host + n * cs) < 0)
				return -EIO;
		}
		for (uint64_t i = 0; i < n; i++) {
			if (!prealloc_link(s, t, l2i + i, (uint64_t)host + i * cs))
				qcow2_free_clusters(s, (uint64_t)host + i * cs, cs, false);
		}
		mark_l2_dirty(s, idx);
		ret = maybe_commit(s);
		if (ret < 0)
			return ret;
		cl += n;
	}
	return 0;
}

bool qcow2_has_data_beyond(struct qcow2 *s, uint64_t size, int *err)
{
	uint64_t cl = qc_align_up(size, s->cluster_size) >> s->cluster_bits;
	uint64_t total = (uint64_t)s->l1_size << s->l2_bits;

	*err = 0;
	while (cl < total) {
		uint32_t idx = (uint32_t)(cl >> s->l2_bits);
		uint64_t *t;
		int ret = get_l2(s, idx, &t);
		if (ret < 0) {
			*err = ret;
			return true;
		}
		if (!t) {
			cl = ((uint64_t)idx + 1) << s->l2_bits;
			continue;
		}
		uint64_t w = s->l2_entry_bytes / 8;
		if (l2_get(t, (cl & (s->l2_entries - 1)) * w) ||
		    (w == 2 && l2_get(t, (cl & (s->l2_entries - 1)) * 2 + 1)))
			return true;
		cl++;
	}
	return false;
}
