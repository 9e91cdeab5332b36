/* fw_cfg: the item store (numbered items, sorted file directory), the
 * selector/data byte-stream interface, the DMA interface with every guest
 * address checked, and the standard items SeaBIOS reads (boot order and
 * -boot menu/timeouts included). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hw/bootorder.h"
#include "hw/fw_cfg.h"
#include "vmm/acpi.h"
#include "vmm/log.h"
#include "vmm/memory.h"
#include "vmm/platform.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define FW_CFG_KEY_MASK	0x3fff
#define FW_CFG_DIR_ENTRY 64	/* be32 size, be16 select, be16 reserved, name[56] */

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, v >> 16);
	put_be16(p + 2, v);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* --- item store --------------------------------------------------------- */

void fw_cfg_init_model(struct fw_cfg *s, const struct guest_memory *mem)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->mem = mem;
	s->selector = FW_CFG_INVALID;
}

void fw_cfg_free_model(struct fw_cfg *s)
{
	for (unsigned i = 0; i < s->nitems; i++)
		free(s->items[i].data);
	for (unsigned i = 0; i < s->nfiles; i++)
		free(s->files[i].item.data);
	s->nitems = s->nfiles = 0;
}

int fw_cfg_item_set(struct fw_cfg_item *it, const void *data, size_t len)
{
	uint8_t *copy = NULL;

	if (len > UINT32_MAX)
		return -EFBIG;
	if (len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, len);
	}
	free(it->data);
	it->data = copy;
	it->len = len;
	return 0;
}

static struct fw_cfg_item *find_item(struct fw_cfg *s, uint16_t key)
{
	uint16_t k = key & ~FW_CFG_WRITE_CHANNEL;

	if (!(k & FW_CFG_ARCH_LOCAL) && k >= FW_CFG_FILE_FIRST &&
	    k < FW_CFG_FILE_FIRST + s->nfiles)
		return &s->files[k - FW_CFG_FILE_FIRST].item;
	for (unsigned i = 0; i < s->nitems; i++)
		if (s->items[i].key == k)
			return &s->items[i];
	return NULL;
}

int fw_cfg_model_add(struct fw_cfg *s, uint16_t key, const void *data, size_t len)
{
	struct fw_cfg_item *it;

	if ((key & FW_CFG_WRITE_CHANNEL) || key == FW_CFG_INVALID ||
	    ((key & FW_CFG_KEY_MASK) >= FW_CFG_FILE_FIRST && !(key & FW_CFG_ARCH_LOCAL)))
		return -EINVAL;
	it = find_item(s, key);
	if (!it) {
		if (s->nitems == FW_CFG_MAX_ITEMS)
			return -ENOSPC;
		it = &s->items[s->nitems++];
		memset(it, 0, sizeof(*it));
		it->key = key;
	}
	return fw_cfg_item_set(it, data, len);
}

/* FILE_DIR: be32 count, then per file be32 size, be16 key, be16 0, name. */
static int rebuild_dir(struct fw_cfg *s)
{
	size_t len = 4 + (size_t)s->nfiles * FW_CFG_DIR_ENTRY;
	uint8_t *dir = calloc(1, len);
	struct fw_cfg_item *it;

	if (!dir)
		return -ENOMEM;
	put_be32(dir, s->nfiles);
	for (unsigned i = 0; i < s->nfiles; i++) {
		uint8_t *e = dir + 4 + i * FW_CFG_DIR_ENTRY;

		s->files[i].item.key = FW_CFG_FILE_FIRST + i;
		put_be32(e, s->files[i].item.len);
		put_be16(e + 4, FW_CFG_FILE_FIRST + i);
		memcpy(e + 8, s->files[i].name, FW_CFG_NAME_LEN);
	}
	it = find_item(s, FW_CFG_FILE_DIR);
	if (!it) {
		int r = fw_cfg_model_add(s, FW_CFG_FILE_DIR, NULL, 0);

		if (r < 0) {
			free(dir);
			return r;
		}
		it = find_item(s, FW_CFG_FILE_DIR);
	}
	free(it->data);
	it->data = dir;
	it->len = len;
	return 0;
}

int fw_cfg_model_add_file(struct fw_cfg *s, const char *name, const void *data, size_t len)
{
	unsigned pos = 0;
	int r;

	if (!name[0] || strlen(name) >= FW_CFG_NAME_LEN)
		return -EINVAL;
	while (pos < s->nfiles && strcmp(s->files[pos].name, name) < 0)
		pos++;
	if (pos < s->nfiles && !strcmp(s->files[pos].name, name)) {
		r = fw_cfg_item_set(&s->files[pos].item, data, len);
		return r < 0 ? r : rebuild_dir(s);
	}
	if (s->nfiles == FW_CFG_MAX_FILES)
		return -ENOSPC;
	memmove(&s->files[pos + 1], &s->files[pos], (s->nfiles - pos) * sizeof(s->files[0]));
	memset(&s->files[pos], 0, sizeof(s->files[0]));
	strcpy(s->files[pos].name, name);
	r = fw_cfg_item_set(&s->files[pos].item, data, len);
	if (r < 0) {
		memmove(&s->files[pos], &s->files[pos + 1],
			(s->nfiles - pos) * sizeof(s->files[0]));
		return r;
	}
	s->nfiles++;
	/* The selected key may now name another file: deselect. */
	s->selector = FW_CFG_INVALID;
	return rebuild_dir(s);
}

static struct fw_cfg_file *find_file(struct fw_cfg *s, const char *name)
{
	for (unsigned i = 0; i < s->nfiles; i++)
		if (!strcmp(s->files[i].name, name))
			return &s->files[i];
	return NULL;
}

int fw_cfg_model_set_generator(struct fw_cfg *s, const char *name,
			       void (*fn)(struct fw_cfg_item *it, void *opaque), void *opaque)
{
	struct fw_cfg_file *f = find_file(s, name);

	if (!f)
		return -ENOENT;
	f->item.on_select = fn;
	f->item.opaque = opaque;
	return 0;
}

/* --- guest interface ---------------------------------------------------- */

/* Generated files may change size: refresh them before the directory. */
static void refresh_generated_files(struct fw_cfg *s)
{
	bool any = false;

	for (unsigned i = 0; i < s->nfiles; i++) {
		struct fw_cfg_item *it = &s->files[i].item;

		if (it->on_select) {
			it->on_select(it, it->opaque);
			any = true;
		}
	}
	if (any)
		rebuild_dir(s);
}

static void select_locked(struct fw_cfg *s, uint16_t key)
{
	struct fw_cfg_item *it;

	if ((key & ~FW_CFG_WRITE_CHANNEL) == FW_CFG_FILE_DIR)
		refresh_generated_files(s);
	s->selector = key;
	s->offset = 0;
	it = find_item(s, key);
	if (it && it->on_select)
		it->on_select(it, it->opaque);
}

void fw_cfg_select(struct fw_cfg *s, uint16_t key)
{
	pthread_mutex_lock(&s->lock);
	select_locked(s, key);
	pthread_mutex_unlock(&s->lock);
}

uint8_t fw_cfg_read_byte(struct fw_cfg *s)
{
	struct fw_cfg_item *it;
	uint8_t v = 0;

	pthread_mutex_lock(&s->lock);
	it = find_item(s, s->selector);
	if (it && s->offset < it->len)
		v = it->data[s->offset++];
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* One read/skip transfer of len bytes to gpa; false on a bad address. */
static bool dma_transfer(struct fw_cfg *s, bool read, uint64_t gpa, uint32_t len)
{
	struct fw_cfg_item *it = find_item(s, s->selector);
	uint32_t avail = it && s->offset < it->len ? it->len - s->offset : 0;
	uint32_t n = len < avail ? len : avail;
	uint8_t *dst = NULL;

	if (read && len) {
		dst = s->mem ? gpa_to_hva(s->mem, gpa, len) : NULL;
		if (!dst)
			return false;
		if (n)
			memcpy(dst, it->data + s->offset, n);
		memset(dst + n, 0, len - n);	/* past the end reads as zeros */
	}
	s->offset += n;
	return true;
}

static void dma_run_locked(struct fw_cfg *s, uint64_t desc_gpa)
{
	uint8_t *desc = s->mem ? gpa_to_hva(s->mem, desc_gpa, 16) : NULL;
	uint32_t control, length, status = 0;
	uint64_t addr;

	if (!desc) {
		log_guest(LOG_GUEST_ERRORS, "fw_cfg: DMA descriptor at 0x%llx is not RAM",
			  (unsigned long long)desc_gpa);
		return;
	}
	control = get_be32(desc);
	length = get_be32(desc + 4);
	addr = get_be64(desc + 8);
	if (control & FW_CFG_DMA_SELECT)
		select_locked(s, control >> 16);
	if (control & FW_CFG_DMA_WRITE) {
		log_guest(LOG_GUEST_ERRORS, "fw_cfg: DMA write rejected");
		status = FW_CFG_DMA_ERROR;
	} else if (control & (FW_CFG_DMA_READ | FW_CFG_DMA_SKIP)) {
		if (!dma_transfer(s, control & FW_CFG_DMA_READ, addr, length)) {
			log_guest(LOG_GUEST_ERRORS, "fw_cfg: DMA to bad address 0x%llx+0x%x",
				  (unsigned long long)addr, length);
			status = FW_CFG_DMA_ERROR;
		}
	}
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put_be32(desc, status);
}

void fw_cfg_dma_run(struct fw_cfg *s, uint64_t desc_gpa)
{
	pthread_mutex_lock(&s->lock);
	dma_run_locked(s, desc_gpa);
	pthread_mutex_unlock(&s->lock);
}

void fw_cfg_dma_write_high(struct fw_cfg *s, uint32_t value)
{
	s->dma_addr_high = __builtin_bswap32(value);
}

void fw_cfg_dma_write_low(struct fw_cfg *s, uint32_t value)
{
	uint64_t gpa = (uint64_t)s->dma_addr_high << 32 | __builtin_bswap32(value);

	s->dma_addr_high = 0;
	fw_cfg_dma_run(s, gpa);
}

/* --- VM glue ------------------------------------------------------------ */

static struct fw_cfg *global;

struct fw_cfg *fw_cfg_global(void)
{
	if (!global) {
		global = calloc(1, sizeof(*global));
		if (global)
			fw_cfg_init_model(global, NULL);
	}
	return global;
}

int fw_cfg_add_file(const char *name, const void *data, size_t len)
{
	struct fw_cfg *s = fw_cfg_global();
	int r;

	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	r = fw_cfg_model_add_file(s, name, data, len);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int fw_cfg_add_bytes(uint16_t key, const void *data, size_t len)
{
	struct fw_cfg *s = fw_cfg_global();
	int r;

	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	r = fw_cfg_model_add(s, key, data, len);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Numeric items are little-endian, like QEMU's. */
int fw_cfg_add_u16(uint16_t key, uint16_t value)
{
	uint8_t b[2] = { value, value >> 8 };

	return fw_cfg_add_bytes(key, b, sizeof(b));
}

int fw_cfg_add_u32(uint16_t key, uint32_t value)
{
	uint8_t b[4];

	for (unsigned i = 0; i < 4; i++)
		b[i] = value >> (8 * i);
	return fw_cfg_add_bytes(key, b, sizeof(b));
}

int fw_cfg_add_u64(uint16_t key, uint64_t value)
{
	uint8_t b[8];

	for (unsigned i = 0; i < 8; i++)
		b[i] = value >> (8 * i);
	return fw_cfg_add_bytes(key, b, sizeof(b));
}

static uint64_t ctl_read(void *opaque, uint64_t off, unsigned size)
{
	if (off == 1 && size == 1)
		return fw_cfg_read_byte(opaque);
	return 0;
}

static void ctl_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
	if (off == 0 && size == 2)
		fw_cfg_select(opaque, value);
	else
		log_guest(LOG_GUEST_ERRORS, "fw_cfg: ignored %u-byte write at +%llu", size,
			  (unsigned long long)off);
}

static uint64_t dma_read(void *opaque, uint64_t off, unsigned size)
{
	if (off == 0 && size == 8)
		return __builtin_bswap64(FW_CFG_DMA_SIGNATURE);
	if (off == 0 && size == 4)
		return __builtin_bswap32(FW_CFG_DMA_SIGNATURE >> 32);
	if (off == 4 && size == 4)
		return __builtin_bswap32((uint32_t)FW_CFG_DMA_SIGNATURE);
	return 0;
}

static void dma_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
	struct fw_cfg *s = opaque;

	if (off == 0 && size == 4)
		fw_cfg_dma_write_high(s, value);
	else if (off == 4 && size == 4)
		fw_cfg_dma_write_low(s, value);
	else if (off == 0 && size == 8)
		fw_cfg_dma_run(s, __builtin_bswap64(value));
}

static const struct io_ops ctl_ops = { .read = ctl_read, .write = ctl_write };
static const struct io_ops dma_ops = { .read = dma_read, .write = dma_write };

static void e820_on_select(struct fw_cfg_item *it, void *opaque)
{
	const struct guest_memory *m = opaque;

	fw_cfg_item_set(it, m->e820, m->n_e820 * sizeof(m->e820[0]));
}

static int add_acpi_tables(struct vm *vm)
{
	struct acpi_fw_cfg_blobs b;
	struct acpi_config cfg;
	int r;

	acpi_config_default(&cfg, vm->ncpus);
	r = acpi_build_fw_cfg(&cfg, &b);
	if (r < 0) {
		log_error("fw_cfg: cannot build ACPI tables: %s", strerror(-r));
		return r;
	}
	r = fw_cfg_add_file(ACPI_FW_CFG_TABLES, b.tables, b.tables_len);
	if (!r)
		r = fw_cfg_add_file(ACPI_FW_CFG_RSDP, b.rsdp, b.rsdp_len);
	if (!r)
		r = fw_cfg_add_file(ACPI_FW_CFG_LOADER, b.loader, b.loader_len);
	acpi_fw_cfg_blobs_free(&b);
	return r;
}

/* "bootorder" is built when the guest looks: devices add their bootindex
 * entries (hw/bootorder.c) after fw_cfg is set up. */
static void bootorder_on_select(struct fw_cfg_item *it, void *opaque)
{
	char *data;
	size_t len;

	if (bootorder_build(opaque, &data, &len) < 0) {
		log_error("fw_cfg: out of memory for the bootorder file");
		return;
	}
	fw_cfg_item_set(it, data, len);
	free(data);
}

/* -boot menu=, splash-time=, reboot-timeout=, strict=, as QEMU hands them
 * to SeaBIOS: FW_CFG_BOOT_MENU (its etc/show-boot-menu), etc/boot-menu-wait
 * only when splash-time is given, etc/boot-fail-wait (-1: never reboot),
 * "HALT" at the end of a non-empty bootorder. All little-endian. */
int fw_cfg_model_add_boot(struct fw_cfg *s, const struct vm_config *cfg, struct bootorder *b)
{
	int32_t reboot = cfg->has_reboot_timeout ? cfg->boot_reboot_timeout : -1;
	uint8_t menu[2] = { cfg->boot_menu, 0 };
	uint8_t wait[2] = { cfg->boot_splash_time, cfg->boot_splash_time >> 8 };
	uint8_t fail[4];
	int r = 0;

	for (unsigned i = 0; i < 4; i++)
		fail[i] = (uint32_t)reboot >> (8 * i);
	r |= fw_cfg_model_add(s, FW_CFG_BOOT_MENU, menu, sizeof(menu));
	if (cfg->has_splash_time)
		r |= fw_cfg_model_add_file(s, "etc/boot-menu-wait", wait, sizeof(wait));
	r |= fw_cfg_model_add_file(s, "etc/boot-fail-wait", fail, sizeof(fail));
	b->strict = cfg->boot_strict;
	r |= fw_cfg_model_add_file(s, "bootorder", NULL, 0);
	r |= fw_cfg_model_set_generator(s, "bootorder", bootorder_on_select, b);
	return r ? -EINVAL : 0;
}

static int add_standard_items(struct fw_cfg *s, struct vm *vm)
{
	const struct vm_config *cfg = vm->cfg;
	static const uint8_t zero_uuid[16];
	unsigned max_cpus = cfg->max_cpus > vm->ncpus ? cfg->max_cpus : vm->ncpus;
	uint8_t *numa = calloc(1 + max_cpus, 8);
	int r = 0;

	if (!numa)
		return -ENOMEM;
	r |= fw_cfg_add_bytes(FW_CFG_SIGNATURE, "QEMU", 4);
	r |= fw_cfg_add_u32(FW_CFG_ID, FW_CFG_ID_TRADITIONAL | FW_CFG_ID_DMA);
	r |= fw_cfg_add_bytes(FW_CFG_UUID, cfg->has_uuid ? cfg->uuid : zero_uuid, 16);
	r |= fw_cfg_add_u64(FW_CFG_RAM_SIZE, vm->mem.ram_size);
	r |= fw_cfg_add_u16(FW_CFG_NOGRAPHIC, cfg->nographic);
	r |= fw_cfg_add_u16(FW_CFG_NB_CPUS, vm->ncpus);
	r |= fw_cfg_add_u16(FW_CFG_MAX_CPUS, max_cpus);
	r |= fw_cfg_add_bytes(FW_CFG_NUMA, numa, (1 + max_cpus) * 8);
	/* First -boot letter, as QEMU's non-PC machines publish it. SeaBIOS
	 * takes -boot order from CMOS 0x3d/0x38 (hw/rtc.c) instead. */
	r |= fw_cfg_add_u16(FW_CFG_BOOT_DEVICE,
			    cfg->boot_order && cfg->boot_order[0] ? cfg->boot_order[0] : 'c');
	free(numa);
	/* Like QEMU: bootorder holds the OpenFirmware paths of devices given
	 * a bootindex only, never -boot order, which SeaBIOS gets from CMOS. */
	pthread_mutex_lock(&s->lock);
	r |= fw_cfg_model_add_boot(s, cfg, bootorder_global());
	pthread_mutex_unlock(&s->lock);
	r |= fw_cfg_add_file("etc/e820", vm->mem.e820, vm->mem.n_e820 * sizeof(vm->mem.e820[0]));
	pthread_mutex_lock(&s->lock);
	r |= fw_cfg_model_set_generator(s, "etc/e820", e820_on_select, &vm->mem);
	pthread_mutex_unlock(&s->lock);
	return r ? -EINVAL : 0;
}

static const struct vmstate_field fw_cfg_fields[] = {
	VMSTATE_U16(struct fw_cfg, selector),
	VMSTATE_U32(struct fw_cfg, offset),
	VMSTATE_U32(struct fw_cfg, dma_addr_high),
};
static const struct vmstate_desc fw_cfg_vmstate =
	VMSTATE_DESC("fw_cfg", 1, fw_cfg_fields, NULL);

static int fw_cfg_vm_init(struct vm *vm)
{
	struct fw_cfg *s = fw_cfg_global();
	int r;

	if (!s)
		return -ENOMEM;
	s->mem = &vm->mem;
	r = add_standard_items(s, vm);
	if (r < 0) {
		log_error("fw_cfg: cannot add the standard items");
		return r;
	}
	if (!vm->cfg->kernel && vm->boot.mode == BOOT_FIRMWARE) {
		r = add_acpi_tables(vm);
		if (r < 0)
			return r;
	}
	if (vm_register_pio(vm, FW_CFG_PORT_SEL, 2, &ctl_ops, s) < 0 ||
	    vm_register_pio(vm, FW_CFG_PORT_DMA, 8, &dma_ops, s) < 0) {
		log_error("fw_cfg: ports 0x%x/0x%x already taken", FW_CFG_PORT_SEL,
			  FW_CFG_PORT_DMA);
		return -EBUSY;
	}
	vmstate_register(&fw_cfg_vmstate, s, sizeof(*s), 0);
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_PLATFORM, fw_cfg_vm_init);
