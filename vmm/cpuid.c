/* CPUID filtering for vCPUs (see cpuid.h). */
#include <stdio.h>
#include <string.h>
#include "vmm/cpuid.h"
#include "vmm/config.h"
#include "vmm/log.h"
#include "vmm/platform.h"

enum cpuid_reg { R_EAX, R_EBX, R_ECX, R_EDX };

struct cpu_feature {
	const char *name;
	unsigned function, index;
	enum cpuid_reg reg;
	unsigned bit;
};

/* Feature names as QEMU spells them for -cpu. */
static const struct cpu_feature cpu_features[] = {
	{ "sse3", 1, 0, R_ECX, 0 }, { "pclmulqdq", 1, 0, R_ECX, 1 },
	{ "monitor", 1, 0, R_ECX, 3 }, { "vmx", 1, 0, R_ECX, 5 },
	{ "ssse3", 1, 0, R_ECX, 9 }, { "fma", 1, 0, R_ECX, 12 },
	{ "cx16", 1, 0, R_ECX, 13 }, { "pdcm", 1, 0, R_ECX, 15 },
	{ "pcid", 1, 0, R_ECX, 17 }, { "sse4.1", 1, 0, R_ECX, 19 },
	{ "sse4.2", 1, 0, R_ECX, 20 }, { "x2apic", 1, 0, R_ECX, 21 },
	{ "movbe", 1, 0, R_ECX, 22 }, { "popcnt", 1, 0, R_ECX, 23 },
	{ "tsc-deadline", 1, 0, R_ECX, 24 }, { "aes", 1, 0, R_ECX, 25 },
	{ "xsave", 1, 0, R_ECX, 26 }, { "avx", 1, 0, R_ECX, 28 },
	{ "f16c", 1, 0, R_ECX, 29 }, { "rdrand", 1, 0, R_ECX, 30 },
	{ "hypervisor", 1, 0, R_ECX, 31 },
	{ "fpu", 1, 0, R_EDX, 0 }, { "vme", 1, 0, R_EDX, 1 }, { "pse", 1, 0, R_EDX, 3 },
	{ "tsc", 1, 0, R_EDX, 4 }, { "msr", 1, 0, R_EDX, 5 }, { "pae", 1, 0, R_EDX, 6 },
	{ "apic", 1, 0, R_EDX, 9 }, { "sep", 1, 0, R_EDX, 11 }, { "mtrr", 1, 0, R_EDX, 12 },
	{ "pge", 1, 0, R_EDX, 13 }, { "cmov", 1, 0, R_EDX, 15 }, { "pat", 1, 0, R_EDX, 16 },
	{ "clflush", 1, 0, R_EDX, 19 }, { "mmx", 1, 0, R_EDX, 23 }, { "fxsr", 1, 0, R_EDX, 24 },
	{ "sse", 1, 0, R_EDX, 25 }, { "sse2", 1, 0, R_EDX, 26 }, { "ht", 1, 0, R_EDX, 28 },
	{ "fsgsbase", 7, 0, R_EBX, 0 }, { "bmi1", 7, 0, R_EBX, 3 }, { "hle", 7, 0, R_EBX, 4 },
	{ "avx2", 7, 0, R_EBX, 5 }, { "smep", 7, 0, R_EBX, 7 }, { "bmi2", 7, 0, R_EBX, 8 },
	{ "erms", 7, 0, R_EBX, 9 }, { "invpcid", 7, 0, R_EBX, 10 }, { "rtm", 7, 0, R_EBX, 11 },
	{ "mpx", 7, 0, R_EBX, 14 }, { "avx512f", 7, 0, R_EBX, 16 }, { "rdseed", 7, 0, R_EBX, 18 },
	{ "adx", 7, 0, R_EBX, 19 }, { "smap", 7, 0, R_EBX, 20 }, { "clflushopt", 7, 0, R_EBX, 23 },
	{ "clwb", 7, 0, R_EBX, 24 }, { "sha-ni", 7, 0, R_EBX, 29 },
	{ "umip", 7, 0, R_ECX, 2 }, { "pku", 7, 0, R_ECX, 3 }, { "la57", 7, 0, R_ECX, 16 },
	{ "rdpid", 7, 0, R_ECX, 22 }, { "md-clear", 7, 0, R_EDX, 10 },
	{ "spec-ctrl", 7, 0, R_EDX, 26 }, { "arch-capabilities", 7, 0, R_EDX, 29 },
	{ "ssbd", 7, 0, R_EDX, 31 },
	{ "xsaveopt", 0xd, 1, R_EAX, 0 }, { "xsavec", 0xd, 1, R_EAX, 1 },
	{ "xsaves", 0xd, 1, R_EAX, 3 },
	{ "lahf-lm", 0x80000001, 0, R_ECX, 0 }, { "svm", 0x80000001, 0, R_ECX, 2 },
	{ "abm", 0x80000001, 0, R_ECX, 5 }, { "sse4a", 0x80000001, 0, R_ECX, 6 },
	{ "syscall", 0x80000001, 0, R_EDX, 11 }, { "nx", 0x80000001, 0, R_EDX, 20 },
	{ "pdpe1gb", 0x80000001, 0, R_EDX, 26 }, { "rdtscp", 0x80000001, 0, R_EDX, 27 },
	{ "lm", 0x80000001, 0, R_EDX, 29 },
	{ "invtsc", 0x80000007, 0, R_EDX, 8 },
	{ "kvmclock", 0x40000001, 0, R_EAX, 0 }, { "kvm-nopiodelay", 0x40000001, 0, R_EAX, 1 },
	{ "kvm-mmu", 0x40000001, 0, R_EAX, 2 }, { "kvmclock-stable-bit", 0x40000001, 0, R_EAX, 24 },
	{ "kvm-asyncpf", 0x40000001, 0, R_EAX, 4 }, { "kvm-steal-time", 0x40000001, 0, R_EAX, 5 },
	{ "kvm-pv-eoi", 0x40000001, 0, R_EAX, 6 }, { "kvm-pv-unhalt", 0x40000001, 0, R_EAX, 7 },
	{ "kvm-pv-tlb-flush", 0x40000001, 0, R_EAX, 9 }, { "kvm-pv-ipi", 0x40000001, 0, R_EAX, 11 },
	{ "kvm-poll-control", 0x40000001, 0, R_EAX, 12 }, { "kvm-pv-sched-yield", 0x40000001, 0, R_EAX, 13 },
	{ "kvm-msi-ext-dest-id", 0x40000001, 0, R_EAX, 15 },
};
#define N_FEATURES (sizeof(cpu_features) / sizeof(cpu_features[0]))

static const struct cpu_feature *feature_lookup(const char *name)
{
	for (size_t i = 0; i < N_FEATURES; i++)
		if (!strcmp(cpu_features[i].name, name))
			return &cpu_features[i];
	/* QEMU spells some names with '_' for '-' or '.' (sse4_2, kvm_pv_eoi) */
	char alt[32];
	size_t n = strlen(name);
	if (n >= sizeof(alt))
		return NULL;
	for (const char *sub = "-."; *sub; sub++) {
		for (size_t i = 0; i <= n; i++)
			alt[i] = name[i] == '_' ? *sub : name[i];
		for (size_t i = 0; i < N_FEATURES; i++)
			if (!strcmp(cpu_features[i].name, alt))
				return &cpu_features[i];
	}
	return NULL;
}

bool cpuid_feature_known(const char *name)
{
	return feature_lookup(name) != NULL;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function, unsigned index)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

static uint32_t *entry_reg(struct kvm_cpuid_entry2 *e, enum cpuid_reg r)
{
	switch (r) {
	case R_EAX: return &e->eax;
	case R_EBX: return &e->ebx;
	case R_ECX: return &e->ecx;
	default: return &e->edx;
	}
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

/* One thread per core, ncpus cores in one socket unless configured. */
static void cpuid_topology(struct kvm_cpuid2 *c, unsigned cpu_index, unsigned ncpus,
			   const struct vm_config *cfg)
{
	unsigned threads = cfg && cfg->threads ? cfg->threads : 1;
	unsigned cores = cfg && cfg->cores ? cfg->cores : (ncpus + threads - 1) / threads;
	unsigned logical = cores * threads;
	struct kvm_cpuid_entry2 *e;

	if ((e = cpuid_find(c, 1, 0))) {
		/* the 8-bit initial APIC ID: its low byte when the x2APIC ID
		 * (leaf 0xB/0x1F EDX) is wider, like hardware and QEMU */
		e->ebx = (e->ebx & 0x0000ffff) | ((cpu_index & 0xff) << 24) |
			 ((logical > 255 ? 255 : logical) << 16);
		e->ecx |= 1u << 31;			/* hypervisor */
		if (logical > 1)
			e->edx |= 1u << 28;		/* HTT: multi-core package */
	}
	for (unsigned sub = 0; sub < 8; sub++) {
		if (!(e = cpuid_find(c, 4, sub)) || !(e->eax & 0x1f))
			continue;
		unsigned share = (e->eax >> 5) & 7;	/* cache level */
		unsigned sharing = share >= 3 ? logical : threads;
		e->eax = (e->eax & 0x3ff) | ((sharing - 1) << 14) |
			 (((cores > 64 ? 64 : cores) - 1) << 26);
	}
	for (unsigned fn = 0xb; fn <= 0x1f; fn += 0x1f - 0xb) {
		for (unsigned sub = 0; (e = cpuid_find(c, fn, sub)) && sub < 4; sub++) {
			e->edx = cpu_index;
			if (sub == 0) {
				e->eax = bits_for(threads);
				e->ebx = threads;
				e->ecx = (1 << 8) | sub;
			} else if (sub == 1) {
				e->eax = bits_for(threads) + bits_for(cores);
				e->ebx = logical;
				e->ecx = (2 << 8) | sub;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = sub;
			}
		}
	}
	if ((e = cpuid_find(c, 0x80000008, 0)))
		e->ecx = (e->ecx & ~0xf0ffu) | (bits_for(logical) << 12) | (logical - 1);
}

/* The KVM signature leaf: "KVMKVMKVM\0\0\0". */
static void cpuid_kvm_signature(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 0x40000000, 0);

	if (!e)
		return;
	memcpy(&e->ebx, "KVMK", 4);
	memcpy(&e->ecx, "VMKV", 4);
	memcpy(&e->edx, "M\0\0\0", 4);
	if (e->eax < 0x40000001)
		e->eax = 0x40000001;
}

#define CPUID_1_ECX_X2APIC	(1u << 21)

/* APIC IDs are vCPU indexes: beyond 254 the guest must see x2APIC (KVM
 * emulates it whenever the irqchip is in the kernel). On by default in
 * that case; refused if "-cpu ...,-x2apic" turned it off. */
static int cpuid_check_x2apic(struct kvm_cpuid2 *c, unsigned ncpus, bool user_disabled,
			      char *err, size_t errlen)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 1, 0);

	if (ncpus <= XAPIC_ID_LIMIT || !e)
		return 0;
	if (user_disabled) {
		snprintf(err, errlen, "-smp %u needs x2apic (APIC IDs above 254), "
			 "but -cpu turns it off", ncpus);
		return -1;
	}
	e->ecx |= CPUID_1_ECX_X2APIC;
	return 0;
}

int cpuid_setup(struct kvm_cpuid2 *c, unsigned cpu_index, unsigned ncpus,
		const struct vm_config *cfg, char *err, size_t errlen)
{
	bool x2apic_off = false;

	cpuid_topology(c, cpu_index, ncpus, cfg);
	cpuid_kvm_signature(c);
	for (unsigned i = 0; cfg && i < cfg->n_cpu_edits; i++) {
		const struct cpu_feature *f = feature_lookup(cfg->cpu_edits[i].name);
		struct kvm_cpuid_entry2 *e;
		if (!f) {
			snprintf(err, errlen, "-cpu: unknown feature '%s'", cfg->cpu_edits[i].name);
			return -1;
		}
		e = cpuid_find(c, f->function, f->index);
		if (!cfg->cpu_edits[i].enable) {
			if (e)
				*entry_reg(e, f->reg) &= ~(1u << f->bit);
		} else if (!e || !(*entry_reg(e, f->reg) & (1u << f->bit))) {
			/* As QEMU: a feature KVM cannot give stays off, with a warning. */
			if (cpu_index == 0)
				log_warn("host doesn't support requested feature: %s", f->name);
		}
		if (f->function == 1 && f->reg == R_ECX && (1u << f->bit) == CPUID_1_ECX_X2APIC)
			x2apic_off = !cfg->cpu_edits[i].enable;
	}
	return cpuid_check_x2apic(c, ncpus, x2apic_off, err, errlen);
}
