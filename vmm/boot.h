/* Direct kernel boot (-kernel/-initrd/-append): detects the image format
 * (Linux bzImage, PVH ELF, Multiboot v1), writes the kernel, initrd and
 * the boot structures into guest RAM and fills vm->boot with the entry
 * state of the BSP. */
#ifndef VMM_BOOT_H
#define VMM_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct vm;

/* Guest-physical layout of the boot structures (all below 640 KiB, in
 * the e820 RAM entry at 0). Kernel and initrd must stay above
 * BOOT_AREA_END.
 *
 * The entry state the vCPU code loads from vm->boot:
 *  - all modes: GDTR = gdt_base/gdt_limit; CS = 0x10, DS/ES/FS/GS/SS =
 *    0x18, flat (base 0, limit 4 GiB, DPL 0); RFLAGS = 2 (IF clear);
 *    every GPR not named in boot_state is 0 (Linux wants ebp/edi/ebx 0);
 *  - BOOT_PROTECTED_32: CR0.PE, no paging, 32-bit CS;
 *  - BOOT_LONG_64: + CR4.PAE, EFER.LME|LMA, CR0.PG, CR3 = boot.cr3 and a
 *    64-bit CS (L=1, D=0); the page tables identity-map 0..4 GiB. */
#define BOOT_GDT_ADDR		0x500ULL	/* 4 descriptors */
#define BOOT_STACK_TOP		0x7000ULL	/* rsp at entry, grows down */
#define BOOT_INFO_ADDR		0x7000ULL	/* zero page / start_info / mbi */
#define BOOT_INFO_SIZE		0x1000ULL
#define BOOT_PGTABLE_ADDR	0x9000ULL	/* PML4, PDPT, 4 PDs (64-bit Linux) */
#define BOOT_PGTABLE_SIZE	0x6000ULL
#define BOOT_CMDLINE_ADDR	0x20000ULL	/* command line, then other strings */
#define BOOT_CMDLINE_SIZE	0x10000ULL
#define BOOT_AREA_END		(BOOT_CMDLINE_ADDR + BOOT_CMDLINE_SIZE)

/* Load vm->cfg->kernel (and initrd, append) into vm->mem and set
 * vm->boot. Call after guest RAM exists and after the ACPI/MP tables
 * and their e820 entries are installed. Safe to call again on reset.
 * Without cfg->kernel it only sets BOOT_FIRMWARE. Returns 0, or -1 with
 * one line "FILE: problem" in err; never crashes on a bad image. Not
 * reentrant (the loaders use static scratch buffers): call it from one
 * thread at a time, as startup and the reset path do. */
int boot_load_kernel(struct vm *vm, char *err, size_t errlen);

#endif
