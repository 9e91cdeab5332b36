/* What an image format implements: one ops table per format (raw.c,
 * qcow2.c, qcow.c, cow.c, vmdk.c, cloop.c), registered with
 * BLOCK_FORMAT_REGISTER. Formats see their host files only as struct bfile
 * (block/bfile.h) and are called synchronously on block-layer worker
 * threads; each bdev has a mutex (bs->lock) held around every op except
 * the map() fast path, which must only read cached metadata. */
#ifndef BLOCK_FORMAT_H
#define BLOCK_FORMAT_H

#include <pthread.h>
#include <stdio.h>
#include "block/block.h"

struct block_format;

/* The generic part of an open image; formats keep their own state in
 * bs->opaque. */
struct bdev {
	const struct block_format *fmt;
	void *opaque;
	struct bfile *file;		/* the image file (NULL for none) */
	struct bdev *backing;		/* backing image (chains), or NULL */
	char *filename;
	char *backing_filename;		/* as recorded in the image, or NULL */
	char *backing_format;		/* as recorded in the image, or NULL */
	uint64_t size;			/* virtual size in bytes */
	bool read_only;
	struct block_open_opts opts;
	pthread_mutex_t lock;
	unsigned depth;			/* 0 for the top image of a chain */
	bool probed;			/* format guessed by probing (raw then guards sector 0) */
};

/* How a guest range maps, for the async fast path and block status. */
struct block_extent {
	uint64_t len;			/* bytes from the queried offset with this mapping */
	unsigned status;		/* BLOCK_STATUS_* */
	/* Where the range lies in the format's file: always with DATA and
	 * not COMPRESSED; with ZERO, UNALLOCATED or BACKING a nonzero value
	 * says the range still owns a host cluster there (a preallocated or
	 * allocated-zero qcow2 cluster, qemu-img map's "offset"), 0 none. */
	uint64_t host_offset;
};

/* Creation options (minikvm-img create -o ...). */
struct block_create_opts {
	uint64_t size;
	const char *backing_file;
	const char *backing_format;
	uint32_t cluster_size;		/* 0 = format default */
	enum { PREALLOC_OFF, PREALLOC_METADATA, PREALLOC_FALLOC, PREALLOC_FULL } prealloc;
	const char *compat;		/* qcow2: "0.10" (v2) or "1.1" (v3); vmdk: subformat */
	const char *subformat;		/* vmdk: monolithicSparse, monolithicFlat, ... */
	bool lazy_refcounts;
	unsigned refcount_bits;		/* qcow2: 0 = 16 */
	bool extended_l2;
	const char *compression_type;	/* qcow2: "zlib" (NULL: default) or "zstd" */
};

/* Result of a consistency check (qemu-img check semantics). */
struct block_check_result {
	uint64_t corruptions, leaks, check_errors;
	uint64_t corruptions_fixed, leaks_fixed;
	uint64_t allocated_clusters, total_clusters, fragmented_clusters, compressed_clusters;
	uint64_t image_end_offset;
};
enum block_repair { BLOCK_REPAIR_NONE = 0, BLOCK_REPAIR_LEAKS = 1, BLOCK_REPAIR_ALL = 3 };

struct block_snapshot_info {
	char id[32];
	char name[256];
	uint64_t vm_state_size;
	uint64_t date_sec, date_nsec, vm_clock_nsec;
	uint64_t icount;
};

/* Format-specific key/value pairs for `info` (human and JSON), written
 * in the order qemu-img prints them. Keys are qemu's JSON names ("-"
 * between words; " " and "_" are read as "-") and may be paths into
 * nested values:
 *   "name"               a field of the format-specific object;
 *   "list[N]"            element N of the list "list" (a value);
 *   "list[N].field"      field of the object that is element N;
 *   "a.b"                field b of the object a;
 *   "list[]"             declares "list" (its value is ignored), so that
 *                        a list with no elements still shows as [].
 * Segments nest ("bitmaps[0].flags[0]"). A list grows by one element at
 * a time: the first key naming index N must come after one naming N-1
 * (later keys may add fields to any existing element). A key that skips
 * an index or collides with a value of another kind is kept flat, under
 * its whole path as the name.
 * "dirty-flag" is not format-specific: it sets the image's own flag.
 * JSON shows the nested lists and objects; the human output indents them
 * four columns per level with "[N]:" lines for list elements, as
 * qemu-img. */
struct block_info_writer {
	void (*str)(void *opaque, const char *key, const char *value);
	void (*num)(void *opaque, const char *key, uint64_t value);
	void (*flag)(void *opaque, const char *key, bool value);
	void *opaque;
};

struct block_format {
	const char *name;
	/* 0 = not this format, up to 100 = certain; raw answers 1. */
	int (*probe)(const uint8_t *head, size_t len, const char *filename);
	/* bs->file is open; set bs->size and, for a backing file, the
	 * malloc'd bs->backing_filename/backing_format (the layer frees them
	 * and opens the chain). On failure open() frees what it allocated:
	 * close() is called only after a successful open(). */
	int (*open)(struct bdev *bs, char *err, size_t errlen);
	void (*close)(struct bdev *bs);

	/* Synchronous data ops on the virtual disk (bs->lock held). */
	int (*preadv)(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
	int (*pwritev)(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt);
	int (*flush)(struct bdev *bs);			/* metadata + data stable */
	int (*discard)(struct bdev *bs, uint64_t offset, uint64_t len);		/* optional */
	int (*write_zeroes)(struct bdev *bs, uint64_t offset, uint64_t len, bool may_unmap); /* optional */

	/* Optional fast path: without taking bs->lock, from cached metadata
	 * only; returns 0 and fills ext, or -EAGAIN to use the slow path.
	 * The layer uses it only when ext->status is exactly DATA and ext->len
	 * covers the request, and then reads AND writes bs->file at
	 * host_offset directly: report DATA only for ranges that can be
	 * written in place (no COW, no zero flag, no compression). */
	int (*map)(struct bdev *bs, uint64_t offset, uint64_t len, struct block_extent *ext);
	/* Block status (may read metadata; bs->lock held). */
	int (*block_status)(struct bdev *bs, uint64_t offset, uint64_t len, struct block_extent *ext);

	/* Image management (tools). All optional. */
	int (*create)(const char *path, const struct block_create_opts *o, char *err, size_t errlen);
	int (*check)(struct bdev *bs, enum block_repair fix, struct block_check_result *res, FILE *report);
	int (*truncate)(struct bdev *bs, uint64_t new_size, bool shrink_ok, char *err, size_t errlen);
	int (*change_backing)(struct bdev *bs, const char *file, const char *fmt);	/* rebase -u */
	int (*info)(struct bdev *bs, const struct block_info_writer *w);
	int (*snapshot_list)(struct bdev *bs, struct block_snapshot_info **out, unsigned *count);
	int (*snapshot_create)(struct bdev *bs, const char *name, char *err, size_t errlen);
	int (*snapshot_apply)(struct bdev *bs, const char *name, char *err, size_t errlen);
	int (*snapshot_delete)(struct bdev *bs, const char *name, char *err, size_t errlen);
	/* Compressed writes of whole clusters (convert -c); optional. */
	int (*write_compressed)(struct bdev *bs, uint64_t offset, const void *buf, size_t len);
	uint32_t (*cluster_size)(struct bdev *bs);	/* optional */
	/* The name of the file holding the data at a guest offset (qemu-img
	 * map's File column), for formats that keep data in files other than
	 * the image (vmdk extents); lives as long as bs. Optional: without
	 * it, bs->filename. bs->lock held. */
	const char *(*data_filename)(struct bdev *bs, uint64_t offset);
	/* Bytes the image occupies on the host, counting every file it is
	 * made of (qemu-img info's "actual-size"), or a negative errno;
	 * optional: without it, the allocated size of the image file. */
	int64_t (*allocated_size)(struct bdev *bs);
	/* Drop every cluster allocated in this image so reads fall through to
	 * the backing file again (commit without -d); optional, as in QEMU:
	 * a format without it keeps its data. bs->lock held. */
	int (*make_empty)(struct bdev *bs);
	struct block_format *next;
};

void block_format_register(struct block_format *f);
/* The registered format that claims a header most strongly (raw at
 * least); what bdev_open uses when no format is given. QEMU probes the
 * first 512 bytes; so do we. */
#define BLOCK_PROBE_BUF_SIZE 512
const struct block_format *block_probe(const uint8_t *head, size_t len, const char *filename);
const struct block_format *block_format_find(const char *name);
const struct block_format *block_format_first(void);

#define BLOCK_FORMAT_REGISTER(f)						\
	__attribute__((constructor)) static void block_format_reg_##f(void)	\
	{ block_format_register(&f); }

/* Prints the warning for a writable image whose format was probed as raw
 * (bdev_open); the default logs it, a program may point it at its own
 * wording (minikvm-img prints qemu-img's lines). */
extern void (*block_warn_probed_raw)(const char *path);

/* Helpers for formats. */
/* Resolve a backing or extent file name recorded in an image relative to
 * the image's directory, refusing absolute paths and ".." components unless
 * the user allowed them. Returns a malloc'd path or NULL with err set. */
char *block_resolve_relative(const struct bdev *bs, const char *name, bool allow_absolute,
			     char *err, size_t errlen);
/* Read from the backing chain, or zero-fill beyond it / without one. */
int block_read_backing(struct bdev *bs, uint64_t offset, void *buf, size_t len);
/* Read the first len bytes of bs->file into buf after checking the file
 * holds at least min_size bytes; errors name the file and the format. */
int block_read_header(struct bdev *bs, const char *fmt, void *buf, size_t len,
		      uint64_t min_size, int64_t *file_size, char *err, size_t errlen);
/* Create without a size: the virtual size of the backing file o names,
 * resolved next to the new image at path as qemu-img does. */
int block_backing_size_for_create(const char *path, const struct block_create_opts *o,
				  uint64_t *size, char *err, size_t errlen);

#endif
