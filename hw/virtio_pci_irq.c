/* virtio-pci interrupt delivery: the MSI-X table and PBA (in BAR 4) and
 * the MSI-X enable/mask bits, per-vector masking with pending bits, the
 * queue and config vectors the driver assigns, INTx + ISR when MSI-X is
 * off, and the interrupts device models raise (queue, config change,
 * needs-reset). An unmasked MSI-X vector is delivered through an irqfd: a
 * GSI routed to its message (updated when the guest reprograms it) and an
 * eventfd the device writes, so an interrupt costs no ioctl; KVM_SIGNAL_MSI
 * remains the fallback when routing fails. Masking stays in userspace
 * (PBA). Callers hold the device lock. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include "hw/virtio_pci_int.h"
#include "vmm/log.h"
#include "vmm/vm.h"

/* The PBA is one 32-bit word (msix_pba); the table fits its region. */
_Static_assert(VIRTIO_MSIX_MAX <= 32, "MSI-X pending bits exceed msix_pba");
_Static_assert(VIRTIO_MSIX_MAX * PCI_MSIX_ENTRY_SIZE <= VP_REGION_SIZE, "MSI-X table too big");

/* --- MSI-X vectors and their routes -------------------------------------- */

bool virtio_pci_msix_enabled(const struct virtio_pci *vp)
{
	return pci_get_word(vp->pci.config, vp->msix_cap + 2) & PCI_MSIX_FLAGS_ENABLE;
}

static bool msix_function_masked(const struct virtio_pci *vp)
{
	return pci_get_word(vp->pci.config, vp->msix_cap + 2) & PCI_MSIX_FLAGS_MASKALL;
}

static bool msix_vector_masked(const struct virtio_pci *vp, unsigned v)
{
	return msix_function_masked(vp) ||
	       (vp->msix_table[v * 4 + 3] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static uint64_t msix_addr(const struct virtio_pci *vp, unsigned v)
{
	return vp->msix_table[v * 4] | (uint64_t)vp->msix_table[v * 4 + 1] << 32;
}

static bool msix_route_failed(struct virtio_pci *vp, unsigned v, const char *what, int err)
{
	static const char fmt[] = "%s %02x.%x: MSI-X vector %u: %s: %s; using KVM_SIGNAL_MSI";

	vp->msix_routes[v].failed = true;
	if (!vp->msix_route_warned)
		log_warn(fmt, vp->ops->name, vp->pci.devfn >> 3, vp->pci.devfn & 7, v, what,
			 strerror(-err));
	else
		log_guest(LOG_GUEST_ERRORS, fmt, vp->ops->name, vp->pci.devfn >> 3,
			  vp->pci.devfn & 7, v, what, strerror(-err));
	vp->msix_route_warned = true;
	return false;
}

/* Make vector v's irqfd carry the message now in its table entry: an
 * eventfd, a GSI and the irqfd the first time, a route update when the
 * guest changed the message. Returns false when the vector must use
 * send_msi instead. */
static bool msix_route_sync(struct virtio_pci *vp, unsigned v)
{
	const struct virtio_msi_router *r = vp->router;
	struct vp_msix_route *m = &vp->msix_routes[v];
	uint64_t addr = msix_addr(vp, v);
	uint32_t data = vp->msix_table[v * 4 + 2];
	int ret;

	if (!r || m->failed)
		return false;
	if (m->fd < 0) {
		m->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (m->fd < 0)
			return msix_route_failed(vp, v, "eventfd", -errno);
	}
	if (m->gsi < 0) {
		ret = r->alloc(vp->router_opaque, addr, data);
		if (ret < 0)
			return msix_route_failed(vp, v, "no GSI route", ret);
		m->gsi = ret;
		m->addr = addr;
		m->data = data;
	} else if (m->addr != addr || m->data != data) {
		ret = r->update(vp->router_opaque, m->gsi, addr, data);
		if (ret < 0)
			return msix_route_failed(vp, v, "route update", ret);
		m->addr = addr;
		m->data = data;
	}
	if (!m->attached) {
		ret = r->attach(vp->router_opaque, m->fd, m->gsi);
		if (ret < 0)
			return msix_route_failed(vp, v, "KVM_IRQFD", ret);
		m->attached = true;
	}
	return true;
}

static void msix_send(struct virtio_pci *vp, unsigned v)
{
	uint64_t one = 1;

	if (msix_route_sync(vp, v) &&
	    write(vp->msix_routes[v].fd, &one, sizeof(one)) == sizeof(one))
		return;
	if (vp->send_msi)
		vp->send_msi(vp, msix_addr(vp, v), vp->msix_table[v * 4 + 2]);
}

/* A vector the guest may use now has its route ready before the first
 * interrupt (the guest unmasks what it has programmed). */
static void msix_prepare(struct virtio_pci *vp, unsigned v)
{
	if (v < vp->msix_vectors && virtio_pci_msix_enabled(vp) && !msix_vector_masked(vp, v))
		msix_route_sync(vp, v);
}

static void msix_prepare_all(struct virtio_pci *vp)
{
	for (unsigned v = 0; v < vp->msix_vectors; v++)
		msix_prepare(vp, v);
}

/* --- delivery: MSI-X, INTx + ISR ----------------------------------------- */

static void msix_notify(struct virtio_pci *vp, unsigned v)
{
	if (v >= vp->msix_vectors)
		return;
	if (msix_vector_masked(vp, v)) {
		vp->msix_pba |= 1u << v;
		return;
	}
	msix_send(vp, v);
}

/* Deliver what became unmasked while pending. */
static void msix_flush_pending(struct virtio_pci *vp)
{
	if (!virtio_pci_msix_enabled(vp))
		return;
	for (unsigned v = 0; v < vp->msix_vectors; v++) {
		if (!(vp->msix_pba & (1u << v)) || msix_vector_masked(vp, v))
			continue;
		vp->msix_pba &= ~(1u << v);
		msix_send(vp, v);
	}
}

void vp_update_intx(struct virtio_pci *vp)
{
	pci_set_irq(&vp->pci, vp->isr && !virtio_pci_msix_enabled(vp));
}

static void notify_vector(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	vp->isr |= isr_bit;
	if (virtio_pci_msix_enabled(vp)) {
		if (vector != VIRTIO_MSI_NO_VECTOR)
			msix_notify(vp, vector);
	} else {
		vp_update_intx(vp);
	}
}

bool virtio_pci_queue_interrupt(struct virtio_pci *vp, unsigned q)
{
	if (q >= vp->ops->num_queues || !virtq_should_notify(&vp->vqs[q]))
		return false;
	notify_vector(vp, vp->vqs[q].msix_vector, VIRTIO_ISR_QUEUE);
	return true;
}

void virtio_pci_config_changed(struct virtio_pci *vp)
{
	vp->config_generation++;
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		notify_vector(vp, vp->config_vector, VIRTIO_ISR_CONFIG);
}

void virtio_pci_set_needs_reset(struct virtio_pci *vp, const char *why)
{
	if (vp->broken)
		return;
	vp->broken = true;
	log_guest(LOG_GUEST_ERRORS, "%s %02x.%x: %s; device needs reset", vp->ops->name,
		  vp->pci.devfn >> 3, vp->pci.devfn & 7, why);
	vp->status |= VIRTIO_STATUS_NEEDS_RESET;
	/* A driver that is not up yet sees the bit when it reads status. */
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		notify_vector(vp, vp->config_vector, VIRTIO_ISR_CONFIG);
}

uint8_t vp_read_and_clear_isr(struct virtio_pci *vp)
{
	uint8_t v = vp->isr;

	vp->isr = 0;
	vp_update_intx(vp);
	return v;
}

/* --- vector assignment --------------------------------------------------- */

static uint16_t valid_vector(const struct virtio_pci *vp, uint16_t v)
{
	return v < vp->msix_vectors ? v : VIRTIO_MSI_NO_VECTOR;
}

void vp_set_config_vector(struct virtio_pci *vp, uint16_t v)
{
	vp->config_vector = valid_vector(vp, v);
	msix_prepare(vp, vp->config_vector);
}

void vp_set_queue_vector(struct virtio_pci *vp, struct virtq *vq, uint16_t v)
{
	vq->msix_vector = valid_vector(vp, v);
	msix_prepare(vp, vq->msix_vector);
}

void vp_msix_control_changed(struct virtio_pci *vp)
{
	vp_update_intx(vp);
	msix_prepare_all(vp);
	msix_flush_pending(vp);
}

/* --- MSI-X table and PBA (BAR 4) ----------------------------------------- */

uint64_t vp_msix_region_read(struct virtio_pci *vp, uint64_t off, unsigned size)
{
	if (off >= VP_MSIX_PBA_OFF)
		return off == VP_MSIX_PBA_OFF ? vp->msix_pba : 0;
	off -= VP_MSIX_TABLE_OFF;
	if (off >= vp->msix_vectors * PCI_MSIX_ENTRY_SIZE)
		return 0;
	if (size == 8 && !(off & 4))
		return vp->msix_table[off / 4] | (uint64_t)vp->msix_table[off / 4 + 1] << 32;
	return vp->msix_table[off / 4];
}

void vp_msix_region_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size)
{
	if (off >= VP_MSIX_PBA_OFF)
		return;		/* the PBA is read-only */
	off -= VP_MSIX_TABLE_OFF;
	if (off >= vp->msix_vectors * PCI_MSIX_ENTRY_SIZE)
		return;
	for (unsigned i = 0; i < (size == 8 ? 2u : 1u) && off / 4 + i < VIRTIO_MSIX_MAX * 4; i++) {
		unsigned w = off / 4 + i;
		uint32_t val = v >> (32 * i);

		if (w % 4 == 3)
			val &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
		vp->msix_table[w] = val;
	}
	/* A reprogrammed vector gets another chance at a route. */
	vp->msix_routes[off / PCI_MSIX_ENTRY_SIZE].failed = false;
	msix_prepare(vp, off / PCI_MSIX_ENTRY_SIZE);
	msix_flush_pending(vp);
}

void vp_msix_reset(struct virtio_pci *vp)
{
	memset(vp->msix_table, 0, sizeof(vp->msix_table));
	for (unsigned v = 0; v < VIRTIO_MSIX_MAX; v++)
		vp->msix_table[v * 4 + 3] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
	vp->msix_pba = 0;
}

/* --- the VM's router ----------------------------------------------------- */

static void vm_send_msi(struct virtio_pci *vp, uint64_t addr, uint32_t data)
{
	int r = vm_signal_msi(vp->vm, addr, data);

	if (r < 0)
		log_guest(LOG_GUEST_ERRORS, "%s: MSI 0x%llx/0x%x not delivered: %s",
			  vp->ops->name, (unsigned long long)addr, data, strerror(-r));
}

static int vm_route_alloc(void *vm, uint64_t addr, uint32_t data)
{
	return vm_msi_route_alloc(vm, addr, data);
}

static int vm_route_update(void *vm, unsigned gsi, uint64_t addr, uint32_t data)
{
	return vm_msi_route_update(vm, gsi, addr, data);
}

static int vm_route_attach(void *vm, int fd, unsigned gsi)
{
	return vm_irqfd_attach(vm, fd, gsi);
}

static const struct virtio_msi_router vm_router = {
	.alloc = vm_route_alloc, .update = vm_route_update, .attach = vm_route_attach,
};

void vp_use_vm_interrupts(struct virtio_pci *vp, struct vm *vm)
{
	vp->send_msi = vm_send_msi;
	vp->router = &vm_router;
	vp->router_opaque = vm;
}
