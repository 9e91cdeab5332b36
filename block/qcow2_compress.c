/* qcow2 compressed clusters: zlib (raw deflate, window 2^12) and zstd
 * compression and decompression of one cluster as QEMU does them, the
 * one-cluster cache of the last decoded cluster (qcow2_decompress_cluster,
 * for reads), byte-granular packing of compressed data into shared
 * clusters, and compressed writes (compressed without the image lock). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include "block/bfile.h"
#include "block/qcow2.h"

/* A zlib cluster: raw inflate (window 2^12) into one cluster; a stream
 * that ends early leaves the rest zeroes. */
static int zlib_decompress(uint8_t *dst, size_t dlen, uint8_t *src, size_t slen)
{
	z_stream z;
	int zr;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = src;
	z.avail_in = (uInt)slen;
	z.next_out = dst;
	z.avail_out = (uInt)dlen;
	zr = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	if (!(zr == Z_STREAM_END || ((zr == Z_OK || zr == Z_BUF_ERROR) && z.avail_out == 0)))
		return -EIO;
	if (z.avail_out)
		memset(dst + (dlen - z.avail_out), 0, z.avail_out);
	return 0;
}

/* A zstd cluster as QEMU's qcow2_zstd_decompress reads it: frames are
 * streamed until the cluster is full, the last one ending exactly there;
 * what follows in the sector range (padding) is ignored. No progress, a
 * decoding error or a frame longer than the cluster is -EIO. The window
 * is bounded by the largest cluster (what QEMU's frames need). */
static int zstd_decompress(uint8_t *dst, size_t dlen, const uint8_t *src, size_t slen)
{
	ZSTD_outBuffer out = { .dst = dst, .size = dlen, .pos = 0 };
	ZSTD_inBuffer in = { .src = src, .size = slen, .pos = 0 };
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	size_t zr = 0;
	int ret = 0;

	if (!dctx)
		return -ENOMEM;
	if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax,
						QCOW2_MAX_CLUSTER_BITS))) {
		ZSTD_freeDCtx(dctx);
		return -EINVAL;
	}
	while (out.pos < out.size) {
		size_t in_pos = in.pos, out_pos = out.pos;

		zr = ZSTD_decompressStream(dctx, &out, &in);
		if (ZSTD_isError(zr) || (in.pos <= in_pos && out.pos <= out_pos)) {
			ret = -EIO;
			break;
		}
	}
	if (zr > 0)
		ret = -EIO;
	ZSTD_freeDCtx(dctx);
	return ret;
}

/* Decode the compressed cluster of an L2 entry into s->cbuf (kept as
 * a one-cluster cache keyed by the entry). */
int qcow2_decompress_cluster(struct qcow2 *s, uint64_t entry)
{
	uint64_t off, len;
	uint8_t *in;
	int ret;

	if (s->cbuf_key == entry)
		return 0;
	s->cbuf_key = 0;
	qcow2_compressed_range(s, entry, &off, &len);
	if (!off || !qcow2_offset_sane(s, off, len)) {
		qcow2_signal_corruption(s, "compressed cluster offset %#llx is invalid",
					(unsigned long long)off);
		return -EIO;
	}
	in = malloc(len);
	if (!in)
		return -ENOMEM;
	if (bfile_pread(s->file, off, in, len) < 0) {
		free(in);
		return -EIO;
	}
	if (s->compression_type == QCOW2_COMPRESSION_ZSTD)
		ret = zstd_decompress(s->cbuf, s->cluster_size, in, len);
	else
		ret = zlib_decompress(s->cbuf, s->cluster_size, in, len);
	free(in);
	if (ret == -EIO)
		fprintf(stderr, "qcow2: %s: compressed cluster at %#llx does not decompress\n",
			s->fname, (unsigned long long)off);
	if (ret < 0)
		return ret;
	s->cbuf_key = entry;
	return 0;
}

/* Byte-granular space for compressed data, packed into partly used
 * clusters (each user of a cluster holds one reference). */
static int64_t alloc_bytes(struct qcow2 *s, uint64_t size)
{
	uint64_t cs = s->cluster_size;
	int64_t off;

	if (s->comp_next) {
		uint64_t used = s->comp_next & (cs - 1);
		if (used && cs - used >= size) {
			int ret = qcow2_update_refcount(s, s->comp_next, 1, 1);
			if (ret < 0)
				return ret;
			off = (int64_t)s->comp_next;
			s->comp_next += size;
			if (!(s->comp_next & (cs - 1)))
				s->comp_next = 0;
			return off;
		}
	}
	off = qcow2_alloc_clusters(s, 1);
	if (off < 0)
		return off;
	s->comp_next = (uint64_t)off + size;
	if (!(s->comp_next & (cs - 1)))
		s->comp_next = 0;
	return off;
}

/* Raw deflate (window 2^12) of one cluster, as QEMU's zlib compression;
 * *csize is 0 when the result is not smaller than the cluster. */
static int zlib_compress(uint8_t *out, uint8_t *in, size_t cs, size_t *csize)
{
	z_stream z;
	int zr;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	z.next_in = in;
	z.avail_in = (uInt)cs;
	z.next_out = out;
	z.avail_out = (uInt)cs;
	zr = deflate(&z, Z_FINISH);
	*csize = zr == Z_STREAM_END && z.avail_out ? cs - z.avail_out : 0;
	deflateEnd(&z);
	return 0;
}

/* One zstd frame for one cluster, as QEMU's qcow2_zstd_compress writes
 * it: a single ZSTD_compressStream2(ZSTD_e_end) call with default
 * parameters into cs - 1 bytes; *csize is 0 when it does not fit. */
static int zstd_compress(uint8_t *out, const uint8_t *in, size_t cs, size_t *csize)
{
	ZSTD_outBuffer o = { .dst = out, .size = cs - 1, .pos = 0 };
	ZSTD_inBuffer i = { .src = in, .size = cs, .pos = 0 };
	ZSTD_CCtx *cctx = ZSTD_createCCtx();

	if (!cctx)
		return -ENOMEM;
	*csize = ZSTD_compressStream2(cctx, &o, &i, ZSTD_e_end) == 0 ? o.pos : 0;
	ZSTD_freeCCtx(cctx);
	return 0;
}

int qcow2_write_compressed(struct bdev *bs, uint64_t offset, const void *buf, size_t len)
{
	struct qcow2 *s = bs->opaque;
	uint64_t cs = s->cluster_size, cl = offset >> s->cluster_bits;
	uint64_t l2i = cl & (s->l2_entries - 1), *t, l2_off, old;
	uint8_t *in = NULL, *out = NULL;
	unsigned shift = 62 - (s->cluster_bits - 8);
	size_t csize;
	int64_t host;
	int ret = qcow2_check_writable(bs, s, offset, len);

	if (ret < 0)
		return ret;
	if ((offset & (cs - 1)) || len > cs || (len < cs && offset + len != bs->size))
		return -EINVAL;
	in = calloc(1, cs);
	out = malloc(cs);
	if (!in || !out) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(in, buf, len);
	/* compression touches no image state: other writers may run
	 * meanwhile (convert -c compresses on several threads). The caller
	 * holds bs->lock, as for every format op. */
	pthread_mutex_unlock(&bs->lock);
	if (s->compression_type == QCOW2_COMPRESSION_ZSTD)
		ret = zstd_compress(out, in, cs, &csize);
	else
		ret = zlib_compress(out, in, cs, &csize);
	pthread_mutex_lock(&bs->lock);
	if (ret < 0)
		goto out;
	if (qcow2_check_writable(bs, s, offset, len) < 0) {	/* broken meanwhile */
		ret = -EIO;
		goto out;
	}
	if (!csize) {	/* incompressible: store plain */
		struct iovec v = { .iov_base = in, .iov_len = len };
		ret = qcow2_pwritev(bs, offset, &v, 1);
		goto out;
	}
	ret = qcow2_get_l2_for_write(s, (uint32_t)(cl >> s->l2_bits), &t, &l2_off);
	if (ret < 0)
		goto out;
	host = alloc_bytes(s, csize);
	if (host < 0) {
		ret = (int)host;
		goto out;
	}
	if (bfile_pwrite(s->file, (uint64_t)host, out, csize) < 0) {
		ret = -EIO;
		goto out;
	}
	{
		uint64_t nsec = (((uint64_t)host + csize - 1) >> 9) - ((uint64_t)host >> 9);
		unsigned w = s->l2_entry_bytes / 8;

		old = qc_l2_get(t, l2i * w);
		qc_l2_put(t, l2i * w, QCOW_OFLAG_COMPRESSED | (nsec << shift) | (uint64_t)host);
		if (w == 2)		/* a compressed cluster has no subcluster bitmap */
			qc_l2_put(t, l2i * 2 + 1, 0);
	}
	qcow2_mark_l2_dirty(s, (uint32_t)(cl >> s->l2_bits));
	s->cbuf_key = 0;
	ret = qcow2_defer_free(s, old);
	if (ret == 0)
		ret = qcow2_maybe_commit(s);
out:
	free(in);
	free(out);
	return ret;
}
