/* The legacy (virtio 0.9.5) register block of a transitional virtio-pci
 * device in I/O BAR 0: host/guest features (bits 0-31), the selected
 * queue's PFN, size and vector, notify, status, ISR, the config vector
 * while MSI-X is enabled, then the device configuration; the BAR's size
 * and its I/O handlers. Status, queue and interrupt work is shared with the
 * modern path (hw/virtio_pci.c, hw/virtio_pci_irq.c). */
#include "hw/virtio_pci_int.h"

static unsigned legacy_config_base(const struct virtio_pci *vp)
{
	return virtio_pci_msix_enabled(vp) ? VIRTIO_LEGACY_CONFIG_MSIX
					   : VIRTIO_LEGACY_CONFIG_NOMSIX;
}

static uint64_t legacy_read_locked(struct virtio_pci *vp, uint64_t off, unsigned size)
{
	struct virtq *vq = vp_selected_queue(vp);
	unsigned cfg = legacy_config_base(vp);

	if (off >= cfg)
		return vp_device_config_read(vp, off - cfg, size);
	switch (off) {
	case VIRTIO_LEGACY_HOST_FEATURES:
		return (uint32_t)vp->host_features;
	case VIRTIO_LEGACY_GUEST_FEATURES:
		return (uint32_t)vp->guest_features;
	case VIRTIO_LEGACY_QUEUE_PFN:
		return vq ? vq->desc_gpa / VIRTQ_LEGACY_ALIGN : 0;
	case VIRTIO_LEGACY_QUEUE_NUM:
		return vq ? vq->max_size : 0;
	case VIRTIO_LEGACY_QUEUE_SEL:
		return vp->queue_sel;
	case VIRTIO_LEGACY_STATUS:
		return vp->status;
	case VIRTIO_LEGACY_ISR:
		return vp_read_and_clear_isr(vp);
	case VIRTIO_LEGACY_CONFIG_VECTOR:
		return vp->config_vector;
	case VIRTIO_LEGACY_QUEUE_VECTOR:
		return vq ? vq->msix_vector : VIRTIO_MSI_NO_VECTOR;
	}
	return 0;
}

static void legacy_write_pfn(struct virtio_pci *vp, uint32_t pfn)
{
	struct virtq *vq = vp_selected_queue(vp);
	uint16_t vector;

	if (!vq)
		return;
	if (!pfn) {
		vector = vq->msix_vector;
		virtq_reset(vq, vq->max_size);
		vq->msix_vector = vector;
		vq->mem = vp->mem;
		return;
	}
	vq->size = vq->max_size;
	virtq_set_legacy_pfn(vq, pfn);
	vp_apply_features(vp);
	vp_enable_queue(vp, vq);
}

static void legacy_write_locked(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size)
{
	struct virtq *vq = vp_selected_queue(vp);
	unsigned cfg = legacy_config_base(vp);

	if (off >= cfg) {
		vp_device_config_write(vp, off - cfg, v, size);
		return;
	}
	switch (off) {
	case VIRTIO_LEGACY_GUEST_FEATURES:
		if (!(vp->status & VIRTIO_STATUS_DRIVER_OK))
			vp->guest_features = (uint32_t)v & vp->host_features;
		break;
	case VIRTIO_LEGACY_QUEUE_PFN:
		legacy_write_pfn(vp, v);
		break;
	case VIRTIO_LEGACY_QUEUE_SEL:
		vp->queue_sel = v;
		break;
	case VIRTIO_LEGACY_QUEUE_NOTIFY:
		vp_notify_queue(vp, v & 0xffff);
		break;
	case VIRTIO_LEGACY_STATUS:
		vp_write_status(vp, v, false);
		break;
	case VIRTIO_LEGACY_CONFIG_VECTOR:
		vp_set_config_vector(vp, v);
		break;
	case VIRTIO_LEGACY_QUEUE_VECTOR:
		if (vq)
			vp_set_queue_vector(vp, vq, v);
		break;
	}
}

uint64_t virtio_pci_legacy_read(struct virtio_pci *vp, uint64_t off, unsigned size)
{
	uint64_t v;

	virtio_pci_lock(vp);
	v = legacy_read_locked(vp, off, size);
	virtio_pci_unlock(vp);
	return v;
}

void virtio_pci_legacy_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_lock(vp);
	legacy_write_locked(vp, off, v, size);
	virtio_pci_unlock(vp);
}

static uint64_t bar0_read(void *opaque, uint64_t off, unsigned size)
{
	return virtio_pci_legacy_read(opaque, off, size);
}

static void bar0_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_legacy_write(opaque, off, v, size);
}

const struct io_ops vp_legacy_bar_ops = { .read = bar0_read, .write = bar0_write };

unsigned vp_legacy_bar_size(const struct virtio_pci *vp)
{
	unsigned need = VIRTIO_LEGACY_CONFIG_MSIX + vp->ops->config_size, size = 32;

	while (size < need)
		size <<= 1;
	return size;
}
