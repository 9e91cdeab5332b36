/* VMDK hosted sparse extents: the 512-byte header (validated field by
 * field), the in-memory grain directory (and redundant one), a small grain
 * table cache, grain reads (plain, zeroed-grain, deflate-compressed with or
 * without markers), grain allocation (data, then GT entry, then the
 * redundant GT entry; new GTs before their GD entries), the raw grain
 * lookup check uses and creation of a fresh extent. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "block/bfile.h"
#include "block/endian.h"
#include "block/vmdk.h"
#include "vmm/log.h"

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint64_t div_round_up(uint64_t v, uint64_t d)
{
	return v / d + (v % d != 0);
}

void vmdk_header_decode(const uint8_t *raw, struct vmdk_sparse_header *h)
{
	h->version = ld_le32(raw + 4);
	h->flags = ld_le32(raw + 8);
	h->capacity = ld_le64(raw + 12);
	h->grain_size = ld_le64(raw + 20);
	h->desc_offset = ld_le64(raw + 28);
	h->desc_size = ld_le64(raw + 36);
	h->gtes_per_gt = ld_le32(raw + 44);
	h->rgd_offset = ld_le64(raw + 48);
	h->gd_offset = ld_le64(raw + 56);
	h->overhead = ld_le64(raw + 64);
	h->unclean = raw[72];
	h->newlines_ok = !memcmp(raw + 73, "\n \r\n", 4);
	h->compress_algorithm = ld_le16(raw + 77);
}

void vmdk_header_encode(const struct vmdk_sparse_header *h, uint8_t *raw)
{
	memset(raw, 0, VMDK_HEADER_SIZE);
	memcpy(raw, VMDK4_MAGIC_BYTES, 4);
	st_le32(raw + 4, h->version);
	st_le32(raw + 8, h->flags);
	st_le64(raw + 12, h->capacity);
	st_le64(raw + 20, h->grain_size);
	st_le64(raw + 28, h->desc_offset);
	st_le64(raw + 36, h->desc_size);
	st_le32(raw + 44, h->gtes_per_gt);
	st_le64(raw + 48, h->rgd_offset);
	st_le64(raw + 56, h->gd_offset);
	st_le64(raw + 64, h->overhead);
	raw[72] = h->unclean;
	raw[73] = '\n';
	raw[74] = ' ';
	raw[75] = '\r';
	raw[76] = '\n';
	st_le16(raw + 77, h->compress_algorithm);
}

__attribute__((format(printf, 2, 3)))
static void corrupt(struct vmdk_extent *ext, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (ext->errors_logged >= 8)
		return;
	ext->errors_logged++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("vmdk: %s: %s", ext->name, msg);
}

/* streamOptimized images written as a stream keep the real header in a
 * footer: footer marker, header copy, end-of-stream marker. */
static int read_footer(struct vmdk_extent *ext, uint64_t fsize, struct vmdk_sparse_header *h,
		       const char *fn, char *err, size_t errlen)
{
	uint8_t buf[3 * 512];
	uint64_t at = (fsize & ~511ULL);
	int ret;

	if (!(h->flags & VMDK_FLAG_COMPRESS) || at < 4 * 512) {
		snprintf(err, errlen, "%s: gdOffset at end without a stream footer", fn);
		return -EINVAL;
	}
	ret = bfile_pread(ext->file, at - sizeof(buf), buf, sizeof(buf));
	if (ret < 0) {
		snprintf(err, errlen, "%s: cannot read footer: %s", fn, strerror(-ret));
		return ret;
	}
	if (ld_le32(buf + 8) != 0 || ld_le32(buf + 12) != VMDK_MARKER_FOOTER ||
	    memcmp(buf + 512, VMDK4_MAGIC_BYTES, 4) || ld_le32(buf + 1024 + 8) != 0 ||
	    ld_le32(buf + 1024 + 12) != VMDK_MARKER_EOS) {
		snprintf(err, errlen, "%s: invalid stream footer", fn);
		return -EINVAL;
	}
	vmdk_header_decode(buf + 512, h);
	if (h->gd_offset == VMDK_GD_AT_END) {
		snprintf(err, errlen, "%s: footer gdOffset still at end", fn);
		return -EINVAL;
	}
	return 0;
}

/* A table of n 32-bit entries at sector off must lie within the file. */
static bool table_in_file(uint64_t off_sectors, uint64_t bytes, uint64_t fsize)
{
	return off_sectors != 0 && off_sectors <= fsize / VMDK_SECTOR &&
	       bytes <= fsize - off_sectors * VMDK_SECTOR;
}

static int validate_header(const struct vmdk_sparse_header *h, uint64_t fsize, bool writable,
			   const char *fn, char *err, size_t errlen)
{
#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)
	if (h->version < 1 || h->version > 3)
		FAIL("%s: unsupported version %" PRIu32, fn, h->version);
	if (h->version == 3 && writable && !(h->flags & VMDK_FLAG_COMPRESS))
		FAIL("%s: version 3 (changed block tracking) must be opened read-only", fn);
	if ((h->flags & VMDK_FLAG_NL_DETECT) && !h->newlines_ok)
		FAIL("%s: newline-detection bytes altered (text-mode transfer?)", fn);
	if (h->capacity > VMDK_MAX_CAPACITY)
		FAIL("%s: capacity %" PRIu64 " sectors too large", fn, h->capacity);
	if (h->grain_size < VMDK_MIN_GRAIN_SECTORS || h->grain_size > VMDK_MAX_GRAIN_SECTORS ||
	    (h->grain_size & (h->grain_size - 1)))
		FAIL("%s: invalid grainSize %" PRIu64 " (power of two, %u..%u sectors)", fn,
		     h->grain_size, VMDK_MIN_GRAIN_SECTORS, VMDK_MAX_GRAIN_SECTORS);
	if (h->gtes_per_gt == 0 || h->gtes_per_gt > VMDK_MAX_GTES_PER_GT)
		FAIL("%s: invalid numGTEsPerGT %" PRIu32, fn, h->gtes_per_gt);
	if ((h->flags & VMDK_FLAG_COMPRESS) && h->compress_algorithm != VMDK_COMPRESS_DEFLATE)
		FAIL("%s: unsupported compressAlgorithm %u", fn, h->compress_algorithm);
	if (h->desc_offset && (h->desc_size > VMDK_MAX_DESC_SECTORS ||
			       !table_in_file(h->desc_offset, h->desc_size * VMDK_SECTOR, fsize)))
		FAIL("%s: descriptorOffset/descriptorSize outside the file", fn);
	if (h->overhead > fsize / VMDK_SECTOR)
		FAIL("%s: overHead %" PRIu64 " beyond end of file (truncated?)", fn, h->overhead);
	return 0;
#undef FAIL
}

static int load_gd(struct vmdk_extent *ext, uint64_t off_sectors, uint32_t **out, uint64_t fsize,
		   const char *what, const char *fn, char *err, size_t errlen)
{
	uint64_t bytes = (uint64_t)ext->num_gts * 4;
	uint32_t *gd;
	int ret;

	if (!table_in_file(off_sectors, bytes, fsize)) {
		snprintf(err, errlen, "%s: %s %" PRIu64 " (%u entries) outside the file", fn, what,
			 off_sectors, ext->num_gts);
		return -EINVAL;
	}
	gd = malloc(bytes ? bytes : 4);
	if (!gd)
		return -ENOMEM;
	ret = bfile_pread(ext->file, off_sectors * VMDK_SECTOR, gd, bytes);
	if (ret < 0) {
		free(gd);
		snprintf(err, errlen, "%s: cannot read %s: %s", fn, what, strerror(-ret));
		return ret;
	}
	for (uint32_t i = 0; i < ext->num_gts; i++) {
		gd[i] = le32toh(gd[i]);
		if (gd[i] && !table_in_file(gd[i], ext->gt_bytes, fsize)) {
			free(gd);
			snprintf(err, errlen, "%s: %s entry %" PRIu32 " points beyond end of file",
				 fn, what, i);
			return -EINVAL;
		}
	}
	*out = gd;
	return 0;
}

int vmdk_sparse_open(struct vmdk_extent *ext, const char *fn, bool writable,
		     char **desc_out, size_t *desc_len, char *err, size_t errlen)
{
	uint8_t raw[VMDK_HEADER_SIZE];
	struct vmdk_sparse_header *h = &ext->hdr;
	int64_t sz = bfile_size(ext->file);
	uint64_t fsize;
	int ret;

	for (unsigned i = 0; i < VMDK_GT_CACHE; i++)
		ext->gt_cache[i].gt_index = UINT32_MAX;
	ext->zgrain_host = UINT64_MAX;
	if (sz < 0) {
		snprintf(err, errlen, "%s: cannot get size: %s", fn, strerror((int)-sz));
		return (int)sz;
	}
	fsize = (uint64_t)sz;
	if (fsize < VMDK_HEADER_SIZE) {
		snprintf(err, errlen, "%s: too small for a sparse extent header", fn);
		return -EINVAL;
	}
	ret = bfile_pread(ext->file, 0, raw, sizeof(raw));
	if (ret < 0) {
		snprintf(err, errlen, "%s: cannot read header: %s", fn, strerror(-ret));
		return ret;
	}
	if (memcmp(raw, VMDK4_MAGIC_BYTES, 4)) {
		snprintf(err, errlen, "%s: not a hosted sparse extent (magic)", fn);
		return -EINVAL;
	}
	vmdk_header_decode(raw, h);
	if (h->gd_offset == VMDK_GD_AT_END) {
		ret = read_footer(ext, fsize, h, fn, err, errlen);
		if (ret < 0)
			return ret;
	}
	ret = validate_header(h, fsize, writable, fn, err, errlen);
	if (ret < 0)
		return ret;
	ext->grain_bytes = h->grain_size * VMDK_SECTOR;
	ext->compressed = h->flags & VMDK_FLAG_COMPRESS;
	ext->markers = h->flags & VMDK_FLAG_MARKER;
	ext->zero_grain = h->flags & VMDK_FLAG_ZERO_GRAIN;
	ext->gt_bytes = (uint32_t)round_up((uint64_t)h->gtes_per_gt * 4, VMDK_SECTOR);
	uint64_t gt_cover = (uint64_t)h->gtes_per_gt * ext->grain_bytes;
	uint64_t ngts = div_round_up(h->capacity * VMDK_SECTOR, gt_cover);
	if (ngts > VMDK_MAX_GTS) {
		snprintf(err, errlen, "%s: %" PRIu64 " grain tables (capacity) too many", fn, ngts);
		return -EINVAL;
	}
	ext->num_gts = (uint32_t)ngts;
	ret = load_gd(ext, h->gd_offset, &ext->gd, fsize, "gdOffset", fn, err, errlen);
	if (ret < 0)
		return ret;
	if ((h->flags & VMDK_FLAG_RGD) && h->rgd_offset) {	/* 0: none, as QEMU reads it */
		ret = load_gd(ext, h->rgd_offset, &ext->rgd, fsize, "rgdOffset", fn, err, errlen);
		if (ret < 0)
			return ret;
	}
	ext->gd_offset = h->gd_offset * VMDK_SECTOR;
	ext->rgd_offset = h->rgd_offset * VMDK_SECTOR;
	ext->file_end = round_up(fsize, VMDK_SECTOR);
	if (desc_out && h->desc_offset && h->desc_size) {
		size_t n = h->desc_size * VMDK_SECTOR;
		char *d = malloc(n + 1);

		if (!d)
			return -ENOMEM;
		ret = bfile_pread(ext->file, h->desc_offset * VMDK_SECTOR, d, n);
		if (ret < 0) {
			free(d);
			snprintf(err, errlen, "%s: cannot read descriptor: %s", fn, strerror(-ret));
			return ret;
		}
		d[n] = 0;
		*desc_out = d;
		*desc_len = n;
	}
	return 0;
}

void vmdk_sparse_close(struct vmdk_extent *ext)
{
	for (unsigned i = 0; i < VMDK_GT_CACHE; i++)
		free(ext->gt_cache[i].entries);
	free(ext->gd);
	free(ext->rgd);
	free(ext->zgrain);
	ext->gd = ext->rgd = NULL;
	ext->zgrain = NULL;
}

/* The cached grain table gt_idx (which must have a GD entry). */
static int get_gt(struct vmdk_extent *ext, uint32_t gt_idx, struct vmdk_gt_slot **out)
{
	struct vmdk_gt_slot *victim = &ext->gt_cache[0];
	uint32_t n = ext->hdr.gtes_per_gt;
	int ret;

	for (unsigned i = 0; i < VMDK_GT_CACHE; i++) {
		struct vmdk_gt_slot *s = &ext->gt_cache[i];

		if (s->gt_index == gt_idx) {
			s->lru = ++ext->lru_clock;
			*out = s;
			return 0;
		}
		if (s->lru < victim->lru)
			victim = s;
	}
	if (!victim->entries) {
		victim->entries = malloc(n * 4);
		if (!victim->entries)
			return -ENOMEM;
	}
	victim->gt_index = UINT32_MAX;
	ret = bfile_pread(ext->file, (uint64_t)ext->gd[gt_idx] * VMDK_SECTOR, victim->entries,
			  n * 4);
	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < n; i++)
		victim->entries[i] = le32toh(victim->entries[i]);
	victim->gt_index = gt_idx;
	victim->lru = ++ext->lru_clock;
	*out = victim;
	return 0;
}

static void split_grain(const struct vmdk_extent *ext, uint64_t off, uint32_t *gt_idx,
			uint32_t *gte)
{
	uint64_t grain = off / ext->grain_bytes;

	*gt_idx = (uint32_t)(grain / ext->hdr.gtes_per_gt);
	*gte = (uint32_t)(grain % ext->hdr.gtes_per_gt);
}

int vmdk_sparse_lookup(struct vmdk_extent *ext, uint64_t off, enum vmdk_grain_state *st,
		       uint64_t *host_off)
{
	struct vmdk_gt_slot *gt;
	uint32_t gt_idx, gte, e;
	uint64_t host, need;
	int ret;

	split_grain(ext, off, &gt_idx, &gte);
	*host_off = 0;
	if (gt_idx >= ext->num_gts) {
		corrupt(ext, "offset %" PRIu64 " beyond the grain directory", off);
		return -EIO;
	}
	if (!ext->gd[gt_idx]) {
		*st = VMDK_GRAIN_UNALLOC;
		return 0;
	}
	ret = get_gt(ext, gt_idx, &gt);
	if (ret < 0)
		return ret;
	e = gt->entries[gte];
	if (e == 0) {
		*st = VMDK_GRAIN_UNALLOC;
		return 0;
	}
	if (e == 1 && ext->zero_grain) {
		*st = VMDK_GRAIN_ZERO;
		return 0;
	}
	host = (uint64_t)e * VMDK_SECTOR;
	need = ext->compressed ? (ext->markers ? VMDK_GRAIN_MARKER_SIZE : 1) : ext->grain_bytes;
	if (host < VMDK_SECTOR || host > ext->file_end || need > ext->file_end - host) {
		corrupt(ext, "grain table %" PRIu32 " entry %" PRIu32 " points beyond end of file",
			gt_idx, gte);
		return -EIO;
	}
	*st = ext->compressed ? VMDK_GRAIN_COMPRESSED : VMDK_GRAIN_DATA;
	*host_off = host;
	return 0;
}

/* Inflate the compressed grain at host into ext->zgrain (cached). */
static int read_compressed(struct vmdk_extent *ext, uint64_t host)
{
	uLong bound = compressBound((uLong)ext->grain_bytes);
	uint64_t data = host, clen = bound;
	uint8_t *cbuf;
	z_stream zs;
	int ret;

	if (ext->zgrain_host == host)
		return 0;
	if (!ext->zgrain) {
		ext->zgrain = malloc(ext->grain_bytes);
		if (!ext->zgrain)
			return -ENOMEM;
	}
	if (ext->markers) {
		uint8_t m[VMDK_GRAIN_MARKER_SIZE];

		ret = bfile_pread(ext->file, host, m, sizeof(m));
		if (ret < 0)
			return ret;
		clen = ld_le32(m + 8);
		data = host + VMDK_GRAIN_MARKER_SIZE;
		if (clen == 0 || clen > bound || clen > ext->file_end - data) {
			corrupt(ext, "compressed grain at %" PRIu64 " has invalid size %" PRIu64,
				host, clen);
			return -EIO;
		}
	} else if (clen > ext->file_end - data) {
		clen = ext->file_end - data;
	}
	cbuf = malloc(clen);
	if (!cbuf)
		return -ENOMEM;
	ret = bfile_pread(ext->file, data, cbuf, clen);
	if (ret < 0)
		goto out;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit(&zs) != Z_OK) {
		ret = -ENOMEM;
		goto out;
	}
	zs.next_in = cbuf;
	zs.avail_in = (uInt)clen;
	zs.next_out = ext->zgrain;
	zs.avail_out = (uInt)ext->grain_bytes;
	int zret = inflate(&zs, Z_FINISH);
	size_t got = ext->grain_bytes - zs.avail_out;
	inflateEnd(&zs);
	if (zret != Z_STREAM_END) {
		corrupt(ext, "compressed grain at %" PRIu64 " does not inflate", host);
		ret = -EIO;
		goto out;
	}
	memset(ext->zgrain + got, 0, ext->grain_bytes - got);
	ext->zgrain_host = host;
	ret = 0;
out:
	free(cbuf);
	return ret;
}

int vmdk_sparse_read(struct bdev *bs, struct vmdk_extent *ext, uint64_t off, void *buf,
		     size_t len)
{
	enum vmdk_grain_state st;
	uint64_t host, in_grain = off % ext->grain_bytes;
	int ret = vmdk_sparse_lookup(ext, off, &st, &host);

	if (ret < 0)
		return ret;
	switch (st) {
	case VMDK_GRAIN_UNALLOC:
		ret = bs->backing ? vmdk_backing_check(bs) : 0;
		return ret < 0 ? ret : block_read_backing(bs, ext->start + off, buf, len);
	case VMDK_GRAIN_ZERO:
		memset(buf, 0, len);
		return 0;
	case VMDK_GRAIN_DATA:
		return bfile_pread(ext->file, host + in_grain, buf, len);
	case VMDK_GRAIN_COMPRESSED:
		ret = read_compressed(ext, host);
		if (ret == 0)
			memcpy(buf, ext->zgrain + in_grain, len);
		return ret;
	}
	return -EIO;
}

static int write_le32_at(struct bfile *f, uint64_t at, uint32_t v)
{
	uint8_t b[4];

	st_le32(b, v);
	return bfile_pwrite(f, at, b, 4);
}

/* Reserve len bytes at the end of the file, aligned to align. */
static int alloc_space(struct vmdk_extent *ext, uint64_t len, uint64_t align, uint64_t *at)
{
	uint64_t pos = round_up(ext->file_end, align);

	if (pos + len < pos || (pos + len) / VMDK_SECTOR > UINT32_MAX) {
		corrupt(ext, "extent full: grain offsets exceed 32 bits");
		return -ENOSPC;
	}
	*at = pos;
	ext->file_end = round_up(pos + len, VMDK_SECTOR);
	return 0;
}

/* Give gt_idx a zeroed grain table (and a redundant one): tables are
 * written before the directory entries that point at them. */
static int ensure_gt(struct vmdk_extent *ext, uint32_t gt_idx)
{
	uint64_t gt, rgt = 0;
	uint8_t *zero;
	int ret;

	if (ext->gd[gt_idx] && (!ext->rgd || ext->rgd[gt_idx]))
		return 0;
	zero = calloc(1, ext->gt_bytes);
	if (!zero)
		return -ENOMEM;
	ret = alloc_space(ext, ext->gt_bytes, VMDK_SECTOR, &gt);
	if (!ret && ext->rgd)
		ret = alloc_space(ext, ext->gt_bytes, VMDK_SECTOR, &rgt);
	if (!ret && !ext->gd[gt_idx])
		ret = bfile_pwrite(ext->file, gt, zero, ext->gt_bytes);
	if (!ret && ext->rgd && !ext->rgd[gt_idx])
		ret = bfile_pwrite(ext->file, rgt, zero, ext->gt_bytes);
	free(zero);
	if (!ret && !ext->gd[gt_idx]) {
		ret = write_le32_at(ext->file, ext->gd_offset + gt_idx * 4ULL,
				    (uint32_t)(gt / VMDK_SECTOR));
		if (!ret)
			ext->gd[gt_idx] = (uint32_t)(gt / VMDK_SECTOR);
	}
	if (!ret && ext->rgd && !ext->rgd[gt_idx]) {
		ret = write_le32_at(ext->file, ext->rgd_offset + gt_idx * 4ULL,
				    (uint32_t)(rgt / VMDK_SECTOR));
		if (!ret)
			ext->rgd[gt_idx] = (uint32_t)(rgt / VMDK_SECTOR);
	}
	return ret;
}

/* Point the grain at off to value (a sector, or 1 for a zeroed grain):
 * the GT entry first, then the redundant GT entry. */
static int set_gte(struct vmdk_extent *ext, uint64_t off, uint32_t value)
{
	struct vmdk_gt_slot *gt;
	uint32_t gt_idx, gte;
	int ret;

	split_grain(ext, off, &gt_idx, &gte);
	ret = ensure_gt(ext, gt_idx);
	if (ret < 0)
		return ret;
	ret = get_gt(ext, gt_idx, &gt);
	if (ret < 0)
		return ret;
	ret = write_le32_at(ext->file, (uint64_t)ext->gd[gt_idx] * VMDK_SECTOR + gte * 4ULL,
			    value);
	if (ret < 0) {
		gt->gt_index = UINT32_MAX;	/* unknown on disk: reload */
		return ret;
	}
	gt->entries[gte] = value;
	if (ext->rgd)
		ret = write_le32_at(ext->file,
				    (uint64_t)ext->rgd[gt_idx] * VMDK_SECTOR + gte * 4ULL, value);
	return ret;
}

/* Deflate a whole grain behind a grain marker at the end of the file. */
static int write_compressed_grain(struct vmdk_extent *ext, uint64_t grain_off, const uint8_t *g)
{
	uLongf clen = compressBound((uLong)ext->grain_bytes);
	size_t hdr = ext->markers ? VMDK_GRAIN_MARKER_SIZE : 0;
	uint64_t at, total;
	uint8_t *buf;
	int ret;

	buf = calloc(1, round_up(hdr + clen, VMDK_SECTOR));
	if (!buf)
		return -ENOMEM;
	if (compress2(buf + hdr, &clen, g, (uLong)ext->grain_bytes, Z_DEFAULT_COMPRESSION) !=
	    Z_OK) {
		free(buf);
		return -EIO;
	}
	if (hdr) {
		st_le64(buf, grain_off / VMDK_SECTOR);
		st_le32(buf + 8, (uint32_t)clen);
	}
	total = round_up(hdr + clen, VMDK_SECTOR);
	ret = alloc_space(ext, total, VMDK_SECTOR, &at);
	if (!ret)
		ret = bfile_pwrite(ext->file, at, buf, total);
	free(buf);
	if (!ret)
		ret = set_gte(ext, grain_off, (uint32_t)(at / VMDK_SECTOR));
	return ret;
}

/* Current contents of the whole grain at grain_off into g. */
static int read_whole_grain(struct bdev *bs, struct vmdk_extent *ext, uint64_t grain_off,
			    uint8_t *g)
{
	uint64_t n = ext->grain_bytes;

	if (grain_off + n > ext->len) {
		n = ext->len - grain_off;
		memset(g + n, 0, ext->grain_bytes - n);
	}
	return vmdk_sparse_read(bs, ext, grain_off, g, n);
}

int vmdk_sparse_write(struct bdev *bs, struct vmdk_extent *ext, uint64_t off,
		      const void *buf, size_t len)
{
	uint64_t in_grain = off % ext->grain_bytes, grain_off = off - in_grain, host;
	enum vmdk_grain_state st;
	uint8_t *g;
	int ret = vmdk_sparse_lookup(ext, off, &st, &host);

	if (ret < 0)
		return ret;
	if (st == VMDK_GRAIN_DATA)
		return bfile_pwrite(ext->file, host + in_grain, buf, len);
	g = malloc(ext->grain_bytes);
	if (!g)
		return -ENOMEM;
	ret = 0;
	if (len != ext->grain_bytes)
		ret = read_whole_grain(bs, ext, grain_off, g);
	if (ret < 0)
		goto out;
	memcpy(g + in_grain, buf, len);
	if (ext->compressed) {
		ret = write_compressed_grain(ext, grain_off, g);
		goto out;
	}
	ret = alloc_space(ext, ext->grain_bytes, ext->grain_bytes, &host);
	if (!ret)
		ret = bfile_pwrite(ext->file, host, g, ext->grain_bytes);
	if (!ret)
		ret = set_gte(ext, grain_off, (uint32_t)(host / VMDK_SECTOR));
out:
	free(g);
	return ret;
}

uint64_t vmdk_sparse_absent_span(const struct vmdk_extent *ext, uint64_t off)
{
	uint64_t span = (uint64_t)ext->hdr.gtes_per_gt * ext->grain_bytes;
	uint64_t gt_idx = off / span, end = (gt_idx + 1) * span;

	if (gt_idx >= ext->num_gts || ext->gd[gt_idx])
		return 0;
	return (end < ext->len ? end : ext->len) - off;
}

int vmdk_sparse_zero(struct bdev *bs, struct vmdk_extent *ext, uint64_t off, size_t len)
{
	uint64_t in_grain = off % ext->grain_bytes, host;
	bool whole = in_grain == 0 && (len == ext->grain_bytes || off + len == ext->len);
	enum vmdk_grain_state st;
	int ret = vmdk_sparse_lookup(ext, off, &st, &host);
	uint8_t *z;

	if (ret < 0)
		return ret;
	if (st == VMDK_GRAIN_ZERO || (st == VMDK_GRAIN_UNALLOC && !bs->backing))
		return 0;
	if (whole && ext->zero_grain)
		return set_gte(ext, off, 1);
	if (st == VMDK_GRAIN_DATA)
		return bfile_write_zeroes(ext->file, host + in_grain, len);
	z = calloc(1, len);
	if (!z)
		return -ENOMEM;
	ret = vmdk_sparse_write(bs, ext, off, z, len);
	free(z);
	return ret;
}

int vmdk_sparse_make_empty(struct vmdk_extent *ext)
{
	uint64_t gd_bytes = round_up((uint64_t)ext->num_gts * 4, VMDK_SECTOR);
	uint64_t end = ext->hdr.overhead * VMDK_SECTOR;
	int ret = 0;

	if (ext->compressed)
		return -ENOTSUP;	/* streams are append-only */
	if (ext->hdr.desc_offset)
		end = end > (ext->hdr.desc_offset + ext->hdr.desc_size) * VMDK_SECTOR ? end :
		      (ext->hdr.desc_offset + ext->hdr.desc_size) * VMDK_SECTOR;
	if (ext->gd_offset + gd_bytes > end)
		end = ext->gd_offset + gd_bytes;
	if (ext->rgd && ext->rgd_offset + gd_bytes > end)
		end = ext->rgd_offset + gd_bytes;
	/* grain tables stay (all unallocated); grains are cut off the end */
	for (uint32_t t = 0; t < ext->num_gts && ret == 0; t++) {
		for (int r = 0; r < 2 && ret == 0; r++) {
			const uint32_t *dir = r ? ext->rgd : ext->gd;
			uint64_t at = dir && dir[t] ? (uint64_t)dir[t] * VMDK_SECTOR : 0;

			if (!at)
				continue;
			ret = bfile_write_zeroes(ext->file, at, ext->gt_bytes);
			if (at + ext->gt_bytes > end)
				end = at + ext->gt_bytes;
		}
	}
	for (unsigned i = 0; i < VMDK_GT_CACHE; i++)
		ext->gt_cache[i].gt_index = UINT32_MAX;
	ext->zgrain_host = UINT64_MAX;
	if (ret == 0)
		ret = bfile_flush(ext->file);
	if (ret == 0 && end < ext->file_end) {
		ret = bfile_truncate(ext->file, end);
		if (ret == 0)
			ext->file_end = round_up(end, VMDK_SECTOR);
	}
	return ret;
}

int vmdk_sparse_grain_sector(struct vmdk_extent *ext, uint64_t off, uint64_t *sector)
{
	struct vmdk_gt_slot *gt;
	uint32_t gt_idx, gte, e;
	int ret;

	split_grain(ext, off, &gt_idx, &gte);
	*sector = 0;
	if (gt_idx >= ext->num_gts)
		return -EINVAL;
	if (!ext->gd[gt_idx])
		return 0;
	ret = get_gt(ext, gt_idx, &gt);
	if (ret < 0)
		return ret;
	e = gt->entries[gte];
	if (!(e == 1 && ext->zero_grain))
		*sector = e;
	return 0;
}

int vmdk_sparse_create(struct bfile *f, const struct vmdk_sparse_layout *l)
{
	struct vmdk_sparse_header h = {0};
	uint64_t grains = div_round_up(l->capacity, VMDK_CREATE_GRAIN);
	uint64_t ngts = div_round_up(grains, VMDK_MAX_GTES_PER_GT);
	uint64_t gt_sectors = VMDK_MAX_GTES_PER_GT * 4 / VMDK_SECTOR;
	uint64_t gd_sectors = div_round_up(ngts * 4, VMDK_SECTOR);
	uint8_t raw[VMDK_HEADER_SIZE];
	uint32_t *gd;
	int ret;

	if (ngts > VMDK_MAX_GTS)
		return -EFBIG;
	h.version = l->compressed ? 3 : l->zeroed_grain ? 2 : 1;
	h.flags = VMDK_FLAG_NL_DETECT | VMDK_FLAG_RGD;
	if (l->compressed)
		h.flags |= VMDK_FLAG_COMPRESS | VMDK_FLAG_MARKER;
	if (l->zeroed_grain)
		h.flags |= VMDK_FLAG_ZERO_GRAIN;
	h.compress_algorithm = l->compressed ? VMDK_COMPRESS_DEFLATE : 0;
	h.capacity = l->capacity;
	h.grain_size = VMDK_CREATE_GRAIN;
	h.gtes_per_gt = VMDK_MAX_GTES_PER_GT;
	h.desc_offset = l->desc ? 1 : 0;
	h.desc_size = l->desc ? VMDK_CREATE_DESC_SECTORS : 0;
	h.rgd_offset = 1 + h.desc_size;
	h.gd_offset = h.rgd_offset + gd_sectors + ngts * gt_sectors;
	h.overhead = round_up(h.gd_offset + gd_sectors + ngts * gt_sectors, VMDK_CREATE_GRAIN);
	if (l->desc && strlen(l->desc) > VMDK_CREATE_DESC_SECTORS * VMDK_SECTOR)
		return -E2BIG;

	ret = bfile_truncate(f, h.overhead * VMDK_SECTOR);
	if (ret < 0)
		return ret;
	vmdk_header_encode(&h, raw);
	ret = bfile_pwrite(f, 0, raw, sizeof(raw));
	if (!ret && l->desc)
		ret = bfile_pwrite(f, VMDK_SECTOR, l->desc, strlen(l->desc));
	if (ret < 0)
		return ret;
	gd = calloc(gd_sectors ? gd_sectors : 1, VMDK_SECTOR);
	if (!gd)
		return -ENOMEM;
	for (unsigned pass = 0; pass < 2 && !ret; pass++) {
		uint64_t dir = pass ? h.gd_offset : h.rgd_offset;

		for (uint64_t i = 0; i < ngts; i++)
			gd[i] = htole32((uint32_t)(dir + gd_sectors + i * gt_sectors));
		ret = bfile_pwrite(f, dir * VMDK_SECTOR, gd, gd_sectors * VMDK_SECTOR);
	}
	free(gd);
	return ret;
}
