/* The PC machine: assembles a VM from the configuration (RAM, firmware
 * tables or boot payload, devices, vCPUs) in the right order. */
#ifndef VMM_MACHINE_H
#define VMM_MACHINE_H

#include <stddef.h>

struct vm;
struct vm_config;

int machine_create(struct vm *vm, const struct vm_config *cfg, char *err, size_t errlen);

#endif
