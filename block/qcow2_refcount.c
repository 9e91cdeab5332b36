/* qcow2 host cluster management: the refcount table and refcount blocks
 * of any width (1 to 64 bits), a small write-back block cache (dirty byte
 * ranges written before every ordering flush, see qcow2.h), cluster
 * allocation (new refcount blocks cover themselves; the table grows into a
 * fresh area past everything it covers) and freeing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/qcow2.h"

uint64_t qcow2_rb_get(const struct qcow2 *s, const uint8_t *blk, uint64_t idx)
{
	unsigned bits = s->refcount_bits;

	switch (bits) {
	case 1: case 2: case 4:
		return (blk[idx * bits / 8] >> (idx * bits % 8)) & ((1u << bits) - 1);
	case 8:
		return blk[idx];
	case 16:
		return ld_be16(blk + idx * 2);
	case 32:
		return ld_be32(blk + idx * 4);
	default:
		return ld_be64(blk + idx * 8);
	}
}

void qcow2_rb_set(const struct qcow2 *s, uint8_t *blk, uint64_t idx, uint64_t v)
{
	unsigned bits = s->refcount_bits;

	switch (bits) {
	case 1: case 2: case 4: {
		unsigned shift = idx * bits % 8;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
		uint8_t *b = &blk[idx * bits / 8];
		*b = (uint8_t)((*b & ~mask) | ((v << shift) & mask));
		break;
	}
	case 8:
		blk[idx] = (uint8_t)v;
		break;
	case 16:
		st_be16(blk + idx * 2, (uint16_t)v);
		break;
	case 32:
		st_be32(blk + idx * 4, (uint32_t)v);
		break;
	default:
		st_be64(blk + idx * 8, v);
		break;
	}
}

int qcow2_refcount_init(struct qcow2 *s, char *err, size_t errlen)
{
	uint64_t bytes = (uint64_t)s->rt_clusters << s->cluster_bits;

	s->rt_entries = bytes / 8;
	s->rt = malloc(bytes);
	if (!s->rt) {
		snprintf(err, errlen, "qcow2: %s: out of memory for the refcount table", s->fname);
		return -ENOMEM;
	}
	if (bfile_pread(s->file, s->rt_offset, s->rt, bytes) < 0) {
		snprintf(err, errlen, "qcow2: %s: cannot read the refcount table", s->fname);
		return -EIO;
	}
	for (uint64_t i = 0; i < s->rt_entries; i++)
		s->rt[i] = ld_be64((uint8_t *)&s->rt[i]);
	for (unsigned i = 0; i < QCOW2_RB_CACHE; i++) {
		s->rbc[i].data = qcow2_alloc_aligned(s->cluster_size, false);
		if (!s->rbc[i].data) {
			snprintf(err, errlen, "qcow2: %s: out of memory", s->fname);
			return -ENOMEM;
		}
		s->rbc[i].offset = 0;
	}
	return 0;
}

void qcow2_refcount_fini(struct qcow2 *s)
{
	for (unsigned i = 0; i < QCOW2_RB_CACHE; i++) {
		free(s->rbc[i].data);
		s->rbc[i].data = NULL;
	}
	free(s->rt);
	s->rt = NULL;
}

void qcow2_rb_cache_drop(struct qcow2 *s)
{
	for (unsigned i = 0; i < QCOW2_RB_CACHE; i++) {
		s->rbc[i].offset = 0;
		s->rbc[i].dirty_lo = s->rbc[i].dirty_hi = 0;
	}
}

static int rb_write_dirty(struct qcow2 *s, struct qcow2_rb_cache_ent *e)
{
	uint64_t lo, hi;

	if (e->dirty_lo == e->dirty_hi)
		return 0;
	qcow2_meta_span(s, e->offset, s->cluster_size, e->dirty_lo, e->dirty_hi - e->dirty_lo,
			&lo, &hi);
	if (bfile_pwrite(s->file, e->offset + lo, e->data + lo, hi - lo) < 0)
		return -EIO;
	e->dirty_lo = e->dirty_hi = 0;
	return 0;
}

int qcow2_rb_writeback(struct qcow2 *s)
{
	for (unsigned i = 0; i < QCOW2_RB_CACHE; i++) {
		if (s->rbc[i].offset && rb_write_dirty(s, &s->rbc[i]) < 0)
			return -EIO;
	}
	return 0;
}

static void rb_mark_dirty(struct qcow2_rb_cache_ent *e, uint64_t lo, uint64_t hi)
{
	if (e->dirty_lo == e->dirty_hi) {
		e->dirty_lo = lo;
		e->dirty_hi = hi;
		return;
	}
	if (lo < e->dirty_lo)
		e->dirty_lo = lo;
	if (hi > e->dirty_hi)
		e->dirty_hi = hi;
}

/* The cache entry of the refcount block at host offset off, loaded (a
 * dirty victim is written back first). */
static int rb_load_ent(struct qcow2 *s, uint64_t off, struct qcow2_rb_cache_ent **out)
{
	struct qcow2_rb_cache_ent *victim = &s->rbc[0];

	for (unsigned i = 0; i < QCOW2_RB_CACHE; i++) {
		if (s->rbc[i].offset == off) {
			s->rbc[i].lru = ++s->rbc_tick;
			*out = &s->rbc[i];
			return 0;
		}
		if (s->rbc[i].lru < victim->lru)
			victim = &s->rbc[i];
	}
	if (victim->offset && rb_write_dirty(s, victim) < 0)
		return -EIO;
	victim->offset = 0;
	if (bfile_pread(s->file, off, victim->data, s->cluster_size) < 0)
		return -EIO;
	victim->offset = off;
	victim->lru = ++s->rbc_tick;
	*out = victim;
	return 0;
}

/* The refcount block at host offset off, through the cache. */
static int rb_load(struct qcow2 *s, uint64_t off, uint8_t **out)
{
	struct qcow2_rb_cache_ent *e;
	int ret = rb_load_ent(s, off, &e);

	*out = ret < 0 ? NULL : e->data;
	return ret;
}

/* Host offset of the refcount block for a cluster group, 0 if none. */
static int rb_offset(struct qcow2 *s, uint64_t group, uint64_t *out)
{
	uint64_t off;

	*out = 0;
	if (group >= s->rt_entries)
		return 0;
	off = s->rt[group] & REFT_OFFSET_MASK;
	if (!off)
		return 0;
	if ((off & (s->cluster_size - 1)) || !qcow2_offset_sane(s, off, s->cluster_size)) {
		qcow2_signal_corruption(s, "refcount block %llu offset %#llx is invalid",
					(unsigned long long)group, (unsigned long long)off);
		return -EIO;
	}
	*out = off;
	return 0;
}

int qcow2_get_refcount(struct qcow2 *s, uint64_t cluster, uint64_t *out)
{
	uint64_t group = cluster >> s->rb_bits, off;
	uint8_t *blk;
	int ret = rb_offset(s, group, &off);

	*out = 0;
	if (ret < 0 || !off)
		return ret;
	ret = rb_load(s, off, &blk);
	if (ret < 0)
		return ret;
	*out = qcow2_rb_get(s, blk, cluster & ((1ull << s->rb_bits) - 1));
	return 0;
}

static int rt_write_entry(struct qcow2 *s, uint64_t idx)
{
	return qcow2_write_u64_entries(s, s->rt_offset, s->rt, s->rt_entries, idx, 1, NULL);
}

/* Grow the refcount table to at least min_entries entries. The new table
 * and the refcount blocks covering it go into a fresh area past the file
 * end and everything the old table covers; the header switches to it in
 * one write; then the old table is freed. */
static int grow_reftable(struct qcow2 *s, uint64_t min_entries)
{
	uint64_t cs = s->cluster_size, per_blk = 1ull << s->rb_bits;
	int64_t fsize = bfile_size(s->file);
	uint64_t p, entries, tclusters, g0, nblocks, end;
	uint64_t *tab;
	uint8_t *blk;
	int ret = 0;

	if (fsize < 0)
		return -EIO;
	p = qc_align_up((uint64_t)fsize, cs) >> s->cluster_bits;
	if (p < (s->rt_entries << s->rb_bits))
		p = s->rt_entries << s->rb_bits;
	entries = s->rt_entries * 2;
	if (entries < min_entries)
		entries = min_entries;
	g0 = p >> s->rb_bits;
	for (;;) {
		tclusters = qc_align_up(entries * 8, cs) / cs;
		nblocks = 1;
		for (;;) {
			end = p + nblocks + tclusters;
			uint64_t need = ((end - 1) >> s->rb_bits) - g0 + 1;
			if (need <= nblocks)
				break;
			nblocks = need;
		}
		if (g0 + nblocks <= entries)
			break;
		entries = g0 + nblocks;
	}
	if (tclusters * cs > QCOW2_MAX_RT_BYTES || end > (L2E_OFFSET_MASK >> s->cluster_bits))
		return -EFBIG;

	tab = calloc(tclusters, cs);
	blk = malloc(cs);
	if (!tab || !blk) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < s->rt_entries; i++)
		st_be64((uint8_t *)&tab[i], s->rt[i]);
	for (uint64_t b = 0; b < nblocks; b++) {
		uint64_t g = g0 + b;
		memset(blk, 0, cs);
		for (uint64_t c = p; c < end; c++)
			if ((c >> s->rb_bits) == g)
				qcow2_rb_set(s, blk, c & (per_blk - 1), 1);
		if (bfile_pwrite(s->file, (p + b) * cs, blk, cs) < 0) {
			ret = -EIO;
			goto out;
		}
		st_be64((uint8_t *)&tab[g], (p + b) * cs);
	}
	if (bfile_pwrite(s->file, (p + nblocks) * cs, tab, tclusters * cs) < 0) {
		ret = -EIO;
		goto out;
	}
	ret = qcow2_flush_barrier(s);
	if (ret < 0)
		goto out;
	{
		uint8_t hdr[12];
		st_be64(hdr, (p + nblocks) * cs);
		st_be32(hdr + 8, (uint32_t)tclusters);
		ret = qcow2_write_header_fields(s, QH_RT_OFFSET, hdr, 12);
		if (ret < 0)
			goto out;
	}
	ret = qcow2_flush_barrier(s);
	if (ret < 0)
		goto out;
	{
		uint64_t old_off = s->rt_offset, old_len = (uint64_t)s->rt_clusters * cs;
		uint64_t *nrt = calloc(tclusters, cs);
		if (!nrt) {
			ret = -ENOMEM;
			goto out;
		}
		for (uint64_t i = 0; i < entries && i < tclusters * cs / 8; i++)
			nrt[i] = ld_be64((uint8_t *)&tab[i]);
		free(s->rt);
		s->rt = nrt;
		s->rt_offset = (p + nblocks) * cs;
		s->rt_clusters = (uint32_t)tclusters;
		s->rt_entries = tclusters * cs / 8;
		ret = qcow2_free_clusters(s, old_off, old_len, true);
	}
out:
	free(tab);
	free(blk);
	return ret;
}

/* Create the refcount block for group at cluster `at` (inside the group,
 * free since the group has no block yet), covering itself. */
static int create_refblock(struct qcow2 *s, uint64_t group, uint64_t at)
{
	uint64_t cs = s->cluster_size;
	uint8_t *blk;
	int ret;

	if (group >= s->rt_entries)
		return grow_reftable(s, group + 1);
	blk = calloc(1, cs);
	if (!blk)
		return -ENOMEM;
	qcow2_rb_set(s, blk, at & ((1ull << s->rb_bits) - 1), 1);
	ret = bfile_pwrite(s->file, at * cs, blk, cs) < 0 ? -EIO : 0;
	free(blk);
	if (ret < 0)
		return ret;
	ret = qcow2_flush_barrier(s);
	if (ret < 0)
		return ret;
	s->rt[group] = at * cs;
	ret = rt_write_entry(s, group);
	if (ret < 0)
		return ret;
	return qcow2_flush_barrier(s);
}

int qcow2_update_refcount(struct qcow2 *s, uint64_t off, uint64_t len, int64_t addend)
{
	uint64_t first, last, per_blk = 1ull << s->rb_bits;
	int ret;

	if (!len || !addend)
		return 0;
	first = off >> s->cluster_bits;
	last = (off + len - 1) >> s->cluster_bits;
	for (uint64_t c = first; c <= last;) {
		uint64_t group = c >> s->rb_bits, boff;
		uint64_t gend = (group + 1) * per_blk - 1, stop = last < gend ? last : gend;
		uint64_t i0 = c & (per_blk - 1), i1 = stop & (per_blk - 1);
		struct qcow2_rb_cache_ent *ent;
		uint8_t *blk;

		ret = rb_offset(s, group, &boff);
		if (ret < 0)
			return ret;
		if (!boff) {
			if (addend < 0) {
				qcow2_signal_corruption(s, "freeing cluster %llu without refcount block",
							(unsigned long long)c);
				return -EIO;
			}
			/* Only allocation creates blocks; a positive update of
			 * clusters nobody allocated is a caller bug or corruption. */
			qcow2_signal_corruption(s, "cluster %llu has no refcount block",
						(unsigned long long)c);
			return -EIO;
		}
		ret = rb_load_ent(s, boff, &ent);
		if (ret < 0)
			return ret;
		blk = ent->data;
		for (uint64_t i = i0; i <= i1; i++) {
			uint64_t v = qcow2_rb_get(s, blk, i);
			if (addend < 0 && v < (uint64_t)-addend) {
				qcow2_signal_corruption(s, "refcount of cluster %llu would drop below 0",
							(unsigned long long)(group * per_blk + i));
				return -EIO;
			}
			if (addend > 0 && s->refcount_max - v < (uint64_t)addend)
				return -ERANGE;
		}
		for (uint64_t i = i0; i <= i1; i++) {
			uint64_t v = qcow2_rb_get(s, blk, i) + (uint64_t)addend;
			qcow2_rb_set(s, blk, i, v);
			if (!v && group * per_blk + i < s->free_hint)
				s->free_hint = group * per_blk + i;
		}
		/* written back before the next ordering flush */
		rb_mark_dirty(ent, i0 * s->refcount_bits / 8,
			      ((i1 + 1) * s->refcount_bits + 7) / 8);
		c = stop + 1;
	}
	return 0;
}

int qcow2_set_refcount(struct qcow2 *s, uint64_t cluster, uint64_t value)
{
	uint64_t cur;
	int ret = qcow2_get_refcount(s, cluster, &cur);

	if (ret < 0)
		return ret;
	if (value > s->refcount_max)
		return -ERANGE;
	if (cur == value)
		return 0;
	if (value > cur)
		return qcow2_update_refcount(s, cluster << s->cluster_bits, s->cluster_size,
					     (int64_t)(value - cur));
	return qcow2_update_refcount(s, cluster << s->cluster_bits, s->cluster_size,
				     -(int64_t)(cur - value));
}

/* First run of n free clusters at or after cluster `from`. */
static int find_free(struct qcow2 *s, uint64_t from, uint64_t n, uint64_t *start)
{
	uint64_t first_free = 0;

	uint64_t c = from ? from : 1, run = 0, per_blk = 1ull << s->rb_bits;
	uint64_t limit = L2E_OFFSET_MASK >> s->cluster_bits;

	while (c < limit) {
		uint64_t group = c >> s->rb_bits, boff, rc;
		int ret = rb_offset(s, group, &boff);
		if (ret < 0)
			return ret;
		if (!boff) {
			uint64_t gend = (group + 1) * per_blk;
			if (!first_free)
				first_free = c;
			if (run + (gend - c) >= n) {
				*start = c - run;
				goto found;
			}
			run += gend - c;
			c = gend;
			continue;
		}
		ret = qcow2_get_refcount(s, c, &rc);
		if (ret < 0)
			return ret;
		if (rc) {
			run = 0;
		} else {
			if (!first_free)
				first_free = c;
			if (++run == n) {
				*start = c + 1 - n;
				goto found;
			}
		}
		c++;
	}
	return -ENOSPC;
found:
	/* the hint only moves past clusters known to be in use */
	if (from == s->free_hint || !s->free_hint)
		s->free_hint = first_free;
	return 0;
}

/* Give group g (inside a run about to be allocated) a refcount block
 * placed after the run, so the run stays free and contiguous. */
static int add_block_after(struct qcow2 *s, uint64_t g, uint64_t run_end)
{
	uint64_t q, h, hoff, cs = s->cluster_size;
	uint8_t *blk;
	int ret = find_free(s, run_end, 1, &q);

	if (ret < 0)
		return ret;
	h = q >> s->rb_bits;
	if (h >= s->rt_entries)
		return grow_reftable(s, h + 1);
	ret = rb_offset(s, h, &hoff);
	if (ret < 0)
		return ret;
	if (!hoff || h == g)
		return create_refblock(s, h, q);	/* covers itself */
	ret = qcow2_update_refcount(s, q * cs, cs, 1);
	if (ret < 0)
		return ret;
	blk = calloc(1, cs);
	if (!blk)
		return -ENOMEM;
	ret = bfile_pwrite(s->file, q * cs, blk, cs) < 0 ? -EIO : 0;
	free(blk);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	if (ret < 0)
		return ret;
	s->rt[g] = q * cs;
	ret = rt_write_entry(s, g);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	return ret;
}

int64_t qcow2_alloc_clusters(struct qcow2 *s, uint64_t n)
{
	uint64_t start;
	int ret;

	if (!n)
		return -EINVAL;
	for (;;) {
		bool retry = false;
		ret = find_free(s, s->free_hint, n, &start);
		if (ret < 0)
			return ret;
		for (uint64_t g = start >> s->rb_bits; g <= (start + n - 1) >> s->rb_bits; g++) {
			uint64_t boff;
			if (g >= s->rt_entries) {
				ret = grow_reftable(s, g + 1);
				retry = true;
				break;
			}
			ret = rb_offset(s, g, &boff);
			if (ret < 0)
				return ret;
			if (boff)
				continue;
			ret = add_block_after(s, g, start + n);
			retry = true;
			break;
		}
		if (ret < 0)
			return ret;
		if (!retry)
			break;
	}
	ret = qcow2_update_refcount(s, start << s->cluster_bits, n << s->cluster_bits, 1);
	if (ret < 0)
		return ret;
	if (start <= s->free_hint)
		s->free_hint = start + n;
	return (int64_t)(start << s->cluster_bits);
}

int qcow2_free_clusters(struct qcow2 *s, uint64_t off, uint64_t len, bool discard)
{
	int ret = qcow2_update_refcount(s, off, len, -1);
	uint64_t first, last;

	if (ret < 0 || !len)
		return ret;
	first = off >> s->cluster_bits;
	last = (off + len - 1) >> s->cluster_bits;
	for (uint64_t c = first; c <= last; c++) {
		uint64_t rc;
		if (qcow2_get_refcount(s, c, &rc) < 0 || rc)
			continue;
		if (s->comp_next && (s->comp_next >> s->cluster_bits) == c)
			s->comp_next = 0;
		if (discard)
			bfile_discard(s->file, c << s->cluster_bits, s->cluster_size);
	}
	return 0;
}

int qcow2_free_l2_entry(struct qcow2 *s, uint64_t entry, bool discard)
{
	enum qcow2_ctype t = qcow2_entry_type(s, entry);
	uint64_t off, len;

	if (t == QC_COMPRESSED) {
		qcow2_compressed_range(s, entry, &off, &len);
		return qcow2_free_clusters(s, off, len, discard);
	}
	off = entry & L2E_OFFSET_MASK;
	if (!off)
		return 0;
	return qcow2_free_clusters(s, off, s->cluster_size, discard);
}
