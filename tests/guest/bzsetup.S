/* bzsetup.S: the real-mode part of testkit.bzImage (Linux boot protocol
 * 2.06): boot sector with the setup header, and setup code for loaders that
 * run it (QEMU's linuxboot ROM jumps to setup+0x200 in real mode with DS =
 * the setup segment). That code goes to flat 32-bit protected mode and
 * jumps to code32_start with %esi = the setup segment's linear address,
 * which holds the header as a boot_params page. Loaders that skip the
 * setup code (minikvm) enter code32_start themselves. Assembled to a flat
 * binary: every address is an offset from setup_start. syssize is patched
 * by mkbzimage.sh. */

#define SETUP_SECTS	1

	.section .setup, "ax"
	.code16
	.globl setup_start
setup_start:
	.fill 0x1f1, 1, 0
	.byte SETUP_SECTS		/* 0x1f1 setup_sects */
	.word 0				/* 0x1f2 root_flags */
	.long 0				/* 0x1f4 syssize (patched) */
	.word 0				/* 0x1f8 ram_size */
	.word 0				/* 0x1fa vid_mode */
	.word 0				/* 0x1fc root_dev */
	.word 0xaa55			/* 0x1fe boot_flag */
	.byte 0xeb			/* 0x200 jmp short setup_code */
	.byte setup_code - 1f
1:	.ascii "HdrS"			/* 0x202 header */
	.word 0x0206			/* 0x206 version */
	.long 0				/* 0x208 realmode_swtch */
	.word 0				/* 0x20c start_sys_seg */
	.word 0				/* 0x20e kernel_version */
	.byte 0				/* 0x210 type_of_loader */
	.byte 0x01			/* 0x211 loadflags: LOADED_HIGH */
	.word 0				/* 0x212 setup_move_size */
	.long 0x100000			/* 0x214 code32_start */
	.long 0				/* 0x218 ramdisk_image */
	.long 0				/* 0x21c ramdisk_size */
	.long 0				/* 0x220 bootsect_kludge */
	.word 0				/* 0x224 heap_end_ptr */
	.byte 0				/* 0x226 ext_loader_ver */
	.byte 0				/* 0x227 ext_loader_type */
	.long 0				/* 0x228 cmd_line_ptr */
	.long 0x37ffffff		/* 0x22c initrd_addr_max */
	.long 0				/* 0x230 kernel_alignment */
	.byte 0				/* 0x234 relocatable_kernel */
	.byte 0				/* 0x235 min_alignment */
	.word 0				/* 0x236 xloadflags */
	.long 255			/* 0x238 cmdline_size */

setup_code:
	cli
	movw %ds, %ax
	movzwl %ax, %esi
	shll $4, %esi			/* boot_params linear address */
	leal (setup_gdt - setup_start)(%esi), %eax
	movl %eax, (setup_gdtr - setup_start + 2)
	lgdtl (setup_gdtr - setup_start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	movw $0x18, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	ljmpl $0x10, $0x100000

	.balign 8
setup_gdt:
	.quad 0
	.quad 0
	.quad 0x00cf9a000000ffff	/* 0x10 __BOOT_CS */
	.quad 0x00cf92000000ffff	/* 0x18 __BOOT_DS */
setup_gdtr:
	.word 31
	.long 0				/* base, filled in at run time */

	.org (SETUP_SECTS + 1) * 512
setup_end:

	.section .note.GNU-stack, "", @progbits
