/* virtio-rng-pci model: the entropy device on the virtio-pci transport.
 * Public so unit tests can drive it with a fake guest memory. */
#ifndef HW_VIRTIO_RNG_H
#define HW_VIRTIO_RNG_H

#include "hw/virtio_pci.h"

/* Build a virtio-rng transport over mem (no VM: interrupts go to
 * vp->send_msi and the INTx level to vp->pci.irq_level). */
int virtio_rng_init(struct virtio_pci *vp, const struct guest_memory *mem);
/* Serve queue q: fill every available chain's writable buffers. */
void virtio_rng_process(struct virtio_pci *vp, unsigned q);
/* The addr=SLOT[.0] option of a -device spec: -1 when absent. */
int virtio_spec_slot(const char *spec, const char *name, int *slot);
/* The packed=on|off option (virtio_pci_offer_packed); *packed is left
 * alone when absent; -EINVAL (logged) on a bad value. */
int virtio_spec_packed(const char *spec, const char *name, bool *packed);

#endif
