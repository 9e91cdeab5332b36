/* qcow2 refcount structure rebuild (qemu-img check -r all when clusters
 * miss a refcount), as qemu's rebuild_refcount_structure: new refcount
 * blocks and table written from the references qcow2_check.c counted,
 * the header switched to them, then a recount whose leaks (the old
 * structure) are repaired and accounted as qemu does. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/qcow2_check.h"

/* The refcount table a rebuild writes, host-endian. */
struct new_reftable {
	uint64_t *rt;
	uint64_t entries;	/* whole clusters of entries */
};

/* qemu's alloc_clusters_imrt: first fit of n clusters without references
 * at or after *first_free (holes first, else at the end), counted as
 * used; *first_free moves to the first hole seen. */
static int64_t alloc_counted(struct walk *w, uint64_t n, uint64_t *first_free)
{
	uint64_t k = *first_free, run = 0;
	bool first_gap = true;
	int ret;

	for (; k < w->nb && run < n; k++) {
		if (w->refs[k]) {
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
		ret = qcow2_chk_grow(w, k + n - run);
		if (ret < 0)
			return ret;
	}
	k -= run;
	for (uint64_t i = 0; i < n; i++)
		w->refs[k + i] = 1;
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
 * had to grow, 0 when not, or a negative errno (reported). */
static int write_refblocks(struct walk *w, struct new_reftable *t, uint64_t from, uint64_t end,
			   uint8_t *blk)
{
	struct qcow2 *s = w->s;
	uint64_t per_blk = 1ull << s->rb_bits, first_free = 0;
	int grown = 0, ret;

	for (uint64_t k = from; k < end; k++) {
		uint64_t g = k >> s->rb_bits, start = g << s->rb_bits;

		if (k >= w->nb || !w->refs[k])
			continue;
		if (g >= t->entries || !t->rt[g]) {
			int64_t cl;

			if (first_free < start)	/* not in a block already written */
				first_free = start;
			cl = alloc_counted(w, 1, &first_free);
			if (cl < 0) {
				rep_prog(w, "ERROR allocating refblock", (int)cl);
				return (int)cl;
			}
			if ((uint64_t)cl >= end)	/* its own refcount must be written */
				end = (uint64_t)cl + 1;
			if (g >= t->entries) {
				ret = reftable_grow(s, t, g);
				if (ret < 0) {
					rep(w, "%s: ERROR allocating reftable memory\n",
					    program_invocation_short_name);
					return ret;
				}
				grown = 1;
			}
			t->rt[g] = (uint64_t)cl << s->cluster_bits;
		}
		memset(blk, 0, s->cluster_size);
		for (uint64_t i = 0; i < per_blk && start + i < w->nb; i++)
			if (w->refs[start + i])
				qcow2_rb_set(s, blk, i, w->refs[start + i]);
		ret = qcow2_chk_overlap(w, 0, t->rt[g], s->cluster_size);
		if (ret == 0 && bfile_pwrite(s->file, t->rt[g], blk, s->cluster_size) < 0)
			ret = -EIO;
		if (ret < 0) {
			rep_prog(w, "ERROR writing refblock", ret);
			return ret;
		}
		k = start + per_blk - 1;
	}
	return grown;
}

/* Write the new table and switch the header and the open state to it. */
static int install_reftable(struct walk *w, struct new_reftable *t, uint64_t table_cl)
{
	struct qcow2 *s = w->s;
	uint64_t bytes = t->entries * 8, off = table_cl << s->cluster_bits;
	uint8_t *be = qcow2_alloc_aligned(bytes, false), h[12];
	int ret;

	if (!be)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->entries; i++)
		st_be64(be + i * 8, t->rt[i]);
	ret = qcow2_chk_overlap(w, 0, off, bytes);
	if (ret == 0 && bfile_pwrite(s->file, off, be, bytes) < 0)
		ret = -EIO;
	free(be);
	if (ret < 0) {
		rep_prog(w, "ERROR writing reftable", ret);
		return ret;
	}
	st_be64(h, off);
	st_be32(h + 8, (uint32_t)(bytes / s->cluster_size));
	if (qcow2_sync(s) < 0 || qcow2_write_header_fields(s, QH_RT_OFFSET, h, 12) < 0 ||
	    qcow2_sync(s) < 0) {
		rep_prog(w, "ERROR setting reftable", -EIO);
		return -EIO;
	}
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

/* qemu's rebuild_refcount_structure: refcount blocks written from the
 * counted references (the old structure included: it is freed as a leak
 * afterwards), each in the first unreferenced cluster of its group or
 * after; then the table in the first free run, the blocks that count it
 * written again, a new place for the table while it grows (the places it
 * outgrew stay counted: leaks for later). */
static int rebuild_refcounts(struct walk *w)
{
	struct qcow2 *s = w->s;
	struct new_reftable t = { NULL, 0 };
	uint64_t table_cl = 0;
	uint8_t *blk = qcow2_alloc_aligned(s->cluster_size, false);
	int grown;

	if (!blk)
		return -ENOMEM;
	qcow2_rb_cache_drop(s);		/* the blocks to come replace the cached ones */
	grown = write_refblocks(w, &t, 0, w->nb, blk);
	while (grown > 0) {
		uint64_t first_free = 0, n = t.entries * 8 / s->cluster_size;
		int64_t cl = alloc_counted(w, n, &first_free);

		if (cl < 0) {
			rep_prog(w, "ERROR allocating reftable", (int)cl);
			grown = (int)cl;
			break;
		}
		table_cl = (uint64_t)cl;
		grown = write_refblocks(w, &t, table_cl, table_cl + n, blk);
	}
	if (grown == 0)
		grown = install_reftable(w, &t, table_cl);
	free(t.rt);
	free(blk);
	return grown;
}

/* -r all with clusters missing a refcount: a new refcount structure from
 * the counted references, a recount, the leaks it left (the old
 * structure) repaired, and what the rebuild fixed accounted as qemu does. */
int qcow2_chk_rebuild_and_recount(struct walk *w, uint64_t *highest)
{
	struct block_check_result *res = w->res, old = *res, saved;
	uint64_t fresh_leaks;
	int ret;

	rep(w, "Rebuilding refcount structure\n");
	ret = rebuild_refcounts(w);
	if (ret < 0) {
		res->check_errors++;
		return ret;
	}
	res->corruptions = res->leaks = 0;
	w->rebuild = false;
	ret = qcow2_chk_calculate_refcounts(w, BLOCK_REPAIR_NONE);
	/* the allocation statistics once, from the first count */
	res->allocated_clusters = old.allocated_clusters;
	res->fragmented_clusters = old.fragmented_clusters;
	res->compressed_clusters = old.compressed_clusters;
	if (ret < 0)
		return ret;
	saved = *res;
	memset(res, 0, sizeof(*res));
	qcow2_chk_compare_refcounts(w, BLOCK_REPAIR_LEAKS, highest);
	if (w->rebuild)
		rep(w, "ERROR rebuilt refcount structure is still broken\n");
	fresh_leaks = res->leaks;
	*res = saved;
	if (res->corruptions < old.corruptions)
		res->corruptions_fixed += old.corruptions - res->corruptions;
	if (res->leaks < old.leaks)
		res->leaks_fixed += old.leaks - res->leaks;
	res->leaks += fresh_leaks;
	return 0;
}
