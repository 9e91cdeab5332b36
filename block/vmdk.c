/* The "vmdk" format: open (a KDMV monolithicSparse/streamOptimized file, or
 * a text descriptor naming FLAT, SPARSE and ZERO extents relative to its
 * directory), the extent map that routes virtual ranges to extents, reads,
 * writes, write-zeroes, flush, block status, compressed writes for
 * convert -c, the CID updates, commit's make_empty, and the format's ops
 * table. Check and info are in vmdk_info.c, create in vmdk_create.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/stat.h>
#include "block/bfile.h"
#include "block/vmdk.h"
#include "vmm/log.h"

static const char *const supported_types[] = {
	"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
	"streamOptimized", "vmfs", "custom", NULL,
};

static int vmdk_probe(const uint8_t *head, size_t len, const char *filename)
{
	if (len >= 4 && !memcmp(head, VMDK4_MAGIC_BYTES, 4))
		return 100;
	return vmdk_desc_probe(head, len) ? 100 : 0;
}

/* Open e's file by the name the descriptor records; e->name becomes the
 * path it was opened as. */
static int open_extent_file(struct bdev *bs, struct vmdk_extent *e, const char *name,
			    char *err, size_t errlen)
{
	char *path = block_resolve_relative(bs, name, bs->opts.allow_absolute_paths, err, errlen);
	int ret;

	if (!path)
		return -EACCES;
	ret = bfile_open(path, e->read_only ? O_RDONLY : O_RDWR, bs->opts.cache, bs->opts.engine,
			 &e->file, err, errlen);
	if (ret < 0) {
		free(path);
		return ret;
	}
	e->owns_file = true;
	free(e->name);
	e->name = path;
	return 0;
}

static int open_desc_extent(struct bdev *bs, struct vmdk_state *s, unsigned i, uint64_t start,
			    char *err, size_t errlen)
{
	const struct vmdk_desc_extent *d = &s->desc.extents[i];
	struct vmdk_extent *e = &s->extents[i];
	const char *fn = bs->filename;
	int ret;

	if (d->access == 2) {
		snprintf(err, errlen, "%s: extent %u: NOACCESS extents are not supported", fn, i);
		return -ENOTSUP;
	}
	if (d->sectors == 0 || d->sectors > VMDK_MAX_CAPACITY) {
		snprintf(err, errlen, "%s: extent %u: invalid size %" PRIu64 " sectors", fn, i,
			 d->sectors);
		return -EINVAL;
	}
	e->start = start;
	e->len = d->sectors * VMDK_SECTOR;
	e->read_only = bs->read_only || d->access == 1;
	e->name = d->file ? strdup(d->file) : strdup("(zero)");
	if (!e->name)
		return -ENOMEM;
	snprintf(e->type, sizeof(e->type), "%s", d->type);
	if (!strcmp(d->type, "ZERO")) {
		e->kind = VMDK_EXT_ZERO;
		return 0;
	}
	if (!strcmp(d->type, "FLAT") || !strcmp(d->type, "VMFS")) {
		e->kind = VMDK_EXT_FLAT;
		if (d->offset > VMDK_MAX_CAPACITY) {
			snprintf(err, errlen, "%s: extent %u: invalid offset", fn, i);
			return -EINVAL;
		}
		e->flat_offset = d->offset * VMDK_SECTOR;
		return open_extent_file(bs, e, d->file, err, errlen);
	}
	if (strcmp(d->type, "SPARSE")) {
		snprintf(err, errlen, "%s: extent %u: unsupported extent type %s", fn, i, d->type);
		return -ENOTSUP;
	}
	e->kind = VMDK_EXT_SPARSE;
	ret = open_extent_file(bs, e, d->file, err, errlen);
	if (ret < 0)
		return ret;
	ret = vmdk_sparse_open(e, d->file, !e->read_only, NULL, NULL, err, errlen);
	if (ret < 0)
		return ret;
	if (e->hdr.capacity != d->sectors) {
		snprintf(err, errlen, "%s: extent %u (%s): header capacity %" PRIu64
			 " differs from descriptor size %" PRIu64, fn, i, d->file,
			 e->hdr.capacity, d->sectors);
		return -EINVAL;
	}
	return 0;
}

/* Two writable SPARSE extents in one file would allocate grains over each
 * other: refuse. */
static int check_shared_sparse(struct bdev *bs, struct vmdk_state *s, char *err, size_t errlen)
{
	struct stat *st = calloc(s->nextents, sizeof(*st));

	if (!st)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nextents; i++) {
		if (s->extents[i].kind != VMDK_EXT_SPARSE)
			continue;
		if (fstat(bfile_fd(s->extents[i].file), &st[i]) < 0) {
			free(st);
			return -errno;
		}
		for (unsigned j = 0; j < i; j++) {
			if (s->extents[j].kind == VMDK_EXT_SPARSE && st[j].st_dev == st[i].st_dev &&
			    st[j].st_ino == st[i].st_ino) {
				snprintf(err, errlen,
					 "%s: extent %u: sparse file %s is also extent %u",
					 bs->filename, i, s->extents[i].name, j);
				free(st);
				return -EINVAL;
			}
		}
	}
	free(st);
	return 0;
}

static int open_descriptor_file(struct bdev *bs, struct vmdk_state *s, uint64_t fsize,
				char *err, size_t errlen)
{
	const char *fn = bs->filename;
	uint64_t total = 0, head;
	char *text;
	int ret;

	/* as QEMU: an empty file is too small for any vmdk; text that
	 * does not start like a descriptor is an invalid one */
	if (fsize == 0) {
		snprintf(err, errlen, "%s: File is too small, not a valid image", fn);
		return -EINVAL;
	}
	head = fsize < VMDK_MAX_DESC_BYTES ? fsize : VMDK_MAX_DESC_BYTES;
	text = malloc(head + 1);
	if (!text)
		return -ENOMEM;
	ret = bfile_pread(bs->file, 0, text, head);
	if (ret < 0) {
		free(text);
		snprintf(err, errlen, "%s: cannot read descriptor: %s", fn, strerror(-ret));
		return ret;
	}
	if (!vmdk_desc_probe((const uint8_t *)text, head)) {
		free(text);
		snprintf(err, errlen, "%s: invalid VMDK image descriptor", fn);
		return -EINVAL;
	}
	if (fsize > VMDK_MAX_DESC_BYTES) {
		free(text);
		snprintf(err, errlen, "%s: descriptor file too large (%" PRIu64 " bytes)", fn,
			 fsize);
		return -EINVAL;
	}
	ret = vmdk_desc_parse(text, fsize, fn, &s->desc, err, errlen);
	free(text);
	if (ret < 0)
		return ret;
	s->has_desc = true;
	if (!s->desc.create_type) {
		snprintf(err, errlen, "%s: invalid VMDK image descriptor", fn);	/* QEMU's words */
		return -EINVAL;
	}
	bool known = false;
	for (unsigned i = 0; supported_types[i]; i++)
		known |= !strcmp(s->desc.create_type, supported_types[i]);
	if (!known) {
		snprintf(err, errlen, "%s: Unsupported image type '%s'", fn, s->desc.create_type);
		return -ENOTSUP;
	}
	if (s->desc.nextents == 0) {
		bs->size = 0;		/* what qemu-img creates for a zero-sized disk */
		return 0;
	}
	s->extents = calloc(s->desc.nextents, sizeof(*s->extents));
	if (!s->extents)
		return -ENOMEM;
	s->nextents = s->desc.nextents;
	for (unsigned i = 0; i < s->nextents; i++) {
		ret = open_desc_extent(bs, s, i, total * VMDK_SECTOR, err, errlen);
		if (ret < 0)
			return ret;
		total += s->desc.extents[i].sectors;
		if (total > VMDK_MAX_CAPACITY) {
			snprintf(err, errlen, "%s: descriptor: extent sizes overflow", fn);
			return -EINVAL;
		}
	}
	bs->size = total * VMDK_SECTOR;
	return bs->read_only ? 0 : check_shared_sparse(bs, s, err, errlen);
}

/* The extents an embedded descriptor lists must add up to the capacity. */
static int check_embedded_extents(struct bdev *bs, struct vmdk_state *s, char *err,
				  size_t errlen)
{
	uint64_t sum = 0;

	if (s->desc.nextents == 0)
		return 0;
	for (unsigned i = 0; i < s->desc.nextents; i++) {
		sum += s->desc.extents[i].sectors;
		if (sum > VMDK_MAX_CAPACITY)
			break;
	}
	if (sum != s->extents[0].hdr.capacity) {
		snprintf(err, errlen, "%s: embedded descriptor extent sizes (%" PRIu64
			 " sectors) differ from header capacity (%" PRIu64 ")", bs->filename, sum,
			 s->extents[0].hdr.capacity);
		return -EINVAL;
	}
	return 0;
}

static int open_monolithic_sparse(struct bdev *bs, struct vmdk_state *s, char *err,
				  size_t errlen)
{
	struct vmdk_extent *e;
	char *desc = NULL;
	size_t dlen = 0;
	char derr[256];
	int ret;

	s->extents = calloc(1, sizeof(*s->extents));
	if (!s->extents)
		return -ENOMEM;
	s->nextents = 1;
	s->monolithic_sparse = true;
	e = &s->extents[0];
	e->kind = VMDK_EXT_SPARSE;
	e->file = bs->file;
	e->read_only = bs->read_only;
	e->name = strdup(bs->filename);
	if (!e->name)
		return -ENOMEM;
	ret = vmdk_sparse_open(e, bs->filename, !bs->read_only, &desc, &dlen, err, errlen);
	if (ret < 0)
		return ret;
	e->len = e->hdr.capacity * VMDK_SECTOR;
	bs->size = e->len;
	if (desc) {
		/* The embedded descriptor only informs (CID, type, parent). */
		if (vmdk_desc_parse(desc, dlen, bs->filename, &s->desc, derr, sizeof(derr)) == 0)
			s->has_desc = true;
		else
			log_warn("vmdk: ignoring embedded descriptor: %s", derr);
		free(desc);
	}
	return s->has_desc ? check_embedded_extents(bs, s, err, errlen) : 0;
}

static void vmdk_close(struct bdev *bs)
{
	struct vmdk_state *s = bs->opaque;

	if (!s)
		return;
	for (unsigned i = 0; i < s->nextents; i++) {
		struct vmdk_extent *e = &s->extents[i];

		if (e->kind == VMDK_EXT_SPARSE)
			vmdk_sparse_close(e);
		if (e->owns_file && e->file)
			bfile_close(e->file);
		free(e->name);
	}
	free(s->extents);
	vmdk_desc_free(&s->desc);
	free(s);
	bs->opaque = NULL;
}

static int vmdk_open(struct bdev *bs, char *err, size_t errlen)
{
	struct vmdk_state *s = calloc(1, sizeof(*s));
	uint8_t magic[4] = {0};
	int64_t fsize = bfile_size(bs->file);
	int ret;

	if (!s)
		return -ENOMEM;
	bs->opaque = s;
	if (fsize < 0) {
		snprintf(err, errlen, "%s: cannot get size: %s", bs->filename,
			 strerror((int)-fsize));
		ret = (int)fsize;
		goto fail;
	}
	ret = bfile_pread(bs->file, 0, magic, fsize < 4 ? (size_t)fsize : 4);
	if (ret < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", bs->filename, strerror(-ret));
		goto fail;
	}
	if (!memcmp(magic, VMDK4_MAGIC_BYTES, 4)) {
		ret = open_monolithic_sparse(bs, s, err, errlen);
	} else if (!memcmp(magic, VMDK3_MAGIC_BYTES, 4)) {
		snprintf(err, errlen, "%s: VMDK3 (COWD) extents are not supported", bs->filename);
		ret = -ENOTSUP;
	} else {
		ret = open_descriptor_file(bs, s, (uint64_t)fsize, err, errlen);
	}
	if (ret < 0)
		goto fail;
	if (s->has_desc && s->desc.parent_cid != 0xffffffff && s->desc.parent_hint) {
		bs->backing_filename = strdup(s->desc.parent_hint);
		if (!bs->backing_filename) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	return 0;
fail:
	vmdk_close(bs);
	return ret;
}

/* The extent holding virtual byte off (off < bs->size). */
struct vmdk_extent *vmdk_find_extent(struct vmdk_state *s, uint64_t off)
{
	unsigned lo = 0, hi = s->nextents;

	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;

		if (s->extents[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	return &s->extents[lo];
}


/* Largest piece from extent-relative rel that stays inside one grain
 * (sparse) or the extent, at most len. */
static size_t piece_len(const struct vmdk_extent *e, uint64_t rel, uint64_t len)
{
	uint64_t n = e->len - rel;

	if (e->kind == VMDK_EXT_SPARSE && e->grain_bytes - rel % e->grain_bytes < n)
		n = e->grain_bytes - rel % e->grain_bytes;
	if (len < n)
		n = len;
	if (n > 64ULL << 20)
		n = 64ULL << 20;
	return (size_t)n;
}

static int check_range(struct bdev *bs, uint64_t off, uint64_t len)
{
	if (off > bs->size || len > bs->size - off)
		return -EINVAL;
	return 0;
}

static struct block_format vmdk_format;

int vmdk_backing_check(struct bdev *bs)
{
	struct vmdk_state *s = bs->opaque;
	const struct vmdk_state *ps;

	if (s->backing_cid_ok == 0) {
		s->backing_cid_ok = 1;
		if (bs->backing && bs->backing->fmt == &vmdk_format) {
			ps = bs->backing->opaque;
			if (ps->has_desc && ps->desc.cid != s->desc.parent_cid) {
				log_error("vmdk: %s: parent CID %08x differs from parentCID %08x: "
					  "the backing file changed", bs->filename, ps->desc.cid,
					  s->desc.parent_cid);
				s->backing_cid_ok = -1;
			}
		}
	}
	return s->backing_cid_ok < 0 ? -EINVAL : 0;
}

/* Replace the value of the `key`= line (CID, parentCID) in text
 * (NUL-terminated, at most cap bytes with the NUL); false when there is
 * none or no room. */
static bool replace_cid_key(char *text, size_t cap, const char *key, uint32_t cid)
{
	char *p = text, val[16];
	size_t klen = strlen(key);

	while (p && *p) {
		char *q = p;

		while (*q == ' ' || *q == '\t')
			q++;
		if (!strncmp(q, key, klen)) {
			char *eq = q + klen;

			while (*eq == ' ' || *eq == '\t')
				eq++;
			if (*eq == '=') {
				char *end = eq + 1 + strcspn(eq + 1, "\r\n");
				size_t tail = strlen(end) + 1;

				snprintf(val, sizeof(val), "%08x", cid);
				if ((size_t)(eq + 1 - text) + strlen(val) + tail > cap)
					return false;
				memmove(eq + 1 + strlen(val), end, tail);
				memcpy(eq + 1, val, strlen(val));
				return true;
			}
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

/* Set a CID line (key "CID" or "parentCID") of the descriptor to cid. */
static int write_desc_cid(struct bdev *bs, const char *key, uint32_t cid)
{
	struct vmdk_state *s = bs->opaque;
	uint64_t at = 0, cap;
	char *text;
	int ret;

	if (s->monolithic_sparse) {
		at = s->extents[0].hdr.desc_offset * VMDK_SECTOR;
		cap = s->extents[0].hdr.desc_size * VMDK_SECTOR;
	} else {
		int64_t sz = bfile_size(bs->file);

		if (sz < 0)
			return (int)sz;
		cap = (uint64_t)sz + 16;
	}
	if (cap == 0 || cap > VMDK_MAX_DESC_BYTES + 16)
		return 0;
	text = calloc(1, cap + 1);
	if (!text)
		return -ENOMEM;
	size_t n = s->monolithic_sparse ? cap : cap - 16;

	ret = bfile_pread(bs->file, at, text, n);
	/* a descriptor file may be NUL-padded (qemu-img pads it to a sector):
	 * the text ends at the first NUL and the padding is kept */
	bool padded = !s->monolithic_sparse && memchr(text, 0, n);
	if (ret == 0 && replace_cid_key(text, s->monolithic_sparse ? cap : cap + 1, key, cid)) {
		size_t len = s->monolithic_sparse ? cap : strlen(text);

		if (padded && len < n)
			len = n;
		ret = bfile_pwrite(bs->file, at, text, len);
		if (ret == 0 && !s->monolithic_sparse && !padded)
			ret = bfile_truncate(bs->file, len);
	} else if (ret == 0) {
		ret = -EINVAL;		/* no such line, or no room */
	}
	free(text);
	return ret;
}

/* At the first write, give the image a new CID (as QEMU does) so that
 * children made from its old contents notice. */
static int update_cid(struct bdev *bs)
{
	struct vmdk_state *s = bs->opaque;
	uint32_t cid = vmdk_new_cid();
	int ret;

	if (s->cid_updated || !s->has_desc)
		return 0;
	s->cid_updated = true;
	ret = write_desc_cid(bs, "CID", cid);
	if (ret == 0)
		s->desc.cid = cid;
	return ret == -EINVAL ? 0 : ret;
}

static int vmdk_rw(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt,
		   bool write)
{
	struct vmdk_state *s = bs->opaque;
	uint64_t total = iov_size(iov, iovcnt), done = 0;
	struct iovec *sub = NULL;
	uint8_t *bounce = NULL;
	size_t bounce_len = 0;
	int ret = check_range(bs, offset, total);

	if (ret == 0 && write)
		ret = update_cid(bs);
	if (ret < 0 || total == 0)
		return ret;
	sub = malloc((size_t)iovcnt * sizeof(*sub));
	if (!sub)
		return -ENOMEM;
	while (done < total && ret == 0) {
		struct vmdk_extent *e = vmdk_find_extent(s, offset + done);
		uint64_t rel = offset + done - e->start;
		size_t n = piece_len(e, rel, total - done);
		int cnt;

		if (write && e->read_only) {
			ret = -EROFS;
			break;
		}
		switch (e->kind) {
		case VMDK_EXT_ZERO:
			if (write)
				ret = -EROFS;
			else
				iov_memset(iov, iovcnt, done, 0, n);
			break;
		case VMDK_EXT_FLAT:
			cnt = iov_slice(iov, iovcnt, done, n, sub);
			ret = write ? bfile_pwritev(e->file, e->flat_offset + rel, sub, cnt)
				    : bfile_preadv(e->file, e->flat_offset + rel, sub, cnt);
			break;
		case VMDK_EXT_SPARSE:
			if (n > bounce_len) {	/* a piece stays inside one grain */
				free(bounce);
				bounce_len = 0;
				bounce = malloc(n);
				if (!bounce) {
					ret = -ENOMEM;
					break;
				}
				bounce_len = n;
			}
			if (write) {
				iov_to_buf(iov, iovcnt, done, bounce, n);
				ret = vmdk_sparse_write(bs, e, rel, bounce, n);
			} else {
				ret = vmdk_sparse_read(bs, e, rel, bounce, n);
				if (ret == 0)
					iov_from_buf(iov, iovcnt, done, bounce, n);
			}
			break;
		}
		done += n;
	}
	free(bounce);
	free(sub);
	return ret;
}

static int vmdk_preadv(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	return vmdk_rw(bs, offset, iov, iovcnt, false);
}

static int vmdk_pwritev(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt)
{
	return vmdk_rw(bs, offset, iov, iovcnt, true);
}

static int vmdk_write_zeroes(struct bdev *bs, uint64_t offset, uint64_t len, bool may_unmap)
{
	struct vmdk_state *s = bs->opaque;
	uint64_t done = 0;
	int ret = check_range(bs, offset, len);

	if (ret == 0)
		ret = update_cid(bs);
	while (ret == 0 && done < len) {
		struct vmdk_extent *e = vmdk_find_extent(s, offset + done);
		uint64_t rel = offset + done - e->start;
		size_t n = piece_len(e, rel, len - done);

		if (e->read_only)
			ret = e->kind == VMDK_EXT_ZERO ? 0 : -EROFS;
		else if (e->kind == VMDK_EXT_FLAT)
			ret = bfile_write_zeroes(e->file, e->flat_offset + rel, n);
		else if (e->kind == VMDK_EXT_SPARSE && !bs->backing &&
			 vmdk_sparse_absent_span(e, rel))	/* already zero: skip it */
			n = (size_t)MIN(vmdk_sparse_absent_span(e, rel), len - done);
		else if (e->kind == VMDK_EXT_SPARSE)
			ret = vmdk_sparse_zero(bs, e, rel, n);
		done += n;
	}
	return ret;
}

/* The CID the backing image has now (commit just wrote it through another
 * handle, so bs->backing's copy is stale). */
static int parent_current_cid(struct bdev *bs, uint32_t *cid)
{
	struct block_open_opts o = { .format = "vmdk", .read_only = true, .no_backing = true,
				     .allow_absolute_paths = true };
	const struct vmdk_state *ps;
	struct bdev *p;
	char err[256];
	int ret;

	if (!bs->backing || bs->backing->fmt != &vmdk_format)
		return -ENOTSUP;
	ret = bdev_open(bdev_filename(bs->backing), &o, &p, err, sizeof(err));
	if (ret < 0)
		return ret;
	ps = p->opaque;
	ret = ps->has_desc ? 0 : -ENOTSUP;
	*cid = ps->desc.cid;
	bdev_close(p);
	return ret;
}

/* Commit's make_empty (QEMU's vmdk driver has none and leaves a top whose
 * parentCID no longer matches): every grain of the sparse extents goes,
 * the image gets a new CID and records its parent's current CID, so the
 * chain reads through to the committed data again. Flat extents and
 * streams: -ENOTSUP (the data stays, as with QEMU). */
static int vmdk_make_empty(struct bdev *bs)
{
	struct vmdk_state *s = bs->opaque;
	uint32_t pcid;
	int ret;

	for (unsigned i = 0; i < s->nextents; i++) {
		const struct vmdk_extent *e = &s->extents[i];

		if (e->kind != VMDK_EXT_SPARSE || e->compressed || e->read_only)
			return -ENOTSUP;
	}
	if (!s->has_desc)
		return -ENOTSUP;
	/* parentCID first: with the old data still here the image reads the
	 * same over the committed parent, so a failure later leaves it valid */
	ret = parent_current_cid(bs, &pcid);
	if (ret == 0)
		ret = update_cid(bs);
	if (ret == 0)
		ret = write_desc_cid(bs, "parentCID", pcid);
	if (ret == 0) {
		s->desc.parent_cid = pcid;
		s->backing_cid_ok = 0;
	}
	for (unsigned i = 0; i < s->nextents && ret == 0; i++)
		ret = vmdk_sparse_make_empty(&s->extents[i]);
	return ret;
}

static int vmdk_flush(struct bdev *bs)
{
	struct vmdk_state *s = bs->opaque;
	int ret = 0;

	for (unsigned i = 0; i < s->nextents; i++) {
		struct vmdk_extent *e = &s->extents[i];

		if (e->file && !e->read_only) {
			int r = bfile_flush(e->file);

			if (r < 0 && ret == 0)
				ret = r;
		}
	}
	return ret;
}

static unsigned grain_status(struct bdev *bs, enum vmdk_grain_state st)
{
	switch (st) {
	case VMDK_GRAIN_UNALLOC:	/* qemu-img map: "present": false */
		return bs->backing ? BLOCK_STATUS_BACKING :
				     BLOCK_STATUS_ZERO | BLOCK_STATUS_UNALLOCATED;
	case VMDK_GRAIN_ZERO:
		return BLOCK_STATUS_ZERO;
	case VMDK_GRAIN_DATA:
		return BLOCK_STATUS_DATA;
	case VMDK_GRAIN_COMPRESSED:
		return BLOCK_STATUS_DATA | BLOCK_STATUS_COMPRESSED;
	}
	return 0;
}

/* A flat extent is data, which reads as zeroes over holes of its file
 * (and past its end): the run stops where the file switches, as QEMU
 * looks through flat extents into their files. */
static void flat_status(const struct vmdk_extent *e, uint64_t rel, uint64_t avail,
			struct block_extent *out)
{
	uint64_t host = e->flat_offset + rel;
	int64_t data = bfile_seek_data(e->file, host, false), hole;

	out->status = BLOCK_STATUS_DATA;
	out->host_offset = host;
	out->len = avail;
	if (data == -ENXIO) {
		out->status |= BLOCK_STATUS_ZERO;
	} else if (data > (int64_t)host) {
		out->status |= BLOCK_STATUS_ZERO;
		if ((uint64_t)data - host < avail)
			out->len = (uint64_t)data - host;
	} else if (data == (int64_t)host) {
		hole = bfile_seek_data(e->file, host, true);
		if (hole > (int64_t)host && (uint64_t)hole - host < avail)
			out->len = (uint64_t)hole - host;
	}
}

static int vmdk_block_status(struct bdev *bs, uint64_t offset, uint64_t len,
			     struct block_extent *out)
{
	struct vmdk_state *s = bs->opaque;
	struct vmdk_extent *e;
	uint64_t rel, avail;
	int ret = check_range(bs, offset, len);

	if (ret < 0 || len == 0)
		return ret < 0 ? ret : -EINVAL;
	e = vmdk_find_extent(s, offset);
	rel = offset - e->start;
	avail = e->len - rel < len ? e->len - rel : len;
	out->host_offset = 0;
	if (e->kind == VMDK_EXT_ZERO) {
		out->status = BLOCK_STATUS_ZERO;
		out->len = avail;
		return 0;
	}
	if (e->kind == VMDK_EXT_FLAT) {
		flat_status(e, rel, avail, out);
		return 0;
	}
	enum vmdk_grain_state st, st2;
	uint64_t host, host2, pos;

	ret = vmdk_sparse_lookup(e, rel, &st, &host);
	if (ret < 0)
		return ret;
	out->status = grain_status(bs, st);
	out->host_offset = st == VMDK_GRAIN_DATA ? host + rel % e->grain_bytes : 0;
	pos = rel - rel % e->grain_bytes + e->grain_bytes;
	if (vmdk_sparse_absent_span(e, rel))
		pos = rel + vmdk_sparse_absent_span(e, rel);
	while (pos < rel + avail) {
		if (st == VMDK_GRAIN_UNALLOC && vmdk_sparse_absent_span(e, pos)) {
			pos += vmdk_sparse_absent_span(e, pos);	/* a whole missing GT */
			continue;
		}
		ret = vmdk_sparse_lookup(e, pos, &st2, &host2);
		if (ret < 0 || st2 != st || st2 == VMDK_GRAIN_COMPRESSED ||
		    (st == VMDK_GRAIN_DATA && host2 != host + (pos - (rel - rel % e->grain_bytes))))
			break;
		pos += e->grain_bytes;
	}
	out->len = (pos < rel + avail ? pos : rel + avail) - rel;
	return 0;
}

static int vmdk_write_compressed(struct bdev *bs, uint64_t offset, const void *buf, size_t len)
{
	struct vmdk_state *s = bs->opaque;
	struct vmdk_extent *e;
	uint64_t rel;
	int ret = check_range(bs, offset, len);

	if (ret < 0 || len == 0)
		return ret;
	e = vmdk_find_extent(s, offset);
	rel = offset - e->start;
	if (e->kind != VMDK_EXT_SPARSE || !e->compressed) {
		struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

		return vmdk_pwritev(bs, offset, &iov, 1);
	}
	if (e->read_only)
		return -EROFS;
	if (rel % e->grain_bytes || piece_len(e, rel, len) != len)
		return -EINVAL;
	ret = update_cid(bs);
	if (ret < 0)
		return ret;
	return vmdk_sparse_write(bs, e, rel, buf, len);
}

static uint32_t vmdk_cluster_size(struct bdev *bs)
{
	struct vmdk_state *s = bs->opaque;

	for (unsigned i = 0; i < s->nextents; i++)
		if (s->extents[i].kind == VMDK_EXT_SPARSE)
			return (uint32_t)s->extents[i].grain_bytes;
	return 0;
}


static int vmdk_create(const char *path, const struct block_create_opts *o, char *err,
		       size_t errlen)
{
	return vmdk_create_ex(path, o, NULL, err, errlen);
}

static struct block_format vmdk_format = {
	.name = "vmdk",
	.probe = vmdk_probe,
	.open = vmdk_open,
	.close = vmdk_close,
	.preadv = vmdk_preadv,
	.pwritev = vmdk_pwritev,
	.flush = vmdk_flush,
	.write_zeroes = vmdk_write_zeroes,
	.block_status = vmdk_block_status,
	.create = vmdk_create,
	.check = vmdk_check,
	.data_filename = vmdk_data_filename,
	.info = vmdk_info,
	.write_compressed = vmdk_write_compressed,
	.cluster_size = vmdk_cluster_size,
	.allocated_size = vmdk_allocated_size,
	.make_empty = vmdk_make_empty,
};
BLOCK_FORMAT_REGISTER(vmdk_format)
