/* Option ROM images for PCI expansion ROM BARs, found and loaded as QEMU
 * does for a device's romfile= property: the name as a path first, then
 * QEMU's firmware directories (Debian's qemu-system-data, seabios and
 * ipxe-qemu). The image is read once, at device creation. */
#ifndef HW_PCI_ROM_H
#define HW_PCI_ROM_H

#include <stddef.h>
#include <stdint.h>

/* QEMU 7.2's data directories on Debian (`qemu-system-x86_64 -L help`). */
#define PCI_ROM_SEARCH_DIRS	{ "/usr/share/qemu", "/usr/share/seabios", \
				  "/usr/lib/ipxe/qemu" }

/* The readable file name stands for into path: 0, or -ENOENT. */
int pci_rom_find(const char *name, char *path, size_t len);
/* Find and read romfile name: 0 with a malloc'ed *data of *len bytes, or a
 * negative errno with QEMU's one-line reason in err ("failed to find
 * romfile \"x\"", "romfile \"x\" is empty", "... too large"). */
int pci_rom_load(const char *name, uint8_t **data, size_t *len, char *err, size_t errlen);
/* QEMU's patch of a device's default ROM: when the first image's PCI data
 * structure names the device's vendor but another device ID (iPXE's
 * efi-virtio.rom says 1af4:1041, the transitional virtio-net is
 * 1af4:1000), write the device ID there and keep the byte sum by
 * adjusting byte 6 (the iPXE/Etherboot checksum byte), so the firmware
 * accepts the image for this device. Anything else is left alone. */
void pci_rom_patch_ids(uint8_t *rom, size_t len, uint16_t vendor, uint16_t device);

#endif
