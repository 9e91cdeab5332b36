/* Pieces shared by the virtio fuzz targets: an MSI sink (interrupts are
 * not the subject) and the access size a fuzz byte selects. */
#ifndef TESTS_FUZZ_VIRTIO_COMMON_H
#define TESTS_FUZZ_VIRTIO_COMMON_H

#include <stdint.h>
#include "hw/virtio_pci.h"

static inline void no_msi(struct virtio_pci *vp, uint64_t addr, uint32_t data)
{
	(void)vp;
	(void)addr;
	(void)data;
}

static inline unsigned access_size(uint8_t s)
{
	static const unsigned sizes[] = { 1, 2, 4, 8 };

	return sizes[s & 3];
}

#endif
