/* virtio_blk.c: the virtio-blk cases, on the kit's driver library
 * (virtio_drv.h). Every case drives the first virtio-blk-pci on bus 0:
 *   virtio-blk           write/flush/read patterns, GET_ID, IOERR/UNSUPP
 *                        (readonly=1: RO feature, writes/discard/write-zeroes
 *                        refused, earlier data intact; ro_discard=ok accepts
 *                        QEMU's no-op discard; mode=legacy)
 *   virtio-blk-discard   DISCARD and WRITE_ZEROES (with and without UNMAP),
 *                        zeros read back, out-of-range -> IOERR
 *   virtio-blk-config    geometry/topology/blk_size/seg_max/size_max printed,
 *                        a request with seg_max segments, WCE toggled
 *   virtio-blk-mq        queues=N: a request on every queue, an MSI-X
 *                        vector per queue
 *   virtio-blk-pattern   size=16M of position-derived pseudo-random data in
 *                        mixed request sizes, in random order, 16 in flight;
 *                        flushed and verified (the host re-checks it)
 *   blk-bench            rw=randread|randwrite|read|write bs= depth=
 *                        seconds= (or jobs=rw:bs:depth,... ms=) [irq=1]:
 *                        I/O at a fixed depth, polled (or MSI-X), EVENT_IDX
 *                        on; prints per job
 *                        "testkit: blk-bench: rw=.. bs=.. depth=.. ... iops=N
 *                        mibs=X". */
#include "tests/guest/virtio_drv.h"

#define BLK_F_SIZE_MAX		(1ull << 1)
#define BLK_F_SEG_MAX		(1ull << 2)
#define BLK_F_GEOMETRY		(1ull << 4)
#define BLK_F_RO		(1ull << 5)
#define BLK_F_BLK_SIZE		(1ull << 6)
#define BLK_F_FLUSH		(1ull << 9)
#define BLK_F_TOPOLOGY		(1ull << 10)
#define BLK_F_CONFIG_WCE	(1ull << 11)
#define BLK_F_MQ		(1ull << 12)
#define BLK_F_DISCARD		(1ull << 13)
#define BLK_F_WRITE_ZEROES	(1ull << 14)

#define BLK_T_IN		0
#define BLK_T_OUT		1
#define BLK_T_FLUSH		4
#define BLK_T_GET_ID		8
#define BLK_T_DISCARD		11
#define BLK_T_WRITE_ZEROES	13
#define BLK_S_OK		0
#define BLK_S_IOERR		1
#define BLK_S_UNSUPP		2
#define BLK_WZ_UNMAP		1
#define BLK_ID			"minikvm-kit"

/* device configuration offsets */
#define CFG_CAPACITY		0x00
#define CFG_SIZE_MAX		0x08
#define CFG_SEG_MAX		0x0c
#define CFG_GEOMETRY		0x10
#define CFG_BLK_SIZE		0x14
#define CFG_TOPOLOGY		0x18
#define CFG_WRITEBACK		0x20
#define CFG_NUM_QUEUES		0x22
#define CFG_MAX_DISCARD_SECT	0x24
#define CFG_MAX_DISCARD_SEG	0x28
#define CFG_DISCARD_ALIGN	0x2c
#define CFG_MAX_WZ_SECT		0x30
#define CFG_MAX_WZ_SEG		0x34
#define CFG_WZ_MAY_UNMAP	0x38

#define BLK_MAX_QUEUES		8
#define VEC_BLK_CONFIG		0x4f
#define VEC_BLK_QUEUE0		0x50	/* + queue index */
#define SYNC_TIMEOUT_MS		10000

struct blk_hdr {
	u32 type;
	u32 reserved;
	u64 sector;
};

struct blk_dwz {		/* discard / write-zeroes segment */
	u64 sector;
	u32 num_sectors;
	u32 flags;
};

/* One request's driver-owned memory: header, status, segment list. */
struct blk_req {
	struct blk_hdr hdr;
	u8 status;
	u8 pad[7];
	u32 len;		/* data bytes */
	u64 sector;
	u32 type;
	u64 t0;			/* submission time (bench) */
	struct vbuf segs[VQ_MAX_SIZE > 260 ? 260 : VQ_MAX_SIZE];
};

static struct vdev bd;
static struct virtq bq[BLK_MAX_QUEUES];
static u64 blk_cap;
static u32 blk_seg_bytes;	/* largest data segment the driver builds */
static u32 blk_max_segs;	/* most data segments per request */

/* ---------------- setup ---------------- */
static u64 arg_num(const char *key, u64 def)
{
	char buf[24];
	const char *end;
	u64 v;

	if (!cmdline_get(key, buf, sizeof(buf)))
		return def;
	v = parse_num(buf, &end);
	if (*end == 'k' || *end == 'K')
		v <<= 10;
	else if (*end == 'm' || *end == 'M')
		v <<= 20;
	else if (*end == 'g' || *end == 'G')
		v <<= 30;
	return v;
}

static bool arg_is(const char *key, const char *val)
{
	char buf[16];

	return cmdline_get(key, buf, sizeof(buf)) && !strncmp(buf, val, sizeof(buf));
}

/* Finds, maps and initialises the device with nq queues (MSI-X entry i+1
 * for queue i when msix, else none); leaves it DRIVER_OK. */
static int blk_open(u64 want, u32 nq, u16 qsize, bool msix)
{
	bool legacy = arg_is("mode", "legacy");

	if (vdev_find(&bd, VIRTIO_ID_BLOCK, arg_num("nth", 0)) < 0)
		return fail("no virtio-blk-pci device (1af4:1001 or 1af4:1042) on bus 0");
	if (vdev_map(&bd, legacy) < 0 || vdev_init(&bd, want) < 0)
		return -1;
	if (nq > BLK_MAX_QUEUES)
		return fail("%u queues: the kit drives at most %u", nq, BLK_MAX_QUEUES);
	if (nq > 1 && !(bd.features & BLK_F_MQ))
		return fail("%u queues wanted, MQ not offered (offered %#lx)", nq, bd.offered);
	if (nq > 1 && vdev_cfg16(&bd, CFG_NUM_QUEUES) < nq)
		return fail("%u queues wanted, num_queues %u", nq, vdev_cfg16(&bd, CFG_NUM_QUEUES));
	if (msix) {
		if (!bd.msix_cap || bd.msix_size < nq + 1)
			return fail("MSI-X: %u entries for %u queues", bd.msix_size, nq);
		vdev_msix_set(&bd, 0, VEC_BLK_CONFIG, false);
		for (u32 i = 0; i < nq; i++)
			vdev_msix_set(&bd, i + 1, VEC_BLK_QUEUE0 + i, false);
		vdev_msix_enable(&bd, true);
		if (vdev_config_msix(&bd, 0) < 0)
			return fail("MSI-X config entry not accepted");
	}
	for (u32 i = 0; i < nq; i++) {
		if (vq_setup(&bd, &bq[i], i, qsize, msix ? i + 1 : VQ_NO_MSIX) < 0)
			return -1;
		vq_disable_cb(&bq[i]);
	}
	if (vdev_driver_ok(&bd) < 0)
		return -1;
	blk_cap = vdev_cfg64(&bd, CFG_CAPACITY);
	blk_seg_bytes = 64 * 1024;
	if ((bd.features & BLK_F_SIZE_MAX) && vdev_cfg32(&bd, CFG_SIZE_MAX) >= 4096 &&
	    vdev_cfg32(&bd, CFG_SIZE_MAX) < blk_seg_bytes)
		blk_seg_bytes = vdev_cfg32(&bd, CFG_SIZE_MAX) & ~4095u;
	blk_max_segs = bq[0].size - 2;
	if ((bd.features & BLK_F_SEG_MAX) && vdev_cfg32(&bd, CFG_SEG_MAX) &&
	    vdev_cfg32(&bd, CFG_SEG_MAX) < blk_max_segs)
		blk_max_segs = vdev_cfg32(&bd, CFG_SEG_MAX);
	if (blk_max_segs > 256)
		blk_max_segs = 256;
	return 0;
}

static void blk_close(void)
{
	if (bd.msix_on)
		vdev_msix_enable(&bd, false);
	vdev_reset(&bd);
}

/* ---------------- requests ---------------- */
/* Builds header, data in segments of seg bytes (0: one), status and adds
 * the chain; returns the head or -1 when the ring is full. */
static int blk_submit(struct virtq *q, struct blk_req *r, u32 type, u64 sector, void *data,
		      u32 len, bool device_writes, u32 seg)
{
	u32 n = 0;

	r->hdr = (struct blk_hdr){ type, 0, sector };
	r->status = 0xff;
	r->len = len;
	r->sector = sector;
	r->type = type;
	r->segs[n++] = (struct vbuf){ &r->hdr, sizeof(r->hdr), false };
	for (u32 off = 0; off < len && n + 1 < sizeof(r->segs) / sizeof(r->segs[0]);) {
		u32 l = seg && len - off > seg ? seg : len - off;

		r->segs[n++] = (struct vbuf){ (u8 *)data + off, l, device_writes };
		off += l;
	}
	r->segs[n++] = (struct vbuf){ &r->status, 1, true };
	return vq_add(q, r->segs, n, r);
}

static struct blk_req *sync_req;

/* One request, waited for; returns the status byte or -1 (fail() printed). */
static int blk_sync_seg(struct virtq *q, u32 type, u64 sector, void *data, u32 len,
			bool device_writes, u32 seg, u32 *used_len)
{
	u64 end = now_ns() + SYNC_TIMEOUT_MS * 1000000ull;
	u32 l = 0;
	void *tok;

	if (!sync_req && !(sync_req = dma_alloc(sizeof(*sync_req), 64)))
		return fail("out of memory");
	if (blk_submit(q, sync_req, type, sector, data, len, device_writes, seg) < 0)
		return fail("queue %u full", q->index);
	vq_kick(q);
	while (!(tok = vq_pop(q, &l))) {
		if (now_ns() > end)
			return fail("request type %u sector %lu on queue %u: no completion "
				    "(used idx %u avail %u status %#x)", type, sector, q->index,
				    vq_used_idx(q), q->avail_idx, vdev_status(&bd));
		cpu_relax();
	}
	if (tok != sync_req)
		return fail("queue %u: used a request the kit never sent", q->index);
	if (used_len)
		*used_len = l;
	return sync_req->status;
}

static int blk_sync(u32 type, u64 sector, void *data, u32 len, bool device_writes)
{
	return blk_sync_seg(&bq[0], type, sector, data, len, device_writes, blk_seg_bytes, NULL);
}

/* A discard or write-zeroes request with n segments. */
static int blk_dwz(u32 type, const struct blk_dwz *segs, u32 n)
{
	static struct blk_dwz *buf;

	if (!buf && !(buf = dma_alloc(16 * sizeof(*buf), 64)))
		return fail("out of memory");
	memcpy(buf, segs, n * sizeof(*buf));
	return blk_sync_seg(&bq[0], type, 0, buf, n * sizeof(*buf), false, 0, NULL);
}

static bool all_bytes(const u8 *p, u32 len, u8 v)
{
	for (u32 i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

static const char *status_name(int st)
{
	switch (st) {
	case BLK_S_OK:		return "OK";
	case BLK_S_IOERR:	return "IOERR";
	case BLK_S_UNSUPP:	return "UNSUPP";
	}
	return "?";
}

/* ---------------- case virtio-blk ---------------- */
static u8 *blk_data;	/* 64 KiB scratch */

/* Patterns: sector 0 = 0xa1, sectors 8-15 = 0xb2 (split), last = 0xc3. */
static const struct { u64 sector; u32 len; u8 pattern; bool split; } blk_patterns[] = {
	{ 0, 512, 0xa1, false }, { 8, 4096, 0xb2, true }, { ~0ull, 512, 0xc3, false },
};

static int blk_rw_tests(void)
{
	u32 w;
	int st;

	for (unsigned i = 0; i < 3; i++) {
		u64 s = blk_patterns[i].sector == ~0ull ? blk_cap - 1 : blk_patterns[i].sector;
		u32 len = blk_patterns[i].len;

		memset(blk_data, blk_patterns[i].pattern, len);
		st = blk_sync_seg(&bq[0], BLK_T_OUT, s, blk_data, len, false,
				  blk_patterns[i].split ? len / 2 : 0, NULL);
		if (st != BLK_S_OK)
			return fail("write sector %lu: status %d", s, st);
	}
	st = blk_sync(BLK_T_FLUSH, 0, NULL, 0, false);
	if (st != BLK_S_OK)
		return fail("flush: status %d", st);
	for (unsigned i = 0; i < 3; i++) {
		u64 s = blk_patterns[i].sector == ~0ull ? blk_cap - 1 : blk_patterns[i].sector;
		u32 len = blk_patterns[i].len;

		memset(blk_data, 0, len);
		st = blk_sync_seg(&bq[0], BLK_T_IN, s, blk_data, len, true,
				  blk_patterns[i].split ? 0 : len / 2, &w);
		if (st != BLK_S_OK)
			return fail("read sector %lu: status %d", s, st);
		if (w != len + 1)
			return fail("read sector %lu: used length %u, expected %u", s, w, len + 1);
		for (u32 j = 0; j < len; j++)
			if (blk_data[j] != blk_patterns[i].pattern)
				return fail("read sector %lu: byte %u is %#x, expected %#x", s, j,
					    blk_data[j], blk_patterns[i].pattern);
	}
	info("wrote, flushed and read back sectors 0, 8-15 and %lu", blk_cap - 1);
	return 0;
}

static int blk_other_tests(void)
{
	int st;

	memset(blk_data, 0, 64);
	st = blk_sync(BLK_T_GET_ID, 0, blk_data, 20, true);
	if (st != BLK_S_OK || memcmp(blk_data, BLK_ID, sizeof(BLK_ID)))
		return fail("GET_ID: status %d, id '%s'", st, blk_data);
	info("GET_ID: '%s'", (const char *)blk_data);
	st = blk_sync(BLK_T_IN, blk_cap, blk_data, 512, true);
	if (st != BLK_S_IOERR)
		return fail("read beyond capacity: status %d, expected IOERR", st);
	st = blk_sync(BLK_T_IN, blk_cap - 1, blk_data, 1024, true);
	if (st != BLK_S_IOERR)
		return fail("read across the end: status %d, expected IOERR", st);
	st = blk_sync(BLK_T_IN, ~0ull, blk_data, 512, true);
	if (st != BLK_S_IOERR)
		return fail("read at sector 2^64-1: status %d, expected IOERR", st);
	st = blk_sync(0x77, 0, NULL, 0, false);
	if (st != BLK_S_UNSUPP)
		return fail("unknown request type: status %d, expected UNSUPP", st);
	info("out-of-range reads: IOERR; unknown type: UNSUPP");
	/* The device still works. */
	st = blk_sync(BLK_T_IN, 0, blk_data, 512, true);
	if (st != BLK_S_OK || blk_data[0] != 0xa1)
		return fail("read after errors: status %d", st);
	return 0;
}

/* A refused modifying request: IOERR when the feature was negotiated;
 * without it UNSUPP is also accepted (the type is unknown then). */
static int ro_refused(const char *what, int st, u64 feature)
{
	if (st == BLK_S_OK && feature == BLK_F_DISCARD && arg_is("ro_discard", "ok")) {
		info("read-only: discard returned OK (ro_discard=ok: QEMU's discard=ignore)");
		return 0;
	}
	if (st == BLK_S_IOERR || (!(bd.features & feature) && st == BLK_S_UNSUPP)) {
		info("read-only: %s refused with %s%s", what, status_name(st),
		     bd.features & feature ? "" : " (feature not offered)");
		return 0;
	}
	return fail("%s on a read-only device: status %d (%s), expected IOERR", what, st,
		    status_name(st));
}

/* readonly=1: the image holds the patterns of an earlier run; writes,
 * discards and write-zeroes fail, the data stays. */
static int blk_ro_tests(void)
{
	struct blk_dwz seg = { 0, 8, 0 };
	int st;

	if (!bd.legacy && !(bd.features & BLK_F_RO))
		return fail("RO not offered (features %#lx)", bd.features);
	memset(blk_data, 0x5a, 512);
	if (ro_refused("write", blk_sync(BLK_T_OUT, 0, blk_data, 512, false), ~0ull) < 0)
		return -1;
	if (ro_refused("discard", blk_dwz(BLK_T_DISCARD, &seg, 1), BLK_F_DISCARD) < 0)
		return -1;
	if (ro_refused("write-zeroes", blk_dwz(BLK_T_WRITE_ZEROES, &seg, 1),
		       BLK_F_WRITE_ZEROES) < 0)
		return -1;
	seg.flags = BLK_WZ_UNMAP;
	if (ro_refused("write-zeroes+unmap", blk_dwz(BLK_T_WRITE_ZEROES, &seg, 1),
		       BLK_F_WRITE_ZEROES) < 0)
		return -1;
	st = blk_sync(BLK_T_IN, 0, blk_data, 4096, true);
	if (st != BLK_S_OK || !all_bytes(blk_data, 512, 0xa1) ||
	    !all_bytes(blk_data + 512, 3584, 0))
		return fail("read-only: read sectors 0-7: status %d, byte 0 %#x, byte 512 %#x",
			    st, blk_data[0], blk_data[512]);
	info("read-only: the earlier data is intact");
	return 0;
}

int case_virtio_blk(void)
{
	bool readonly = arg_num("readonly", 0) == 1;
	u64 want = VIRTIO_F_VERSION_1 | BLK_F_FLUSH | BLK_F_BLK_SIZE | BLK_F_RO |
		   BLK_F_DISCARD | BLK_F_WRITE_ZEROES;
	u64 mark = dma_mark();
	int rc;

	if (blk_open(want, 1, 16, false) < 0)
		return -1;
	if (!bd.legacy && !(bd.features & BLK_F_FLUSH))
		return fail("FLUSH not offered (features %#lx)", bd.features);
	info("capacity %lu sectors, features %#lx, queue size %u", blk_cap, bd.features,
	     bq[0].size);
	if (blk_cap < 64)
		return fail("capacity %lu too small for the test", blk_cap);
	blk_data = dma_alloc(64 * 1024, 4096);
	rc = (readonly ? blk_ro_tests() : blk_rw_tests()) < 0 || blk_other_tests() < 0 ? -1 : 0;
	blk_close();
	dma_release(mark);
	sync_req = NULL;
	return rc;
}

/* ---------------- case virtio-blk-discard ---------------- */
/* Region used: 1 MiB from sector 2048 (needs an image of at least 2 MiB). */
#define DZ_BASE		2048
#define DZ_SECTORS	2048

static int dz_fill(u8 v)
{
	memset(blk_data, v, 64 * 1024);
	for (u32 s = 0; s < DZ_SECTORS; s += 128) {
		int st = blk_sync(BLK_T_OUT, DZ_BASE + s, blk_data, 64 * 1024, false);

		if (st != BLK_S_OK)
			return fail("fill sector %u: status %d", DZ_BASE + s, st);
	}
	return 0;
}

/* Sectors [s, s + n) must all read as v. */
static int dz_expect(u64 s, u32 n, u8 v, const char *what)
{
	while (n) {
		u32 k = n > 128 ? 128 : n;
		int st = blk_sync(BLK_T_IN, s, blk_data, k * 512, true);

		if (st != BLK_S_OK)
			return fail("%s: read sector %lu: status %d", what, s, st);
		for (u32 i = 0; i < k * 512; i++)
			if (blk_data[i] != v)
				return fail("%s: sector %lu byte %u is %#x, expected %#x", what,
					    s + i / 512, i % 512, blk_data[i], v);
		s += k;
		n -= k;
	}
	return 0;
}

static int discard_tests(u32 align)
{
	struct blk_dwz seg[2];
	u32 maxseg = vdev_cfg32(&bd, CFG_MAX_DISCARD_SEG);
	int st;

	/* Sectors 2048+1024 .. +1536: discarded; contents then unspecified. */
	seg[0] = (struct blk_dwz){ DZ_BASE + 1024, 256, 0 };
	st = blk_dwz(BLK_T_DISCARD, seg, 1);
	if (st != BLK_S_OK)
		return fail("discard 256 sectors at %u: status %d", DZ_BASE + 1024, st);
	if (maxseg >= 2) {
		seg[0] = (struct blk_dwz){ DZ_BASE + 1280, 128, 0 };
		seg[1] = (struct blk_dwz){ DZ_BASE + 1408, 128, 0 };
		st = blk_dwz(BLK_T_DISCARD, seg, 2);
		if (st != BLK_S_OK)
			return fail("discard with 2 segments: status %d", st);
	}
	st = blk_sync(BLK_T_IN, DZ_BASE + 1024, blk_data, 4096, true);
	info("discard: OK (%u segment%s), sector %u now reads %s", maxseg >= 2 ? 2 : 1,
	     maxseg >= 2 ? "s" : "", DZ_BASE + 1024,
	     st == BLK_S_OK && all_bytes(blk_data, 4096, 0) ? "zeros" : "old data");
	/* Neighbours untouched (unit-aligned discard never spills). */
	if (align <= 256 && dz_expect(DZ_BASE + 1536, 512, 0x5c, "after discard") < 0)
		return -1;
	seg[0] = (struct blk_dwz){ DZ_BASE, 8, BLK_WZ_UNMAP };
	st = blk_dwz(BLK_T_DISCARD, seg, 1);
	if (st != BLK_S_UNSUPP)
		return fail("discard with the UNMAP flag: status %d (%s), expected UNSUPP", st,
			    status_name(st));
	seg[0] = (struct blk_dwz){ blk_cap, 8, 0 };
	st = blk_dwz(BLK_T_DISCARD, seg, 1);
	if (st != BLK_S_IOERR)
		return fail("discard beyond capacity: status %d (%s), expected IOERR", st,
			    status_name(st));
	seg[0] = (struct blk_dwz){ blk_cap - 8, 16, 0 };
	st = blk_dwz(BLK_T_DISCARD, seg, 1);
	if (st != BLK_S_IOERR)
		return fail("discard across the end: status %d (%s), expected IOERR", st,
			    status_name(st));
	info("discard: UNMAP flag -> UNSUPP, out of range -> IOERR");
	return 0;
}

static int write_zeroes_tests(void)
{
	struct blk_dwz seg[2];
	u32 maxseg = vdev_cfg32(&bd, CFG_MAX_WZ_SEG);
	int st;

	seg[0] = (struct blk_dwz){ DZ_BASE + 8, 64, 0 };
	st = blk_dwz(BLK_T_WRITE_ZEROES, seg, 1);
	if (st != BLK_S_OK)
		return fail("write-zeroes: status %d", st);
	seg[0] = (struct blk_dwz){ DZ_BASE + 256, 256, BLK_WZ_UNMAP };
	st = blk_dwz(BLK_T_WRITE_ZEROES, seg, 1);
	if (st != BLK_S_OK)
		return fail("write-zeroes with UNMAP: status %d", st);
	if (maxseg >= 2) {
		seg[0] = (struct blk_dwz){ DZ_BASE + 600, 8, 0 };
		seg[1] = (struct blk_dwz){ DZ_BASE + 700, 8, BLK_WZ_UNMAP };
		st = blk_dwz(BLK_T_WRITE_ZEROES, seg, 2);
		if (st != BLK_S_OK)
			return fail("write-zeroes with 2 segments: status %d", st);
	}
	if (dz_expect(DZ_BASE, 8, 0x5c, "before write-zeroes") < 0 ||
	    dz_expect(DZ_BASE + 8, 64, 0, "write-zeroes") < 0 ||
	    dz_expect(DZ_BASE + 72, 184, 0x5c, "between") < 0 ||
	    dz_expect(DZ_BASE + 256, 256, 0, "write-zeroes+unmap") < 0 ||
	    dz_expect(DZ_BASE + 512, 88, 0x5c, "after write-zeroes+unmap") < 0)
		return -1;
	if (maxseg >= 2 && (dz_expect(DZ_BASE + 600, 8, 0, "2-segment write-zeroes") < 0 ||
			    dz_expect(DZ_BASE + 608, 92, 0x5c, "between segments") < 0 ||
			    dz_expect(DZ_BASE + 700, 8, 0, "2-segment write-zeroes") < 0))
		return -1;
	seg[0] = (struct blk_dwz){ DZ_BASE, 8, 0x80 };
	st = blk_dwz(BLK_T_WRITE_ZEROES, seg, 1);
	if (st != BLK_S_UNSUPP)
		return fail("write-zeroes with unknown flag 0x80: status %d (%s), expected UNSUPP",
			    st, status_name(st));
	seg[0] = (struct blk_dwz){ blk_cap - 1, 2, 0 };
	st = blk_dwz(BLK_T_WRITE_ZEROES, seg, 1);
	if (st != BLK_S_IOERR)
		return fail("write-zeroes across the end: status %d (%s), expected IOERR", st,
			    status_name(st));
	seg[0] = (struct blk_dwz){ ~0ull - 3, 8, BLK_WZ_UNMAP };
	st = blk_dwz(BLK_T_WRITE_ZEROES, seg, 1);
	if (st != BLK_S_IOERR)
		return fail("write-zeroes at sector 2^64-4: status %d (%s), expected IOERR", st,
			    status_name(st));
	if (dz_expect(blk_cap - 1, 1, 0x5c, "last sector after refused write-zeroes") < 0)
		return -1;
	info("write-zeroes: zeros read back (with and without UNMAP%s), bad flag -> UNSUPP, "
	     "out of range -> IOERR", maxseg >= 2 ? ", 2 segments" : "");
	return 0;
}

int case_virtio_blk_discard(void)
{
	u64 want = VIRTIO_F_VERSION_1 | BLK_F_FLUSH | BLK_F_DISCARD | BLK_F_WRITE_ZEROES;
	u64 mark = dma_mark();
	u32 align;
	int rc = -1;

	if (blk_open(want, 1, 64, false) < 0)
		return -1;
	blk_data = dma_alloc(64 * 1024, 4096);
	if (!(bd.features & BLK_F_DISCARD) || !(bd.features & BLK_F_WRITE_ZEROES)) {
		fail("DISCARD/WRITE_ZEROES not offered (features %#lx, offered %#lx)",
		     bd.features, bd.offered);
		goto out;
	}
	align = vdev_cfg32(&bd, CFG_DISCARD_ALIGN);
	info("max_discard_sectors %u max_discard_seg %u discard_sector_alignment %u "
	     "max_write_zeroes_sectors %u max_write_zeroes_seg %u write_zeroes_may_unmap %u",
	     vdev_cfg32(&bd, CFG_MAX_DISCARD_SECT), vdev_cfg32(&bd, CFG_MAX_DISCARD_SEG), align,
	     vdev_cfg32(&bd, CFG_MAX_WZ_SECT), vdev_cfg32(&bd, CFG_MAX_WZ_SEG),
	     vdev_cfg8(&bd, CFG_WZ_MAY_UNMAP));
	if (blk_cap < DZ_BASE + DZ_SECTORS + 16) {
		fail("capacity %lu sectors: needs at least 2 MiB", blk_cap);
		goto out;
	}
	if (!vdev_cfg32(&bd, CFG_MAX_DISCARD_SECT) || !vdev_cfg32(&bd, CFG_MAX_DISCARD_SEG) ||
	    !vdev_cfg32(&bd, CFG_MAX_WZ_SECT) || !vdev_cfg32(&bd, CFG_MAX_WZ_SEG)) {
		fail("zero discard/write-zeroes limits in the configuration");
		goto out;
	}
	/* The last sector too: refused requests there must not touch it. */
	memset(blk_data, 0x5c, 512);
	if (dz_fill(0x5c) < 0 || blk_sync(BLK_T_OUT, blk_cap - 1, blk_data, 512, false) != 0)
		goto out;
	if (write_zeroes_tests() < 0 || discard_tests(align) < 0)
		goto out;
	if (blk_sync(BLK_T_FLUSH, 0, NULL, 0, false) != BLK_S_OK) {
		fail("flush failed");
		goto out;
	}
	rc = 0;
out:
	blk_close();
	dma_release(mark);
	sync_req = NULL;
	return rc;
}

/* ---------------- case virtio-blk-config ---------------- */
static int config_segments(void)
{
	u32 segmax = (bd.features & BLK_F_SEG_MAX) ? vdev_cfg32(&bd, CFG_SEG_MAX) : 1;
	u32 n = segmax < (u32)bq[0].size - 2 ? segmax : (u32)bq[0].size - 2;
	int st;

	/* n data segments of 512 bytes each, then read back in one. */
	for (u32 i = 0; i < n * 512; i++)
		blk_data[i] = (u8)(i / 512 + 1);
	st = blk_sync_seg(&bq[0], BLK_T_OUT, 64, blk_data, n * 512, false, 512, NULL);
	if (st != BLK_S_OK)
		return fail("write with %u segments: status %d", n, st);
	memset(blk_data, 0, n * 512);
	st = blk_sync_seg(&bq[0], BLK_T_IN, 64, blk_data, n * 512, true, 0, NULL);
	if (st != BLK_S_OK)
		return fail("read back %u sectors: status %d", n, st);
	for (u32 i = 0; i < n * 512; i++)
		if (blk_data[i] != (u8)(i / 512 + 1))
			return fail("%u-segment write: byte %u is %#x", n, i, blk_data[i]);
	info("a request with %u data segments (seg_max %u) works", n, segmax);
	return 0;
}

static int config_wce(void)
{
	u8 wb = vdev_cfg8(&bd, CFG_WRITEBACK);
	int st;

	if (!(bd.features & BLK_F_CONFIG_WCE))
		return fail("CONFIG_WCE not offered (offered %#lx)", bd.offered);
	for (int i = 0; i < 2; i++) {	/* toggle, then back */
		u8 want = i ? wb : !wb, was = vdev_cfg8(&bd, CFG_WRITEBACK);
		u8 got;

		vdev_cfg_write8(&bd, CFG_WRITEBACK, want);
		got = vdev_cfg8(&bd, CFG_WRITEBACK);
		if (got != want)
			return fail("writeback set to %u reads back %u", want, got);
		memset(blk_data, 0x70 + i, 4096);
		st = blk_sync(BLK_T_OUT, 128, blk_data, 4096, false);
		if (st == BLK_S_OK)
			st = blk_sync(BLK_T_FLUSH, 0, NULL, 0, false);
		if (st == BLK_S_OK)
			st = blk_sync(BLK_T_IN, 128, blk_data, 4096, true);
		if (st != BLK_S_OK || !all_bytes(blk_data, 4096, 0x70 + i))
			return fail("I/O with writeback %u: status %d byte %#x", want, st,
				    blk_data[0]);
		info("writeback %u -> %u: write, flush, read OK", was, want);
	}
	return 0;
}

int case_virtio_blk_config(void)
{
	u64 want = VIRTIO_F_VERSION_1 | BLK_F_FLUSH | BLK_F_SIZE_MAX | BLK_F_SEG_MAX |
		   BLK_F_GEOMETRY | BLK_F_BLK_SIZE | BLK_F_TOPOLOGY | BLK_F_CONFIG_WCE;
	u64 mark = dma_mark(), f;
	int rc = -1;

	if (blk_open(want, 1, 256, false) < 0)
		return -1;
	f = bd.features;
	blk_data = dma_alloc(256 * 512 + 4096, 4096);
	info("features %#lx (offered %#lx), queue size %u, capacity %lu", f, bd.offered,
	     bq[0].size, blk_cap);
	info("config: size_max %u seg_max %u blk_size %u writeback %u",
	     f & BLK_F_SIZE_MAX ? vdev_cfg32(&bd, CFG_SIZE_MAX) : 0,
	     f & BLK_F_SEG_MAX ? vdev_cfg32(&bd, CFG_SEG_MAX) : 0,
	     f & BLK_F_BLK_SIZE ? vdev_cfg32(&bd, CFG_BLK_SIZE) : 0,
	     f & BLK_F_CONFIG_WCE ? vdev_cfg8(&bd, CFG_WRITEBACK) : 255);
	info("config: geometry %u/%u/%u topology physical_block_exp %u alignment_offset %u "
	     "min_io_size %u opt_io_size %u",
	     f & BLK_F_GEOMETRY ? vdev_cfg16(&bd, CFG_GEOMETRY) : 0,
	     f & BLK_F_GEOMETRY ? vdev_cfg8(&bd, CFG_GEOMETRY + 2) : 0,
	     f & BLK_F_GEOMETRY ? vdev_cfg8(&bd, CFG_GEOMETRY + 3) : 0,
	     f & BLK_F_TOPOLOGY ? vdev_cfg8(&bd, CFG_TOPOLOGY) : 0,
	     f & BLK_F_TOPOLOGY ? vdev_cfg8(&bd, CFG_TOPOLOGY + 1) : 0,
	     f & BLK_F_TOPOLOGY ? vdev_cfg16(&bd, CFG_TOPOLOGY + 2) : 0,
	     f & BLK_F_TOPOLOGY ? vdev_cfg32(&bd, CFG_TOPOLOGY + 4) : 0);
	if (f & BLK_F_BLK_SIZE) {
		u32 bs = vdev_cfg32(&bd, CFG_BLK_SIZE);

		if (bs < 512 || (bs & (bs - 1))) {
			fail("blk_size %u is not a power of two >= 512", bs);
			goto out;
		}
	}
	if ((f & BLK_F_SEG_MAX) && !vdev_cfg32(&bd, CFG_SEG_MAX)) {
		fail("seg_max 0");
		goto out;
	}
	if (config_segments() < 0 || config_wce() < 0)
		goto out;
	rc = 0;
out:
	blk_close();
	dma_release(mark);
	sync_req = NULL;
	return rc;
}

/* ---------------- case virtio-blk-mq ---------------- */
static int wait_irq(u32 vec, u64 before, u64 ms)
{
	u64 end = now_ns() + ms * 1000000ull;

	while (irq_counts[vec] == before) {
		if (now_ns() > end)
			return -1;
		cpu_relax();
	}
	return 0;
}

int case_virtio_blk_mq(void)
{
	u64 want = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | BLK_F_FLUSH | BLK_F_MQ;
	u32 nq = arg_num("queues", 4), cfgq;
	u64 mark = dma_mark(), counts[BLK_MAX_QUEUES];
	struct blk_req *reqs;
	int rc = -1, st;

	if (blk_open(want, nq, 64, true) < 0)
		return -1;
	cfgq = vdev_cfg16(&bd, CFG_NUM_QUEUES);
	info("features %#lx, num_queues %u in config, %u in common config", bd.features, cfgq,
	     vdev_num_queues(&bd));
	if (!(bd.features & BLK_F_MQ) || cfgq != nq) {
		fail("MQ %s, num_queues %u, expected %u", bd.features & BLK_F_MQ ? "on" : "off",
		     cfgq, nq);
		goto out;
	}
	blk_data = dma_alloc(nq * 4096, 4096);
	reqs = dma_alloc(nq * sizeof(*reqs), 64);
	/* One write per queue, interrupt on that queue's vector only. */
	for (u32 i = 0; i < nq; i++) {
		for (u32 j = 0; j < nq; j++)
			counts[j] = irq_counts[VEC_BLK_QUEUE0 + j];
		vq_enable_cb(&bq[i]);
		memset(blk_data + i * 4096, 0xd0 + i, 4096);
		st = blk_sync_seg(&bq[i], BLK_T_OUT, 256 + 8 * i, blk_data + i * 4096, 4096, false,
				  0, NULL);
		if (st != BLK_S_OK) {
			fail("write on queue %u: status %d", i, st);
			goto out;
		}
		if (wait_irq(VEC_BLK_QUEUE0 + i, counts[i], 1000) < 0) {
			fail("queue %u: no interrupt on vector %#x", i, VEC_BLK_QUEUE0 + i);
			goto out;
		}
		for (u32 j = 0; j < nq; j++)
			if (j != i && irq_counts[VEC_BLK_QUEUE0 + j] != counts[j]) {
				fail("queue %u's completion raised vector %#x", i,
				     VEC_BLK_QUEUE0 + j);
				goto out;
			}
		vq_disable_cb(&bq[i]);
	}
	info("a write on each of %u queues, each on its own MSI-X vector", nq);
	/* All queues at once: read each block back through the next queue. */
	memset(blk_data, 0, nq * 4096);
	for (u32 i = 0; i < nq; i++) {
		struct virtq *q = &bq[(i + 1) % nq];

		if (blk_submit(q, &reqs[i], BLK_T_IN, 256 + 8 * i, blk_data + i * 4096, 4096, true,
			       0) < 0) {
			fail("queue %u full", q->index);
			goto out;
		}
	}
	for (u32 i = 0; i < nq; i++)
		vq_kick(&bq[i]);
	for (u32 i = 0; i < nq; i++) {
		u64 end = now_ns() + 5000000000ull;
		struct virtq *q = &bq[(i + 1) % nq];
		struct blk_req *r;

		while (!(r = vq_pop(q, NULL))) {
			if (now_ns() > end) {
				fail("queue %u: read not completed", q->index);
				goto out;
			}
			cpu_relax();
		}
		if (r != &reqs[i] || r->status != BLK_S_OK ||
		    !all_bytes(blk_data + i * 4096, 4096, 0xd0 + i)) {
			fail("read on queue %u: status %d byte %#x", q->index, r->status,
			     blk_data[i * 4096]);
			goto out;
		}
	}
	if (blk_sync_seg(&bq[nq - 1], BLK_T_FLUSH, 0, NULL, 0, false, 0, NULL) != BLK_S_OK) {
		fail("flush on the last queue failed");
		goto out;
	}
	info("reads in flight on all %u queues at once: OK", nq);
	rc = 0;
out:
	blk_close();
	dma_release(mark);
	sync_req = NULL;
	return rc;
}

/* ---------------- case virtio-blk-pattern ---------------- */
/* The content of sector lba (512 bytes) for a seed: xorshift64* words.
 * tests/integration/blk_pattern.py computes the same. */
static void pattern_sector(u64 *w, u64 lba, u64 seed)
{
	u64 x = (lba + 1) * 0x9e3779b97f4a7c15ull ^ seed;

	for (int i = 0; i < 64; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		w[i] = x * 0x2545f4914f6cdd1dull;
	}
}

static u64 rng_state;

static u64 rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

struct chunk {
	u64 sector;
	u32 sectors;
};

/* Splits [0, total) into chunks of mixed sizes (512 B .. 1 MiB, mostly
 * small, capped by the segment limits) in random order. */
static u32 chunk_sectors(void)
{
	static const u32 small[] = { 1, 3, 7, 8, 8, 16, 24, 32, 64 };
	u32 r = rng_next() % 64;

	if (r == 0)
		return 2048;
	if (r < 4)
		return 512;
	if (r < 12)
		return 128;
	return small[rng_next() % (sizeof(small) / sizeof(small[0]))];
}

static u32 make_chunks(struct chunk *c, u32 max, u64 total)
{
	u32 cap = blk_max_segs * (blk_seg_bytes / 512), n = 0;

	for (u64 s = 0; s < total && n < max; n++) {
		u32 len = chunk_sectors();

		if (len > cap)
			len = cap;
		if (len > total - s)
			len = total - s;
		c[n] = (struct chunk){ s, len };
		s += len;
	}
	for (u32 i = n - 1; i > 0; i--) {
		u32 j = rng_next() % (i + 1);
		struct chunk t = c[i];

		c[i] = c[j];
		c[j] = t;
	}
	return n;
}

/* Runs the chunk list as requests with up to depth in flight. */
static int pattern_io(struct chunk *c, u32 n, u64 base, u8 *buf, bool write, u32 depth,
		      struct blk_req *reqs)
{
	u32 next = 0, done = 0, inflight = 0;
	u64 end = now_ns() + 60000000000ull;
	struct virtq *q = &bq[0];
	u32 free_list[64], nfree = depth;

	for (u32 i = 0; i < depth; i++)
		free_list[i] = i;
	while (done < n) {
		while (next < n && nfree) {
			struct blk_req *r = &reqs[free_list[nfree - 1]];
			u8 *p = buf + c[next].sector * 512;

			if (blk_submit(q, r, write ? BLK_T_OUT : BLK_T_IN, base + c[next].sector, p,
				       c[next].sectors * 512, !write, blk_seg_bytes) < 0)
				break;
			nfree--;
			inflight++;
			next++;
		}
		vq_kick(q);
		struct blk_req *r;
		u32 len;

		while ((r = vq_pop(q, &len))) {
			if (r->status != BLK_S_OK)
				return fail("%s of %u sectors at %lu: status %d",
					    write ? "write" : "read", r->len / 512, r->sector,
					    r->status);
			if (!write && len != r->len + 1)
				return fail("read at %lu: used length %u, expected %u", r->sector,
					    len, r->len + 1);
			free_list[nfree++] = r - reqs;
			inflight--;
			done++;
		}
		if (now_ns() > end)
			return fail("%s: %u of %u requests done after 60 s",
				    write ? "write" : "read", done, n);
		cpu_relax();
	}
	return 0;
}

int case_virtio_blk_pattern(void)
{
	u64 size = arg_num("size", 16 << 20), base = arg_num("base", 0) / 512;
	u64 seed = arg_num("seed", 0x5eed), total = size / 512, mark = dma_mark(), t0;
	u32 depth = 16, nchunks, maxchunks;
	u8 *expect, *got;
	struct chunk *chunks;
	struct blk_req *reqs;
	int rc = -1;

	if (blk_open(VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | BLK_F_FLUSH | BLK_F_SEG_MAX |
		     BLK_F_SIZE_MAX, 1, 256, false) < 0)
		return -1;
	if (!size || size % 512 || size > (32 << 20) || base + total > blk_cap) {
		fail("size %lu at sector %lu does not fit (capacity %lu, at most 32 MiB)", size,
		     base, blk_cap);
		goto out;
	}
	maxchunks = total;
	expect = dma_alloc(size, 4096);
	got = dma_alloc(size, 4096);
	chunks = dma_alloc(maxchunks * sizeof(*chunks), 16);
	reqs = dma_alloc(depth * sizeof(*reqs), 64);
	if (!expect || !got || !chunks || !reqs) {
		fail("out of memory for %lu bytes (run with -m 128)", size);
		goto out;
	}
	for (u64 s = 0; s < total; s++)
		pattern_sector((u64 *)(expect + s * 512), base + s, seed);
	rng_state = seed | 1;
	nchunks = make_chunks(chunks, maxchunks, total);
	t0 = now_ns();
	if (pattern_io(chunks, nchunks, base, expect, true, depth, reqs) < 0)
		goto out;
	if (blk_sync(BLK_T_FLUSH, 0, NULL, 0, false) != BLK_S_OK) {
		fail("flush failed");
		goto out;
	}
	info("wrote %lu MiB in %u requests of mixed sizes (segments <= %u bytes, <= %u per "
	     "request), %u in flight, random order: %lu ms", size >> 20, nchunks, blk_seg_bytes,
	     blk_max_segs, depth, (now_ns() - t0) / 1000000);
	nchunks = make_chunks(chunks, maxchunks, total);	/* other sizes, other order */
	t0 = now_ns();
	if (pattern_io(chunks, nchunks, base, got, false, depth, reqs) < 0)
		goto out;
	for (u64 i = 0; i < size; i += 512)
		if (memcmp(expect + i, got + i, 512)) {
			fail("sector %lu differs after read back", base + i / 512);
			goto out;
		}
	info("read back and verified in %u requests: %lu ms (seed %#lx at sector %lu)", nchunks,
	     (now_ns() - t0) / 1000000, seed, base);
	rc = 0;
out:
	blk_close();
	dma_release(mark);
	sync_req = NULL;
	return rc;
}

/* ---------------- case blk-bench ---------------- */
struct bench_job {
	char rw[12];
	u32 bs, depth;
	bool write, random;
};

/* "rw:bs:depth" (bs with k/m suffix), or the rw= bs= depth= keys. */
static int bench_parse(struct bench_job *j, const char *s, u32 len)
{
	const char *end;
	u32 n = 0;

	memset(j, 0, sizeof(*j));
	while (n < len && s[n] != ':' && n + 1 < sizeof(j->rw)) {
		j->rw[n] = s[n];
		n++;
	}
	if (n >= len || s[n] != ':')
		return fail("job '%s': rw:bs:depth", s);
	j->bs = parse_num(s + n + 1, &end);
	if (*end == 'k' || *end == 'K')
		j->bs <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		j->bs <<= 20, end++;
	if (*end != ':')
		return fail("job '%s': rw:bs:depth", s);
	j->depth = parse_num(end + 1, &end);
	return 0;
}

static int bench_check(struct bench_job *j)
{
	j->write = !strncmp(j->rw, "randwrite", 10) || !strncmp(j->rw, "write", 6);
	j->random = !strncmp(j->rw, "randread", 9) || !strncmp(j->rw, "randwrite", 10);
	if (!j->random && strncmp(j->rw, "read", 5) && strncmp(j->rw, "write", 6))
		return fail("rw=%s: randread, randwrite, read or write", j->rw);
	if (!j->bs || j->bs % 512 || j->bs > (4 << 20) || !j->depth || j->depth > 128)
		return fail("bs=%u depth=%u out of range", j->bs, j->depth);
	if (j->depth * 3 > bq[0].size)
		return fail("depth %u does not fit a %u-entry queue", j->depth, bq[0].size);
	return 0;
}

static u64 bench_next(struct bench_job *j, u64 span, u64 *seq)
{
	u64 blk = j->bs / 512, s;

	if (j->random)
		return rng_next() % (span / blk) * blk;
	s = *seq;
	*seq = s + blk >= span ? 0 : s + blk;
	return s;
}

static bool bench_irq;	/* irq=1: wait for the queue's MSI-X interrupt */

/* With irq=1, waits like a driver that sleeps until the interrupt: spins
 * on the vector's count once the used ring is seen empty (used_event
 * re-armed first); a 1 ms fallback poll covers a lost interrupt. */
static void bench_wait_irq(void)
{
	u64 c = irq_counts[VEC_BLK_QUEUE0], t = now_ns();

	vq_enable_cb(&bq[0]);
	if (vq_has_used(&bq[0]))
		return;
	while (irq_counts[VEC_BLK_QUEUE0] == c && now_ns() - t < 1000000)
		cpu_relax();
}

/* One job for ms milliseconds: depth requests in flight, each refilled
 * as soon as its completion is seen (polled by default: the guest cannot
 * halt at CPL3, and an interrupt costs more than a poll here). One data
 * segment per request (size_max permitting), EVENT_IDX suppresses
 * notifications while the device is busy. Prints iops and MiB/s. */
static int bench_run(struct bench_job *j, u64 ms, u64 span, struct blk_req *reqs, u8 *buf)
{
	u64 ops = 0, lat_sum = 0, lat_max = 0, seq = 0, kicks = 0, t0, t_end, now, el, iops;
	u64 kib_s, irqs = irq_counts[VEC_BLK_QUEUE0];
	u32 seg = blk_seg_bytes >= j->bs || !(bd.features & BLK_F_SIZE_MAX) ? j->bs :
		  blk_seg_bytes;
	u32 type = j->write ? BLK_T_OUT : BLK_T_IN;

	if (span < j->bs / 512)
		return fail("disk smaller than one block");
	if ((j->bs + seg - 1) / seg + 2 > 3 && j->depth * ((j->bs + seg - 1) / seg + 2) >
	    bq[0].size)
		return fail("depth %u of %u-byte requests in %u-byte segments does not fit",
			    j->depth, j->bs, seg);
	rng_state = 0x2545f4914f6cdd1dull;
	t0 = now_ns();
	t_end = t0 + ms * 1000000ull;
	for (u32 i = 0; i < j->depth; i++) {
		reqs[i].t0 = t0;
		blk_submit(&bq[0], &reqs[i], type, bench_next(j, span, &seq),
			   buf + (u64)i * j->bs, j->bs, !j->write, seg);
	}
	kicks += vq_kick(&bq[0]);
	for (now = t0; now < t_end;) {
		struct blk_req *r;
		u32 got = 0;

		while ((r = vq_pop(&bq[0], NULL))) {
			u64 lat = now - r->t0;

			if (r->status != BLK_S_OK)
				return fail("%s at sector %lu: status %d", j->rw, r->sector,
					    r->status);
			ops++;
			got++;
			lat_sum += lat;
			if (lat > lat_max)
				lat_max = lat;
			r->t0 = now;
			blk_submit(&bq[0], r, type, bench_next(j, span, &seq),
				   buf + (u64)(r - reqs) * j->bs, j->bs, !j->write, seg);
		}
		if (got)
			kicks += vq_kick(&bq[0]);
		else if (bench_irq)
			bench_wait_irq();
		else
			cpu_relax();
		now = now_ns();
	}
	/* Drain what is still in flight (not counted). */
	for (u32 left = j->depth; left;) {
		if (vq_pop(&bq[0], NULL))
			left--;
		else if (now_ns() - now > 10000000000ull)
			return fail("%u requests never completed", left);
	}
	el = now - t0;
	iops = ops * 1000000000ull / el;
	kib_s = ops * (j->bs / 512) * 500000000ull / el;
	info("rw=%s bs=%u depth=%u ms=%lu ops=%lu kicks=%lu irqs=%lu avg_lat_us=%lu "
	     "max_lat_us=%lu iops=%lu mibs=%lu.%02lu", j->rw, j->bs, j->depth, el / 1000000, ops,
	     kicks, irq_counts[VEC_BLK_QUEUE0] - irqs,
	     ops ? lat_sum / ops / 1000 : 0, lat_max / 1000, iops, kib_s / 1024,
	     kib_s % 1024 * 100 / 1024);
	return 0;
}

int case_blk_bench(void)
{
	char jobs[200];
	u64 ms = arg_num("ms", arg_num("seconds", 5) * 1000), mark = dma_mark(), span;
	u32 maxbs = 0, maxdepth = 0, njobs = 0;
	struct bench_job job[12];
	struct blk_req *reqs;
	u8 *buf;
	int rc = -1;

	bench_irq = arg_num("irq", 0) == 1;
	if (blk_open(VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | BLK_F_FLUSH | BLK_F_SEG_MAX |
		     BLK_F_SIZE_MAX, 1, 256, bench_irq) < 0)
		return -1;
	if (cmdline_get("jobs", jobs, sizeof(jobs))) {
		for (const char *p = jobs; *p && njobs < 12;) {
			u32 n = 0;

			while (p[n] && p[n] != ',')
				n++;
			if (bench_parse(&job[njobs++], p, n) < 0)
				goto out;
			p += n + (p[n] == ',');
		}
	} else {
		memset(&job[0], 0, sizeof(job[0]));
		memcpy(job[0].rw, "randread", 9);
		cmdline_get("rw", job[0].rw, sizeof(job[0].rw));
		job[0].bs = arg_num("bs", 4096);
		job[0].depth = arg_num("depth", 1);
		njobs = 1;
	}
	for (u32 i = 0; i < njobs; i++) {
		if (bench_check(&job[i]) < 0)
			goto out;
		maxbs = job[i].bs > maxbs ? job[i].bs : maxbs;
		maxdepth = job[i].depth > maxdepth ? job[i].depth : maxdepth;
	}
	span = arg_num("span", blk_cap * 512) / 512;	/* sectors used */
	if (span > blk_cap)
		span = blk_cap;
	reqs = dma_alloc(maxdepth * sizeof(*reqs), 64);
	buf = dma_alloc((u64)maxdepth * maxbs, 4096);
	if (!reqs || !buf) {
		fail("out of memory for depth %u x %u bytes", maxdepth, maxbs);
		goto out;
	}
	memset(buf, 0xe5, (u64)maxdepth * maxbs);
	info("%u job%s of %lu ms, span %lu MiB, queue size %u, %s, EVENT_IDX %s", njobs,
	     njobs > 1 ? "s" : "", ms, span >> 11, bq[0].size,
	     bench_irq ? "MSI-X interrupts" : "polled",
	     bd.features & VIRTIO_F_EVENT_IDX ? "on" : "off");
	for (u32 i = 0; i < njobs; i++)
		if (bench_run(&job[i], ms, span, reqs, buf) < 0)
			goto out;
	rc = 0;
out:
	blk_close();
	dma_release(mark);
	sync_req = NULL;
	return rc;
}
