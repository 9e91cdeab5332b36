/* The ELF reader of the direct boot loaders (PVH and Multiboot): header
 * and program header validation, note lookup and segment loading at
 * physical addresses, every field checked before use. */
#include <elf.h>
#include <stdlib.h>
#include <string.h>
#include "vmm/boot_priv.h"

#define ELF_MAX_NOTE_SEGMENT (1u << 20)

static int elf_check_ident(struct boot_ctx *c, const unsigned char *id)
{
	const char *path = c->kernel.path;

	if (id[EI_CLASS] != ELFCLASS32 && id[EI_CLASS] != ELFCLASS64) {
		boot_error(c, path, "ELF class %u is neither 32 nor 64-bit", id[EI_CLASS]);
		return -1;
	}
	if (id[EI_DATA] != ELFDATA2LSB) {
		boot_error(c, path, "ELF is not little-endian");
		return -1;
	}
	return 0;
}

static void elf_from_phdr32(struct elf_segment *s, const Elf32_Phdr *p)
{
	*s = (struct elf_segment){
		.type = p->p_type, .offset = p->p_offset, .vaddr = p->p_vaddr,
		.paddr = p->p_paddr, .filesz = p->p_filesz, .memsz = p->p_memsz,
		.align = p->p_align,
	};
}

static void elf_from_phdr64(struct elf_segment *s, const Elf64_Phdr *p)
{
	*s = (struct elf_segment){
		.type = p->p_type, .offset = p->p_offset, .vaddr = p->p_vaddr,
		.paddr = p->p_paddr, .filesz = p->p_filesz, .memsz = p->p_memsz,
		.align = p->p_align,
	};
}

/* Header fields common to both classes, after conversion. */
static int elf_check_header(struct boot_ctx *c, uint16_t type, uint16_t machine,
			    uint64_t phoff, uint16_t phentsize, uint16_t phnum, size_t want_phent)
{
	const char *path = c->kernel.path;

	if (type != ET_EXEC) {
		boot_error(c, path, "ELF type %u is not an executable", type);
		return -1;
	}
	if (machine != EM_386 && machine != EM_X86_64) {
		boot_error(c, path, "ELF machine %u is not x86", machine);
		return -1;
	}
	if (phentsize != want_phent) {
		boot_error(c, path, "ELF program header size %u, expected %zu", phentsize,
			   want_phent);
		return -1;
	}
	if (phnum == 0 || phnum > ELF_MAX_PHDRS) {
		boot_error(c, path, "ELF has %u program headers (1 to %u supported)", phnum,
			   ELF_MAX_PHDRS);
		return -1;
	}
	if (phoff > c->kernel.size || (uint64_t)phnum * phentsize > c->kernel.size - phoff) {
		boot_error(c, path, "truncated: ELF program headers at 0x%llx are past the end "
			   "of the file", (unsigned long long)phoff);
		return -1;
	}
	return 0;
}

static int elf_check_segments(struct boot_ctx *c, const struct elf_image *img)
{
	unsigned i;

	for (i = 0; i < img->nphdr; i++) {
		const struct elf_segment *s = &img->ph[i];

		if (s->type != PT_LOAD && s->type != PT_NOTE)
			continue;
		if (s->offset > c->kernel.size || s->filesz > c->kernel.size - s->offset) {
			boot_error(c, c->kernel.path, "truncated: ELF segment %u (offset 0x%llx, "
				   "0x%llx bytes) is past the end of the file", i,
				   (unsigned long long)s->offset, (unsigned long long)s->filesz);
			return -1;
		}
		if (s->type == PT_LOAD && s->filesz > s->memsz) {
			boot_error(c, c->kernel.path, "ELF segment %u has file size 0x%llx larger "
				   "than memory size 0x%llx", i, (unsigned long long)s->filesz,
				   (unsigned long long)s->memsz);
			return -1;
		}
	}
	return 0;
}

int elf_parse(struct boot_ctx *c, struct elf_image *img)
{
	union { Elf32_Ehdr e32; Elf64_Ehdr e64; } h;
	const struct boot_file *f = &c->kernel;
	unsigned i;
	int r;

	memset(img, 0, sizeof(*img));
	if (f->size < EI_NIDENT || boot_file_read(c, f, 0, &h, EI_NIDENT, "ELF ident") < 0 ||
	    memcmp(h.e32.e_ident, ELFMAG, SELFMAG))
		return BOOT_NOT_MINE;
	if (elf_check_ident(c, h.e32.e_ident) < 0)
		return -1;
	img->is64 = h.e32.e_ident[EI_CLASS] == ELFCLASS64;
	if (img->is64) {
		Elf64_Phdr ph[ELF_MAX_PHDRS];

		if (boot_file_read(c, f, 0, &h.e64, sizeof(h.e64), "ELF header") < 0 ||
		    elf_check_header(c, h.e64.e_type, h.e64.e_machine, h.e64.e_phoff,
				     h.e64.e_phentsize, h.e64.e_phnum, sizeof(Elf64_Phdr)) < 0)
			return -1;
		img->nphdr = h.e64.e_phnum;
		r = boot_file_read(c, f, h.e64.e_phoff, ph, img->nphdr * sizeof(ph[0]),
				   "program headers");
		for (i = 0; r == 0 && i < img->nphdr; i++)
			elf_from_phdr64(&img->ph[i], &ph[i]);
		img->machine = h.e64.e_machine;
		img->entry = h.e64.e_entry;
	} else {
		Elf32_Phdr ph[ELF_MAX_PHDRS];

		if (boot_file_read(c, f, 0, &h.e32, sizeof(h.e32), "ELF header") < 0 ||
		    elf_check_header(c, h.e32.e_type, h.e32.e_machine, h.e32.e_phoff,
				     h.e32.e_phentsize, h.e32.e_phnum, sizeof(Elf32_Phdr)) < 0)
			return -1;
		img->nphdr = h.e32.e_phnum;
		r = boot_file_read(c, f, h.e32.e_phoff, ph, img->nphdr * sizeof(ph[0]),
				   "program headers");
		for (i = 0; r == 0 && i < img->nphdr; i++)
			elf_from_phdr32(&img->ph[i], &ph[i]);
		img->machine = h.e32.e_machine;
		img->entry = h.e32.e_entry;
	}
	if (r < 0)
		return -1;
	return elf_check_segments(c, img);
}

static uint64_t align4(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Walk the notes of one PT_NOTE segment held in buf. */
static int elf_scan_notes(struct boot_ctx *c, const uint8_t *buf, uint64_t len, uint64_t align,
			  const char *owner, uint32_t type, void *desc, size_t desc_max,
			  size_t *desc_len)
{
	size_t owner_len = strlen(owner) + 1;
	uint64_t pos = 0;

	while (len - pos >= 12) {
		uint32_t nh[3];
		uint64_t name_off = pos + 12, desc_off, next;

		memcpy(nh, buf + pos, sizeof(nh));
		if (nh[0] > len - name_off)
			break;
		desc_off = align4(name_off + nh[0], align);
		if (desc_off > len || nh[1] > len - desc_off)
			break;
		next = align4(desc_off + nh[1], align);
		if (nh[2] == type && nh[0] == owner_len &&
		    !memcmp(buf + name_off, owner, owner_len)) {
			if (nh[1] > desc_max) {
				boot_error(c, c->kernel.path, "ELF note %s/%u has %u bytes of data "
					   "(at most %zu expected)", owner, type, nh[1], desc_max);
				return -1;
			}
			memcpy(desc, buf + desc_off, nh[1]);
			*desc_len = nh[1];
			return 1;
		}
		if (next <= pos || next > len)
			break;
		pos = next;
	}
	return 0;
}

int elf_find_note(struct boot_ctx *c, const struct elf_image *img, const char *owner,
		  uint32_t type, void *desc, size_t desc_max, size_t *desc_len)
{
	unsigned i;

	for (i = 0; i < img->nphdr; i++) {
		const struct elf_segment *s = &img->ph[i];
		uint8_t *buf;
		int r;

		if (s->type != PT_NOTE || !s->filesz)
			continue;
		if (s->filesz > ELF_MAX_NOTE_SEGMENT) {
			boot_error(c, c->kernel.path, "ELF note segment %u is too large "
				   "(%llu bytes)", i, (unsigned long long)s->filesz);
			return -1;
		}
		buf = malloc(s->filesz);
		if (!buf) {
			boot_error(c, c->kernel.path, "out of memory");
			return -1;
		}
		r = boot_file_read(c, &c->kernel, s->offset, buf, s->filesz, "ELF notes");
		if (r == 0)
			r = elf_scan_notes(c, buf, s->filesz, s->align == 8 ? 8 : 4, owner, type,
					   desc, desc_max, desc_len);
		free(buf);
		if (r != 0)
			return r;
	}
	return 0;
}

int elf_load(struct boot_ctx *c, const struct elf_image *img, uint64_t *lo, uint64_t *hi)
{
	bool any = false;
	unsigned i;

	*lo = UINT64_MAX;
	*hi = 0;
	/* Validate everything before writing anything. */
	for (i = 0; i < img->nphdr; i++) {
		const struct elf_segment *s = &img->ph[i];

		if (s->type != PT_LOAD || !s->memsz)
			continue;
		if (boot_check_region(c, s->paddr, s->memsz, "ELF segment") < 0)
			return -1;
		if (s->paddr < *lo)
			*lo = s->paddr;
		if (s->paddr + s->memsz > *hi)
			*hi = s->paddr + s->memsz;
		any = true;
	}
	if (!any) {
		boot_error(c, c->kernel.path, "ELF has no loadable segment");
		return -1;
	}
	for (i = 0; i < img->nphdr; i++) {
		const struct elf_segment *s = &img->ph[i];

		if (s->type != PT_LOAD || !s->memsz)
			continue;
		if (boot_file_load(c, &c->kernel, s->offset, s->filesz, s->paddr,
				   "ELF segment") < 0 ||
		    boot_zero(c, s->paddr + s->filesz, s->memsz - s->filesz) < 0)
			return -1;
	}
	return 0;
}

bool elf_paddr_is_loaded(const struct elf_image *img, uint64_t addr, uint64_t len)
{
	unsigned i;

	for (i = 0; i < img->nphdr; i++) {
		const struct elf_segment *s = &img->ph[i];

		if (s->type == PT_LOAD && addr >= s->paddr && addr - s->paddr <= s->filesz &&
		    len <= s->filesz - (addr - s->paddr))
			return true;
	}
	return false;
}
