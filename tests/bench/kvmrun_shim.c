/* LD_PRELOAD shim for benchmarks: on the first KVM_RUN ioctl of a process
 * it writes the process CPU time used so far to the file named by
 * $KVMRUN_SHIM_OUT. Used the same way for minikvm and QEMU, so the
 * "CPU time before the first KVM_RUN" figures are comparable. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

static int reported;

static void report_first_run(void)
{
	struct timespec cpu, mono;
	const char *path = getenv("KVMRUN_SHIM_OUT");
	char line[96];
	int fd, n;

	if (__atomic_exchange_n(&reported, 1, __ATOMIC_SEQ_CST) || !path)
		return;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	clock_gettime(CLOCK_REALTIME, &mono);
	n = snprintf(line, sizeof(line), "cpu_ms=%.3f wall=%ld.%09ld\n",
		     cpu.tv_sec * 1e3 + cpu.tv_nsec / 1e6, (long)mono.tv_sec, mono.tv_nsec);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, line, n) < 0)
			;
		close(fd);
	}
}

int ioctl(int fd, unsigned long request, ...)
{
	static int (*real_ioctl)(int, unsigned long, ...);
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real_ioctl)
		real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	if (request == KVM_RUN && !reported)
		report_first_run();
	return real_ioctl(fd, request, arg);
}
