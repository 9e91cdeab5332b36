/* qcow2 guest writes: allocating writes with copy-on-write of partial
 * clusters (per subcluster with extended L2 entries; fresh clusters past
 * the end of the file get only their data written when the rest would be
 * zeroes), discard, write zeroes, make_empty (commit) and preallocation.
 * Updated L2 entries stay dirty in the cache (qcow2_cluster.c) until
 * qcow2_commit writes them in order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/qcow2.h"

#define QCOW2_MAX_RUN_BYTES (8u << 20)	/* clusters allocated per step */

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
		old[i] = qc_l2_get(t, l2i + i);
		qc_l2_put(t, l2i + i, ((uint64_t)host + i * cs) | QCOW_OFLAG_COPIED);
	}
	qcow2_mark_l2_dirty(s, (uint32_t)(cl >> s->l2_bits));
	s->cbuf_key = 0;
	for (uint64_t i = 0; i < n && ret == 0; i++)
		ret = qcow2_defer_free(s, old[i]);
	if (ret == 0)
		ret = qcow2_maybe_commit(s);
out:
	free(hbuf);
	free(tbuf);
	free(v);
	free(old);
	return ret;
}

int qcow2_check_writable(struct bdev *bs, struct qcow2 *s, uint64_t offset, uint64_t len)
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
		ret = qcow2_get_l2_for_write(s, idx, &t, &l2_off);
	if (ret < 0)
		return ret;
	e = qc_l2_get(t, l2i * 2);
	bm = qc_l2_get(t, l2i * 2 + 1);
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
		qc_l2_put(t, l2i * 2, (uint64_t)host | QCOW_OFLAG_COPIED);
		ret = qcow2_defer_free(s, e);
		if (ret < 0)
			return ret;
	}
	nb = (bm | mask) & ~(mask << 32);
	if (nb != bm || qc_l2_get(t, l2i * 2) != e) {
		qc_l2_put(t, l2i * 2 + 1, nb);
		qcow2_mark_l2_dirty(s, idx);
	}
	s->cbuf_key = 0;
	return qcow2_maybe_commit(s);
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
	int ret = qcow2_check_writable(bs, s, offset, total);

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
		ret = qcow2_get_l2(s, idx, &t);
		if (ret < 0)
			break;
		e = t ? qc_l2_get(t, l2i) : 0;
		if (t && qcow2_entry_writable(s, e)) {
			/* in place: extend over host-contiguous writable clusters */
			uint64_t host = e & L2E_OFFSET_MASK;
			len = cs - (off & (cs - 1));
			for (n = 1; len < room; n++) {
				uint64_t ne = qc_l2_get(t, l2i + n);
				if (!qcow2_entry_writable(s, ne) ||
				    (ne & L2E_OFFSET_MASK) != host + n * cs)
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
		ret = qcow2_get_l2_for_write(s, idx, &t, &l2_off);
		if (ret < 0)
			break;
		len = cs - (off & (cs - 1));
		for (n = 1; len < room && n * cs < QCOW2_MAX_RUN_BYTES; n++) {
			if (qcow2_entry_writable(s, qc_l2_get(t, l2i + n)))
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
		ret = qcow2_get_l2(s, idx, &t);
		for (uint64_t i = 0; i < n && ret == 0 && t; i++)
			if (qc_l2_get(t, (l2i + i) * 2) || qc_l2_get(t, (l2i + i) * 2 + 1) != nb)
				change = true;
		if (ret == 0 && !t && nb)
			change = true;
		if (ret == 0 && change)
			ret = qcow2_get_l2_for_write(s, idx, &t, &l2_off);
		for (uint64_t i = 0; i < n && ret == 0 && change; i++) {
			uint64_t e = qc_l2_get(t, (l2i + i) * 2), ne = 0;

			if (keep_alloc && qcow2_entry_writable(s, e))
				ne = e;
			else
				ret = qcow2_defer_free(s, e);
			qc_l2_put(t, (l2i + i) * 2, ne);
			qc_l2_put(t, (l2i + i) * 2 + 1, nb);
		}
		if (ret == 0 && change) {
			qcow2_mark_l2_dirty(s, idx);
			s->cbuf_key = 0;
			ret = qcow2_maybe_commit(s);
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
		ret = qcow2_get_l2(s, idx, &t);
		if (ret < 0)
			break;
		/* without a backing file, unallocated already reads as zeroes */
		bool zero_ok = !s->bs->backing;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t e = t ? qc_l2_get(t, l2i + i) : 0;
			if (e != new_entry && !(zero_ok && e == 0))
				change = true;
		}
		if (change) {
			ret = qcow2_get_l2_for_write(s, idx, &t, &l2_off);
			if (ret < 0)
				break;
			old = malloc(sizeof(*old) * n);
			if (!old) {
				ret = -ENOMEM;
				break;
			}
			for (uint64_t i = 0; i < n; i++) {
				uint64_t e = qc_l2_get(t, l2i + i), ne = new_entry;
				if (zero_ok && e == 0)
					ne = 0;
				if (keep_alloc && qcow2_entry_writable(s, e))
					ne = (e & L2E_OFFSET_MASK) | QCOW_OFLAG_COPIED | QCOW_OFLAG_ZERO;
				old[i] = (ne & L2E_OFFSET_MASK) ? 0 : e;
				if (qcow2_entry_type(s, old[i]) == QC_COMPRESSED ||
				    (old[i] & L2E_OFFSET_MASK))
					need_free = true;
				qc_l2_put(t, l2i + i, ne);
			}
			qcow2_mark_l2_dirty(s, idx);
			s->cbuf_key = 0;
			for (uint64_t i = 0; i < n && ret == 0 && need_free; i++)
				ret = qcow2_defer_free(s, old[i]);
			if (ret == 0)
				ret = qcow2_maybe_commit(s);
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
	int ret = qcow2_check_writable(bs, s, offset, len);

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
	ret = qcow2_get_l2(s, idx, &t);
	if (ret < 0 || !t)
		return ret;
	for (uint64_t i = 0; i < words; i++)
		if (qc_l2_get(t, i))
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
	return qcow2_defer_free(s, off);
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
	int ret = qcow2_check_writable(bs, s, 0, 0);

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
	int ret = qcow2_check_writable(bs, s, offset, len);

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

/* Point the L2 entry of a cluster without one at the preallocated host
 * cluster; false when it already has a cluster (host stays unused). With
 * extended L2 entries the subcluster bitmap is left as it is, as QEMU
 * does: unallocated subclusters keep reading from the backing file (or as
 * zeroes), zero ones as zeroes, and a later write fills the cluster in
 * place. Without them the cluster reads its (zero) host contents. */
static bool prealloc_link(struct qcow2 *s, uint64_t *t, uint64_t l2i, uint64_t host)
{
	uint64_t slot = s->extended_l2 ? l2i * 2 : l2i, e = qc_l2_get(t, slot);

	if (s->extended_l2 ? e != 0 : qcow2_entry_type(s, e) != QC_UNALLOCATED)
		return false;
	qc_l2_put(t, slot, host | QCOW_OFLAG_COPIED);
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
		ret = qcow2_get_l2_for_write(s, idx, &t, &l2_off);
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
		qcow2_mark_l2_dirty(s, idx);
		ret = qcow2_maybe_commit(s);
		if (ret < 0)
			return ret;
		cl += n;
	}
	return 0;
}
