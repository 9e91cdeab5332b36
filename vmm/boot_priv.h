/* Shared helpers of the direct kernel boot loaders (boot*.c): bounded
 * file reading, guest RAM placement by the e820 map, the boot GDT and
 * page tables, the ELF reader, and the per-format entry points. Not for
 * use outside vmm/boot*.c and their unit test. */
#ifndef VMM_BOOT_PRIV_H
#define VMM_BOOT_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmm/boot.h"
#include "vmm/memory.h"

#define BOOT_PAGE_SIZE 4096ULL

/* A kernel or initrd file opened for bounded reads. */
struct boot_file {
	const char *path;
	int fd;
	uint64_t size;
};

/* One direct-boot attempt. err always gets "PATH: problem". */
struct boot_ctx {
	struct vm *vm;
	struct guest_memory *mem;
	struct boot_file kernel;
	const char *initrd;		/* -initrd argument or NULL */
	const char *cmdline;		/* -append argument, "" if none */
	uint64_t strings_next;		/* next free byte after the cmdline */
	char *err;
	size_t errlen;
};

/* Loader results besides 0 (loaded) and -1 (error, err set). */
#define BOOT_NOT_MINE 1

void boot_error(struct boot_ctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int boot_file_open(struct boot_ctx *c, struct boot_file *f, const char *path);
void boot_file_close(struct boot_file *f);
/* Read exactly len bytes at off; "truncated" error when past the end. */
int boot_file_read(struct boot_ctx *c, const struct boot_file *f, uint64_t off,
		   void *buf, size_t len, const char *what);
/* Copy file bytes [off, off+len) to guest RAM at gpa. */
int boot_file_load(struct boot_ctx *c, const struct boot_file *f, uint64_t off,
		   uint64_t len, uint64_t gpa, const char *what);
/* Zero guest RAM [gpa, gpa+len). */
int boot_zero(struct boot_ctx *c, uint64_t gpa, uint64_t len);

/* True when [addr, addr+len) is usable RAM: inside e820 RAM, clear of
 * every non-RAM e820 entry, and mapped. */
bool boot_range_is_ram(const struct guest_memory *m, uint64_t addr, uint64_t len);
/* Check a kernel region: no overflow, usable RAM, above the boot area. */
int boot_check_region(struct boot_ctx *c, uint64_t addr, uint64_t len, const char *what);
/* Highest (high) or lowest page-aligned address with [gpa, gpa+len) in
 * usable RAM and inside [min, max). -1 when nothing fits. */
int boot_place(const struct guest_memory *m, uint64_t len, uint64_t min, uint64_t max,
	       bool high, uint64_t *gpa);
/* Copy a NUL-terminated string into the string area (after the cmdline). */
int boot_put_string(struct boot_ctx *c, const char *s, uint64_t *gpa);

/* Open the initrd and load it at a page-aligned address in [min, max),
 * highest or lowest placement. */
int boot_load_initrd(struct boot_ctx *c, const char *path, uint64_t min, uint64_t max,
		     bool high, uint64_t *gpa, uint64_t *size);

/* Flat GDT at BOOT_GDT_ADDR: null, null, code 0x10 (64-bit when
 * long_mode), data 0x18. Sets vm->boot.gdt_base/limit. */
int boot_write_gdt(struct boot_ctx *c, bool long_mode);
/* Identity page tables (2 MiB pages, 0..4 GiB) at BOOT_PGTABLE_ADDR;
 * sets vm->boot.cr3. */
int boot_write_page_tables(struct boot_ctx *c);
/* RSDP in the BIOS area 0xe0000-0xfffff (valid checksum), or 0. */
uint64_t boot_find_rsdp(const struct guest_memory *m);

/* ELF images (32 or 64-bit, little-endian x86), normalized. */
#define ELF_MAX_PHDRS 64
struct elf_segment {
	uint32_t type;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};
struct elf_image {
	bool is64;
	uint16_t machine;
	uint64_t entry;
	unsigned nphdr;
	struct elf_segment ph[ELF_MAX_PHDRS];
};

/* BOOT_NOT_MINE when the file is not ELF; -1 on a malformed ELF. Every
 * segment's file range is checked against the file size. */
int elf_parse(struct boot_ctx *c, struct elf_image *img);
/* Find a note (owner, type) in the PT_NOTE segments: 1 found (desc
 * copied, *desc_len set), 0 absent, -1 malformed. */
int elf_find_note(struct boot_ctx *c, const struct elf_image *img, const char *owner,
		  uint32_t type, void *desc, size_t desc_max, size_t *desc_len);
/* Check and load every PT_LOAD at p_paddr (bss zeroed); returns the
 * lowest and highest (end) physical addresses. */
int elf_load(struct boot_ctx *c, const struct elf_image *img, uint64_t *lo, uint64_t *hi);
/* True when [addr, addr+len) lies in the file part of a PT_LOAD (by
 * physical address). */
bool elf_paddr_is_loaded(const struct elf_image *img, uint64_t addr, uint64_t len);

/* The formats, tried in this order. Each returns 0, -1 or BOOT_NOT_MINE.
 * head holds the first head_len bytes of the kernel file. */
int boot_linux_load(struct boot_ctx *c, const uint8_t *head, size_t head_len);
int boot_pvh_load(struct boot_ctx *c);
int boot_multiboot_load(struct boot_ctx *c, const uint8_t *head, size_t head_len);

#endif
