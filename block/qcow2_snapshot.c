/* qcow2 internal snapshots: the snapshot table (read with every length
 * bounded, written to a new location and switched in the header), and
 * create / apply / delete / list, which copy L1 tables and move
 * references between the active state and the snapshots, keeping the
 * COPIED flags of the active tables exact. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "block/bfile.h"
#include "block/qcow2.h"

#define SN_MAX_EXTRA 1024

void qcow2_snapshots_free(struct qcow2 *s)
{
	for (uint32_t i = 0; s->snaps && i < s->nb_snapshots; i++) {
		free(s->snaps[i].id);
		free(s->snaps[i].name);
		free(s->snaps[i].extra);
	}
	free(s->snaps);
	s->snaps = NULL;
}

int qcow2_snapshots_read(struct qcow2 *s, char *err, size_t errlen)
{
	uint64_t pos = s->snapshots_offset, fsize;
	int64_t fs = bfile_size(s->file);

	s->snapshots_size = 0;
	if (!s->nb_snapshots)
		return 0;
	if (fs < 0)
		return -EIO;
	fsize = (uint64_t)fs;
	s->snaps = calloc(s->nb_snapshots, sizeof(*s->snaps));
	if (!s->snaps)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		struct qcow2_snapshot *sn = &s->snaps[i];
		uint8_t h[40];
		uint16_t id_len, name_len;

		pos = qc_align_up(pos, 8);
		if (pos - s->snapshots_offset + 40 > QCOW2_MAX_SN_TABLE || pos + 40 > fsize) {
			snprintf(err, errlen, "qcow2: %s: snapshot table entry %u extends past the "
				 "end of the file or the table size limit", s->fname, i);
			return -EINVAL;
		}
		if (bfile_pread(s->file, pos, h, 40) < 0)
			return -EIO;
		sn->l1_offset = ld_be64(h);
		sn->l1_size = ld_be32(h + 8);
		id_len = ld_be16(h + 12);
		name_len = ld_be16(h + 14);
		sn->date_sec = ld_be32(h + 16);
		sn->date_nsec = ld_be32(h + 20);
		sn->vm_clock_nsec = ld_be64(h + 24);
		sn->vm_state_size = ld_be32(h + 32);
		sn->extra_size = ld_be32(h + 36);
		if (sn->extra_size > SN_MAX_EXTRA) {
			snprintf(err, errlen, "qcow2: %s: snapshot %u: extra_data_size %u exceeds "
				 "%u", s->fname, i, sn->extra_size, SN_MAX_EXTRA);
			return -EINVAL;
		}
		if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES ||
		    (sn->l1_offset & (s->cluster_size - 1)) ||
		    sn->l1_offset + (uint64_t)sn->l1_size * 8 > fsize) {
			snprintf(err, errlen, "qcow2: %s: snapshot %u: L1 table (offset %#llx, "
				 "%u entries) is invalid", s->fname, i,
				 (unsigned long long)sn->l1_offset, sn->l1_size);
			return -EINVAL;
		}
		uint64_t body = (uint64_t)sn->extra_size + id_len + name_len;
		pos += 40;
		if (pos - s->snapshots_offset + body > QCOW2_MAX_SN_TABLE || pos + body > fsize) {
			snprintf(err, errlen, "qcow2: %s: snapshot table entry %u extends past the "
				 "end of the file or the table size limit", s->fname, i);
			return -EINVAL;
		}
		sn->extra = malloc(sn->extra_size ? sn->extra_size : 1);
		sn->id = calloc(1, (size_t)id_len + 1);
		sn->name = calloc(1, (size_t)name_len + 1);
		if (!sn->extra || !sn->id || !sn->name)
			return -ENOMEM;
		if (bfile_pread(s->file, pos, sn->extra, sn->extra_size) < 0 ||
		    bfile_pread(s->file, pos + sn->extra_size, sn->id, id_len) < 0 ||
		    bfile_pread(s->file, pos + sn->extra_size + id_len, sn->name, name_len) < 0)
			return -EIO;
		sn->disk_size = s->bs->size;
		sn->icount = UINT64_MAX;
		if (sn->extra_size >= 8)
			sn->vm_state_size = ld_be64(sn->extra);
		if (sn->extra_size >= 16)
			sn->disk_size = ld_be64(sn->extra + 8);
		if (sn->extra_size >= 24)
			sn->icount = ld_be64(sn->extra + 16);
		pos += body;
	}
	s->snapshots_size = qc_align_up(pos, 8) - s->snapshots_offset;
	return 0;
}

static int write_table(struct qcow2 *s, struct qcow2_snapshot *snaps, uint32_t n)
{
	uint64_t size = 0, pos = 0, old_off = s->snapshots_offset, old_size = s->snapshots_size;
	uint8_t *buf;
	int64_t off = 0;
	int ret = 0;

	for (uint32_t i = 0; i < n; i++)
		size += qc_align_up(40 + (uint64_t)snaps[i].extra_size + strlen(snaps[i].id) +
				    strlen(snaps[i].name), 8);
	if (size > QCOW2_MAX_SN_TABLE)
		return -EFBIG;
	buf = calloc(1, size ? size : 1);
	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct qcow2_snapshot *sn = &snaps[i];
		size_t il = strlen(sn->id), nl = strlen(sn->name);
		st_be64(buf + pos, sn->l1_offset);
		st_be32(buf + pos + 8, sn->l1_size);
		st_be16(buf + pos + 12, (uint16_t)il);
		st_be16(buf + pos + 14, (uint16_t)nl);
		st_be32(buf + pos + 16, sn->date_sec);
		st_be32(buf + pos + 20, sn->date_nsec);
		st_be64(buf + pos + 24, sn->vm_clock_nsec);
		st_be32(buf + pos + 32, sn->vm_state_size > UINT32_MAX ? 0 :
			 (uint32_t)sn->vm_state_size);
		st_be32(buf + pos + 36, sn->extra_size);
		memcpy(buf + pos + 40, sn->extra, sn->extra_size);
		memcpy(buf + pos + 40 + sn->extra_size, sn->id, il);
		memcpy(buf + pos + 40 + sn->extra_size + il, sn->name, nl);
		pos += qc_align_up(40 + (uint64_t)sn->extra_size + il + nl, 8);
	}
	if (size) {
		off = qcow2_alloc_clusters(s, qc_align_up(size, s->cluster_size) >>
					   s->cluster_bits);
		if (off < 0) {
			free(buf);
			return (int)off;
		}
		ret = bfile_pwrite(s->file, (uint64_t)off, buf, size) < 0 ? -EIO : 0;
		if (ret == 0)
			ret = qcow2_sync(s) < 0 ? -EIO : 0;
	}
	free(buf);
	if (ret < 0)
		return ret;
	{
		uint8_t h[12];
		st_be32(h, n);
		st_be64(h + 4, (uint64_t)off);
		ret = qcow2_write_header_fields(s, QH_NB_SNAPSHOTS, h, 12);
		if (ret == 0)
			ret = qcow2_sync(s) < 0 ? -EIO : 0;
		if (ret < 0)
			return ret;
	}
	s->snapshots_offset = (uint64_t)off;
	s->snapshots_size = size;
	if (old_off && old_size)
		ret = qcow2_free_clusters(s, old_off, qc_align_up(old_size, s->cluster_size), true);
	return ret;
}

int qcow2_update_tree_refcount(struct qcow2 *s, uint64_t *l1, uint32_t l1_size,
			       uint64_t l1_offset, int addend)
{
	uint64_t cs = s->cluster_size, *tab = malloc(cs);
	unsigned w = s->l2_entry_bytes / 8;
	int ret = 0;

	if (!tab)
		return -ENOMEM;
	for (uint32_t i = 0; i < l1_size && ret == 0; i++) {
		uint64_t l2off = l1[i] & L1E_OFFSET_MASK, rc;
		bool changed = false;
		if (!l2off)
			continue;
		if (l2off & (cs - 1)) {
			ret = -EIO;
			break;
		}
		ret = qcow2_read_l2(s, l2off, tab);
		for (uint64_t j = 0; j < s->l2_entries && ret == 0; j++) {
			uint64_t e = tab[j * w], off = e & L2E_OFFSET_MASK, ne;
			if (qcow2_entry_type(s, e) == QC_COMPRESSED) {
				uint64_t co, cl;
				qcow2_compressed_range(s, e, &co, &cl);
				if (addend)
					ret = qcow2_update_refcount(s, co, cl, addend);
				continue;
			}
			if (!off)
				continue;
			if (addend)
				ret = qcow2_update_refcount(s, off, cs, addend);
			if (ret == 0)
				ret = qcow2_get_refcount(s, off >> s->cluster_bits, &rc);
			if (ret < 0)
				break;
			ne = rc == 1 ? e | QCOW_OFLAG_COPIED : e & ~QCOW_OFLAG_COPIED;
			if (ne != e) {
				tab[j * w] = ne;
				changed = true;
			}
		}
		if (ret == 0 && changed)
			ret = qcow2_write_l2(s, l2off, tab);
		if (ret == 0 && addend)
			ret = qcow2_update_refcount(s, l2off, cs, addend);
		if (ret == 0)
			ret = qcow2_get_refcount(s, l2off >> s->cluster_bits, &rc);
		if (ret == 0)
			l1[i] = rc == 1 ? l1[i] | QCOW_OFLAG_COPIED : l1[i] & ~QCOW_OFLAG_COPIED;
	}
	free(tab);
	if (ret == 0 && l1_offset && l1_size) {
		uint64_t *be = malloc((size_t)l1_size * 8);
		if (!be)
			return -ENOMEM;
		for (uint32_t i = 0; i < l1_size; i++)
			st_be64((uint8_t *)&be[i], l1[i]);
		ret = qcow2_rb_writeback(s);
		if (ret == 0)
			ret = bfile_pwrite(s->file, l1_offset, be, (uint64_t)l1_size * 8) < 0 ?
			      -EIO : 0;
		free(be);
	}
	return ret;
}

static struct qcow2_snapshot *find_snapshot(struct qcow2 *s, const char *name)
{
	for (uint32_t i = 0; i < s->nb_snapshots; i++)
		if (!strcmp(s->snaps[i].id, name))
			return &s->snaps[i];
	for (uint32_t i = 0; i < s->nb_snapshots; i++)
		if (!strcmp(s->snaps[i].name, name))
			return &s->snaps[i];
	return NULL;
}

int qcow2_snapshot_list(struct bdev *bs, struct block_snapshot_info **out, unsigned *count)
{
	struct qcow2 *s = bs->opaque;
	struct block_snapshot_info *v = calloc(s->nb_snapshots ? s->nb_snapshots : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		struct qcow2_snapshot *sn = &s->snaps[i];
		snprintf(v[i].id, sizeof(v[i].id), "%s", sn->id);
		snprintf(v[i].name, sizeof(v[i].name), "%s", sn->name);
		v[i].vm_state_size = sn->vm_state_size;
		v[i].date_sec = sn->date_sec;
		v[i].date_nsec = sn->date_nsec;
		v[i].vm_clock_nsec = sn->vm_clock_nsec;
		v[i].icount = sn->icount;
	}
	*out = v;
	*count = s->nb_snapshots;
	return 0;
}

static int read_l1_copy(struct qcow2 *s, uint64_t off, uint32_t n, uint64_t **out)
{
	uint64_t *l1 = calloc(n ? n : 1, 8);

	if (!l1)
		return -ENOMEM;
	if (n && bfile_pread(s->file, off, l1, (uint64_t)n * 8) < 0) {
		free(l1);
		return -EIO;
	}
	for (uint32_t i = 0; i < n; i++)
		l1[i] = ld_be64((uint8_t *)&l1[i]);
	*out = l1;
	return 0;
}

static int writable(struct qcow2 *s, char *err, size_t errlen)
{
	int ret;

	if (s->read_only) {
		snprintf(err, errlen, "qcow2: %s: image is read-only", s->fname);
		return -EROFS;
	}
	if (s->broken) {
		snprintf(err, errlen, "qcow2: %s: image is corrupt", s->fname);
		return -EIO;
	}
	ret = qcow2_commit(s);
	if (ret < 0)
		snprintf(err, errlen, "qcow2: %s: cannot write pending metadata", s->fname);
	if (ret == 0 && (ret = qcow2_bitmaps_mark_in_use(s)) < 0)
		snprintf(err, errlen, "qcow2: %s: cannot mark the dirty bitmaps in use", s->fname);
	return ret;
}

int qcow2_snapshot_create(struct bdev *bs, const char *name, char *err, size_t errlen)
{
	struct qcow2 *s = bs->opaque;
	struct qcow2_snapshot *snaps, *sn;
	uint64_t cs = s->cluster_size, l1_bytes = (uint64_t)s->l1_size * 8, *be;
	unsigned long next_id = 1;
	struct timespec ts;
	int64_t off = 0;
	int ret = writable(s, err, errlen);

	if (ret < 0)
		return ret;
	if (!name || !*name || strlen(name) > 255 || find_snapshot(s, name)) {
		snprintf(err, errlen, "qcow2: %s: snapshot name '%s' is empty, too long or "
			 "already used", s->fname, name ? name : "");
		return -EEXIST;
	}
	if (s->nb_snapshots >= QCOW2_MAX_SNAPSHOTS || s->refcount_bits < 2) {
		snprintf(err, errlen, "qcow2: %s: cannot add a snapshot (%s)", s->fname,
			 s->refcount_bits < 2 ? "refcount_bits=1 allows no snapshots" :
			 "too many snapshots");
		return -ENOSPC;
	}
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		unsigned long v = strtoul(s->snaps[i].id, NULL, 10);
		if (v >= next_id)
			next_id = v + 1;
	}
	/* 1. copy of the active L1 table */
	if (l1_bytes) {
		off = qcow2_alloc_clusters(s, qc_align_up(l1_bytes, cs) / cs);
		if (off < 0)
			return (int)off;
		be = malloc(l1_bytes);
		if (!be)
			return -ENOMEM;
		for (uint32_t i = 0; i < s->l1_size; i++)
			st_be64((uint8_t *)&be[i], s->l1[i] & ~QCOW_OFLAG_COPIED);
		ret = bfile_pwrite(s->file, (uint64_t)off, be, l1_bytes) < 0 ? -EIO : 0;
		free(be);
		if (ret < 0)
			return ret;
	}
	/* 2. the snapshot shares every cluster: one more reference each */
	ret = qcow2_update_tree_refcount(s, s->l1, s->l1_size, s->l1_offset, 1);
	qcow2_l2_cache_drop(s);
	if (ret == 0)
		ret = qcow2_sync(s) < 0 ? -EIO : 0;
	if (ret < 0) {
		snprintf(err, errlen, "qcow2: %s: snapshot refcount update failed: %s", s->fname,
			 strerror(-ret));
		return ret;
	}
	/* 3. the new table */
	snaps = calloc(s->nb_snapshots + 1, sizeof(*snaps));
	if (!snaps)
		return -ENOMEM;
	if (s->nb_snapshots)
		memcpy(snaps, s->snaps, sizeof(*snaps) * s->nb_snapshots);
	sn = &snaps[s->nb_snapshots];
	clock_gettime(CLOCK_REALTIME, &ts);
	sn->l1_offset = (uint64_t)off;
	sn->l1_size = s->l1_size;
	sn->id = malloc(24);
	sn->name = strdup(name);
	sn->extra_size = 24;
	sn->extra = calloc(1, 24);
	if (!sn->id || !sn->name || !sn->extra) {
		free(sn->id);
		free(sn->name);
		free(sn->extra);
		free(snaps);
		return -ENOMEM;
	}
	snprintf(sn->id, 24, "%lu", next_id);
	sn->date_sec = (uint32_t)ts.tv_sec;
	sn->date_nsec = (uint32_t)ts.tv_nsec;
	sn->disk_size = bs->size;
	sn->icount = UINT64_MAX;
	st_be64(sn->extra + 8, bs->size);
	st_be64(sn->extra + 16, UINT64_MAX);
	ret = write_table(s, snaps, s->nb_snapshots + 1);
	if (ret < 0) {
		free(sn->id);
		free(sn->name);
		free(sn->extra);
		free(snaps);
		snprintf(err, errlen, "qcow2: %s: cannot write the snapshot table", s->fname);
		return ret;
	}
	free(s->snaps);
	s->snaps = snaps;
	s->nb_snapshots++;
	return 0;
}

int qcow2_snapshot_apply(struct bdev *bs, const char *name, char *err, size_t errlen)
{
	struct qcow2 *s = bs->opaque;
	struct qcow2_snapshot *sn;
	uint64_t *snl1 = NULL, *old = NULL;
	uint32_t n;
	int ret = writable(s, err, errlen);

	if (ret < 0)
		return ret;
	sn = find_snapshot(s, name);
	if (!sn) {
		snprintf(err, errlen, "qcow2: %s: no snapshot '%s'", s->fname, name);
		return -ENOENT;
	}
	if (sn->l1_size > s->l1_size) {
		ret = qcow2_grow_l1(s, sn->l1_size);
		if (ret < 0)
			goto fail;
	}
	n = s->l1_size;
	ret = read_l1_copy(s, sn->l1_offset, sn->l1_size, &snl1);
	if (ret < 0)
		goto fail;
	ret = qcow2_update_tree_refcount(s, snl1, sn->l1_size, 0, 1);
	if (ret < 0)
		goto fail;
	ret = qcow2_sync(s) < 0 ? -EIO : 0;
	old = malloc((size_t)n * 8);
	if (!old) {
		ret = -ENOMEM;
		goto fail;
	}
	memcpy(old, s->l1, (size_t)n * 8);
	for (uint32_t i = 0; i < n; i++)
		s->l1[i] = i < sn->l1_size ? snl1[i] : 0;
	qcow2_l2_cache_drop(s);
	ret = qcow2_update_tree_refcount(s, s->l1, n, s->l1_offset, 0);
	if (ret == 0)
		ret = qcow2_sync(s) < 0 ? -EIO : 0;
	if (ret == 0)
		ret = qcow2_update_tree_refcount(s, old, n, 0, -1);
	if (ret == 0)
		ret = qcow2_update_tree_refcount(s, s->l1, n, s->l1_offset, 0);
	qcow2_l2_cache_drop(s);
	if (ret == 0 && sn->disk_size != bs->size && sn->disk_size <= (1ull << 62) &&
	    qcow2_l1_needed(s, sn->disk_size) <= s->l1_size) {
		uint8_t b[8];
		st_be64(b, sn->disk_size);
		ret = qcow2_write_header_fields(s, QH_SIZE, b, 8);
		if (ret == 0)
			bs->size = sn->disk_size;
	}
	if (ret == 0)
		ret = qcow2_sync(s) < 0 ? -EIO : 0;
fail:
	free(snl1);
	free(old);
	if (ret < 0)
		snprintf(err, errlen, "qcow2: %s: cannot apply snapshot '%s': %s", s->fname, name,
			 strerror(-ret));
	return ret;
}

int qcow2_snapshot_delete(struct bdev *bs, const char *name, char *err, size_t errlen)
{
	struct qcow2 *s = bs->opaque;
	struct qcow2_snapshot *sn, gone, *snaps;
	uint64_t *snl1 = NULL;
	uint32_t idx;
	int ret = writable(s, err, errlen);

	if (ret < 0)
		return ret;
	sn = find_snapshot(s, name);
	if (!sn) {
		snprintf(err, errlen, "qcow2: %s: no snapshot '%s'", s->fname, name);
		return -ENOENT;
	}
	idx = (uint32_t)(sn - s->snaps);
	gone = *sn;
	snaps = calloc(s->nb_snapshots, sizeof(*snaps));
	if (!snaps)
		return -ENOMEM;
	memcpy(snaps, s->snaps, sizeof(*snaps) * idx);
	memcpy(snaps + idx, s->snaps + idx + 1, sizeof(*snaps) * (s->nb_snapshots - idx - 1));
	ret = write_table(s, snaps, s->nb_snapshots - 1);
	if (ret < 0) {
		free(snaps);
		snprintf(err, errlen, "qcow2: %s: cannot write the snapshot table", s->fname);
		return ret;
	}
	free(s->snaps);
	s->snaps = snaps;
	s->nb_snapshots--;
	ret = read_l1_copy(s, gone.l1_offset, gone.l1_size, &snl1);
	if (ret == 0)
		ret = qcow2_update_tree_refcount(s, snl1, gone.l1_size, 0, -1);
	if (ret == 0 && gone.l1_size)
		ret = qcow2_free_clusters(s, gone.l1_offset,
					  qc_align_up((uint64_t)gone.l1_size * 8, s->cluster_size),
					  true);
	if (ret == 0)
		ret = qcow2_update_tree_refcount(s, s->l1, s->l1_size, s->l1_offset, 0);
	qcow2_l2_cache_drop(s);
	if (ret == 0)
		ret = qcow2_sync(s) < 0 ? -EIO : 0;
	free(snl1);
	free(gone.id);
	free(gone.name);
	free(gone.extra);
	if (ret < 0)
		snprintf(err, errlen, "qcow2: %s: deleting snapshot '%s' failed: %s", s->fname,
			 name, strerror(-ret));
	return ret;
}
