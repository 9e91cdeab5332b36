/* Option ROM files: QEMU's search (the name as given, then its firmware
 * directories), a bounded read of the whole image, and QEMU's device ID
 * patch for default ROMs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "hw/pci.h"
#include "hw/pci_rom.h"
#include "vmm/fileio.h"

static const char *const search_dirs[] = PCI_ROM_SEARCH_DIRS;

int pci_rom_find(const char *name, char *path, size_t len)
{
	int n;

	if (!name || !*name)
		return -ENOENT;
	if (access(name, R_OK) == 0) {
		n = snprintf(path, len, "%s", name);
		return n < 0 || (size_t)n >= len ? -ENOENT : 0;
	}
	for (unsigned i = 0; i < sizeof(search_dirs) / sizeof(search_dirs[0]); i++) {
		n = snprintf(path, len, "%s/%s", search_dirs[i], name);
		if (n > 0 && (size_t)n < len && access(path, R_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/* Size of the regular file open on fd, checked against the ROM limits. */
static int rom_size(int fd, const char *name, size_t *len, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "romfile \"%s\" is not a regular file", name);
		return -EINVAL;
	}
	if (st.st_size == 0) {
		snprintf(err, errlen, "romfile \"%s\" is empty", name);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > PCI_ROM_MAX_SIZE) {
		snprintf(err, errlen, "romfile \"%s\" too large (size cannot exceed %u MiB)",
			 name, PCI_ROM_MAX_SIZE >> 20);
		return -EFBIG;
	}
	*len = st.st_size;
	return 0;
}

int pci_rom_load(const char *name, uint8_t **data, size_t *len, char *err, size_t errlen)
{
	char path[4096];
	uint8_t *buf;
	int fd, r;

	*data = NULL;
	*len = 0;
	if (pci_rom_find(name, path, sizeof(path)) < 0 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "failed to find romfile \"%s\"", name ? name : "");
		return -ENOENT;
	}
	r = rom_size(fd, name, len, err, errlen);
	buf = r < 0 ? NULL : malloc(*len);
	if (r == 0 && !buf) {
		snprintf(err, errlen, "romfile \"%s\": out of memory", name);
		r = -ENOMEM;
	}
	if (r == 0 && (r = read_full_at(fd, 0, buf, *len)) < 0)
		snprintf(err, errlen, "failed to load romfile \"%s\": %s", name, strerror(-r));
	close(fd);
	if (r < 0) {
		free(buf);
		*len = 0;
		return r;
	}
	*data = buf;
	return 0;
}

#define ROM_PCIR_PTR		0x18	/* offset of the PCI data structure */
#define ROM_CHECKSUM_BYTE	6
#define PCIR_VENDOR		4
#define PCIR_DEVICE		6

static uint16_t get_le16(const uint8_t *p)
{
	return p[0] | (uint16_t)p[1] << 8;
}

void pci_rom_patch_ids(uint8_t *rom, size_t len, uint16_t vendor, uint16_t device)
{
	size_t pcir;
	uint16_t rom_device;
	uint8_t sum;

	if (len < ROM_PCIR_PTR + 2 || rom[0] != 0x55 || rom[1] != 0xaa)
		return;
	pcir = get_le16(rom + ROM_PCIR_PTR);
	if (pcir + PCIR_DEVICE + 2 > len || memcmp(rom + pcir, "PCIR", 4) ||
	    get_le16(rom + pcir + PCIR_VENDOR) != vendor)
		return;
	rom_device = get_le16(rom + pcir + PCIR_DEVICE);
	if (rom_device == device)
		return;
	sum = rom[ROM_CHECKSUM_BYTE];
	sum += (uint8_t)rom_device + (uint8_t)(rom_device >> 8);
	sum -= (uint8_t)device + (uint8_t)(device >> 8);
	rom[pcir + PCIR_DEVICE] = device & 0xff;
	rom[pcir + PCIR_DEVICE + 1] = device >> 8;
	rom[ROM_CHECKSUM_BYTE] = sum;
}
