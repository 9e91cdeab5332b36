/* Multiboot v1 structures (the Multiboot Specification 0.6.96): the
 * header a kernel carries in its first 8 KiB and the information block
 * %ebx points to at entry. */
#ifndef VMM_BOOT_MULTIBOOT_H
#define VMM_BOOT_MULTIBOOT_H

#include <stdint.h>

#define MULTIBOOT_HEADER_MAGIC		0x1badb002
#define MULTIBOOT_BOOTLOADER_MAGIC	0x2badb002
#define MULTIBOOT_SEARCH		8192

/* Header flags: bits 0-15 are requirements, 16-31 optional features. */
#define MB_HDR_PAGE_ALIGN	(1u << 0)	/* modules page aligned */
#define MB_HDR_MEMORY_INFO	(1u << 1)	/* mem_* and mmap_* wanted */
#define MB_HDR_VIDEO_MODE	(1u << 2)	/* video mode table wanted */
#define MB_HDR_AOUT_KLUDGE	(1u << 16)	/* address fields valid */
#define MB_HDR_REQUIRED_MASK	0xffffu

struct multiboot_header {
	uint32_t magic;
	uint32_t flags;
	uint32_t checksum;
	/* MB_HDR_AOUT_KLUDGE */
	uint32_t header_addr;
	uint32_t load_addr;
	uint32_t load_end_addr;		/* 0: load to the end of the file */
	uint32_t bss_end_addr;		/* 0: no bss */
	uint32_t entry_addr;
};

/* Information flags */
#define MB_INFO_MEMORY		(1u << 0)
#define MB_INFO_CMDLINE		(1u << 2)
#define MB_INFO_MODS		(1u << 3)
#define MB_INFO_MEM_MAP		(1u << 6)
#define MB_INFO_LOADER_NAME	(1u << 9)

struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower;		/* KiB from 0 */
	uint32_t mem_upper;		/* KiB from 1 MiB */
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count;
	uint32_t mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length;
	uint32_t mmap_addr;
	uint32_t drives_length;
	uint32_t drives_addr;
	uint32_t config_table;
	uint32_t boot_loader_name;
	uint32_t apm_table;
	uint32_t vbe_control_info;
	uint32_t vbe_mode_info;
	uint16_t vbe_mode;
	uint16_t vbe_interface_seg;
	uint16_t vbe_interface_off;
	uint16_t vbe_interface_len;
	uint64_t framebuffer_addr;
	uint32_t framebuffer_pitch;
	uint32_t framebuffer_width;
	uint32_t framebuffer_height;
	uint8_t framebuffer_bpp;
	uint8_t framebuffer_type;
	uint8_t color_info[6];
} __attribute__((packed));

struct multiboot_mod {
	uint32_t mod_start;
	uint32_t mod_end;		/* first byte after the module */
	uint32_t string;
	uint32_t reserved;
};

/* size is the entry size without the size field itself (20). */
struct multiboot_mmap_entry {
	uint32_t size;
	uint64_t addr;
	uint64_t len;
	uint32_t type;
} __attribute__((packed));

#define MB_MAX_MODULES 16

#endif
