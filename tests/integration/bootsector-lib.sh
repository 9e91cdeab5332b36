# Shared by the firmware tests: make_sector OUT.bin MESSAGE assembles a
# 512-byte boot sector (also a PXE NBP): 16-bit real mode at 0000:7c00,
# MESSAGE on COM1 (polled), then status 0x31 to the isa-debug-exit port at
# 0xf4 (exit status 99). Needs only binutils; a failure exits the test.
make_sector() {
	local out=$1 msg=$2 src=${1%.bin}
	sed "s/@MSG@/$msg/" > "$src.S" <<'EOF'
	.code16
	.globl	_start
_start:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	mov	$msg, %si
next:
	lodsb
	test	%al, %al
	jz	done
	mov	%al, %bl
	mov	$0x3fd, %dx		/* line status: wait for THR empty */
1:	in	%dx, %al
	test	$0x20, %al
	jz	1b
	mov	$0x3f8, %dx
	mov	%bl, %al
	out	%al, %dx
	jmp	next
done:
	mov	$0xf4, %dx		/* isa-debug-exit: status (0x31 << 1) | 1 */
	mov	$0x31, %al
	out	%al, %dx
	hlt
	jmp	done
msg:
	.asciz	"@MSG@\r\n"
	.org	510
	.word	0xaa55
EOF
	if ! as --32 -o "$src.o" "$src.S" ||
		! ld -m elf_i386 -Ttext 0x7c00 --oformat binary -e _start -o "$out" "$src.o"; then
		echo "FAIL: cannot assemble the boot sector (binutils)"
		exit 1
	fi
	[ "$(stat -c %s "$out")" = 512 ] ||
		{ echo "FAIL: boot sector $out is not 512 bytes"; exit 1; }
}
