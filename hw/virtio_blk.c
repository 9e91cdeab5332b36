/* virtio-blk-pci (virtio block device, type 2): one request queue served
 * on the event loop, each request submitted asynchronously to the block
 * layer and completed (status byte, used ring, interrupt) back on the event
 * loop. Owns the -drive option parsing and the "-device virtio-blk-pci,
 * drive=ID[,addr=SLOT,serial=S]" and "-drive ...,if=virtio" creation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "block/block.h"
#include "hw/virtio_blk.h"
#include "hw/virtio_rng.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define PCI_CLASS_STORAGE_SCSI	0x010000
#define BLK_HDR_SIZE		16
#define BLK_SEG_MAX		(VIRTIO_BLK_QUEUE_SIZE - 2)

/* One request in flight in the block layer. */
struct blk_req {
	struct virtio_blk *blk;
	unsigned q;
	unsigned generation;
	uint16_t head;
	uint64_t in_len;		/* the chain's writable bytes */
	uint8_t *status;		/* host address of the status byte */
	uint32_t written;		/* used length on success */
	int ret;
	int niov;
	struct iovec iov[];		/* data segments */
};

/* --- request parsing ---------------------------------------------------- */

/* Copy the [skip, skip+len) bytes of iov[0..n) into dst as segments;
 * returns the segment count (len must lie within the vector). */
static int iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
		     struct iovec *dst)
{
	int out = 0;

	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		dst[out].iov_base = (uint8_t *)iov[i].iov_base + skip;
		dst[out].iov_len = l;
		out++;
		len -= l;
		skip = 0;
	}
	return out;
}

/* The header may span descriptors: gather its 16 bytes. */
static void read_header(const struct virtq_elem *e, uint8_t *hdr)
{
	struct iovec part[BLK_HDR_SIZE];
	int n = iov_slice(e->iov, e->n_out, 0, BLK_HDR_SIZE, part);
	unsigned off = 0;

	for (int i = 0; i < n; i++) {
		memcpy(hdr + off, part[i].iov_base, part[i].iov_len);
		off += part[i].iov_len;
	}
}

/* The last writable byte of the chain. */
static uint8_t *status_byte(const struct virtq_elem *e)
{
	const struct iovec *last = &e->iov[e->n_out + e->n_in - 1];

	for (unsigned i = e->n_out + e->n_in; i > e->n_out; i--) {
		last = &e->iov[i - 1];
		if (last->iov_len)
			return (uint8_t *)last->iov_base + last->iov_len - 1;
	}
	return NULL;
}

static void copy_to_iov(const struct iovec *iov, int n, const uint8_t *src, uint64_t len)
{
	for (int i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(iov[i].iov_base, src, l);
		src += l;
		len -= l;
	}
}

/* --- completion ---------------------------------------------------------- */

/* Status byte, used ring and interrupt; device lock held. */
static void finish_locked(struct virtio_blk *blk, unsigned q, uint16_t head, uint64_t in_len,
			  uint8_t *status, uint8_t st, uint32_t written)
{
	struct virtio_pci *vp = &blk->vp;

	*status = st;
	vp->elem->head = head;
	vp->elem->in_len = in_len;
	virtq_push(&vp->vqs[q], vp->elem, written);
	virtio_pci_queue_interrupt(vp, q);
}

static void complete_req(void *opaque)
{
	struct blk_req *r = opaque;
	struct virtio_blk *blk = r->blk;

	virtio_pci_lock(&blk->vp);
	blk->inflight--;
	if (r->generation == blk->generation && !blk->vp.broken) {
		if (r->ret < 0)
			finish_locked(blk, r->q, r->head, r->in_len, r->status,
				      VIRTIO_BLK_S_IOERR, 1);
		else
			finish_locked(blk, r->q, r->head, r->in_len, r->status,
				      VIRTIO_BLK_S_OK, r->written);
	}
	virtio_pci_unlock(&blk->vp);
	free(r);
}

/* Block-layer callback (a block thread, or inside the submit call): hand
 * the completion to the event loop, which owns the queue. */
static void req_done(void *opaque, int ret)
{
	struct blk_req *r = opaque;

	r->ret = ret;
	if (r->blk->loop && event_loop_call(r->blk->loop, complete_req, r) == 0)
		return;
	complete_req(r);	/* the lock is recursive: safe inside submit too */
}

/* --- request dispatch ---------------------------------------------------- */

static struct blk_req *new_req(struct virtio_blk *blk, unsigned q, const struct virtq_elem *e,
			       uint8_t *status, unsigned niov)
{
	struct blk_req *r = calloc(1, sizeof(*r) + niov * sizeof(struct iovec));

	if (!r)
		return NULL;
	r->blk = blk;
	r->q = q;
	r->generation = blk->generation;
	r->head = e->head;
	r->in_len = e->in_len;
	r->status = status;
	return r;
}

/* Start a read or write; returns the status to report now, or -1 when
 * the request went to the block layer. */
static int submit_rw(struct virtio_blk *blk, unsigned q, const struct virtq_elem *e,
		     uint8_t *status, bool write, uint64_t sector)
{
	uint64_t len = write ? e->out_len - BLK_HDR_SIZE : e->in_len - 1;
	unsigned nseg = write ? e->n_out : e->n_in;
	struct blk_req *r;
	int rc;

	if (write && blk->read_only)
		return VIRTIO_BLK_S_IOERR;
	if (len % BDRV_SECTOR_SIZE || len > UINT32_MAX - 1 || sector > blk->capacity ||
	    len / BDRV_SECTOR_SIZE > blk->capacity - sector) {
		log_guest(LOG_GUEST_ERRORS, "virtio-blk: %s of %llu bytes at sector %llu beyond "
			  "capacity %llu or unaligned", write ? "write" : "read",
			  (unsigned long long)len, (unsigned long long)sector,
			  (unsigned long long)blk->capacity);
		return VIRTIO_BLK_S_IOERR;
	}
	r = new_req(blk, q, e, status, nseg);
	if (!r)
		return VIRTIO_BLK_S_IOERR;
	if (write) {
		r->niov = iov_slice(e->iov, e->n_out, BLK_HDR_SIZE, len, r->iov);
		r->written = 1;
	} else {
		r->niov = iov_slice(e->iov + e->n_out, e->n_in, 0, len, r->iov);
		r->written = len + 1;
	}
	blk->inflight++;
	if (write)
		rc = bdev_aio_writev(blk->bs, sector * BDRV_SECTOR_SIZE, r->iov, r->niov,
				     req_done, r);
	else
		rc = bdev_aio_readv(blk->bs, sector * BDRV_SECTOR_SIZE, r->iov, r->niov,
				    req_done, r);
	(void)rc;	/* an immediate error has already gone through req_done */
	return -1;
}

static int submit_flush(struct virtio_blk *blk, unsigned q, const struct virtq_elem *e,
			uint8_t *status)
{
	struct blk_req *r = new_req(blk, q, e, status, 0);

	if (!r)
		return VIRTIO_BLK_S_IOERR;
	r->written = 1;
	blk->inflight++;
	bdev_aio_flush(blk->bs, req_done, r);
	return -1;
}

/* Returns the bytes written besides the status byte. */
static uint32_t get_id(struct virtio_blk *blk, const struct virtq_elem *e)
{
	struct iovec part[VIRTIO_BLK_ID_BYTES];
	uint64_t len = e->in_len - 1;
	int n;

	if (len > VIRTIO_BLK_ID_BYTES)
		len = VIRTIO_BLK_ID_BYTES;
	n = iov_slice(e->iov + e->n_out, e->n_in, 0, len, part);
	copy_to_iov(part, n, (const uint8_t *)blk->serial, len);
	return len;
}

/* Handle one popped chain; false when the device had to stop. */
static bool handle_request(struct virtio_blk *blk, unsigned q, const struct virtq_elem *e)
{
	uint8_t hdr[BLK_HDR_SIZE];
	uint8_t *status = e->in_len ? status_byte(e) : NULL;
	uint32_t type;
	uint64_t sector;
	int st;

	if (!status) {
		virtio_pci_set_needs_reset(&blk->vp, "virtio-blk: request without a status byte");
		return false;
	}
	if (e->out_len < BLK_HDR_SIZE) {
		log_guest(LOG_GUEST_ERRORS, "virtio-blk: request header of %llu bytes (16 needed)",
			  (unsigned long long)e->out_len);
		finish_locked(blk, q, e->head, e->in_len, status, VIRTIO_BLK_S_IOERR, 1);
		return true;
	}
	read_header(e, hdr);
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		st = submit_rw(blk, q, e, status, type == VIRTIO_BLK_T_OUT, sector);
		break;
	case VIRTIO_BLK_T_FLUSH:
		st = submit_flush(blk, q, e, status);
		break;
	case VIRTIO_BLK_T_GET_ID:
		finish_locked(blk, q, e->head, e->in_len, status, VIRTIO_BLK_S_OK,
			      get_id(blk, e) + 1);
		return true;
	default:
		st = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (st >= 0)
		finish_locked(blk, q, e->head, e->in_len, status, st, 1);
	return true;
}

void virtio_blk_process(struct virtio_pci *vp, unsigned q)
{
	struct virtio_blk *blk = vp->opaque;
	struct virtq *vq = &vp->vqs[q];
	unsigned popped = 0;
	int r = 0;

	while (popped < vq->size && (r = virtq_pop(vq, vp->elem)) == 1) {
		popped++;
		if (!handle_request(blk, q, vp->elem))
			return;
	}
	if (r < 0)
		virtio_pci_set_needs_reset(vp, vq->error);
	if (r == 1 && popped == vq->size)
		virtio_pci_kick_later(vp, q);
}

static void virtio_blk_reset(struct virtio_pci *vp)
{
	struct virtio_blk *blk = vp->opaque;

	blk->generation++;	/* requests still in the block layer complete silently */
}

static const struct virtio_dev_ops virtio_blk_ops = {
	.name = "virtio-blk-pci",
	.device_type = VIRTIO_ID_BLOCK,
	.transitional_id = VIRTIO_BLK_PCI_ID,
	.class_code = PCI_CLASS_STORAGE_SCSI,
	.features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
		    (1ull << VIRTIO_BLK_F_FLUSH),
	.num_queues = 1,
	.queue_size = VIRTIO_BLK_QUEUE_SIZE,
	.config_size = VIRTIO_BLK_CFG_SIZE,
	.queue_notify = virtio_blk_process,
	.reset = virtio_blk_reset,
};

static const struct virtio_dev_ops virtio_blk_ro_ops = {
	.name = "virtio-blk-pci",
	.device_type = VIRTIO_ID_BLOCK,
	.transitional_id = VIRTIO_BLK_PCI_ID,
	.class_code = PCI_CLASS_STORAGE_SCSI,
	.features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
		    (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_RO),
	.num_queues = 1,
	.queue_size = VIRTIO_BLK_QUEUE_SIZE,
	.config_size = VIRTIO_BLK_CFG_SIZE,
	.queue_notify = virtio_blk_process,
	.reset = virtio_blk_reset,
};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

int virtio_blk_init(struct virtio_blk *blk, struct bdev *bs, bool read_only, const char *serial,
		    const struct guest_memory *mem, struct event_loop *loop)
{
	int r;

	blk->bs = bs;
	blk->loop = loop;
	blk->read_only = read_only || bdev_is_read_only(bs);
	blk->capacity = bdev_size(bs) / BDRV_SECTOR_SIZE;
	memset(blk->serial, 0, sizeof(blk->serial));
	if (serial)
		memcpy(blk->serial, serial, strnlen(serial, VIRTIO_BLK_ID_BYTES));
	r = virtio_pci_init(&blk->vp, blk->read_only ? &virtio_blk_ro_ops : &virtio_blk_ops,
			    blk, mem);
	if (r < 0)
		return r;
	put_le64(blk->vp.config + VIRTIO_BLK_CFG_CAPACITY, blk->capacity);
	put_le32(blk->vp.config + VIRTIO_BLK_CFG_SEG_MAX, BLK_SEG_MAX);
	put_le32(blk->vp.config + VIRTIO_BLK_CFG_BLK_SIZE, BDRV_SECTOR_SIZE);
	return 0;
}

/* --- command line -------------------------------------------------------- */

struct drive_spec {
	char file[4096];
	char id[64];
	char iface[16];
	struct block_open_opts opts;
	bool used;
};

/* Value of key in a "k=v,k=v" spec into buf; 1 found, 0 absent, -1 too long. */
static int spec_get(const char *spec, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	const char *p = spec;

	while (*p) {
		size_t n = strcspn(p, ",");

		if (n > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			if (n - klen - 1 >= len)
				return -1;
			memcpy(buf, p + klen + 1, n - klen - 1);
			buf[n - klen - 1] = 0;
			return 1;
		}
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

static const char *const drive_keys[] = {
	"file", "format", "if", "id", "cache", "aio", "readonly", "media", "serial",
};

static int check_drive_keys(const char *spec)
{
	const char *p = spec;

	while (*p) {
		size_t n = strcspn(p, ","), k = strcspn(p, "=,");
		bool ok = false;

		for (size_t i = 0; i < sizeof(drive_keys) / sizeof(drive_keys[0]); i++)
			if (k == strlen(drive_keys[i]) && !strncmp(p, drive_keys[i], k) && k < n)
				ok = true;
		if (!ok) {
			log_error("-drive: unknown or bad parameter '%.*s'", (int)n, p);
			return -EINVAL;
		}
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

static int parse_drive(const char *spec, struct drive_spec *d, char *fmt, size_t fmtlen,
		       char *serial, size_t serlen)
{
	char v[64];

	memset(d, 0, sizeof(*d));
	if (check_drive_keys(spec) < 0)
		return -EINVAL;
	if (spec_get(spec, "file", d->file, sizeof(d->file)) != 1 || !d->file[0]) {
		log_error("-drive %s: file= is required", spec);
		return -EINVAL;
	}
	if (spec_get(spec, "id", d->id, sizeof(d->id)) < 0 ||
	    spec_get(spec, "if", d->iface, sizeof(d->iface)) < 0 ||
	    spec_get(spec, "format", fmt, fmtlen) < 0 || spec_get(spec, "serial", serial, serlen) < 0) {
		log_error("-drive %s: a value is too long", spec);
		return -EINVAL;
	}
	if (strcmp(d->iface, "none") && strcmp(d->iface, "virtio")) {
		log_error("-drive %s: only if=none and if=virtio are supported", spec);
		return -EINVAL;
	}
	if (!strcmp(d->iface, "none") && !d->id[0]) {
		log_error("-drive %s: if=none needs id=", spec);
		return -EINVAL;
	}
	d->opts.format = fmt[0] ? fmt : NULL;
	if (spec_get(spec, "cache", v, sizeof(v)) &&
	    block_parse_cache_mode(v, &d->opts.cache) < 0) {
		log_error("-drive %s: invalid cache mode '%s'", spec, v);
		return -EINVAL;
	}
	if (spec_get(spec, "aio", v, sizeof(v)) && block_parse_engine(v, &d->opts.engine) < 0) {
		log_error("-drive %s: invalid aio '%s' (threads, native, io_uring)", spec, v);
		return -EINVAL;
	}
	if (spec_get(spec, "readonly", v, sizeof(v))) {
		if (!strcmp(v, "on"))
			d->opts.read_only = true;
		else if (strcmp(v, "off")) {
			log_error("-drive %s: readonly must be on or off", spec);
			return -EINVAL;
		}
	}
	if (spec_get(spec, "media", v, sizeof(v)) && strcmp(v, "disk")) {
		log_error("-drive %s: only media=disk is supported", spec);
		return -EINVAL;
	}
	return 0;
}

/* Open the drive and put a virtio-blk-pci for it on the VM. */
static int create_blk(struct vm *vm, const char *spec, int slot, const char *serial)
{
	struct drive_spec d;
	char fmt[32] = "", dserial[VIRTIO_BLK_ID_BYTES + 1] = "", err[512];
	struct virtio_blk *blk;
	struct bdev *bs;
	int r;

	r = parse_drive(spec, &d, fmt, sizeof(fmt), dserial, sizeof(dserial));
	if (r < 0)
		return r;
	r = bdev_open(d.file, &d.opts, &bs, err, sizeof(err));
	if (r < 0) {
		log_error("-drive: %s", err);
		return r;
	}
	blk = calloc(1, sizeof(*blk));
	if (!blk) {
		bdev_close(bs);
		return -ENOMEM;
	}
	r = virtio_blk_init(blk, bs, d.opts.read_only, serial ? serial : dserial, &vm->mem,
			    vm->loop);
	if (r < 0) {
		log_error("-drive %s: cannot create the device: %s", d.file, strerror(-r));
		return r;
	}
	return virtio_pci_realize(&blk->vp, vm, slot);	/* logs its errors */
}

/* The -drive spec whose id= is id, or NULL. */
static const char *find_drive(const struct vm_config *cfg, const char *id, unsigned *index)
{
	char v[64];

	for (unsigned i = 0; i < cfg->n_drives; i++)
		if (spec_get(cfg->drives[i], "id", v, sizeof(v)) == 1 && !strcmp(v, id)) {
			*index = i;
			return cfg->drives[i];
		}
	return NULL;
}

static int device_spec_blk(struct vm *vm, const char *spec, bool *used)
{
	const char *name = virtio_blk_ops.name;
	char id[64], serial[VIRTIO_BLK_ID_BYTES + 1];
	const char *drive;
	unsigned index;
	int slot, has_serial;

	if (virtio_spec_slot(spec, name, &slot) < 0)
		return -EINVAL;
	if (spec_get(spec, "drive", id, sizeof(id)) != 1) {
		log_error("-device %s: drive=ID is required", name);
		return -EINVAL;
	}
	drive = find_drive(vm->cfg, id, &index);
	if (!drive) {
		log_error("-device %s: no -drive with id=%s", name, id);
		return -EINVAL;
	}
	if (used[index]) {
		log_error("-device %s: drive %s is already in use", name, id);
		return -EINVAL;
	}
	used[index] = true;
	has_serial = spec_get(spec, "serial", serial, sizeof(serial));
	if (has_serial < 0) {
		log_error("-device %s: serial is longer than %d bytes", name, VIRTIO_BLK_ID_BYTES);
		return -EINVAL;
	}
	return create_blk(vm, drive, slot, has_serial ? serial : NULL);
}

static int virtio_blk_device_init(struct vm *vm)
{
	const char *name = virtio_blk_ops.name;
	size_t nlen = strlen(name);
	bool used[MAX_DRIVE_SPECS] = { false };
	char iface[16];
	int r;

	for (unsigned i = 0; i < vm->cfg->n_devices; i++) {
		const char *spec = vm->cfg->devices[i];

		if (strncmp(spec, name, nlen) || (spec[nlen] && spec[nlen] != ','))
			continue;
		r = device_spec_blk(vm, spec, used);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < vm->cfg->n_drives; i++) {
		const char *spec = vm->cfg->drives[i];

		if (spec_get(spec, "if", iface, sizeof(iface)) == 1 && !strcmp(iface, "virtio")) {
			if (used[i]) {
				log_error("-drive %s: if=virtio drive also used by a -device", spec);
				return -EINVAL;
			}
			r = create_blk(vm, spec, -1, NULL);
			if (r < 0)
				return r;
		} else if (!used[i]) {
			struct drive_spec d;
			char fmt[32], ser[VIRTIO_BLK_ID_BYTES + 1];

			r = parse_drive(spec, &d, fmt, sizeof(fmt), ser, sizeof(ser));
			if (r < 0)	/* unused drives still get their syntax checked */
				return r;
		}
	}
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_DEVICE, virtio_blk_device_init);
