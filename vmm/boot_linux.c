/* Linux bzImage loader (Documentation/arch/x86/boot.rst, protocol 2.06 and
 * later): protected-mode kernel at 1 MiB or pref_address, the zero page
 * (struct boot_params) with the setup header, command line, initrd and
 * e820 map, then the 64-bit entry (startup_64, identity page tables) when
 * the kernel has one, else the 32-bit entry. The real-mode setup code is
 * never run. */
#include <stddef.h>
#include <string.h>
#include "vmm/boot_linux.h"
#include "vmm/boot_priv.h"
#include "vmm/vm.h"

_Static_assert(offsetof(struct linux_boot_params, hdr) == 0x1f1, "hdr offset");
_Static_assert(offsetof(struct linux_boot_params, hdr.header) == 0x202, "header offset");
_Static_assert(offsetof(struct linux_boot_params, hdr.cmdline_size) == 0x238, "cmdline_size");
_Static_assert(offsetof(struct linux_boot_params, hdr.pref_address) == 0x258, "pref_address");
_Static_assert(offsetof(struct linux_boot_params, hdr.kernel_info_offset) == 0x268, "hdr end");
_Static_assert(offsetof(struct linux_boot_params, acpi_rsdp_addr) == 0x070, "rsdp");
_Static_assert(offsetof(struct linux_boot_params, e820_entries) == 0x1e8, "e820_entries");
_Static_assert(offsetof(struct linux_boot_params, e820_table) == 0x2d0, "e820_table");
_Static_assert(sizeof(struct linux_boot_params) == 4096, "zero page size");

#define LINUX_HDR_END_MAX 0x290		/* setup header area of boot_params */
#define LINUX_MIN_VERSION 0x0206
#define LINUX_LOAD_ADDR   0x100000ULL
#define LINUX_HEAP_END    0xe000	/* as boot.rst's example loader */
#define LINUX_INITRD_MAX_DEFAULT 0x37ffffffULL

struct linux_image {
	struct linux_setup_header hdr;	/* as in the file */
	size_t hdr_end;			/* end offset of the header to copy */
	uint64_t setup_size;		/* real-mode part, skipped */
	uint64_t kernel_size;		/* protected-mode part */
	uint64_t init_size;		/* memory the kernel needs at its load address */
	uint64_t load_addr;
};

static bool linux_is_bzimage(const uint8_t *head, size_t len)
{
	return len >= 0x206 && !memcmp(head + 0x202, "HdrS", 4);
}

static int linux_parse(struct boot_ctx *c, const uint8_t *head, size_t len,
		       struct linux_image *k)
{
	const char *path = c->kernel.path;
	struct linux_setup_header *h = &k->hdr;
	unsigned sects;

	memset(k, 0, sizeof(*k));
	if (len < 0x1f1 + sizeof(*h)) {
		boot_error(c, path, "truncated: bzImage setup header needs %zu bytes, file has %zu",
			   0x1f1 + sizeof(*h), len);
		return -1;
	}
	memcpy(h, head + 0x1f1, sizeof(*h));
	if (h->version < LINUX_MIN_VERSION) {
		boot_error(c, path, "Linux boot protocol %u.%02u is too old (2.06 or later, "
			   "Linux 2.6.22+, needed)", h->version >> 8, h->version & 0xff);
		return -1;
	}
	if (!(h->loadflags & LINUX_LOADED_HIGH)) {
		boot_error(c, path, "zImage (kernel loaded low) is not supported; use a bzImage");
		return -1;
	}
	k->hdr_end = 0x202 + (size_t)head[0x201];
	if (k->hdr_end > LINUX_HDR_END_MAX)
		k->hdr_end = LINUX_HDR_END_MAX;
	sects = h->setup_sects ? h->setup_sects : 4;
	k->setup_size = (sects + 1ULL) * 512;
	if (k->setup_size >= c->kernel.size) {
		boot_error(c, path, "truncated: setup_sects %u (%llu bytes of setup) leaves no "
			   "protected-mode kernel in a %llu byte file", h->setup_sects,
			   (unsigned long long)k->setup_size, (unsigned long long)c->kernel.size);
		return -1;
	}
	k->kernel_size = c->kernel.size - k->setup_size;
	k->init_size = k->kernel_size;
	if (h->version >= 0x020a && h->init_size > k->init_size)
		k->init_size = h->init_size;
	return 0;
}

/* 1 MiB, or pref_address for a relocatable kernel when it fits. */
static int linux_choose_load_addr(struct boot_ctx *c, struct linux_image *k)
{
	const struct linux_setup_header *h = &k->hdr;
	uint64_t pref = h->pref_address;

	if (h->version >= 0x020a && h->relocatable_kernel && pref >= BOOT_AREA_END &&
	    pref % BOOT_PAGE_SIZE == 0 && pref + k->init_size > pref &&
	    boot_range_is_ram(c->mem, pref, k->init_size)) {
		k->load_addr = pref;
		return 0;
	}
	k->load_addr = LINUX_LOAD_ADDR;
	return boot_check_region(c, k->load_addr, k->init_size,
				 "kernel (with its init_size)");
}

static int linux_set_cmdline(struct boot_ctx *c, const struct linux_image *k,
			     struct linux_boot_params *bp)
{
	size_t len = strlen(c->cmdline);
	uint64_t gpa;

	if (len > k->hdr.cmdline_size) {
		boot_error(c, c->kernel.path, "command line is %zu bytes, the kernel accepts "
			   "at most %u", len, k->hdr.cmdline_size);
		return -1;
	}
	if (boot_put_string(c, c->cmdline, &gpa) < 0)
		return -1;
	bp->hdr.cmd_line_ptr = (uint32_t)gpa;
	return 0;
}

static int linux_set_initrd(struct boot_ctx *c, const struct linux_image *k,
			    struct linux_boot_params *bp)
{
	uint64_t max = LINUX_INITRD_MAX_DEFAULT + 1, min, gpa, size;
	uint64_t pref = k->hdr.version >= 0x020a ? k->hdr.pref_address : 0;

	if (!c->initrd)
		return 0;
	if (k->hdr.version >= 0x0203)
		max = (uint64_t)k->hdr.initrd_addr_max + 1;
	/* Above the kernel and the area it decompresses into. */
	min = (k->load_addr > pref ? k->load_addr : pref) + k->init_size;
	if (boot_load_initrd(c, c->initrd, min, max, true, &gpa, &size) < 0)
		return -1;
	if (size > UINT32_MAX) {
		boot_error(c, c->initrd, "initrd larger than 4 GiB");
		return -1;
	}
	bp->hdr.ramdisk_image = (uint32_t)gpa;
	bp->hdr.ramdisk_size = (uint32_t)size;
	return 0;
}

static void linux_set_e820(const struct guest_memory *m, struct linux_boot_params *bp)
{
	unsigned i, n = m->n_e820 < E820_MAX ? m->n_e820 : E820_MAX;

	if (n > LINUX_E820_MAX)
		n = LINUX_E820_MAX;
	for (i = 0; i < n; i++) {
		bp->e820_table[i].addr = m->e820[i].addr;
		bp->e820_table[i].size = m->e820[i].size;
		bp->e820_table[i].type = m->e820[i].type;
	}
	bp->e820_entries = (uint8_t)n;
}

static int linux_set_entry(struct boot_ctx *c, const struct linux_image *k)
{
	struct boot_state *b = &c->vm->boot;
	bool lm = k->hdr.version >= 0x020c && (k->hdr.xloadflags & LINUX_XLF_KERNEL_64);

	if (boot_write_gdt(c, lm) < 0)
		return -1;
	if (lm) {
		if (boot_write_page_tables(c) < 0)
			return -1;
		b->mode = BOOT_LONG_64;
		b->rip = k->load_addr + 0x200;		/* startup_64 */
	} else {
		b->mode = BOOT_PROTECTED_32;
		b->rip = k->load_addr;			/* startup_32 */
	}
	b->rsi = BOOT_INFO_ADDR;
	return 0;
}

int boot_linux_load(struct boot_ctx *c, const uint8_t *head, size_t head_len)
{
	static struct linux_boot_params bp;	/* 4 KiB: keep it off the stack */
	struct linux_image k;

	if (!linux_is_bzimage(head, head_len))
		return BOOT_NOT_MINE;
	if (linux_parse(c, head, head_len, &k) < 0 || linux_choose_load_addr(c, &k) < 0)
		return -1;
	memset(&bp, 0, sizeof(bp));
	memcpy((uint8_t *)&bp + 0x1f1, head + 0x1f1, k.hdr_end - 0x1f1);
	bp.hdr.type_of_loader = 0xff;
	bp.hdr.loadflags = (bp.hdr.loadflags & ~LINUX_KEEP_SEGMENTS) | LINUX_CAN_USE_HEAP;
	bp.hdr.heap_end_ptr = LINUX_HEAP_END - 0x200;
	bp.hdr.code32_start = (uint32_t)k.load_addr;
	bp.hdr.ramdisk_image = 0;
	bp.hdr.ramdisk_size = 0;
	if (linux_set_cmdline(c, &k, &bp) < 0 || linux_set_initrd(c, &k, &bp) < 0)
		return -1;
	linux_set_e820(c->mem, &bp);
	if (k.hdr.version >= 0x020e)
		bp.acpi_rsdp_addr = boot_find_rsdp(c->mem);
	if (boot_file_load(c, &c->kernel, k.setup_size, k.kernel_size, k.load_addr,
			   "protected-mode kernel") < 0)
		return -1;
	if (guest_write(c->mem, BOOT_INFO_ADDR, &bp, sizeof(bp)) < 0) {
		boot_error(c, c->kernel.path, "guest RAM too small for the zero page");
		return -1;
	}
	return linux_set_entry(c, &k);
}
