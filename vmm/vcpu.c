/* vCPU threads: creation with CPUID and MSRs, power-on state snapshot and
 * reset, the KVM_RUN loop dispatching PIO/MMIO exits to the I/O bus, and
 * pausing through immediate_exit plus a signal. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/cpuid.h"
#include "vmm/log.h"

#define VCPU_KICK_SIGNAL SIGUSR1

#define MSR_IA32_TSC          0x10
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_IA32_CR_PAT       0x277
#define MISC_ENABLE_FAST_STRING 1

/* The state KVM gives a freshly created vCPU, plus our MSRs: captured once
 * per vCPU and restored on every reset (KVM has no vCPU reset ioctl). */
struct vcpu_power_on {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
};

static struct vcpu_power_on *power_on_state;	/* one per vCPU */
static pthread_mutex_t pause_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pause_cond = PTHREAD_COND_INITIALIZER;

static struct kvm_cpuid2 *supported_cpuid(int kvm_fd)
{
	static struct kvm_cpuid2 *cached;

	for (unsigned n = 128; !cached && n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			cached = c;
			break;
		}
		free(c);
		if (errno != E2BIG)
			return NULL;
	}
	return cached;
}

static int vcpu_setup_cpuid(struct vcpu *v, char *err, size_t errlen)
{
	struct kvm_cpuid2 *sup = supported_cpuid(v->vm->kvm_fd), *c;
	size_t sz;
	int ret;

	if (!sup) {
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return -1;
	}
	sz = sizeof(*sup) + sup->nent * sizeof(sup->entries[0]);
	c = malloc(sz);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(c, sup, sz);
	ret = cpuid_setup(c, v->index, v->vm->ncpus, v->vm->cfg, err, errlen);
	if (!ret && ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
		snprintf(err, errlen, "KVM_SET_CPUID2: %s", strerror(errno));
		ret = -1;
	}
	free(c);
	return ret;
}

static int vcpu_set_msrs(struct vcpu *v, const uint32_t *idx, const uint64_t *val, unsigned n)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[8];
	} m = { .hdr.nmsrs = n };

	for (unsigned i = 0; i < n; i++) {
		m.e[i].index = idx[i];
		m.e[i].data = val[i];
	}
	return ioctl(v->fd, KVM_SET_MSRS, &m) == (int)n ? 0 : -1;
}

static int vcpu_initial_msrs(struct vcpu *v)
{
	static const uint32_t idx[] = { MSR_IA32_MISC_ENABLE, MSR_IA32_CR_PAT, MSR_IA32_TSC };
	static const uint64_t val[] = { MISC_ENABLE_FAST_STRING, 0x0007040600070406ULL, 0 };

	return vcpu_set_msrs(v, idx, val, 3);
}

static int vcpu_capture_power_on(struct vcpu *v)
{
	struct vcpu_power_on *p = &power_on_state[v->index];

	if (ioctl(v->fd, KVM_GET_REGS, &p->regs) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &p->sregs) < 0 ||
	    ioctl(v->fd, KVM_GET_FPU, &p->fpu) < 0 ||
	    ioctl(v->fd, KVM_GET_LAPIC, &p->lapic) < 0 ||
	    ioctl(v->fd, KVM_GET_VCPU_EVENTS, &p->events) < 0)
		return -1;
	return 0;
}

int vcpu_create(struct vm *vm, unsigned index, char *err, size_t errlen)
{
	struct vcpu *v = calloc(1, sizeof(*v));

	if (!power_on_state)
		power_on_state = calloc(vm->ncpus, sizeof(*power_on_state));
	if (!v || !power_on_state) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	v->vm = vm;
	v->index = index;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, index);
	if (v->fd < 0) {
		snprintf(err, errlen, "cannot create vCPU %u: %s", index, strerror(errno));
		return -1;
	}
	v->run = mmap(NULL, vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		snprintf(err, errlen, "cannot map vCPU %u: %s", index, strerror(errno));
		return -1;
	}
	if (vcpu_setup_cpuid(v, err, errlen) < 0)
		return -1;
	if (vcpu_initial_msrs(v) < 0 || vcpu_capture_power_on(v) < 0) {
		snprintf(err, errlen, "vCPU %u: initial state: %s", index, strerror(errno));
		return -1;
	}
	vm->vcpus[index] = v;
	return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1, .l = code64, .g = 1,
	};
}

/* Enter the loader's chosen mode on the BSP (see struct boot_state). */
static int vcpu_apply_boot_state(struct vcpu *v)
{
	const struct boot_state *b = &v->vm->boot;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	bool lm = b->mode == BOOT_LONG_64;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	flat_segment(&sregs.cs, 0x10, 0xb, lm);
	flat_segment(&sregs.ds, 0x18, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = b->gdt_base;
	sregs.gdt.limit = b->gdt_limit;
	/* PE; no paging; caches on (clear CD and NW of the power-on CR0) */
	sregs.cr0 = (sregs.cr0 | 0x1) & ~(0x80000000ULL | 0x60000000ULL);
	if (lm) {
		sregs.cr3 = b->cr3;
		sregs.cr4 |= 1u << 5;			/* PAE */
		sregs.efer |= (1u << 8) | (1u << 10);	/* LME, LMA */
		sregs.cr0 |= 0x80000000ULL;		/* PG */
	}
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -1;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2;
	regs.rip = b->rip;
	regs.rsp = b->rsp;
	regs.rax = b->rax;
	regs.rbx = b->rbx;
	regs.rsi = b->rsi;
	return ioctl(v->fd, KVM_SET_REGS, &regs);
}

/* Firmware programs the MTRRs; on a direct kernel boot we do what it
 * would: RAM write-back by default, the 32-bit PCI hole uncached. Without
 * this Linux disables PAT (no write-combining). */
static int vcpu_direct_boot_mtrrs(struct vcpu *v)
{
	unsigned phys_bits = 36;
	struct kvm_cpuid2 *c = supported_cpuid(v->vm->kvm_fd);
	struct kvm_cpuid_entry2 *e = c ? cpuid_find(c, 0x80000008, 0) : NULL;

	if (e && (e->eax & 0xff) >= 36)
		phys_bits = e->eax & 0xff;
	uint64_t phys_mask = (1ULL << phys_bits) - 1;
	uint64_t hole = HIGH_RAM_START - PCI_HOLE_START;
	static const uint32_t idx[] = { 0x200, 0x201, 0x2ff };	/* PHYSBASE0, PHYSMASK0, DEF_TYPE */
	uint64_t val[] = {
		PCI_HOLE_START | 0,				/* type UC */
		(~(hole - 1) & phys_mask) | (1u << 11),		/* valid */
		(1u << 11) | 6,					/* enabled, default WB */
	};

	return vcpu_set_msrs(v, idx, val, 3);
}

/* Paravirtual MSRs a previous boot may have enabled (kvmclock, async PF,
 * steal time, PV EOI): off again at reset, or KVM keeps writing into RAM
 * the new boot owns. Set one by one: a host may lack some of them. The
 * wall-clock MSR is not here: writing it makes KVM write at that address. */
static void vcpu_reset_pv_msrs(struct vcpu *v)
{
	static const uint32_t pv_msrs[] = {
		0x4b564d01, 0x12,	/* MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_SYSTEM_TIME */
		0x4b564d02,		/* MSR_KVM_ASYNC_PF_EN */
		0x4b564d03,		/* MSR_KVM_STEAL_TIME */
		0x4b564d04,		/* MSR_KVM_PV_EOI_EN */
	};
	static const uint64_t zero;

	for (size_t i = 0; i < sizeof(pv_msrs) / sizeof(pv_msrs[0]); i++)
		vcpu_set_msrs(v, &pv_msrs[i], &zero, 1);
}

int vcpu_reset(struct vcpu *v)
{
	struct vcpu_power_on *p = &power_on_state[v->index];
	struct kvm_mp_state mp = {
		.mp_state = v->index == 0 ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED,
	};

	if (ioctl(v->fd, KVM_SET_REGS, &p->regs) < 0 ||
	    ioctl(v->fd, KVM_SET_SREGS, &p->sregs) < 0 ||
	    ioctl(v->fd, KVM_SET_FPU, &p->fpu) < 0 ||
	    ioctl(v->fd, KVM_SET_LAPIC, &p->lapic) < 0 ||
	    ioctl(v->fd, KVM_SET_VCPU_EVENTS, &p->events) < 0 ||
	    vcpu_initial_msrs(v) < 0 ||
	    ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
		return -1;
	vcpu_reset_pv_msrs(v);
	if (v->vm->boot.mode == BOOT_FIRMWARE)
		return 0;
	if (vcpu_direct_boot_mtrrs(v) < 0)
		return -1;
	return v->index == 0 ? vcpu_apply_boot_state(v) : 0;
}

void vcpu_dump_state(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		log_error("vCPU %u: cannot read registers: %s", v->index, strerror(errno));
		return;
	}
	fprintf(stderr,
		"vCPU %u state:\n"
		" RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
		" RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
		" R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
		" R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
		" RIP=%016llx RFL=%08llx\n"
		" CS =%04x %016llx %08x l=%d db=%d dpl=%d\n"
		" SS =%04x %016llx DS =%04x %016llx\n"
		" CR0=%016llx CR2=%016llx CR3=%016llx CR4=%016llx EFER=%016llx\n"
		" GDT=%016llx/%04x IDT=%016llx/%04x\n",
		v->index, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp,
		r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags,
		s.cs.selector, s.cs.base, s.cs.limit, s.cs.l, s.cs.db, s.cs.dpl,
		s.ss.selector, s.ss.base, s.ds.selector, s.ds.base,
		s.cr0, s.cr2, s.cr3, s.cr4, s.efer,
		s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
}

static void vcpu_handle_pio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (!io_dispatch(v->vm->io, IO_SPACE_PIO, run->io.port, data,
				 run->io.size, is_write))
			log_guest(LOG_GUEST_ERRORS | LOG_IOPORT,
				  "unassigned port %s 0x%x size %u",
				  is_write ? "write" : "read", run->io.port, run->io.size);
	}
}

static void vcpu_handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	if (!io_dispatch(v->vm->io, IO_SPACE_MMIO, run->mmio.phys_addr, run->mmio.data,
			 run->mmio.len, run->mmio.is_write))
		log_guest(LOG_GUEST_ERRORS | LOG_IOPORT, "unassigned MMIO %s 0x%llx size %u",
			  run->mmio.is_write ? "write" : "read",
			  (unsigned long long)run->mmio.phys_addr, run->mmio.len);
}

static void vcpu_fatal(struct vcpu *v, const char *what)
{
	log_error("vCPU %u: %s", v->index, what);
	if (v->run->exit_reason == KVM_EXIT_INTERNAL_ERROR) {
		fprintf(stderr, " internal error suberror %u", v->run->internal.suberror);
		for (unsigned i = 0; i < v->run->internal.ndata && i < 16; i++)
			fprintf(stderr, " data[%u]=0x%llx", i,
				(unsigned long long)v->run->internal.data[i]);
		fputc('\n', stderr);
	} else if (v->run->exit_reason == KVM_EXIT_FAIL_ENTRY) {
		fprintf(stderr, " hardware entry failure reason 0x%llx\n",
			(unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
	}
	vcpu_dump_state(v);
	vm_request_fatal(v->vm);
}

static void vcpu_handle_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_poweroff(v->vm, 0);
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_reset(v->vm);
		break;
	default:
		vcpu_fatal(v, "guest crash event");
	}
}

/* Returns false when the vCPU must stop running (fatal error). */
static bool vcpu_handle_exit(struct vcpu *v)
{
	switch (v->run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_pio(v);
		return true;
	case KVM_EXIT_MMIO:
		vcpu_handle_mmio(v);
		return true;
	case KVM_EXIT_SHUTDOWN:		/* triple fault: a reset, as in QEMU */
		log_guest(LOG_GUEST_ERRORS, "vCPU %u: triple fault, resetting", v->index);
		vm_request_reset(v->vm);
		return true;
	case KVM_EXIT_SYSTEM_EVENT:
		vcpu_handle_system_event(v);
		return true;
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		return true;
	case KVM_EXIT_INTERNAL_ERROR:
		vcpu_fatal(v, "KVM internal error (emulation failure)");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vcpu_fatal(v, "VM entry failed");
		return false;
	default:
		log_error("vCPU %u: unexpected exit reason %u", v->index, v->run->exit_reason);
		vcpu_fatal(v, "unexpected exit");
		return false;
	}
}

/* Park here while a pause is requested (reset, shutdown, later: QMP stop). */
static void vcpu_park(struct vcpu *v)
{
	pthread_mutex_lock(&pause_lock);
	v->run->immediate_exit = 0;
	v->paused = true;
	pthread_cond_broadcast(&pause_cond);
	while (v->pause_requested)
		pthread_cond_wait(&pause_cond, &pause_lock);
	v->paused = false;
	pthread_mutex_unlock(&pause_lock);
}

static void vcpu_note_first_run(struct vcpu *v)
{
	struct timespec ts;

	v->first_run_done = true;
	if (v->index || !(log_mask_enabled & LOG_STARTUP))
		return;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	log_info("startup: %.3f ms of CPU time before the first KVM_RUN",
		 ts.tv_sec * 1e3 + ts.tv_nsec / 1e6);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t set;
	bool alive = true;

	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	for (;;) {
		if (__atomic_load_n(&v->pause_requested, __ATOMIC_ACQUIRE) || !alive) {
			vcpu_park(v);
			continue;
		}
		if (!v->first_run_done)
			vcpu_note_first_run(v);
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				continue;
			}
			log_error("vCPU %u: KVM_RUN: %s", v->index, strerror(errno));
			vcpu_dump_state(v);
			vm_request_fatal(v->vm);
			alive = false;
			continue;
		}
		alive = vcpu_handle_exit(v);
	}
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_start(struct vcpu *v)
{
	static bool handler_installed;
	char name[16];

	if (!handler_installed) {
		struct sigaction sa = { .sa_handler = kick_handler };
		sigemptyset(&sa.sa_mask);
		sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
		handler_installed = true;
	}
	if (pthread_create(&v->thread, NULL, vcpu_thread, v))
		return -1;
	v->thread_started = true;
	snprintf(name, sizeof(name), "CPU %u/KVM", v->index);
	pthread_setname_np(v->thread, name);
	return 0;
}

/* Ask every vCPU to leave KVM_RUN and park, without waiting. */
static void vcpus_request_pause_locked(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = vm->vcpus[i];
		if (!v)
			continue;
		__atomic_store_n(&v->pause_requested, true, __ATOMIC_RELEASE);
		v->run->immediate_exit = 1;
		if (v->thread_started)
			pthread_kill(v->thread, VCPU_KICK_SIGNAL);
	}
}

void vcpus_request_pause(struct vm *vm)
{
	pthread_mutex_lock(&pause_lock);
	vcpus_request_pause_locked(vm);
	pthread_mutex_unlock(&pause_lock);
}

void vcpus_pause(struct vm *vm)
{
	pthread_mutex_lock(&pause_lock);
	vcpus_request_pause_locked(vm);
	for (unsigned i = 0; i < vm->ncpus; i++)
		while (vm->vcpus[i]->thread_started && !vm->vcpus[i]->paused)
			pthread_cond_wait(&pause_cond, &pause_lock);
	pthread_mutex_unlock(&pause_lock);
}

void vcpus_resume(struct vm *vm)
{
	pthread_mutex_lock(&pause_lock);
	for (unsigned i = 0; i < vm->ncpus; i++)
		__atomic_store_n(&vm->vcpus[i]->pause_requested, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&pause_cond);
	pthread_mutex_unlock(&pause_lock);
}
