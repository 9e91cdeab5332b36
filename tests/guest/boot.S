/* boot.S: the guest test kit's entry points and low-level tables.
 * Owns the Multiboot v1 header (address fields, bit 16), the PVH ELF note
 * (XEN_ELFNOTE_PHYS32_ENTRY), the 32-bit entries and the switch to long
 * mode, the static page tables (2 MiB pages identity-mapping 4 GiB, all
 * user-accessible), the boot GDT, the interrupt stubs (exceptions go to C,
 * IRQs only count and EOI) and the AP real-mode trampoline.
 * Built with -DWITH_MB, -DWITH_PVH and/or -DWITH_LINUX (bzImage payload,
 * 32-bit entry at the first byte) to select the boot entries. */

#define SEL_KCODE	0x08
#define SEL_KDATA	0x10
#define SEL_CODE32	0x28
#define VEC_RTC		0x38
#define VEC_SPURIOUS	0xff
#define TRAMPOLINE_ADDR	0x8000
#define KSTACK_SIZE	8192

/* ---------------- boot headers ---------------- */
#ifdef WITH_LINUX
	/* bzImage payload: code32_start (0x100000) is the image's first byte */
	.section .multiboot, "a"
	.code32
	jmp linux_entry32
	.code64
#endif

#ifdef WITH_MB
#define MB_MAGIC	0x1badb002
#define MB_FLAGS	0x00010003	/* page-align mods, mem info, address fields */
	.section .multiboot, "a"
	.balign 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
	.long mb_header			/* header_addr */
	.long _image_start		/* load_addr */
	.long _edata			/* load_end_addr */
	.long _end			/* bss_end_addr */
	.long mb_entry32		/* entry_addr */
#endif

#ifdef WITH_PVH
	.section .note.Xen, "a", @note
	.balign 4
	.long 4				/* namesz */
	.long 4				/* descsz */
	.long 18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.long pvh_entry32
	.balign 4
#endif

/* ---------------- 32-bit entries ---------------- */
	.section .boot.text, "ax"
	.code32
	.globl mb_entry32
mb_entry32:				/* eax = 0x2badb002, ebx = mbi */
	cli
	movl %eax, boot_magic
	movl %ebx, boot_info
	jmp common32

	.globl linux_entry32
linux_entry32:				/* esi = boot_params (Linux 32-bit entry) */
	cli
	movl $0x53726448, boot_magic
	movl %esi, boot_info
	jmp common32

	.globl pvh_entry32
pvh_entry32:				/* ebx = hvm_start_info */
	cli
	movl $0x336ec578, boot_magic
	movl %ebx, boot_info

common32:
	lgdt boot_gdtr
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $(kstacks + KSTACK_SIZE), %esp
	movl %cr4, %eax
	orl $0x20, %eax			/* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx		/* EFER.LME */
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	andl $0x9fffffff, %eax		/* caches on */
	orl $0x80000001, %eax		/* PG | PE */
	movl %eax, %cr0
	ljmp $SEL_KCODE, $entry64

	.code64
entry64:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	movq $(kstacks + KSTACK_SIZE), %rsp
	xorl %ebp, %ebp
	call boot_main
1:	hlt
	jmp 1b

/* An AP arrives here from the trampoline, in 64-bit mode on the boot GDT.
 * It takes the next CPU index and that index's kernel stack. */
	.globl ap_entry64
ap_entry64:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $1, %eax
	lock xaddl %eax, ap_next_index
	movl %eax, %edi
	movl %eax, %ecx
	incl %ecx
	imull $KSTACK_SIZE, %ecx
	leaq kstacks(%rcx), %rsp
	xorl %ebp, %ebp
	call ap_main
2:	hlt
	jmp 2b

/* ---------------- AP trampoline (copied to TRAMPOLINE_ADDR) ---------------- */
	.section .rodata.trampoline, "a"
	.globl trampoline_start, trampoline_end
	.code16
trampoline_start:
	cli
	movw %cs, %ax
	movw %ax, %ds
	lgdtl (tramp_gdtr - trampoline_start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $(TRAMPOLINE_ADDR + tramp32 - trampoline_start)
	.code32
tramp32:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %cr4, %eax
	orl $0x20, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	andl $0x9fffffff, %eax
	orl $0x80000001, %eax
	movl %eax, %cr0
	ljmp $SEL_KCODE, $ap_entry64
	.balign 8
tramp_gdtr:
	.word boot_gdt_end - boot_gdt - 1
	.long boot_gdt
trampoline_end:
	.code64

/* ---------------- interrupt stubs ---------------- */
	.text
	.balign 16
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 256
	.balign 16
	.if vec < 32
	.if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || \
	    (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	pushq $vec
	.else
	pushq $0
	pushq $vec
	.endif
	jmp exc_common
	.else
	pushq %rax
	movl $vec, %eax
	jmp irq_common
	.endif
	.set vec, vec + 1
	.endr

/* External interrupts: count, clear the RTC flags for the RTC vector,
 * EOI the local APIC (not for the spurious vector). Kept short because
 * every CPL0 instruction is emulated. */
irq_common:
	lock incq irq_counts(,%rax,8)
	cmpl $VEC_SPURIOUS, %eax
	je 3f
	cmpl $VEC_RTC, %eax
	jne 2f
	movb $0x0c, %al
	outb %al, $0x70
	inb $0x71, %al
	testb $0x40, %al
	jz 1f
	lock incq rtc_pf_count
1:	testb $0x10, %al
	jz 2f
	lock incq rtc_uf_count
2:	movl $0xfee000b0, %eax
	movl $0, (%rax)
3:	popq %rax
	iretq

/* Exceptions: full register frame, C decides (services on #UD). */
exc_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	cld
	call exception_dispatch
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp
	iretq

/* enter_user(rip, rsp, arg): IRETQ to CPL3 with IF=1 and IOPL=3,
 * arg in %rdi for the CPL3 function. PVM's emulated IRETQ drops IOPL
 * (CPL3 then sees IOPL=0), so cpu.c also gives every TSS an I/O bitmap
 * that allows all ports. */
	.globl enter_user
enter_user:
	movq %rdx, %r8
	pushq $0x1b			/* SS = user data | 3 */
	pushq %rsi
	pushq $0x3202			/* IOPL=3, IF, reserved bit 1 */
	pushq $0x23			/* CS = user code | 3 */
	pushq %rdi
	movq %r8, %rdi
	iretq

/* ---------------- data: boot GDT, page tables ---------------- */
	.data
	.balign 16
	.globl boot_gdt, boot_gdt_end
boot_gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08 kernel code 64 */
	.quad 0x00cf92000000ffff	/* 0x10 kernel data */
	.quad 0x00cff2000000ffff	/* 0x18 user data */
	.quad 0x00affa000000ffff	/* 0x20 user code 64 */
	.quad 0x00cf9a000000ffff	/* 0x28 code 32 (trampoline, entry) */
boot_gdt_end:
	.balign 8
boot_gdtr:
	.word boot_gdt_end - boot_gdt - 1
	.quad boot_gdt

	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + 0x7
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x7
	.quad pd + 0x1000 + 0x7
	.quad pd + 0x2000 + 0x7
	.quad pd + 0x3000 + 0x7
	.fill 508, 8, 0
pd:					/* P | RW | US | PS; uncached above 3 GiB */
	.set pg, 0
	.rept 2048
	.if pg >= 1536
	.quad (pg << 21) | 0x9f
	.else
	.quad (pg << 21) | 0x87
	.endif
	.set pg, pg + 1
	.endr

	.section .note.GNU-stack, "", @progbits
