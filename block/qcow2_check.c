/* qcow2 consistency check and repair (qemu-img check semantics): count
 * every reference to every host cluster (header, L1/L2 tables and data of
 * the active state and of each snapshot, snapshot table, refcount
 * structures), compare with the stored refcounts, fix leaks (-r leaks) and
 * errors (-r all; rebuilding the refcount structure where qemu-img would
 * place it when refcounts are missing), and check the COPIED flags of the
 * active tables. Messages, counts and exit paths follow qemu-img 7.2. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/qcow2.h"

#define CHECK_MAX_CLUSTERS (1ull << 28)
#define CHECK_MAX_SNAP_L1 (64ull << 20)	/* total snapshot L1 entries walked */

struct counts {
	uint32_t *refs;
	uint32_t *l2visits;	/* per cluster: how many L1 entries point at it */
	uint64_t nb;		/* clusters in the image file */
};

static void rep(FILE *report, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rep(FILE *report, const char *fmt, ...)
{
	va_list ap;

	if (!report)
		return;
	va_start(ap, fmt);
	vfprintf(report, fmt, ap);
	va_end(ap);
}

static void inc_range(struct counts *c, struct block_check_result *res, FILE *report,
		      uint64_t off, uint64_t len, unsigned cluster_bits, uint64_t times)
{
	uint64_t first, last;

	if (!len)
		return;
	first = off >> cluster_bits;
	last = (off + len - 1) >> cluster_bits;
	for (uint64_t k = first; k <= last; k++) {
		if (k >= c->nb) {
			rep(report, "ERROR: cluster %llu is beyond the end of the image file\n",
			    (unsigned long long)k);
			res->corruptions++;
			return;
		}
		c->refs[k] = c->refs[k] + times > UINT32_MAX ? UINT32_MAX :
			     (uint32_t)(c->refs[k] + times);
	}
}

/* Count the references of one L2 table visited `times` times. */
static int count_l2(struct qcow2 *s, struct counts *c, struct block_check_result *res,
		    FILE *report, uint64_t l2off, uint64_t times, bool active, uint64_t *tab)
{
	uint64_t cs = s->cluster_size, prev_end = 0;
	unsigned w = s->l2_entry_bytes / 8;

	if (qcow2_read_l2(s, l2off, tab) < 0) {
		rep(report, "ERROR: cannot read L2 table at %#llx\n", (unsigned long long)l2off);
		res->check_errors++;
		return 0;
	}
	for (uint64_t i = 0; i < s->l2_entries; i++) {
		uint64_t e = tab[i * w], off = e & L2E_OFFSET_MASK;
		enum qcow2_ctype t = qcow2_entry_type(s, e);

		if (t == QC_COMPRESSED) {
			uint64_t coff, clen;
			if (e & QCOW_OFLAG_COPIED) {
				rep(report, "ERROR: coffset=%#llx: Compressed cluster has "
				    "QCOW_OFLAG_COPIED set\n", (unsigned long long)e);
				res->corruptions++;
			}
			qcow2_compressed_range(s, e, &coff, &clen);
			inc_range(c, res, report, coff, clen, s->cluster_bits, times);
			if (active) {
				res->compressed_clusters++;
				res->allocated_clusters++;
			}
			continue;
		}
		if (!off && !(s->extended_l2 && (tab[i * w + 1] & 0xffffffffu)))
			continue;
		if (off & (cs - 1)) {
			rep(report, "ERROR offset=%llx: Cluster is not properly aligned; L2 entry "
			    "corrupted.\n", (unsigned long long)off);
			res->corruptions++;
			continue;
		}
		if (!off)
			continue;
		inc_range(c, res, report, off, cs, s->cluster_bits, times);
		if (active && t == QC_NORMAL) {
			res->allocated_clusters++;
			if (prev_end && off != prev_end)
				res->fragmented_clusters++;
			prev_end = off + cs;
		}
	}
	return 0;
}

/* Count the L2 tables an L1 table references (L2 contents later). */
static void count_l1(struct qcow2 *s, struct counts *c, struct block_check_result *res,
		     FILE *report, const uint64_t *l1, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = l1[i] & L1E_OFFSET_MASK;
		if (!off)
			continue;
		if (off & (s->cluster_size - 1)) {
			rep(report, "ERROR l2_offset=%llx: Table is not cluster aligned; L1 entry "
			    "corrupted\n", (unsigned long long)off);
			res->corruptions++;
			continue;
		}
		inc_range(c, res, report, off, s->cluster_size, s->cluster_bits, 1);
		if ((off >> s->cluster_bits) < c->nb)
			c->l2visits[off >> s->cluster_bits]++;
	}
}

static int read_l1_table(struct qcow2 *s, uint64_t off, uint32_t n, uint64_t **out)
{
	uint64_t *l1 = calloc(n ? n : 1, 8);

	if (!l1)
		return -ENOMEM;
	if (n && bfile_pread(s->file, off, l1, (uint64_t)n * 8) < 0) {
		free(l1);
		return -EIO;
	}
	for (uint32_t i = 0; i < n; i++)
		l1[i] = ld_be64((uint8_t *)&l1[i]);
	*out = l1;
	return 0;
}

struct bm_ref_ctx {
	struct qcow2 *s;
	struct counts *c;
	struct block_check_result *res;
	FILE *report;
};

static void bm_ref(void *opaque, uint64_t off, uint64_t len)
{
	struct bm_ref_ctx *r = opaque;

	inc_range(r->c, r->res, r->report, off, len, r->s->cluster_bits, 1);
}

/* The clusters of kept persistent bitmaps (directory, tables, data). */
static void count_bitmaps(struct qcow2 *s, struct counts *c, struct block_check_result *res,
			  FILE *report)
{
	struct bm_ref_ctx r = { s, c, res, report };
	uint64_t bad = 0;

	if (qcow2_bitmaps_count(s, bm_ref, &r, &bad) < 0) {
		rep(report, "ERROR cannot read the bitmap directory or a bitmap table\n");
		res->check_errors++;
	}
	if (bad) {
		rep(report, "ERROR %llu bitmap table entries are malformed\n",
		    (unsigned long long)bad);
		res->corruptions += bad;
	}
}

/* Count every reference: header, tables and data of the active state and
 * the snapshots, bitmaps, and the refcount table and blocks. */
static int count_all(struct qcow2 *s, struct counts *c, struct block_check_result *res,
		     FILE *report)
{
	uint64_t cs = s->cluster_size, walked = 0, *tab;
	uint64_t *active_set = NULL;
	int ret = 0;

	memset(c->refs, 0, c->nb * sizeof(*c->refs));
	memset(c->l2visits, 0, c->nb * sizeof(*c->l2visits));
	inc_range(c, res, report, 0, cs, s->cluster_bits, 1);
	inc_range(c, res, report, s->l1_offset, (uint64_t)s->l1_size * 8, s->cluster_bits, 1);
	count_l1(s, c, res, report, s->l1, s->l1_size);
	if (s->nb_snapshots)
		inc_range(c, res, report, s->snapshots_offset, s->snapshots_size, s->cluster_bits,
			  1);
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		struct qcow2_snapshot *sn = &s->snaps[i];
		uint64_t *l1;
		if (sn->l1_offset & (cs - 1)) {
			rep(report, "ERROR snapshot %s (%s) l1_offset=%#llx: L1 table is not "
			    "cluster aligned; snapshot table entry corrupted\n", sn->id, sn->name,
			    (unsigned long long)sn->l1_offset);
			res->corruptions++;
			continue;
		}
		walked += sn->l1_size;
		if (walked > CHECK_MAX_SNAP_L1) {
			rep(report, "ERROR: snapshot L1 tables too large to check\n");
			res->check_errors++;
			break;
		}
		inc_range(c, res, report, sn->l1_offset, (uint64_t)sn->l1_size * 8,
			  s->cluster_bits, 1);
		if (read_l1_table(s, sn->l1_offset, sn->l1_size, &l1) < 0) {
			res->check_errors++;
			continue;
		}
		count_l1(s, c, res, report, l1, sn->l1_size);
		free(l1);
	}
	count_bitmaps(s, c, res, report);
	/* L2 contents: once per distinct table, weighted by its visits */
	tab = malloc(cs);
	active_set = calloc((c->nb + 63) / 64, 8);
	if (!tab || !active_set) {
		free(tab);
		free(active_set);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->l1_size; i++) {
		uint64_t k = (s->l1[i] & L1E_OFFSET_MASK) >> s->cluster_bits;
		if (k && k < c->nb && !((s->l1[i] & L1E_OFFSET_MASK) & (cs - 1)))
			active_set[k / 64] |= 1ull << (k % 64);
	}
	for (uint64_t k = 0; k < c->nb && ret == 0; k++) {
		if (!c->l2visits[k])
			continue;
		ret = count_l2(s, c, res, report, k << s->cluster_bits, c->l2visits[k],
			       (active_set[k / 64] >> (k % 64)) & 1, tab);
	}
	free(tab);
	free(active_set);
	inc_range(c, res, report, s->rt_offset, (uint64_t)s->rt_clusters * cs, s->cluster_bits,
		  1);
	for (uint64_t g = 0; g < s->rt_entries; g++) {
		uint64_t off = s->rt[g] & REFT_OFFSET_MASK;
		if (!off)
			continue;
		if (off & (cs - 1)) {
			rep(report, "ERROR refcount block %llu is not cluster aligned; refcount "
			    "table entry corrupted\n", (unsigned long long)g);
			res->corruptions++;
			continue;
		}
		if ((off >> s->cluster_bits) >= c->nb) {
			rep(report, "ERROR refcount block %llu is outside image\n",
			    (unsigned long long)g);
			res->corruptions++;
			continue;
		}
		inc_range(c, res, report, off, cs, s->cluster_bits, 1);
	}
	return ret;
}

/* Grow the counters to nb clusters, the new ones without references. */
static int counts_grow(struct counts *c, uint64_t nb)
{
	uint32_t *refs, *visits;

	if (nb <= c->nb)
		return 0;
	if (nb > CHECK_MAX_CLUSTERS)
		return -EFBIG;
	refs = realloc(c->refs, nb * sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	c->refs = refs;
	visits = realloc(c->l2visits, nb * sizeof(*visits));
	if (!visits)
		return -ENOMEM;
	c->l2visits = visits;
	memset(c->refs + c->nb, 0, (nb - c->nb) * sizeof(*refs));
	memset(c->l2visits + c->nb, 0, (nb - c->nb) * sizeof(*visits));
	c->nb = nb;
	return 0;
}

/* The refcount table a rebuild writes, host-endian. */
struct new_reftable {
	uint64_t *rt;
	uint64_t entries;	/* whole clusters of entries */
};

/* First fit of n clusters without references at or after *first_free (as
 * qemu's rebuild allocates: holes first, else at the end of the file),
 * counted as used; the cluster index or a negative errno. */
static int64_t alloc_counted(struct counts *c, uint64_t n, uint64_t *first_free)
{
	uint64_t k = *first_free, run = 0;
	bool first_gap = true;
	int ret;

	for (; k < c->nb && run < n; k++) {
		if (c->refs[k]) {
			run = 0;
			continue;
		}
		run++;
		if (first_gap) {
			*first_free = k;
			first_gap = false;
		}
	}
	if (run < n) {
		ret = counts_grow(c, k + n - run);
		if (ret < 0)
			return ret;
	}
	k -= run;
	for (uint64_t i = 0; i < n; i++)
		c->refs[k + i] = 1;
	return (int64_t)k;
}

/* Make room for reftable entry g (whole clusters of entries). */
static int reftable_grow(struct qcow2 *s, struct new_reftable *t, uint64_t g)
{
	uint64_t n = qc_align_up((g + 1) * 8, s->cluster_size) / 8;
	uint64_t *rt;

	if (n * 8 > QCOW2_MAX_RT_BYTES)
		return -EFBIG;
	rt = realloc(t->rt, n * 8);
	if (!rt)
		return -ENOMEM;
	memset(rt + t->entries, 0, (n - t->entries) * 8);
	t->rt = rt;
	t->entries = n;
	return 0;
}

/* Write the refcount block of every group with a referenced cluster in
 * [from, end), allocating the blocks not yet placed; 1 when the table
 * had to grow, 0 when not, or a negative errno. */
static int write_refblocks(struct qcow2 *s, struct counts *c, struct new_reftable *t,
			   uint64_t from, uint64_t end, uint8_t *blk)
{
	uint64_t per_blk = 1ull << s->rb_bits, first_free = 0;
	int grown = 0, ret;

	for (uint64_t k = from; k < end; k++) {
		uint64_t g = k >> s->rb_bits, start = g << s->rb_bits;

		if (k >= c->nb || !c->refs[k])
			continue;
		if (g >= t->entries || !t->rt[g]) {
			int64_t cl;

			if (first_free < start)	/* not in a block already written */
				first_free = start;
			cl = alloc_counted(c, 1, &first_free);
			if (cl < 0)
				return (int)cl;
			if ((uint64_t)cl >= end)	/* its own refcount must be written */
				end = (uint64_t)cl + 1;
			if (g >= t->entries) {
				ret = reftable_grow(s, t, g);
				if (ret < 0)
					return ret;
				grown = 1;
			}
			t->rt[g] = (uint64_t)cl << s->cluster_bits;
		}
		memset(blk, 0, s->cluster_size);
		for (uint64_t i = 0; i < per_blk && start + i < c->nb; i++) {
			uint64_t v = c->refs[start + i];
			if (v)
				qcow2_rb_set(s, blk, i, v > s->refcount_max ? s->refcount_max : v);
		}
		if (bfile_pwrite(s->file, t->rt[g], blk, s->cluster_size) < 0)
			return -EIO;
		k = start + per_blk - 1;
	}
	return grown;
}

/* Write the new table and switch the header and the open state to it. */
static int install_reftable(struct qcow2 *s, struct new_reftable *t, uint64_t table_cl)
{
	uint64_t bytes = t->entries * 8, off = table_cl << s->cluster_bits;
	uint8_t *be = qcow2_alloc_aligned(bytes, false), h[12];
	int ret = 0;

	if (!be)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->entries; i++)
		st_be64(be + i * 8, t->rt[i]);
	if (bfile_pwrite(s->file, off, be, bytes) < 0 || qcow2_sync(s) < 0)
		ret = -EIO;
	free(be);
	if (ret < 0)
		return ret;
	st_be64(h, off);
	st_be32(h + 8, (uint32_t)(bytes / s->cluster_size));
	if (qcow2_write_header_fields(s, QH_RT_OFFSET, h, 12) < 0 || qcow2_sync(s) < 0)
		return -EIO;
	free(s->rt);
	s->rt = t->rt;
	t->rt = NULL;
	s->rt_offset = off;
	s->rt_clusters = (uint32_t)(bytes / s->cluster_size);
	s->rt_entries = t->entries;
	s->free_hint = 0;
	qcow2_rb_cache_drop(s);
	return 0;
}

/* Write a new refcount structure from the counted references (the old
 * structure included: it is freed as a leak afterwards), placed as qemu
 * places it: each refcount block in the first unreferenced cluster of its
 * group or after, the table in the first free run, the blocks that count
 * the table written again until the table stops growing. */
static int rebuild_refcounts(struct qcow2 *s, struct counts *c)
{
	struct new_reftable t = { NULL, 0 };
	uint64_t table_first_free = 0, table_cl = 0, table_n = 0;
	uint8_t *blk = qcow2_alloc_aligned(s->cluster_size, false);
	int grown, ret = 0;

	if (!blk)
		return -ENOMEM;
	qcow2_rb_cache_drop(s);		/* the blocks to come replace the cached ones */
	grown = write_refblocks(s, c, &t, 0, c->nb, blk);
	while (grown > 0) {
		int64_t cl;

		for (uint64_t i = 0; i < table_n; i++)	/* too small: give it back */
			c->refs[table_cl + i] = 0;
		table_n = t.entries * 8 / s->cluster_size;
		cl = alloc_counted(c, table_n, &table_first_free);
		if (cl < 0) {
			grown = (int)cl;
			break;
		}
		table_cl = (uint64_t)cl;
		grown = write_refblocks(s, c, &t, table_cl, table_cl + table_n, blk);
	}
	ret = grown < 0 ? grown : install_reftable(s, &t, table_cl);
	free(t.rt);
	free(blk);
	return ret;
}

/* COPIED flags of the active L1 and L2 tables. */
static int check_copied(struct qcow2 *s, struct block_check_result *res, FILE *report, bool fix)
{
	uint64_t cs = s->cluster_size, *tab = malloc(cs);
	unsigned w = s->l2_entry_bytes / 8;
	bool changed_any = false;
	int ret = 0;

	if (!tab)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->l1_size && ret == 0; i++) {
		uint64_t l2off = s->l1[i] & L1E_OFFSET_MASK, rc;
		bool dirty = false;
		if (!l2off || (l2off & (cs - 1)))
			continue;
		if (qcow2_get_refcount(s, l2off >> s->cluster_bits, &rc) < 0) {
			res->check_errors++;
			continue;
		}
		if ((rc == 1) != !!(s->l1[i] & QCOW_OFLAG_COPIED)) {
			rep(report, "%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%llx "
			    "refcount=%llu\n", fix ? "Repairing" : "ERROR", i,
			    (unsigned long long)s->l1[i], (unsigned long long)rc);
			if (fix) {
				s->l1[i] = rc == 1 ? s->l1[i] | QCOW_OFLAG_COPIED :
					   s->l1[i] & ~QCOW_OFLAG_COPIED;
				if (qcow2_write_l1_entry(s, i) == 0) {
					res->corruptions_fixed++;
					changed_any = true;
				} else {
					res->corruptions++;
				}
			} else {
				res->corruptions++;
			}
		}
		if (qcow2_read_l2(s, l2off, tab) < 0) {
			res->check_errors++;
			continue;
		}
		for (uint64_t j = 0; j < s->l2_entries; j++) {
			uint64_t e = tab[j * w], off = e & L2E_OFFSET_MASK;
			if (qcow2_entry_type(s, e) == QC_COMPRESSED || !off || (off & (cs - 1)))
				continue;
			if (qcow2_get_refcount(s, off >> s->cluster_bits, &rc) < 0) {
				res->check_errors++;
				continue;
			}
			if ((rc == 1) == !!(e & QCOW_OFLAG_COPIED))
				continue;
			rep(report, "%s OFLAG_COPIED data cluster: l2_entry=%llx refcount=%llu\n",
			    fix ? "Repairing" : "ERROR", (unsigned long long)e,
			    (unsigned long long)rc);
			if (fix) {
				tab[j * w] = rc == 1 ? e | QCOW_OFLAG_COPIED : e & ~QCOW_OFLAG_COPIED;
				dirty = true;
				res->corruptions_fixed++;
			} else {
				res->corruptions++;
			}
		}
		if (dirty) {
			ret = qcow2_write_l2(s, l2off, tab);
			changed_any = true;
		}
	}
	free(tab);
	if (changed_any)
		qcow2_l2_cache_drop(s);
	return ret;
}

/* A cluster a repair freed is discarded (reads as zeroes), as qemu does. */
static void discard_freed(struct qcow2 *s, uint64_t k)
{
	if (s->comp_next && (s->comp_next >> s->cluster_bits) == k)
		s->comp_next = 0;
	bfile_discard(s->file, k << s->cluster_bits, s->cluster_size);
}

/* Compare the stored refcounts with the counted references, as qemu's
 * compare_refcounts(): a mismatch is repaired when fix allows it, except a
 * stored refcount of 0 where references exist, which needs a rebuild of
 * the refcount structure (*rebuild). *end_cluster is one past the highest
 * cluster with a stored refcount or a reference (the image end offset). */
static void compare_refcounts(struct qcow2 *s, const struct counts *c, enum block_repair fix,
			      struct block_check_result *res, FILE *report, bool *rebuild,
			      uint64_t *end_cluster)
{
	uint64_t per_blk = 1ull << s->rb_bits, cs = s->cluster_size;

	*end_cluster = 0;
	for (uint64_t k = 0; k < c->nb; k++) {
		uint64_t rc, want = c->refs[k];
		bool leak, do_fix;

		int err = qcow2_get_refcount(s, k, &rc);

		if (err < 0) {
			rep(report, "Can't get refcount for cluster %llu: %s\n",
			    (unsigned long long)k, strerror(-err));
			res->check_errors++;
			continue;
		}
		if (rc || want)
			*end_cluster = k + 1;
		if (rc == want)
			continue;
		leak = rc > want;
		if (rc == 0)
			*rebuild = true;
		do_fix = rc && (leak ? (fix & BLOCK_REPAIR_LEAKS) : fix == BLOCK_REPAIR_ALL);
		rep(report, "%s cluster %llu refcount=%llu reference=%llu\n",
		    do_fix ? "Repairing" : leak ? "Leaked" : "ERROR", (unsigned long long)k,
		    (unsigned long long)rc, (unsigned long long)want);
		if (do_fix && qcow2_set_refcount(s, k, want) == 0) {
			if (!want)
				discard_freed(s, k);
			if (leak)
				res->leaks_fixed++;
			else
				res->corruptions_fixed++;
			continue;
		}
		if (leak)
			res->leaks++;
		else
			res->corruptions++;
	}
	/* refcounts stored for clusters past the end of the file */
	for (uint64_t g = 0; g < s->rt_entries; g++) {
		uint64_t off = s->rt[g] & REFT_OFFSET_MASK;
		if (!off || (off & (cs - 1)) || ((g + 1) * per_blk <= c->nb))
			continue;
		for (uint64_t k = g * per_blk > c->nb ? g * per_blk : c->nb;
		     k < (g + 1) * per_blk; k++) {
			uint64_t rc;
			if (qcow2_get_refcount(s, k, &rc) < 0 || !rc)
				continue;
			bool do_fix = fix & BLOCK_REPAIR_LEAKS;
			rep(report, "%s cluster %llu refcount=%llu reference=0\n",
			    do_fix ? "Repairing" : "Leaked", (unsigned long long)k,
			    (unsigned long long)rc);
			if (do_fix && qcow2_set_refcount(s, k, 0) == 0)
				res->leaks_fixed++;
			else
				res->leaks++;
		}
	}
}

/* Size the counters for the image file as it is now (it grew). */
static int counts_resize(struct qcow2 *s, struct counts *c)
{
	int64_t fsize = bfile_size(s->file);

	if (fsize < 0)
		return -EIO;
	return counts_grow(c, qc_align_up((uint64_t)fsize, s->cluster_size) >> s->cluster_bits);
}

/* -r all with clusters missing a refcount: write a new refcount structure
 * from the counted references (the old structure counted, so it shows up
 * as leaked and repaired next, as in qemu-img), recount, repair the leaks,
 * and account what the rebuild fixed as qemu does. */
static int rebuild_and_recount(struct qcow2 *s, struct counts *c,
			       struct block_check_result *res, FILE *report,
			       uint64_t *end_cluster)
{
	struct block_check_result old = *res, leak_res;
	uint64_t fresh_leaks;
	bool still_broken = false;
	int ret;

	rep(report, "Rebuilding refcount structure\n");
	ret = rebuild_refcounts(s, c);
	if (ret == 0)
		ret = counts_resize(s, c);
	if (ret < 0) {
		rep(report, "ERROR: refcount rebuild failed: %s\n", strerror(-ret));
		res->check_errors++;
		return ret;
	}
	res->corruptions = res->leaks = 0;
	ret = count_all(s, c, res, report);
	/* the walk's allocation statistics once, from the first count */
	res->allocated_clusters = old.allocated_clusters;
	res->fragmented_clusters = old.fragmented_clusters;
	res->compressed_clusters = old.compressed_clusters;
	if (ret < 0)
		return ret;
	memset(&leak_res, 0, sizeof(leak_res));
	compare_refcounts(s, c, BLOCK_REPAIR_LEAKS, &leak_res, report, &still_broken,
			  end_cluster);
	if (still_broken)
		rep(report, "ERROR rebuilt refcount structure is still broken\n");
	fresh_leaks = leak_res.leaks;
	if (res->corruptions < old.corruptions)
		res->corruptions_fixed += old.corruptions - res->corruptions;
	if (res->leaks < old.leaks)
		res->leaks_fixed += old.leaks - res->leaks;
	res->leaks += fresh_leaks;
	return 0;
}

/* qemu-img check semantics (qcow2_check_refcounts): count every
 * reference, report each mismatch (ERROR / Leaked), then repair: a
 * rebuild with -r all when refcounts are missing (refused with -r leaks:
 * -EIO), else the same comparison again with repairs ("Repairing").
 * Last, the COPIED flags of the active tables. */
int qcow2_check_fix(struct qcow2 *s, enum block_repair fix, struct block_check_result *res,
		    FILE *report)
{
	int64_t fsize = bfile_size(s->file);
	uint64_t cs = s->cluster_size, end_cluster = 0;
	struct block_check_result pre;
	struct counts c = { 0 };
	bool rebuild = false, can_write = !s->read_only;
	int ret;

	if (fsize < 0)
		return -EIO;
	if (!can_write)
		fix = BLOCK_REPAIR_NONE;
	else if (qcow2_commit(s) < 0)
		res->check_errors++;
	c.nb = qc_align_up((uint64_t)fsize, cs) >> s->cluster_bits;
	if (c.nb > CHECK_MAX_CLUSTERS) {
		rep(report, "ERROR: image file too large to check (%llu clusters)\n",
		    (unsigned long long)c.nb);
		res->check_errors++;
		return -EFBIG;
	}
	c.refs = calloc(c.nb ? c.nb : 1, sizeof(*c.refs));
	c.l2visits = calloc(c.nb ? c.nb : 1, sizeof(*c.l2visits));
	if (!c.refs || !c.l2visits) {
		ret = -ENOMEM;
		goto out;
	}
	res->total_clusters = qc_align_up(s->bs->size, cs) >> s->cluster_bits;
	ret = count_all(s, &c, res, report);
	if (ret < 0)
		goto out;
	pre = *res;
	compare_refcounts(s, &c, BLOCK_REPAIR_NONE, res, report, &rebuild, &end_cluster);
	if (rebuild && fix == BLOCK_REPAIR_ALL && res->check_errors) {
		/* a cluster the walk could not see would look free to the rebuild */
		rep(report, "ERROR cannot rebuild the refcount structure: the image could not "
		    "be read completely\n");
		ret = -EIO;
		goto out;
	} else if (rebuild && fix == BLOCK_REPAIR_ALL) {
		ret = rebuild_and_recount(s, &c, res, report, &end_cluster);
		if (ret < 0)
			goto out;
	} else if (fix && rebuild) {
		rep(report, "ERROR need to rebuild refcount structures\n");
		res->check_errors++;
		ret = -EIO;
		goto out;
	} else if (fix && (res->leaks || res->corruptions)) {
		*res = pre;
		compare_refcounts(s, &c, fix, res, report, &rebuild, &end_cluster);
	}
	res->image_end_offset = end_cluster * cs;
	ret = check_copied(s, res, report, fix == BLOCK_REPAIR_ALL);
	if (ret == 0 && fix && can_write)
		ret = qcow2_sync(s) < 0 ? -EIO : 0;
out:
	free(c.refs);
	free(c.l2visits);
	return ret;
}

int qcow2_check(struct bdev *bs, enum block_repair fix, struct block_check_result *res,
		FILE *report)
{
	struct qcow2 *s = bs->opaque;
	int ret = qcow2_check_fix(s, fix, res, report);

	if (ret < 0)
		return ret;
	if (fix != BLOCK_REPAIR_NONE && !s->read_only && !res->corruptions && !res->check_errors) {
		s->broken = false;
		if (s->incompat & (QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY)) {
			uint8_t b[8];
			s->incompat &= ~(QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY);
			s->dirty_set = false;
			st_be64(b, s->incompat);
			if (qcow2_write_header_fields(s, QH_INCOMPAT, b, 8) < 0 ||
			    qcow2_sync(s) < 0)
				return -EIO;
		}
	}
	return 0;
}
