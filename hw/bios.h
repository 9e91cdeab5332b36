/* The firmware image (SeaBIOS): loaded from a file into page-aligned
 * memory that is mapped read-only at 4 GiB - size and, through PAM, in
 * the legacy window below 1 MiB. */
#ifndef HW_BIOS_H
#define HW_BIOS_H

#include <stddef.h>
#include <stdint.h>

#define BIOS_DEFAULT_PATH	"/usr/share/seabios/bios-256k.bin"
#define BIOS_FALLBACK_PATH	"/usr/share/seabios/bios.bin"

struct bios_image {
	uint8_t *data;		/* page-aligned, read-only after load */
	size_t size;
	char path[256];
};

/* Valid sizes: a non-zero multiple of 64 KiB, at most BIOS_MAX_SIZE. */
int bios_check_size(uint64_t size);
/* Load path, or the default (falling back to bios.bin) when path is NULL.
 * Returns 0 or a negative errno with one line in err. */
int bios_load(const char *path, struct bios_image *img, char *err, size_t errlen);
void bios_free(struct bios_image *img);

#endif
