/* PVH direct boot (Xen's x86 HVM direct boot ABI, as QEMU, Firecracker and
 * Cloud Hypervisor implement it): an ELF whose XEN_ELFNOTE_PHYS32_ENTRY
 * note gives a 32-bit physical entry point; PT_LOAD segments go to their
 * physical addresses and %ebx points to struct hvm_start_info with the
 * command line, the initrd as module 0, the RSDP and the memory map. */
#include <string.h>
#include "vmm/boot_priv.h"
#include "vmm/boot_pvh.h"
#include "vmm/vm.h"

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info size");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry size");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry size");

#define PVH_INFO_MODLIST_OFF 0x40
#define PVH_INFO_MEMMAP_OFF  0x80

_Static_assert(PVH_INFO_MODLIST_OFF >= sizeof(struct hvm_start_info), "layout");
_Static_assert(PVH_INFO_MEMMAP_OFF >= PVH_INFO_MODLIST_OFF + sizeof(struct hvm_modlist_entry),
	       "layout");
_Static_assert(PVH_INFO_MEMMAP_OFF + E820_MAX * sizeof(struct hvm_memmap_table_entry) <=
	       BOOT_INFO_SIZE, "layout");

/* The note's entry: 4 bytes (Linux, .long) or 8 bytes, below 4 GiB. */
static int pvh_find_entry(struct boot_ctx *c, const struct elf_image *img, uint64_t *entry)
{
	uint8_t desc[8];
	size_t len = 0;
	int r = elf_find_note(c, img, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, desc, sizeof(desc), &len);
	uint32_t e32;

	if (r <= 0)
		return r;
	if (len == 4) {
		memcpy(&e32, desc, 4);
		*entry = e32;
	} else if (len == 8) {
		memcpy(entry, desc, 8);
	} else {
		boot_error(c, c->kernel.path, "PVH entry note has %zu bytes (4 or 8 expected)",
			   len);
		return -1;
	}
	if (*entry > UINT32_MAX) {
		boot_error(c, c->kernel.path, "PVH entry 0x%llx is above 4 GiB",
			   (unsigned long long)*entry);
		return -1;
	}
	return 1;
}

static void pvh_fill_memmap(const struct guest_memory *m, struct hvm_start_info *si,
			    uint8_t *info)
{
	struct hvm_memmap_table_entry *map = (void *)(info + PVH_INFO_MEMMAP_OFF);
	unsigned i, n = m->n_e820 < E820_MAX ? m->n_e820 : E820_MAX;

	for (i = 0; i < n; i++)
		map[i] = (struct hvm_memmap_table_entry){
			.addr = m->e820[i].addr, .size = m->e820[i].size,
			.type = m->e820[i].type,
		};
	si->memmap_paddr = BOOT_INFO_ADDR + PVH_INFO_MEMMAP_OFF;
	si->memmap_entries = n;
}

static int pvh_fill_initrd(struct boot_ctx *c, uint64_t kernel_end, struct hvm_start_info *si,
			   uint8_t *info)
{
	struct hvm_modlist_entry *mod = (void *)(info + PVH_INFO_MODLIST_OFF);
	uint64_t gpa, size;

	if (!c->initrd)
		return 0;
	if (boot_load_initrd(c, c->initrd, kernel_end, HIGH_RAM_START, true, &gpa, &size) < 0)
		return -1;
	*mod = (struct hvm_modlist_entry){ .paddr = gpa, .size = size };
	si->nr_modules = 1;
	si->modlist_paddr = BOOT_INFO_ADDR + PVH_INFO_MODLIST_OFF;
	return 0;
}

int boot_pvh_load(struct boot_ctx *c)
{
	static struct elf_image img;
	static uint8_t info[BOOT_INFO_SIZE];
	struct hvm_start_info *si = (void *)info;
	struct boot_state *b = &c->vm->boot;
	uint64_t entry, lo, hi, cmdline;
	int r = elf_parse(c, &img);

	if (r != 0)
		return r;
	r = pvh_find_entry(c, &img, &entry);
	if (r <= 0)
		return r < 0 ? -1 : BOOT_NOT_MINE;
	if (!elf_paddr_is_loaded(&img, entry, 1)) {
		boot_error(c, c->kernel.path, "PVH entry 0x%llx is not inside a loaded segment",
			   (unsigned long long)entry);
		return -1;
	}
	if (elf_load(c, &img, &lo, &hi) < 0)
		return -1;
	memset(info, 0, sizeof(info));
	si->magic = HVM_START_MAGIC;
	si->version = 1;
	if (boot_put_string(c, c->cmdline, &cmdline) < 0 || pvh_fill_initrd(c, hi, si, info) < 0)
		return -1;
	si->cmdline_paddr = cmdline;
	si->rsdp_paddr = boot_find_rsdp(c->mem);
	pvh_fill_memmap(c->mem, si, info);
	if (guest_write(c->mem, BOOT_INFO_ADDR, info, sizeof(info)) < 0) {
		boot_error(c, c->kernel.path, "guest RAM too small for the PVH start info");
		return -1;
	}
	if (boot_write_gdt(c, false) < 0)
		return -1;
	b->mode = BOOT_PROTECTED_32;
	b->rip = entry;
	b->rbx = BOOT_INFO_ADDR;
	return 0;
}
