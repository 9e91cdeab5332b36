/* The CPUID a vCPU sees: the host's KVM-supported leaves with topology,
 * APIC IDs, the hypervisor bit and KVM paravirtual leaves filled in, and
 * -cpu host,+feat,-feat edits applied. Pure functions, unit-tested. */
#ifndef VMM_CPUID_H
#define VMM_CPUID_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/kvm.h>

struct vm_config;

/* Check a "-cpu" feature name; returns false for an unknown one. */
bool cpuid_feature_known(const char *name);
/* Adjust entries in place for vCPU cpu_index of ncpus. Returns 0, or -1
 * with a message when an edit names an unknown feature. */
int cpuid_setup(struct kvm_cpuid2 *c, unsigned cpu_index, unsigned ncpus,
		const struct vm_config *cfg, char *err, size_t errlen);
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function, unsigned index);

#endif
