/* QEMU's fw_cfg firmware configuration interface (selector 0x510, data
 * 0x511, DMA 0x514): numbered items and named files that SeaBIOS reads to
 * learn RAM size, CPUs, e820, ACPI tables and boot order. */
#ifndef HW_FW_CFG_H
#define HW_FW_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>

struct bootorder;
struct guest_memory;
struct vm;
struct vm_config;

/* Well-known item keys */
#define FW_CFG_SIGNATURE	0x0000
#define FW_CFG_ID		0x0001
#define FW_CFG_UUID		0x0002
#define FW_CFG_RAM_SIZE		0x0003
#define FW_CFG_NOGRAPHIC	0x0004
#define FW_CFG_NB_CPUS		0x0005
#define FW_CFG_MACHINE_ID	0x0006
#define FW_CFG_BOOT_DEVICE	0x000c
#define FW_CFG_NUMA		0x000d
#define FW_CFG_BOOT_MENU	0x000e
#define FW_CFG_MAX_CPUS		0x000f
#define FW_CFG_FILE_DIR		0x0019
#define FW_CFG_FILE_FIRST	0x0020
#define FW_CFG_WRITE_CHANNEL	0x4000
#define FW_CFG_ARCH_LOCAL	0x8000
#define FW_CFG_INVALID		0xffff

#define FW_CFG_ID_TRADITIONAL	0x01
#define FW_CFG_ID_DMA		0x02

/* DMA control bits (FWCfgDmaAccess.control, big-endian) */
#define FW_CFG_DMA_ERROR	0x01
#define FW_CFG_DMA_READ		0x02
#define FW_CFG_DMA_SKIP		0x04
#define FW_CFG_DMA_SELECT	0x08
#define FW_CFG_DMA_WRITE	0x10
/* What a read of the DMA register returns: "QEMU CFG" */
#define FW_CFG_DMA_SIGNATURE	0x51454d5520434647ull

#define FW_CFG_MAX_FILES	64
#define FW_CFG_MAX_ITEMS	64
#define FW_CFG_NAME_LEN		56

struct fw_cfg_item {
	uint16_t key;
	uint8_t *data;			/* owned copy */
	uint32_t len;
	/* Called on selection to refresh data (e.g. the e820 table). */
	void (*on_select)(struct fw_cfg_item *it, void *opaque);
	void *opaque;
};

struct fw_cfg_file {
	char name[FW_CFG_NAME_LEN];
	struct fw_cfg_item item;	/* key = FW_CFG_FILE_FIRST + index */
};

struct fw_cfg {
	pthread_mutex_t lock;
	const struct guest_memory *mem;	/* DMA target; NULL: DMA fails */
	struct fw_cfg_item items[FW_CFG_MAX_ITEMS];
	unsigned nitems;
	struct fw_cfg_file files[FW_CFG_MAX_FILES];	/* sorted by name */
	unsigned nfiles;
	/* Guest-controlled state */
	uint16_t selector;
	uint32_t offset;
	uint32_t dma_addr_high;
};

/* Model (unit-testable). */
void fw_cfg_init_model(struct fw_cfg *s, const struct guest_memory *mem);
void fw_cfg_free_model(struct fw_cfg *s);
/* Add or replace an item / a file (data copied). Return 0 or -errno. */
int fw_cfg_model_add(struct fw_cfg *s, uint16_t key, const void *data, size_t len);
int fw_cfg_model_add_file(struct fw_cfg *s, const char *name, const void *data, size_t len);
/* Regenerate a file's content (fn calls fw_cfg_item_set) whenever it or
 * the file directory is selected, e.g. for the e820 table. */
int fw_cfg_model_set_generator(struct fw_cfg *s, const char *name,
			       void (*fn)(struct fw_cfg_item *it, void *opaque), void *opaque);
int fw_cfg_item_set(struct fw_cfg_item *it, const void *data, size_t len);
/* The boot items of cfg's -boot options (FW_CFG_BOOT_MENU,
 * etc/boot-menu-wait, etc/boot-fail-wait) and the "bootorder" file,
 * generated from b (hw/bootorder.h) whenever the guest reads the
 * directory or the file, so devices may add entries afterwards. */
int fw_cfg_model_add_boot(struct fw_cfg *s, const struct vm_config *cfg, struct bootorder *b);
/* Register port accesses. */
void fw_cfg_select(struct fw_cfg *s, uint16_t key);
uint8_t fw_cfg_read_byte(struct fw_cfg *s);
void fw_cfg_dma_write_high(struct fw_cfg *s, uint32_t be_value_as_read);
/* Writing the low half starts the transfer at (high << 32 | low). */
void fw_cfg_dma_write_low(struct fw_cfg *s, uint32_t be_value_as_read);
void fw_cfg_dma_run(struct fw_cfg *s, uint64_t desc_gpa);

/* The VM's instance (created on first use, one VM per process). Other
 * devices add their entries before the guest starts. */
struct fw_cfg *fw_cfg_global(void);
int fw_cfg_add_file(const char *name, const void *data, size_t len);
int fw_cfg_add_bytes(uint16_t key, const void *data, size_t len);
int fw_cfg_add_u16(uint16_t key, uint16_t value);
int fw_cfg_add_u32(uint16_t key, uint32_t value);
int fw_cfg_add_u64(uint16_t key, uint64_t value);

#endif
