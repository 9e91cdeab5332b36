/* Unit tests of the direct kernel boot loaders (vmm/boot*.c): synthetic
 * bzImage, PVH ELF32/ELF64 and Multiboot kernels loaded into a fake
 * guest RAM, checking the entry state and every boot structure, plus
 * malformed images that must each be refused with a clear message, a
 * mutation pass that must never crash, and the guest test kit if built. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vmm/boot.h"
#include "vmm/boot_linux.h"
#include "vmm/boot_multiboot.h"
#include "vmm/boot_priv.h"
#include "vmm/boot_pvh.h"
#include "vmm/vm.h"

#define RAM_SIZE (64 * MiB)

struct fixture {
	struct vm vm;
	struct vm_config cfg;
	char err[512];
	char kernel[64], initrd[64], initrd2[64];
};

static struct fixture *fx_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	memory_layout(&f->vm.mem, RAM_SIZE);
	e820_add(&f->vm.mem, 0xe0000, 0x20000, E820_RESERVED);
	f->vm.mem.host = calloc(1, RAM_SIZE);
	assert_non_null(f->vm.mem.host);
	f->vm.cfg = &f->cfg;
	f->cfg.ram_size = RAM_SIZE;
	return f;
}

static void fx_free(struct fixture *f)
{
	if (f->kernel[0])
		unlink(f->kernel);
	if (f->initrd[0])
		unlink(f->initrd);
	if (f->initrd2[0])
		unlink(f->initrd2);
	free(f->vm.mem.host);
	free(f);
}

static void write_tmp(char *path, const void *data, size_t len)
{
	int fd;

	if (!path[0]) {
		strcpy(path, "/tmp/test_boot_XXXXXX");
		fd = mkstemp(path);
	} else {
		fd = open(path, O_WRONLY | O_TRUNC);
	}
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void set_kernel(struct fixture *f, const void *data, size_t len)
{
	write_tmp(f->kernel, data, len);
	f->cfg.kernel = f->kernel;
}

static int load(struct fixture *f)
{
	f->err[0] = 0;
	return boot_load_kernel(&f->vm, f->err, sizeof(f->err));
}

/* Expect a refusal whose message names the kernel file and says why. */
static void expect_error(struct fixture *f, const char *path, const char *what)
{
	assert_int_equal(load(f), -1);
	if (!strstr(f->err, what) || !strstr(f->err, path))
		fail_msg("error \"%s\" lacks \"%s\" or the file name", f->err, what);
	assert_int_equal(f->vm.boot.mode, BOOT_FIRMWARE);
}

static void *gpa(struct fixture *f, uint64_t a, uint64_t len)
{
	void *p = gpa_to_hva(&f->vm.mem, a, len);

	assert_non_null(p);
	return p;
}

static void make_initrd(struct fixture *f, char *path, size_t len, uint8_t seed)
{
	uint8_t *d = malloc(len);
	size_t i;

	for (i = 0; i < len; i++)
		d[i] = (uint8_t)(i * 7 + seed);
	write_tmp(path, d, len);
	free(d);
}

static bool initrd_matches(struct fixture *f, uint64_t at, size_t len, uint8_t seed)
{
	const uint8_t *p = gpa(f, at, len);
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != (uint8_t)(i * 7 + seed))
			return false;
	return true;
}

/* A fake RSDP (valid checksum) where acpi_install would put it. */
static void put_rsdp(struct fixture *f)
{
	uint8_t r[20] = "RSD PTR ";
	uint8_t sum = 0;
	unsigned i;

	for (i = 0; i < 19; i++)
		sum += r[i];
	r[8] = (uint8_t)-sum;
	memcpy(gpa(f, 0xe0000, 20), r, 20);
}

/* ---------------- bzImage ---------------- */

#define BZ_SETUP_SECTS 4
#define BZ_SETUP_SIZE ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_KERNEL_SIZE 0x3000

static size_t make_bzimage(uint8_t *img, bool is64)
{
	struct linux_setup_header h;
	size_t i;

	memset(img, 0, BZ_SETUP_SIZE + BZ_KERNEL_SIZE);
	memset(&h, 0, sizeof(h));
	h.setup_sects = BZ_SETUP_SECTS;
	h.boot_flag = 0xaa55;
	h.jump = 0x66eb;			/* header ends at 0x268 */
	memcpy(&h.header, "HdrS", 4);
	h.version = 0x020f;
	h.loadflags = LINUX_LOADED_HIGH;
	h.code32_start = 0x100000;
	h.initrd_addr_max = 0x7fffffff;
	h.kernel_alignment = 0x200000;
	h.relocatable_kernel = is64;
	h.xloadflags = is64 ? LINUX_XLF_KERNEL_64 : 0;
	h.cmdline_size = 255;
	h.pref_address = 0x1000000;
	h.init_size = 0x200000;
	memcpy(img + 0x1f1, &h, sizeof(h));
	for (i = 0; i < BZ_KERNEL_SIZE; i++)
		img[BZ_SETUP_SIZE + i] = (uint8_t)(i ^ 0x5a);
	return BZ_SETUP_SIZE + BZ_KERNEL_SIZE;
}

static void check_identity_map(struct fixture *f, uint64_t va)
{
	const uint64_t *pml4 = gpa(f, f->vm.boot.cr3, 4096);
	const uint64_t *pdpt, *pd;
	uint64_t e;

	e = pml4[(va >> 39) & 511];
	assert_true(e & 1);
	pdpt = gpa(f, e & ~0xfffULL, 4096);
	e = pdpt[(va >> 30) & 511];
	assert_true(e & 1);
	pd = gpa(f, e & ~0xfffULL, 4096);
	e = pd[(va >> 21) & 511];
	assert_true((e & 0x83) == 0x83);	/* present, writable, 2 MiB */
	assert_int_equal((e & ~0x1fffffULL) | (va & 0x1fffff), va);
}

static void test_bzimage_64(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t img[BZ_SETUP_SIZE + BZ_KERNEL_SIZE];
	size_t len = make_bzimage(img, true);
	const struct linux_boot_params *bp;
	const uint64_t *gdt;
	uint64_t rd;
	unsigned i;

	set_kernel(f, img, len);
	make_initrd(f, f->initrd, 12345, 3);
	f->cfg.initrd = f->initrd;
	f->cfg.append = "console=ttyS0 root=/dev/vda";
	put_rsdp(f);
	assert_int_equal(load(f), 0);

	assert_int_equal(f->vm.boot.mode, BOOT_LONG_64);
	assert_int_equal(f->vm.boot.rip, 0x1000000 + 0x200);	/* pref_address + startup_64 */
	assert_int_equal(f->vm.boot.rsi, BOOT_INFO_ADDR);
	assert_int_equal(f->vm.boot.rbx, 0);
	assert_int_equal(f->vm.boot.cr3, BOOT_PGTABLE_ADDR);
	assert_int_equal(f->vm.boot.gdt_base, BOOT_GDT_ADDR);
	assert_int_equal(f->vm.boot.gdt_limit, 31);
	gdt = gpa(f, BOOT_GDT_ADDR, 32);
	assert_int_equal(gdt[0], 0);
	assert_true(gdt[2] & (1ULL << 53));		/* 0x10: L bit */
	assert_false(gdt[2] & (1ULL << 54));		/* D clear in 64-bit code */
	assert_int_equal((gdt[3] >> 40) & 0x9a, 0x92);	/* 0x18: present writable data */
	assert_memory_equal(gpa(f, 0x1000000, BZ_KERNEL_SIZE), img + BZ_SETUP_SIZE,
			    BZ_KERNEL_SIZE);

	bp = gpa(f, BOOT_INFO_ADDR, sizeof(*bp));
	assert_int_equal(bp->hdr.version, 0x020f);
	assert_memory_equal(&bp->hdr.header, "HdrS", 4);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_true(bp->hdr.loadflags & LINUX_CAN_USE_HEAP);
	assert_true(bp->hdr.loadflags & LINUX_LOADED_HIGH);
	assert_int_not_equal(bp->hdr.heap_end_ptr, 0);
	assert_int_equal(bp->sentinel, 0);
	assert_string_equal(gpa(f, bp->hdr.cmd_line_ptr, 1), "console=ttyS0 root=/dev/vda");
	assert_true(bp->hdr.cmd_line_ptr >= BOOT_CMDLINE_ADDR);
	assert_int_equal(bp->acpi_rsdp_addr, 0xe0000);

	assert_int_equal(bp->e820_entries, f->vm.mem.n_e820);
	for (i = 0; i < f->vm.mem.n_e820; i++) {
		assert_int_equal(bp->e820_table[i].addr, f->vm.mem.e820[i].addr);
		assert_int_equal(bp->e820_table[i].size, f->vm.mem.e820[i].size);
		assert_int_equal(bp->e820_table[i].type, f->vm.mem.e820[i].type);
	}

	rd = bp->hdr.ramdisk_image;
	assert_int_equal(bp->hdr.ramdisk_size, 12345);
	assert_int_equal(rd % 4096, 0);
	assert_true(rd >= 0x1000000 + 0x200000);		/* above kernel + init_size */
	assert_true(rd + 12345 <= RAM_SIZE);
	assert_true(rd + 12345 > RAM_SIZE - 8192);		/* placed high */
	assert_true(initrd_matches(f, rd, 12345, 3));

	check_identity_map(f, 0);
	check_identity_map(f, 0x1000200);
	check_identity_map(f, 0xfee00000);
	check_identity_map(f, 0xffffffffULL);
	fx_free(f);
}

static void test_bzimage_32(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t img[BZ_SETUP_SIZE + BZ_KERNEL_SIZE];
	size_t len = make_bzimage(img, false);
	const struct linux_boot_params *bp;
	const uint64_t *gdt;

	set_kernel(f, img, len);
	assert_int_equal(load(f), 0);
	assert_int_equal(f->vm.boot.mode, BOOT_PROTECTED_32);
	assert_int_equal(f->vm.boot.rip, 0x100000);		/* not relocatable: 1 MiB */
	assert_int_equal(f->vm.boot.rsi, BOOT_INFO_ADDR);
	assert_int_equal(f->vm.boot.rsp, BOOT_STACK_TOP);
	gdt = gpa(f, BOOT_GDT_ADDR, 32);
	assert_false(gdt[2] & (1ULL << 53));
	assert_true(gdt[2] & (1ULL << 54));			/* D: 32-bit code */
	assert_memory_equal(gpa(f, 0x100000, BZ_KERNEL_SIZE), img + BZ_SETUP_SIZE,
			    BZ_KERNEL_SIZE);
	bp = gpa(f, BOOT_INFO_ADDR, sizeof(*bp));
	assert_int_equal(bp->hdr.ramdisk_image, 0);
	assert_int_equal(bp->hdr.ramdisk_size, 0);
	assert_string_equal(gpa(f, bp->hdr.cmd_line_ptr, 1), "");
	assert_int_equal(bp->hdr.code32_start, 0x100000);
	fx_free(f);
}

static void test_bzimage_errors(void **state)
{
	static uint8_t img[BZ_SETUP_SIZE + BZ_KERNEL_SIZE];
	struct fixture *f = fx_new();
	char longline[400];
	size_t len;

	/* Header cut short right after "HdrS". */
	len = make_bzimage(img, true);
	set_kernel(f, img, 0x210);
	expect_error(f, f->kernel, "truncated");

	/* setup_sects 255: 128 KiB of setup in a 14 KiB file. */
	img[0x1f1] = 255;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "setup_sects 255");

	/* Old protocol. */
	len = make_bzimage(img, true);
	img[0x206] = 0x04;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "too old");

	/* zImage. */
	len = make_bzimage(img, true);
	img[0x211] = 0;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "zImage");

	/* Command line longer than cmdline_size (255). */
	len = make_bzimage(img, true);
	set_kernel(f, img, len);
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	f->cfg.append = longline;
	expect_error(f, f->kernel, "at most 255");
	f->cfg.append = NULL;

	/* initrd larger than RAM (sparse). */
	strcpy(f->initrd, "/tmp/test_boot_XXXXXX");
	close(mkstemp(f->initrd));
	assert_int_equal(truncate(f->initrd, RAM_SIZE + MiB), 0);
	f->cfg.initrd = f->initrd;
	expect_error(f, f->initrd, "does not fit");

	/* initrd missing. */
	f->cfg.initrd = "/nonexistent/initrd.img";
	expect_error(f, "/nonexistent/initrd.img", "cannot open");
	fx_free(f);
}

/* ---------------- ELF builder ---------------- */

struct seg {
	uint32_t type;
	uint64_t paddr, vaddr;
	const void *data;
	size_t filesz;
	uint64_t memsz;
};

/* ehdr, phdrs, then each segment's data 16-byte aligned. */
static size_t build_elf(uint8_t *out, size_t max, bool is64, uint16_t machine, uint64_t entry,
			const struct seg *segs, unsigned n)
{
	size_t ehsz = is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	size_t phsz = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	size_t off = (ehsz + n * phsz + 15) & ~15UL;
	unsigned i;

	memset(out, 0, max);
	for (i = 0; i < n; i++) {
		assert_true(off + segs[i].filesz <= max);
		if (is64) {
			Elf64_Phdr p = {
				.p_type = segs[i].type, .p_offset = off, .p_vaddr = segs[i].vaddr,
				.p_paddr = segs[i].paddr, .p_filesz = segs[i].filesz,
				.p_memsz = segs[i].memsz, .p_align = 4,
			};
			memcpy(out + ehsz + i * phsz, &p, sizeof(p));
		} else {
			Elf32_Phdr p = {
				.p_type = segs[i].type, .p_offset = off,
				.p_vaddr = (uint32_t)segs[i].vaddr,
				.p_paddr = (uint32_t)segs[i].paddr,
				.p_filesz = segs[i].filesz, .p_memsz = segs[i].memsz,
				.p_align = 4,
			};
			memcpy(out + ehsz + i * phsz, &p, sizeof(p));
		}
		memcpy(out + off, segs[i].data, segs[i].filesz);
		off = (off + segs[i].filesz + 15) & ~15UL;
	}
	if (is64) {
		Elf64_Ehdr e = {
			.e_type = ET_EXEC, .e_machine = machine, .e_version = EV_CURRENT,
			.e_entry = entry, .e_phoff = ehsz, .e_ehsize = ehsz,
			.e_phentsize = phsz, .e_phnum = n,
		};
		memcpy(e.e_ident, ELFMAG, SELFMAG);
		e.e_ident[EI_CLASS] = ELFCLASS64;
		e.e_ident[EI_DATA] = ELFDATA2LSB;
		e.e_ident[EI_VERSION] = EV_CURRENT;
		memcpy(out, &e, sizeof(e));
	} else {
		Elf32_Ehdr e = {
			.e_type = ET_EXEC, .e_machine = machine, .e_version = EV_CURRENT,
			.e_entry = (uint32_t)entry, .e_phoff = ehsz, .e_ehsize = ehsz,
			.e_phentsize = phsz, .e_phnum = n,
		};
		memcpy(e.e_ident, ELFMAG, SELFMAG);
		e.e_ident[EI_CLASS] = ELFCLASS32;
		e.e_ident[EI_DATA] = ELFDATA2LSB;
		e.e_ident[EI_VERSION] = EV_CURRENT;
		memcpy(out, &e, sizeof(e));
	}
	return off;
}

/* A GNU note first (skipped), then Xen PHYS32_ENTRY with descsz bytes. */
static size_t make_pvh_note(uint8_t *note, uint64_t entry, uint32_t descsz)
{
	uint32_t gnu[4] = { 4, 4, 1, 0 };
	uint32_t xen[3] = { 4, descsz, XEN_ELFNOTE_PHYS32_ENTRY };

	memcpy(note, gnu, 12);
	memcpy(note + 12, "GNU", 4);
	memcpy(note + 16, &gnu[3], 4);
	memcpy(note + 20, xen, 12);
	memcpy(note + 32, "Xen", 4);
	memset(note + 36, 0, 8);
	memcpy(note + 36, &entry, descsz < 8 ? descsz : 8);
	return 36 + ((descsz + 3) & ~3u);
}

#define PVH_LOAD 0x200000ULL
#define PVH_CODE_SIZE 0x1800
#define PVH_BSS 0x3000

static size_t make_pvh(uint8_t *out, size_t max, bool is64, uint64_t paddr, uint32_t descsz)
{
	static uint8_t code[PVH_CODE_SIZE];
	uint8_t note[64];
	size_t i, nlen = make_pvh_note(note, paddr + 0x40, descsz);
	struct seg segs[2] = {
		{ PT_LOAD, paddr, 0xffffffff80000000ULL + paddr, code, sizeof(code),
		  sizeof(code) + PVH_BSS },
		{ PT_NOTE, 0, 0, note, nlen, nlen },
	};

	if (!is64)
		segs[0].vaddr = paddr;
	for (i = 0; i < sizeof(code); i++)
		code[i] = (uint8_t)(i * 13 + 1);
	return build_elf(out, max, is64, is64 ? EM_X86_64 : EM_386, 0xdeadbeef, segs, 2);
}

static void check_pvh(struct fixture *f, size_t initrd_len)
{
	const struct hvm_start_info *si;
	const struct hvm_memmap_table_entry *map;
	const struct hvm_modlist_entry *mod;
	const uint8_t *p;
	unsigned i;

	assert_int_equal(f->vm.boot.mode, BOOT_PROTECTED_32);
	assert_int_equal(f->vm.boot.rip, PVH_LOAD + 0x40);
	assert_int_equal(f->vm.boot.rbx, BOOT_INFO_ADDR);
	assert_int_equal(f->vm.boot.gdt_base, BOOT_GDT_ADDR);
	p = gpa(f, PVH_LOAD, PVH_CODE_SIZE + PVH_BSS);
	for (i = 0; i < PVH_CODE_SIZE; i++)
		if (p[i] != (uint8_t)(i * 13 + 1))
			fail_msg("segment byte %u wrong", i);
	for (; i < PVH_CODE_SIZE + PVH_BSS; i++)
		if (p[i])
			fail_msg("bss byte %u not zeroed", i);

	si = gpa(f, BOOT_INFO_ADDR, sizeof(*si));
	assert_int_equal(si->magic, 0x336ec578);
	assert_int_equal(si->version, 1);
	assert_string_equal(gpa(f, si->cmdline_paddr, 1), "earlyprintk=ttyS0 quiet");
	assert_int_equal(si->rsdp_paddr, 0xe0000);
	assert_int_equal(si->memmap_entries, f->vm.mem.n_e820);
	map = gpa(f, si->memmap_paddr, si->memmap_entries * sizeof(*map));
	for (i = 0; i < si->memmap_entries; i++) {
		assert_int_equal(map[i].addr, f->vm.mem.e820[i].addr);
		assert_int_equal(map[i].size, f->vm.mem.e820[i].size);
		assert_int_equal(map[i].type, f->vm.mem.e820[i].type);
	}
	if (!initrd_len) {
		assert_int_equal(si->nr_modules, 0);
		return;
	}
	assert_int_equal(si->nr_modules, 1);
	mod = gpa(f, si->modlist_paddr, sizeof(*mod));
	assert_int_equal(mod->size, initrd_len);
	assert_int_equal(mod->paddr % 4096, 0);
	assert_true(mod->paddr >= PVH_LOAD + PVH_CODE_SIZE + PVH_BSS);
	assert_true(mod->paddr + mod->size <= RAM_SIZE);
	assert_int_equal(mod->cmdline_paddr, 0);
	assert_true(initrd_matches(f, mod->paddr, initrd_len, 9));
}

static void test_pvh_elf64(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t img[0x4000];
	size_t len = make_pvh(img, sizeof(img), true, PVH_LOAD, 4);

	memset(f->vm.mem.host, 0xaa, 16 * MiB);		/* stale memory: bss must be zeroed */
	memset(f->vm.mem.host + 0xe0000, 0, 0x20000);
	put_rsdp(f);
	set_kernel(f, img, len);
	make_initrd(f, f->initrd, 5000, 9);
	f->cfg.initrd = f->initrd;
	f->cfg.append = "earlyprintk=ttyS0 quiet";
	assert_int_equal(load(f), 0);
	check_pvh(f, 5000);
	/* Loading again (guest reset) gives the same state. */
	assert_int_equal(load(f), 0);
	check_pvh(f, 5000);
	fx_free(f);
}

static void test_pvh_elf32(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t img[0x4000];
	size_t len = make_pvh(img, sizeof(img), false, PVH_LOAD, 8);	/* 8-byte note */

	put_rsdp(f);
	set_kernel(f, img, len);
	f->cfg.append = "earlyprintk=ttyS0 quiet";
	assert_int_equal(load(f), 0);
	check_pvh(f, 0);
	fx_free(f);
}

static void test_elf_errors(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t img[0x4000];
	size_t len;

	/* Segment beyond RAM. */
	len = make_pvh(img, sizeof(img), true, 0x10000000, 4);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "outside guest RAM");

	/* Segment over the boot structures. */
	len = make_pvh(img, sizeof(img), true, 0x8000, 4);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "boot area");

	/* Entry (8-byte note) above 4 GiB. */
	len = make_pvh(img, sizeof(img), true, 0xfffffffffffff000ULL, 8);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "above 4 GiB");

	/* Segment whose memory size wraps the address space. */
	len = make_pvh(img, sizeof(img), true, PVH_LOAD, 4);
	((Elf64_Phdr *)(img + sizeof(Elf64_Ehdr)))->p_memsz = 0xffffffffffffff00ULL;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "overflows");

	/* Program headers past the end of the file. */
	len = make_pvh(img, sizeof(img), true, PVH_LOAD, 4);
	((Elf64_Ehdr *)img)->e_phoff = 0x7fffffff;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "program headers");

	/* Segment file range past the end of the file. */
	len = make_pvh(img, sizeof(img), true, PVH_LOAD, 4);
	((Elf64_Phdr *)(img + sizeof(Elf64_Ehdr)))->p_filesz = 0x100000;
	((Elf64_Phdr *)(img + sizeof(Elf64_Ehdr)))->p_memsz = 0x100000;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "truncated");

	/* filesz > memsz. */
	len = make_pvh(img, sizeof(img), true, PVH_LOAD, 4);
	((Elf64_Phdr *)(img + sizeof(Elf64_Ehdr)))->p_memsz = 16;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "larger than memory size");

	/* Too many program headers. */
	len = make_pvh(img, sizeof(img), true, PVH_LOAD, 4);
	((Elf64_Ehdr *)img)->e_phnum = 1000;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "program headers");

	/* PVH note with a 2-byte descriptor. */
	len = make_pvh(img, sizeof(img), true, PVH_LOAD, 2);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "PVH entry note");

	/* Entry outside any segment. */
	len = make_pvh(img, sizeof(img), true, PVH_LOAD, 4);
	memcpy((uint8_t *)memmem(img, len, "Xen", 4) + 4, "\0\0\0\x01", 4);	/* 0x01000000 */
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "not inside a loaded segment");

	/* Big-endian ELF. */
	len = make_pvh(img, sizeof(img), true, PVH_LOAD, 4);
	img[EI_DATA] = ELFDATA2MSB;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "little-endian");

	/* ELF without a PVH note or multiboot header. */
	len = make_pvh(img, sizeof(img), true, PVH_LOAD, 4);
	((Elf64_Phdr *)(img + sizeof(Elf64_Ehdr)))[1].p_type = PT_NULL;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "not a bzImage, PVH ELF or multiboot kernel");
	fx_free(f);
}

/* ---------------- Multiboot ---------------- */

#define MB_LOAD 0x100000u
#define MB_FILE 0x2000u
#define MB_BSS_END (MB_LOAD + 0x5000u)

static void mb_header(uint8_t *at, uint32_t flags, const uint32_t *addr)
{
	uint32_t h[8] = { MULTIBOOT_HEADER_MAGIC, flags, -(MULTIBOOT_HEADER_MAGIC + flags) };

	if (addr)
		memcpy(&h[3], addr, 5 * 4);
	memcpy(at, h, addr ? 32 : 12);
}

/* Flat image loaded at 1 MiB with the header at offset 0x80. */
static size_t make_mb_aout(uint8_t *img, uint32_t flags, uint32_t entry)
{
	const uint32_t addr[5] = { MB_LOAD + 0x80, MB_LOAD, 0, MB_BSS_END, entry };
	unsigned i;

	for (i = 0; i < MB_FILE; i++)
		img[i] = (uint8_t)(i * 3);
	mb_header(img + 0x80, flags, addr);
	return MB_FILE;
}

static void check_mbi(struct fixture *f, uint32_t entry, const char *cmdline)
{
	const struct multiboot_info *mbi;
	const struct multiboot_mmap_entry *map;
	unsigned i;

	assert_int_equal(f->vm.boot.mode, BOOT_PROTECTED_32);
	assert_int_equal(f->vm.boot.rip, entry);
	assert_int_equal(f->vm.boot.rax, 0x2badb002);
	assert_int_equal(f->vm.boot.rbx, BOOT_INFO_ADDR);
	mbi = gpa(f, BOOT_INFO_ADDR, sizeof(*mbi));
	assert_int_equal(mbi->flags & (MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MEM_MAP |
				       MB_INFO_LOADER_NAME | MB_INFO_MODS),
			 MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MEM_MAP |
			 MB_INFO_LOADER_NAME | MB_INFO_MODS);
	assert_int_equal(mbi->mem_lower, 0x9fc00 / 1024);
	assert_int_equal(mbi->mem_upper, (RAM_SIZE - MiB) / 1024);
	assert_string_equal(gpa(f, mbi->cmdline, 1), cmdline);
	assert_string_equal(gpa(f, mbi->boot_loader_name, 1), "minikvm");
	assert_int_equal(mbi->mmap_length, f->vm.mem.n_e820 * 24);
	map = gpa(f, mbi->mmap_addr, mbi->mmap_length);
	for (i = 0; i < f->vm.mem.n_e820; i++) {
		assert_int_equal(map[i].size, 20);
		assert_int_equal(map[i].addr, f->vm.mem.e820[i].addr);
		assert_int_equal(map[i].len, f->vm.mem.e820[i].size);
		assert_int_equal(map[i].type, f->vm.mem.e820[i].type);
	}
}

static void test_multiboot_aout(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t img[MB_FILE];
	size_t len = make_mb_aout(img, 0x00010003, MB_LOAD + 0x100);
	const struct multiboot_info *mbi;
	const struct multiboot_mod *mods;
	char cmd[256], list[256], s0[160];
	const uint8_t *p;
	unsigned i;

	memset(f->vm.mem.host + MB_LOAD, 0xcc, 0x10000);
	set_kernel(f, img, len);
	make_initrd(f, f->initrd, 3000, 1);
	make_initrd(f, f->initrd2, 70000, 2);
	snprintf(list, sizeof(list), "%s arg=1,,x,%s", f->initrd, f->initrd2);
	f->cfg.initrd = list;
	f->cfg.append = "mode=test";
	assert_int_equal(load(f), 0);
	snprintf(cmd, sizeof(cmd), "%s mode=test", f->kernel);
	check_mbi(f, MB_LOAD + 0x100, cmd);

	p = gpa(f, MB_LOAD, MB_BSS_END - MB_LOAD);
	assert_memory_equal(p, img, MB_FILE);
	for (i = MB_FILE; i < MB_BSS_END - MB_LOAD; i++)
		if (p[i])
			fail_msg("bss byte 0x%x not zeroed", i);

	mbi = gpa(f, BOOT_INFO_ADDR, sizeof(*mbi));
	assert_int_equal(mbi->mods_count, 2);
	mods = gpa(f, mbi->mods_addr, 2 * sizeof(*mods));
	snprintf(s0, sizeof(s0), "%s arg=1,x", f->initrd);
	assert_string_equal(gpa(f, mods[0].string, 1), s0);
	assert_string_equal(gpa(f, mods[1].string, 1), f->initrd2);
	assert_int_equal(mods[0].mod_start % 4096, 0);
	assert_int_equal(mods[1].mod_start % 4096, 0);
	assert_true(mods[0].mod_start >= MB_BSS_END);
	assert_true(mods[1].mod_start >= mods[0].mod_end);
	assert_int_equal(mods[0].mod_end - mods[0].mod_start, 3000);
	assert_int_equal(mods[1].mod_end - mods[1].mod_start, 70000);
	assert_true(initrd_matches(f, mods[0].mod_start, 3000, 1));
	assert_true(initrd_matches(f, mods[1].mod_start, 70000, 2));
	fx_free(f);
}

static void test_multiboot_elf32(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t img[0x4000];
	static uint8_t text[0x1000];
	const struct seg segs[1] = {
		{ PT_LOAD, 0x300000, 0xc0300000, text, sizeof(text), sizeof(text) + 0x2000 },
	};
	const struct multiboot_info *mbi;
	size_t len;

	mb_header(text, MB_HDR_PAGE_ALIGN | MB_HDR_MEMORY_INFO, NULL);
	memset(text + 12, 0x90, sizeof(text) - 12);
	/* Virtual e_entry: translated through the segment to 0x300010. */
	len = build_elf(img, sizeof(img), false, EM_386, 0xc0300010, segs, 1);
	set_kernel(f, img, len);
	assert_int_equal(load(f), 0);
	check_mbi(f, 0x300010, f->kernel);
	assert_memory_equal(gpa(f, 0x300000, sizeof(text)), text, sizeof(text));
	mbi = gpa(f, BOOT_INFO_ADDR, sizeof(*mbi));
	assert_int_equal(mbi->mods_count, 0);
	fx_free(f);
}

static void test_multiboot_errors(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t img[MB_FILE];
	static uint8_t elf[0x4000];
	uint32_t addr[5];
	size_t len;

	/* Bad checksum. */
	len = make_mb_aout(img, 0x00010003, MB_LOAD + 0x100);
	img[0x88] ^= 1;
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "bad checksum");

	/* Unknown required flag (bit 3). */
	len = make_mb_aout(img, 0x0001000b, MB_LOAD + 0x100);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "unsupported");

	/* Video mode (bit 2) is accepted (ignored, like QEMU). */
	len = make_mb_aout(img, 0x00010007, MB_LOAD + 0x100);
	set_kernel(f, img, len);
	assert_int_equal(load(f), 0);

	/* Entry outside the image. */
	len = make_mb_aout(img, 0x00010003, MB_LOAD + MB_FILE + 4);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "entry_addr");

	/* load_end_addr past the end of the file. */
	addr[0] = MB_LOAD + 0x80;
	addr[1] = MB_LOAD;
	addr[2] = MB_LOAD + 0x100000;
	addr[3] = 0;
	addr[4] = MB_LOAD + 0x100;
	mb_header(img + 0x80, 0x00010003, addr);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "truncated");

	/* load_addr before the start of the file. */
	addr[1] = MB_LOAD - 0x1000;
	addr[2] = 0;
	mb_header(img + 0x80, 0x00010003, addr);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "before the start of the file");

	/* Image beyond RAM. */
	addr[0] = 0x20000080;
	addr[1] = 0x20000000;
	addr[2] = 0;
	addr[3] = 0;
	addr[4] = 0x20000100;
	mb_header(img + 0x80, 0x00010003, addr);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "outside guest RAM");

	/* bss_end below the loaded end. */
	addr[0] = MB_LOAD + 0x80;
	addr[1] = MB_LOAD;
	addr[2] = 0;
	addr[3] = MB_LOAD + 0x10;
	addr[4] = MB_LOAD + 0x100;
	mb_header(img + 0x80, 0x00010003, addr);
	set_kernel(f, img, len);
	expect_error(f, f->kernel, "bss_end_addr");

	/* No address fields and not ELF. */
	memset(img, 0, sizeof(img));
	mb_header(img + 0x80, 0x3, NULL);
	set_kernel(f, img, MB_FILE);
	expect_error(f, f->kernel, "not ELF");

	/* Header beyond the first 8 KiB: not a kernel at all. */
	memset(elf, 0, sizeof(elf));
	mb_header(elf + 0x2000, 0x3, NULL);
	set_kernel(f, elf, sizeof(elf));
	expect_error(f, f->kernel, "not a bzImage, PVH ELF or multiboot kernel");

	/* Module too big for RAM. */
	len = make_mb_aout(img, 0x00010003, MB_LOAD + 0x100);
	set_kernel(f, img, len);
	strcpy(f->initrd, "/tmp/test_boot_XXXXXX");
	close(mkstemp(f->initrd));
	assert_int_equal(truncate(f->initrd, RAM_SIZE), 0);
	f->cfg.initrd = f->initrd;
	expect_error(f, f->initrd, "does not fit");
	fx_free(f);
}

static void test_dispatch_errors(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t junk[3000];

	memset(junk, 0x41, sizeof(junk));
	set_kernel(f, junk, sizeof(junk));
	expect_error(f, f->kernel, "not a bzImage, PVH ELF or multiboot kernel");
	set_kernel(f, junk, 0);
	expect_error(f, f->kernel, "not a bzImage");
	f->cfg.kernel = "/nonexistent/vmlinuz";
	expect_error(f, "/nonexistent/vmlinuz", "cannot open");
	f->cfg.kernel = "/tmp";
	expect_error(f, "/tmp", "not a regular file");

	/* No -kernel: firmware boot, nothing to do. */
	f->cfg.kernel = NULL;
	assert_int_equal(load(f), 0);
	assert_int_equal(f->vm.boot.mode, BOOT_FIRMWARE);
	f->cfg.append = "x";
	assert_int_equal(load(f), -1);
	fx_free(f);
}

/* Random byte flips in the headers of every valid image: any result is
 * fine as long as nothing crashes and failures say something. */
static void mutate_and_load(struct fixture *f, const uint8_t *orig, size_t len, size_t span,
			    unsigned rounds)
{
	uint8_t *img = malloc(len);
	unsigned i, j;

	for (i = 0; i < rounds; i++) {
		memcpy(img, orig, len);
		for (j = 0; j < 1 + (unsigned)rand() % 4; j++)
			img[(size_t)rand() % span] = (uint8_t)rand();
		set_kernel(f, img, len);
		if (load(f) < 0)
			assert_true(strlen(f->err) > 0);
	}
	free(img);
}

static void test_mutations(void **state)
{
	struct fixture *f = fx_new();
	static uint8_t bz[BZ_SETUP_SIZE + BZ_KERNEL_SIZE], pvh[0x4000], mb[MB_FILE];
	size_t bzlen = make_bzimage(bz, true);
	size_t pvhlen = make_pvh(pvh, sizeof(pvh), true, PVH_LOAD, 4);
	size_t mblen = make_mb_aout(mb, 0x00010003, MB_LOAD + 0x100);

	srand(1234);
	make_initrd(f, f->initrd, 100, 0);
	f->cfg.initrd = f->initrd;
	mutate_and_load(f, bz, bzlen, 0x270, 400);
	mutate_and_load(f, pvh, pvhlen, 0x100, 400);
	mutate_and_load(f, mb, mblen, 0xa0, 400);
	fx_free(f);
}

/* ---------------- the guest test kit ---------------- */

/* Every variant the guest build produces (tests/guest/guest.mk): the
 * combined kit boots through PVH (detected first), the others through
 * their only header. e_entry is the Multiboot entry (mb_entry32). */
static const struct {
	const char *path;
	bool pvh;
} testkits[] = {
	{ "build/guest/testkit.elf", true },
	{ "build/guest/testkit.elf64", true },
	{ "build/guest/testkit-pvh.elf", true },
	{ "build/guest/testkit-pvh.elf64", true },
	{ "build/guest/testkit-mb.elf", false },
	{ "build/guest/testkit-mb.elf64", false },
};

static uint64_t elf_entry_of(const uint8_t *head)
{
	if (head[EI_CLASS] == ELFCLASS64)
		return ((const Elf64_Ehdr *)head)->e_entry;
	return ((const Elf32_Ehdr *)head)->e_entry;
}

static void check_testkit(const char *path, bool pvh)
{
	struct fixture *f = fx_new();
	uint8_t head[8192];
	char cmd[128];
	size_t n;
	FILE *fp = fopen(path, "rb");

	assert_non_null(fp);
	n = fread(head, 1, sizeof(head), fp);
	fclose(fp);
	assert_true(n >= sizeof(Elf64_Ehdr));
	put_rsdp(f);
	f->cfg.kernel = path;
	f->cfg.append = "test=hello";
	if (load(f) != 0)
		fail_msg("%s", f->err);
	assert_int_equal(f->vm.boot.mode, BOOT_PROTECTED_32);
	assert_int_equal(f->vm.boot.rbx, BOOT_INFO_ADDR);
	assert_true(f->vm.boot.rip >= 0x100000 && f->vm.boot.rip < 0x200000);
	if (pvh) {
		const struct hvm_start_info *si = gpa(f, BOOT_INFO_ADDR, sizeof(*si));

		assert_int_not_equal(f->vm.boot.rip, elf_entry_of(head));
		assert_int_equal(si->magic, HVM_START_MAGIC);
		assert_int_equal(si->rsdp_paddr, 0xe0000);
		assert_string_equal(gpa(f, si->cmdline_paddr, 1), "test=hello");
	} else {
		const struct multiboot_info *mbi = gpa(f, BOOT_INFO_ADDR, sizeof(*mbi));

		assert_int_equal(f->vm.boot.rip, elf_entry_of(head));
		assert_int_equal(f->vm.boot.rax, 0x2badb002);
		assert_true(mbi->flags & MB_INFO_MEM_MAP);
		snprintf(cmd, sizeof(cmd), "%s test=hello", path);
		assert_string_equal(gpa(f, mbi->cmdline, 1), cmd);
	}
	fx_free(f);
}

static void test_testkit(void **state)
{
	unsigned i, found = 0;

	for (i = 0; i < sizeof(testkits) / sizeof(testkits[0]); i++) {
		if (access(testkits[i].path, R_OK) < 0)
			continue;
		print_message("loading %s\n", testkits[i].path);
		check_testkit(testkits[i].path, testkits[i].pvh);
		found++;
	}
	if (!found) {
		print_message("guest test kit not built: skipped\n");
		skip();
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bzimage_64),
		cmocka_unit_test(test_bzimage_32),
		cmocka_unit_test(test_bzimage_errors),
		cmocka_unit_test(test_pvh_elf64),
		cmocka_unit_test(test_pvh_elf32),
		cmocka_unit_test(test_elf_errors),
		cmocka_unit_test(test_multiboot_aout),
		cmocka_unit_test(test_multiboot_elf32),
		cmocka_unit_test(test_multiboot_errors),
		cmocka_unit_test(test_dispatch_errors),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_testkit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
