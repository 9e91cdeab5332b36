/* qcow2 internals shared by block/qcow2*.c: the on-disk constants, the
 * open-image state (header fields, L1 table, L2 cache, refcount table and
 * block cache, snapshot table) and the functions the parts call on each
 * other.
 * Ordering (crash consistency): refcount updates are made in the cached
 * refcount blocks, which are written back (dirty byte range, widened to
 * the file's O_DIRECT blocks) before every ordering flush, by
 * qcow2_flush_barrier() and qcow2_sync(), and on eviction: an increment
 * is thus stable before any structure that references the cluster, and a
 * decrement is only ever late (a leak). L2 entries and L1 entries of new
 * tables are kept dirty in the cache and written by qcow2_commit() (at
 * flush, before any on-disk metadata walk, on eviction, or when too much
 * is pending) as: refcount blocks, flush, L2 tables, flush, L1 entries,
 * flush, then the refcount decrements of replaced clusters. A crash at
 * any point leaves leaks at worst. Flushes between steps are skipped with
 * lazy refcounts (dirty bit set; refcounts rebuilt on the next read-write
 * open). Every flush of the image file goes through qcow2_sync() (or a
 * barrier) so no refcount update stays behind in memory, and every write
 * of L2/L1/refcount-table entries or header fields first writes back the
 * refcount blocks, so updates still reach the file in program order. */
#ifndef BLOCK_QCOW2_H
#define BLOCK_QCOW2_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "block/endian.h"
#include "block/format.h"

#define QCOW2_MAGIC		0x514649fbu	/* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN	72
#define QCOW2_V3_HEADER_LEN	104
#define QCOW2_ZSTD_HEADER_LEN	112	/* with the compression_type byte, as QEMU */

/* compression_type header field (byte 104) */
#define QCOW2_COMPRESSION_ZLIB	0
#define QCOW2_COMPRESSION_ZSTD	1
#define QCOW2_MIN_CLUSTER_BITS	9
#define QCOW2_MAX_CLUSTER_BITS	21
#define QCOW2_MAX_L1_BYTES	(32u << 20)	/* as QEMU */
#define QCOW2_MAX_RT_BYTES	(8u << 20)	/* refcount table, as QEMU */
#define QCOW2_MAX_SNAPSHOTS	65536
#define QCOW2_MAX_SN_TABLE	(64u << 20)
#define QCOW2_MAX_BACKING_NAME	1023

/* L1/L2 entry bits */
#define QCOW_OFLAG_COPIED	(1ull << 63)
#define QCOW_OFLAG_COMPRESSED	(1ull << 62)
#define QCOW_OFLAG_ZERO		(1ull << 0)
#define L1E_OFFSET_MASK		0x00fffffffffffe00ull
#define L2E_OFFSET_MASK		0x00fffffffffffe00ull
#define REFT_OFFSET_MASK	0xfffffffffffffe00ull

/* Feature bits */
#define QCOW2_INCOMPAT_DIRTY		(1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT		(1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE	(1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION	(1ull << 3)
#define QCOW2_INCOMPAT_EXTL2		(1ull << 4)
#define QCOW2_INCOMPAT_KNOWN		0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS	(1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS		(1ull << 0)

/* Header extension types */
#define QCOW2_EXT_END		0x00000000u
#define QCOW2_EXT_BACKING_FMT	0xe2792acau
#define QCOW2_EXT_FEATURES	0x6803f857u
#define QCOW2_EXT_BITMAPS	0x23852875u
#define QCOW2_EXT_CRYPTO	0x0537be77u
#define QCOW2_EXT_DATA_FILE	0x44415441u

/* Header field byte offsets (for small in-place header updates) */
#define QH_SIZE			24
#define QH_L1_SIZE		36	/* l1_size u32, then l1_table_offset u64 */
#define QH_RT_OFFSET		48	/* refcount_table_offset u64, clusters u32 */
#define QH_NB_SNAPSHOTS		60	/* nb_snapshots u32, then snapshots_offset u64 */
#define QH_INCOMPAT		72
#define QH_COMPAT		80
#define QH_AUTOCLEAR		88

/* Kind of a guest cluster (or subcluster with extended L2). */
enum qcow2_ctype {
	QC_UNALLOCATED,		/* reads from the backing file (or zeroes) */
	QC_ZERO,		/* reads as zeroes; host_offset may be preallocated */
	QC_NORMAL,		/* data at host_offset */
	QC_COMPRESSED,
};

struct qcow2_snapshot {
	uint64_t l1_offset;
	uint32_t l1_size;
	char *id;
	char *name;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t vm_state_size;
	uint64_t disk_size;
	uint64_t icount;
	uint32_t extra_size;		/* as found (>= 16 for v3) */
	uint8_t *extra;			/* raw extra data (preserved) */
};

struct qcow2_rb_cache_ent {
	uint64_t offset;		/* 0 = empty */
	uint8_t *data;
	uint64_t lru;
	uint64_t dirty_lo, dirty_hi;	/* bytes not yet written, lo == hi: clean */
};

/* Buffer alignment for metadata I/O (O_DIRECT needs at most 4096). */
#define QCOW2_BUF_ALIGN 4096

#define QCOW2_RB_CACHE 32

struct qcow2_grave {			/* memory map() may still read */
	void *ptr;
	struct qcow2_grave *next;
};

struct qcow2 {
	struct bdev *bs;
	struct bfile *file;
	const char *fname;

	/* header */
	uint32_t version;
	uint32_t header_length;
	uint8_t *header_raw;		/* header_length bytes as read */
	unsigned cluster_bits;
	uint64_t cluster_size;
	uint64_t incompat, compat, autoclear;
	uint64_t backing_offset;
	uint32_t backing_size;
	uint8_t compression_type;	/* QCOW2_COMPRESSION_* */

	/* L1 / L2 */
	bool extended_l2;
	unsigned l2_entry_bytes;	/* 8 or 16 */
	unsigned l2_bits;		/* log2(entries per L2 table) */
	uint64_t l2_entries;
	unsigned sc_bits;		/* subcluster bits (== cluster_bits without ext L2) */
	uint64_t l1_offset;
	uint32_t l1_size;
	uint64_t *l1;			/* host-endian */

	/* L2 cache: one slot per L1 index, tables host-endian, entries in
	 * the on-disk layout (for ext L2: pairs). */
	uint64_t **l2_tab;		/* array of l2_cap pointers */
	uint32_t l2_cap;
	uint64_t l2_cached, l2_cache_max;	/* in tables */
	bool map_ok;			/* cache never evicts: map() may read it */
	/* Deferred metadata (written by qcow2_commit at flush time, after the
	 * data and refcounts they reference are stable): dirty cached L2
	 * tables, dirty L1 entries, and references to drop once the new
	 * entries are stable. */
	uint8_t *l2_dirty;		/* per L1 index */
	uint8_t *l1_dirty;		/* per L1 index */
	uint32_t n_l2_dirty, n_l1_dirty;
	uint64_t *pending_free;		/* L2-entry-like values */
	uint32_t n_pending, cap_pending;
	uint32_t evict_hand;
	struct qcow2_grave *graves;

	/* refcounts */
	unsigned refcount_order, refcount_bits;
	uint64_t refcount_max;
	unsigned rb_bits;		/* log2(refcount entries per block) */
	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint64_t rt_entries;
	uint64_t *rt;			/* host-endian */
	struct qcow2_rb_cache_ent rbc[QCOW2_RB_CACHE];
	uint64_t rbc_tick;
	uint64_t free_hint;		/* cluster index */
	/* Fresh clusters past the end of the file get only their data
	 * written (the rest reads as zeroes): the file is extended to this
	 * offset before the next ordering flush (qcow2_flush_barrier). */
	uint64_t file_end_needed;

	/* snapshots */
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t snapshots_size;	/* bytes used by the table */
	struct qcow2_snapshot *snaps;

	/* compressed data: cache of the last decompressed cluster and the
	 * partly-used cluster compressed writes append to */
	uint8_t *cbuf;			/* decompressed cluster */
	uint64_t cbuf_key;		/* L2 entry it was decoded from, 0 = none */
	uint64_t comp_next;		/* next free byte for compressed data, 0 = none */

	/* unknown header extensions preserved across header rewrites */
	uint8_t *ext_keep;
	uint32_t ext_keep_len;

	/* persistent dirty bitmaps (qcow2_bitmap.c) */
	bool bm_ext_seen, bm_ext_len_ok;
	uint32_t bm_nb, bm_ext_reserved;
	uint64_t bm_dir_size, bm_dir_offset;
	bool bitmaps;			/* a valid extension, kept (autoclear bit set) */
	bool bitmaps_in_use;		/* marked in-use in this session */

	/* Block status probes the file's holes under data clusters when the
	 * image looks metadata-preallocated (QEMU's guess): 0 not yet
	 * guessed, 1 no, 2 yes. */
	uint8_t meta_prealloc;

	bool lazy;			/* lazy refcounts active */
	bool dirty_set;			/* we set the dirty bit in this session */
	bool broken;			/* corruption found: no more writes */
	bool corruption_reported;	/* one message per open image */
	bool read_only;
};

/* qcow2.c */
int qcow2_write_header_fields(struct qcow2 *s, unsigned off, const void *buf, size_t len);
int qcow2_rewrite_header(struct qcow2 *s, const char *backing, const char *backing_fmt,
			 char *err, size_t errlen);
int qcow2_mark_dirty(struct qcow2 *s);
int qcow2_mark_clean(struct qcow2 *s);
void qcow2_signal_corruption(struct qcow2 *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Ordering flush: writes back the refcount blocks, then flushes (skipped
 * when lazy). */
int qcow2_flush_barrier(struct qcow2 *s);
/* Refcount blocks written back and the file flushed (every flush of an
 * open image). */
int qcow2_sync(struct qcow2 *s);
/* len bytes aligned for O_DIRECT (QCOW2_BUF_ALIGN), zeroed on request. */
void *qcow2_alloc_aligned(size_t len, bool zero);
/* The part [*lo, *hi) of a metadata structure at host offset base, room
 * bytes long, to write so that its bytes [off, off+len) reach an O_DIRECT
 * file in whole blocks without a read-modify-write: [off, off+len) widened
 * to the file's alignment when that stays inside the structure. */
void qcow2_meta_span(const struct qcow2 *s, uint64_t base, uint64_t room, uint64_t off,
		     uint64_t len, uint64_t *lo, uint64_t *hi);
/* Write entries [first, first+count) of a host-endian table of nent u64
 * entries at host offset base (L1, refcount table) in whole blocks of the
 * file's alignment (the table's clusters past nent are written as zero
 * padding); *written_end (optional) is the first entry past the write. */
int qcow2_write_u64_entries(struct qcow2 *s, uint64_t base, const uint64_t *tab, uint64_t nent,
			    uint64_t first, uint64_t count, uint64_t *written_end);
int qcow2_grow_l1(struct qcow2 *s, uint64_t min_size);
uint64_t qcow2_l1_needed(const struct qcow2 *s, uint64_t size);
bool qcow2_offset_sane(const struct qcow2 *s, uint64_t off, uint64_t len);

/* qcow2_open.c */
int qcow2_open(struct bdev *bs, char *err, size_t errlen);
void qcow2_close(struct bdev *bs);

/* qcow2_refcount.c */
int qcow2_refcount_init(struct qcow2 *s, char *err, size_t errlen);
void qcow2_refcount_fini(struct qcow2 *s);
/* Forget the cached refcount blocks, dirty ones included (after a
 * rebuild replaced them). */
void qcow2_rb_cache_drop(struct qcow2 *s);
/* Write the dirty parts of the cached refcount blocks. */
int qcow2_rb_writeback(struct qcow2 *s);
int qcow2_get_refcount(struct qcow2 *s, uint64_t cluster, uint64_t *out);
/* Add addend to the refcount of every cluster touching [off, off+len). */
int qcow2_update_refcount(struct qcow2 *s, uint64_t off, uint64_t len, int64_t addend);
/* Set the refcount of one cluster (repair). */
int qcow2_set_refcount(struct qcow2 *s, uint64_t cluster, uint64_t value);
/* Allocate n contiguous clusters (refcount 1); returns the host offset
 * or a negative errno. */
int64_t qcow2_alloc_clusters(struct qcow2 *s, uint64_t n);
/* Drop one reference to the clusters of [off, off+len); punch out clusters
 * whose refcount reaches 0 when discard is true. */
int qcow2_free_clusters(struct qcow2 *s, uint64_t off, uint64_t len, bool discard);
/* Drop the reference an L2 entry holds (normal, preallocated zero or
 * compressed). */
int qcow2_free_l2_entry(struct qcow2 *s, uint64_t entry, bool discard);
uint64_t qcow2_rb_get(const struct qcow2 *s, const uint8_t *blk, uint64_t idx);
void qcow2_rb_set(const struct qcow2 *s, uint8_t *blk, uint64_t idx, uint64_t v);

/* qcow2_cluster.c */
int qcow2_l2_cache_init(struct qcow2 *s);
/* Write deferred L2/L1 updates in order and drop pending references. */
int qcow2_commit(struct qcow2 *s);
int qcow2_dirty_resize(struct qcow2 *s, uint32_t new_size);
void qcow2_l2_cache_fini(struct qcow2 *s);
void qcow2_l2_cache_drop(struct qcow2 *s);
void qcow2_grave_add(struct qcow2 *s, void *ptr);
int qcow2_write_l1_entry(struct qcow2 *s, uint32_t idx);
int qcow2_read_l2(struct qcow2 *s, uint64_t l2_off, uint64_t *tab);
int qcow2_write_l2(struct qcow2 *s, uint64_t l2_off, const uint64_t *tab);
void qcow2_compressed_range(const struct qcow2 *s, uint64_t entry, uint64_t *off, uint64_t *len);
enum qcow2_ctype qcow2_entry_type(const struct qcow2 *s, uint64_t entry);
/* The cached L2 table of an L1 index, or NULL (with 0) when unallocated. */
int qcow2_get_l2(struct qcow2 *s, uint32_t idx, uint64_t **out);
/* The L2 table of idx, allocated and owned by the active L1 alone
 * (COPIED), ready for entry updates. */
int qcow2_get_l2_for_write(struct qcow2 *s, uint32_t idx, uint64_t **out, uint64_t *l2_off);
/* Cached L2 table idx changed: written by the next commit. */
void qcow2_mark_l2_dirty(struct qcow2 *s, uint32_t idx);
/* Drop the reference of a replaced L2 entry once the commit made the new
 * entries stable. */
int qcow2_defer_free(struct qcow2 *s, uint64_t entry);
/* Bound the deferred work so a commit stays short. */
int qcow2_maybe_commit(struct qcow2 *s);
/* Is the L2 entry usable for an in-place write? */
bool qcow2_entry_writable(struct qcow2 *s, uint64_t e);
int qcow2_preadv(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
int qcow2_map(struct bdev *bs, uint64_t offset, uint64_t len, struct block_extent *ext);
int qcow2_block_status(struct bdev *bs, uint64_t offset, uint64_t len, struct block_extent *ext);
bool qcow2_has_data_beyond(struct qcow2 *s, uint64_t size, int *err);

/* L2 table entries, read and written atomically (map() reads them
 * without the image lock). */
static inline uint64_t qc_l2_get(const uint64_t *tab, uint64_t i)
{
	return __atomic_load_n(&tab[i], __ATOMIC_ACQUIRE);
}

static inline void qc_l2_put(uint64_t *tab, uint64_t i, uint64_t v)
{
	__atomic_store_n(&tab[i], v, __ATOMIC_RELEASE);
}

/* qcow2_write.c */
/* A write of [offset, offset+len) is allowed: read-write, not broken,
 * inside the image; bitmaps marked in use and the dirty bit set (lazy
 * refcounts) before the first change. */
int qcow2_check_writable(struct bdev *bs, struct qcow2 *s, uint64_t offset, uint64_t len);
int qcow2_pwritev(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
int qcow2_discard(struct bdev *bs, uint64_t offset, uint64_t len);
int qcow2_make_empty(struct bdev *bs);
int qcow2_write_zeroes(struct bdev *bs, uint64_t offset, uint64_t len, bool may_unmap);
int qcow2_preallocate(struct qcow2 *s, uint64_t from, uint64_t to, int mode);

/* qcow2_compress.c */
/* Decode the compressed cluster of an L2 entry into s->cbuf (kept as
 * a one-cluster cache keyed by the entry). */
int qcow2_decompress_cluster(struct qcow2 *s, uint64_t entry);
int qcow2_write_compressed(struct bdev *bs, uint64_t offset, const void *buf, size_t len);

/* qcow2_snapshot.c */
int qcow2_snapshots_read(struct qcow2 *s, char *err, size_t errlen);
void qcow2_snapshots_free(struct qcow2 *s);
int qcow2_snapshot_list(struct bdev *bs, struct block_snapshot_info **out, unsigned *count);
int qcow2_snapshot_create(struct bdev *bs, const char *name, char *err, size_t errlen);
int qcow2_snapshot_apply(struct bdev *bs, const char *name, char *err, size_t errlen);
int qcow2_snapshot_delete(struct bdev *bs, const char *name, char *err, size_t errlen);
/* Walk an L1 table, adding addend to every referenced cluster and fixing
 * the COPIED flags (addend 0: flags only). */
int qcow2_update_tree_refcount(struct qcow2 *s, uint64_t *l1, uint32_t l1_size,
			       uint64_t l1_offset, int addend);

/* qcow2_bitmap.c */
void qcow2_bitmaps_parse_ext(struct qcow2 *s, const uint8_t *d, uint32_t len);
/* Validate the extension and directory (s->bitmaps); never fails the open
 * except for memory. */
int qcow2_bitmaps_load(struct qcow2 *s);
/* Before the first change to the image: every bitmap marked in-use. */
int qcow2_bitmaps_mark_in_use(struct qcow2 *s);
/* The extension data to write back on a header rewrite (0: none). */
size_t qcow2_bitmaps_ext(const struct qcow2 *s, uint8_t out[24]);
/* List the bitmaps for `info` under keys "bitmaps[i].flags[]" (declares
 * the list, value ""), "bitmaps[i].flags[j]", "bitmaps[i].name" and
 * "bitmaps[i].granularity", as qemu-img's format-specific "bitmaps". */
int qcow2_bitmaps_info(struct qcow2 *s, const struct block_info_writer *w);
/* Report every cluster the bitmaps use (directory, tables, data) to ref;
 * *bad counts malformed table entries. */
int qcow2_bitmaps_count(struct qcow2 *s, void (*ref)(void *opaque, uint64_t off, uint64_t len),
			void *opaque, uint64_t *bad);

/* qcow2_check.c */
int qcow2_check(struct bdev *bs, enum block_repair fix, struct block_check_result *res,
		FILE *report);
int qcow2_check_fix(struct qcow2 *s, enum block_repair fix, struct block_check_result *res,
		    FILE *report);

static inline uint64_t qc_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

#endif
