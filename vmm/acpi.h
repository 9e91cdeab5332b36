/* ACPI tables describing the platform of vmm/platform.h (RSDP, RSDT, XSDT,
 * FADT, FACS, MADT, DSDT in AML), installed either directly in guest RAM
 * (direct kernel boot) or handed to the firmware as fw_cfg blobs plus a
 * QEMU-compatible "etc/table-loader" command list (SeaBIOS / OVMF boot). */
#ifndef VMM_ACPI_H
#define VMM_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_memory;

/* vCPU i has APIC ID i. xAPIC IDs are 8 bits and 0xff is the broadcast
 * ID: IDs 0..254 get MADT Processor Local APIC entries, IDs from 255 on
 * (XAPIC_ID_LIMIT, vmm/platform.h) Processor Local x2APIC entries.
 * ACPI_MAX_CPUS is the KVM and -smp limit; the tables for that many CPUs
 * still fit the direct-boot area. */
#define ACPI_MAX_CPUS 1024

/* Serial ports described in the DSDT (acpi_config.com_mask bits). */
#define ACPI_COM1 (1u << 0)
#define ACPI_COM2 (1u << 1)

struct acpi_config {
	unsigned ncpus;			/* 1..ACPI_MAX_CPUS */
	bool pm_timer_32bit;		/* FADT TMR_VAL_EXT; false: 24-bit PM timer */
	bool vga_present;		/* clears IAPC_BOOT_ARCH "VGA not present" */
	bool ps2_mouse;			/* describe the i8042 aux port (IRQ 12) */
	unsigned com_mask;		/* ACPI_COM1 | ACPI_COM2 */
	uint64_t pci64_start;		/* optional 64-bit PCI MMIO window; */
	uint64_t pci64_size;		/* size 0: none */
};

/* Fill cfg with the defaults of the platform: 24-bit timer, no VGA,
 * mouse, COM1 and COM2, no 64-bit window. */
void acpi_config_default(struct acpi_config *cfg, unsigned ncpus);

/* Direct boot: write RSDP at ACPI_TABLES_ADDR and the tables after it,
 * all inside [ACPI_TABLES_ADDR, ACPI_TABLES_END) of the BIOS area, and add
 * an E820_RESERVED entry for the span. Returns 0, -EINVAL (bad config), -ENOSPC (does not fit the
 * BIOS area) or -EFAULT (area is not guest RAM). Nothing is written on
 * failure. */
int acpi_install(struct guest_memory *mem, const struct acpi_config *cfg);

/* Firmware boot: the three fw_cfg files QEMU provides. */
#define ACPI_FW_CFG_TABLES "etc/acpi/tables"
#define ACPI_FW_CFG_RSDP   "etc/acpi/rsdp"
#define ACPI_FW_CFG_LOADER "etc/table-loader"

struct acpi_fw_cfg_blobs {
	uint8_t *tables;	/* all tables, pointers are offsets in this blob */
	size_t tables_len;
	uint8_t *rsdp;		/* RSDP, pointers are offsets in "tables" */
	size_t rsdp_len;
	uint8_t *loader;	/* BIOS linker/loader commands, 128 bytes each */
	size_t loader_len;
};

/* Build the blobs (malloc'd; free with acpi_fw_cfg_blobs_free). Returns 0,
 * -EINVAL or -ENOMEM; out is all NULL on failure. */
int acpi_build_fw_cfg(const struct acpi_config *cfg, struct acpi_fw_cfg_blobs *out);
void acpi_fw_cfg_blobs_free(struct acpi_fw_cfg_blobs *blobs);

/* The BIOS linker/loader interface (QEMU hw/acpi/bios-linker-loader.c,
 * SeaBIOS src/fw/romfile_loader.h): little-endian, 128-byte entries. */
#define LOADER_ENTRY_SIZE	128
#define LOADER_FILESZ		56
enum loader_command {
	LOADER_CMD_ALLOCATE	= 1,	/* file[56] align:u32 zone:u8 */
	LOADER_CMD_ADD_POINTER	= 2,	/* dest[56] src[56] offset:u32 size:u8 */
	LOADER_CMD_ADD_CHECKSUM	= 3,	/* file[56] offset:u32 start:u32 length:u32 */
};
enum loader_zone {
	LOADER_ZONE_HIGH = 1,		/* anywhere in RAM below 4 GiB */
	LOADER_ZONE_FSEG = 2,		/* 0xe0000-0xfffff */
};

#endif
