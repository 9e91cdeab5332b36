/* libFuzzer target for the virtio-net model over the virtio-pci transport
 * with a fake backend: the input is one configuration byte (queue pairs,
 * mq, ctrl_vq, mrg_rxbuf, vnet header in the backend), a list of
 * operations (register accesses on both BARs and config space, kicks,
 * frames delivered by the backend, a full backend and send_ready, bus
 * resets) and then the guest RAM holding rings, buffers and control
 * commands. No guest or backend input may crash the model, touch memory
 * outside guest RAM or break its invariants. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hw/pci.h"
#include "hw/virtio_net.h"
#include "tests/fuzz/fuzz_virtio_common.h"

#define RAM_SIZE	0x20000
#define DEVFN		(3 << 3)
#define MAX_OPS		128

struct op {
	uint8_t kind;
	uint8_t size;
	uint16_t off;
	uint32_t value;
} __attribute__((packed));

struct fake_be {
	const struct net_frontend *fe;
	bool vnet_hdr;
	bool full;
	uint32_t sum;
};

static int fb_attach(void *be, const struct net_frontend *fe)
{
	((struct fake_be *)be)->fe = fe;
	return 0;
}

/* Read every byte handed over, so the sanitizers see each iovec. */
static ssize_t fb_send(void *be, const struct iovec *iov, int iovcnt)
{
	struct fake_be *b = be;
	size_t len = 0;

	if (b->full)
		return 0;
	if (iovcnt < 0 || iovcnt > VIRTQ_MAX_SIZE)
		abort();
	for (int i = 0; i < iovcnt; i++) {
		for (size_t j = 0; j < iov[i].iov_len; j++)
			b->sum += ((const uint8_t *)iov[i].iov_base)[j];
		len += iov[i].iov_len;
	}
	if (len > NET_MAX_FRAME + NET_VNET_HDR_LEN)
		abort();	/* the model must not send oversized frames */
	return len ? (ssize_t)len : -EINVAL;
}

static void fb_receive_ready(void *be)
{
	(void)be;
}

static bool fb_has_vnet_hdr(void *be)
{
	return ((struct fake_be *)be)->vnet_hdr;
}

static int fb_set_vnet_hdr_len(void *be, unsigned len)
{
	if (len != 10 && len != 12)
		abort();
	(void)be;
	return 0;
}

static int fb_set_offloads(void *be, const struct net_offloads *o)
{
	(void)be;
	(void)o;
	return 0;
}

static const struct virtio_net_backend_ops fake_ops = {
	.attach = fb_attach,
	.send = fb_send,
	.receive_ready = fb_receive_ready,
	.has_vnet_hdr = fb_has_vnet_hdr,
	.set_vnet_hdr_len = fb_set_vnet_hdr_len,
	.set_offloads = fb_set_offloads,
};

/* A frame from the backend: header (when it carries one), a destination
 * picked from the value, bytes derived from it. Rarely oversized. */
static void deliver(struct fake_be *b, struct virtio_net *n, const struct op *o)
{
	static uint8_t frame[NET_MAX_FRAME + 64];
	static const uint8_t dsts[4][6] = {
		{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, { 0x01, 0, 0x5e, 0, 0, 1 },
		{ 0x02, 1, 2, 3, 4, 5 }, { 0 },
	};
	size_t len = o->value % 1600, hdr = b->vnet_hdr ? virtio_net_hdr_len(n) : 0;
	struct iovec iov[2];

	if ((o->value >> 24) == 0xa5)
		len = NET_MAX_FRAME - 8 + (o->value & 31);
	memset(frame, o->value >> 8, len + hdr);
	if (len + hdr >= 6 + hdr)
		memcpy(frame + hdr, (o->off & 3) == 3 ? n->st.mac : dsts[o->off & 3], 6);
	iov[0] = (struct iovec){ frame, (len + hdr) / 2 };
	iov[1] = (struct iovec){ frame + (len + hdr) / 2, len + hdr - (len + hdr) / 2 };
	if (b->fe->can_receive(b->fe->opaque) || (o->off & 4))
		b->fe->receive(b->fe->opaque, iov, 2);
}

static void run_op(struct pci_bus *bus, struct virtio_net *n, struct fake_be *b,
		   const struct op *o)
{
	struct virtio_pci *vp = &n->vp;
	unsigned size = access_size(o->size);

	switch (o->kind % 12) {
	case 0:
		virtio_pci_modern_read(vp, o->off % VP_BAR4_SIZE, size);
		break;
	case 1:
	case 2:
		virtio_pci_modern_write(vp, o->off % VP_BAR4_SIZE, o->value, size);
		break;
	case 3:
		virtio_pci_legacy_read(vp, o->off % vp->pci.bars[0].size, size);
		break;
	case 4:
		virtio_pci_legacy_write(vp, o->off % vp->pci.bars[0].size, o->value, size);
		break;
	case 5:
		pci_config_write(bus, DEVFN, o->off % PCI_CONFIG_SIZE, size > 4 ? 4 : size,
				 o->value);
		break;
	case 6:
	case 7:
		virtio_pci_lock(vp);
		virtio_pci_kick(vp, o->off % n->ops.num_queues);
		virtio_pci_unlock(vp);
		break;
	case 8:
	case 9:
		deliver(b, n, o);
		break;
	case 10:
		b->full = o->value & 1;
		if (!b->full)
			b->fe->send_ready(b->fe->opaque);
		break;
	case 11:
		if (o->value == 0x52455345)	/* rare: "RESE" */
			pci_bus_reset(bus);
		break;
	}
}

static void check_invariants(const struct virtio_net *n)
{
	const struct virtio_pci *vp = &n->vp;

	if (vp->msix_vectors && vp->msix_pba >> vp->msix_vectors)
		abort();
	for (unsigned q = 0; q < n->ops.num_queues; q++)
		if (vp->vqs[q].inflight > vp->vqs[q].size)
			abort();
	if (n->st.uni_count + n->st.multi_count > VIRTIO_NET_MAC_TABLE_ENTRIES ||
	    n->st.curr_pairs < 1 || n->st.curr_pairs > n->st.max_pairs)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static struct pci_bus bus;
	static struct virtio_net n;
	struct guest_memory mem = { .ram_size = RAM_SIZE, .below_4g = RAM_SIZE };
	struct fake_be b = { 0 };
	struct virtio_net_opts o;
	size_t n_ops, ops_bytes;
	uint8_t cfg;

	if (size < 2)
		return 0;
	cfg = data[0];
	n_ops = data[1] % (MAX_OPS + 1);
	ops_bytes = 2 + n_ops * sizeof(struct op);
	if (size < ops_bytes)
		return 0;
	if (!ram)
		ram = malloc(RAM_SIZE);
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + ops_bytes,
	       size - ops_bytes < RAM_SIZE ? size - ops_bytes : RAM_SIZE);
	mem.host = ram;

	virtio_net_default_opts(&o);
	o.pairs = 1 + (cfg & 3);
	o.mq = cfg & 4;
	o.ctrl_vq = !(cfg & 8);
	o.mrg_rxbuf = !(cfg & 16);
	o.vectors = cfg & 64 ? 0 : -1;
	memcpy(o.mac, "\x52\x54\x00\x12\x34\x56", 6);
	b.vnet_hdr = cfg & 32;
	pci_bus_init(&bus, NULL, NULL);
	if (virtio_net_init(&n, &o, &fake_ops, &b, &mem, NULL) < 0 ||
	    pci_bus_add_device(&bus, &n.vp.pci, 3, 0) < 0)
		abort();
	n.vp.send_msi = no_msi;
	for (size_t i = 0; i < n_ops; i++) {
		struct op op;

		memcpy(&op, data + 2 + i * sizeof(op), sizeof(op));
		run_op(&bus, &n, &b, &op);
		check_invariants(&n);
	}
	free(n.vp.elem);
	pthread_mutex_destroy(&bus.lock);
	pthread_mutex_destroy(&n.vp.own_lock);
	return 0;
}
