/* VMDK (VMware Virtual Disk Format 1.1): shared state of the format driver
 * split over vmdk.c (format ops, open, I/O), vmdk_sparse.c (hosted sparse
 * extents: header, grain directory/tables, grains, compressed grains),
 * vmdk_desc.c (the text descriptor: parsing and generation), vmdk_info.c
 * (check, info, allocated size) and vmdk_create.c (create). */
#ifndef BLOCK_VMDK_H
#define BLOCK_VMDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "block/format.h"

#define VMDK_SECTOR		512ULL
#define VMDK4_MAGIC_BYTES	"KDMV"
#define VMDK3_MAGIC_BYTES	"COWD"
#define VMDK_HEADER_SIZE	512

/* Sparse header flags. */
#define VMDK_FLAG_NL_DETECT	(1u << 0)
#define VMDK_FLAG_RGD		(1u << 1)
#define VMDK_FLAG_ZERO_GRAIN	(1u << 2)
#define VMDK_FLAG_COMPRESS	(1u << 16)
#define VMDK_FLAG_MARKER	(1u << 17)
#define VMDK_COMPRESS_DEFLATE	1
#define VMDK_GD_AT_END		0xffffffffffffffffULL

/* streamOptimized marker types (a marker with size 0 is metadata). */
#define VMDK_MARKER_EOS		0
#define VMDK_MARKER_GT		1
#define VMDK_MARKER_GD		2
#define VMDK_MARKER_FOOTER	3
#define VMDK_GRAIN_MARKER_SIZE	12	/* lba (8) + compressed size (4) */

/* Limits (hostile images). */
#define VMDK_MIN_GRAIN_SECTORS	8
#define VMDK_MAX_GRAIN_SECTORS	0x200000	/* 1 GiB, QEMU's limit (power of two: the spec) */
#define VMDK_MAX_GTES_PER_GT	512
#define VMDK_MAX_GTS		(32u * 1024 * 1024)
#define VMDK_MAX_CAPACITY	(INT64_MAX / VMDK_SECTOR)	/* sectors */
#define VMDK_MAX_DESC_BYTES	(1024 * 1024)		/* text descriptor file */
#define VMDK_MAX_DESC_SECTORS	2048			/* embedded descriptor */
#define VMDK_MAX_EXTENTS	4096
#define VMDK_MAX_NAME		1024
#define VMDK_GT_CACHE		16

/* Layout written by create. */
#define VMDK_CREATE_GRAIN	128			/* sectors: 64 KiB */
#define VMDK_CREATE_DESC_SECTORS 20
#define VMDK_SPLIT_BYTES	(2ULL << 30)		/* twoGbMaxExtent* */

enum vmdk_extent_kind { VMDK_EXT_SPARSE, VMDK_EXT_FLAT, VMDK_EXT_ZERO };

/* The on-disk sparse extent header, decoded to host order. */
struct vmdk_sparse_header {
	uint32_t version;
	uint32_t flags;
	uint64_t capacity;		/* sectors */
	uint64_t grain_size;		/* sectors */
	uint64_t desc_offset, desc_size;	/* sectors */
	uint32_t gtes_per_gt;
	uint64_t rgd_offset, gd_offset;	/* sectors */
	uint64_t overhead;		/* sectors */
	uint8_t unclean;
	bool newlines_ok;		/* the four newline-detection bytes are intact */
	uint16_t compress_algorithm;
};

struct vmdk_gt_slot {
	uint32_t gt_index;		/* UINT32_MAX: empty */
	uint64_t lru;
	uint32_t *entries;		/* host order */
};

struct vmdk_extent {
	enum vmdk_extent_kind kind;
	char *name;			/* its file as opened: the descriptor's name resolved
					 * against the image's directory, or the image */
	char type[16];			/* the descriptor's type ("" for a KDMV image) */
	struct bfile *file;		/* NULL for ZERO */
	bool owns_file;			/* false when it is bs->file */
	bool read_only;			/* RDONLY access or read-only open */
	uint64_t start;			/* virtual start, bytes */
	uint64_t len;			/* virtual length, bytes */
	uint64_t flat_offset;		/* FLAT: byte offset of the data in file */

	/* SPARSE */
	struct vmdk_sparse_header hdr;
	uint64_t grain_bytes;
	uint32_t num_gts;
	uint32_t gt_bytes;		/* on disk, sector-rounded */
	uint32_t *gd, *rgd;		/* host order; rgd NULL without a redundant GD */
	uint64_t gd_offset, rgd_offset;	/* bytes */
	bool compressed, markers, zero_grain;
	uint64_t file_end;		/* allocation point, bytes, sector-aligned */
	struct vmdk_gt_slot gt_cache[VMDK_GT_CACHE];
	uint64_t lru_clock;
	uint8_t *zgrain;		/* last decompressed grain */
	uint64_t zgrain_host;		/* its host offset, UINT64_MAX: none */
	unsigned errors_logged;
};

/* What a descriptor says (text file or embedded). */
struct vmdk_desc_extent {
	int access;			/* 0 RW, 1 RDONLY, 2 NOACCESS */
	uint64_t sectors;
	char type[16];			/* FLAT, SPARSE, ZERO, VMFS, ... */
	char *file;			/* NULL for ZERO */
	uint64_t offset;		/* sectors, FLAT/VMFS */
};

struct vmdk_desc {
	uint32_t version;
	uint32_t cid, parent_cid;
	char *create_type;
	char *parent_hint;		/* parentFileNameHint */
	unsigned nextents;
	struct vmdk_desc_extent *extents;
};

struct vmdk_state {
	unsigned nextents;
	struct vmdk_extent *extents;
	struct vmdk_desc desc;
	bool has_desc;			/* desc parsed (embedded or text) */
	bool monolithic_sparse;		/* bs->file is a KDMV extent */
	bool cid_updated;		/* a new CID was written at the first write */
	int backing_cid_ok;		/* 0 unchecked, 1 valid, -1 stale parent */
};

/* Reads from the backing file are valid only while the parent's CID still
 * equals our parentCID (the parent changes its CID at its first write). */
int vmdk_backing_check(struct bdev *bs);
/* The extent holding virtual byte off (off < bs->size). */
struct vmdk_extent *vmdk_find_extent(struct vmdk_state *s, uint64_t off);

/* Inspection ops (vmdk_info.c). */
int vmdk_check(struct bdev *bs, enum block_repair fix, struct block_check_result *res,
	       FILE *report);
const char *vmdk_data_filename(struct bdev *bs, uint64_t offset);
int vmdk_info(struct bdev *bs, const struct block_info_writer *w);
int64_t vmdk_allocated_size(struct bdev *bs);

/* Descriptor (vmdk_desc.c). Parses len bytes (stops at NUL); returns 0 or
 * -EINVAL with err naming file and field. */
int vmdk_desc_parse(const char *text, size_t len, const char *filename, struct vmdk_desc *d,
		    char *err, size_t errlen);
void vmdk_desc_free(struct vmdk_desc *d);
/* Render a descriptor for create into a malloc'd string. */
char *vmdk_desc_render(uint32_t cid, uint32_t parent_cid, const char *parent_hint,
		       const char *create_type, uint64_t total_sectors,
		       const struct vmdk_desc_extent *ext, unsigned n);
/* Probe: does this look like a text descriptor? */
bool vmdk_desc_probe(const uint8_t *buf, size_t len);

/* Sparse extents (vmdk_sparse.c). */
void vmdk_header_decode(const uint8_t *raw, struct vmdk_sparse_header *h);
void vmdk_header_encode(const struct vmdk_sparse_header *h, uint8_t *raw);
/* Open/validate a sparse extent in ext->file; desc_out (optional) gets the
 * embedded descriptor text (malloc'd) and its length. */
int vmdk_sparse_open(struct vmdk_extent *ext, const char *filename, bool writable,
		     char **desc_out, size_t *desc_len, char *err, size_t errlen);
void vmdk_sparse_close(struct vmdk_extent *ext);

enum vmdk_grain_state { VMDK_GRAIN_UNALLOC, VMDK_GRAIN_ZERO, VMDK_GRAIN_DATA,
			VMDK_GRAIN_COMPRESSED };
/* Look up the grain holding extent-relative byte off. */
int vmdk_sparse_lookup(struct vmdk_extent *ext, uint64_t off, enum vmdk_grain_state *st,
		       uint64_t *host_off);
/* Read/write within one grain; off is extent-relative bytes; vstart the
 * extent's virtual start (for backing reads). */
int vmdk_sparse_read(struct bdev *bs, struct vmdk_extent *ext, uint64_t off, void *buf,
		     size_t len);
int vmdk_sparse_write(struct bdev *bs, struct vmdk_extent *ext, uint64_t off,
		      const void *buf, size_t len);
/* Bytes from extent-relative off to the end of its grain table's span
 * when that grain table does not exist (all unallocated), else 0. */
uint64_t vmdk_sparse_absent_span(const struct vmdk_extent *ext, uint64_t off);
int vmdk_sparse_zero(struct bdev *bs, struct vmdk_extent *ext, uint64_t off, size_t len);
/* Commit's make_empty: every grain table entry cleared (tables kept), the
 * file cut after the metadata; -ENOTSUP for streamOptimized. */
int vmdk_sparse_make_empty(struct vmdk_extent *ext);
/* The sector a grain table entry records for the grain holding
 * extent-relative byte off, unvalidated (check judges it): 0 when the grain
 * is unallocated or zeroed. -EINVAL when off lies beyond the grain
 * directory, or the error reading its grain table. */
int vmdk_sparse_grain_sector(struct vmdk_extent *ext, uint64_t off, uint64_t *sector);

struct vmdk_sparse_layout {
	uint64_t capacity;		/* sectors */
	bool compressed;		/* streamOptimized */
	bool zeroed_grain;
	const char *desc;		/* embedded descriptor or NULL */
};
/* Write a fresh sparse extent to an open, empty file. */
int vmdk_sparse_create(struct bfile *f, const struct vmdk_sparse_layout *l);

/* Extra create parameters not in struct block_create_opts. */
struct vmdk_create_params {
	bool zeroed_grain;		/* version 2 with the zeroed-grain GTE flag */
};
/* Create (vmdk_create.c). */
int vmdk_create_ex(const char *path, const struct block_create_opts *o,
		   const struct vmdk_create_params *p, char *err, size_t errlen);
/* A random CID for a new image or an image's first write. */
uint32_t vmdk_new_cid(void);

#endif
