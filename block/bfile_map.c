/* Writes to memory-backed image files through a shared mapping, with a
 * SIGBUS guard around each copy (see bfile_map.h). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include "block/bfile_map.h"
#include "block/block.h"

static __thread sigjmp_buf *copy_guard;	/* set while this thread copies */
static struct sigaction previous_sigbus;
static pthread_mutex_t sigbus_lock = PTHREAD_MUTEX_INITIALIZER;

/* A fault inside a guarded copy (on either side of it) abandons the
 * copy; any other SIGBUS gets the disposition that was there before: a
 * program's handler is called, a fault re-executed under the default
 * action ends the process as it would have, a sent signal is ignored or
 * raised again. */
static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	sigjmp_buf *guard = copy_guard;

	if (guard) {
		copy_guard = NULL;
		siglongjmp(*guard, 1);
	}
	if ((previous_sigbus.sa_flags & SA_SIGINFO) && previous_sigbus.sa_sigaction) {
		previous_sigbus.sa_sigaction(sig, si, ctx);
		return;
	}
	if (previous_sigbus.sa_handler != SIG_DFL && previous_sigbus.sa_handler != SIG_IGN) {
		previous_sigbus.sa_handler(sig);
		return;
	}
	if (previous_sigbus.sa_handler == SIG_IGN && si->si_code <= 0)
		return;
	signal(SIGBUS, SIG_DFL);
	if (si->si_code <= 0)
		raise(SIGBUS);
}

/* Put on_sigbus in place unless it is there, keeping what it replaces
 * (checked at every mapping: someone may have replaced it since).
 * SA_NODEFER: SIGBUS stays unblocked in the handler, so leaving it with
 * siglongjmp (which does not restore a signal mask here, that would cost
 * a system call per copy) leaves the thread's mask as it was. */
static int install_sigbus(void)
{
	struct sigaction cur, sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };
	int ret = 0;

	sigemptyset(&sa.sa_mask);
	pthread_mutex_lock(&sigbus_lock);
	if (sigaction(SIGBUS, NULL, &cur) < 0) {
		ret = -errno;
	} else if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != on_sigbus) {
		previous_sigbus = cur;
		if (sigaction(SIGBUS, &sa, NULL) < 0)
			ret = -errno;
	}
	pthread_mutex_unlock(&sigbus_lock);
	return ret;
}

int bfile_map_open(struct bfile_map *m, int fd, uint64_t size)
{
	void *base;
	int ret;

	*m = (struct bfile_map){ 0 };
	if (size > BFILE_MAP_MAX)
		size = BFILE_MAP_MAX;
	if (size == 0)
		return 0;
	ret = install_sigbus();
	if (ret < 0)
		return ret;
	base = mmap(NULL, (size_t)size, PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	m->base = base;
	m->mapped = m->usable = size;
	return 0;
}

void bfile_map_close(struct bfile_map *m)
{
	if (m->base)
		munmap(m->base, (size_t)m->mapped);
	*m = (struct bfile_map){ 0 };
}

void bfile_map_shrink(struct bfile_map *m, uint64_t size)
{
	if (size < __atomic_load_n(&m->usable, __ATOMIC_ACQUIRE))
		__atomic_store_n(&m->usable, size, __ATOMIC_RELEASE);
}

/* The copy under the guard; false when it faulted. Nothing changes in
 * this frame between sigsetjmp and the end of the copy. */
static bool guarded_copy(char *dst, const struct iovec *iov, int iovcnt, size_t len)
{
	sigjmp_buf env;

	if (sigsetjmp(env, 0))
		return false;
	copy_guard = &env;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	iov_to_buf(iov, iovcnt, 0, dst, len);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	copy_guard = NULL;
	return true;
}

bool bfile_map_write(struct bfile_map *m, uint64_t off, const struct iovec *iov, int iovcnt)
{
	uint64_t usable = __atomic_load_n(&m->usable, __ATOMIC_ACQUIRE), len;

	if (!m->base)
		return false;
	len = iov_size(iov, iovcnt);
	if (len > BFILE_MAP_WRITE_MAX || off > usable || len > usable - off)
		return false;
	if (!guarded_copy(m->base + off, iov, iovcnt, (size_t)len))
		return false;
	if (!__atomic_load_n(&m->wrote, __ATOMIC_RELAXED))
		__atomic_store_n(&m->wrote, true, __ATOMIC_RELAXED);
	return true;
}

bool bfile_map_take_wrote(struct bfile_map *m)
{
	return __atomic_exchange_n(&m->wrote, false, __ATOMIC_RELAXED);
}
