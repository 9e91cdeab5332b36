/* qcow2 check, last pass (qemu's check_oflag_copied): the COPIED flags
 * of the active L1 and L2 entries against the stored refcounts, reported,
 * and repaired with -r all (or -r leaks once the refcounts are right). */
#include <errno.h>
#include <string.h>
#include "block/bfile.h"
#include "block/qcow2_check.h"

/* The COPIED flag of active L1 entry i against its L2 table's refcount. */
static int check_copied_l1(struct walk *w, uint32_t i, bool repair)
{
	struct qcow2 *s = w->s;
	uint64_t l1e = s->l1[i], rc;
	int ret;

	if (qcow2_chk_stored_refcount(w, (l1e & L1E_OFFSET_MASK) >> s->cluster_bits, &rc) < 0 ||
	    (rc == 1) == !!(l1e & QCOW_OFLAG_COPIED))
		return 0;
	w->res->corruptions++;
	rep(w, "%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%llx refcount=%llu\n",
	    repair ? "Repairing" : "ERROR", i, (unsigned long long)l1e, (unsigned long long)rc);
	if (!repair)
		return 0;
	s->l1[i] = rc == 1 ? l1e | QCOW_OFLAG_COPIED : l1e & ~QCOW_OFLAG_COPIED;
	ret = qcow2_chk_overlap(w, OL_ACTIVE_L1, s->l1_offset + (i & ~63u) * 8ull, 512);
	if (ret == 0 && qcow2_write_l1_entry(s, i) < 0)
		ret = -EIO;
	if (ret < 0) {
		w->res->check_errors++;
		return ret;
	}
	w->res->corruptions--;
	w->res->corruptions_fixed++;
	return 0;
}

/* The COPIED flags of the data clusters of the active L2 table at
 * l2_offset; the table is written back when repaired. */
static int check_copied_l2(struct walk *w, uint64_t l2_offset, bool repair)
{
	struct qcow2 *s = w->s;
	uint64_t cs = s->cluster_size, *tab = w->l2buf, dirty = 0, rc;
	int ret;

	if (bfile_pread(s->file, l2_offset, tab, cs) < 0) {
		rep(w, "ERROR: Could not read L2 table: %s\n", strerror(EIO));
		w->res->check_errors++;
		return -EIO;
	}
	for (uint64_t j = 0; j < s->l2_entries; j++) {
		uint64_t e = l2_get(s, tab, j, 0);
		enum ctype t = entry_type(s, e);
		if (t != CT_NORMAL && t != CT_ZERO_ALLOC)
			continue;
		if (qcow2_chk_stored_refcount(w, (e & L2E_OFFSET_MASK) >> s->cluster_bits,
					      &rc) < 0 ||
		    (rc == 1) == !!(e & QCOW_OFLAG_COPIED))
			continue;
		w->res->corruptions++;
		rep(w, "%s OFLAG_COPIED data cluster: l2_entry=%llx refcount=%llu\n",
		    repair ? "Repairing" : "ERROR", (unsigned long long)e, (unsigned long long)rc);
		if (repair) {
			l2_put(s, tab, j, 0, rc == 1 ? e | QCOW_OFLAG_COPIED : e & ~QCOW_OFLAG_COPIED);
			dirty++;
		}
	}
	if (!dirty)
		return 0;
	ret = qcow2_chk_overlap(w, OL_ACTIVE_L2, l2_offset, cs);
	if (ret < 0) {
		rep(w, "ERROR: Could not write L2 table; metadata overlap check failed: %s\n",
		    strerror(-ret));
		w->res->check_errors++;
		return ret;
	}
	if (bfile_pwrite(s->file, l2_offset, tab, cs) < 0) {
		rep(w, "ERROR: Could not write L2 table: %s\n", strerror(EIO));
		w->res->check_errors++;
		return -EIO;
	}
	w->wrote_l2 = true;
	w->res->corruptions -= dirty;
	w->res->corruptions_fixed += dirty;
	return 0;
}

/* qemu's check_oflag_copied: the COPIED flags of the active L1 and L2
 * tables against the stored refcounts; repaired with -r all, and with -r
 * leaks when the refcounts are now right. */
int qcow2_chk_copied(struct walk *w, enum block_repair fix)
{
	struct block_check_result *res = w->res;
	bool repair = fix == BLOCK_REPAIR_ALL ||
		      (fix == BLOCK_REPAIR_LEAKS && !res->check_errors && !res->corruptions &&
		       !res->leaks);
	int ret = 0;

	for (uint32_t i = 0; i < w->s->l1_size && ret == 0; i++) {
		uint64_t l2_offset = w->s->l1[i] & L1E_OFFSET_MASK;
		if (!l2_offset)
			continue;
		ret = check_copied_l1(w, i, repair);
		if (ret == 0)
			ret = check_copied_l2(w, l2_offset, repair);
	}
	return ret;
}
