/* qcow2 check internals shared by qcow2_check.c (the count of every
 * reference and the comparison with the stored refcounts),
 * qcow2_rebuild.c (the refcount structure rebuild of -r all) and
 * qcow2_check_copied.c (the COPIED flags): the walk's state, qemu's
 * overlap-check kinds and cluster types, message helpers. */
#ifndef BLOCK_QCOW2_CHECK_H
#define BLOCK_QCOW2_CHECK_H

#include <stdarg.h>
#include <string.h>
#include "block/qcow2.h"

/* Metadata kinds of qemu's overlap check, in its order. */
enum overlap {
	OL_HEADER = 1 << 0, OL_ACTIVE_L1 = 1 << 1, OL_ACTIVE_L2 = 1 << 2, OL_REFTABLE = 1 << 3,
	OL_REFBLOCK = 1 << 4, OL_SNAP_TABLE = 1 << 5, OL_INACTIVE_L1 = 1 << 6,
	OL_INACTIVE_L2 = 1 << 7, OL_BITMAP_DIR = 1 << 8,
};

/* qemu's cluster types (the zero flag counts whatever the version). */
enum ctype { CT_UNALLOCATED, CT_ZERO_PLAIN, CT_ZERO_ALLOC, CT_NORMAL, CT_COMPRESSED };

/* One check: the in-memory refcount table and the walk's state. */
struct walk {
	struct qcow2 *s;
	struct block_check_result *res;
	FILE *report;
	uint32_t *refs;		/* references per cluster */
	uint32_t *deferred;	/* per cluster: snapshot visits of a clean L2 table */
	uint64_t *seen;		/* bitmap: L2 table walked in this pass */
	uint64_t *clean;	/* bitmap: ... and its walk reported nothing */
	uint64_t nb;		/* clusters counted */
	uint64_t refmax;
	int64_t file_len;
	uint64_t events;	/* messages so far (a walk that adds none is clean) */
	uint64_t rewalk_entries;
	bool rewalks_reported;
	bool rebuild;
	bool wrote_l2;		/* L2 tables changed behind the cache */
	uint64_t *l2buf;	/* one L2 table as on disk */
};

/* A message of the check (counted, printed when there is a report). */
static inline void rep(struct walk *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void rep(struct walk *w, const char *fmt, ...)
{
	va_list ap;

	w->events++;
	if (!w->report)
		return;
	va_start(ap, fmt);
	vfprintf(w->report, fmt, ap);
	va_end(ap);
}

/* An error qemu-img reports through error_report (program name first). */
static inline void rep_prog(struct walk *w, const char *msg, int err)
{
	rep(w, "%s: %s: %s\n", program_invocation_short_name, msg, strerror(-err));
}

static inline enum ctype entry_type(const struct qcow2 *s, uint64_t e)
{
	if (e & QCOW_OFLAG_COMPRESSED)
		return CT_COMPRESSED;
	if ((e & QCOW_OFLAG_ZERO) && !s->extended_l2)
		return (e & L2E_OFFSET_MASK) ? CT_ZERO_ALLOC : CT_ZERO_PLAIN;
	return (e & L2E_OFFSET_MASK) ? CT_NORMAL : CT_UNALLOCATED;
}

static inline uint64_t l2_get(const struct qcow2 *s, const uint64_t *tab, uint64_t i, unsigned word)
{
	return ld_be64((const uint8_t *)&tab[i * (s->l2_entry_bytes / 8) + word]);
}

static inline void l2_put(const struct qcow2 *s, uint64_t *tab, uint64_t i, unsigned word, uint64_t v)
{
	st_be64((uint8_t *)&tab[i * (s->l2_entry_bytes / 8) + word], v);
}

/* qcow2_check.c */
/* Grow the counters to nb clusters, the new ones without references. */
int qcow2_chk_grow(struct walk *w, uint64_t nb);
/* qemu's pre-write overlap check: -EIO (image marked corrupt) on overlap. */
int qcow2_chk_overlap(struct walk *w, int ign, uint64_t off, uint64_t len);
/* The stored refcount of cluster k, as qemu reads it. */
int qcow2_chk_stored_refcount(struct walk *w, uint64_t k, uint64_t *rc);
/* qemu's calculate_refcounts: every reference, in its order. */
int qcow2_chk_calculate_refcounts(struct walk *w, enum block_repair fix);
/* qemu's compare_refcounts: each stored refcount against the references
 * counted, repaired as fix allows; *highest is the last cluster with a
 * refcount or a reference. */
void qcow2_chk_compare_refcounts(struct walk *w, enum block_repair fix, uint64_t *highest);

/* qcow2_rebuild.c */
/* -r all with clusters missing a refcount: a new refcount structure from
 * the counted references, then a recount. */
int qcow2_chk_rebuild_and_recount(struct walk *w, uint64_t *highest);

/* qcow2_check_copied.c */
/* qemu's check_oflag_copied: the COPIED flags of the active tables. */
int qcow2_chk_copied(struct walk *w, enum block_repair fix);

#endif
