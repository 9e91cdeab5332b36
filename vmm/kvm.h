/* Thin helpers over /dev/kvm: open, version and capability checks. */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <stddef.h>

/* Opens /dev/kvm and checks the API version and every capability minikvm
 * relies on. Returns the fd, or -1 with a clear message in err. */
int kvm_open_checked(const char *path, char *err, size_t errlen);
int kvm_check_extension(int fd, long cap);

#endif
