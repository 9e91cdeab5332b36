/* cases.c: the kit's CPU and clock cases. kvmclock (CPUID signature and
 * features, the pvclock page read at CPL3, monotonicity, agreement with the
 * PIT and with the CMOS wall time), smp (INIT-SIPI-SIPI to every MADT APIC
 * ID, each AP reaching CPL3) and demo (what the guest sees). */
#include "tests/guest/kit.h"

/* ---------------- kvmclock ---------------- */
static struct pvclock_wall wall_clock;

int case_kvmclock(void)
{
	u32 r[4];
	char sig[13];

	cpuid(0x40000000, 0, r);
	memcpy(sig, &r[1], 4);
	memcpy(sig + 4, &r[2], 4);
	memcpy(sig + 8, &r[3], 4);
	sig[12] = 0;
	if (memcmp(sig, "KVMKVMKVM\0\0\0", 12))
		return fail("CPUID 0x40000000 signature is not KVMKVMKVM");
	u32 max = r[0];

	cpuid(0x40000001, 0, r);
	info("CPUID 0x40000000 max %#x \"KVMKVMKVM\", 0x40000001 eax %#x", max, r[0]);
	if (!(r[0] & (1u << 3)))
		return fail("no KVM_FEATURE_CLOCKSOURCE2 (0x40000001 eax %#x)", r[0]);

	struct pvclock *pv = &pvclock_pages[0];

	svc_wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (u64)pv | 1);
	kvmclock_on = true;
	u64 msr = svc_rdmsr(MSR_KVM_SYSTEM_TIME_NEW);

	info("MSR %#x = %#lx; version %u tsc_timestamp %lu system_time %lu mul %u shift %d "
	     "flags %#x", MSR_KVM_SYSTEM_TIME_NEW, msr, pv->version, pv->tsc_timestamp,
	     pv->system_time, pv->tsc_to_system_mul, pv->tsc_shift, pv->flags);
	if (msr != ((u64)pv | 1))
		return fail("MSR reads back %#lx", msr);
	if (pv->version & 1 || !pv->version || !pv->tsc_to_system_mul)
		return fail("pvclock page not filled (version %u mul %u)", pv->version,
			    pv->tsc_to_system_mul);

	u64 prev = now_ns(), first = prev;

	for (int i = 0; i < 200000; i++) {
		u64 t = now_ns();

		if (t < prev)
			return fail("time went backwards at read %d: %lu then %lu", i, prev, t);
		prev = t;
	}
	info("200000 reads monotonic over %lu us", (prev - first) / 1000);

	/* 50 ms of PIT channel 2 must be 50 ms of kvmclock. A descheduled vCPU
	 * only makes a measurement longer, never shorter: the best of a few
	 * tells a wrong clock from a busy host. */
	u64 ns = ~0ull;
	for (int i = 0; i < 5 && (i == 0 || ns > 52000000); i++) {
		u64 one = pit_measure_ns(59659);
		if (one < ns)
			ns = one;
	}

	info("PIT 50 ms one-shot took %lu us of kvmclock", ns / 1000);
	if (ns < 45000000 || ns > 58000000)
		return fail("kvmclock disagrees with the PIT: %lu us for 50000 us", ns / 1000);

	/* wall clock against the CMOS */
	struct rtc_time t;

	svc_wrmsr(MSR_KVM_WALL_CLOCK_NEW, (u64)&wall_clock);
	u64 sys = now_ns();

	if (rtc_read_time(&t))
		return fail("RTC time never stable");
	u64 wall = wall_clock.sec + (wall_clock.nsec + sys) / 1000000000ull;
	u64 rtc = rtc_to_epoch(&t);
	s64 diff = (s64)(wall - rtc);

	info("wall clock version %u: %lu s since epoch, CMOS says %lu (diff %ld s)",
	     wall_clock.version, wall, rtc, diff);
	if (diff < -5 || diff > 5)
		return fail("kvmclock wall clock and CMOS differ by %ld s", diff);
	return 0;
}

/* ---------------- smp ---------------- */
volatile u32 ap_started;
volatile u32 ap_apic_ids[MAX_CPUS];
extern char trampoline_start[], trampoline_end[];

/* CPL3 entry of every AP: record who we are, then park. */
void ap_user_main(u64 idx)
{
	if (idx < MAX_CPUS)
		ap_apic_ids[idx] = lapic_id();
	asm volatile("lock incl %0" : "+m"(ap_started));
	svc_halt();
}

int smp_expected_cpus(void)
{
	char buf[16];

	if (cmdline_get("cpus", buf, sizeof(buf)))
		return (int)parse_num(buf, NULL);
	if (!acpi.found)
		acpi_init();
	return acpi.ncpus;
}

static int icr_send(u32 apic_id, u32 low)
{
	lapic_write(0x310, apic_id << 24);
	lapic_write(0x300, low);
	for (int i = 0; i < 100000; i++)
		if (!(lapic_read(0x300) & (1u << 12)))
			return 0;
	return fail("ICR delivery to APIC %u stuck (low %#x)", apic_id, low);
}

int case_smp(void)
{
	int expect = smp_expected_cpus();
	u32 self = lapic_id();

	if (!acpi.found || !acpi.ncpus)
		return fail("no MADT CPU list");
	info("BSP APIC ID %u, MADT lists %u CPUs, expecting %d", self, acpi.ncpus, expect);
	memcpy((void *)TRAMPOLINE_ADDR, trampoline_start, trampoline_end - trampoline_start);
	ap_apic_ids[0] = self;
	ap_started = 0;
	for (u32 i = 0; i < acpi.ncpus; i++) {
		u32 id = acpi.apic_ids[i];

		if (id == self)
			continue;
		if (icr_send(id, 0x4500))		/* INIT, assert */
			return -1;
		delay_ns(10000000);
		for (int s = 0; s < 2; s++) {		/* STARTUP twice */
			if (icr_send(id, 0x4600 | TRAMPOLINE_ADDR >> 12))
				return -1;
			delay_ns(200000);
		}
	}
	u64 t0 = now_ns();

	while (ap_started + 1 < (u32)expect && now_ns() - t0 < 5000000000ull)
		cpu_relax();
	u64 up_us = (now_ns() - t0) / 1000;

	delay_ns(50000000);			/* catch extra CPUs */
	u32 n = ap_started + 1;

	info("%u CPUs online (%u expected after %lu us)", n, expect, up_us);
	for (u32 i = 0; i < n && i < MAX_CPUS; i++) {
		bool in_madt = false;

		for (u32 j = 0; j < acpi.ncpus; j++)
			in_madt |= acpi.apic_ids[j] == ap_apic_ids[i];
		for (u32 j = 0; j < i; j++)
			if (ap_apic_ids[j] == ap_apic_ids[i])
				return fail("APIC ID %u reported twice", ap_apic_ids[i]);
		info("cpu %u: APIC ID %u%s", i, ap_apic_ids[i], in_madt ? "" : " (not in MADT)");
		if (!in_madt)
			return fail("APIC ID %u is not in the MADT", ap_apic_ids[i]);
	}
	if (n != (u32)expect)
		return fail("%u CPUs came up, expected %d", n, expect);
	return 0;
}

/* ---------------- demo ---------------- */
struct mb_mmap {
	u32 size;
	u64 addr, len;
	u32 type;
} __attribute__((packed));

static u64 ram_bytes(void)
{
	u64 total = 0;

	if (boot_magic == BOOT_MAGIC_PVH) {
		u64 si = boot_info;

		if (*(u32 *)(si + 4) < 1)
			return 0;
		u64 map = *(u64 *)(si + 0x28);
		u32 n = *(u32 *)(si + 0x30);

		for (u32 i = 0; i < n; i++)
			if (*(u32 *)(map + 24 * i + 16) == 1)
				total += *(u64 *)(map + 24 * i + 8);
	} else if (boot_magic == BOOT_MAGIC_LINUX) {
		u64 bp = boot_info;
		u8 n = *(u8 *)(bp + 0x1e8);

		for (u32 i = 0; i < n && i < 128; i++)
			if (*(u32 *)(bp + 0x2d0 + 20 * i + 16) == 1)
				total += *(u64 *)(bp + 0x2d0 + 20 * i + 8);
	} else if (boot_magic == BOOT_MAGIC_MB) {
		u64 mbi = boot_info;
		u32 flags = *(u32 *)mbi;

		if (flags & (1 << 6)) {
			u64 p = *(u32 *)(mbi + 48), end = p + *(u32 *)(mbi + 44);

			for (; p < end; p += ((struct mb_mmap *)p)->size + 4)
				if (((struct mb_mmap *)p)->type == 1)
					total += ((struct mb_mmap *)p)->len;
		} else if (flags & 1) {
			total = (u64)(*(u32 *)(mbi + 4) + *(u32 *)(mbi + 8)) * 1024;
		}
	}
	return total;
}

int case_demo(void)
{
	u32 r[4], brand[13] = { 0 };
	char vendor[13];

	cpuid(0, 0, r);
	memcpy(vendor, &r[1], 4);
	memcpy(vendor + 4, &r[3], 4);
	memcpy(vendor + 8, &r[2], 4);
	vendor[12] = 0;
	cpuid(1, 0, r);
	u32 fam = (r[0] >> 8) & 15, model = (r[0] >> 4) & 15;

	if (fam == 6 || fam == 15)
		model |= ((r[0] >> 16) & 15) << 4;
	if (fam == 15)
		fam += (r[0] >> 20) & 0xff;
	cpuid(0x80000000, 0, r);
	if (r[0] >= 0x80000004)
		for (u32 i = 0; i < 3; i++)
			cpuid(0x80000002 + i, 0, brand + 4 * i);
	info("CPU %s family %u model %u: %s", vendor, fam, model, (char *)brand);
	if (!acpi.found)
		acpi_init();
	info("%u CPUs in the MADT", acpi.ncpus);
	info("RAM %lu MiB (from the %s memory map)", ram_bytes() >> 20, boot_protocol_name());
	info("MTRR default type 0x%lx", svc_rdmsr(0x2ff));
	pci_list(true);
	if (acpi.found)
		info("ACPI: RSDP %#lx FADT %#lx MADT %#lx DSDT %#lx, S5 type %d", acpi.rsdp,
		     acpi.fadt, acpi.madt, acpi.dsdt, acpi.slp_typa);
	if (kvmclock_on)
		info("kvmclock: %lu ms since the clock's epoch", now_ns() / 1000000);
	else
		info("no kvmclock");
	return 0;
}
