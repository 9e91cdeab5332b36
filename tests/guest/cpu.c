/* cpu.c: the kit's CPL0 side. Per-CPU GDT/TSS, the IDT, LAPIC enable,
 * kvmclock registration, the boot-time record of the PIC masks and the
 * kvmclock MSR, the drop to CPL3, the `ud2` service handler (rdmsr, wrmsr,
 * park, load an empty IDT) and fatal exception reports. Every instruction
 * here is emulated on the target machines (~0.6M instr/s) and some are
 * missing (XSAVE, INT3, CLAC, `int N`), so this file stays short and plain. */
#include "tests/guest/kit.h"

struct tss {
	u32 rsvd0;
	u64 rsp[3];
	u64 rsvd1;
	u64 ist[7];
	u64 rsvd2;
	u16 rsvd3;
	u16 iomap_base;
	u8 iomap[8192 + 1];	/* all zero: every port allowed; then 0xff. Needed
				 * here: IOPL=3 set by IRETQ does not survive PVM */
} __attribute__((packed));

struct idt_entry {
	u16 off_lo;
	u16 sel;
	u8 ist;
	u8 type;
	u16 off_mid;
	u32 off_hi;
	u32 rsvd;
} __attribute__((packed));

struct desc_ptr {
	u16 limit;
	u64 base;
} __attribute__((packed));

/* Saved by exc_common in boot.S, lowest address first */
struct exc_frame {
	u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vector, error, rip, cs, rflags, rsp, ss;
};

extern u64 boot_gdt[];
extern char isr_stubs[];
void enter_user(void *fn, u64 rsp, u64 arg) __attribute__((noreturn));

u8 kstacks[MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(16)));
static u8 ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(16)));
static u64 gdts[MAX_CPUS][GDT_ENTRIES] __attribute__((aligned(16)));
static struct tss tsses[MAX_CPUS] __attribute__((aligned(16)));
static struct idt_entry idt[256] __attribute__((aligned(16)));
struct pvclock pvclock_pages[MAX_CPUS];

u32 boot_magic, boot_info;
bool kvmclock_on;
u64 boot_kvmclock_msr;
u8 boot_pic_imr[2];
volatile u64 irq_counts[256];
volatile u64 rtc_pf_count, rtc_uf_count;
volatile u32 ap_next_index = 1;

static inline void wrmsr(u32 msr, u64 v)
{
	asm volatile("wrmsr" :: "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)));
}

static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}

/* Remap the 8259s away from the exception vectors and mask them: the kit
 * uses the IOAPIC, and firmware may have left the PIC at vector 8. */
static void pic_disable(void)
{
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, 0x20);
	outb(0xa1, 0x28);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

static void idt_init(void)
{
	for (int v = 0; v < 256; v++) {
		u64 off = (u64)(isr_stubs + 16 * v);

		idt[v].off_lo = off & 0xffff;
		idt[v].sel = SEL_KCODE;
		idt[v].ist = 0;
		idt[v].type = 0x8e;	/* present, DPL0, interrupt gate */
		idt[v].off_mid = (off >> 16) & 0xffff;
		idt[v].off_hi = off >> 32;
		idt[v].rsvd = 0;
	}
}

static bool cpu_has_kvmclock(void)
{
	u32 r[4];

	cpuid(0x40000000, 0, r);
	if (r[1] != 0x4b4d564b || r[2] != 0x564b4d56 || r[3] != 0x0000004d)
		return false;
	cpuid(0x40000001, 0, r);
	return r[0] & (1u << 3);
}

/* Load this CPU's GDT (with its TSS), the IDT, enable the LAPIC and
 * register the per-CPU kvmclock page. */
static void cpu_setup(u32 idx)
{
	u64 *gdt = gdts[idx];
	struct tss *tss = &tsses[idx];
	u64 base = (u64)tss, limit = sizeof(*tss) - 1;
	struct desc_ptr gdtr = { GDT_ENTRIES * 8 - 1, (u64)gdt };
	struct desc_ptr idtr = { sizeof(idt) - 1, (u64)idt };

	for (int i = 0; i < 6; i++)
		gdt[i] = boot_gdt[i];
	tss->rsp[0] = (u64)kstacks[idx] + KSTACK_SIZE;
	tss->iomap_base = offsetof(struct tss, iomap);
	tss->iomap[8192] = 0xff;
	gdt[SEL_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
			   ((base >> 24 & 0xff) << 56);
	gdt[SEL_TSS / 8 + 1] = base >> 32;
	asm volatile("lgdt %0" :: "m"(gdtr));
	asm volatile("ltr %w0" :: "r"(SEL_TSS));
	asm volatile("lidt %0" :: "m"(idtr));

	mmio_write32(LAPIC_BASE + 0x80, 0);			/* TPR */
	mmio_write32(LAPIC_BASE + 0xf0, 0x100 | VEC_SPURIOUS);	/* SVR: enable */
	mmio_write32(LAPIC_BASE + 0x350, 0x10000);		/* LINT0 masked */
	if (kvmclock_on)
		wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (u64)&pvclock_pages[idx] | 1);
}

static u64 user_stack_top(u32 idx)
{
	return (u64)&ustacks[idx][USTACK_SIZE - 16];
}

/* BSP, from entry64 in boot.S */
void boot_main(void)
{
	boot_pic_imr[0] = inb(0x21);
	boot_pic_imr[1] = inb(0xa1);
	pic_disable();
	idt_init();
	kvmclock_on = cpu_has_kvmclock();
	if (kvmclock_on)	/* 0 after power-on and after a reset */
		boot_kvmclock_msr = rdmsr(MSR_KVM_SYSTEM_TIME_NEW);
	cpu_setup(0);
	enter_user(user_main, user_stack_top(0), 0);
}

/* AP n (n >= 1), from ap_entry64 in boot.S */
void ap_main(u64 idx)
{
	if (idx >= MAX_CPUS)
		for (;;)
			asm volatile("cli; hlt");
	cpu_setup(idx);
	enter_user(ap_user_main, user_stack_top(idx), idx);
}

static void fatal_exception(struct exc_frame *f)
{
	u64 cr2;

	asm volatile("mov %%cr2, %0" : "=r"(cr2));
	kprintf("testkit: FAIL: exception %lu error %#lx at rip %#lx cs %#lx rflags %#lx "
		"rsp %#lx cr2 %#lx\n", f->vector, f->error, f->rip, f->cs, f->rflags, f->rsp, cr2);
	kprintf("testkit: result FAIL\n");
	outb(exit_port, 1);
	for (;;)
		asm volatile("cli; hlt");
}

/* #UD from CPL3 at `ud2; .byte code` is a service request. */
void exception_dispatch(struct exc_frame *f)
{
	const u8 *ip = (const u8 *)f->rip;

	if (f->vector != 6 || (f->cs & 3) != 3 || ip[0] != 0x0f || ip[1] != 0x0b)
		fatal_exception(f);
	switch (ip[2]) {
	case SVC_RDMSR: {
		u64 v = rdmsr(f->rcx);

		f->rax = (u32)v;
		f->rdx = v >> 32;
		break;
	}
	case SVC_WRMSR:
		wrmsr(f->rcx, (f->rdx << 32) | (u32)f->rax);
		break;
	case SVC_HALT:
		for (;;)
			asm volatile("cli; hlt");
	case SVC_LIDT_EMPTY: {
		struct desc_ptr empty = { 0, 0 };

		asm volatile("lidt %0" :: "m"(empty));
		break;
	}
	default:
		fatal_exception(f);
	}
	f->rip += 3;
}
