/* vmdk inspection for qemu-img, as qemu-img 7.2 reports it: check (every
 * grain must lie inside its extent file), info's format-specific fields,
 * map's File column (the extent file holding an offset) and the
 * allocated size summed over the extent files. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include "block/bfile.h"
#include "block/vmdk.h"

/* One step of qemu-img 7.2's vmdk check at sector: the grain holding it
 * (a flat extent: the extent's start) must begin before the end of its
 * extent file (its size rounded up to a sector, as QEMU measures files).
 * Returns 0, or the failure after one "ERROR:" line on report, in QEMU's
 * words and with its error codes. */
static int check_sector(struct vmdk_extent *e, uint64_t sector, FILE *report)
{
	uint64_t host, grain_sector;
	int64_t len;

	if (e->kind == VMDK_EXT_ZERO)
		return 0;
	if (e->kind == VMDK_EXT_FLAT) {
		host = e->flat_offset;
	} else {
		if (vmdk_sparse_grain_sector(e, sector * VMDK_SECTOR - e->start,
					     &grain_sector) < 0) {
			fprintf(report, "ERROR: could not get cluster_offset for sector %" PRIu64
				"\n", sector);
			return -EPERM;		/* QEMU's VMDK_ERROR: -1 */
		}
		if (!grain_sector)
			return 0;	/* unallocated or zeroed */
		host = grain_sector * VMDK_SECTOR;
	}
	len = bfile_size(e->file);
	if (len < 0) {
		fprintf(report, "ERROR: could not get extent file length for sector %" PRIu64 "\n",
			sector);
		return (int)len;
	}
	if (host >= ((uint64_t)len + VMDK_SECTOR - 1) / VMDK_SECTOR * VMDK_SECTOR) {
		fprintf(report, "ERROR: cluster offset for sector %" PRIu64 " points after EOF\n",
			sector);
		return -EINVAL;
	}
	return 0;
}

/* Sectors from sector to the next one check looks at: one grain (a flat
 * extent: its length), or over an absent grain table as many grains as
 * it spans, which have nothing to check (an empty 2 TiB image takes
 * 64 steps, not 32 million). */
static uint64_t check_step(const struct vmdk_extent *e, uint64_t sector)
{
	uint64_t absent;

	if (e->kind != VMDK_EXT_SPARSE)
		return e->len / VMDK_SECTOR;
	absent = vmdk_sparse_absent_span(e, sector * VMDK_SECTOR - e->start);
	return (absent > e->grain_bytes ? (absent + e->grain_bytes - 1) / e->grain_bytes : 1) *
	       (e->grain_bytes / VMDK_SECTOR);
}

/* As qemu-img 7.2: no repair (-r: "does not support checks"); from sector
 * 0, one step per grain (per flat extent), the first bad grain ends the
 * check with a failure, and qemu-img then prints no report. Nothing is
 * counted, so a clean image reports only that no errors were found. */
int vmdk_check(struct bdev *bs, enum block_repair fix, struct block_check_result *res,
		      FILE *report)
{
	struct vmdk_state *s = bs->opaque;
	uint64_t total = bs->size / VMDK_SECTOR;

	if (fix != BLOCK_REPAIR_NONE)
		return -ENOTSUP;
	for (uint64_t sector = 0; sector < total;) {
		struct vmdk_extent *e = vmdk_find_extent(s, sector * VMDK_SECTOR);
		int ret = check_sector(e, sector, report);

		if (ret < 0) {
			res->corruptions++;
			return ret;
		}
		sector += check_step(e, sector);
	}
	return 0;
}

/* qemu-img map's File column: the extent file holding offset. */
const char *vmdk_data_filename(struct bdev *bs, uint64_t offset)
{
	struct vmdk_state *s = bs->opaque;
	struct vmdk_extent *e;

	if (!s->nextents || offset >= bs->size)
		return bs->filename;
	e = vmdk_find_extent(s, offset);
	return e->kind == VMDK_EXT_ZERO ? bs->filename : e->name;
}

/* qemu's create type: a KDMV image is monolithicSparse whatever its
 * embedded descriptor says, and any compressed extent makes the image
 * streamOptimized. */
static const char *info_create_type(const struct vmdk_state *s)
{
	for (unsigned i = 0; i < s->nextents; i++)
		if (s->extents[i].kind == VMDK_EXT_SPARSE && s->extents[i].compressed)
			return "streamOptimized";
	if (s->monolithic_sparse)
		return "monolithicSparse";
	return s->desc.create_type ? s->desc.create_type : "";
}

/* One element of "extents", with qemu-img 7.2's fields in its order:
 * "compressed" only when true, "cluster-size" only for sparse extents,
 * "format" the descriptor's extent type ("" for a KDMV image). */
static void info_extent(const struct block_info_writer *w, unsigned i,
			const struct vmdk_extent *e)
{
	char key[64];

	if (e->kind == VMDK_EXT_SPARSE && e->compressed) {
		snprintf(key, sizeof(key), "extents[%u].compressed", i);
		w->flag(w->opaque, key, true);
	}
	snprintf(key, sizeof(key), "extents[%u].virtual-size", i);
	w->num(w->opaque, key, e->len);
	snprintf(key, sizeof(key), "extents[%u].filename", i);
	w->str(w->opaque, key, e->name);
	if (e->kind == VMDK_EXT_SPARSE) {
		snprintf(key, sizeof(key), "extents[%u].cluster-size", i);
		w->num(w->opaque, key, e->grain_bytes);
	}
	snprintf(key, sizeof(key), "extents[%u].format", i);
	w->str(w->opaque, key, e->type);
}

/* Format-specific info as qemu-img 7.2's ImageInfoSpecificVmdk. */
int vmdk_info(struct bdev *bs, const struct block_info_writer *w)
{
	struct vmdk_state *s = bs->opaque;

	if (s->has_desc) {
		w->num(w->opaque, "cid", s->desc.cid);
		w->num(w->opaque, "parent-cid", s->desc.parent_cid);
	}
	w->str(w->opaque, "create-type", info_create_type(s));
	w->str(w->opaque, "extents[]", "");
	for (unsigned i = 0; i < s->nextents; i++)
		info_extent(w, i, &s->extents[i]);
	return 0;
}

static int64_t file_allocated_size(const struct bfile *f)
{
	struct stat st;

	if (fstat(bfile_fd(f), &st) < 0)
		return -errno;
	return (int64_t)st.st_blocks * 512;
}

/* The descriptor (or monolithic file) plus every extent file of its own,
 * as qemu-img sums them for "actual-size". */
int64_t vmdk_allocated_size(struct bdev *bs)
{
	struct vmdk_state *s = bs->opaque;
	int64_t total = file_allocated_size(bs->file), n;

	for (unsigned i = 0; i < s->nextents && total >= 0; i++) {
		const struct vmdk_extent *e = &s->extents[i];

		if (!e->file || e->file == bs->file)
			continue;
		n = file_allocated_size(e->file);
		total = n < 0 ? n : total + n;
	}
	return total;
}
