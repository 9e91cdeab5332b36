/* Unit tests for CPUID filtering: APIC IDs, topology, KVM leaves, edits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "vmm/cpuid.h"
#include "vmm/config.h"

static struct kvm_cpuid2 *fake_host(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 8 * sizeof(c->entries[0]));
	struct kvm_cpuid_entry2 *e = c->entries;

	e[0] = (struct kvm_cpuid_entry2){ .function = 1, .ebx = 0x00010800,
					   .ecx = (1u << 26) | (1u << 21), .edx = 1 };
	e[1] = (struct kvm_cpuid_entry2){ .function = 4, .index = 0,
					   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					   .eax = 0x121 | (7u << 14) | (15u << 26) };
	e[2] = (struct kvm_cpuid_entry2){ .function = 4, .index = 3,
					   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					   .eax = 0x163 | (7u << 14) | (15u << 26) };
	e[3] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 0,
					   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	e[4] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 1,
					   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	e[5] = (struct kvm_cpuid_entry2){ .function = 7, .index = 0,
					   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					   .edx = 1u << 29 };
	e[6] = (struct kvm_cpuid_entry2){ .function = 0x40000000, .eax = 0x40000001 };
	e[7] = (struct kvm_cpuid_entry2){ .function = 0x40000001, .eax = 0x1ff };
	c->nent = 8;
	return c;
}

static void test_apic_id_and_hypervisor_bit(void **state)
{
	struct kvm_cpuid2 *c = fake_host();
	char err[64];

	assert_int_equal(cpuid_setup(c, 5, 8, NULL, err, sizeof(err)), 0);
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 1, 0);
	assert_int_equal(e->ebx >> 24, 5);
	assert_int_equal((e->ebx >> 16) & 0xff, 8);
	assert_true(e->ecx & (1u << 31));
	assert_true(e->edx & (1u << 28));
	assert_int_equal(cpuid_find(c, 0xb, 0)->edx, 5);
	assert_int_equal(cpuid_find(c, 0xb, 1)->ebx, 8);
	assert_int_equal(cpuid_find(c, 0xb, 1)->ecx, (2 << 8) | 1);
	/* leaf 4: 8 cores per package, L3 shared by all of them */
	assert_int_equal(cpuid_find(c, 4, 0)->eax >> 26, 7);
	assert_int_equal((cpuid_find(c, 4, 3)->eax >> 14) & 0xfff, 7);
	assert_int_equal((cpuid_find(c, 4, 0)->eax >> 14) & 0xfff, 0);
	free(c);
}

static void test_kvm_signature(void **state)
{
	struct kvm_cpuid2 *c = fake_host();
	char err[64], sig[13] = { 0 };

	assert_int_equal(cpuid_setup(c, 0, 1, NULL, err, sizeof(err)), 0);
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 0x40000000, 0);
	memcpy(sig, &e->ebx, 4);
	memcpy(sig + 4, &e->ecx, 4);
	memcpy(sig + 8, &e->edx, 4);
	assert_string_equal(sig, "KVMKVMKVM");
	assert_true(cpuid_find(c, 0x40000001, 0)->eax & 1);	/* kvmclock kept */
	free(c);
}

static void test_feature_edits(void **state)
{
	struct kvm_cpuid2 *c = fake_host();
	struct vm_config cfg = { .n_cpu_edits = 3 };
	char err[64];

	strcpy(cfg.cpu_edits[0].name, "arch-capabilities");
	strcpy(cfg.cpu_edits[1].name, "xsave");
	strcpy(cfg.cpu_edits[2].name, "kvm_pv_eoi");
	cfg.cpu_edits[2].enable = false;
	assert_int_equal(cpuid_setup(c, 0, 1, &cfg, err, sizeof(err)), 0);
	assert_false(cpuid_find(c, 7, 0)->edx & (1u << 29));
	assert_false(cpuid_find(c, 1, 0)->ecx & (1u << 26));
	assert_false(cpuid_find(c, 0x40000001, 0)->eax & (1u << 6));
	assert_true(cpuid_find(c, 1, 0)->ecx & (1u << 21));	/* untouched */

	/* enabling keeps a supported bit and cannot invent an unsupported one */
	cfg.n_cpu_edits = 2;
	strcpy(cfg.cpu_edits[0].name, "x2apic");
	cfg.cpu_edits[0].enable = true;
	strcpy(cfg.cpu_edits[1].name, "avx2");
	cfg.cpu_edits[1].enable = true;
	assert_int_equal(cpuid_setup(c, 0, 1, &cfg, err, sizeof(err)), 0);
	assert_true(cpuid_find(c, 1, 0)->ecx & (1u << 21));
	assert_false(cpuid_find(c, 7, 0)->ebx & (1u << 5));

	strcpy(cfg.cpu_edits[0].name, "warp-drive");
	assert_int_equal(cpuid_setup(c, 0, 1, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "warp-drive"));
	free(c);
}

/* APIC ID 300: leaf 1 keeps its low 8 bits, the x2APIC leaves all of it;
 * x2APIC is turned on, and "-x2apic" is refused with that many CPUs. */
static void test_x2apic_ids(void **state)
{
	struct kvm_cpuid2 *c = fake_host();
	struct vm_config cfg = { .n_cpu_edits = 1 };
	char err[128];

	cpuid_find(c, 1, 0)->ecx &= ~(1u << 21);
	assert_int_equal(cpuid_setup(c, 300, 1024, NULL, err, sizeof(err)), 0);
	assert_int_equal(cpuid_find(c, 1, 0)->ebx >> 24, 300 & 0xff);
	assert_int_equal((cpuid_find(c, 1, 0)->ebx >> 16) & 0xff, 255);
	assert_int_equal(cpuid_find(c, 0xb, 0)->edx, 300);
	assert_int_equal(cpuid_find(c, 0xb, 1)->edx, 300);
	assert_int_equal(cpuid_find(c, 0xb, 1)->ebx, 1024);
	assert_true(cpuid_find(c, 1, 0)->ecx & (1u << 21));

	strcpy(cfg.cpu_edits[0].name, "x2apic");
	cfg.cpu_edits[0].enable = false;
	assert_int_equal(cpuid_setup(c, 0, 256, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "x2apic"));
	assert_int_equal(cpuid_setup(c, 0, 255, &cfg, err, sizeof(err)), 0);
	assert_false(cpuid_find(c, 1, 0)->ecx & (1u << 21));
	free(c);
}

static void test_known_features(void **state)
{
	assert_true(cpuid_feature_known("x2apic"));
	assert_true(cpuid_feature_known("sse4_2"));
	assert_true(cpuid_feature_known("kvmclock"));
	assert_false(cpuid_feature_known(""));
	assert_false(cpuid_feature_known("a-name-that-is-far-too-long-to-be-a-feature"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apic_id_and_hypervisor_bit),
		cmocka_unit_test(test_kvm_signature),
		cmocka_unit_test(test_feature_edits),
		cmocka_unit_test(test_x2apic_ids),
		cmocka_unit_test(test_known_features),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
