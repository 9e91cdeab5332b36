/* Unit tests for the VM's GSI routing (vmm/vm.c) on a real KVM VM: MSI
 * route allocation, update and release, irqfd attach/detach (edge and
 * level with a resample fd), an MSI delivered through an irqfd into a
 * LAPIC, and the ISA/IOAPIC wiring kept when the table is rebuilt.
 * Fails loudly when /dev/kvm cannot be opened (CI must have it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>
#include "vmm/vm.h"

#define LAPIC_SVR	0xf0
#define LAPIC_IRR	0x200
#define MSI_ADDR_APIC0	0xfee00000ULL

struct fixture {
	struct vm_config cfg;
	struct vm vm;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		free(f);
		*state = NULL;
		return 0;
	}
	close(fd);
	f->cfg.ram_size = 16 << 20;
	f->cfg.ncpus = 1;
	if (vm_create(&f->vm, &f->cfg, err, sizeof(err)) < 0)
		fail_msg("vm_create: %s", err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f) {
		close(f->vm.vm_fd);
		close(f->vm.kvm_fd);
		free(f);
	}
	return 0;
}

#define NEED_KVM(f) do { if (!(f)) fail_msg("/dev/kvm is needed for this test"); } while (0)

static void test_alloc_update_release(void **state)
{
	struct fixture *f = *state;
	int a, b;

	NEED_KVM(f);
	a = vm_msi_route_alloc(&f->vm, MSI_ADDR_APIC0, 0x40);
	b = vm_msi_route_alloc(&f->vm, MSI_ADDR_APIC0, 0x41);
	assert_int_equal(a, VM_MSI_GSI_BASE);
	assert_int_equal(b, VM_MSI_GSI_BASE + 1);
	assert_int_equal(vm_msi_route_update(&f->vm, b, MSI_ADDR_APIC0, 0x51), 0);
	/* ISA GSIs and free GSIs are not MSI routes. */
	assert_int_equal(vm_msi_route_update(&f->vm, 4, MSI_ADDR_APIC0, 0x51), -EINVAL);
	assert_int_equal(vm_msi_route_update(&f->vm, b + 1, MSI_ADDR_APIC0, 0x51), -EINVAL);
	assert_int_equal(vm_msi_route_release(&f->vm, a), 0);
	assert_int_equal(vm_msi_route_release(&f->vm, a), -EINVAL);
	/* A released GSI is handed out again. */
	assert_int_equal(vm_msi_route_alloc(&f->vm, MSI_ADDR_APIC0, 0x42), a);
}

static void test_route_limit(void **state)
{
	struct fixture *f = *state;
	int gsi, n = 0;

	NEED_KVM(f);
	while ((gsi = vm_msi_route_alloc(&f->vm, MSI_ADDR_APIC0, 0x40 + n % 64)) >= 0) {
		assert_int_equal(gsi, VM_MSI_GSI_BASE + n);
		n++;
		assert_in_range(n, 1, VM_MSI_ROUTES_MAX);
	}
	assert_int_equal(gsi, -ENOSPC);
	assert_true(n >= 64);
	assert_int_equal(vm_msi_route_release(&f->vm, VM_MSI_GSI_BASE + 7), 0);
	assert_int_equal(vm_msi_route_alloc(&f->vm, MSI_ADDR_APIC0, 0x47), VM_MSI_GSI_BASE + 7);
}

static void test_irqfd_attach_detach(void **state)
{
	struct fixture *f = *state;
	int fd = eventfd(0, EFD_CLOEXEC), rfd = eventfd(0, EFD_CLOEXEC), gsi;

	NEED_KVM(f);
	gsi = vm_msi_route_alloc(&f->vm, MSI_ADDR_APIC0, 0x40);
	assert_true(gsi >= 0);
	assert_int_equal(vm_irqfd_attach(&f->vm, fd, gsi), 0);
	assert_int_equal(vm_irqfd_attach(&f->vm, fd, gsi), -EBUSY);	/* one GSI per fd */
	assert_int_equal(vm_irqfd_detach(&f->vm, fd, gsi), 0);
	assert_int_equal(vm_irqfd_attach(&f->vm, fd, gsi), 0);
	assert_int_equal(vm_irqfd_detach(&f->vm, fd, gsi), 0);
	/* Level-triggered with resampling: IOAPIC pins only. */
	assert_int_equal(vm_irqfd_attach_level(&f->vm, fd, rfd, gsi), -EINVAL);
	assert_int_equal(vm_irqfd_attach_level(&f->vm, fd, rfd, 10), 0);
	assert_int_equal(vm_irqfd_detach(&f->vm, fd, 10), 0);
	close(fd);
	close(rfd);
}

static bool lapic_irr(int vcpu_fd, unsigned vector)
{
	struct kvm_lapic_state l;
	uint32_t w;

	assert_int_equal(ioctl(vcpu_fd, KVM_GET_LAPIC, &l), 0);
	memcpy(&w, l.regs + LAPIC_IRR + (vector / 32) * 0x10, 4);
	return w & (1u << (vector % 32));
}

/* Wait up to a second for the (possibly deferred) irqfd injection. */
static bool wait_irr(int vcpu_fd, unsigned vector)
{
	for (int i = 0; i < 1000; i++) {
		if (lapic_irr(vcpu_fd, vector))
			return true;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	return false;
}

static void test_msi_through_irqfd(void **state)
{
	struct fixture *f = *state;
	struct kvm_lapic_state l;
	int vcpu, fd, gsi;
	uint64_t one = 1;
	uint32_t svr;

	NEED_KVM(f);
	vcpu = ioctl(f->vm.vm_fd, KVM_CREATE_VCPU, 0);
	assert_true(vcpu >= 0);
	/* Software-enable the LAPIC: a disabled one drops fixed interrupts. */
	assert_int_equal(ioctl(vcpu, KVM_GET_LAPIC, &l), 0);
	memcpy(&svr, l.regs + LAPIC_SVR, 4);
	svr |= 0x1ff;
	memcpy(l.regs + LAPIC_SVR, &svr, 4);
	assert_int_equal(ioctl(vcpu, KVM_SET_LAPIC, &l), 0);

	fd = eventfd(0, EFD_CLOEXEC);
	gsi = vm_msi_route_alloc(&f->vm, MSI_ADDR_APIC0, 0x40);
	assert_true(gsi >= 0);
	assert_int_equal(vm_irqfd_attach(&f->vm, fd, gsi), 0);
	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
	assert_true(wait_irr(vcpu, 0x40));
	/* After an update the same eventfd carries the new message. */
	assert_int_equal(vm_msi_route_update(&f->vm, gsi, MSI_ADDR_APIC0, 0x61), 0);
	assert_false(lapic_irr(vcpu, 0x61));
	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
	assert_true(wait_irr(vcpu, 0x61));
	assert_int_equal(vm_irqfd_detach(&f->vm, fd, gsi), 0);
	close(fd);
	close(vcpu);
}

/* The PIT's IRQ0 still reaches IOAPIC pin 2 (and PIC pin 0), IRQ 4 pin 4,
 * after MSI routes rebuilt the table. */
static void test_isa_wiring_kept(void **state)
{
	struct fixture *f = *state;
	struct kvm_irqchip ioapic = { .chip_id = KVM_IRQCHIP_IOAPIC };
	struct kvm_irqchip pic = { .chip_id = KVM_IRQCHIP_PIC_MASTER };
	struct kvm_irq_level line = { .irq = 0, .level = 1 };

	NEED_KVM(f);
	assert_true(vm_msi_route_alloc(&f->vm, MSI_ADDR_APIC0, 0x40) >= 0);
	assert_true(vm_msi_route_alloc(&f->vm, MSI_ADDR_APIC0, 0x41) >= 0);
	assert_int_equal(vm_msi_route_release(&f->vm, VM_MSI_GSI_BASE), 0);
	assert_int_equal(ioctl(f->vm.vm_fd, KVM_IRQ_LINE, &line), 0);
	line.irq = 4;
	assert_int_equal(ioctl(f->vm.vm_fd, KVM_IRQ_LINE, &line), 0);
	assert_int_equal(ioctl(f->vm.vm_fd, KVM_GET_IRQCHIP, &ioapic), 0);
	assert_int_equal(ioctl(f->vm.vm_fd, KVM_GET_IRQCHIP, &pic), 0);
	assert_int_equal(ioapic.chip.ioapic.irr & 0x17, (1u << 2) | (1u << 4));
	assert_int_equal(pic.chip.pic.irr & 0x17, (1u << 0) | (1u << 4));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_alloc_update_release),
		T(test_route_limit),
		T(test_irqfd_attach_detach),
		T(test_msi_through_irqfd),
		T(test_isa_wiring_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
