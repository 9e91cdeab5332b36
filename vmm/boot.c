/* Direct kernel boot: format detection (bzImage, PVH ELF, Multiboot) and
 * the helpers the format loaders share: bounded file reads, placement in
 * guest RAM by the e820 map, the boot GDT, identity page tables, the
 * string area and the RSDP scan. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vmm/boot.h"
#include "vmm/boot_priv.h"
#include "vmm/platform.h"
#include "vmm/fileio.h"
#include "vmm/vm.h"

#define BOOT_HEAD_SIZE 8192	/* Multiboot header must be in here */

void boot_error(struct boot_ctx *c, const char *path, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->errlen)
		snprintf(c->err, c->errlen, "%s: %s", path, msg);
}

/* ---------------- files ---------------- */

int boot_file_open(struct boot_ctx *c, struct boot_file *f, const char *path)
{
	struct stat st;

	f->path = path;
	f->size = 0;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		boot_error(c, path, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		boot_error(c, path, "not a regular file");
		boot_file_close(f);
		return -1;
	}
	f->size = (uint64_t)st.st_size;
	return 0;
}

void boot_file_close(struct boot_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static bool file_has(const struct boot_file *f, uint64_t off, uint64_t len)
{
	return off <= f->size && len <= f->size - off;
}

int boot_file_read(struct boot_ctx *c, const struct boot_file *f, uint64_t off,
		   void *buf, size_t len, const char *what)
{
	int r;

	if (!file_has(f, off, len)) {
		boot_error(c, f->path, "truncated: %s at offset 0x%llx (%zu bytes) is past "
			   "the end of the file (%llu bytes)", what, (unsigned long long)off,
			   len, (unsigned long long)f->size);
		return -1;
	}
	r = read_full_at(f->fd, off, buf, len);
	if (r < 0) {
		boot_error(c, f->path, "read error: %s", strerror(-r));
		return -1;
	}
	return 0;
}

int boot_file_load(struct boot_ctx *c, const struct boot_file *f, uint64_t off,
		   uint64_t len, uint64_t gpa, const char *what)
{
	void *hva;
	int r;

	if (!len)
		return 0;
	if (!file_has(f, off, len)) {
		boot_error(c, f->path, "truncated: %s at offset 0x%llx (%llu bytes) is past "
			   "the end of the file (%llu bytes)", what, (unsigned long long)off,
			   (unsigned long long)len, (unsigned long long)f->size);
		return -1;
	}
	hva = gpa_to_hva(c->mem, gpa, len);
	if (!hva) {
		boot_error(c, f->path, "%s at 0x%llx (%llu bytes) is outside guest RAM", what,
			   (unsigned long long)gpa, (unsigned long long)len);
		return -1;
	}
	r = read_full_at(f->fd, off, hva, len);
	if (r < 0) {
		boot_error(c, f->path, "read error: %s", strerror(-r));
		return -1;
	}
	return 0;
}

int boot_zero(struct boot_ctx *c, uint64_t gpa, uint64_t len)
{
	void *hva;

	if (!len)
		return 0;
	hva = gpa_to_hva(c->mem, gpa, len);
	if (!hva) {
		boot_error(c, c->kernel.path, "0x%llx (%llu bytes) is outside guest RAM",
			   (unsigned long long)gpa, (unsigned long long)len);
		return -1;
	}
	memset(hva, 0, len);
	return 0;
}

/* ---------------- guest RAM placement ---------------- */

struct ram_range {
	uint64_t start, end;
};
#define MAX_RAM_RANGES (2 * E820_MAX + 2)

static void ranges_cut(struct ram_range *r, unsigned *n, uint64_t start, uint64_t end)
{
	unsigned i;

	for (i = 0; i < *n; i++) {
		if (end <= r[i].start || start >= r[i].end)
			continue;
		if (start > r[i].start && end < r[i].end && *n < MAX_RAM_RANGES) {
			memmove(&r[i + 2], &r[i + 1], (*n - i - 1) * sizeof(*r));
			r[i + 1] = (struct ram_range){ end, r[i].end };
			r[i].end = start;
			(*n)++;
			i++;
		} else if (start > r[i].start) {
			r[i].end = start;
		} else if (end < r[i].end) {
			r[i].start = end;
		} else {
			r[i].start = r[i].end;	/* fully covered: empty */
		}
	}
}

/* Usable RAM: e820 RAM entries minus every other entry, sorted by start
 * (the table is kept sorted), adjacent ranges merged. */
static unsigned usable_ram(const struct guest_memory *m, struct ram_range *r)
{
	unsigned i, n = 0, out = 0;

	for (i = 0; i < m->n_e820 && i < E820_MAX; i++) {
		const struct e820_entry *e = &m->e820[i];

		if (e->type != E820_RAM || !e->size || e->addr + e->size < e->addr)
			continue;
		if (n < MAX_RAM_RANGES)
			r[n++] = (struct ram_range){ e->addr, e->addr + e->size };
	}
	for (i = 0; i < m->n_e820 && i < E820_MAX; i++) {
		const struct e820_entry *e = &m->e820[i];
		uint64_t end = e->addr + e->size;

		if (e->type == E820_RAM || !e->size)
			continue;
		ranges_cut(r, &n, e->addr, end < e->addr ? UINT64_MAX : end);
	}
	for (i = 0; i < n; i++) {
		if (r[i].start >= r[i].end)
			continue;
		if (out && r[out - 1].end == r[i].start)
			r[out - 1].end = r[i].end;
		else
			r[out++] = r[i];
	}
	return out;
}

bool boot_range_is_ram(const struct guest_memory *m, uint64_t addr, uint64_t len)
{
	struct ram_range r[MAX_RAM_RANGES];
	unsigned i, n = usable_ram(m, r);

	if (!len || addr + len < addr)
		return false;
	for (i = 0; i < n; i++)
		if (addr >= r[i].start && addr + len <= r[i].end)
			return gpa_to_hva(m, addr, len) != NULL;
	return false;
}

int boot_check_region(struct boot_ctx *c, uint64_t addr, uint64_t len, const char *what)
{
	const char *path = c->kernel.path;

	if (!len)
		return 0;
	if (addr + len < addr || addr + len > (1ULL << 52)) {
		boot_error(c, path, "%s at 0x%llx with size 0x%llx overflows the address space",
			   what, (unsigned long long)addr, (unsigned long long)len);
		return -1;
	}
	if (addr < BOOT_AREA_END) {
		boot_error(c, path, "%s 0x%llx-0x%llx overlaps the boot area below 0x%llx",
			   what, (unsigned long long)addr, (unsigned long long)(addr + len),
			   (unsigned long long)BOOT_AREA_END);
		return -1;
	}
	if (!boot_range_is_ram(c->mem, addr, len)) {
		boot_error(c, path, "%s 0x%llx-0x%llx is outside guest RAM (%llu MiB)",
			   what, (unsigned long long)addr, (unsigned long long)(addr + len),
			   (unsigned long long)(c->mem->ram_size / MiB));
		return -1;
	}
	return 0;
}

int boot_place(const struct guest_memory *m, uint64_t len, uint64_t min, uint64_t max,
	       bool high, uint64_t *gpa)
{
	struct ram_range r[MAX_RAM_RANGES];
	unsigned i, n = usable_ram(m, r);
	bool found = false;
	uint64_t best = 0;

	if (!len || len > UINT64_MAX - BOOT_PAGE_SIZE)
		return -1;
	for (i = 0; i < n; i++) {
		uint64_t lo = r[i].start > min ? r[i].start : min;
		uint64_t hi = r[i].end < max ? r[i].end : max;
		uint64_t at;

		lo = (lo + BOOT_PAGE_SIZE - 1) & ~(BOOT_PAGE_SIZE - 1);
		if (lo >= hi || hi - lo < len)
			continue;
		at = high ? (hi - len) & ~(BOOT_PAGE_SIZE - 1) : lo;
		if (!gpa_to_hva(m, at, len))
			continue;
		if (!found || (high ? at > best : at < best))
			best = at;
		found = true;
	}
	if (!found)
		return -1;
	*gpa = best;
	return 0;
}

int boot_put_string(struct boot_ctx *c, const char *s, uint64_t *gpa)
{
	size_t len = strlen(s) + 1;

	if (c->strings_next < BOOT_CMDLINE_ADDR ||
	    len > BOOT_CMDLINE_ADDR + BOOT_CMDLINE_SIZE - c->strings_next) {
		boot_error(c, c->kernel.path, "command line and module strings exceed %llu KiB",
			   (unsigned long long)(BOOT_CMDLINE_SIZE / 1024));
		return -1;
	}
	if (guest_write(c->mem, c->strings_next, s, len) < 0) {
		boot_error(c, c->kernel.path, "string area 0x%llx is not guest RAM",
			   (unsigned long long)c->strings_next);
		return -1;
	}
	*gpa = c->strings_next;
	c->strings_next += len;
	return 0;
}

int boot_load_initrd(struct boot_ctx *c, const char *path, uint64_t min, uint64_t max,
		     bool high, uint64_t *gpa, uint64_t *size)
{
	struct boot_file f;
	int r = -1;

	if (boot_file_open(c, &f, path) < 0)
		return -1;
	if (!f.size) {
		boot_error(c, path, "initrd is empty");
	} else if (boot_place(c->mem, f.size, min, max, high, gpa) < 0) {
		boot_error(c, path, "initrd of %llu bytes does not fit in guest RAM between "
			   "0x%llx and 0x%llx (%llu MiB of RAM)", (unsigned long long)f.size,
			   (unsigned long long)min, (unsigned long long)max,
			   (unsigned long long)(c->mem->ram_size / MiB));
	} else if (boot_file_load(c, &f, 0, f.size, *gpa, "initrd") == 0) {
		*size = f.size;
		r = 0;
	}
	boot_file_close(&f);
	return r;
}

/* ---------------- GDT, page tables, RSDP ---------------- */

#define GDT_CODE32 0x00cf9b000000ffffULL	/* exec/read, accessed, D=1, G=1 */
#define GDT_CODE64 0x00af9b000000ffffULL	/* exec/read, accessed, L=1, G=1 */
#define GDT_DATA   0x00cf93000000ffffULL	/* read/write, accessed, B=1, G=1 */

int boot_write_gdt(struct boot_ctx *c, bool long_mode)
{
	const uint64_t gdt[4] = { 0, 0, long_mode ? GDT_CODE64 : GDT_CODE32, GDT_DATA };

	if (guest_write(c->mem, BOOT_GDT_ADDR, gdt, sizeof(gdt)) < 0) {
		boot_error(c, c->kernel.path, "guest RAM too small for the boot GDT");
		return -1;
	}
	c->vm->boot.gdt_base = BOOT_GDT_ADDR;
	c->vm->boot.gdt_limit = sizeof(gdt) - 1;
	return 0;
}

#define PTE_P  0x1ULL
#define PTE_RW 0x2ULL
#define PTE_PS 0x80ULL

int boot_write_page_tables(struct boot_ctx *c)
{
	const uint64_t pml4 = BOOT_PGTABLE_ADDR, pdpt = pml4 + 0x1000, pd = pml4 + 0x2000;
	uint64_t *t = gpa_to_hva(c->mem, pml4, BOOT_PGTABLE_SIZE);
	unsigned i;

	if (!t) {
		boot_error(c, c->kernel.path, "guest RAM too small for the boot page tables");
		return -1;
	}
	memset(t, 0, BOOT_PGTABLE_SIZE);
	t[0] = pdpt | PTE_P | PTE_RW;
	for (i = 0; i < 4; i++)
		t[512 + i] = (pd + i * 0x1000) | PTE_P | PTE_RW;
	for (i = 0; i < 4 * 512; i++)
		t[1024 + i] = ((uint64_t)i << 21) | PTE_P | PTE_RW | PTE_PS;
	c->vm->boot.cr3 = pml4;
	return 0;
}

uint64_t boot_find_rsdp(const struct guest_memory *m)
{
	uint64_t a;

	for (a = BIOS_AREA_START; a + 20 <= BIOS_AREA_START + BIOS_AREA_SIZE; a += 16) {
		const uint8_t *p = gpa_to_hva(m, a, 20);
		uint8_t sum = 0;
		unsigned i;

		if (!p || memcmp(p, "RSD PTR ", 8))
			continue;
		for (i = 0; i < 20; i++)
			sum += p[i];
		if (!sum)
			return a;
	}
	return 0;
}

/* ---------------- detection ---------------- */

static int boot_detect_and_load(struct boot_ctx *c)
{
	uint8_t head[BOOT_HEAD_SIZE];
	size_t head_len = c->kernel.size < sizeof(head) ? c->kernel.size : sizeof(head);
	char pvh_err[256] = "";
	int r;

	if (boot_file_read(c, &c->kernel, 0, head, head_len, "header") < 0)
		return -1;
	r = boot_linux_load(c, head, head_len);
	if (r != BOOT_NOT_MINE)
		return r;
	r = boot_pvh_load(c);
	if (r == 0)
		return 0;
	if (r < 0)	/* malformed ELF: still try a Multiboot header */
		snprintf(pvh_err, sizeof(pvh_err), "%s", c->err);
	r = boot_multiboot_load(c, head, head_len);
	if (r != BOOT_NOT_MINE)
		return r;
	if (pvh_err[0])
		snprintf(c->err, c->errlen, "%s", pvh_err);
	else
		boot_error(c, c->kernel.path, "not a bzImage, PVH ELF or multiboot kernel");
	return -1;
}

int boot_load_kernel(struct vm *vm, char *err, size_t errlen)
{
	const struct vm_config *cfg = vm->cfg;
	struct boot_ctx c = {
		.vm = vm, .mem = &vm->mem, .err = err, .errlen = errlen,
		.kernel = { .fd = -1 },
	};
	int r;

	memset(&vm->boot, 0, sizeof(vm->boot));
	vm->boot.mode = BOOT_FIRMWARE;
	if (!cfg || !cfg->kernel) {
		if (cfg && (cfg->initrd || cfg->append)) {
			snprintf(err, errlen, "-initrd and -append need -kernel");
			return -1;
		}
		return 0;
	}
	c.initrd = cfg->initrd;
	c.cmdline = cfg->append ? cfg->append : "";
	c.strings_next = BOOT_CMDLINE_ADDR;
	if (boot_file_open(&c, &c.kernel, cfg->kernel) < 0)
		return -1;
	r = boot_detect_and_load(&c);
	boot_file_close(&c.kernel);
	if (r < 0) {
		memset(&vm->boot, 0, sizeof(vm->boot));
		return -1;
	}
	vm->boot.rsp = BOOT_STACK_TOP;
	return 0;
}
