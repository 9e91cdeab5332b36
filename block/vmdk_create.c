/* vmdk create for every subformat qemu-img 7.2 makes: monolithicSparse
 * and streamOptimized (one sparse file with an embedded descriptor),
 * monolithicFlat and the twoGbMaxExtent* splits (a text descriptor naming
 * extent files next to it), a vmdk backing file's CID and size, and the
 * random CIDs images get. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "block/bfile.h"
#include "block/vmdk.h"

/* Random, never 0xfffffffe or 0xffffffff (which mean "no parent"). */
uint32_t vmdk_new_cid(void)
{
	uint32_t cid;

	if (getrandom(&cid, sizeof(cid), 0) != sizeof(cid))
		cid = (uint32_t)time(NULL) ^ (uint32_t)getpid() * 2654435761u;
	return cid >= 0xfffffffe ? 0x1234567 : cid;
}

static int write_whole_file(const char *path, const void *data, size_t len, char *err,
			    size_t errlen)
{
	struct bfile *f;
	int ret = bfile_open(path, O_RDWR | O_CREAT | O_TRUNC, BLOCK_CACHE_WRITEBACK,
			     BLOCK_ENGINE_THREADS, &f, err, errlen);

	if (ret < 0)
		return ret;
	ret = bfile_pwrite(f, 0, data, len);
	if (!ret)
		ret = bfile_flush(f);
	bfile_close(f);
	if (ret < 0)
		snprintf(err, errlen, "%s: write failed: %s", path, strerror(-ret));
	return ret;
}

static int create_sparse_file(const char *path, uint64_t sectors, bool compressed,
			      bool zeroed, const char *desc, char *err, size_t errlen)
{
	struct vmdk_sparse_layout l = { sectors, compressed, zeroed, desc };
	struct bfile *f;
	int ret = bfile_open(path, O_RDWR | O_CREAT | O_TRUNC, BLOCK_CACHE_WRITEBACK,
			     BLOCK_ENGINE_THREADS, &f, err, errlen);

	if (ret < 0)
		return ret;
	ret = vmdk_sparse_create(f, &l);
	if (!ret)
		ret = bfile_flush(f);
	bfile_close(f);
	if (ret < 0)
		snprintf(err, errlen, "%s: cannot create sparse extent: %s", path, strerror(-ret));
	return ret;
}

static int create_flat_file(const char *path, uint64_t bytes, const struct block_create_opts *o,
			    char *err, size_t errlen)
{
	struct bfile *f;
	int ret = bfile_open(path, O_RDWR | O_CREAT | O_TRUNC, BLOCK_CACHE_WRITEBACK,
			     BLOCK_ENGINE_THREADS, &f, err, errlen);

	if (ret < 0)
		return ret;
	ret = bfile_truncate(f, bytes);
	if (!ret && o->prealloc == PREALLOC_FALLOC)
		ret = bfile_fallocate(f, 0, bytes);
	if (!ret && o->prealloc == PREALLOC_FULL)
		ret = bfile_write_zeroes(f, 0, bytes);
	bfile_close(f);
	if (ret < 0)
		snprintf(err, errlen, "%s: cannot create flat extent: %s", path, strerror(-ret));
	return ret;
}

struct create_parent {
	uint32_t cid;			/* 0xffffffff: no parent */
	const char *hint;
};

struct create_plan {
	const char *type;
	bool flat, split, compressed, embedded;
	const char *suffix;		/* "-flat", "-s%03u", "-f%03u" */
};

static const struct create_plan plans[] = {
	{ "monolithicSparse", false, false, false, true, NULL },
	{ "streamOptimized", false, false, true, true, NULL },
	{ "monolithicFlat", true, false, false, false, "-flat" },
	{ "twoGbMaxExtentSparse", false, true, false, false, "-s%03u" },
	{ "twoGbMaxExtentFlat", true, true, false, false, "-f%03u" },
};

/* Directory and base name (without ".vmdk") of path. */
static int split_path(const char *path, char **dir, char **base)
{
	char *a = strdup(path), *b = strdup(path);
	size_t n;

	if (!a || !b) {
		free(a);
		free(b);
		return -ENOMEM;
	}
	*dir = strdup(dirname(a));
	*base = strdup(basename(b));
	free(a);
	free(b);
	if (!*dir || !*base)
		return -ENOMEM;
	n = strlen(*base);
	if (n > 5 && !strcmp(*base + n - 5, ".vmdk"))
		(*base)[n - 5] = 0;
	return 0;
}

static int create_extents(const char *path, const struct create_plan *p, uint64_t sectors,
			  const struct block_create_opts *o, bool zeroed,
			  const struct create_parent *par, char *err, size_t errlen)
{
	uint64_t per = p->split ? VMDK_SPLIT_BYTES / VMDK_SECTOR : sectors;
	uint64_t n = p->split ? (sectors + per - 1) / per : sectors != 0;
	struct vmdk_desc_extent *ext;
	char *dir = NULL, *base = NULL, *desc = NULL;
	int ret;

	if (n > VMDK_MAX_EXTENTS) {
		snprintf(err, errlen, "%s: size needs more than %u extents", path,
			 VMDK_MAX_EXTENTS);
		return -EFBIG;
	}
	ext = calloc(n ? n : 1, sizeof(*ext));
	ret = ext ? split_path(path, &dir, &base) : -ENOMEM;
	for (uint64_t i = 0; ret == 0 && i < n; i++) {
		char name[VMDK_MAX_NAME], full[2 * VMDK_MAX_NAME + 2];
		uint64_t len = sectors - i * per < per ? sectors - i * per : per;

		if (p->split)
			snprintf(name, sizeof(name), "%s-%c%03u.vmdk", base, p->flat ? 'f' : 's',
				 (unsigned)(i + 1));
		else
			snprintf(name, sizeof(name), "%s-flat.vmdk", base);
		snprintf(full, sizeof(full), "%s/%s", dir, name);
		ext[i].sectors = len;
		snprintf(ext[i].type, sizeof(ext[i].type), "%s", p->flat ? "FLAT" : "SPARSE");
		ext[i].file = strdup(name);
		if (!ext[i].file)
			ret = -ENOMEM;
		else if (p->flat)
			ret = create_flat_file(full, len * VMDK_SECTOR, o, err, errlen);
		else
			ret = create_sparse_file(full, len, false, zeroed, NULL, err, errlen);
	}
	if (ret == 0) {
		desc = vmdk_desc_render(vmdk_new_cid(), par->cid, par->hint, p->type, sectors, ext,
					(unsigned)n);
		ret = desc ? write_whole_file(path, desc, strlen(desc), err, errlen) : -ENOMEM;
	}
	for (uint64_t i = 0; ext && i < n; i++)
		free(ext[i].file);
	free(ext);
	free(desc);
	free(dir);
	free(base);
	return ret;
}

/* CID (and size, when none was given) of the vmdk backing file; the name
 * is recorded as given, relative to the new image's directory. */
static int parent_info(const char *path, const struct block_create_opts *o,
		       const struct create_plan *p, struct create_parent *par,
		       uint64_t *sectors, char *err, size_t errlen)
{
	struct block_open_opts bo = { .format = "vmdk", .read_only = true, .no_backing = true,
				      .allow_absolute_paths = true };
	char *dir, *base, *full;
	struct bdev *b;
	int ret;

	if (p->flat) {
		snprintf(err, errlen, "%s: a flat vmdk cannot have a backing file", path);
		return -EINVAL;
	}
	if (o->backing_format && strcmp(o->backing_format, "vmdk")) {
		snprintf(err, errlen, "%s: backing format must be vmdk, not %s", path,
			 o->backing_format);
		return -EINVAL;
	}
	if (strchr(o->backing_file, '"') || strlen(o->backing_file) > VMDK_MAX_NAME) {
		snprintf(err, errlen, "%s: invalid backing file name", path);
		return -EINVAL;
	}
	ret = split_path(path, &dir, &base);
	if (ret < 0)
		return ret;
	if (o->backing_file[0] == '/' || asprintf(&full, "%s/%s", dir, o->backing_file) < 0)
		full = strdup(o->backing_file);
	free(dir);
	free(base);
	if (!full)
		return -ENOMEM;
	ret = bdev_open(full, &bo, &b, err, errlen);
	free(full);
	if (ret < 0)
		return ret;
	struct vmdk_state *s = b->opaque;
	par->cid = s->has_desc ? s->desc.cid : 0xfffffffe;
	par->hint = o->backing_file;
	if (*sectors == 0)
		*sectors = bdev_size(b) / VMDK_SECTOR;
	bdev_close(b);
	return 0;
}

int vmdk_create_ex(const char *path, const struct block_create_opts *o,
		   const struct vmdk_create_params *prm, char *err, size_t errlen)
{
	const char *sub = o->subformat ? o->subformat : "monolithicSparse";
	const struct create_plan *p = NULL;
	uint64_t sectors = o->size / VMDK_SECTOR + (o->size % VMDK_SECTOR != 0);
	bool zeroed = prm && prm->zeroed_grain;

	for (unsigned i = 0; i < sizeof(plans) / sizeof(plans[0]); i++)
		if (!strcmp(sub, plans[i].type))
			p = &plans[i];
	if (!p) {
		snprintf(err, errlen, "%s: unknown vmdk subformat %s", path, sub);
		return -EINVAL;
	}
	struct create_parent par = { 0xffffffff, NULL };
	if (o->backing_file) {
		int ret = parent_info(path, o, p, &par, &sectors, err, errlen);

		if (ret < 0)
			return ret;
	}
	if (o->size > VMDK_MAX_CAPACITY * VMDK_SECTOR ||
	    (!p->flat && !p->split && sectors > 0xffffffffULL)) {
		snprintf(err, errlen, "%s: size too large for vmdk %s", path, sub);
		return -EFBIG;
	}
	if (p->embedded) {
		struct vmdk_desc_extent x = { 0, sectors, "SPARSE", NULL, 0 };
		char *dir, *base, *desc, name[VMDK_MAX_NAME];
		int ret = split_path(path, &dir, &base);

		if (ret < 0)
			return ret;
		snprintf(name, sizeof(name), "%s.vmdk", base);
		x.file = name;
		desc = vmdk_desc_render(vmdk_new_cid(), par.cid, par.hint, p->type, sectors, &x, 1);
		free(dir);
		free(base);
		if (!desc)
			return -ENOMEM;
		ret = create_sparse_file(path, sectors, p->compressed, zeroed && !p->compressed,
					 desc, err, errlen);
		free(desc);
		return ret;
	}
	return create_extents(path, p, sectors, o, zeroed, &par, err, errlen);
}
