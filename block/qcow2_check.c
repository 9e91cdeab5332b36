/* qcow2 consistency check and repair with qemu-img 7.2's semantics
 * (qcow2_check_refcounts): count every reference to every host cluster in
 * an in-memory refcount table (header, L1/L2 tables and data of the active
 * state and of each snapshot, snapshot table, refcount table, bitmaps,
 * refcount blocks) in qemu's order, with its entry checks and messages;
 * compare with the stored refcounts; fix leaks (-r leaks) and errors (-r
 * all: misaligned preallocated clusters zeroed, refcount blocks past the
 * end brought into the file); the entry points and the order of the
 * passes. A new refcount structure when refcounts are missing lives in
 * qcow2_rebuild.c, the final COPIED flag pass in qcow2_check_copied.c.
 * Writes of a repair pass qemu's metadata overlap check ("cached" mode).
 * An L2 table seen again from a snapshot is walked again only when its
 * first walk reported something (else its references are added at once);
 * with the snapshot L1 entries walked in all, this bounds the work on
 * hostile images. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/qcow2_check.h"

#define CHECK_MAX_CLUSTERS (1ull << 28)
#define CHECK_MAX_REWALK_ENTRIES (1ull << 27)	/* in L2 tables walked again */
#define CHECK_MAX_SNAP_L1 (64ull << 20)	/* snapshot L1 entries walked in all */
#define L1E_RESERVED_MASK 0x7f000000000001ffull
#define L2E_STD_RESERVED_MASK 0x3f000000000001feull
#define REFT_RESERVED_MASK 0x1ffull
#define L2_BITMAP_ALL_ALLOC 0xffffffffull
#define L2_BITMAP_ALL_ZEROES (0xffffffffull << 32)
#define MAX_SNAP_L1_ENTRIES (QCOW2_MAX_L1_BYTES / 8)

static bool bit_get(const uint64_t *b, uint64_t k)
{
	return (b[k / 64] >> (k % 64)) & 1;
}

static void bit_set(uint64_t *b, uint64_t k)
{
	b[k / 64] |= 1ull << (k % 64);
}

static int grow_array(void **p, uint64_t old_bytes, uint64_t new_bytes)
{
	void *n = realloc(*p, new_bytes ? new_bytes : 1);

	if (!n)
		return -ENOMEM;
	memset((uint8_t *)n + old_bytes, 0, new_bytes - old_bytes);
	*p = n;
	return 0;
}

/* Grow the counters to nb clusters, the new ones without references. */
int qcow2_chk_grow(struct walk *w, uint64_t nb)
{
	uint64_t ow = (w->nb + 63) / 64, nw = (nb + 63) / 64;

	if (nb <= w->nb)
		return 0;
	if (nb > CHECK_MAX_CLUSTERS)
		return -EFBIG;
	if (grow_array((void **)&w->refs, w->nb * 4, nb * 4) < 0 ||
	    grow_array((void **)&w->deferred, w->nb * 4, nb * 4) < 0 ||
	    grow_array((void **)&w->seen, ow * 8, nw * 8) < 0 ||
	    grow_array((void **)&w->clean, ow * 8, nw * 8) < 0)
		return -ENOMEM;
	w->nb = nb;
	return 0;
}

static int walk_update_file_len(struct walk *w)
{
	w->file_len = bfile_size(w->s->file);
	return w->file_len < 0 ? (int)w->file_len : 0;
}

/* qemu's qcow2_signal_corruption: one message per open image; an image
 * open for writing is marked corrupt, and qemu-img can use it no further:
 * the refcount updates still in its cache are never written. */
static void signal_corruption(struct walk *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void signal_corruption(struct walk *w, const char *fmt, ...)
{
	struct qcow2 *s = w->s;
	char msg[256];
	va_list ap;

	if (s->corruption_reported)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->corruption_reported = true;
	if (s->read_only) {
		rep(w, "qcow2: Image is corrupt: %s; further non-fatal corruption events "
		    "will be suppressed\n", msg);
		return;
	}
	rep(w, "qcow2: Marking image as corrupt: %s; further corruption events will be "
	    "suppressed\n", msg);
	s->broken = true;
	qcow2_rb_cache_drop(s);
	if (s->version >= 3) {
		uint8_t b[8];
		s->incompat |= QCOW2_INCOMPAT_CORRUPT;
		st_be64(b, s->incompat);
		if (qcow2_write_header_fields(s, QH_INCOMPAT, b, 8) == 0)
			bfile_flush(s->file);
	}
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && (a <= b ? b - a < alen : a - b < blen);
}

/* Which metadata (not in ign) [off, off+len) touches, by whole clusters,
 * as qemu's overlap check in its default "cached" mode; 0 when none. */
static int overlap_kind(struct qcow2 *s, int ign, uint64_t off, uint64_t len)
{
	uint64_t cs = s->cluster_size;
	int chk = ~ign & ~OL_INACTIVE_L2;

	if (!len)
		return 0;
	if ((chk & OL_HEADER) && off < cs)
		return OL_HEADER;
	len = qc_align_up((off & (cs - 1)) + len, cs);
	off &= ~(cs - 1);
	if ((chk & OL_ACTIVE_L1) && ranges_overlap(off, len, s->l1_offset, s->l1_size * 8ull))
		return OL_ACTIVE_L1;
	if ((chk & OL_REFTABLE) && ranges_overlap(off, len, s->rt_offset, s->rt_entries * 8))
		return OL_REFTABLE;
	if ((chk & OL_SNAP_TABLE) && s->nb_snapshots &&
	    ranges_overlap(off, len, s->snapshots_offset, s->snapshots_size))
		return OL_SNAP_TABLE;
	for (uint32_t i = 0; (chk & OL_INACTIVE_L1) && i < s->nb_snapshots; i++)
		if (ranges_overlap(off, len, s->snaps[i].l1_offset, s->snaps[i].l1_size * 8ull))
			return OL_INACTIVE_L1;
	for (uint32_t i = 0; (chk & OL_ACTIVE_L2) && i < s->l1_size; i++)
		if ((s->l1[i] & L1E_OFFSET_MASK) &&
		    ranges_overlap(off, len, s->l1[i] & L1E_OFFSET_MASK, cs))
			return OL_ACTIVE_L2;
	for (uint64_t i = 0; (chk & OL_REFBLOCK) && i < s->rt_entries; i++)
		if ((s->rt[i] & REFT_OFFSET_MASK) &&
		    ranges_overlap(off, len, s->rt[i] & REFT_OFFSET_MASK, cs))
			return OL_REFBLOCK;
	if ((chk & OL_BITMAP_DIR) && (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS) &&
	    ranges_overlap(off, len, s->bm_dir_offset, s->bm_dir_size))
		return OL_BITMAP_DIR;
	return 0;
}

/* qemu's pre-write overlap check: -EIO (image marked corrupt) on overlap. */
int qcow2_chk_overlap(struct walk *w, int ign, uint64_t off, uint64_t len)
{
	static const char *const names[] = {
		"qcow2_header", "active L1 table", "active L2 table", "refcount table",
		"refcount block", "snapshot table", "inactive L1 table", "inactive L2 table",
		"bitmap directory",
	};
	int kind = overlap_kind(w->s, ign, off, len);

	if (!kind)
		return 0;
	signal_corruption(w, "Preventing invalid write on metadata (overlaps with %s)",
			  names[__builtin_ctz((unsigned)kind)]);
	return -EIO;
}

/* The stored refcount of cluster k, as qemu reads it: a misaligned
 * refcount block is a corruption (-EIO), one past what a file can hold
 * reads as zeroes, or fails (-EIO) past qemu's largest request offset. */
int qcow2_chk_stored_refcount(struct walk *w, uint64_t k, uint64_t *rc)
{
	struct qcow2 *s = w->s;
	uint64_t g = k >> s->rb_bits, off;

	*rc = 0;
	if (g >= s->rt_entries)
		return 0;
	off = s->rt[g] & REFT_OFFSET_MASK;
	if (!off)
		return 0;
	if (off & (s->cluster_size - 1)) {
		signal_corruption(w, "Refblock offset %#llx unaligned (reftable index: %#llx)",
				  (unsigned long long)off, (unsigned long long)g);
		return -EIO;
	}
	if (off > (uint64_t)INT64_MAX - 2 * s->cluster_size)
		return -EIO;
	if (!qcow2_offset_sane(s, off, s->cluster_size))
		return 0;
	return qcow2_get_refcount(s, k, rc);
}

/* qemu's qcow2_inc_refcounts_imrt: count `times` references to every
 * cluster of [off, off+size); a range ending a cluster or more past the
 * end of the file is a corruption, a refcount at its maximum overflows. */
static int inc(struct walk *w, uint64_t off, uint64_t size, uint64_t times)
{
	struct qcow2 *s = w->s;
	uint64_t end = off + size;
	int ret;

	if (!size)
		return 0;
	if (end > (uint64_t)w->file_len && end - (uint64_t)w->file_len >= s->cluster_size) {
		rep(w, "ERROR: counting reference for region exceeding the end of the file by "
		    "one cluster or more: offset 0x%llx size 0x%llx\n", (unsigned long long)off,
		    (unsigned long long)size);
		w->res->corruptions++;
		return 0;
	}
	for (uint64_t k = off >> s->cluster_bits; k <= (end - 1) >> s->cluster_bits; k++) {
		uint64_t room;

		if (k >= w->nb) {
			ret = qcow2_chk_grow(w, k + 1);
			if (ret < 0) {
				w->res->check_errors++;
				return ret;
			}
		}
		room = w->refmax - w->refs[k];
		w->refs[k] += (uint32_t)(times < room ? times : room);
		for (uint64_t n = room; n < times; n++) {
			rep(w, "ERROR: overflow cluster offset=0x%llx\n",
			    (unsigned long long)(k << s->cluster_bits));
			rep(w, "Use qemu-img amend to increase the refcount entry width or qemu-img "
			    "convert to create a clean copy if the image cannot be opened for "
			    "writing\n");
			w->res->corruptions++;
		}
	}
	return 0;
}

/* -r all on a misaligned cluster holding no data: make the entry read as
 * zeroes, written at once (qemu's fix_l2_entry_by_zero). *overlap tells
 * that the write would have hit other metadata. */
static int fix_l2_entry_by_zero(struct walk *w, uint64_t l2_offset, uint64_t *tab, uint64_t i,
				bool active, bool *overlap)
{
	struct qcow2 *s = w->s;
	uint64_t eoff = l2_offset + i * s->l2_entry_bytes;
	int ret;

	if (s->extended_l2) {
		uint64_t bm = l2_get(s, tab, i, 1);
		bm = (bm | (bm << 32)) & L2_BITMAP_ALL_ZEROES;
		l2_put(s, tab, i, 1, bm);
		l2_put(s, tab, i, 0, 0);
	} else {
		l2_put(s, tab, i, 0, QCOW_OFLAG_ZERO);
	}
	ret = qcow2_chk_overlap(w, active ? OL_ACTIVE_L2 : OL_INACTIVE_L2, eoff, s->l2_entry_bytes);
	*overlap = ret < 0;
	if (ret < 0) {
		rep(w, "ERROR: Overlap check failed\n");
		goto fail;
	}
	if (bfile_pwrite(s->file, eoff, (uint8_t *)tab + i * s->l2_entry_bytes,
			 s->l2_entry_bytes) < 0 || bfile_flush(s->file) < 0) {
		ret = -EIO;
		rep(w, "ERROR: Failed to overwrite L2 table entry: %s\n", strerror(-ret));
		goto fail;
	}
	w->wrote_l2 = true;
	w->res->corruptions--;
	w->res->corruptions_fixed++;
	return 0;
fail:
	w->res->check_errors++;
	return ret;
}

/* A normal or preallocated zero cluster; 1 when the entry was zeroed (no
 * reference left to count), <0 to stop walking this table. */
static int check_allocated(struct walk *w, uint64_t l2_offset, uint64_t *tab, uint64_t i,
			   bool active, enum block_repair fix)
{
	struct qcow2 *s = w->s;
	uint64_t e = l2_get(s, tab, i, 0), bm = s->extended_l2 ? l2_get(s, tab, i, 1) : 0;
	uint64_t off = e & L2E_OFFSET_MASK;
	bool has_data, overlap;
	int ret;

	if ((bm >> 32) & bm) {
		w->res->corruptions++;
		rep(w, "ERROR offset=%llx: Allocated cluster has corrupted subcluster allocation "
		    "bitmap\n", (unsigned long long)off);
	}
	if (!(off & (s->cluster_size - 1)))
		return 0;
	w->res->corruptions++;
	has_data = s->extended_l2 ? (bm & L2_BITMAP_ALL_ALLOC) : !(e & QCOW_OFLAG_ZERO);
	if (has_data) {
		rep(w, "ERROR offset=%llx: Data cluster is not properly aligned; L2 entry "
		    "corrupted.\n", (unsigned long long)off);
		return 0;
	}
	rep(w, "%s offset=%llx: Preallocated cluster is not properly aligned; L2 entry "
	    "corrupted.\n", fix == BLOCK_REPAIR_ALL ? "Repairing" : "ERROR",
	    (unsigned long long)off);
	if (fix != BLOCK_REPAIR_ALL)
		return 0;
	ret = fix_l2_entry_by_zero(w, l2_offset, tab, i, active, &overlap);
	if (overlap)
		return ret;
	return ret == 0 ? 1 : 0;
}

/* A compressed cluster: 1 when it counts no reference. */
static int check_compressed(struct walk *w, uint64_t e, uint64_t bm, uint64_t i)
{
	if (e & QCOW_OFLAG_COPIED) {
		rep(w, "ERROR: coffset=0x%llx: copied flag must never be set for compressed "
		    "clusters\n",
		    (unsigned long long)(e & ((1ull << (62 - (w->s->cluster_bits - 8))) - 1)));
		w->res->corruptions++;
	}
	if (bm) {
		rep(w, "ERROR compressed cluster %llu with non-zero subcluster allocation bitmap, "
		    "entry=0x%llx\n", (unsigned long long)i,
		    (unsigned long long)(e & ~QCOW_OFLAG_COPIED));
		w->res->corruptions++;
		return 1;
	}
	return 0;
}

/* qemu's check_refcounts_l2: count the references of the L2 table at
 * l2_offset (`times` visits at once), check its entries, and with frag
 * (the active table) gather the allocation statistics. */
static int check_l2(struct walk *w, uint64_t l2_offset, bool frag, bool active,
		    enum block_repair fix, uint64_t times)
{
	struct qcow2 *s = w->s;
	struct block_check_result *res = w->res;
	uint64_t cs = s->cluster_size, next_contiguous = 0, *tab = w->l2buf;
	int ret;

	if (bfile_pread(s->file, l2_offset, tab, cs) < 0) {
		rep(w, "ERROR: I/O error in check_refcounts_l2\n");
		res->check_errors++;
		return -EIO;
	}
	for (uint64_t i = 0; i < s->l2_entries; i++) {
		uint64_t e = l2_get(s, tab, i, 0), bm = s->extended_l2 ? l2_get(s, tab, i, 1) : 0;
		enum ctype t = entry_type(s, e);

		if (t != CT_COMPRESSED && (e & L2E_STD_RESERVED_MASK)) {
			rep(w, "ERROR found l2 entry with reserved bits set: %llx\n",
			    (unsigned long long)e);
			res->corruptions++;
		}
		if (t == CT_COMPRESSED) {
			uint64_t coff, clen;
			if (check_compressed(w, e, bm, i))
				continue;
			qcow2_compressed_range(s, e, &coff, &clen);
			ret = inc(w, coff, clen, times);
			if (ret < 0)
				return ret;
			if (frag) {
				res->allocated_clusters++;
				res->compressed_clusters++;
				res->fragmented_clusters++;	/* sector granular I/O rereads */
			}
		} else if (t == CT_NORMAL || t == CT_ZERO_ALLOC) {
			uint64_t off = e & L2E_OFFSET_MASK;
			ret = check_allocated(w, l2_offset, tab, i, active, fix);
			if (ret < 0)
				return ret;
			if (ret > 0)
				continue;
			if (frag) {
				res->allocated_clusters++;
				if (next_contiguous && off != next_contiguous)
					res->fragmented_clusters++;
				next_contiguous = off + cs;
			}
			ret = inc(w, off, cs, times);
			if (ret < 0)
				return ret;
		} else if (t == CT_UNALLOCATED && (bm & L2_BITMAP_ALL_ALLOC)) {
			res->corruptions++;
			rep(w, "ERROR: Unallocated cluster has non-zero subcluster allocation map\n");
		}
	}
	return 0;
}

/* Walk the L2 table an L1 entry points to, or leave it for later: a table
 * walked before without a report is counted once more when seen from a
 * snapshot; past CHECK_MAX_REWALK_ENTRIES in further walks, every table
 * walked before is, and the others are not walked (a check error). */
static int visit_l2(struct walk *w, uint64_t l2_offset, bool frag, bool active,
		    enum block_repair fix)
{
	uint64_t k = l2_offset >> w->s->cluster_bits, events = w->events;
	bool tracked = !(l2_offset & (w->s->cluster_size - 1)) && k < w->nb;
	int ret;

	if (!tracked || bit_get(w->seen, k)) {
		if (tracked && !frag && bit_get(w->clean, k)) {
			w->deferred[k]++;
			return 0;
		}
		if (w->rewalk_entries >= CHECK_MAX_REWALK_ENTRIES) {
			if (tracked) {
				w->deferred[k]++;
				return 0;
			}
			if (!w->rewalks_reported)
				rep(w, "ERROR: too many references to L2 tables to check them all\n");
			w->rewalks_reported = true;
			w->res->check_errors++;
			return 0;
		}
		w->rewalk_entries += w->s->l2_entries;
	}
	ret = check_l2(w, l2_offset, frag, active, fix, 1);
	if (tracked && k < w->nb) {
		bit_set(w->seen, k);
		if (w->events == events)
			bit_set(w->clean, k);
	}
	return ret;
}

/* qemu's check_refcounts_l1 (the table read from the file). */
static int check_l1(struct walk *w, uint64_t l1_offset, uint32_t l1_size, bool frag,
		    bool active, enum block_repair fix)
{
	struct qcow2 *s = w->s;
	uint64_t *l1;
	int ret;

	if (!l1_size)
		return 0;
	ret = inc(w, l1_offset, l1_size * 8ull, 1);
	if (ret < 0)
		return ret;
	l1 = malloc(l1_size * 8ull);
	if (!l1) {
		w->res->check_errors++;
		return -ENOMEM;
	}
	if (bfile_pread(s->file, l1_offset, l1, l1_size * 8ull) < 0) {
		rep(w, "ERROR: I/O error in check_refcounts_l1\n");
		w->res->check_errors++;
		free(l1);
		return -EIO;
	}
	for (uint32_t i = 0; i < l1_size && ret == 0; i++) {
		uint64_t e = ld_be64((uint8_t *)&l1[i]), l2_offset = e & L1E_OFFSET_MASK;
		if (!e)
			continue;
		if (e & L1E_RESERVED_MASK) {
			rep(w, "ERROR found L1 entry with reserved bits set: %llx\n",
			    (unsigned long long)e);
			w->res->corruptions++;
		}
		ret = inc(w, l2_offset, s->cluster_size, 1);
		if (ret < 0)
			break;
		if (l2_offset & (s->cluster_size - 1)) {
			rep(w, "ERROR l2_offset=%llx: Table is not cluster aligned; L1 entry "
			    "corrupted\n", (unsigned long long)l2_offset);
			w->res->corruptions++;
		}
		ret = visit_l2(w, l2_offset, frag, active, fix);
	}
	free(l1);
	return ret;
}

/* The references of the L2 tables left for later, counted at once. */
static int count_deferred(struct walk *w)
{
	for (uint64_t k = 0; k < w->nb; k++) {
		uint32_t n = w->deferred[k];
		int ret;
		if (!n)
			continue;
		w->deferred[k] = 0;
		ret = check_l2(w, k << w->s->cluster_bits, false, false, BLOCK_REPAIR_NONE, n);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void bm_ref(void *opaque, uint64_t off, uint64_t len)
{
	inc(opaque, off, len, 1);
}

/* The clusters of kept persistent bitmaps (directory, tables, data). */
static void count_bitmaps(struct walk *w)
{
	uint64_t bad = 0;

	if (qcow2_bitmaps_count(w->s, bm_ref, w, &bad) < 0) {
		rep(w, "ERROR cannot read the bitmap directory or a bitmap table\n");
		w->res->check_errors++;
	}
	if (bad) {
		rep(w, "ERROR %llu bitmap table entries are malformed\n", (unsigned long long)bad);
		w->res->corruptions += bad;
	}
}

/* -r all on a refcount block past the end of the file: make the file
 * long enough to hold it (qemu's repair), 0 or a negative errno. A file
 * too long to count (CHECK_MAX_CLUSTERS) gets its old size back. */
static int refblock_into_file(struct walk *w, uint64_t off)
{
	struct qcow2 *s = w->s;
	uint64_t cs = s->cluster_size, old_len = (uint64_t)w->file_len;
	int ret;

	if (off > (uint64_t)INT64_MAX - cs)
		return -EINVAL;
	ret = bfile_truncate(s->file, off + cs);
	if (ret < 0) {
		rep_prog(w, "Could not resize file", ret);
		return ret;
	}
	if (((off + cs + cs - 1) >> s->cluster_bits) > CHECK_MAX_CLUSTERS) {
		bfile_truncate(s->file, old_len);
		return -EFBIG;
	}
	ret = walk_update_file_len(w);
	if (ret < 0)
		return ret;
	ret = qcow2_chk_grow(w, qc_align_up((uint64_t)w->file_len, cs) >> s->cluster_bits);
	if (ret < 0) {
		w->res->check_errors++;
		return ret;
	}
	return (off >> s->cluster_bits) < w->nb ? 0 : -EINVAL;
}

/* qemu's check_refblocks: every refcount table entry, and the block it
 * points to counted (a block shared with anything else needs a rebuild). */
static int check_refblocks(struct walk *w, enum block_repair fix)
{
	struct qcow2 *s = w->s;
	int ret;

	for (uint64_t i = 0; i < s->rt_entries; i++) {
		uint64_t off = s->rt[i] & REFT_OFFSET_MASK, k = off >> s->cluster_bits;

		if (s->rt[i] & REFT_RESERVED_MASK) {
			rep(w, "ERROR refcount table entry %llu has reserved bits set\n",
			    (unsigned long long)i);
			w->res->corruptions++;
			w->rebuild = true;
			continue;
		}
		if (off & (s->cluster_size - 1)) {
			rep(w, "ERROR refcount block %llu is not cluster aligned; refcount table "
			    "entry corrupted\n", (unsigned long long)i);
			w->res->corruptions++;
			w->rebuild = true;
			continue;
		}
		if (k >= w->nb) {
			w->res->corruptions++;
			rep(w, "%s refcount block %llu is outside image\n",
			    fix == BLOCK_REPAIR_ALL ? "Repairing" : "ERROR", (unsigned long long)i);
			if (fix != BLOCK_REPAIR_ALL)
				continue;
			ret = refblock_into_file(w, off);
			if (ret == -ENOMEM)
				return ret;
			if (ret < 0) {
				w->rebuild = true;
				rep(w, "ERROR could not resize image: %s\n", strerror(-ret));
				continue;
			}
			w->res->corruptions--;
			w->res->corruptions_fixed++;
			ret = inc(w, off, s->cluster_size, 1);
			if (ret < 0)
				return ret;
			continue;
		}
		if (!off)
			continue;
		ret = inc(w, off, s->cluster_size, 1);
		if (ret < 0)
			return ret;
		if (w->refs[k] != 1) {
			rep(w, "ERROR refcount block %llu refcount=%llu\n", (unsigned long long)i,
			    (unsigned long long)w->refs[k]);
			w->res->corruptions++;
			w->rebuild = true;
		}
	}
	return 0;
}

/* qemu's calculate_refcounts: every reference, in its order. */
int qcow2_chk_calculate_refcounts(struct walk *w, enum block_repair fix)
{
	struct qcow2 *s = w->s;
	uint64_t words = (w->nb + 63) / 64, snap_l1_walked = 0;
	int ret;

	memset(w->refs, 0, w->nb * sizeof(*w->refs));
	memset(w->deferred, 0, w->nb * sizeof(*w->deferred));
	memset(w->seen, 0, words * 8);
	memset(w->clean, 0, words * 8);
	w->rewalk_entries = 0;
	w->rewalks_reported = false;
	ret = walk_update_file_len(w);
	if (ret < 0) {
		w->res->check_errors++;
		return ret;
	}
	ret = inc(w, 0, s->cluster_size, 1);
	if (ret == 0)
		ret = check_l1(w, s->l1_offset, s->l1_size, true, true, fix);
	for (uint32_t i = 0; ret == 0 && i < s->nb_snapshots; i++) {
		struct qcow2_snapshot *sn = &s->snaps[i];
		if (sn->l1_offset & (s->cluster_size - 1)) {
			rep(w, "ERROR snapshot %s (%s) l1_offset=%#llx: L1 table is not cluster "
			    "aligned; snapshot table entry corrupted\n", sn->id, sn->name,
			    (unsigned long long)sn->l1_offset);
			w->res->corruptions++;
			continue;
		}
		if (sn->l1_size > MAX_SNAP_L1_ENTRIES) {
			rep(w, "ERROR snapshot %s (%s) l1_size=%#x: L1 table is too large; snapshot "
			    "table entry corrupted\n", sn->id, sn->name, sn->l1_size);
			w->res->corruptions++;
			continue;
		}
		snap_l1_walked += sn->l1_size;
		if (snap_l1_walked > CHECK_MAX_SNAP_L1) {
			rep(w, "ERROR: snapshot L1 tables too large to check\n");
			w->res->check_errors++;
			break;
		}
		ret = check_l1(w, sn->l1_offset, sn->l1_size, false, false, fix);
	}
	if (ret == 0)
		ret = count_deferred(w);
	if (ret == 0 && s->nb_snapshots)
		ret = inc(w, s->snapshots_offset, s->snapshots_size, 1);
	if (ret == 0)
		ret = inc(w, s->rt_offset, s->rt_entries * 8, 1);
	if (ret < 0)
		return ret;
	count_bitmaps(w);
	return check_refblocks(w, fix);
}

/* A cluster a repair freed is discarded (reads as zeroes), as qemu does. */
static void discard_freed(struct qcow2 *s, uint64_t k)
{
	if (s->comp_next && (s->comp_next >> s->cluster_bits) == k)
		s->comp_next = 0;
	bfile_discard(s->file, k << s->cluster_bits, s->cluster_size);
}

/* qemu's compare_refcounts: each stored refcount against the references
 * counted; a mismatch is repaired when fix allows it, except a stored 0
 * where references exist, which needs a rebuild. *highest is the last
 * cluster with a refcount or a reference. Once the check has marked the
 * image corrupt, qemu's refcount updates never leave its cache: counted
 * as repaired, not written. */
void qcow2_chk_compare_refcounts(struct walk *w, enum block_repair fix, uint64_t *highest)
{
	struct qcow2 *s = w->s;
	struct block_check_result *res = w->res;

	*highest = 0;
	for (uint64_t k = 0; k < w->nb; k++) {
		uint64_t rc, want = w->refs[k], *fixed = NULL;
		int err = qcow2_chk_stored_refcount(w, k, &rc);

		if (err < 0) {
			rep(w, "Can't get refcount for cluster %llu: %s\n", (unsigned long long)k,
			    strerror(-err));
			res->check_errors++;
			continue;
		}
		if (rc || want)
			*highest = k;
		if (rc == want)
			continue;
		if (rc == 0)
			w->rebuild = true;
		else if (rc > want && (fix & BLOCK_REPAIR_LEAKS))
			fixed = &res->leaks_fixed;
		else if (rc < want && fix == BLOCK_REPAIR_ALL)
			fixed = &res->corruptions_fixed;
		rep(w, "%s cluster %llu refcount=%llu reference=%llu\n",
		    fixed ? "Repairing" : rc < want ? "ERROR" : "Leaked", (unsigned long long)k,
		    (unsigned long long)rc, (unsigned long long)want);
		if (fixed && (s->broken || qcow2_set_refcount(s, k, want) == 0)) {
			if (!want)
				discard_freed(s, k);
			(*fixed)++;
			continue;
		}
		if (rc < want)
			res->corruptions++;
		else
			res->leaks++;
	}
}

static int walk_init(struct walk *w, struct qcow2 *s, struct block_check_result *res,
		     FILE *report, uint64_t nb)
{
	memset(w, 0, sizeof(*w));
	w->s = s;
	w->res = res;
	w->report = report;
	w->refmax = s->refcount_max < UINT32_MAX ? s->refcount_max : UINT32_MAX;
	w->l2buf = qcow2_alloc_aligned(s->cluster_size, false);
	if (!w->l2buf || qcow2_chk_grow(w, nb ? nb : 1) < 0)
		return -ENOMEM;
	return 0;
}

static void walk_fini(struct walk *w)
{
	if (w->wrote_l2)
		qcow2_l2_cache_drop(w->s);
	free(w->refs);
	free(w->deferred);
	free(w->seen);
	free(w->clean);
	free(w->l2buf);
}

/* After the count: a rebuild with -r all when refcounts are missing
 * (refused otherwise with a fix: -EIO), else the comparison again with
 * repairs. */
static int repair(struct walk *w, enum block_repair fix, const struct block_check_result *pre,
		  uint64_t *highest)
{
	if (w->rebuild && fix == BLOCK_REPAIR_ALL)
		return qcow2_chk_rebuild_and_recount(w, highest);
	if (!fix)
		return 0;
	if (w->rebuild) {
		rep(w, "ERROR need to rebuild refcount structures\n");
		w->res->check_errors++;
		return -EIO;
	}
	if (w->res->leaks || w->res->corruptions) {
		*w->res = *pre;
		qcow2_chk_compare_refcounts(w, fix, highest);
	}
	return 0;
}

/* qemu-img check semantics (qcow2_check_refcounts): count every
 * reference, report each mismatch (ERROR / Leaked), repair, then the
 * COPIED flags of the active tables. */
int qcow2_check_fix(struct qcow2 *s, enum block_repair fix, struct block_check_result *res,
		    FILE *report)
{
	int64_t fsize = bfile_size(s->file);
	uint64_t cs = s->cluster_size, nb, highest = 0;
	struct block_check_result pre;
	struct walk w;
	int ret;

	if (fsize < 0) {
		res->check_errors++;
		return -EIO;
	}
	if (s->read_only)
		fix = BLOCK_REPAIR_NONE;
	else if (qcow2_commit(s) < 0)
		res->check_errors++;
	nb = qc_align_up((uint64_t)fsize, cs) >> s->cluster_bits;
	if (nb > CHECK_MAX_CLUSTERS) {
		if (report)
			fprintf(report, "ERROR: image file too large to check (%llu clusters)\n",
				(unsigned long long)nb);
		res->check_errors++;
		return -EFBIG;
	}
	res->total_clusters = qc_align_up(s->bs->size, cs) >> s->cluster_bits;
	ret = walk_init(&w, s, res, report, nb);
	if (ret < 0) {
		res->check_errors++;
		goto out;
	}
	ret = qcow2_chk_calculate_refcounts(&w, fix);
	if (ret < 0)
		goto out;
	pre = *res;
	qcow2_chk_compare_refcounts(&w, BLOCK_REPAIR_NONE, &highest);
	ret = repair(&w, fix, &pre, &highest);
	if (ret < 0)
		goto out;
	ret = qcow2_chk_copied(&w, fix);
	if (ret < 0)
		goto out;
	res->image_end_offset = (highest + 1) * cs;
	if (fix && qcow2_sync(s) < 0)
		ret = -EIO;
out:
	walk_fini(&w);
	return ret;
}

int qcow2_check(struct bdev *bs, enum block_repair fix, struct block_check_result *res,
		FILE *report)
{
	struct qcow2 *s = bs->opaque;
	int ret;

	if (s->broken)		/* marked corrupt while open: qemu drops the driver */
		return -ENOMEDIUM;
	ret = qcow2_check_fix(s, fix, res, report);
	if (ret < 0)
		return ret;
	if (fix != BLOCK_REPAIR_NONE && !s->read_only && !res->corruptions && !res->check_errors) {
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
