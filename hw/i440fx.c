/* i440FX host bridge (00:00.0): creates PCI bus 0, decodes the PAM
 * registers into KVM memory slots for 0xC0000-0xFFFFF, and shows the
 * firmware image read-only below 4 GiB when booting through the BIOS. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hw/bios.h"
#include "hw/i440fx.h"
#include "hw/pci.h"
#include "vmm/log.h"
#include "vmm/platform.h"
#include "vmm/vm.h"

#define I440FX_VENDOR	0x8086
#define I440FX_DEVICE	0x1237
#define I440FX_MAX_SLOTS PAM_SEGMENTS

/* --- pure PAM decoding -------------------------------------------------- */

void pam_segment(unsigned i, uint32_t *start, uint32_t *size, unsigned *reg, unsigned *shift)
{
	if (i >= PAM_SEGMENTS - 1) {
		/* PAM0 high nibble: the whole F segment. */
		*start = 0xf0000;
		*size = 0x10000;
		*reg = 0;
		*shift = 4;
		return;
	}
	*start = PAM_AREA_START + i * 0x4000;
	*size = 0x4000;
	*reg = 1 + i / 2;
	*shift = (i & 1) * 4;
}

enum pam_mode pam_segment_mode(const uint8_t pam[I440FX_PAM_REGS], unsigned i)
{
	uint32_t start, size;
	unsigned reg, shift;

	pam_segment(i, &start, &size, &reg, &shift);
	return (pam[reg] >> shift) & 3;
}

static enum pam_map segment_kind(enum pam_mode mode, uint32_t start, uint32_t size,
				 uint32_t rom_size)
{
	uint32_t rom_start = PAM_AREA_END - (rom_size > PAM_ROM_WINDOW ? PAM_ROM_WINDOW : rom_size);

	switch (mode) {
	case PAM_READ_WRITE:
	case PAM_WRITE_ONLY:	/* reads would hit ROM: approximated as RAM */
		return PAM_MAP_RAM_RW;
	case PAM_READ_ONLY:
		return PAM_MAP_RAM_RO;
	default:
		return rom_size && start >= rom_start && start + size <= PAM_AREA_END ?
		       PAM_MAP_ROM : PAM_MAP_NONE;
	}
}

unsigned pam_compute_map(const uint8_t pam[I440FX_PAM_REGS], uint32_t rom_size,
			 struct pam_range *out)
{
	unsigned n = 0;

	for (unsigned i = 0; i < PAM_SEGMENTS; i++) {
		uint32_t start, size;
		unsigned reg, shift;
		enum pam_map kind;

		pam_segment(i, &start, &size, &reg, &shift);
		kind = segment_kind((pam[reg] >> shift) & 3, start, size, rom_size);
		if (n && out[n - 1].kind == kind && out[n - 1].start + out[n - 1].size == start) {
			out[n - 1].size += size;
			continue;
		}
		out[n++] = (struct pam_range){ .start = start, .size = size, .kind = kind };
	}
	return n;
}

/* --- the device --------------------------------------------------------- */

struct i440fx {
	struct pci_device dev;
	struct vm *vm;
	bool firmware;			/* PAM decoding active (BIOS boot) */
	struct bios_image bios;
	uint8_t mapped_pam[I440FX_PAM_REGS];
	bool pam_valid;			/* mapped_pam describes the slots */
	int slots[I440FX_MAX_SLOTS];
	unsigned nslots;
};

static void pam_unmap_all(struct i440fx *s)
{
	for (unsigned i = 0; i < s->nslots; i++)
		vm_unmap_memory(s->vm, s->slots[i]);
	s->nslots = 0;
}

static void *range_hva(struct i440fx *s, const struct pam_range *r)
{
	uint32_t rom_off;

	if (r->kind != PAM_MAP_ROM)
		return s->vm->mem.host + r->start;
	rom_off = s->bios.size - (PAM_AREA_END - r->start);
	return s->bios.data + rom_off;
}

static void pam_map_range(struct i440fx *s, const struct pam_range *r)
{
	int slot;

	if (r->kind == PAM_MAP_NONE)
		return;
	slot = vm_map_memory(s->vm, r->start, r->size, range_hva(s, r),
			     r->kind != PAM_MAP_RAM_RW);
	if (slot < 0) {
		log_error("i440fx: cannot map 0x%x+0x%x: %s", r->start, r->size,
			  strerror(-slot));
		return;
	}
	s->slots[s->nslots++] = slot;
}

/* Re-map 0xC0000-0xFFFFF after a PAM change (firmware boot only). */
static void pam_update(struct i440fx *s)
{
	const uint8_t *pam = &s->dev.config[I440FX_PAM0];
	struct pam_range map[PAM_SEGMENTS];
	unsigned n;

	if (s->pam_valid && !memcmp(s->mapped_pam, pam, I440FX_PAM_REGS))
		return;
	for (unsigned i = 0; i < PAM_SEGMENTS; i++)
		if (pam_segment_mode(pam, i) == PAM_WRITE_ONLY)
			log_guest(LOG_UNIMP, "i440fx: PAM write-only mode treated as RAM");
	n = pam_compute_map(pam, s->bios.size, map);
	pam_unmap_all(s);
	for (unsigned i = 0; i < n; i++)
		pam_map_range(s, &map[i]);
	memcpy(s->mapped_pam, pam, I440FX_PAM_REGS);
	s->pam_valid = true;
}

static void i440fx_config_write(struct pci_device *d, unsigned off, unsigned size,
				uint32_t value)
{
	struct i440fx *s = d->opaque;

	if (s->firmware && off < I440FX_PAM0 + I440FX_PAM_REGS && off + size > I440FX_PAM0)
		pam_update(s);
}

static void i440fx_reset(struct pci_device *d)
{
	struct i440fx *s = d->opaque;

	/* The ROM slots are read-only: the image needs no reload. */
	if (s->firmware)
		pam_update(s);
}

static void i440fx_post_load(struct pci_device *d)
{
	struct i440fx *s = d->opaque;

	if (s->firmware) {
		s->pam_valid = false;
		pam_update(s);
	}
}

static void i440fx_setup_config(struct i440fx *s)
{
	struct pci_device *d = &s->dev;

	pci_device_init(d, "i440fx", I440FX_VENDOR, I440FX_DEVICE, 0x02, 0x060000);
	/* Chipset registers are plain storage, like on QEMU's model. */
	memset(d->wmask + PCI_CONFIG_HEADER_END, 0xff,
	       PCI_CONFIG_SIZE - PCI_CONFIG_HEADER_END);
	d->wmask[I440FX_PAM0] = 0x30;
	for (unsigned i = 1; i < I440FX_PAM_REGS; i++)
		d->wmask[I440FX_PAM0 + i] = 0x33;
	d->config[I440FX_SMRAM] = 0x02;
	d->wmask[I440FX_SMRAM] = 0x78;
	d->config_write = i440fx_config_write;
	d->reset = i440fx_reset;
	d->post_load = i440fx_post_load;
	d->opaque = s;
}

/* Writes to ROM (read-only slots) and reads of unbacked legacy segments
 * exit to us: discard and float. */
static uint64_t rom_read(void *opaque, uint64_t off, unsigned size)
{
	return ~0ull;
}

static void rom_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
}

static const struct io_ops rom_ops = { .read = rom_read, .write = rom_write };

static int map_direct_boot_area(struct i440fx *s)
{
	int slot = vm_map_memory(s->vm, PAM_AREA_START, PAM_AREA_END - PAM_AREA_START,
				 s->vm->mem.host + PAM_AREA_START, false);

	if (slot < 0) {
		log_error("i440fx: cannot map 0x%x-0x%x: %s", PAM_AREA_START,
			  PAM_AREA_END - 1, strerror(-slot));
		return slot;
	}
	s->slots[s->nslots++] = slot;
	return 0;
}

static int setup_firmware(struct i440fx *s)
{
	uint64_t base;
	char err[320];
	int r;

	/* A missing or malformed -bios is a startup configuration error. */
	if (bios_load(s->vm->cfg->bios, &s->bios, err, sizeof(err)) < 0)
		die("%s", err);
	base = 0x100000000ull - s->bios.size;
	r = vm_map_memory(s->vm, base, s->bios.size, s->bios.data, true);
	if (r < 0) {
		log_error("cannot map BIOS at 0x%llx: %s", (unsigned long long)base,
			  strerror(-r));
		return r;
	}
	if (vm_register_mmio(s->vm, base, s->bios.size, &rom_ops, s) < 0 ||
	    vm_register_mmio(s->vm, PAM_AREA_START, PAM_AREA_END - PAM_AREA_START,
			     &rom_ops, s) < 0)
		log_warn("i440fx: ROM write sink overlaps another region");
	s->vm->boot.mode = BOOT_FIRMWARE;
	pam_update(s);
	return 0;
}

static int i440fx_init(struct vm *vm)
{
	struct i440fx *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->vm = vm;
	s->firmware = !vm->cfg->kernel && vm->boot.mode == BOOT_FIRMWARE;
	if (!pci_bus_create(vm)) {
		log_error("i440fx: cannot create PCI bus");
		return -EBUSY;
	}
	i440fx_setup_config(s);
	r = s->firmware ? setup_firmware(s) : map_direct_boot_area(s);
	if (r < 0)
		return r;
	return pci_register_device(vm, &s->dev, 0, 0);
}

DEVICE_INIT(DEVICE_LEVEL_BUS, i440fx_init);
