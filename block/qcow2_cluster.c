/* qcow2 guest cluster mapping: the L2 table cache (one slot per L1 index,
 * covering the whole image unless l2_cache_bytes limits it; updates kept
 * dirty until qcow2_commit writes them in order), lookups of guest ranges
 * (normal, zero, unallocated, compressed; subclusters with extended L2
 * entries), reads, the lock-free map() fast path and block status.
 * Writes, discard and preallocation live in qcow2_write.c, compressed
 * clusters in qcow2_compress.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "block/bfile.h"
#include "block/qcow2.h"

struct qext {
	enum qcow2_ctype type;
	uint64_t len;		/* bytes from the queried offset */
	uint64_t host;		/* host offset of the queried byte: NORMAL, and ZERO or
				 * UNALLOCATED units that keep a host cluster; else 0 */
	uint64_t entry;		/* raw L2 entry (compressed clusters) */
};

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
		st_be64((uint8_t *)&buf[i], qc_l2_get(tab, i));
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
int qcow2_get_l2(struct qcow2 *s, uint32_t idx, uint64_t **out)
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

void qcow2_mark_l2_dirty(struct qcow2 *s, uint32_t idx)
{
	if (!s->l2_dirty[idx]) {
		s->l2_dirty[idx] = 1;
		s->n_l2_dirty++;
	}
}

int qcow2_defer_free(struct qcow2 *s, uint64_t entry)
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
int qcow2_maybe_commit(struct qcow2 *s)
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
int qcow2_get_l2_for_write(struct qcow2 *s, uint32_t idx, uint64_t **out, uint64_t *l2_off)
{
	uint64_t old = s->l1[idx] & L1E_OFFSET_MASK, *t;
	int64_t noff;
	int ret;

	ret = qcow2_get_l2(s, idx, &t);
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
	qcow2_mark_l2_dirty(s, idx);
	if (!s->l1_dirty[idx]) {
		s->l1_dirty[idx] = 1;
		s->n_l1_dirty++;
	}
	if (old && (ret = qcow2_defer_free(s, old)) < 0)
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
		e = qc_l2_get(t, l2i);
		*entry = e;
		*host = e & L2E_OFFSET_MASK;
		return qcow2_entry_type(s, e);
	}
	e = qc_l2_get(t, l2i * 2);
	bm = qc_l2_get(t, l2i * 2 + 1);
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
	ret = qcow2_get_l2(s, idx, &t);
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
			ret = qcow2_decompress_cluster(s, x.entry);
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

/* Is the L2 entry usable for an in-place write? */
bool qcow2_entry_writable(struct qcow2 *s, uint64_t e)
{
	return qcow2_entry_type(s, e) == QC_NORMAL && (e & QCOW_OFLAG_COPIED);
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
	e = qc_l2_get(t, l2i);
	if (!qcow2_entry_writable(s, e) || (e & (cs - 1) & L2E_OFFSET_MASK))
		return -EAGAIN;
	host = e & L2E_OFFSET_MASK;
	if (host < cs || (host >= s->l1_offset && host < s->l1_offset + (uint64_t)s->l1_size * 8) ||
	    (host >= s->rt_offset &&
	     host < s->rt_offset + ((uint64_t)s->rt_clusters << s->cluster_bits)))
		return -EAGAIN;		/* the slow path reports it */
	got = cs - (offset & (cs - 1));
	for (uint64_t i = 1; got < len && l2i + i < s->l2_entries; i++) {
		uint64_t ne = qc_l2_get(t, l2i + i);
		if (!qcow2_entry_writable(s, ne) || (ne & L2E_OFFSET_MASK) != host + i * cs)
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

bool qcow2_has_data_beyond(struct qcow2 *s, uint64_t size, int *err)
{
	uint64_t cl = qc_align_up(size, s->cluster_size) >> s->cluster_bits;
	uint64_t total = (uint64_t)s->l1_size << s->l2_bits;

	*err = 0;
	while (cl < total) {
		uint32_t idx = (uint32_t)(cl >> s->l2_bits);
		uint64_t *t;
		int ret = qcow2_get_l2(s, idx, &t);
		if (ret < 0) {
			*err = ret;
			return true;
		}
		if (!t) {
			cl = ((uint64_t)idx + 1) << s->l2_bits;
			continue;
		}
		uint64_t w = s->l2_entry_bytes / 8;
		if (qc_l2_get(t, (cl & (s->l2_entries - 1)) * w) ||
		    (w == 2 && qc_l2_get(t, (cl & (s->l2_entries - 1)) * 2 + 1)))
			return true;
		cl++;
	}
	return false;
}
