/* The firmware boot order as QEMU builds it: the devices given a
 * bootindex= property, sorted by it, named by OpenFirmware device paths
 * ("/pci@i0cf8/scsi@4/disk@0,0"), and -boot strict=on's "HALT". fw_cfg
 * serves the result as the "bootorder" file that SeaBIOS matches its
 * devices against. */
#ifndef HW_BOOTORDER_H
#define HW_BOOTORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOOTORDER_MAX		64
#define BOOTORDER_PATH_MAX	128
/* The i440FX root bus as QEMU and SeaBIOS name it (config ports at 0xcf8). */
#define BOOTORDER_PCI_ROOT	"/pci@i0cf8"
/* What QEMU appends after a device's PCI path: its fw_cfg suffix. */
#define BOOTORDER_SUFFIX_DISK	"/disk@0,0"		/* virtio-blk */
#define BOOTORDER_SUFFIX_NET	"/ethernet-phy@0"	/* virtio-net */

struct bootorder_entry {
	int32_t index;
	char path[BOOTORDER_PATH_MAX];
};

struct bootorder {
	struct bootorder_entry entries[BOOTORDER_MAX];	/* ascending index */
	unsigned n;
	bool strict;		/* -boot strict=on: "HALT" ends a non-empty list */
};

void bootorder_init(struct bootorder *b);
/* Insert path at index. A negative index means "no boot entry" (QEMU's
 * default of -1): 0, nothing added. -EEXIST when index is already used,
 * -ENOSPC when full, -EINVAL for an empty or too long path. */
int bootorder_add(struct bootorder *b, int32_t index, const char *path);
/* The "bootorder" file, byte for byte what QEMU 7.2 serves: the paths
 * joined by '\n' and ended by a NUL, then "HALT\0" when strict; length 0
 * (*data NULL) when no device has a bootindex. *data is malloc'ed. */
int bootorder_build(const struct bootorder *b, char **data, size_t *len);
/* "/pci@i0cf8/NAME@SLOT[,FN]SUFFIX" (hex, function only when nonzero), as
 * QEMU names a device on the root bus; NAME is its PCI class's name
 * ("scsi" for class 0x0100, "ethernet" for 0x0200). 0 or -ENAMETOOLONG. */
int bootorder_pci_path(char *buf, size_t size, const char *name, uint8_t devfn,
		       const char *suffix);
/* A bootindex= value: an int32 in C syntax (QEMU reads "0x10" too). */
int bootorder_parse_index(const char *v, int32_t *out);

/* The VM's list (one VM per process), served by fw_cfg. */
struct bootorder *bootorder_global(void);
/* Add a device of the command line (what: "-device SPEC" for messages);
 * logs QEMU's "The bootindex N has already been used" on a duplicate. */
int bootorder_register_pci(const char *what, int32_t index, const char *name, uint8_t devfn,
			   const char *suffix);

#endif
