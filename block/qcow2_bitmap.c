/* qcow2 persistent dirty bitmaps, kept as QEMU keeps them safe: the
 * bitmaps extension and directory are validated at open; a valid one is
 * preserved (its autoclear bit stays set, header rewrites keep the
 * extension, check counts its clusters) and every bitmap is marked in-use
 * before the first change to the image, which is what QEMU does while it
 * has an image open: an in-use bitmap is known inconsistent, QEMU will
 * not use it and the user removes it (qemu-img bitmap --remove). We never
 * update bitmap contents. An extension that does not validate is handled
 * as the spec demands of a program without bitmap support: its autoclear
 * bit is cleared on read-write open, so every reader treats it as
 * inconsistent (its clusters then count as leaks, as in QEMU). `info`
 * lists the bitmaps of a valid extension as qemu-img does (flags, name,
 * granularity).
 *
 * Extension data (big-endian): nb_bitmaps u32, reserved u32,
 * bitmap_directory_size u64, bitmap_directory_offset u64. Directory
 * entry: bitmap_table_offset u64, bitmap_table_size u32 (entries),
 * flags u32 (0 in_use, 1 auto, 2 extra_data_compatible), type u8 (1),
 * granularity_bits u8, name_size u16, extra_data_size u32, extra data,
 * name, padding to 8. Bitmap table entry: bits 9..55 the data cluster,
 * bit 0 "all ones" when there is none. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "block/bfile.h"
#include "block/qcow2.h"
#include "vmm/log.h"

#define BM_MAX_BITMAPS		65535			/* as QEMU */
#define BM_MAX_DIR_SIZE		(1024u * BM_MAX_BITMAPS)
#define BM_MAX_TABLE_SIZE	0x8000000u
#define BM_MAX_NAME		1023
#define BM_ENTRY_FIXED		24
#define BM_FLAG_IN_USE		(1u << 0)
#define BM_FLAG_AUTO		(1u << 1)
#define BM_FLAG_EXTRA_COMPAT	(1u << 2)
#define BM_TYPE_DIRTY		1
#define BM_TABLE_OFFSET_MASK	0x00fffffffffffe00ull
#define BM_TABLE_RESERVED	0xff000000000001feull

void qcow2_bitmaps_parse_ext(struct qcow2 *s, const uint8_t *d, uint32_t len)
{
	s->bm_ext_seen = true;
	if (len < 24)
		return;
	s->bm_nb = ld_be32(d);
	s->bm_ext_reserved = ld_be32(d + 4);
	s->bm_dir_size = ld_be64(d + 8);
	s->bm_dir_offset = ld_be64(d + 16);
	s->bm_ext_len_ok = true;
}

/* Walk the directory in buf: every entry well-formed, in bounds and of a
 * kind we may mark in-use. Calls fn for each entry when given. */
static int walk_dir(struct qcow2 *s, uint8_t *buf,
		    int (*fn)(struct qcow2 *s, uint8_t *entry, void *ctx), void *ctx)
{
	uint64_t pos = 0;
	int ret;

	for (uint32_t i = 0; i < s->bm_nb; i++) {
		uint8_t *e = buf + pos;
		uint64_t toff, esize;
		uint32_t tsize, flags, extra;
		unsigned gran, nsize;

		if (s->bm_dir_size - pos < BM_ENTRY_FIXED)
			return -EINVAL;
		toff = ld_be64(e);
		tsize = ld_be32(e + 8);
		flags = ld_be32(e + 12);
		gran = e[17];
		nsize = ld_be16(e + 18);
		extra = ld_be32(e + 20);
		esize = qc_align_up(BM_ENTRY_FIXED + (uint64_t)extra + nsize, 8);
		if (esize > s->bm_dir_size - pos || !tsize || tsize > BM_MAX_TABLE_SIZE ||
		    !toff || (toff & (s->cluster_size - 1)) ||
		    !qcow2_offset_sane(s, toff, (uint64_t)tsize * 8) ||
		    (flags & ~(BM_FLAG_IN_USE | BM_FLAG_AUTO | BM_FLAG_EXTRA_COMPAT)) ||
		    e[16] != BM_TYPE_DIRTY || gran < 9 || gran > 31 || !nsize ||
		    nsize > BM_MAX_NAME || (extra && !(flags & BM_FLAG_EXTRA_COMPAT)))
			return -EINVAL;
		if (fn && (ret = fn(s, e, ctx)) < 0)
			return ret;
		pos += esize;
	}
	return pos == s->bm_dir_size ? 0 : -EINVAL;
}

static int read_dir(struct qcow2 *s, uint8_t **out)
{
	uint8_t *buf = malloc(s->bm_dir_size);

	if (!buf)
		return -ENOMEM;
	if (bfile_pread(s->file, s->bm_dir_offset, buf, s->bm_dir_size) < 0) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	return 0;
}

int qcow2_bitmaps_load(struct qcow2 *s)
{
	uint8_t *dir;
	int ret;

	s->bitmaps = false;
	if (!(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS) || !s->bm_ext_seen)
		return 0;
	if (!s->bm_ext_len_ok || s->bm_ext_reserved || !s->bm_nb || s->bm_nb > BM_MAX_BITMAPS ||
	    !s->bm_dir_size || s->bm_dir_size > BM_MAX_DIR_SIZE ||
	    (s->bm_dir_offset & (s->cluster_size - 1)) ||
	    !qcow2_offset_sane(s, s->bm_dir_offset, s->bm_dir_size))
		goto invalid;
	ret = read_dir(s, &dir);
	if (ret == -ENOMEM)
		return ret;
	if (ret == 0) {
		ret = walk_dir(s, dir, NULL, NULL);
		free(dir);
	}
	if (ret < 0)
		goto invalid;
	s->bitmaps = true;
	return 0;
invalid:
	log_error("qcow2: %s: the bitmaps extension is invalid: on a read-write open its "
		  "autoclear bit is cleared (the bitmaps become inconsistent)", s->fname);
	return 0;
}

static int set_in_use(struct qcow2 *s, uint8_t *e, void *ctx)
{
	st_be32(e + 12, ld_be32(e + 12) | BM_FLAG_IN_USE);
	return 0;
}

int qcow2_bitmaps_mark_in_use(struct qcow2 *s)
{
	uint8_t *dir;
	int ret;

	if (!s->bitmaps || s->bitmaps_in_use)
		return 0;
	ret = read_dir(s, &dir);
	if (ret < 0)
		return ret;
	ret = walk_dir(s, dir, set_in_use, NULL);
	if (ret == 0 && bfile_pwrite(s->file, s->bm_dir_offset, dir, s->bm_dir_size) < 0)
		ret = -EIO;
	if (ret == 0 && qcow2_sync(s) < 0)
		ret = -EIO;
	free(dir);
	if (ret == 0)
		s->bitmaps_in_use = true;
	return ret;
}

size_t qcow2_bitmaps_ext(const struct qcow2 *s, uint8_t out[24])
{
	if (!s->bitmaps)
		return 0;
	st_be32(out, s->bm_nb);
	st_be32(out + 4, 0);
	st_be64(out + 8, s->bm_dir_size);
	st_be64(out + 16, s->bm_dir_offset);
	return 24;
}

struct count_ctx {
	void (*ref)(void *opaque, uint64_t off, uint64_t len);
	void *opaque;
	uint64_t *table;		/* one cluster of bitmap table entries */
	uint64_t bad;			/* malformed table entries */
};

static int count_entry(struct qcow2 *s, uint8_t *e, void *ctx)
{
	struct count_ctx *c = ctx;
	uint64_t toff = ld_be64(e), bytes = (uint64_t)ld_be32(e + 8) * 8, cs = s->cluster_size;

	c->ref(c->opaque, toff, bytes);
	for (uint64_t done = 0; done < bytes; done += cs) {
		uint64_t n = bytes - done < cs ? bytes - done : cs;

		if (bfile_pread(s->file, toff + done, c->table, n) < 0)
			return -EIO;
		for (uint64_t i = 0; i < n / 8; i++) {
			uint64_t v = ld_be64((uint8_t *)&c->table[i]);
			uint64_t off = v & BM_TABLE_OFFSET_MASK;

			if ((v & BM_TABLE_RESERVED) || (off & (cs - 1)))
				c->bad++;
			else if (off)
				c->ref(c->opaque, off, cs);
		}
	}
	return 0;
}

int qcow2_bitmaps_count(struct qcow2 *s, void (*ref)(void *opaque, uint64_t off, uint64_t len),
			void *opaque, uint64_t *bad)
{
	struct count_ctx c = { ref, opaque, malloc(s->cluster_size), 0 };
	uint8_t *dir = NULL;
	int ret;

	*bad = 0;
	if (!s->bitmaps) {
		free(c.table);
		return 0;
	}
	ret = c.table ? read_dir(s, &dir) : -ENOMEM;
	if (ret == 0) {
		ref(opaque, s->bm_dir_offset, s->bm_dir_size);
		ret = walk_dir(s, dir, count_entry, &c);
	}
	*bad = c.bad;
	free(dir);
	free(c.table);
	return ret;
}

struct info_ctx {
	const struct block_info_writer *w;
	unsigned index;
};

/* One bitmap as qemu-img info lists it: flags ("in-use", "auto", in that
 * order; an empty list when neither), name, granularity. */
static int info_entry(struct qcow2 *s, uint8_t *e, void *ctx)
{
	struct info_ctx *c = ctx;
	const struct block_info_writer *w = c->w;
	uint32_t flags = ld_be32(e + 12), extra = ld_be32(e + 20);
	unsigned nsize = ld_be16(e + 18), nflags = 0;
	char key[64], name[BM_MAX_NAME + 1];

	memcpy(name, e + BM_ENTRY_FIXED + extra, nsize);
	name[nsize] = '\0';
	snprintf(key, sizeof(key), "bitmaps[%u].flags[]", c->index);
	w->str(w->opaque, key, "");
	if (flags & BM_FLAG_IN_USE) {
		snprintf(key, sizeof(key), "bitmaps[%u].flags[%u]", c->index, nflags++);
		w->str(w->opaque, key, "in-use");
	}
	if (flags & BM_FLAG_AUTO) {
		snprintf(key, sizeof(key), "bitmaps[%u].flags[%u]", c->index, nflags++);
		w->str(w->opaque, key, "auto");
	}
	snprintf(key, sizeof(key), "bitmaps[%u].name", c->index);
	w->str(w->opaque, key, name);
	snprintf(key, sizeof(key), "bitmaps[%u].granularity", c->index);
	w->num(w->opaque, key, 1ull << e[17]);
	c->index++;
	return 0;
}

int qcow2_bitmaps_info(struct qcow2 *s, const struct block_info_writer *w)
{
	struct info_ctx c = { w, 0 };
	uint8_t *dir;
	int ret;

	if (!s->bitmaps)
		return 0;
	ret = read_dir(s, &dir);
	if (ret < 0)
		return ret;
	ret = walk_dir(s, dir, info_entry, &c);
	free(dir);
	return ret;
}
