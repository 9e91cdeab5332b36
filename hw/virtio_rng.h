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
/* The -device options addr= and packed= (virtio_opts_slot,
 * virtio_opts_packed) are hw/virtio_pci.h's. */

#endif
