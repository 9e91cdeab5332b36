/* virtio-blk requests, as QEMU 7.2 parses and answers them: the header
 * and status byte of a popped chain, range and size checks against the
 * capacity and QEMU's limits, and the read/write, flush, GET_ID, legacy
 * SCSI (refused) and discard/write-zeroes (one segment) handlers, which
 * complete a request at once or hand it to the block layer
 * (virtio_blk_submit in hw/virtio_blk.c). */
#include <stdlib.h>
#include <string.h>
#include "block/block.h"
#include "block/endian.h"
#include "hw/virtio_blk_int.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

/* --- request dispatch ----------------------------------------------------- */

struct req_ctx {
	unsigned q;
	const struct virtq_elem *e;
	uint8_t *status;
	uint64_t start_ns;
	unsigned *notify;
};

static struct blk_req *new_req(struct virtio_blk *blk, const struct req_ctx *c,
			       enum virtio_blk_op op, unsigned niov)
{
	struct blk_req *r = calloc(1, sizeof(*r) + niov * sizeof(struct iovec));

	if (!r)
		return NULL;
	r->blk = blk;
	r->q = c->q;
	r->generation = blk->generation;
	r->head = c->e->head;
	r->in_len = c->e->in_len;
	r->status = c->status;
	r->op = op;
	r->start_ns = c->start_ns;
	return r;
}

static void finish_now(struct virtio_blk *blk, const struct req_ctx *c, uint8_t st)
{
	virtio_blk_push_status(blk, c->q, c->e->head, c->e->in_len, c->status, st, c->notify);
}

/* Account and complete a request that failed without reaching the block
 * layer the way QEMU's would fail in it (read-only). */
static void fail_now(struct virtio_blk *blk, const struct req_ctx *c, enum virtio_blk_op op)
{
	struct blk_req r = { .op = op, .start_ns = c->start_ns };

	virtio_blk_account_done(blk, &r, false);
	finish_now(blk, c, VIRTIO_BLK_S_IOERR);
}

/* QEMU's virtio_blk_sect_range_ok. */
static bool sect_range_ok(const struct virtio_blk *blk, uint64_t sector, uint64_t size)
{
	uint64_t nb = size / BDRV_SECTOR_SIZE;

	return nb <= VIRTIO_BLK_REQUEST_MAX_SECTORS && !(sector & blk->sector_mask) &&
	       size % blk->conf.logical_block_size == 0 && sector <= blk->capacity &&
	       nb <= blk->capacity - sector;
}

static void handle_rw(struct virtio_blk *blk, const struct req_ctx *c, bool write,
		      uint64_t sector)
{
	const struct virtq_elem *e = c->e;
	enum virtio_blk_op op = write ? VIRTIO_BLK_OP_WRITE : VIRTIO_BLK_OP_READ;
	uint64_t size = write ? e->out_len - VIRTIO_BLK_HDR_SIZE : e->in_len - 1;
	struct blk_req *r;

	if (!sect_range_ok(blk, sector, size)) {
		log_guest(LOG_GUEST_ERRORS, "virtio-blk: %s of %llu bytes at sector %llu beyond "
			  "capacity %llu or unaligned", write ? "write" : "read",
			  (unsigned long long)size, (unsigned long long)sector,
			  (unsigned long long)blk->capacity);
		virtio_blk_account_invalid(blk, op);
		finish_now(blk, c, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (write && blk->read_only) {
		fail_now(blk, c, op);
		return;
	}
	r = new_req(blk, c, op, write ? e->n_out : e->n_in);
	if (!r) {
		fail_now(blk, c, op);
		return;
	}
	r->offset = sector * BDRV_SECTOR_SIZE;
	r->bytes = size;
	if (write) {
		r->niov = iov_slice(e->iov, e->n_out, VIRTIO_BLK_HDR_SIZE, size, r->iov);
		r->flush_after = !blk->st.wce;
	} else {
		r->niov = iov_slice(e->iov + e->n_out, e->n_in, 0, size, r->iov);
	}
	virtio_blk_submit(blk, r, false);
}

static void handle_flush(struct virtio_blk *blk, const struct req_ctx *c)
{
	struct blk_req *r = new_req(blk, c, VIRTIO_BLK_OP_FLUSH, 0);

	if (!r) {
		fail_now(blk, c, VIRTIO_BLK_OP_FLUSH);
		return;
	}
	virtio_blk_submit(blk, r, false);
}

static void handle_get_id(struct virtio_blk *blk, const struct req_ctx *c)
{
	const struct virtq_elem *e = c->e;
	uint64_t size = strlen(blk->serial) + 1;

	/* NUL-terminated only when shorter than the 20 bytes (QEMU) */
	if (size > e->in_len - 1)
		size = e->in_len - 1;
	if (size > VIRTIO_BLK_ID_BYTES)
		size = VIRTIO_BLK_ID_BYTES;
	iov_from_buf(e->iov + e->n_out, e->n_in, 0, blk->serial, size);
	finish_now(blk, c, VIRTIO_BLK_S_OK);
}

/* Legacy SCSI passthrough is never offered: QEMU's scsi=off answers. */
static void handle_scsi(struct virtio_blk *blk, const struct req_ctx *c)
{
	const struct virtq_elem *e = c->e;
	const struct iovec *inhdr;
	uint8_t errors[4] = { 255, 0, 0, 0 };

	if (e->n_out < 2 || e->n_in < 3) {
		finish_now(blk, c, VIRTIO_BLK_S_IOERR);
		return;
	}
	inhdr = &e->iov[e->n_out + e->n_in - 2];	/* virtio_scsi_inhdr.errors */
	memcpy(inhdr->iov_base, errors, inhdr->iov_len < 4 ? inhdr->iov_len : 4);
	finish_now(blk, c, VIRTIO_BLK_S_UNSUPP);
}

/* Status for a discard/write-zeroes segment that cannot go to the block
 * layer, or -1 when it can. */
static int check_dwz(struct virtio_blk *blk, bool wz, uint64_t sector, uint32_t num,
		     uint32_t flags)
{
	uint32_t max = wz ? blk->conf.max_write_zeroes_sectors : blk->conf.max_discard_sectors;

	if (num > max || !sect_range_ok(blk, sector, (uint64_t)num * BDRV_SECTOR_SIZE)) {
		log_guest(LOG_GUEST_ERRORS, "virtio-blk: %s of %u sectors at %llu beyond "
			  "capacity %llu, the limit %u or unaligned", wz ? "write-zeroes" :
			  "discard", num, (unsigned long long)sector,
			  (unsigned long long)blk->capacity, max);
		if (wz)
			virtio_blk_account_invalid(blk, VIRTIO_BLK_OP_WRITE_ZEROES);
		return VIRTIO_BLK_S_IOERR;
	}
	if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) {
		if (wz)
			virtio_blk_account_invalid(blk, VIRTIO_BLK_OP_WRITE_ZEROES);
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (!wz && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
		return VIRTIO_BLK_S_UNSUPP;	/* the spec forbids unmap on discard */
	return -1;
}

/* Discard and write-zeroes: exactly one 16-byte segment, as QEMU offers
 * (max_*_seg = 1). Returns false when the device had to stop. */
static bool handle_dwz(struct virtio_blk *blk, const struct req_ctx *c, uint32_t type)
{
	const struct virtq_elem *e = c->e;
	bool wz = (type & ~VIRTIO_BLK_T_BARRIER) == VIRTIO_BLK_T_WRITE_ZEROES;
	enum virtio_blk_op op = wz ? VIRTIO_BLK_OP_WRITE_ZEROES : VIRTIO_BLK_OP_DISCARD;
	uint64_t seg_len = e->out_len - VIRTIO_BLK_HDR_SIZE, sector;
	uint8_t seg[VIRTIO_BLK_DWZ_SIZE];
	uint32_t num, flags;
	struct blk_req *r;
	int st;

	if (!(type & VIRTIO_BLK_T_OUT) || seg_len > VIRTIO_BLK_DWZ_SIZE ||
	    !(wz ? blk->conf.write_zeroes : blk->conf.discard)) {
		finish_now(blk, c, VIRTIO_BLK_S_UNSUPP);
		return true;
	}
	if (seg_len < VIRTIO_BLK_DWZ_SIZE) {
		virtio_pci_set_needs_reset(&blk->vp, "virtio-blk: discard/write_zeroes header "
					   "too short");
		return false;
	}
	iov_to_buf(e->iov, e->n_out, VIRTIO_BLK_HDR_SIZE, seg, sizeof(seg));
	sector = ld_le64(seg);
	num = ld_le32(seg + 8);
	flags = ld_le32(seg + 12);
	st = check_dwz(blk, wz, sector, num, flags);
	if (st >= 0) {
		finish_now(blk, c, st);
		return true;
	}
	if (blk->read_only && (wz || blk->conf.discard_unmap)) {
		fail_now(blk, c, op);	/* the block layer refuses: EPERM in QEMU */
		return true;
	}
	r = new_req(blk, c, op, 0);
	if (!r) {
		fail_now(blk, c, op);
		return true;
	}
	r->offset = sector * BDRV_SECTOR_SIZE;
	r->bytes = (uint64_t)num * BDRV_SECTOR_SIZE;
	if (!wz && !blk->conf.discard_unmap) {
		/* discard=ignore: QEMU's block layer succeeds without touching the image */
		r->ret = 0;
		virtio_blk_complete_req(blk, r, c->notify);
		free(r);
		return true;
	}
	r->flush_after = wz && !blk->st.wce;
	virtio_blk_submit(blk, r, wz && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) &&
			  blk->conf.discard_unmap);
	return true;
}

/* Handle one popped chain; false when the device had to stop. */
bool virtio_blk_handle_request(struct virtio_blk *blk, unsigned q, const struct virtq_elem *e,
			       unsigned *notify)
{
	struct req_ctx c = { .q = q, .e = e, .notify = notify };
	const struct iovec *last;
	uint8_t hdr[VIRTIO_BLK_HDR_SIZE];
	uint32_t type;

	if (e->n_out < 1 || e->n_in < 1) {
		virtio_pci_set_needs_reset(&blk->vp, "virtio-blk: missing headers");
		return false;
	}
	if (e->out_len < VIRTIO_BLK_HDR_SIZE) {
		virtio_pci_set_needs_reset(&blk->vp, "virtio-blk: request outhdr too short");
		return false;
	}
	last = &e->iov[e->n_out + e->n_in - 1];
	if (last->iov_len < 1) {
		virtio_pci_set_needs_reset(&blk->vp, "virtio-blk: request inhdr too short");
		return false;
	}
	c.status = (uint8_t *)last->iov_base + last->iov_len - 1;
	c.start_ns = clock_ns();
	iov_to_buf(e->iov, e->n_out, 0, hdr, sizeof(hdr));
	type = ld_le32(hdr);
	switch (type & ~(VIRTIO_BLK_T_OUT | VIRTIO_BLK_T_BARRIER)) {
	case VIRTIO_BLK_T_IN:
		handle_rw(blk, &c, type & VIRTIO_BLK_T_OUT, ld_le64(hdr + 8));
		return true;
	case VIRTIO_BLK_T_FLUSH:
		handle_flush(blk, &c);
		return true;
	case VIRTIO_BLK_T_SCSI_CMD:
		handle_scsi(blk, &c);
		return true;
	case VIRTIO_BLK_T_GET_ID:
		handle_get_id(blk, &c);
		return true;
	case VIRTIO_BLK_T_DISCARD & ~VIRTIO_BLK_T_OUT:
	case VIRTIO_BLK_T_WRITE_ZEROES & ~VIRTIO_BLK_T_OUT:
		return handle_dwz(blk, &c, type);
	default:
		finish_now(blk, &c, VIRTIO_BLK_S_UNSUPP);
		return true;
	}
}
