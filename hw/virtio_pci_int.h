/* Private to the virtio-pci transport: the functions its files share,
 * hw/virtio_pci.c (status, features, queues, device config, notification,
 * BAR 4, config hooks, setup, migration), hw/virtio_pci_irq.c (MSI-X,
 * INTx + ISR, vector assignment) and hw/virtio_pci_legacy.c (the legacy
 * register block in I/O BAR 0). All of them run with the device lock held. */
#ifndef HW_VIRTIO_PCI_INT_H
#define HW_VIRTIO_PCI_INT_H

#include "hw/virtio_pci.h"
#include "vmm/io.h"

/* Status, features, queues and device config (hw/virtio_pci.c). */
/* The queue queue_sel names, NULL when out of range. */
struct virtq *vp_selected_queue(struct virtio_pci *vp);
/* The negotiated ring features onto every queue. */
void vp_apply_features(struct virtio_pci *vp);
/* A driver status write (0 resets): FEATURES_OK stays clear for features
 * not offered, or from a modern driver without VERSION_1. */
void vp_write_status(struct virtio_pci *vp, uint8_t v, bool modern);
/* Map vq's rings; a bad ring sets DEVICE_NEEDS_RESET. */
void vp_enable_queue(struct virtio_pci *vp, struct virtq *vq);
/* Device configuration bytes at off (0 / ignored when out of range). */
uint64_t vp_device_config_read(struct virtio_pci *vp, uint64_t off, unsigned size);
void vp_device_config_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size);
/* A notify register write for queue q: through its eventfd once realized
 * (the loop thread does the work), at once otherwise. */
void vp_notify_queue(struct virtio_pci *vp, unsigned q);

/* Interrupts (hw/virtio_pci_irq.c). */
/* INTx follows the ISR while MSI-X is off. */
void vp_update_intx(struct virtio_pci *vp);
/* The ISR register: reading it clears it (and lowers INTx). */
uint8_t vp_read_and_clear_isr(struct virtio_pci *vp);
/* The driver assigns a vector (out of range: VIRTIO_MSI_NO_VECTOR). */
void vp_set_config_vector(struct virtio_pci *vp, uint16_t v);
void vp_set_queue_vector(struct virtio_pci *vp, struct virtq *vq, uint16_t v);
/* MSI-X enable or function mask may have changed in config space. */
void vp_msix_control_changed(struct virtio_pci *vp);
/* The MSI-X table and PBA at their BAR 4 offsets (aligned, 4 or 8 bytes). */
uint64_t vp_msix_region_read(struct virtio_pci *vp, uint64_t off, unsigned size);
void vp_msix_region_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size);
/* Every vector masked, nothing pending. */
void vp_msix_reset(struct virtio_pci *vp);
/* Deliver MSI-X through vm's GSI routes and irqfds, KVM_SIGNAL_MSI else. */
void vp_use_vm_interrupts(struct virtio_pci *vp, struct vm *vm);

/* Legacy I/O BAR 0 (hw/virtio_pci_legacy.c): its size and handlers. */
unsigned vp_legacy_bar_size(const struct virtio_pci *vp);
extern const struct io_ops vp_legacy_bar_ops;

#endif
