/* vCPU threads: creation, CPUID/MSR setup, the KVM_RUN loop with exit
 * dispatch, pausing (kick) and reset to the power-on state. */
#ifndef VMM_VCPU_H
#define VMM_VCPU_H

#include <stdbool.h>
#include <pthread.h>
#include <linux/kvm.h>

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	/* Set by vcpu_kick(): leave KVM_RUN and park until resumed. */
	bool pause_requested;
	bool paused;
	bool first_run_done;
};

int vcpu_create(struct vm *vm, unsigned index, char *err, size_t errlen);
/* Load the power-on state (and, for the BSP, the boot loader's entry
 * state). Used at startup and on every guest reset. */
int vcpu_reset(struct vcpu *v);
int vcpu_start(struct vcpu *v);
/* Pause all vCPUs (returns when every one is out of KVM_RUN) / resume. */
void vcpus_pause(struct vm *vm);
void vcpus_resume(struct vm *vm);
/* Stop vCPUs from entering the guest again, without waiting: used when a
 * reset or power-off is requested, so no vCPU runs past that point. */
void vcpus_request_pause(struct vm *vm);
void vcpu_dump_state(struct vcpu *v);

#endif
