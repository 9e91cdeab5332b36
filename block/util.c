/* Block-layer helpers shared by formats and front ends: iovec copying,
 * safe resolution of file names recorded inside images (backing files,
 * extents), reading through a backing chain, and parsing of the cache and
 * engine option values. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/format.h"

size_t iov_size(const struct iovec *iov, int iovcnt)
{
	size_t total = 0;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	return total;
}

/* Walks [iov_off, iov_off+len) of the iovec calling op on each piece;
 * returns the bytes covered (less than len when the iovec is shorter). */
static size_t iov_walk(const struct iovec *iov, int iovcnt, size_t iov_off, size_t len,
		       void (*op)(void *iov_ptr, size_t n, size_t done, void *ctx), void *ctx)
{
	size_t done = 0;

	for (int i = 0; i < iovcnt && done < len; i++) {
		size_t n;

		if (iov_off >= iov[i].iov_len) {
			iov_off -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - iov_off;
		if (n > len - done)
			n = len - done;
		op((char *)iov[i].iov_base + iov_off, n, done, ctx);
		done += n;
		iov_off = 0;
	}
	return done;
}

static void copy_to_buf(void *p, size_t n, size_t done, void *buf)
{
	memcpy((char *)buf + done, p, n);
}

static void copy_from_buf(void *p, size_t n, size_t done, void *buf)
{
	memcpy(p, (const char *)buf + done, n);
}

static void fill(void *p, size_t n, size_t done, void *c)
{
	memset(p, *(int *)c, n);
}

size_t iov_to_buf(const struct iovec *iov, int iovcnt, size_t iov_off, void *buf, size_t len)
{
	return iov_walk(iov, iovcnt, iov_off, len, copy_to_buf, buf);
}

size_t iov_from_buf(const struct iovec *iov, int iovcnt, size_t iov_off, const void *buf,
		    size_t len)
{
	return iov_walk(iov, iovcnt, iov_off, len, copy_from_buf, (void *)buf);
}

void iov_memset(const struct iovec *iov, int iovcnt, size_t iov_off, int c, size_t len)
{
	iov_walk(iov, iovcnt, iov_off, len, fill, &c);
}

/* "json:{...}", "nbd:host", "http://..." : a colon before any slash names
 * a protocol, as in QEMU; we open only plain files. */
static bool has_protocol(const char *name)
{
	const char *colon = strchr(name, ':'), *slash = strchr(name, '/');

	return colon && (!slash || colon < slash);
}

static bool has_dotdot(const char *name)
{
	const char *p = name;

	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += n;
		while (*p == '/')
			p++;
	}
	return false;
}

char *block_resolve_relative(const struct bdev *bs, const char *name, bool allow_absolute,
			     char *err, size_t errlen)
{
	const char *img = bs && bs->filename ? bs->filename : "";
	const char *slash;
	size_t dirlen;
	char *out;

	if (!name || !*name) {
		snprintf(err, errlen, "'%s': empty file name recorded in the image", img);
		return NULL;
	}
	if (has_protocol(name)) {
		snprintf(err, errlen, "'%s': file name '%s' recorded in the image names a "
			 "protocol, which is not supported", img, name);
		return NULL;
	}
	if (!allow_absolute && name[0] == '/') {
		snprintf(err, errlen, "'%s': file name '%s' recorded in the image is an "
			 "absolute path (refused unless absolute paths are allowed)", img, name);
		return NULL;
	}
	if (!allow_absolute && has_dotdot(name)) {
		snprintf(err, errlen, "'%s': file name '%s' recorded in the image leaves the "
			 "image's directory with '..' (refused unless allowed)", img, name);
		return NULL;
	}
	if (name[0] == '/' || !(slash = strrchr(img, '/')))
		return strdup(name);
	dirlen = (size_t)(slash - img) + 1;
	out = malloc(dirlen + strlen(name) + 1);
	if (!out) {
		snprintf(err, errlen, "'%s': out of memory", img);
		return NULL;
	}
	memcpy(out, img, dirlen);
	strcpy(out + dirlen, name);
	return out;
}

int block_read_backing(struct bdev *bs, uint64_t offset, void *buf, size_t len)
{
	struct bdev *b = bs->backing;
	size_t n = 0;

	if (b && offset < b->size) {
		n = b->size - offset < len ? (size_t)(b->size - offset) : len;
		int ret = bdev_pread(b, offset, buf, n);

		if (ret < 0)
			return ret;
	}
	memset((char *)buf + n, 0, len - n);
	return 0;
}

int block_parse_cache_mode(const char *s, enum block_cache_mode *out)
{
	static const struct { const char *name; enum block_cache_mode mode; } modes[] = {
		{ "writeback", BLOCK_CACHE_WRITEBACK },
		{ "none", BLOCK_CACHE_NONE },
		{ "off", BLOCK_CACHE_NONE },	/* QEMU accepts "off" for none */
		{ "writethrough", BLOCK_CACHE_WRITETHROUGH },
		{ "directsync", BLOCK_CACHE_DIRECTSYNC },
		{ "unsafe", BLOCK_CACHE_UNSAFE },
	};

	for (size_t i = 0; s && i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (!strcmp(s, modes[i].name)) {
			*out = modes[i].mode;
			return 0;
		}
	}
	return -1;
}

int block_parse_engine(const char *s, enum block_engine_kind *out)
{
	static const struct { const char *name; enum block_engine_kind kind; } kinds[] = {
		{ "threads", BLOCK_ENGINE_THREADS },
		{ "native", BLOCK_ENGINE_NATIVE },
		{ "io_uring", BLOCK_ENGINE_IO_URING },
	};

	for (size_t i = 0; s && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (!strcmp(s, kinds[i].name)) {
			*out = kinds[i].kind;
			return 0;
		}
	}
	return -1;
}

int iov_slice(const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len,
	      struct iovec *out)
{
	int n = 0;

	for (int i = 0; i < iovcnt && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		uint64_t take = iov[i].iov_len - off;
		if (take > len)
			take = len;
		out[n].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[n].iov_len = take;
		n++;
		len -= take;
		off = 0;
	}
	return n;
}

int block_backing_size_for_create(const char *path, const struct block_create_opts *o,
				  uint64_t *size, char *err, size_t errlen)
{
	struct block_open_opts bo = { .format = o->backing_format, .read_only = true,
				      .no_backing = true, .allow_absolute_paths = true };
	const char *slash = strrchr(path, '/');
	char *full = NULL;
	struct bdev *b;
	int ret;

	if (o->backing_file[0] != '/' && slash &&
	    asprintf(&full, "%.*s/%s", (int)(slash - path), path, o->backing_file) < 0)
		return -ENOMEM;
	ret = bdev_open(full ? full : o->backing_file, &bo, &b, err, errlen);
	free(full);
	if (ret < 0)
		return ret;
	*size = bdev_size(b);
	bdev_close(b);
	return 0;
}

int block_read_header(struct bdev *bs, const char *fmt, void *buf, size_t len,
		      uint64_t min_size, int64_t *file_size, char *err, size_t errlen)
{
	int64_t fsize = bfile_size(bs->file);
	int ret;

	if (fsize < 0) {
		snprintf(err, errlen, "%s: cannot get the file size: %s", bs->filename,
			 strerror((int)-fsize));
		return (int)fsize;
	}
	if ((uint64_t)fsize < min_size) {
		snprintf(err, errlen, "%s: file too short for a %s header (%lld bytes)",
			 bs->filename, fmt, (long long)fsize);
		return -EINVAL;
	}
	ret = bfile_pread(bs->file, 0, buf, len);
	if (ret < 0) {
		snprintf(err, errlen, "%s: cannot read the %s header: %s", bs->filename, fmt,
			 strerror(-ret));
		return ret;
	}
	*file_size = fsize;
	return 0;
}
