/* qcow (version 1) consistency check and repair. QEMU's qcow driver has
 * no check; this one finds what the format allows: L2 tables and data
 * (plain or compressed) beyond the end of the file, structures that
 * overlap each other (header, backing name, L1, L2 tables, clusters), and
 * leaks: whole clusters of the file nothing references (e.g. the old copy
 * of a compressed cluster that was rewritten). -r all clears entries
 * pointing beyond the end of the file; -r leaks cuts leaked space at the
 * end of the file (inner leaks need a convert). */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "block/bfile.h"
#include "block/qcow.h"

enum qcow_range_kind { QR_HEADER, QR_L1, QR_L2, QR_DATA, QR_COMPRESSED };

struct qcow_range {
	uint64_t start, len;
	uint64_t guest;			/* first guest byte (data), L1 index (L2) */
	enum qcow_range_kind kind;
};

struct qcow_ranges {
	struct qcow_range *v;
	size_t n, cap;
	bool overflow;
};

#define QCOW_CHECK_MAX_RANGES	(8u << 20)	/* 256 MiB of ranges at most */

static const char *const qcow_range_names[] = {
	[QR_HEADER] = "the header", [QR_L1] = "the L1 table", [QR_L2] = "an L2 table",
	[QR_DATA] = "a data cluster", [QR_COMPRESSED] = "a compressed cluster",
};

static void qcow_rep(FILE *report, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void qcow_rep(FILE *report, const char *fmt, ...)
{
	va_list ap;

	if (!report)
		return;
	va_start(ap, fmt);
	vfprintf(report, fmt, ap);
	va_end(ap);
	fputc('\n', report);
}

/* Record a used range; plain clusters continuing the previous one merge. */
static void qcow_range_add(struct qcow_ranges *r, uint64_t start, uint64_t len,
			   enum qcow_range_kind kind, uint64_t guest)
{
	struct qcow_range *last = r->n ? &r->v[r->n - 1] : NULL;

	if (last && kind == QR_DATA && last->kind == QR_DATA &&
	    last->start + last->len == start && last->guest + last->len == guest) {
		last->len += len;
		return;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct qcow_range *v;

		if (cap > QCOW_CHECK_MAX_RANGES || !(v = realloc(r->v, cap * sizeof(*v)))) {
			r->overflow = true;
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (struct qcow_range){ start, len, guest, kind };
}

static int qcow_range_cmp(const void *a, const void *b)
{
	const struct qcow_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Clear one on-disk table entry (repair of an entry beyond the file). */
static int qcow_clear_entry(struct bdev *bs, uint64_t table_offset, uint32_t index)
{
	uint64_t zero = 0;

	return bfile_pwrite(bs->file, table_offset + (uint64_t)index * 8, &zero, 8);
}

struct qcow_check_ctx {
	struct bdev *bs;
	struct block_check_result *res;
	FILE *report;
	bool fix_all;
	uint64_t fsize;
	struct qcow_ranges used;
	uint64_t prev_host;		/* host end of the previous guest cluster */
};

/* One L2 entry: bounds, statistics, and its range. */
static int qcow_check_entry(struct qcow_check_ctx *c, uint64_t l2_offset, uint32_t index,
			    uint64_t entry, uint64_t guest)
{
	struct qcow_state *s = c->bs->opaque;
	uint64_t off = entry, len = s->cluster_size;
	enum qcow_range_kind kind = QR_DATA;

	c->res->allocated_clusters++;
	if (entry & QCOW_OFLAG_COMPRESSED) {
		kind = QR_COMPRESSED;
		off = entry & s->cluster_offset_mask;
		len = (entry >> (63 - s->cluster_bits)) & (s->cluster_size - 1);
		c->res->compressed_clusters++;
	} else if (c->prev_host && off != c->prev_host) {
		c->res->fragmented_clusters++;
	}
	c->prev_host = kind == QR_DATA ? off + len : 0;
	if (len == 0 || off < QCOW_HEADER_SIZE || off > c->fsize || len > c->fsize - off) {
		c->res->corruptions++;
		qcow_rep(c->report, "ERROR %s of guest offset 0x%llx at 0x%llx (%llu bytes) lies "
			 "outside the file", qcow_range_names[kind], (unsigned long long)guest,
			 (unsigned long long)off, (unsigned long long)len);
		if (c->fix_all && qcow_clear_entry(c->bs, l2_offset, index) == 0) {
			c->res->corruptions_fixed++;
			c->res->allocated_clusters--;
		}
		return 0;
	}
	qcow_range_add(&c->used, off, len, kind, guest);
	return 0;
}

/* Every L2 table of the L1 table and every entry in it. */
static int qcow_check_tables(struct qcow_check_ctx *c)
{
	struct qcow_state *s = c->bs->opaque;
	uint64_t l2_bytes = (uint64_t)s->l2_entries * 8, *l2 = malloc(l2_bytes);
	uint64_t span = (uint64_t)s->cluster_size << s->l2_bits;
	int ret = 0;

	if (!l2)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->l1_size && ret == 0; i++) {
		uint64_t l2_offset = s->l1[i];

		c->prev_host = 0;
		if (!l2_offset)
			continue;
		if (l2_offset < QCOW_HEADER_SIZE || l2_offset > c->fsize ||
		    l2_bytes > c->fsize - l2_offset) {
			c->res->corruptions++;
			qcow_rep(c->report, "ERROR L2 table %u at 0x%llx lies outside the file", i,
				 (unsigned long long)l2_offset);
			if (c->fix_all && qcow_clear_entry(c->bs, s->l1_table_offset, i) == 0) {
				s->l1[i] = 0;
				c->res->corruptions_fixed++;
			}
			continue;
		}
		qcow_range_add(&c->used, l2_offset, l2_bytes, QR_L2, i);
		ret = bfile_pread(c->bs->file, l2_offset, l2, l2_bytes);
		for (uint32_t j = 0; j < s->l2_entries && ret == 0; j++) {
			uint64_t e = be64toh(l2[j]);
			uint64_t guest = i * span + (uint64_t)j * s->cluster_size;

			if (e && guest < c->bs->size)
				ret = qcow_check_entry(c, l2_offset, j, e, guest);
			else if (e)
				c->prev_host = 0;	/* beyond the disk: harmless, ignored */
		}
	}
	free(l2);
	return ret;
}

/* Sorted ranges: overlaps are corruptions, whole unreferenced clusters
 * between them leaks. Returns the end of the last used byte. */
static uint64_t qcow_check_layout(struct qcow_check_ctx *c)
{
	struct qcow_state *s = c->bs->opaque;
	struct qcow_ranges *r = &c->used;
	uint64_t end = 0;

	qsort(r->v, r->n, sizeof(*r->v), qcow_range_cmp);
	for (size_t i = 0; i < r->n; i++) {
		const struct qcow_range *x = &r->v[i];

		if (i && x->start < end) {
			c->res->corruptions++;
			qcow_rep(c->report, "ERROR %s at 0x%llx overlaps %s ending at 0x%llx",
				 qcow_range_names[x->kind], (unsigned long long)x->start,
				 qcow_range_names[r->v[i - 1].kind], (unsigned long long)end);
		} else if (x->start - end >= s->cluster_size) {
			uint64_t n = (x->start - end) / s->cluster_size;

			c->res->leaks += n;
			qcow_rep(c->report, "Leaked %llu cluster(s) at 0x%llx",
				 (unsigned long long)n, (unsigned long long)end);
		}
		if (x->start + x->len > end)
			end = x->start + x->len;
	}
	return end;
}

int qcow_check(struct bdev *bs, enum block_repair fix, struct block_check_result *res,
	       FILE *report)
{
	struct qcow_state *s = bs->opaque;
	struct qcow_check_ctx c = { .bs = bs, .res = res, .report = report,
				    .fix_all = fix == BLOCK_REPAIR_ALL && !bs->read_only };
	uint64_t end, tail;
	int64_t fsize = bfile_size(bs->file);
	int ret;

	if (fsize < 0)
		return (int)fsize;
	c.fsize = (uint64_t)fsize;
	res->total_clusters = (bs->size + s->cluster_size - 1) / s->cluster_size;
	qcow_range_add(&c.used, 0, s->l1_table_offset, QR_HEADER, 0);
	/* qemu-img writes the L1 table in whole sectors */
	qcow_range_add(&c.used, s->l1_table_offset, ((uint64_t)s->l1_size * 8 + 511) & ~511ull,
		       QR_L1, 0);
	ret = qcow_check_tables(&c);
	if (ret == 0 && c.used.overflow) {
		res->check_errors++;
		qcow_rep(report, "ERROR the image is too fragmented to check its layout");
	} else if (ret == 0) {
		end = qcow_check_layout(&c);
		tail = c.fsize > end ? (c.fsize - end) / s->cluster_size : 0;
		if (tail) {
			res->leaks += tail;
			qcow_rep(report, "Leaked %llu cluster(s) at the end of the file (0x%llx)",
				 (unsigned long long)tail, (unsigned long long)end);
		}
		if (tail && fix != BLOCK_REPAIR_NONE && !bs->read_only &&
		    bfile_truncate(bs->file, end) == 0) {
			res->leaks_fixed += tail;
			s->file_end = end;
		}
		res->image_end_offset = end;
	}
	if (res->corruptions_fixed || res->leaks_fixed) {
		qcow_l2_cache_drop(s);
		if (ret == 0)
			ret = bfile_flush(bs->file);
	}
	free(c.used.v);
	return ret;
}
