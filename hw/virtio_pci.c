/* virtio-pci transport (virtio 1.x section 4.1): transitional config space,
 * the modern register file in BAR 4 (common config, ISR, device config,
 * notify; the MSI-X table and PBA are served by hw/virtio_pci_irq.c),
 * device status and feature negotiation, reset, and queue notification
 * through one ioeventfd per queue served on the event loop thread; the PCI
 * config hooks (VIRTIO_PCI_CAP_PCI_CFG window, MSI-X control, BAR moves),
 * the capabilities, init/realize and the migration state.
 * The legacy register block in I/O BAR 0 is hw/virtio_pci_legacy.c,
 * interrupt delivery (MSI-X through irqfds, INTx + ISR) hw/virtio_pci_irq.c.
 * All state is guarded by the PCI bus lock (recursive), which the PCI core
 * also holds around config accesses and INTx updates. Last, the -device
 * options every virtio-pci model takes (addr=, packed=). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <linux/kvm.h>
#include "hw/virtio_pci_int.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"
#include "vmm/opts.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

static const uint8_t vp_cap_len = 16;

/* --- locking ------------------------------------------------------------- */

void virtio_pci_lock(struct virtio_pci *vp)
{
	pthread_mutex_lock(vp->pci.bus ? &vp->pci.bus->lock : &vp->own_lock);
}

bool virtio_pci_trylock(struct virtio_pci *vp)
{
	return pthread_mutex_trylock(vp->pci.bus ? &vp->pci.bus->lock : &vp->own_lock) == 0;
}

void virtio_pci_unlock(struct virtio_pci *vp)
{
	pthread_mutex_unlock(vp->pci.bus ? &vp->pci.bus->lock : &vp->own_lock);
}

struct virtq *vp_selected_queue(struct virtio_pci *vp)
{
	return vp->queue_sel < vp->ops->num_queues ? &vp->vqs[vp->queue_sel] : NULL;
}

static bool is_modern(const struct virtio_pci *vp)
{
	return vp->guest_features & (1ull << VIRTIO_F_VERSION_1);
}

/* --- status, features, reset --------------------------------------------- */

void vp_apply_features(struct virtio_pci *vp)
{
	for (unsigned q = 0; q < vp->ops->num_queues; q++) {
		vp->vqs[q].indirect = vp->guest_features & (1ull << VIRTIO_F_RING_INDIRECT_DESC);
		vp->vqs[q].event_idx = vp->guest_features & (1ull << VIRTIO_F_RING_EVENT_IDX);
		vp->vqs[q].packed = vp->guest_features & (1ull << VIRTIO_F_RING_PACKED);
	}
}

/* Without bus mastering a PCI function must not touch memory. */
static bool bus_master(const struct virtio_pci *vp)
{
	return pci_get_word(vp->pci.config, PCI_COMMAND) & PCI_COMMAND_MASTER;
}

void virtio_pci_kick(struct virtio_pci *vp, unsigned q)
{
	if (vp->broken || !(vp->status & VIRTIO_STATUS_DRIVER_OK) || q >= vp->ops->num_queues ||
	    !virtq_ready(&vp->vqs[q]) || !bus_master(vp))
		return;
	vp->ops->queue_notify(vp, q);
}

void virtio_pci_reset(struct virtio_pci *vp)
{
	vp->guest_features = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->status = 0;
	vp->isr = 0;
	vp->queue_sel = 0;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	vp->broken = false;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		virtq_reset(&vp->vqs[q], q < vp->ops->num_queues ? vp->ops->queue_size : 0);
		vp->vqs[q].mem = vp->mem;
	}
	vp_update_intx(vp);
	if (vp->ops->reset)
		vp->ops->reset(vp);
}

static bool features_acceptable(const struct virtio_pci *vp, bool modern)
{
	if (vp->guest_features & ~vp->host_features)
		return false;
	return !modern || is_modern(vp);
}

void vp_write_status(struct virtio_pci *vp, uint8_t v, bool modern)
{
	uint8_t old = vp->status;

	if (!v) {
		virtio_pci_reset(vp);
		return;
	}
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		if (features_acceptable(vp, modern))
			vp_apply_features(vp);
		else
			v &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	vp->status = v | (old & VIRTIO_STATUS_NEEDS_RESET);
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		if (!modern)
			vp_apply_features(vp);
		for (unsigned q = 0; q < vp->ops->num_queues; q++)
			virtio_pci_kick(vp, q);
	}
}

void vp_enable_queue(struct virtio_pci *vp, struct virtq *vq)
{
	vq->enabled = true;
	if (virtq_map(vq, vp->mem) < 0)
		virtio_pci_set_needs_reset(vp, vq->error);
}

/* --- device configuration ------------------------------------------------ */

uint64_t vp_device_config_read(struct virtio_pci *vp, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	if (off >= vp->ops->config_size || size > vp->ops->config_size - off)
		return 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)vp->config[off + i] << (8 * i);
	return v;
}

void vp_device_config_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size)
{
	if (off >= vp->ops->config_size || size > vp->ops->config_size - off ||
	    !vp->ops->config_write)
		return;
	for (unsigned i = 0; i < size; i++)
		vp->config[off + i] = v >> (8 * i);
	vp->ops->config_write(vp, off, size);
}

/* --- notification -------------------------------------------------------- */

void vp_notify_queue(struct virtio_pci *vp, unsigned q)
{
	uint64_t one = 1;

	if (q >= vp->ops->num_queues)
		return;
	/* Same path as the ioeventfd: the loop thread does the work. */
	if (vp->vm && vp->notifiers[q].fd >= 0) {
		if (write(vp->notifiers[q].fd, &one, sizeof(one)) != sizeof(one))
			log_guest(LOG_GUEST_ERRORS, "%s: notify eventfd write failed",
				  vp->ops->name);
		return;
	}
	virtio_pci_kick(vp, q);
}

void virtio_pci_kick_later(struct virtio_pci *vp, unsigned q)
{
	uint64_t one = 1;

	if (!vp->vm || q >= vp->ops->num_queues || vp->notifiers[q].fd < 0)
		return;
	if (write(vp->notifiers[q].fd, &one, sizeof(one)) != sizeof(one))
		log_guest(LOG_GUEST_ERRORS, "%s: notify eventfd write failed", vp->ops->name);
}

static void notifier_ready(void *opaque, uint32_t events)
{
	struct vp_notifier *n = opaque;
	uint64_t count;

	if (read(n->fd, &count, sizeof(count)) < 0)
		return;
	virtio_pci_lock(n->vp);
	virtio_pci_kick(n->vp, n->q);
	virtio_pci_unlock(n->vp);
}

static int ioeventfd(struct virtio_pci *vp, struct vp_notifier *n, bool pio, bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = pio ? n->pio_addr : n->mmio_addr,
		.len = 2,
		.fd = n->fd,
	};

	if (pio) {
		io.flags = KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DATAMATCH;
		io.datamatch = n->q;
	}
	if (!assign)
		io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return ioctl(vp->vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

static void move_notifiers(struct virtio_pci *vp, bool pio, bool mapped, uint64_t base)
{
	if (!vp->vm)
		return;
	for (unsigned q = 0; q < vp->ops->num_queues; q++) {
		struct vp_notifier *n = &vp->notifiers[q];
		bool *assigned = pio ? &n->pio_assigned : &n->mmio_assigned;

		if (n->fd < 0)
			continue;
		if (*assigned)
			ioeventfd(vp, n, pio, false);
		*assigned = false;
		if (!mapped)
			continue;
		if (pio)
			n->pio_addr = base + VIRTIO_LEGACY_QUEUE_NOTIFY;
		else
			n->mmio_addr = base + VP_NOTIFY_OFF + VP_NOTIFY_MULT * q;
		/* On failure the register write exits and takes the slow path. */
		*assigned = ioeventfd(vp, n, pio, true) == 0;
		if (!*assigned)
			log_warn("%s: no ioeventfd for queue %u: notifications exit",
				 vp->ops->name, q);
	}
}

/* --- modern register file (BAR 4) ---------------------------------------- */

static uint64_t queue_addr(const struct virtq *vq, unsigned which)
{
	return which == 0 ? vq->desc_gpa : which == 1 ? vq->avail_gpa : vq->used_gpa;
}

static void set_queue_addr(struct virtq *vq, unsigned which, uint64_t v)
{
	if (which == 0)
		vq->desc_gpa = v;
	else if (which == 1)
		vq->avail_gpa = v;
	else
		vq->used_gpa = v;
}

static uint64_t common_read(struct virtio_pci *vp, uint64_t off, unsigned size)
{
	struct virtq *vq = vp_selected_queue(vp);

	if (off >= VP_COMMON_Q_DESCLO && off < VP_COMMON_SIZE) {
		unsigned which = (off - VP_COMMON_Q_DESCLO) / 8;
		uint64_t a = vq ? queue_addr(vq, which) : 0;

		return size == 8 ? a : (off & 4) ? a >> 32 : (uint32_t)a;
	}
	switch (off) {
	case VP_COMMON_DFSELECT:
		return vp->dfselect;
	case VP_COMMON_DF:
		return vp->dfselect < 2 ? (uint32_t)(vp->host_features >> (32 * vp->dfselect)) : 0;
	case VP_COMMON_GFSELECT:
		return vp->gfselect;
	case VP_COMMON_GF:
		return vp->gfselect < 2 ? (uint32_t)(vp->guest_features >> (32 * vp->gfselect)) : 0;
	case VP_COMMON_MSIX:
		return vp->config_vector;
	case VP_COMMON_NUMQ:
		return vp->ops->num_queues;
	case VP_COMMON_STATUS:
		return vp->status;
	case VP_COMMON_CFGGENERATION:
		return vp->config_generation;
	case VP_COMMON_Q_SELECT:
		return vp->queue_sel;
	case VP_COMMON_Q_SIZE:
		return vq ? vq->size : 0;
	case VP_COMMON_Q_MSIX:
		return vq ? vq->msix_vector : VIRTIO_MSI_NO_VECTOR;
	case VP_COMMON_Q_ENABLE:
		return vq ? vq->enabled : 0;
	case VP_COMMON_Q_NOFF:
		return vq ? vp->queue_sel : 0;
	}
	return 0;
}

static void common_write_queue(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size)
{
	struct virtq *vq = vp_selected_queue(vp);

	if (!vq)
		return;
	if (off == VP_COMMON_Q_MSIX) {
		vp_set_queue_vector(vp, vq, v);
		return;
	}
	if (vq->enabled) {
		log_guest(LOG_GUEST_ERRORS, "%s: queue %u reprogrammed while enabled",
			  vp->ops->name, vp->queue_sel);
		return;
	}
	if (off >= VP_COMMON_Q_DESCLO && off < VP_COMMON_SIZE) {
		unsigned which = (off - VP_COMMON_Q_DESCLO) / 8;
		uint64_t a = queue_addr(vq, which);

		if (size == 8)
			a = v;
		else if (off & 4)
			a = (uint32_t)a | (uint64_t)(uint32_t)v << 32;
		else
			a = (a & ~0xffffffffull) | (uint32_t)v;
		set_queue_addr(vq, which, a);
	} else if (off == VP_COMMON_Q_SIZE) {
		vq->size = v;	/* checked when the queue is enabled */
	} else if (off == VP_COMMON_Q_ENABLE && (v & 1)) {
		vp_enable_queue(vp, vq);
	}
}

static void common_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size)
{
	switch (off) {
	case VP_COMMON_DFSELECT:
		vp->dfselect = v;
		return;
	case VP_COMMON_GFSELECT:
		vp->gfselect = v;
		return;
	case VP_COMMON_GF:
		if (vp->gfselect >= 2 || (vp->status & VIRTIO_STATUS_FEATURES_OK))
			return;
		vp->guest_features &= ~(0xffffffffull << (32 * vp->gfselect));
		vp->guest_features |= (uint64_t)(uint32_t)v << (32 * vp->gfselect);
		return;
	case VP_COMMON_MSIX:
		vp_set_config_vector(vp, v);
		return;
	case VP_COMMON_STATUS:
		vp_write_status(vp, v, true);
		return;
	case VP_COMMON_Q_SELECT:
		vp->queue_sel = v;
		return;
	case VP_COMMON_Q_SIZE:
	case VP_COMMON_Q_MSIX:
	case VP_COMMON_Q_ENABLE:
		common_write_queue(vp, off, v, size);
		return;
	}
	if (off >= VP_COMMON_Q_DESCLO && off < VP_COMMON_SIZE)
		common_write_queue(vp, off, v, size);
}

static uint64_t modern_read_locked(struct virtio_pci *vp, uint64_t off, unsigned size)
{
	if (off < VP_COMMON_SIZE)
		return common_read(vp, off, size);
	if (off == VP_ISR_OFF)
		return vp_read_and_clear_isr(vp);
	if (off >= VP_DEVICE_OFF && off < VP_DEVICE_OFF + VP_REGION_SIZE)
		return vp_device_config_read(vp, off - VP_DEVICE_OFF, size);
	if (off >= VP_MSIX_TABLE_OFF && off < VP_MSIX_PBA_OFF + VP_REGION_SIZE && size >= 4 &&
	    !(off & 3))
		return vp_msix_region_read(vp, off, size);
	return 0;
}

static void modern_write_locked(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size)
{
	if (off < VP_COMMON_SIZE)
		common_write(vp, off, v, size);
	else if (off >= VP_DEVICE_OFF && off < VP_DEVICE_OFF + VP_REGION_SIZE)
		vp_device_config_write(vp, off - VP_DEVICE_OFF, v, size);
	else if (off >= VP_NOTIFY_OFF && off < VP_NOTIFY_OFF + VP_REGION_SIZE)
		vp_notify_queue(vp, (off - VP_NOTIFY_OFF) / VP_NOTIFY_MULT);
	else if (off >= VP_MSIX_TABLE_OFF && off < VP_MSIX_PBA_OFF + VP_REGION_SIZE &&
		 size >= 4 && !(off & 3))
		vp_msix_region_write(vp, off, v, size);
}

uint64_t virtio_pci_modern_read(struct virtio_pci *vp, uint64_t off, unsigned size)
{
	uint64_t v;

	virtio_pci_lock(vp);
	v = modern_read_locked(vp, off, size);
	virtio_pci_unlock(vp);
	return v;
}

void virtio_pci_modern_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_lock(vp);
	modern_write_locked(vp, off, v, size);
	virtio_pci_unlock(vp);
}

/* --- BAR 4 handlers ------------------------------------------------------ */

static uint64_t bar4_read(void *opaque, uint64_t off, unsigned size)
{
	return virtio_pci_modern_read(opaque, off, size);
}

static void bar4_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_modern_write(opaque, off, v, size);
}

static const struct io_ops bar4_ops = { .read = bar4_read, .write = bar4_write };

/* --- PCI config space hooks ---------------------------------------------- */

static bool overlaps(unsigned a, unsigned alen, unsigned b, unsigned blen)
{
	return a < b + blen && b < a + alen;
}

/* VIRTIO_PCI_CAP_PCI_CFG: a window into a BAR through config space. */
static bool pci_cfg_window(struct virtio_pci *vp, uint8_t *bar, uint32_t *off, uint32_t *len)
{
	const uint8_t *c = vp->pci.config + vp->pci_cfg_cap;

	*bar = c[4];
	*off = pci_get_long(c, 8);
	*len = pci_get_long(c, 12);
	if (*len != 1 && *len != 2 && *len != 4)
		return false;
	if (*off & (*len - 1))
		return false;
	if (*bar == VIRTIO_PCI_BAR_MODERN)
		return *off + *len <= VP_BAR4_SIZE;
	if (*bar == VIRTIO_PCI_BAR_LEGACY)
		return *off + *len <= vp->pci.bars[0].size;
	return false;
}

static uint32_t vp_config_read(struct pci_device *d, unsigned off, unsigned size, uint32_t value)
{
	struct virtio_pci *vp = d->opaque;
	unsigned data = vp->pci_cfg_cap + 16;
	uint32_t boff, len;
	uint8_t bar;
	uint64_t v;

	if (off != data || !pci_cfg_window(vp, &bar, &boff, &len))
		return value;
	v = bar == VIRTIO_PCI_BAR_MODERN ? virtio_pci_modern_read(vp, boff, len)
					 : virtio_pci_legacy_read(vp, boff, len);
	return (uint32_t)v;
}

static void vp_config_write(struct pci_device *d, unsigned off, unsigned size, uint32_t value)
{
	struct virtio_pci *vp = d->opaque;
	unsigned data = vp->pci_cfg_cap + 16;
	uint32_t boff, len;
	uint8_t bar;

	if (overlaps(off, size, vp->msix_cap + 2, 2)) {
		virtio_pci_lock(vp);
		vp_msix_control_changed(vp);
		virtio_pci_unlock(vp);
	}
	if (off != data || !pci_cfg_window(vp, &bar, &boff, &len))
		return;
	if (bar == VIRTIO_PCI_BAR_MODERN)
		virtio_pci_modern_write(vp, boff, value, len);
	else
		virtio_pci_legacy_write(vp, boff, value, len);
}

static void vp_bar_changed(struct pci_device *d, int bar, bool mapped, uint64_t addr)
{
	struct virtio_pci *vp = d->opaque;

	if (bar == VIRTIO_PCI_BAR_MODERN)
		move_notifiers(vp, false, mapped, addr);
	else if (bar == VIRTIO_PCI_BAR_LEGACY)
		move_notifiers(vp, true, mapped, addr);
}

static void vp_pci_reset(struct pci_device *d)
{
	struct virtio_pci *vp = d->opaque;

	vp_msix_reset(vp);
	virtio_pci_reset(vp);
}

/* --- capabilities -------------------------------------------------------- */

static int add_vendor_cap(struct virtio_pci *vp, uint8_t type, uint8_t len, uint32_t off,
			  uint32_t size)
{
	int c = pci_add_capability(&vp->pci, PCI_CAP_ID_VNDR, len);
	uint8_t *cfg = vp->pci.config;

	if (c < 0)
		return c;
	cfg[c + 2] = len;
	cfg[c + 3] = type;
	cfg[c + 4] = VIRTIO_PCI_BAR_MODERN;
	pci_set_long(cfg, c + 8, off);
	pci_set_long(cfg, c + 12, size);
	return c;
}

static int add_capabilities(struct virtio_pci *vp)
{
	struct pci_device *d = &vp->pci;
	int c;

	if (add_vendor_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, vp_cap_len, VP_COMMON_OFF,
			   VP_REGION_SIZE) < 0 ||
	    add_vendor_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, vp_cap_len, VP_ISR_OFF,
			   VP_REGION_SIZE) < 0)
		return -ENOSPC;
	if (vp->ops->config_size &&
	    add_vendor_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, vp_cap_len, VP_DEVICE_OFF,
			   VP_REGION_SIZE) < 0)
		return -ENOSPC;
	c = add_vendor_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, vp_cap_len + 4, VP_NOTIFY_OFF,
			   VP_REGION_SIZE);
	if (c < 0)
		return c;
	pci_set_long(d->config, c + 16, VP_NOTIFY_MULT);
	c = add_vendor_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, vp_cap_len + 4, 0, 0);
	if (c < 0)
		return c;
	vp->pci_cfg_cap = c;
	d->config[c + 4] = 0;
	d->wmask[c + 4] = 0xff;			/* bar */
	pci_set_long(d->wmask, c + 8, 0xffffffff);	/* offset */
	pci_set_long(d->wmask, c + 12, 0xffffffff);	/* length */
	pci_set_long(d->wmask, c + 16, 0xffffffff);	/* data */

	c = pci_add_capability(d, PCI_CAP_ID_MSIX, 12);
	if (c < 0)
		return c;
	vp->msix_cap = c;
	pci_set_word(d->config, c + 2, vp->msix_vectors - 1);
	pci_set_word(d->wmask, c + 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	pci_set_long(d->config, c + 4, VP_MSIX_TABLE_OFF | VIRTIO_PCI_BAR_MODERN);
	pci_set_long(d->config, c + 8, VP_MSIX_PBA_OFF | VIRTIO_PCI_BAR_MODERN);
	return 0;
}

/* --- setup --------------------------------------------------------------- */

static uint64_t offered_features(const struct virtio_dev_ops *ops)
{
	return ops->features | (1ull << VIRTIO_F_VERSION_1) |
	       (1ull << VIRTIO_F_RING_INDIRECT_DESC) | (1ull << VIRTIO_F_RING_EVENT_IDX);
}

/* What this device offers: its ops plus RING_PACKED when asked for. */
static uint64_t device_features(const struct virtio_pci *vp)
{
	return offered_features(vp->ops) |
	       (vp->offer_packed ? 1ull << VIRTIO_F_RING_PACKED : 0);
}

void virtio_pci_offer_packed(struct virtio_pci *vp, bool on)
{
	vp->offer_packed = on;
	vp->host_features = device_features(vp);
}

int virtio_pci_init(struct virtio_pci *vp, const struct virtio_dev_ops *ops, void *opaque,
		    const struct guest_memory *mem)
{
	struct pci_device *d = &vp->pci;
	pthread_mutexattr_t attr;
	int r;

	if (ops->num_queues == 0 || ops->num_queues > VIRTIO_MAX_QUEUES ||
	    ops->queue_size > VIRTQ_MAX_SIZE || ops->config_size > VIRTIO_CONFIG_MAX ||
	    (ops->queue_size & (ops->queue_size - 1)) || !ops->queue_size)
		return -EINVAL;
	memset(vp, 0, sizeof(*vp));
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&vp->own_lock, &attr);
	pthread_mutexattr_destroy(&attr);
	vp->ops = ops;
	vp->opaque = opaque;
	vp->mem = mem;
	vp->host_features = offered_features(ops);
	vp->msix_vectors = ops->num_queues + 1;
	vp->elem = calloc(1, sizeof(*vp->elem));
	if (!vp->elem)
		return -ENOMEM;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->notifiers[q] = (struct vp_notifier){ .vp = vp, .q = q, .fd = -1 };
	for (unsigned v = 0; v < VIRTIO_MSIX_MAX; v++)
		vp->msix_routes[v] = (struct vp_msix_route){ .gsi = -1, .fd = -1 };

	pci_device_init(d, ops->name, VIRTIO_PCI_VENDOR, ops->transitional_id, 0,
			ops->class_code);
	pci_set_word(d->config, PCI_SUBSYSTEM_VENDOR_ID, VIRTIO_PCI_VENDOR);
	pci_set_word(d->config, PCI_SUBSYSTEM_ID, ops->device_type);
	d->config[PCI_INTERRUPT_PIN] = PCI_PIN_INTA;
	d->opaque = vp;
	d->config_read = vp_config_read;
	d->config_write = vp_config_write;
	d->bar_changed = vp_bar_changed;
	d->reset = vp_pci_reset;
	r = pci_register_bar(d, VIRTIO_PCI_BAR_LEGACY, PCI_BAR_IO, vp_legacy_bar_size(vp), false,
			     &vp_legacy_bar_ops, vp);
	if (!r)
		r = pci_register_bar(d, VIRTIO_PCI_BAR_MODERN, PCI_BAR_MEM64, VP_BAR4_SIZE, true,
				     &bar4_ops, vp);
	if (!r)
		r = add_capabilities(vp);
	if (r < 0) {
		free(vp->elem);
		vp->elem = NULL;
		return r;
	}
	vp_msix_reset(vp);
	virtio_pci_reset(vp);
	return 0;
}

static int first_free_slot(struct vm *vm)
{
	struct pci_bus *bus = pci_bus_of(vm);

	if (!bus)
		return -ENODEV;
	for (unsigned s = 2; s < PCI_SLOTS; s++) {
		bool used = false;

		for (unsigned f = 0; f < PCI_FUNCS; f++)
			used |= bus->devs[s << 3 | f] != NULL;
		if (!used)
			return s;
	}
	return -ENOSPC;
}

int virtio_pci_realize(struct virtio_pci *vp, struct vm *vm, int slot)
{
	int r;

	vp->vm = vm;
	vp_use_vm_interrupts(vp, vm);
	if (!pci_bus_of(vm)) {
		log_error("%s: no PCI bus", vp->ops->name);
		return -ENODEV;
	}
	if (slot < 0)
		slot = first_free_slot(vm);
	if (slot < 0) {
		log_error("%s: no free PCI slot", vp->ops->name);
		return slot;
	}
	for (unsigned q = 0; q < vp->ops->num_queues; q++) {
		struct vp_notifier *n = &vp->notifiers[q];

		n->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (n->fd < 0 ||
		    event_loop_add_fd(vm->loop, n->fd, EPOLLIN, notifier_ready, n) < 0) {
			log_error("%s: cannot set up queue notification: %s", vp->ops->name,
				  strerror(errno));
			return -EIO;
		}
	}
	r = pci_register_device(vm, &vp->pci, slot, 0);
	if (r < 0)
		return r;
	vmstate_register(&virtio_pci_vmstate, vp, sizeof(*vp), vp->pci.devfn);
	for (unsigned q = 0; q < vp->ops->num_queues; q++)
		vmstate_register(&virtqueue_vmstate, &vp->vqs[q], sizeof(vp->vqs[q]),
				 vp->pci.devfn * VIRTIO_MAX_QUEUES + q);
	return 0;
}

/* --- migration state ----------------------------------------------------- */

static int virtio_pci_post_load(void *opaque)
{
	struct virtio_pci *vp = opaque;

	if (vp->host_features != device_features(vp) ||
	    (vp->guest_features & ~vp->host_features))
		return -EINVAL;
	for (unsigned v = 0; v < VIRTIO_MSIX_MAX; v++)
		if (vp->msix_table[v * 4 + 3] & ~PCI_MSIX_ENTRY_CTRL_MASKBIT)
			return -EINVAL;
	if (vp->msix_pba >> vp->msix_vectors)
		return -EINVAL;
	if (vp->config_vector != VIRTIO_MSI_NO_VECTOR && vp->config_vector >= vp->msix_vectors)
		return -EINVAL;
	/* Kicks may have been suppressed when the state was saved (a device
	 * polling its queue, a full backend): look at every queue once when
	 * the loop runs again, as a kick would (QEMU does so at VM start). */
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		for (unsigned q = 0; q < vp->ops->num_queues; q++)
			virtio_pci_kick_later(vp, q);
	return 0;
}

static const struct vmstate_field virtio_pci_fields[] = {
	VMSTATE_U64(struct virtio_pci, host_features),
	VMSTATE_U64(struct virtio_pci, guest_features),
	VMSTATE_U32(struct virtio_pci, dfselect),
	VMSTATE_U32(struct virtio_pci, gfselect),
	VMSTATE_U8(struct virtio_pci, status),
	VMSTATE_U8_MAX(struct virtio_pci, isr, VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG),
	VMSTATE_U8(struct virtio_pci, config_generation),
	VMSTATE_U16(struct virtio_pci, queue_sel),
	VMSTATE_U16(struct virtio_pci, config_vector),
	VMSTATE_BOOL(struct virtio_pci, broken),
	VMSTATE_U8_ARRAY(struct virtio_pci, config),
	VMSTATE_U32_ARRAY(struct virtio_pci, msix_table),
	VMSTATE_U32(struct virtio_pci, msix_pba),
};
const struct vmstate_desc virtio_pci_vmstate =
	VMSTATE_DESC("virtio-pci", 1, virtio_pci_fields, virtio_pci_post_load);

static int virtqueue_post_load(void *opaque)
{
	struct virtq *vq = opaque;

	if (virtq_check_loaded(vq) < 0)
		return -EINVAL;
	if (vq->msix_vector != VIRTIO_MSI_NO_VECTOR && vq->msix_vector >= VIRTIO_MSIX_MAX)
		return -EINVAL;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	if (vq->enabled && !vq->broken && vq->mem && virtq_map(vq, vq->mem) < 0)
		return -EINVAL;
	return 0;
}

static const struct vmstate_field virtqueue_fields[] = {
	VMSTATE_U16_MAX(struct virtq, size, VIRTQ_MAX_SIZE),
	VMSTATE_BOOL(struct virtq, enabled),
	VMSTATE_U64(struct virtq, desc_gpa),
	VMSTATE_U64(struct virtq, avail_gpa),
	VMSTATE_U64(struct virtq, used_gpa),
	VMSTATE_U16(struct virtq, msix_vector),
	VMSTATE_BOOL(struct virtq, event_idx),
	VMSTATE_BOOL(struct virtq, indirect),
	VMSTATE_U16(struct virtq, last_avail_idx),
	VMSTATE_U16(struct virtq, used_idx),
	VMSTATE_U16_MAX(struct virtq, inflight, VIRTQ_MAX_SIZE),
	VMSTATE_U16(struct virtq, signalled_used),
	VMSTATE_BOOL(struct virtq, signalled_used_valid),
	VMSTATE_BOOL(struct virtq, broken),
	VMSTATE_BOOL(struct virtq, packed),
	VMSTATE_BOOL(struct virtq, avail_wrap),
	VMSTATE_BOOL(struct virtq, used_wrap),
	VMSTATE_U16_ARRAY(struct virtq, packed_ndescs),	/* checked by post_load */
};
const struct vmstate_desc virtqueue_vmstate =
	VMSTATE_DESC("virtqueue", 2, virtqueue_fields, virtqueue_post_load);

/* --- -device options ------------------------------------------------------ */

/* "S" or "S.0" (hex): function 0 of slot S, 1 to 1f. */
static int parse_slot(const char *v, int *slot)
{
	unsigned long s;
	char *end;

	errno = 0;
	s = strtoul(v, &end, 16);
	if (errno || end == v || s < 1 || s >= PCI_SLOTS || (*end && strcmp(end, ".0")))
		return -1;
	*slot = s;
	return 0;
}

int virtio_opts_slot(const struct opts *o, const char *name, int *slot)
{
	unsigned pos = 0;
	const char *v;

	*slot = -1;
	while ((v = opts_next(o, "addr", &pos))) {
		if (parse_slot(v, slot) < 0) {
			log_error("-device %s: invalid addr '%s' (slot 1-1f)", name, v);
			return -EINVAL;
		}
	}
	return 0;
}

int virtio_opts_packed(const struct opts *o, const char *name, bool *packed)
{
	const char *bad;

	if (opts_get_bool(o, "packed", packed, &bad) < 0) {
		log_error("-device %s: packed must be on or off, not '%s'", name, bad);
		return -EINVAL;
	}
	return 0;
}

int virtio_spec_parse(struct opts *o, const char *spec, const char *name)
{
	char err[96];

	if (opts_parse(o, spec, NULL, err, sizeof(err)) < 0) {
		log_error("-device %s: %s", name, err);
		return -EINVAL;
	}
	return 0;
}
