/* The VM: KVM VM creation with the in-kernel irqchip and PIT, RAM slots,
 * interrupt lines, and the lifecycle (run, reset, power-off, fatal) that
 * the main thread drives while vCPU and event-loop threads do the work. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>
#include "vmm/vm.h"
#include "vmm/kvm.h"
#include "vmm/vcpu.h"
#include "vmm/log.h"
#include "vmm/event_loop.h"
#include "vmm/platform.h"

/* Below the 16 MiB firmware window, where QEMU puts them too. */
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define KVM_TSS_ADDR          0xfeffd000ULL
#define MAX_SLOTS             256

static uint64_t slot_used[MAX_SLOTS / 64];

int vm_map_memory(struct vm *vm, uint64_t gpa, uint64_t size, void *hva, bool readonly)
{
	struct kvm_userspace_memory_region r = {
		.guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uintptr_t)hva,
		.flags = readonly ? KVM_MEM_READONLY : 0,
	};

	for (unsigned slot = 0; slot < MAX_SLOTS; slot++) {
		if (slot_used[slot / 64] & (1ULL << (slot % 64)))
			continue;
		r.slot = slot;
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return -errno;
		slot_used[slot / 64] |= 1ULL << (slot % 64);
		return slot;
	}
	return -ENOSPC;
}

int vm_unmap_memory(struct vm *vm, int slot)
{
	struct kvm_userspace_memory_region r = { .slot = slot, .memory_size = 0 };

	if (slot < 0 || slot >= MAX_SLOTS || !(slot_used[slot / 64] & (1ULL << (slot % 64))))
		return -EINVAL;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -errno;
	slot_used[slot / 64] &= ~(1ULL << (slot % 64));
	return 0;
}

/* RAM below 640 KiB, from 1 MiB to the PCI hole, and above 4 GiB. The
 * 0xC0000-0xFFFFF window belongs to the chipset (PAM) device. */
static int vm_map_ram(struct vm *vm)
{
	struct guest_memory *m = &vm->mem;
	int r = vm_map_memory(vm, 0, VGA_HOLE_START, m->host, false);

	if (r >= 0 && m->below_4g > MiB)
		r = vm_map_memory(vm, MiB, m->below_4g - MiB, m->host + MiB, false);
	if (r >= 0 && m->above_4g)
		r = vm_map_memory(vm, HIGH_RAM_START, m->above_4g, m->host + m->below_4g, false);
	return r < 0 ? r : 0;
}

static void kvm_irq_set(void *opaque, unsigned gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_guest(LOG_GUEST_ERRORS, "KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}

struct irq_line vm_irq_line(struct vm *vm, unsigned gsi)
{
	return (struct irq_line){ .set_level = kvm_irq_set, .opaque = vm, .gsi = gsi };
}

int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr, .address_hi = addr >> 32, .data = data,
	};

	return ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

/* --- GSI routing --------------------------------------------------------- */

_Static_assert(VM_MSI_GSI_BASE == IOAPIC_PINS, "MSI GSIs start after the IOAPIC pins");

/* The kept list the table is rebuilt from: the ISA/IOAPIC wiring is fixed,
 * MSI routes come and go. */
struct vm_routes {
	pthread_mutex_t lock;
	unsigned limit;			/* MSI routes KVM's table leaves room for */
	struct msi_route {
		bool used;
		uint64_t addr;
		uint32_t data;
	} msi[VM_MSI_ROUTES_MAX];
};

/* ISA routes: 15 PIC + 23 IOAPIC entries. */
#define ISA_ROUTES 38

/* The PC's ISA wiring: IRQ0 (the PIT) reaches IOAPIC pin 2, as the MADT
 * override IRQ0 -> GSI 2 says; the cascade pin 2 has no PIC route; the
 * other ISA IRQs go to both PICs and the same IOAPIC pin; GSIs 16-23
 * only to the IOAPIC. KVM's default table routes GSI 0 to pin 0. */
static unsigned fill_isa_routes(struct kvm_irq_routing_entry *e)
{
	unsigned n = 0;

	for (unsigned gsi = 0; gsi < 16; gsi++) {
		if (gsi == 2)
			continue;
		e[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
				       gsi % 8 } };
	}
	for (unsigned gsi = 0; gsi < IOAPIC_PINS; gsi++) {
		if (gsi == 2)
			continue;
		e[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi } };
	}
	return n;
}

/* Rebuild KVM's table from the list (routes lock held). */
static int commit_routes(struct vm *vm)
{
	struct vm_routes *rt = vm->routes;
	struct kvm_irq_routing *r;
	unsigned n;
	int ret = 0;

	r = calloc(1, sizeof(*r) + (ISA_ROUTES + rt->limit) * sizeof(r->entries[0]));
	if (!r)
		return -ENOMEM;
	n = fill_isa_routes(r->entries);
	for (unsigned i = 0; i < rt->limit; i++) {
		if (!rt->msi[i].used)
			continue;
		r->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = VM_MSI_GSI_BASE + i, .type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = (uint32_t)rt->msi[i].addr,
				   .address_hi = rt->msi[i].addr >> 32,
				   .data = rt->msi[i].data } };
	}
	r->nr = n;
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, r) < 0)
		ret = -errno;
	free(r);
	return ret;
}

static int vm_setup_irq_routing(struct vm *vm)
{
	int max = kvm_check_extension(vm->vm_fd, KVM_CAP_IRQ_ROUTING);
	struct vm_routes *rt = calloc(1, sizeof(*rt));
	int ret;

	if (!rt) {
		errno = ENOMEM;
		return -1;
	}
	pthread_mutex_init(&rt->lock, NULL);
	/* The capability is the number of routing entries KVM accepts. */
	if (max > ISA_ROUTES)
		rt->limit = max - ISA_ROUTES;
	if (rt->limit > VM_MSI_ROUTES_MAX)
		rt->limit = VM_MSI_ROUTES_MAX;
	vm->routes = rt;
	ret = commit_routes(vm);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

static struct msi_route *msi_route_of(struct vm *vm, unsigned gsi)
{
	unsigned i = gsi - VM_MSI_GSI_BASE;

	if (gsi < VM_MSI_GSI_BASE || i >= vm->routes->limit || !vm->routes->msi[i].used)
		return NULL;
	return &vm->routes->msi[i];
}

int vm_msi_route_alloc(struct vm *vm, uint64_t addr, uint32_t data)
{
	struct vm_routes *rt = vm->routes;
	int ret = -ENOSPC;

	pthread_mutex_lock(&rt->lock);
	for (unsigned i = 0; i < rt->limit; i++) {
		if (rt->msi[i].used)
			continue;
		rt->msi[i] = (struct msi_route){ .used = true, .addr = addr, .data = data };
		ret = commit_routes(vm);
		if (ret < 0)
			rt->msi[i].used = false;
		else
			ret = VM_MSI_GSI_BASE + i;
		break;
	}
	pthread_mutex_unlock(&rt->lock);
	return ret;
}

int vm_msi_route_update(struct vm *vm, unsigned gsi, uint64_t addr, uint32_t data)
{
	struct msi_route *m, old;
	int ret = 0;

	pthread_mutex_lock(&vm->routes->lock);
	m = msi_route_of(vm, gsi);
	if (!m) {
		ret = -EINVAL;
	} else if (m->addr != addr || m->data != data) {
		old = *m;
		m->addr = addr;
		m->data = data;
		ret = commit_routes(vm);
		if (ret < 0)
			*m = old;
	}
	pthread_mutex_unlock(&vm->routes->lock);
	return ret;
}

int vm_msi_route_release(struct vm *vm, unsigned gsi)
{
	struct msi_route *m;
	int ret = -EINVAL;

	pthread_mutex_lock(&vm->routes->lock);
	m = msi_route_of(vm, gsi);
	if (m) {
		m->used = false;
		ret = commit_routes(vm);
		if (ret < 0)
			m->used = true;
	}
	pthread_mutex_unlock(&vm->routes->lock);
	return ret;
}

static int irqfd(struct vm *vm, int fd, int resample_fd, unsigned gsi, uint32_t flags)
{
	struct kvm_irqfd r = { .fd = fd, .gsi = gsi, .flags = flags };

	if (flags & KVM_IRQFD_FLAG_RESAMPLE)
		r.resamplefd = resample_fd;
	return ioctl(vm->vm_fd, KVM_IRQFD, &r) < 0 ? -errno : 0;
}

int vm_irqfd_attach(struct vm *vm, int fd, unsigned gsi)
{
	return irqfd(vm, fd, -1, gsi, 0);
}

int vm_irqfd_attach_level(struct vm *vm, int fd, int resample_fd, unsigned gsi)
{
	if (gsi >= IOAPIC_PINS)
		return -EINVAL;
	return irqfd(vm, fd, resample_fd, gsi, KVM_IRQFD_FLAG_RESAMPLE);
}

int vm_irqfd_detach(struct vm *vm, int fd, unsigned gsi)
{
	return irqfd(vm, fd, -1, gsi, KVM_IRQFD_FLAG_DEASSIGN);
}

/* The interrupt controllers and PIT as created: restored on every reset,
 * since KVM has no reset for them and a rebooting guest must not find the
 * masks and modes its previous boot left. */
static struct kvm_irqchip power_on_chips[3];
static struct kvm_pit_state2 power_on_pit;

static int vm_save_power_on_irqchip(struct vm *vm, char *err, size_t errlen)
{
	for (unsigned i = 0; i < 3; i++) {
		power_on_chips[i].chip_id = i;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &power_on_chips[i]) < 0)
			goto fail;
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &power_on_pit) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "cannot read the interrupt controller state: %s", strerror(errno));
	return -1;
}

static int vm_reset_irqchip(struct vm *vm)
{
	for (unsigned i = 0; i < 3; i++)
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &power_on_chips[i]) < 0)
			return -1;
	return ioctl(vm->vm_fd, KVM_SET_PIT2, &power_on_pit);
}

static int vm_create_irqchip(struct vm *vm, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){ KVM_IDENTITY_MAP_ADDR }) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
		snprintf(err, errlen, "cannot set up the TSS area: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP) < 0) {
		snprintf(err, errlen, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return -1;
	}
	/* APIC IDs are vCPU indexes: from 255 on the in-kernel LAPICs need
	 * 32-bit x2APIC IDs, and 0xff must stop meaning broadcast in x2APIC
	 * mode (QEMU asks for the same two flags in that case). */
	if (vm->ncpus > XAPIC_ID_LIMIT) {
		uint64_t x2apic = KVM_X2APIC_API_USE_32BIT_IDS |
				  KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK;
		struct kvm_enable_cap cap = { .cap = KVM_CAP_X2APIC_API, .args[0] = x2apic };
		int have = kvm_check_extension(vm->vm_fd, KVM_CAP_X2APIC_API);

		if (((uint64_t)have & x2apic) != x2apic) {
			snprintf(err, errlen, "-smp %u needs x2APIC IDs above 254, but this "
				 "host's KVM lacks KVM_CAP_X2APIC_API", vm->ncpus);
			return -1;
		}
		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
			snprintf(err, errlen, "KVM_ENABLE_CAP(X2APIC_API): %s", strerror(errno));
			return -1;
		}
	}
	if (vm_setup_irq_routing(vm) < 0) {
		snprintf(err, errlen, "KVM_SET_GSI_ROUTING: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		snprintf(err, errlen, "KVM_CREATE_PIT2: %s", strerror(errno));
		return -1;
	}
	return vm_save_power_on_irqchip(vm, err, errlen);
}

int vm_create(struct vm *vm, const struct vm_config *cfg, char *err, size_t errlen)
{
	int max_vcpus;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->ncpus = cfg->ncpus;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->kvm_fd = kvm_open_checked("/dev/kvm", err, errlen);
	if (vm->kvm_fd < 0)
		return -1;
	max_vcpus = kvm_check_extension(vm->kvm_fd, KVM_CAP_MAX_VCPUS);
	if (!max_vcpus)
		max_vcpus = kvm_check_extension(vm->kvm_fd, KVM_CAP_NR_VCPUS);
	if ((int)vm->ncpus > max_vcpus) {
		snprintf(err, errlen, "-smp %u exceeds this host's KVM limit of %d vCPUs",
			 vm->ncpus, max_vcpus);
		return -1;
	}
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0 || vm->vcpu_mmap_size <= 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	if (memory_alloc(&vm->mem, cfg->ram_size, err, errlen) < 0)
		return -1;
	/* The pages KVM uses for the real-mode TSS and identity map. */
	e820_add(&vm->mem, KVM_IDENTITY_MAP_ADDR, 0x4000, E820_RESERVED);
	if (vm_map_ram(vm) < 0) {
		snprintf(err, errlen, "cannot map guest RAM into KVM: %s", strerror(errno));
		return -1;
	}
	if (vm_create_irqchip(vm, err, errlen) < 0)
		return -1;
	vm->io = io_bus_new();
	vm->loop = event_loop_new();
	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->io || !vm->loop || !vm->vcpus) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int vm_create_vcpus(struct vm *vm, char *err, size_t errlen)
{
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vcpu_create(vm, i, err, errlen) < 0)
			return -1;
	return 0;
}

static void vm_post(struct vm *vm, enum vm_exit_reason why, int code)
{
	/* The guest must not run past a reset or power-off request (firmware
	 * follows its 0xCF9 write with instructions it never expects to run). */
	if (vm->vcpus)
		vcpus_request_pause(vm);
	pthread_mutex_lock(&vm->lock);
	if (why == VM_RESET) {
		vm->reset_requested = true;
	} else if (vm->exit_reason == VM_RUNNING || why == VM_FATAL) {
		vm->exit_reason = why;
		vm->exit_code = code;
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm_request_poweroff(struct vm *vm, int exit_code) { vm_post(vm, VM_POWEROFF, exit_code); }
void vm_request_reset(struct vm *vm) { vm_post(vm, VM_RESET, 0); }
void vm_request_quit(struct vm *vm) { vm_post(vm, VM_QUIT, 0); }
void vm_request_fatal(struct vm *vm) { vm_post(vm, VM_FATAL, EXIT_GUEST_FATAL); }

/* Guest reset: park every vCPU, reset devices, reload the boot payload,
 * return vCPUs to their power-on state and let them go. */
static int vm_do_reset(struct vm *vm)
{
	vcpus_pause(vm);
	if (vm_reset_irqchip(vm) < 0) {
		log_error("reset: interrupt controllers: %s", strerror(errno));
		return -1;
	}
	for (struct reset_hook *h = vm->reset_hooks; h; h = h->next)
		h->reset(h->opaque);
	if (vm->reload_boot) {
		char err[256];
		if (vm->reload_boot(vm, err, sizeof(err)) < 0) {
			log_error("reset: %s", err);
			return -1;
		}
	}
	for (unsigned i = 0; i < vm->ncpus; i++) {
		if (vcpu_reset(vm->vcpus[i]) < 0) {
			log_error("reset: vCPU %u: %s", i, strerror(errno));
			return -1;
		}
	}
	vcpus_resume(vm);
	return 0;
}

int vm_run(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		if (vcpu_reset(vm->vcpus[i]) < 0) {
			log_error("vCPU %u: cannot load the initial state: %s", i, strerror(errno));
			return EXIT_GUEST_FATAL;
		}
	}
	if (event_loop_start(vm->loop) < 0) {
		log_error("cannot start the event loop thread");
		return EXIT_CONFIG_ERROR;
	}
	for (unsigned i = 0; i < vm->ncpus; i++) {
		if (vcpu_start(vm->vcpus[i]) < 0) {
			log_error("cannot start vCPU %u thread", i);
			return EXIT_CONFIG_ERROR;
		}
	}
	pthread_mutex_lock(&vm->lock);
	for (;;) {
		while (vm->exit_reason == VM_RUNNING && !vm->reset_requested)
			pthread_cond_wait(&vm->cond, &vm->lock);
		if (vm->exit_reason != VM_RUNNING)
			break;
		vm->reset_requested = false;
		if (vm->cfg->no_reboot) {
			vm->exit_reason = VM_POWEROFF;
			vm->exit_code = 0;
			break;
		}
		pthread_mutex_unlock(&vm->lock);
		if (vm_do_reset(vm) < 0)
			vm_request_fatal(vm);
		pthread_mutex_lock(&vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);
	vcpus_pause(vm);
	return vm->exit_code;
}
