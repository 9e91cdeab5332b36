/* Multiboot v1 loader: finds the header in the first 8 KiB, refuses
 * requirements it cannot meet, loads the kernel by the header's address
 * fields (flag 16) or as an ELF32, loads the -initrd modules (QEMU syntax:
 * "file args,file args", ",," for a literal comma) page aligned after the
 * kernel and writes the information block (memory, mmap from e820,
 * command line, modules, loader name). */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vmm/boot_multiboot.h"
#include "vmm/boot_priv.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define MB_INFO_MMAP_OFF 0x100
#define MB_INFO_MODS_OFF 0x300
#define MB_SUPPORTED_REQUIRED (MB_HDR_PAGE_ALIGN | MB_HDR_MEMORY_INFO | MB_HDR_VIDEO_MODE)

_Static_assert(sizeof(struct multiboot_info) <= MB_INFO_MMAP_OFF, "layout");
_Static_assert(MB_INFO_MMAP_OFF + E820_MAX * sizeof(struct multiboot_mmap_entry) <=
	       MB_INFO_MODS_OFF, "layout");
_Static_assert(MB_INFO_MODS_OFF + MB_MAX_MODULES * sizeof(struct multiboot_mod) <=
	       BOOT_INFO_SIZE, "layout");

/* 1 found (*hdr, *off), 0 none, -1 only headers with a bad checksum. */
static int mb_find_header(struct boot_ctx *c, const uint8_t *head, size_t len,
			  struct multiboot_header *hdr, uint64_t *off)
{
	bool bad_sum = false;
	size_t o;

	for (o = 0; o + 12 <= len; o += 4) {
		uint32_t w[3];

		memcpy(w, head + o, sizeof(w));
		if (w[0] != MULTIBOOT_HEADER_MAGIC)
			continue;
		if ((uint32_t)(w[0] + w[1] + w[2]) != 0) {
			if (!bad_sum)
				boot_error(c, c->kernel.path, "multiboot header at offset "
					   "0x%zx has a bad checksum", o);
			bad_sum = true;
			continue;
		}
		memset(hdr, 0, sizeof(*hdr));
		if ((w[1] & MB_HDR_AOUT_KLUDGE) && o + sizeof(*hdr) > len) {
			boot_error(c, c->kernel.path, "truncated: multiboot header at offset 0x%zx "
				   "ends past the first %u bytes", o, MULTIBOOT_SEARCH);
			return -1;
		}
		memcpy(hdr, head + o, (w[1] & MB_HDR_AOUT_KLUDGE) ? sizeof(*hdr) : 12);
		*off = o;
		return 1;
	}
	return bad_sum ? -1 : 0;
}

static int mb_check_flags(struct boot_ctx *c, uint32_t flags)
{
	uint32_t unknown = flags & MB_HDR_REQUIRED_MASK & ~MB_SUPPORTED_REQUIRED;

	if (unknown) {
		boot_error(c, c->kernel.path, "multiboot header requires unsupported features "
			   "(flags 0x%x, unknown required bits 0x%x)", flags, unknown);
		return -1;
	}
	if (flags & MB_HDR_VIDEO_MODE)
		log_warn("%s: multiboot video mode request ignored (no framebuffer)",
			 c->kernel.path);
	return 0;
}

/* Flag 16: load [load_addr, load_end_addr) from the file, zero to bss_end_addr. */
static int mb_load_aout(struct boot_ctx *c, const struct multiboot_header *h, uint64_t hdr_off,
			uint64_t *entry, uint64_t *kernel_end)
{
	const char *path = c->kernel.path;
	uint64_t delta, file_off, load_len, mem_end;

	if (h->header_addr < h->load_addr) {
		boot_error(c, path, "multiboot header_addr 0x%x is below load_addr 0x%x",
			   h->header_addr, h->load_addr);
		return -1;
	}
	delta = h->header_addr - h->load_addr;
	if (delta > hdr_off) {
		boot_error(c, path, "multiboot load_addr 0x%x is before the start of the file",
			   h->load_addr);
		return -1;
	}
	file_off = hdr_off - delta;
	if (!h->load_end_addr) {
		load_len = c->kernel.size - file_off;
	} else if (h->load_end_addr <= h->load_addr) {
		boot_error(c, path, "multiboot load_end_addr 0x%x is not above load_addr 0x%x",
			   h->load_end_addr, h->load_addr);
		return -1;
	} else {
		load_len = (uint64_t)h->load_end_addr - h->load_addr;
	}
	if (load_len > c->kernel.size - file_off) {
		boot_error(c, path, "truncated: multiboot load range 0x%x+0x%llx needs %llu bytes "
			   "of file from offset 0x%llx", h->load_addr, (unsigned long long)load_len,
			   (unsigned long long)load_len, (unsigned long long)file_off);
		return -1;
	}
	mem_end = h->load_addr + load_len;
	if (h->bss_end_addr) {
		if (h->bss_end_addr < mem_end) {
			boot_error(c, path, "multiboot bss_end_addr 0x%x is below the loaded end "
				   "0x%llx", h->bss_end_addr, (unsigned long long)mem_end);
			return -1;
		}
		mem_end = h->bss_end_addr;
	}
	if (h->entry_addr < h->load_addr || h->entry_addr >= h->load_addr + load_len) {
		boot_error(c, path, "multiboot entry_addr 0x%x is outside the loaded image",
			   h->entry_addr);
		return -1;
	}
	if (boot_check_region(c, h->load_addr, mem_end - h->load_addr, "multiboot image") < 0 ||
	    boot_file_load(c, &c->kernel, file_off, load_len, h->load_addr, "kernel image") < 0 ||
	    boot_zero(c, h->load_addr + load_len, mem_end - h->load_addr - load_len) < 0)
		return -1;
	*entry = h->entry_addr;
	*kernel_end = mem_end;
	return 0;
}

/* A virtual e_entry (higher-half kernels) is translated by its segment. */
static uint64_t mb_elf_entry(const struct elf_image *img)
{
	unsigned i;

	if (elf_paddr_is_loaded(img, img->entry, 1))
		return img->entry;
	for (i = 0; i < img->nphdr; i++) {
		const struct elf_segment *s = &img->ph[i];

		if (s->type == PT_LOAD && img->entry >= s->vaddr &&
		    img->entry - s->vaddr < s->filesz)
			return s->paddr + (img->entry - s->vaddr);
	}
	return img->entry;
}

static int mb_load_elf(struct boot_ctx *c, uint64_t *entry, uint64_t *kernel_end)
{
	static struct elf_image img;
	uint64_t lo;
	int r = elf_parse(c, &img);

	if (r == BOOT_NOT_MINE) {
		boot_error(c, c->kernel.path, "multiboot kernel is not ELF and its header has no "
			   "address fields (flag 16)");
		return -1;
	}
	if (r < 0)
		return -1;
	if (img.is64) {
		boot_error(c, c->kernel.path, "multiboot kernel is a 64-bit ELF: use a 32-bit ELF "
			   "or the header address fields (flag 16)");
		return -1;
	}
	*entry = mb_elf_entry(&img);
	if (!elf_paddr_is_loaded(&img, *entry, 1)) {
		boot_error(c, c->kernel.path, "ELF entry 0x%llx is not inside a loaded segment",
			   (unsigned long long)img.entry);
		return -1;
	}
	return elf_load(c, &img, &lo, kernel_end);
}

static void mb_fill_memory(const struct guest_memory *m, struct multiboot_info *mbi,
			   uint8_t *info)
{
	struct multiboot_mmap_entry *map = (void *)(info + MB_INFO_MMAP_OFF);
	unsigned i, n = m->n_e820 < E820_MAX ? m->n_e820 : E820_MAX;

	for (i = 0; i < n; i++) {
		const struct e820_entry *e = &m->e820[i];
		uint64_t end = e->addr + e->size;

		map[i] = (struct multiboot_mmap_entry){
			.size = sizeof(map[i]) - 4, .addr = e->addr, .len = e->size,
			.type = e->type,
		};
		if (e->type != E820_RAM)
			continue;
		if (e->addr == 0)
			mbi->mem_lower = (uint32_t)((end < 640 * 1024 ? end : 640 * 1024) / 1024);
		if (e->addr <= MiB && end > MiB)
			mbi->mem_upper = (uint32_t)(((end < HIGH_RAM_START ? end : HIGH_RAM_START)
						     - MiB) / 1024);
	}
	mbi->mmap_addr = BOOT_INFO_ADDR + MB_INFO_MMAP_OFF;
	mbi->mmap_length = n * sizeof(*map);
	mbi->flags |= MB_INFO_MEMORY | MB_INFO_MEM_MAP;
}

/* Next module spec of "a args,b,,c" into out (",," unescaped); returns the
 * rest of the list or NULL at the end. */
static const char *mb_next_module(const char *list, char *out, size_t outlen)
{
	size_t n = 0;

	while (*list) {
		if (*list == ',' && list[1] != ',')
			break;
		if (*list == ',')
			list++;
		if (n + 1 < outlen)
			out[n++] = *list;
		list++;
	}
	out[n] = 0;
	return *list ? list + 1 : NULL;
}

static int mb_load_module(struct boot_ctx *c, const char *spec, uint64_t *next,
			  struct multiboot_mod *mod)
{
	char path[4096];
	size_t plen = strcspn(spec, " ");
	uint64_t gpa, size, str;

	if (!plen || plen >= sizeof(path)) {
		boot_error(c, c->kernel.path, "bad multiboot module \"%s\" in -initrd", spec);
		return -1;
	}
	memcpy(path, spec, plen);
	path[plen] = 0;
	if (boot_load_initrd(c, path, *next, HIGH_RAM_START, false, &gpa, &size) < 0 ||
	    boot_put_string(c, spec, &str) < 0)
		return -1;
	*mod = (struct multiboot_mod){
		.mod_start = (uint32_t)gpa, .mod_end = (uint32_t)(gpa + size),
		.string = (uint32_t)str,
	};
	*next = gpa + size;
	return 0;
}

static int mb_fill_modules(struct boot_ctx *c, uint64_t kernel_end, struct multiboot_info *mbi,
			   uint8_t *info)
{
	struct multiboot_mod *mods = (void *)(info + MB_INFO_MODS_OFF);
	const char *list = c->initrd;
	uint64_t next = kernel_end;
	char spec[4096];

	mbi->flags |= MB_INFO_MODS;
	mbi->mods_addr = BOOT_INFO_ADDR + MB_INFO_MODS_OFF;
	while (list && *list) {
		if (mbi->mods_count >= MB_MAX_MODULES) {
			boot_error(c, c->kernel.path, "more than %u multiboot modules in -initrd",
				   MB_MAX_MODULES);
			return -1;
		}
		list = mb_next_module(list, spec, sizeof(spec));
		if (mb_load_module(c, spec, &next, &mods[mbi->mods_count]) < 0)
			return -1;
		mbi->mods_count++;
	}
	return 0;
}

/* GRUB and QEMU pass "kernel-path args" as the command line. */
static int mb_fill_strings(struct boot_ctx *c, struct multiboot_info *mbi)
{
	size_t len = strlen(c->kernel.path) + strlen(c->cmdline) + 2;
	char *s = malloc(len);
	uint64_t cmdline, name;
	int r;

	if (!s) {
		boot_error(c, c->kernel.path, "out of memory");
		return -1;
	}
	snprintf(s, len, "%s%s%s", c->kernel.path, c->cmdline[0] ? " " : "", c->cmdline);
	r = boot_put_string(c, s, &cmdline);
	free(s);
	if (r < 0 || boot_put_string(c, "minikvm", &name) < 0)
		return -1;
	mbi->cmdline = (uint32_t)cmdline;
	mbi->boot_loader_name = (uint32_t)name;
	mbi->flags |= MB_INFO_CMDLINE | MB_INFO_LOADER_NAME;
	return 0;
}

int boot_multiboot_load(struct boot_ctx *c, const uint8_t *head, size_t head_len)
{
	static uint8_t info[BOOT_INFO_SIZE];
	struct multiboot_info *mbi = (void *)info;
	struct boot_state *b = &c->vm->boot;
	struct multiboot_header h;
	uint64_t hdr_off, entry, kernel_end;
	int r = mb_find_header(c, head, head_len, &h, &hdr_off);

	if (r <= 0)
		return r < 0 ? -1 : BOOT_NOT_MINE;
	if (mb_check_flags(c, h.flags) < 0)
		return -1;
	if (h.flags & MB_HDR_AOUT_KLUDGE)
		r = mb_load_aout(c, &h, hdr_off, &entry, &kernel_end);
	else
		r = mb_load_elf(c, &entry, &kernel_end);
	if (r < 0)
		return -1;
	memset(info, 0, sizeof(info));
	mb_fill_memory(c->mem, mbi, info);
	if (mb_fill_strings(c, mbi) < 0 || mb_fill_modules(c, kernel_end, mbi, info) < 0)
		return -1;
	if (guest_write(c->mem, BOOT_INFO_ADDR, info, sizeof(info)) < 0) {
		boot_error(c, c->kernel.path, "guest RAM too small for the multiboot information");
		return -1;
	}
	if (boot_write_gdt(c, false) < 0)
		return -1;
	b->mode = BOOT_PROTECTED_32;
	b->rip = entry;
	b->rax = MULTIBOOT_BOOTLOADER_MAGIC;
	b->rbx = BOOT_INFO_ADDR;
	return 0;
}
