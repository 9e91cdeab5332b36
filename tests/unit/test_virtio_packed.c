/* Unit tests for packed virtqueues through the virtio-pci transport
 * (hw/virtio_pci*.c + hw/virtqueue.c) with the virtio-rng model, without a
 * VM: VIRTIO_F_RING_PACKED offered only with packed=on (and only to modern
 * drivers), the common config's desc/driver/device addresses as the
 * packed layout, a queue size that is no power of two, requests served
 * over many wrap-counter laps, the violation path, the packed=on|off
 * option parser, migration of the packed state with its checks, and the
 * virtio-blk model on a packed queue (completions from the block layer's
 * threads, out of order, batched through virtq_fill/virtq_flush) and the
 * virtio-net model (merged rx buffers, running dry with buffers given
 * back and resuming, tx, the device's event suppression). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "block/block.h"
#include "hw/pci.h"
#include "hw/virtio_blk.h"
#include "hw/virtio_net.h"
#include "hw/virtio_pci.h"
#include "hw/virtio_rng.h"
#include "vmm/opts.h"
#include "vmm/vmstate.h"
#include "tests/unit/virtio_test_util.h"

#define RAM_SIZE	(1u << 20)
#define SLOT		3
#define DEVFN		(SLOT << 3)
#define RING_GPA	0x10000
#define DRIVER_GPA	0x11000
#define DEVICE_GPA	0x12000
#define BUF_GPA		0x20000
#define QSIZE		6	/* packed queues need not be powers of two */
#define F_PACKED	(1ull << VIRTIO_F_RING_PACKED)
#define F_V1		(1ull << VIRTIO_F_VERSION_1)

struct fixture {
	struct guest_memory mem;
	struct pci_bus bus;
	struct virtio_pci vp;
	unsigned msi_count;
	struct vt_pring ring;	/* the driver's side */
};

static int setup_dev(void **state, bool packed)
{
	struct fixture *f = calloc(1, sizeof(*f));

	vt_mem_init(&f->mem, RAM_SIZE);
	pci_bus_init(&f->bus, NULL, NULL);
	assert_int_equal(virtio_rng_init(&f->vp, &f->mem), 0);
	virtio_pci_offer_packed(&f->vp, packed);
	assert_int_equal(pci_bus_add_device(&f->bus, &f->vp.pci, SLOT, 0), 0);
	f->vp.send_msi = vt_drop_msi;
	pci_config_write(&f->bus, DEVFN, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	vt_pring_init(&f->ring, &f->mem, RING_GPA, QSIZE);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_dev(state, true);
}

static int setup_unpacked(void **state)
{
	return setup_dev(state, false);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->vp.elem);
	free(f->mem.host);
	free(f);
	return 0;
}

static uint64_t mread(struct fixture *f, uint64_t off, unsigned size)
{
	return virtio_pci_modern_read(&f->vp, off, size);
}

static void mwrite(struct fixture *f, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_modern_write(&f->vp, off, v, size);
}

static uint64_t offered(struct fixture *f)
{
	return vt_offered(&f->vp);
}

/* Negotiate feat; true when FEATURES_OK stuck. */
static bool negotiate(struct fixture *f, uint64_t feat)
{
	mwrite(f, VP_COMMON_STATUS, 0, 1);
	return vt_negotiate(&f->vp, feat) & VIRTIO_STATUS_FEATURES_OK;
}

static void packed_init(struct fixture *f, uint64_t feat)
{
	assert_true(negotiate(f, feat));
	vt_queue_enable_wide(&f->vp, 0, QSIZE, RING_GPA, DRIVER_GPA, DEVICE_GPA);
	mwrite(f, VP_COMMON_STATUS, 0x0f, 1);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 0x0f);
}

/* One writable buffer of len bytes with buffer id, made available. */
static void add_buffer(struct fixture *f, uint16_t id, uint32_t len)
{
	const struct vt_pbuf buf = { BUF_GPA + 0x100 * id, len, VIRTQ_DESC_F_WRITE };

	vt_pring_add(&f->ring, id, &buf, 1);
}

static void kick(struct fixture *f)
{
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
}

/* --- feature negotiation -------------------------------------------------- */

static void test_offered_only_with_packed_on(void **state)
{
	struct fixture *f = *state;
	void *other;

	assert_true(offered(f) & F_PACKED);
	/* Legacy drivers see bits 0-31 only. */
	assert_int_equal(virtio_pci_legacy_read(&f->vp, VIRTIO_LEGACY_HOST_FEATURES, 4),
			 (uint32_t)offered(f));
	teardown(state);
	setup_unpacked(&other);
	*state = other;
	f = other;
	assert_false(offered(f) & F_PACKED);
	assert_false(negotiate(f, F_V1 | F_PACKED));	/* not offered: refused */
	assert_true(negotiate(f, F_V1));
	assert_false(f->vp.vqs[0].packed);
}

static void test_legacy_never_packed(void **state)
{
	struct fixture *f = *state;

	virtio_pci_legacy_write(&f->vp, VIRTIO_LEGACY_STATUS, 3, 1);
	virtio_pci_legacy_write(&f->vp, VIRTIO_LEGACY_GUEST_FEATURES, 0xffffffff, 4);
	virtio_pci_legacy_write(&f->vp, VIRTIO_LEGACY_QUEUE_PFN, RING_GPA >> 12, 4);
	assert_false(f->vp.guest_features & F_PACKED);
	assert_false(f->vp.vqs[0].packed);
	assert_true(virtq_ready(&f->vp.vqs[0]));
}

/* --- requests ------------------------------------------------------------- */

static void test_requests_over_many_laps(void **state)
{
	struct fixture *f = *state;
	uint16_t id;
	uint32_t len;

	packed_init(f, F_V1 | F_PACKED);
	assert_true(f->vp.vqs[0].packed);
	assert_int_equal(f->vp.vqs[0].size, QSIZE);
	for (unsigned round = 0; round < 1000; round++) {
		unsigned n = 1 + round % 4;

		for (unsigned k = 0; k < n; k++)
			add_buffer(f, k, 16 + k);
		kick(f);
		for (unsigned k = 0; k < n; k++) {
			assert_int_equal(vt_pring_pop_used(&f->ring, &id, &len), 1);
			assert_int_equal(id, k);
			assert_int_equal(len, 16 + k);
		}
		assert_int_equal(vt_pring_pop_used(&f->ring, &id, &len), 0);
	}
	assert_false(f->vp.broken);
	assert_true(f->vp.isr & VIRTIO_ISR_QUEUE);	/* ENABLE: interrupts */
	assert_int_equal(f->vp.vqs[0].inflight, 0);
	assert_int_equal(f->vp.vqs[0].last_avail_idx, f->ring.next_avail);
	assert_int_equal(f->vp.vqs[0].avail_wrap, f->ring.avail_wrap);
}

static void test_driver_disables_interrupts(void **state)
{
	struct fixture *f = *state;
	uint16_t flags = VIRTQ_EVENT_F_DISABLE, id;
	uint32_t len;

	packed_init(f, F_V1 | F_PACKED);
	memcpy(f->mem.host + DRIVER_GPA + 2, &flags, 2);
	mread(f, VP_ISR_OFF, 1);
	add_buffer(f, 0, 8);
	kick(f);
	assert_int_equal(vt_pring_pop_used(&f->ring, &id, &len), 1);
	assert_int_equal(f->vp.isr, 0);
}

static void test_violation_needs_reset(void **state)
{
	struct fixture *f = *state;

	packed_init(f, F_V1 | F_PACKED);
	add_buffer(f, QSIZE + 1, 8);		/* id out of range */
	kick(f);
	assert_true(f->vp.broken);
	assert_true(mread(f, VP_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* A reset brings it back as a split queue until renegotiated. */
	mwrite(f, VP_COMMON_STATUS, 0, 1);
	assert_false(f->vp.broken);
	assert_false(f->vp.vqs[0].packed);
	assert_true(f->vp.vqs[0].avail_wrap);
}

static int spec_packed(const char *spec, bool *on)
{
	struct opts o;
	int r = virtio_spec_parse(&o, spec, "x");

	if (r == 0)
		r = virtio_opts_packed(&o, "x", on);
	opts_free(&o);
	return r;
}

static void test_spec_option(void **state)
{
	bool on = false;

	(void)state;
	assert_int_equal(spec_packed("virtio-rng-pci", &on), 0);
	assert_false(on);
	assert_int_equal(spec_packed("virtio-rng-pci,packed=on", &on), 0);
	assert_true(on);
	assert_int_equal(spec_packed("virtio-rng-pci,packed=on,packed=off", &on), 0);
	assert_false(on);
	assert_int_equal(spec_packed("virtio-rng-pci,addr=4,packed=yes", &on), 0);
	assert_true(on);
	assert_int_equal(spec_packed("virtio-rng-pci,packed=onn", &on), -22);
	assert_int_equal(spec_packed("virtio-rng-pci,packed=", &on), -22);
}

/* --- migration ------------------------------------------------------------ */

static int load_vq(struct fixture *f, const uint8_t *buf, size_t n)
{
	char err[128];

	return vmstate_load(&virtqueue_vmstate, &f->vp.vqs[0], sizeof(f->vp.vqs[0]), buf, n,
			    err, sizeof(err));
}

static void test_vmstate(void **state)
{
	struct fixture *f = *state;
	struct virtq *vq = &f->vp.vqs[0];
	size_t n = vmstate_size(&virtqueue_vmstate);
	uint8_t *buf = malloc(n);
	struct virtq_elem *e = f->vp.elem;
	char err[128];

	packed_init(f, F_V1 | F_PACKED);
	for (unsigned k = 0; k < 4; k++) {	/* past the ring end */
		add_buffer(f, k, 8);
		kick(f);
	}
	/* Two popped by hand stay in flight across the save. */
	add_buffer(f, 4, 8);
	add_buffer(f, 5, 8);
	assert_int_equal(virtq_pop(vq, e), 1);
	assert_int_equal(virtq_pop(vq, e), 1);
	assert_false(vq->avail_wrap);
	vmstate_save(&virtqueue_vmstate, vq, buf);
	vq->packed_ndescs[4] = 0;
	vq->avail_wrap = true;
	assert_int_equal(load_vq(f, buf, n), 0);
	assert_int_equal(vq->packed_ndescs[4], 1);
	assert_false(vq->avail_wrap);
	assert_true(virtq_ready(vq));
	e->head = 5;
	e->in_len = 8;
	virtq_push(vq, e, 8);			/* completes after the "migration" */
	e->head = 4;
	virtq_push(vq, e, 8);
	assert_int_equal(vq->inflight, 0);
	assert_false(vq->broken);

	/* Inconsistent packed state is refused and leaves the queue alone. */
	assert_int_equal(virtq_pop(vq, e), 0);
	vmstate_save(&virtqueue_vmstate, vq, buf);
	memset(buf + n - 2 * VIRTQ_MAX_SIZE + 2 * 3, 1, 1);	/* id 3 in flight */
	assert_int_not_equal(load_vq(f, buf, n), 0);
	assert_int_equal(vq->packed_ndescs[3], 0);
	vq->used_idx = QSIZE;			/* outside the ring */
	vmstate_save(&virtqueue_vmstate, vq, buf);
	vq->used_idx = 0;
	assert_int_not_equal(load_vq(f, buf, n), 0);
	free(buf);

	/* The transport's offer must match: packed=on state into packed=off. */
	n = vmstate_size(&virtio_pci_vmstate);
	buf = malloc(n);
	vmstate_save(&virtio_pci_vmstate, &f->vp, buf);
	assert_int_equal(vmstate_load(&virtio_pci_vmstate, &f->vp, sizeof(f->vp), buf, n, err,
				      sizeof(err)), 0);
	virtio_pci_offer_packed(&f->vp, false);
	assert_int_not_equal(vmstate_load(&virtio_pci_vmstate, &f->vp, sizeof(f->vp), buf, n,
					  err, sizeof(err)), 0);
	free(buf);
}

/* --- virtio-blk on a packed queue ----------------------------------------- */

#define BLK_QSIZE	16
#define BLK_HDR_GPA	0x30000		/* request r: 16-byte header */
#define BLK_ST_GPA	0x31000		/* request r: status byte */
#define BLK_DATA_GPA	0x40000		/* request r: 512 bytes */

struct blk_fixture {
	struct guest_memory mem;
	struct virtio_blk blk;
	struct bdev *bs;
	char path[64];
	struct vt_pring ring;	/* the driver's side of queue 0 */
};

/* Request r (id r): header, 512 data bytes (device-writable for reads),
 * status byte: three descriptors. */
static void blk_submit(struct blk_fixture *b, uint16_t r, uint32_t type, uint64_t sector)
{
	uint8_t *h = b->mem.host + BLK_HDR_GPA + 16 * r;
	const struct vt_pbuf chain[3] = {
		{ BLK_HDR_GPA + 16 * r, 16, 0 },
		{ BLK_DATA_GPA + 512 * r, 512, type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0 },
		{ BLK_ST_GPA + r, 1, VIRTQ_DESC_F_WRITE },
	};

	memcpy(h, &type, 4);
	memset(h + 4, 0, 4);
	memcpy(h + 8, &sector, 8);
	b->mem.host[BLK_ST_GPA + r] = 0xee;
	vt_pring_add(&b->ring, r, chain, 3);
}

/* Wait for n used entries (the block layer completes on its threads);
 * marks each id seen in *seen. */
static void blk_wait(struct blk_fixture *b, unsigned n, unsigned *seen)
{
	struct timespec ts = { 0, 1000000 };
	uint16_t id;
	uint32_t len;
	int got;

	for (int i = 0; i < 5000 && n; i++) {
		while (n && (got = vt_pring_pop_used(&b->ring, &id, &len)) != 0) {
			assert_int_equal(got, 1);
			assert_int_equal(b->mem.host[BLK_ST_GPA + id], VIRTIO_BLK_S_OK);
			*seen |= 1u << id;
			n--;
		}
		if (n)
			nanosleep(&ts, NULL);
	}
	assert_int_equal(n, 0);
}

static void blk_setup(struct blk_fixture *b)
{
	struct block_open_opts o = { .format = "raw", .engine = BLOCK_ENGINE_THREADS };
	uint64_t feat = F_V1 | F_PACKED | 1ull << VIRTIO_BLK_F_FLUSH;
	struct virtio_blk_conf c;
	char err[256];
	int fd;

	vt_mem_init(&b->mem, RAM_SIZE);
	snprintf(b->path, sizeof(b->path), "/tmp/test_virtio_packed.XXXXXX");
	fd = mkstemp(b->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(bdev_open(b->path, &o, &b->bs, err, sizeof(err)), 0);
	virtio_blk_conf_init(&c);
	c.serial = "packed";
	assert_int_equal(virtio_blk_init(&b->blk, b->bs, &c, &b->mem, NULL), 0);
	virtio_pci_offer_packed(&b->blk.vp, true);
	b->blk.vp.send_msi = vt_drop_msi;
	b->blk.vp.pci.config[PCI_COMMAND] |= PCI_COMMAND_MASTER;	/* no bus here */
	virtio_pci_modern_write(&b->blk.vp, VP_COMMON_STATUS, 0, 1);
	assert_int_equal(vt_negotiate(&b->blk.vp, feat), 0x0b);
	for (unsigned q = 0; q < b->blk.conf.num_queues; q++)
		vt_queue_enable_wide(&b->blk.vp, q, BLK_QSIZE, RING_GPA + 0x1000 * 3 * q,
				     DRIVER_GPA + 0x1000 * 3 * q, DEVICE_GPA + 0x1000 * 3 * q);
	virtio_pci_modern_write(&b->blk.vp, VP_COMMON_STATUS, 0x0f, 1);
	assert_true(b->blk.vp.vqs[0].packed);
	vt_pring_init(&b->ring, &b->mem, RING_GPA, BLK_QSIZE);
}

/* Rounds of 5 writes then 5 reads of different sectors in one kick each:
 * 3-descriptor chains wrap the 16-entry ring over and over; the data
 * read back is what was written. */
static void test_blk_packed(void **state)
{
	struct blk_fixture *b = calloc(1, sizeof(*b));

	(void)state;
	blk_setup(b);
	for (unsigned round = 0; round < 60; round++) {
		unsigned seen = 0;

		for (uint16_t r = 0; r < 5; r++) {
			memset(b->mem.host + BLK_DATA_GPA + 512 * r, 0x10 * r + round, 512);
			blk_submit(b, r, VIRTIO_BLK_T_OUT, r * 7 + round % 3);
		}
		vt_kick(&b->blk.vp, 0);
		blk_wait(b, 5, &seen);
		assert_int_equal(seen, 0x1f);
		memset(b->mem.host + BLK_DATA_GPA, 0, 512 * 5);
		seen = 0;
		for (uint16_t r = 0; r < 5; r++)
			blk_submit(b, r, VIRTIO_BLK_T_IN, r * 7 + round % 3);
		vt_kick(&b->blk.vp, 0);
		blk_wait(b, 5, &seen);
		assert_int_equal(seen, 0x1f);
		for (uint16_t r = 0; r < 5; r++)
			assert_int_equal(b->mem.host[BLK_DATA_GPA + 512 * r + 511],
					 (uint8_t)(0x10 * r + round));
	}
	assert_false(b->blk.vp.broken);
	assert_int_equal(b->blk.vp.vqs[0].inflight, 0);
	virtio_blk_exit(&b->blk);
	bdev_close(b->bs);
	unlink(b->path);
	free(b->mem.host);
	free(b);
}

/* --- virtio-net on packed queues ------------------------------------------ */

#define NET_QSIZE	16
#define NET_RING(q)	(0x10000 + (q) * 0x4000)	/* ring, driver +1K, device +2K */
#define NET_BUF_GPA	0x80000

static const uint8_t net_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

struct net_side {			/* the driver's view of one queue */
	struct vt_pring ring;
	uint16_t next_id;
};

struct net_fixture {
	struct guest_memory mem;
	struct virtio_net n;
	const struct net_frontend *fe;
	unsigned ready_calls, nframes;
	size_t last_len;
	struct net_side q[3];
};

static int nb_attach(void *be, const struct net_frontend *fe)
{
	((struct net_fixture *)be)->fe = fe;
	return 0;
}

static ssize_t nb_send(void *be, const struct iovec *iov, int iovcnt)
{
	struct net_fixture *f = be;
	size_t len = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	f->nframes++;
	f->last_len = len;
	return len;
}

static void nb_receive_ready(void *be)
{
	((struct net_fixture *)be)->ready_calls++;
}

static bool nb_has_vnet_hdr(void *be)
{
	return false;
}

static int nb_set_vnet_hdr_len(void *be, unsigned len)
{
	return 0;
}

static int nb_set_offloads(void *be, const struct net_offloads *o)
{
	return 0;
}

static const struct virtio_net_backend_ops net_fake_ops = {
	.attach = nb_attach,
	.send = nb_send,
	.receive_ready = nb_receive_ready,
	.has_vnet_hdr = nb_has_vnet_hdr,
	.set_vnet_hdr_len = nb_set_vnet_hdr_len,
	.set_offloads = nb_set_offloads,
};

static void net_start(struct net_fixture *f, uint64_t feat)
{
	unsigned nq;

	virtio_pci_modern_write(&f->n.vp, VP_COMMON_STATUS, 0, 1);
	assert_int_equal(vt_negotiate(&f->n.vp, feat), 0x0b);
	nq = virtio_pci_modern_read(&f->n.vp, VP_COMMON_NUMQ, 2);
	assert_true(nq <= 3);
	for (unsigned q = 0; q < nq; q++) {
		vt_queue_enable_wide(&f->n.vp, q, NET_QSIZE, NET_RING(q), NET_RING(q) + 0x1000,
				     NET_RING(q) + 0x2000);
		vt_pring_init(&f->q[q].ring, &f->mem, NET_RING(q), NET_QSIZE);
	}
	virtio_pci_modern_write(&f->n.vp, VP_COMMON_STATUS, 0x0f, 1);
	assert_true(f->n.vp.vqs[0].packed);
}

/* One single-descriptor buffer (device-writable for rx) with the next id. */
static uint16_t net_post(struct net_fixture *f, unsigned q, uint64_t gpa, uint32_t len,
			 bool write)
{
	struct net_side *s = &f->q[q];
	uint16_t id = s->next_id++ % NET_QSIZE;

	assert_int_equal(s->ring.ndescs[id], 0);
	vt_pring_add(&s->ring, id, &(struct vt_pbuf){ gpa, len, write ? VIRTQ_DESC_F_WRITE : 0 }, 1);
	return id;
}

/* The next used element of queue q: 1, or 0 when there is none. */
static int net_used(struct net_fixture *f, unsigned q, uint16_t *id, uint32_t *len)
{
	return vt_pring_pop_used(&f->q[q].ring, id, len);
}

static ssize_t net_deliver(struct net_fixture *f, size_t len, uint8_t fill)
{
	uint8_t frame[1514];
	struct iovec iov = { frame, len };

	memcpy(frame, net_mac, 6);
	memset(frame + 6, 0x02, 6);
	frame[12] = 0x08;
	frame[13] = 0;
	memset(frame + 14, fill, len - 14);
	return f->fe->receive(f->fe->opaque, &iov, 1);
}

static void test_net_packed(void **state)
{
	struct net_fixture *f = calloc(1, sizeof(*f));
	struct virtio_net_opts o;
	uint16_t id, ids[4];
	uint32_t len;
	uint64_t buf;

	(void)state;
	vt_mem_init(&f->mem, RAM_SIZE);
	virtio_net_default_opts(&o);
	memcpy(o.mac, net_mac, 6);
	assert_int_equal(virtio_net_init(&f->n, &o, &net_fake_ops, f, &f->mem, NULL), 0);
	virtio_pci_offer_packed(&f->n.vp, true);
	f->n.vp.send_msi = vt_drop_msi;
	f->n.vp.pci.config[PCI_COMMAND] |= PCI_COMMAND_MASTER;
	net_start(f, F_V1 | F_PACKED | 1ull << VIRTIO_NET_F_MRG_RXBUF |
		  1ull << VIRTIO_F_RING_EVENT_IDX);

	/* Merged rx: a 100-byte frame + 12-byte header over two 64-byte
	 * buffers, num_buffers = 2 in the first. */
	buf = NET_BUF_GPA;
	ids[0] = net_post(f, 0, buf, 64, true);
	ids[1] = net_post(f, 0, buf + 64, 64, true);
	assert_int_equal(net_deliver(f, 100, 0x5a), 100);
	assert_int_equal(net_used(f, 0, &id, &len), 1);
	assert_int_equal(id, ids[0]);
	assert_int_equal(len, 64);
	assert_int_equal(net_used(f, 0, &id, &len), 1);
	assert_int_equal(id, ids[1]);
	assert_int_equal(len, 48);
	assert_int_equal(f->mem.host[buf + VIRTIO_NET_HDR_NUM_BUFFERS], 2);
	assert_int_equal(f->mem.host[buf + 64 + 47], 0x5a);

	/* Dry: one buffer for a frame that needs four; it is given back,
	 * the device asks for a kick, a kick brings receive_ready, and the
	 * retry takes the same buffer first. */
	ids[0] = net_post(f, 0, buf, 64, true);
	assert_int_equal(net_deliver(f, 200, 0x33), 0);
	assert_int_equal(net_used(f, 0, &id, &len), 0);
	assert_int_equal(f->n.vp.vqs[0].inflight, 0);
	for (int k = 1; k < 4; k++)
		ids[k] = net_post(f, 0, buf + 64 * k, 64, true);
	vt_kick(&f->n.vp, 0);
	assert_int_equal(f->ready_calls, 1);
	assert_int_equal(net_deliver(f, 200, 0x33), 200);
	for (int k = 0; k < 4; k++) {
		assert_int_equal(net_used(f, 0, &id, &len), 1);
		assert_int_equal(id, ids[k]);
	}
	assert_int_equal(len, 212 - 3 * 64);
	assert_int_equal(f->mem.host[buf + VIRTIO_NET_HDR_NUM_BUFFERS], 4);

	/* Many laps of single-buffer frames. */
	for (int i = 0; i < 200; i++) {
		ids[0] = net_post(f, 0, buf, 256, true);
		assert_int_equal(net_deliver(f, 60 + i % 100, i), 60 + i % 100);
		assert_int_equal(net_used(f, 0, &id, &len), 1);
		assert_int_equal(id, ids[0]);
		assert_int_equal(len, 12 + 60 + i % 100);
	}

	/* tx: header + frame in one readable descriptor. */
	memset(f->mem.host + buf, 0, 12);
	memcpy(f->mem.host + buf + 12, net_mac, 6);
	for (int i = 0; i < 40; i++) {
		ids[0] = net_post(f, 1, buf, 12 + 64, false);
		vt_kick(&f->n.vp, 1);
		assert_int_equal(net_used(f, 1, &id, &len), 1);
		assert_int_equal(id, ids[0]);
		assert_int_equal(len, 0);
	}
	assert_int_equal(f->nframes, 40);
	assert_int_equal(f->last_len, 64);
	assert_false(f->n.vp.broken);
	free(f->n.vp.elem);
	free(f->mem.host);
	free(f);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_offered_only_with_packed_on),
		T(test_legacy_never_packed),
		T(test_requests_over_many_laps),
		T(test_driver_disables_interrupts),
		T(test_violation_needs_reset),
		T(test_spec_option),
		T(test_vmstate),
		cmocka_unit_test(test_blk_packed),
		cmocka_unit_test(test_net_packed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
