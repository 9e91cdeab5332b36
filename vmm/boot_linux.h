/* The Linux x86 boot protocol structures (Documentation/arch/x86/boot.rst
 * and zero-page.rst): the setup header at offset 0x1f1 of a bzImage and
 * the zero page (struct boot_params) handed to the kernel in %rsi. Only
 * the fields the loader uses are named. */
#ifndef VMM_BOOT_LINUX_H
#define VMM_BOOT_LINUX_H

#include <stdint.h>

/* loadflags */
#define LINUX_LOADED_HIGH	0x01
#define LINUX_KEEP_SEGMENTS	0x40
#define LINUX_CAN_USE_HEAP	0x80
/* xloadflags */
#define LINUX_XLF_KERNEL_64	0x01

#define LINUX_E820_MAX 128	/* entries in the zero page */

struct linux_setup_header {
	uint8_t setup_sects;		/* 0x1f1 */
	uint16_t root_flags;
	uint32_t syssize;
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;		/* 0x1fe: 0xaa55 */
	uint16_t jump;			/* 0x200 */
	uint32_t header;		/* 0x202: "HdrS" */
	uint16_t version;		/* 0x206 */
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader;		/* 0x210 */
	uint8_t loadflags;
	uint16_t setup_move_size;
	uint32_t code32_start;		/* 0x214 */
	uint32_t ramdisk_image;		/* 0x218 */
	uint32_t ramdisk_size;
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;		/* 0x224 */
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr;		/* 0x228 */
	uint32_t initrd_addr_max;	/* 0x22c, 2.03+ */
	uint32_t kernel_alignment;	/* 0x230, 2.05+ */
	uint8_t relocatable_kernel;
	uint8_t min_alignment;		/* 2.10+ */
	uint16_t xloadflags;		/* 0x236, 2.12+ */
	uint32_t cmdline_size;		/* 0x238, 2.06+ */
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;		/* 0x258, 2.10+ */
	uint32_t init_size;		/* 0x260, 2.10+ */
	uint32_t handover_offset;
	uint32_t kernel_info_offset;	/* 0x268, 2.15+ */
} __attribute__((packed));

struct linux_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

struct linux_boot_params {
	uint8_t screen_info[0x40];			/* 0x000 */
	uint8_t apm_bios_info[0x14];			/* 0x040 */
	uint8_t pad1[4];
	uint64_t tboot_addr;				/* 0x058 */
	uint8_t ist_info[0x10];				/* 0x060 */
	uint64_t acpi_rsdp_addr;			/* 0x070, 2.14+ */
	uint8_t pad2[0x1e8 - 0x078];
	uint8_t e820_entries;				/* 0x1e8 */
	uint8_t eddbuf_entries;
	uint8_t edd_mbr_sig_buf_entries;
	uint8_t kbd_status;
	uint8_t secure_boot;
	uint8_t pad3[2];
	uint8_t sentinel;				/* 0x1ef */
	uint8_t pad4;
	struct linux_setup_header hdr;			/* 0x1f1 */
	uint8_t pad5[0x2d0 - 0x1f1 - sizeof(struct linux_setup_header)];
	struct linux_e820_entry e820_table[LINUX_E820_MAX];	/* 0x2d0 */
	uint8_t pad6[0x1000 - 0x2d0 - LINUX_E820_MAX * sizeof(struct linux_e820_entry)];
} __attribute__((packed));

#endif
