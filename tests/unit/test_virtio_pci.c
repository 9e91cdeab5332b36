/* Unit tests for the virtio-pci transport (hw/virtio_pci*.c) with the
 * virtio-rng model on a PCI bus without a VM: config space identity and
 * capabilities, feature negotiation, the modern and legacy register
 * files, INTx + ISR, MSI-X masking and pending bits, the violation path
 * (DEVICE_NEEDS_RESET) and reset, the PCI config access window, state
 * save/load validation, MSI-X through irqfds (a fake router with real
 * eventfds): route setup at unmask, updates, masking, fallback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hw/pci.h"
#include "hw/virtio_pci.h"
#include "hw/virtio_rng.h"
#include "tests/unit/virtio_test_util.h"

#define RAM_SIZE	(1u << 20)
#define SLOT		3
#define DEVFN		(SLOT << 3)
#define DESC_GPA	0x10000
#define AVAIL_GPA	0x11000
#define USED_GPA	0x12000
#define BUF_GPA		0x20000

#define FAKE_GSI	100
#define FAKE_ROUTES	4

/* The routes a fake router was asked for: GSI FAKE_GSI + index. */
struct fake_route {
	uint64_t addr;
	uint32_t data;
	int fd;			/* attached irqfd, -1: none */
};

struct fixture {
	struct guest_memory mem;
	struct pci_bus bus;
	struct virtio_pci vp;
	unsigned msi_count;
	uint64_t msi_addr;
	uint32_t msi_data;
	struct fake_route routes[FAKE_ROUTES];
	unsigned nroutes, route_updates;
	bool refuse_update;
};

static struct fixture *cur;

static void fake_msi(struct virtio_pci *vp, uint64_t addr, uint32_t data)
{
	(void)vp;
	cur->msi_count++;
	cur->msi_addr = addr;
	cur->msi_data = data;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	vt_mem_init(&f->mem, RAM_SIZE);
	pci_bus_init(&f->bus, NULL, NULL);
	assert_int_equal(virtio_rng_init(&f->vp, &f->mem), 0);
	assert_int_equal(pci_bus_add_device(&f->bus, &f->vp.pci, SLOT, 0), 0);
	f->vp.send_msi = fake_msi;
	cur = f;
	pci_config_write(&f->bus, DEVFN, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (unsigned v = 0; v < VIRTIO_MSIX_MAX; v++)
		if (f->vp.msix_routes[v].fd >= 0)
			close(f->vp.msix_routes[v].fd);

	free(f->vp.elem);
	free(f->mem.host);
	free(f);
	return 0;
}

static uint32_t cfg_read(struct fixture *f, unsigned off, unsigned size)
{
	return pci_config_read(&f->bus, DEVFN, off, size);
}

static void cfg_write(struct fixture *f, unsigned off, unsigned size, uint32_t v)
{
	pci_config_write(&f->bus, DEVFN, off, size, v);
}

static uint64_t mread(struct fixture *f, uint64_t off, unsigned size)
{
	return virtio_pci_modern_read(&f->vp, off, size);
}

static void mwrite(struct fixture *f, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_modern_write(&f->vp, off, v, size);
}

static unsigned find_vndr_cap(struct fixture *f, uint8_t type)
{
	unsigned c = cfg_read(f, PCI_CAPABILITY_LIST, 1);

	for (int hops = 0; c && hops < 48; hops++) {
		if (cfg_read(f, c, 1) == PCI_CAP_ID_VNDR && cfg_read(f, c + 3, 1) == type)
			return c;
		c = cfg_read(f, c + 1, 1);
	}
	return 0;
}

/* The usual modern initialisation with one queue of 16 entries. */
static void modern_init(struct fixture *f, uint64_t feat)
{
	mwrite(f, VP_COMMON_STATUS, 0, 1);
	assert_int_equal(vt_negotiate(&f->vp, feat), 0x0b);
	vt_queue_enable(&f->vp, 0, 16, DESC_GPA, AVAIL_GPA, USED_GPA);
	mwrite(f, VP_COMMON_STATUS, 0x0f, 1);
}

/* One writable buffer of len bytes (descriptor i, possibly looping). */
static void submit(struct fixture *f, uint16_t i, uint32_t len, uint16_t flags, uint16_t next)
{
	uint16_t idx = vt_rd16(&f->mem, AVAIL_GPA + 2);

	vt_put_desc(&f->mem, DESC_GPA, i, BUF_GPA + 0x100 * i, len, flags | VIRTQ_DESC_F_WRITE,
		    next);
	vt_wr16(&f->mem, AVAIL_GPA + 4 + 2 * (idx % 16), i);
	vt_wr16(&f->mem, AVAIL_GPA + 2, idx + 1);
}

static bool zeros(struct fixture *f, uint64_t a, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (f->mem.host[a + i])
			return false;
	return true;
}

/* --- identity and capabilities ------------------------------------------- */

static void test_identity(void **state)
{
	struct fixture *f = *state;
	unsigned c, msix;

	assert_int_equal(cfg_read(f, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(cfg_read(f, PCI_DEVICE_ID, 2), 0x1005);
	assert_int_equal(cfg_read(f, PCI_REVISION_ID, 1), 0);
	assert_int_equal(cfg_read(f, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(cfg_read(f, PCI_SUBSYSTEM_ID, 2), 4);
	assert_int_equal(cfg_read(f, PCI_INTERRUPT_PIN, 1), 1);
	assert_true(cfg_read(f, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* BAR 0: I/O; BAR 4: 64-bit prefetchable memory of 32 KiB. */
	assert_int_equal(cfg_read(f, PCI_BASE_ADDRESS_0, 4) & 1, 1);
	assert_int_equal(cfg_read(f, PCI_BASE_ADDRESS_0 + 16, 4) & 0xf, 0xc);
	cfg_write(f, PCI_BASE_ADDRESS_0 + 16, 4, 0xffffffff);
	assert_int_equal(cfg_read(f, PCI_BASE_ADDRESS_0 + 16, 4), 0xffff800c);

	c = find_vndr_cap(f, VIRTIO_PCI_CAP_COMMON_CFG);
	assert_int_not_equal(c, 0);
	assert_int_equal(cfg_read(f, c + 4, 1), 4);
	assert_int_equal(cfg_read(f, c + 8, 4), VP_COMMON_OFF);
	assert_int_not_equal(find_vndr_cap(f, VIRTIO_PCI_CAP_ISR_CFG), 0);
	assert_int_equal(find_vndr_cap(f, VIRTIO_PCI_CAP_DEVICE_CFG), 0);	/* rng: none */
	assert_int_not_equal(find_vndr_cap(f, VIRTIO_PCI_CAP_PCI_CFG), 0);
	c = find_vndr_cap(f, VIRTIO_PCI_CAP_NOTIFY_CFG);
	assert_int_equal(cfg_read(f, c + 2, 1), 20);
	assert_int_equal(cfg_read(f, c + 16, 4), VP_NOTIFY_MULT);
	msix = pci_find_capability(&f->vp.pci, PCI_CAP_ID_MSIX);
	assert_int_not_equal(msix, 0);
	assert_int_equal(cfg_read(f, msix + 2, 2), 1);		/* 2 vectors */
	assert_int_equal(cfg_read(f, msix + 4, 4), VP_MSIX_TABLE_OFF | 4);
	assert_int_equal(cfg_read(f, msix + 8, 4), VP_MSIX_PBA_OFF | 4);
}

/* --- feature negotiation ------------------------------------------------- */

static void test_features(void **state)
{
	struct fixture *f = *state;
	uint64_t offered;

	offered = vt_offered(&f->vp);
	assert_int_equal(offered, (1ull << 32) | (1ull << 28) | (1ull << 29));
	mwrite(f, VP_COMMON_DFSELECT, 2, 4);
	assert_int_equal(mread(f, VP_COMMON_DF, 4), 0);

	/* Without VERSION_1 the modern interface refuses FEATURES_OK. */
	mwrite(f, VP_COMMON_STATUS, 3, 1);
	vt_set_features(&f->vp, 1ull << 28);
	mwrite(f, VP_COMMON_STATUS, 0x0b, 1);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 3);
	/* A feature that was not offered: refused too. */
	vt_set_features(&f->vp, (1ull << 32) | (1ull << 5));
	mwrite(f, VP_COMMON_STATUS, 0x0b, 1);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 3);
	vt_set_features(&f->vp, (1ull << 32) | (1ull << 29));
	mwrite(f, VP_COMMON_STATUS, 0x0b, 1);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 0x0b);
	/* Frozen after FEATURES_OK. */
	vt_set_features(&f->vp, 1ull << 32);
	mwrite(f, VP_COMMON_GFSELECT, 0, 4);
	assert_int_equal(mread(f, VP_COMMON_GF, 4), 1u << 29);
}

/* --- requests, INTx, ISR --------------------------------------------------- */

static void test_request_intx(void **state)
{
	struct fixture *f = *state;

	modern_init(f, 1ull << 32);
	submit(f, 2, 64, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(vt_rd16(&f->mem, USED_GPA + 2), 1);
	assert_int_equal(vt_rd32(&f->mem, USED_GPA + 4), 2);
	assert_int_equal(vt_rd32(&f->mem, USED_GPA + 8), 64);
	assert_false(zeros(f, BUF_GPA + 0x200, 64));
	assert_int_equal(f->vp.pci.irq_level, 1);
	assert_true(cfg_read(f, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	assert_int_equal(mread(f, VP_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
	assert_int_equal(f->vp.pci.irq_level, 0);
	assert_int_equal(mread(f, VP_ISR_OFF, 1), 0);
	assert_int_equal(f->msi_count, 0);
}

static void test_no_processing_before_driver_ok(void **state)
{
	struct fixture *f = *state;

	modern_init(f, 1ull << 32);
	f->vp.status = 0x0b;	/* as if DRIVER_OK were not set yet */
	submit(f, 0, 16, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(vt_rd16(&f->mem, USED_GPA + 2), 0);
	/* DRIVER_OK serves what was already queued. */
	mwrite(f, VP_COMMON_STATUS, 0x0f, 1);
	assert_int_equal(vt_rd16(&f->mem, USED_GPA + 2), 1);
	/* No bus mastering, no memory access. */
	cfg_write(f, PCI_COMMAND, 2, 0);
	submit(f, 1, 16, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(vt_rd16(&f->mem, USED_GPA + 2), 1);
	cfg_write(f, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(vt_rd16(&f->mem, USED_GPA + 2), 2);
}

/* --- MSI-X ----------------------------------------------------------------- */

static void msix_entry(struct fixture *f, unsigned v, uint32_t data, bool masked)
{
	uint64_t e = VP_MSIX_TABLE_OFF + 16 * v;

	mwrite(f, e, 0xfee00000, 4);
	mwrite(f, e + 4, 0, 4);
	mwrite(f, e + 8, data, 4);
	mwrite(f, e + 12, masked, 4);
}

static void test_msix(void **state)
{
	struct fixture *f = *state;
	unsigned cap = pci_find_capability(&f->vp.pci, PCI_CAP_ID_MSIX);

	/* Entries come out of reset masked. */
	assert_int_equal(mread(f, VP_MSIX_TABLE_OFF + 12, 4), 1);
	modern_init(f, 1ull << 32);
	mwrite(f, VP_COMMON_MSIX, 0, 2);
	mwrite(f, VP_COMMON_Q_SELECT, 0, 2);
	mwrite(f, VP_COMMON_Q_MSIX, 1, 2);
	assert_int_equal(mread(f, VP_COMMON_Q_MSIX, 2), 1);
	mwrite(f, VP_COMMON_Q_MSIX, 7, 2);		/* no such vector */
	assert_int_equal(mread(f, VP_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	mwrite(f, VP_COMMON_Q_MSIX, 1, 2);
	msix_entry(f, 0, 0x40, false);
	msix_entry(f, 1, 0x41, false);
	cfg_write(f, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);

	submit(f, 0, 16, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(f->msi_count, 1);
	assert_int_equal(f->msi_addr, 0xfee00000);
	assert_int_equal(f->msi_data, 0x41);
	assert_int_equal(f->vp.pci.irq_level, 0);	/* no INTx with MSI-X */

	/* Entry mask: pending bit, delivered at unmask. */
	mwrite(f, VP_MSIX_TABLE_OFF + 16 + 12, 1, 4);
	submit(f, 1, 16, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(f->msi_count, 1);
	assert_int_equal(mread(f, VP_MSIX_PBA_OFF, 4), 2);
	mwrite(f, VP_MSIX_TABLE_OFF + 16 + 12, 0, 4);
	assert_int_equal(f->msi_count, 2);
	assert_int_equal(mread(f, VP_MSIX_PBA_OFF, 4), 0);

	/* Function mask through config space. */
	cfg_write(f, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	submit(f, 2, 16, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(f->msi_count, 2);
	cfg_write(f, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(f->msi_count, 3);
	/* The PBA is read-only. */
	mwrite(f, VP_MSIX_PBA_OFF, 0xffffffff, 4);
	assert_int_equal(mread(f, VP_MSIX_PBA_OFF, 4), 0);
}

/* --- MSI-X through irqfds ------------------------------------------------- */

static int fake_alloc(void *opaque, uint64_t addr, uint32_t data)
{
	struct fixture *f = opaque;

	if (f->nroutes == FAKE_ROUTES)
		return -ENOSPC;
	f->routes[f->nroutes] = (struct fake_route){ addr, data, -1 };
	return FAKE_GSI + f->nroutes++;
}

static int fake_update(void *opaque, unsigned gsi, uint64_t addr, uint32_t data)
{
	struct fixture *f = opaque;

	assert_in_range(gsi, FAKE_GSI, FAKE_GSI + f->nroutes - 1);
	if (f->refuse_update)
		return -EINVAL;
	f->routes[gsi - FAKE_GSI].addr = addr;
	f->routes[gsi - FAKE_GSI].data = data;
	f->route_updates++;
	return 0;
}

static int fake_attach(void *opaque, int fd, unsigned gsi)
{
	struct fixture *f = opaque;

	assert_in_range(gsi, FAKE_GSI, FAKE_GSI + f->nroutes - 1);
	f->routes[gsi - FAKE_GSI].fd = fd;
	return 0;
}

static const struct virtio_msi_router fake_router = {
	.alloc = fake_alloc, .update = fake_update, .attach = fake_attach,
};

/* Interrupts signalled on route r's eventfd since the last call. */
static uint64_t irqfd_count(struct fixture *f, unsigned r)
{
	uint64_t n = 0;

	assert_true(r < f->nroutes);
	assert_true(f->routes[r].fd >= 0);
	if (read(f->routes[r].fd, &n, sizeof(n)) != sizeof(n))
		assert_int_equal(errno, EAGAIN);
	return n;
}

/* The queue's completion, as the device signals it. */
static void complete_one(struct fixture *f, uint16_t i)
{
	submit(f, i, 16, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
}

static void test_msix_irqfd(void **state)
{
	struct fixture *f = *state;
	unsigned cap = pci_find_capability(&f->vp.pci, PCI_CAP_ID_MSIX);

	f->vp.router = &fake_router;
	f->vp.router_opaque = f;
	modern_init(f, 1ull << 32);
	msix_entry(f, 0, 0x40, true);
	msix_entry(f, 1, 0x41, true);
	mwrite(f, VP_COMMON_MSIX, 0, 2);
	mwrite(f, VP_COMMON_Q_SELECT, 0, 2);
	mwrite(f, VP_COMMON_Q_MSIX, 1, 2);
	cfg_write(f, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(f->nroutes, 0);		/* masked: nothing routed yet */

	/* Unmasking routes the vector: one GSI with its message, an irqfd. */
	mwrite(f, VP_MSIX_TABLE_OFF + 16 + 12, 0, 4);
	assert_int_equal(f->nroutes, 1);
	assert_int_equal(f->routes[0].addr, 0xfee00000);
	assert_int_equal(f->routes[0].data, 0x41);
	assert_true(f->routes[0].fd >= 0);
	complete_one(f, 0);
	assert_int_equal(irqfd_count(f, 0), 1);
	assert_int_equal(f->msi_count, 0);		/* no KVM_SIGNAL_MSI */

	/* The guest changes the message while unmasked: the route follows. */
	mwrite(f, VP_MSIX_TABLE_OFF + 16 + 8, 0x51, 4);
	assert_int_equal(f->route_updates, 1);
	assert_int_equal(f->routes[0].data, 0x51);
	complete_one(f, 1);
	assert_int_equal(irqfd_count(f, 0), 1);

	/* Entry mask: pending in the PBA, nothing signalled, sent at unmask. */
	mwrite(f, VP_MSIX_TABLE_OFF + 16 + 12, 1, 4);
	complete_one(f, 2);
	assert_int_equal(irqfd_count(f, 0), 0);
	assert_int_equal(mread(f, VP_MSIX_PBA_OFF, 4), 2);
	mwrite(f, VP_MSIX_TABLE_OFF + 16 + 12, 0, 4);
	assert_int_equal(irqfd_count(f, 0), 1);
	assert_int_equal(mread(f, VP_MSIX_PBA_OFF, 4), 0);

	/* Function mask likewise; unmasking it also routes vector 0. */
	cfg_write(f, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	complete_one(f, 3);
	assert_int_equal(irqfd_count(f, 0), 0);
	mwrite(f, VP_MSIX_TABLE_OFF + 12, 0, 4);	/* vector 0 entry unmasked */
	assert_int_equal(f->nroutes, 1);
	cfg_write(f, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(irqfd_count(f, 0), 1);
	assert_int_equal(f->nroutes, 2);
	assert_int_equal(f->routes[1].data, 0x40);

	/* A message changed behind the transport's back (a state load) is
	 * routed before the next interrupt. */
	f->vp.msix_table[1 * 4 + 2] = 0x61;
	complete_one(f, 4);
	assert_int_equal(f->routes[0].data, 0x61);
	assert_int_equal(irqfd_count(f, 0), 1);

	/* Routing refused: KVM_SIGNAL_MSI with the new message instead... */
	f->refuse_update = true;
	mwrite(f, VP_MSIX_TABLE_OFF + 16 + 8, 0x71, 4);
	complete_one(f, 5);
	assert_int_equal(irqfd_count(f, 0), 0);
	assert_int_equal(f->msi_count, 1);
	assert_int_equal(f->msi_data, 0x71);
	/* ...until the guest reprograms the vector and routing works again. */
	f->refuse_update = false;
	mwrite(f, VP_MSIX_TABLE_OFF + 16 + 8, 0x72, 4);
	complete_one(f, 6);
	assert_int_equal(irqfd_count(f, 0), 1);
	assert_int_equal(f->routes[0].data, 0x72);
	assert_int_equal(f->msi_count, 1);

	/* MSI-X off: INTx, the irqfds stay quiet. */
	cfg_write(f, cap + 2, 2, 0);
	complete_one(f, 7);
	assert_int_equal(irqfd_count(f, 0), 0);
	assert_int_equal(f->vp.pci.irq_level, 1);
	assert_int_equal(f->nroutes, 2);
}

/* --- the largest device: 17 queues (8 net queue pairs + control) ----------- */

static unsigned last_kicked = ~0u;

static void big_notify(struct virtio_pci *vp, unsigned q)
{
	(void)vp;
	last_kicked = q;
}

static const struct virtio_dev_ops big_ops = {
	.name = "virtio-big", .device_type = 1, .transitional_id = 0x1000,
	.class_code = 0x020000, .num_queues = VIRTIO_MAX_QUEUES, .queue_size = 16,
	.config_size = 8, .queue_notify = big_notify,
};

static void test_max_queues(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci *vp = calloc(1, sizeof(*vp));
	struct virtio_dev_ops too_many = big_ops;
	const unsigned devfn = (SLOT + 1) << 3, last = VIRTIO_MAX_QUEUES - 1;
	const uint64_t e = VP_MSIX_TABLE_OFF + 16 * VIRTIO_MAX_QUEUES;
	size_t n = vmstate_size(&virtio_pci_vmstate);
	uint8_t *buf = malloc(n);
	unsigned cap;
	char err[128];

	assert_int_equal(VIRTIO_MAX_QUEUES, 17);
	too_many.num_queues = VIRTIO_MAX_QUEUES + 1;
	assert_int_equal(virtio_pci_init(vp, &too_many, NULL, &f->mem), -EINVAL);
	assert_int_equal(virtio_pci_init(vp, &big_ops, NULL, &f->mem), 0);
	assert_int_equal(pci_bus_add_device(&f->bus, &vp->pci, SLOT + 1, 0), 0);
	vp->send_msi = fake_msi;
	pci_config_write(&f->bus, devfn, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	/* One vector per queue plus the configuration vector. */
	cap = pci_find_capability(&vp->pci, PCI_CAP_ID_MSIX);
	assert_int_equal(pci_config_read(&f->bus, devfn, cap + 2, 2), VIRTIO_MAX_QUEUES);
	assert_int_equal(vp->msix_vectors, VIRTIO_MSIX_MAX);
	assert_int_equal(virtio_pci_modern_read(vp, VP_COMMON_NUMQ, 2), VIRTIO_MAX_QUEUES);

	/* The last queue on the last vector. */
	virtio_pci_modern_write(vp, VP_COMMON_STATUS, 0x03, 1);
	virtio_pci_modern_write(vp, VP_COMMON_GFSELECT, 1, 4);
	virtio_pci_modern_write(vp, VP_COMMON_GF, 1, 4);
	virtio_pci_modern_write(vp, VP_COMMON_STATUS, 0x0b, 1);
	virtio_pci_modern_write(vp, VP_COMMON_Q_SELECT, last, 2);
	assert_int_equal(virtio_pci_modern_read(vp, VP_COMMON_Q_SIZE, 2), 16);
	virtio_pci_modern_write(vp, VP_COMMON_Q_DESCLO, DESC_GPA + 0x40000, 8);
	virtio_pci_modern_write(vp, VP_COMMON_Q_AVAILLO, AVAIL_GPA + 0x40000, 8);
	virtio_pci_modern_write(vp, VP_COMMON_Q_USEDLO, USED_GPA + 0x40000, 8);
	virtio_pci_modern_write(vp, VP_COMMON_Q_MSIX, VIRTIO_MAX_QUEUES, 2);
	assert_int_equal(virtio_pci_modern_read(vp, VP_COMMON_Q_MSIX, 2), VIRTIO_MAX_QUEUES);
	virtio_pci_modern_write(vp, VP_COMMON_Q_MSIX, VIRTIO_MAX_QUEUES + 1, 2);
	assert_int_equal(virtio_pci_modern_read(vp, VP_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	virtio_pci_modern_write(vp, VP_COMMON_Q_MSIX, VIRTIO_MAX_QUEUES, 2);
	virtio_pci_modern_write(vp, VP_COMMON_Q_ENABLE, 1, 2);
	virtio_pci_modern_write(vp, VP_COMMON_STATUS, 0x0f, 1);
	virtio_pci_modern_write(vp, VP_NOTIFY_OFF + VP_NOTIFY_MULT * last, last, 2);
	assert_int_equal(last_kicked, last);

	/* Its vector masked: pending bit 17; delivered at unmask. */
	virtio_pci_modern_write(vp, e, 0xfee00000, 4);
	virtio_pci_modern_write(vp, e + 8, 0x77, 4);
	pci_config_write(&f->bus, devfn, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
	virtio_pci_queue_interrupt(vp, last);
	assert_int_equal(f->msi_count, 0);
	assert_int_equal(virtio_pci_modern_read(vp, VP_MSIX_PBA_OFF, 4), 1u << VIRTIO_MAX_QUEUES);
	virtio_pci_modern_write(vp, e + 12, 0, 4);
	assert_int_equal(f->msi_count, 1);
	assert_int_equal(f->msi_data, 0x77);
	assert_int_equal(virtio_pci_modern_read(vp, VP_MSIX_PBA_OFF, 4), 0);
	/* Past the table: ignored. */
	virtio_pci_modern_write(vp, e + 16 + 8, 0x99, 4);
	assert_int_equal(virtio_pci_modern_read(vp, e + 16 + 8, 4), 0);

	/* State: pending bit 17 loads, a bit past the vectors does not. */
	vp->msix_pba = 1u << VIRTIO_MAX_QUEUES;
	vmstate_save(&virtio_pci_vmstate, vp, buf);
	assert_int_equal(vmstate_load(&virtio_pci_vmstate, vp, sizeof(*vp), buf, n, err,
				      sizeof(err)), 0);
	vp->msix_pba = 1u << (VIRTIO_MAX_QUEUES + 1);
	vmstate_save(&virtio_pci_vmstate, vp, buf);
	vp->msix_pba = 0;
	assert_int_not_equal(vmstate_load(&virtio_pci_vmstate, vp, sizeof(*vp), buf, n, err,
					  sizeof(err)), 0);
	f->bus.devs[devfn] = NULL;
	free(buf);
	free(vp->elem);
	free(vp);
}

/* --- violations and reset -------------------------------------------------- */

static void test_violation_then_reset(void **state)
{
	struct fixture *f = *state;
	unsigned cap = pci_find_capability(&f->vp.pci, PCI_CAP_ID_MSIX);

	modern_init(f, 1ull << 32);
	mwrite(f, VP_COMMON_MSIX, 0, 2);
	msix_entry(f, 0, 0x40, false);
	cfg_write(f, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
	submit(f, 5, 16, VIRTQ_DESC_F_NEXT, 5);	/* loops on itself */
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 0x4f);
	assert_int_equal(f->msi_count, 1);		/* config interrupt */
	assert_int_equal(f->msi_data, 0x40);
	assert_true(f->vp.broken);
	/* Nothing more is processed until reset. */
	submit(f, 1, 16, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(vt_rd16(&f->mem, USED_GPA + 2), 0);
	assert_int_equal(f->msi_count, 1);

	mwrite(f, VP_COMMON_STATUS, 0, 1);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 0);
	assert_int_equal(mread(f, VP_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(mread(f, VP_COMMON_Q_SIZE, 2), 256);
	assert_int_equal(mread(f, VP_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(mread(f, VP_COMMON_Q_DESCLO, 8), 0);
	mwrite(f, VP_COMMON_GFSELECT, 1, 4);
	assert_int_equal(mread(f, VP_COMMON_GF, 4), 0);

	memset(f->mem.host + AVAIL_GPA, 0, 0x2000);
	modern_init(f, 1ull << 32);
	submit(f, 1, 16, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(vt_rd16(&f->mem, USED_GPA + 2), 1);
}

static void test_bad_queue_setup(void **state)
{
	struct fixture *f = *state;

	mwrite(f, VP_COMMON_STATUS, 3, 1);
	vt_set_features(&f->vp, 1ull << 32);
	mwrite(f, VP_COMMON_STATUS, 0x0b, 1);
	mwrite(f, VP_COMMON_Q_SIZE, 12, 2);		/* not a power of two */
	mwrite(f, VP_COMMON_Q_DESCLO, DESC_GPA, 4);
	mwrite(f, VP_COMMON_Q_AVAILLO, AVAIL_GPA, 4);
	mwrite(f, VP_COMMON_Q_USEDLO, USED_GPA, 4);
	mwrite(f, VP_COMMON_Q_ENABLE, 1, 2);
	assert_true(mread(f, VP_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* Before DRIVER_OK: no config interrupt, the status bit tells. */
	assert_int_equal(f->vp.pci.irq_level, 0);
	assert_int_equal(mread(f, VP_ISR_OFF, 1), 0);

	/* Rings beyond RAM. */
	mwrite(f, VP_COMMON_STATUS, 0, 1);
	mwrite(f, VP_COMMON_STATUS, 3, 1);
	mwrite(f, VP_COMMON_Q_USEDLO, 0, 4);
	mwrite(f, VP_COMMON_Q_USEDHI, 0x10, 4);
	mwrite(f, VP_COMMON_Q_ENABLE, 1, 2);
	assert_true(mread(f, VP_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_violation_intx(void **state)
{
	struct fixture *f = *state;

	modern_init(f, 1ull << 32);
	vt_wr16(&f->mem, AVAIL_GPA + 2, 17);	/* 17 ahead of 0 on a 16-entry queue */
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 0x4f);
	assert_int_equal(f->vp.pci.irq_level, 1);
	assert_int_equal(mread(f, VP_ISR_OFF, 1), VIRTIO_ISR_CONFIG);
	assert_int_equal(f->vp.pci.irq_level, 0);
	/* The bit is sticky until reset, whatever the driver writes. */
	mwrite(f, VP_COMMON_STATUS, 0x0f, 1);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 0x4f);
}

static void test_out_of_range_selects(void **state)
{
	struct fixture *f = *state;

	mwrite(f, VP_COMMON_Q_SELECT, 5, 2);
	assert_int_equal(mread(f, VP_COMMON_Q_SIZE, 2), 0);
	mwrite(f, VP_COMMON_Q_ENABLE, 1, 2);
	mwrite(f, VP_COMMON_Q_DESCLO, 0x1234, 4);
	assert_int_equal(mread(f, VP_COMMON_Q_ENABLE, 2), 0);
	mwrite(f, VP_NOTIFY_OFF + 4 * 7, 0, 2);	/* notify a queue that does not exist */
	mwrite(f, 0x7ffc, 0xffffffff, 4);
	assert_int_equal(mread(f, 0x7ffc, 4), 0);
	assert_int_equal(mread(f, VP_COMMON_NUMQ, 2), 1);
	assert_false(f->vp.broken);
}

/* --- legacy interface ------------------------------------------------------ */

static void test_legacy(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci *vp = &f->vp;
	unsigned cap = pci_find_capability(&f->vp.pci, PCI_CAP_ID_MSIX);
	uint64_t ring = 0x40000;
	uint64_t avail = ring + 16 * 256, used = ring + 0x2000;

	assert_int_equal(virtio_pci_legacy_read(vp, VIRTIO_LEGACY_HOST_FEATURES, 4),
			 (1u << 28) | (1u << 29));
	virtio_pci_legacy_write(vp, VIRTIO_LEGACY_STATUS, 3, 1);
	virtio_pci_legacy_write(vp, VIRTIO_LEGACY_GUEST_FEATURES, 1u << 28, 4);
	virtio_pci_legacy_write(vp, VIRTIO_LEGACY_QUEUE_SEL, 0, 2);
	assert_int_equal(virtio_pci_legacy_read(vp, VIRTIO_LEGACY_QUEUE_NUM, 2), 256);
	virtio_pci_legacy_write(vp, VIRTIO_LEGACY_QUEUE_PFN, ring >> 12, 4);
	assert_int_equal(virtio_pci_legacy_read(vp, VIRTIO_LEGACY_QUEUE_PFN, 4), ring >> 12);
	virtio_pci_legacy_write(vp, VIRTIO_LEGACY_STATUS, 7, 1);
	vt_put_desc(&f->mem, ring, 0, BUF_GPA, 32, VIRTQ_DESC_F_WRITE, 0);
	vt_wr16(&f->mem, avail + 4, 0);
	vt_wr16(&f->mem, avail + 2, 1);
	virtio_pci_legacy_write(vp, VIRTIO_LEGACY_QUEUE_NOTIFY, 0, 2);
	assert_int_equal(vt_rd16(&f->mem, used + 2), 1);
	assert_int_equal(vt_rd32(&f->mem, used + 8), 32);
	assert_false(zeros(f, BUF_GPA, 32));
	assert_int_equal(virtio_pci_legacy_read(vp, VIRTIO_LEGACY_ISR, 1), 1);
	assert_int_equal(virtio_pci_legacy_read(vp, VIRTIO_LEGACY_ISR, 1), 0);

	/* With MSI-X on, the vector registers appear at 0x14/0x16. */
	cfg_write(f, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
	virtio_pci_legacy_write(vp, VIRTIO_LEGACY_QUEUE_VECTOR, 1, 2);
	assert_int_equal(virtio_pci_legacy_read(vp, VIRTIO_LEGACY_QUEUE_VECTOR, 2), 1);
	virtio_pci_legacy_write(vp, VIRTIO_LEGACY_CONFIG_VECTOR, 9, 2);
	assert_int_equal(virtio_pci_legacy_read(vp, VIRTIO_LEGACY_CONFIG_VECTOR, 2),
			 VIRTIO_MSI_NO_VECTOR);
	/* PFN 0 releases the queue. */
	virtio_pci_legacy_write(vp, VIRTIO_LEGACY_QUEUE_PFN, 0, 4);
	assert_int_equal(virtio_pci_legacy_read(vp, VIRTIO_LEGACY_QUEUE_PFN, 4), 0);
	assert_int_equal(virtio_pci_legacy_read(vp, VIRTIO_LEGACY_QUEUE_VECTOR, 2), 1);
}

/* --- VIRTIO_PCI_CAP_PCI_CFG window ----------------------------------------- */

static void test_pci_cfg_window(void **state)
{
	struct fixture *f = *state;
	unsigned c = find_vndr_cap(f, VIRTIO_PCI_CAP_PCI_CFG);

	mwrite(f, VP_COMMON_STATUS, 3, 1);
	cfg_write(f, c + 4, 1, 4);
	cfg_write(f, c + 8, 4, VP_COMMON_STATUS);
	cfg_write(f, c + 12, 4, 1);
	assert_int_equal(cfg_read(f, c + 16, 4) & 0xff, 3);
	cfg_write(f, c + 16, 4, 1);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 1);
	/* Bad windows do nothing. */
	cfg_write(f, c + 12, 4, 3);
	cfg_write(f, c + 16, 4, 0);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 1);
	cfg_write(f, c + 12, 4, 4);
	cfg_write(f, c + 8, 4, VP_BAR4_SIZE);
	cfg_write(f, c + 16, 4, 0);
	cfg_write(f, c + 4, 1, 2);
	cfg_write(f, c + 8, 4, 0);
	cfg_write(f, c + 16, 4, 0);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 1);
}

/* --- reset from the bus and migration state -------------------------------- */

static void test_bus_reset(void **state)
{
	struct fixture *f = *state;
	unsigned cap = pci_find_capability(&f->vp.pci, PCI_CAP_ID_MSIX);

	modern_init(f, 1ull << 32);
	msix_entry(f, 1, 0x41, false);
	cfg_write(f, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
	pci_bus_reset(&f->bus);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 0);
	assert_false(virtio_pci_msix_enabled(&f->vp));
	assert_int_equal(mread(f, VP_MSIX_TABLE_OFF + 16 + 12, 4), 1);
	assert_int_equal(mread(f, VP_MSIX_TABLE_OFF + 16 + 8, 4), 0);
}

static void test_vmstate(void **state)
{
	struct fixture *f = *state;
	size_t n = vmstate_size(&virtqueue_vmstate);
	uint8_t *buf = malloc(n);
	char err[128];

	modern_init(f, 1ull << 32);
	submit(f, 0, 16, 0, 0);
	mwrite(f, VP_NOTIFY_OFF, 0, 2);
	vmstate_save(&virtqueue_vmstate, &f->vp.vqs[0], buf);
	f->vp.vqs[0].last_avail_idx = 0;
	assert_int_equal(vmstate_load(&virtqueue_vmstate, &f->vp.vqs[0], sizeof(f->vp.vqs[0]),
				      buf, n, err, sizeof(err)), 0);
	assert_int_equal(f->vp.vqs[0].last_avail_idx, 1);
	assert_true(virtq_ready(&f->vp.vqs[0]));	/* rings mapped again */

	/* A stream with rings outside RAM is refused, the queue untouched. */
	f->vp.vqs[0].used_gpa = 0x7000000;
	vmstate_save(&virtqueue_vmstate, &f->vp.vqs[0], buf);
	f->vp.vqs[0].used_gpa = USED_GPA;
	assert_int_not_equal(vmstate_load(&virtqueue_vmstate, &f->vp.vqs[0],
					  sizeof(f->vp.vqs[0]), buf, n, err, sizeof(err)), 0);
	assert_int_equal(f->vp.vqs[0].used_gpa, USED_GPA);
	free(buf);

	/* Transport: guest features beyond the offer are refused. */
	n = vmstate_size(&virtio_pci_vmstate);
	buf = malloc(n);
	f->vp.guest_features |= 1ull << 40;
	vmstate_save(&virtio_pci_vmstate, &f->vp, buf);
	f->vp.guest_features &= ~(1ull << 40);
	assert_int_not_equal(vmstate_load(&virtio_pci_vmstate, &f->vp, sizeof(f->vp), buf, n,
					  err, sizeof(err)), 0);
	free(buf);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_features),
		T(test_request_intx),
		T(test_no_processing_before_driver_ok),
		T(test_msix),
		T(test_msix_irqfd),
		T(test_max_queues),
		T(test_violation_then_reset),
		T(test_bad_queue_setup),
		T(test_violation_intx),
		T(test_out_of_range_selects),
		T(test_legacy),
		T(test_pci_cfg_window),
		T(test_bus_reset),
		T(test_vmstate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
