/* Guest test kit: shared declarations. The kit is a freestanding 64-bit
 * x86 guest; boot.S and cpu.c do the privileged (CPL0) setup, everything
 * else runs at CPL3 with IOPL=3 and reaches CPL0 only through the `ud2`
 * service trap (svc_* below) or through interrupts. */
#ifndef TESTKIT_KIT_H
#define TESTKIT_KIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;

#define MAX_CPUS	32
#define KSTACK_SIZE	8192
#define USTACK_SIZE	16384

/* GDT layout, shared by the boot GDT and the per-CPU GDTs */
#define SEL_KCODE	0x08
#define SEL_KDATA	0x10
#define SEL_UDATA	0x18
#define SEL_UCODE	0x20
#define SEL_CODE32	0x28
#define SEL_TSS		0x30
#define GDT_ENTRIES	8

/* Interrupt vectors used by the kit */
#define VEC_PIT		0x30
#define VEC_LAPIC_TIMER	0x31
#define VEC_RTC		0x38
#define VEC_SPURIOUS	0xff

/* Service codes: the byte following `ud2` */
#define SVC_RDMSR	1
#define SVC_WRMSR	2
#define SVC_HALT	3	/* cli; hlt forever (parks the CPU) */
#define SVC_LIDT_EMPTY	4	/* load an IDT with limit 0: the next fault is fatal */

#define LAPIC_BASE	0xfee00000UL
#define IOAPIC_BASE	0xfec00000UL
#define COM1		0x3f8
#define TRAMPOLINE_ADDR	0x8000

#define MSR_KVM_WALL_CLOCK_NEW	0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW	0x4b564d01

/* Boot protocol facts saved by boot.S */
#define BOOT_MAGIC_MB	0x2badb002
#define BOOT_MAGIC_PVH	0x336ec578
#define BOOT_MAGIC_LINUX 0x53726448	/* "HdrS": boot_info is boot_params */
extern u32 boot_magic, boot_info;

struct pvclock {
	u32 version;
	u32 pad0;
	u64 tsc_timestamp;
	u64 system_time;
	u32 tsc_to_system_mul;
	int8_t tsc_shift;
	u8 flags;
	u8 pad[2];
} __attribute__((packed, aligned(32)));

struct pvclock_wall {
	u32 version;
	u32 sec;
	u32 nsec;
} __attribute__((packed, aligned(16)));

extern struct pvclock pvclock_pages[MAX_CPUS];
extern volatile u64 irq_counts[256];
extern volatile u64 rtc_pf_count, rtc_uf_count;
extern bool kvmclock_on;	/* set at CPL0 setup when CPUID offers it */
extern u64 boot_kvmclock_msr;	/* MSR_KVM_SYSTEM_TIME_NEW as the kit found it */
extern u8 boot_pic_imr[2];	/* 8259 masks as the kit found them */
extern u16 exit_port;

/* ---- port and MMIO access, CPU instructions usable at CPL3 ---- */
static inline void outb(u16 port, u8 v) { asm volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { asm volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { asm volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
	u8 v;
	asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u16 inw(u16 port)
{
	u16 v;
	asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u32 inl(u16 port)
{
	u32 v;
	asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u8 mmio_read8(u64 addr) { return *(volatile u8 *)addr; }
static inline u16 mmio_read16(u64 addr) { return *(volatile u16 *)addr; }
static inline void mmio_write8(u64 addr, u8 v) { *(volatile u8 *)addr = v; }
static inline void mmio_write16(u64 addr, u16 v) { *(volatile u16 *)addr = v; }
static inline u32 mmio_read32(u64 addr) { return *(volatile u32 *)addr; }
static inline void mmio_write32(u64 addr, u32 v) { *(volatile u32 *)addr = v; }
static inline void cpu_relax(void) { asm volatile("pause" ::: "memory"); }
static inline u64 rdtsc(void)
{
	u32 lo, hi;
	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}
static inline void cpuid(u32 leaf, u32 sub, u32 r[4])
{
	asm volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
		     : "a"(leaf), "c"(sub));
}

/* ---- CPL0 services from CPL3 ---- */
static inline u64 svc_rdmsr(u32 msr)
{
	u32 lo, hi;
	asm volatile("ud2; .byte 1" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
	return ((u64)hi << 32) | lo;
}
static inline void svc_wrmsr(u32 msr, u64 v)
{
	asm volatile("ud2; .byte 2" :: "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
static inline void svc_lidt_empty(void)
{
	asm volatile("ud2; .byte 4" ::: "memory");
}
static inline void __attribute__((noreturn)) svc_halt(void)
{
	for (;;)
		asm volatile("ud2; .byte 3" ::: "memory");
}

/* ---- lib.c: strings, console, time, interrupt controllers ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
u64 parse_num(const char *s, const char **end);

void serial_init(void);
void serial_putc(char c);
int serial_getc_nowait(void);	/* -1 when nothing received */
int kvsnprintf(char *buf, size_t len, const char *fmt, va_list ap);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Test case reporting: lines are prefixed "testkit: <case>: " */
extern const char *current_case;
extern const char *case_pass_note;	/* appended to the PASS line, e.g. " (second boot)" */
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Command line ("case=... exit=0xf4 cpus=N"); value of key or NULL */
const char *cmdline_get(const char *key, char *buf, size_t len);
extern const char *cmdline;

u64 now_ns(void);		/* kvmclock, or TSC calibrated against the PIT */
void time_init(void);
void delay_ns(u64 ns);
u64 pvclock_read(const struct pvclock *pv);
u64 pit_measure_ns(u32 pit_ticks);	/* run PIT ch2 one-shot, time it */

u32 lapic_read(u32 reg);
void lapic_write(u32 reg, u32 v);
u32 lapic_id(void);
void ioapic_route(u32 gsi, u8 vector, bool level, bool low, u32 dest);
void ioapic_mask(u32 gsi);
u32 ioapic_read_entry(u32 gsi);	/* low word of a redirection entry */

struct rtc_time { u32 year, mon, day, hour, min, sec; };
u8 cmos_read(u8 reg);
void cmos_write(u8 reg, u8 v);
int rtc_read_time(struct rtc_time *t);
u64 rtc_to_epoch(const struct rtc_time *t);

void __attribute__((noreturn)) kit_exit(bool pass);

/* ---- acpi.c ---- */
struct acpi_info {
	bool found;
	u64 rsdp, rsdt, xsdt;
	u64 fadt, madt, dsdt;
	u32 pm1a_cnt, pm1a_evt, pm_tmr, smi_cmd;
	u32 ncpus;			/* enabled local APICs */
	u32 apic_ids[MAX_CPUS];
	u32 ioapic_addr;
	bool has_ioapic;
	u32 irq_to_gsi[16];
	u16 irq_flags[16];		/* MPS INTI flags from overrides */
	int noverrides;
	int slp_typa;			/* -1 when _S5_ not found */
};
extern struct acpi_info acpi;
int acpi_init(void);		/* 0 when RSDP and the tables were found */
void acpi_poweroff(void);	/* returns only if S5 did not power off */
u32 isa_irq_gsi(u32 irq);

/* ---- cases ---- */
int case_serial(void);
int case_cmos(void);
int case_timers(void);
int case_kvmclock(void);
int case_kvmclock_io(void);	/* clock_io.c: kvmclock while virtio-blk is busy */
int case_smp(void);
int case_pci(void);
int case_acpi(void);
int case_demo(void);
int case_reset(void);
int case_fatal(void);
int case_badio(void);
int case_sleep(void);
int case_virtio_rng(void);	/* virtio.c: mode=modern (default) or legacy */
int case_virtio_blk(void);	/* virtio_blk.c: mode=modern (default) or legacy */
int case_virtio_blk_discard(void);	/* virtio_blk.c */
int case_virtio_blk_config(void);
int case_virtio_blk_mq(void);
int case_virtio_blk_pattern(void);
int case_blk_bench(void);
int case_net_peer(void);	/* virtio_net.c */
int case_net_user(void);
int case_net_tap(void);
int case_net_bench(void);
int case_net_robust(void);
void pci_list(bool print);
int smp_expected_cpus(void);

/* ---- cpu.c (CPL0) ---- */
void boot_main(void);
void ap_main(u64 idx);
void ap_user_main(u64 idx);
void user_main(void);
const char *boot_protocol_name(void);
extern volatile u32 ap_next_index;
extern volatile u32 ap_started;
extern volatile u32 ap_apic_ids[MAX_CPUS];

#endif
