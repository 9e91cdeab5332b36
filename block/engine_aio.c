/* The "native" engine: Linux AIO through libaio. Requests are queued with
 * io_submit; every iocb signals the engine's eventfd (io_set_eventfd) and
 * the engine's reaper thread reads the eventfd and reaps completions with
 * io_getevents. Asynchronous for O_DIRECT files; on cached files the kernel
 * does the I/O inside io_submit (as with QEMU's aio=native). At most
 * AIO_MAX_INFLIGHT requests are in the kernel; submitters beyond that wait,
 * and the reaper thread itself (resubmitting a short transfer) hands the
 * request to the threads engine instead of waiting on itself.
 *
 * A polled engine (one thread at a time, no reaper thread) queues iocbs in
 * submit; aio_poll() hands the queued batch to one io_submit and reaps with
 * io_getevents in the caller, waiting for one event when none is ready.
 * It gets an eventfd only when its owner asks for a poll fd (an event
 * loop): every iocb submitted after that signals it, and each poll resets
 * it before reaping, so a completion that comes later signals anew. */
#include <errno.h>
#include <libaio.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "block/engine.h"

#define AIO_MAX_INFLIGHT	1024
#define AIO_REAP_BATCH		64

struct aio_engine {
	struct block_engine e;
	io_context_t ctx;
	int efd;
	pthread_t reaper;
	struct block_engine *fallback;	/* threads engine, for the cases above */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	unsigned inflight;
	bool stopping;
	bool polled;
	unsigned in_kernel;		/* polled: submitted, not reaped */
	unsigned npending;		/* polled: queued for the next io_submit */
	bool submit_at_once;		/* polled: io_submit in submit (BLOCK_ENGINE_SUBMIT_AT_ONCE) */
	bool batch_when_busy;		/* polled: BLOCK_ENGINE_BATCH_WHEN_BUSY */
	struct engine_stream stream;	/* polled: where the last request ended */
	struct iocb *pending[AIO_MAX_INFLIGHT];
	struct aio_req *ready, **ready_tail;	/* polled: done, callback not yet run */
};

struct aio_req {
	struct iocb iocb;
	struct aio_engine *ae;
	engine_cb cb;
	void *opaque;
	int published;	/* release/acquire pair: the kernel's hand-off is invisible to TSan */
	long res;
	struct aio_req *next;
};

static void aio_complete(struct aio_engine *ae, struct aio_req *r, ssize_t res)
{
	r->cb(r->opaque, res);
	free(r);
	pthread_mutex_lock(&ae->lock);
	ae->inflight--;
	pthread_cond_broadcast(&ae->changed);
	pthread_mutex_unlock(&ae->lock);
}

static void *aio_reaper(void *opaque)
{
	struct aio_engine *ae = opaque;
	struct io_event ev[AIO_REAP_BATCH];
	struct timespec zero = { 0, 0 };

	for (;;) {
		uint64_t count;
		int n;

		if (read(ae->efd, &count, sizeof(count)) < 0 && errno != EINTR && errno != EAGAIN)
			break;
		while ((n = io_getevents(ae->ctx, 0, AIO_REAP_BATCH, ev, &zero)) > 0) {
			for (int i = 0; i < n; i++) {
				struct aio_req *r = ev[i].data;
				long res = (long)ev[i].res;

				(void)__atomic_load_n(&r->published, __ATOMIC_ACQUIRE);
				aio_complete(ae, r, res);
			}
		}
		pthread_mutex_lock(&ae->lock);
		if (ae->stopping && ae->inflight == 0) {
			pthread_mutex_unlock(&ae->lock);
			break;
		}
		pthread_mutex_unlock(&ae->lock);
	}
	return NULL;
}

/* One iovec goes as a plain read/write (as fio's): the kernel then does
 * not copy in and check an iovec array. */
static void prep(struct aio_req *r, int fd, enum engine_op op, uint64_t off,
		 const struct iovec *iov, int iovcnt)
{
	bool single = iovcnt == 1 && iov->iov_len <= INT32_MAX;

	switch (op) {
	case ENGINE_READ:
		if (single)
			io_prep_pread(&r->iocb, fd, iov->iov_base, iov->iov_len, (long long)off);
		else
			io_prep_preadv(&r->iocb, fd, iov, iovcnt, (long long)off);
		break;
	case ENGINE_WRITE:
		if (single)
			io_prep_pwrite(&r->iocb, fd, iov->iov_base, iov->iov_len, (long long)off);
		else
			io_prep_pwritev(&r->iocb, fd, iov, iovcnt, (long long)off);
		break;
	default:
		io_prep_fdsync(&r->iocb, fd);
		break;
	}
}

/* Waits for room; false when the caller is the reaper (it must not wait). */
static bool reserve_slot(struct aio_engine *ae)
{
	bool on_reaper = pthread_equal(pthread_self(), ae->reaper);

	pthread_mutex_lock(&ae->lock);
	while (ae->inflight >= AIO_MAX_INFLIGHT) {
		if (on_reaper) {
			pthread_mutex_unlock(&ae->lock);
			return false;
		}
		pthread_cond_wait(&ae->changed, &ae->lock);
	}
	ae->inflight++;
	pthread_mutex_unlock(&ae->lock);
	return true;
}

static void release_slot(struct aio_engine *ae)
{
	pthread_mutex_lock(&ae->lock);
	ae->inflight--;
	pthread_cond_broadcast(&ae->changed);
	pthread_mutex_unlock(&ae->lock);
}

/* ---- polled engines ---- */

static void polled_ready(struct aio_engine *ae, struct aio_req *r, long res)
{
	r->res = res;
	r->next = NULL;
	*ae->ready_tail = r;
	ae->ready_tail = &r->next;
}

/* The iocb the kernel refused: a flush on a kernel without AIO fdsync
 * runs here, anything else fails. */
static void polled_refused(struct aio_engine *ae, struct aio_req *r, int err)
{
	if (r->iocb.aio_lio_opcode == IO_CMD_FDSYNC && err == -EINVAL)
		err = fdatasync(r->iocb.aio_fildes) < 0 ? -errno : 0;
	polled_ready(ae, r, err);
}

/* Hands the queued iocbs to the kernel. */
static void polled_flush(struct aio_engine *ae)
{
	unsigned done = 0;

	while (done < ae->npending) {
		int ret = io_submit(ae->ctx, (long)(ae->npending - done), ae->pending + done);

		if (ret == -EINTR || (ret == -EAGAIN && ae->in_kernel))
			break;		/* retried at the next poll */
		if (ret <= 0) {
			polled_refused(ae, ae->pending[done]->data, ret < 0 ? ret : -EIO);
			done++;
			continue;
		}
		done += (unsigned)ret;
		ae->in_kernel += (unsigned)ret;
	}
	memmove(ae->pending, ae->pending + done, (ae->npending - done) * sizeof(ae->pending[0]));
	ae->npending -= done;
}

/* Moves completed events to the ready list, waiting for one with wait. */
static void polled_reap(struct aio_engine *ae, bool wait)
{
	struct io_event ev[AIO_REAP_BATCH];
	struct timespec zero = { 0, 0 };
	int n;

	while (ae->in_kernel) {
		n = io_getevents(ae->ctx, wait ? 1 : 0, AIO_REAP_BATCH, ev, wait ? NULL : &zero);
		if (n == -EINTR)
			continue;
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++)
			polled_ready(ae, ev[i].data, (long)ev[i].res);
		ae->in_kernel -= (unsigned)n;
		if (n < AIO_REAP_BATCH)
			return;
		wait = false;
	}
}

/* Resets the poll fd's count (nothing to do when it is zero already). */
static void polled_reset_signal(struct aio_engine *ae)
{
	uint64_t count;

	if (ae->efd >= 0 && read(ae->efd, &count, sizeof(count)) < 0) {
		/* EAGAIN: not signalled since the last reset */
	}
}

static int aio_poll(struct block_engine *e, bool wait)
{
	struct aio_engine *ae = (struct aio_engine *)e;
	struct aio_req *list;
	int n = 0;

	if (ae->npending)
		polled_flush(ae);
	polled_reset_signal(ae);
	polled_reap(ae, wait && !ae->ready);
	list = ae->ready;
	ae->ready = NULL;
	ae->ready_tail = &ae->ready;
	while (list) {
		struct aio_req *r = list;

		list = r->next;
		ae->inflight--;
		r->cb(r->opaque, r->res);
		free(r);
		n++;
	}
	return n;
}

static int polled_submit(struct aio_engine *ae, int fd, enum engine_op op, uint64_t off,
			 const struct iovec *iov, int iovcnt, engine_cb cb, void *opaque)
{
	struct aio_req *r;

	if (ae->npending == AIO_MAX_INFLIGHT)
		polled_flush(ae);
	while (ae->in_kernel + ae->npending >= AIO_MAX_INFLIGHT) {
		unsigned before = ae->in_kernel;

		polled_reap(ae, true);		/* callbacks run at the next poll */
		if (ae->in_kernel == before)
			return -EAGAIN;
		polled_flush(ae);
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ae = ae;
	r->cb = cb;
	r->opaque = opaque;
	prep(r, fd, op, off, iov, iovcnt);
	if (ae->efd >= 0)
		io_set_eventfd(&r->iocb, ae->efd);
	r->iocb.data = r;
	ae->pending[ae->npending++] = &r->iocb;
	ae->inflight++;
	if (ae->submit_at_once && engine_submit_now(&ae->stream, ae->in_kernel + ae->npending,
						    ae->batch_when_busy, fd, op, off, iov, iovcnt))
		polled_flush(ae);
	return 0;
}

/* ---- shared engines ---- */

static int aio_submit(struct block_engine *e, int fd, enum engine_op op, uint64_t off,
		      const struct iovec *iov, int iovcnt, engine_cb cb, void *opaque)
{
	struct aio_engine *ae = (struct aio_engine *)e;
	struct aio_req *r;
	struct iocb *p;
	int ret;

	if (ae->polled)
		return polled_submit(ae, fd, op, off, iov, iovcnt, cb, opaque);
	if (!reserve_slot(ae))
		return block_engine_submit(ae->fallback, fd, op, off, iov, iovcnt, cb, opaque);
	r = calloc(1, sizeof(*r));
	if (!r) {
		release_slot(ae);
		return -ENOMEM;
	}
	r->ae = ae;
	r->cb = cb;
	r->opaque = opaque;
	prep(r, fd, op, off, iov, iovcnt);
	io_set_eventfd(&r->iocb, ae->efd);
	r->iocb.data = r;
	__atomic_store_n(&r->published, 1, __ATOMIC_RELEASE);
	p = &r->iocb;
	do {
		ret = io_submit(ae->ctx, 1, &p);
	} while (ret == -EINTR || ret == -EAGAIN);
	if (ret == 1)
		return 0;
	free(r);
	release_slot(ae);
	if (op == ENGINE_FLUSH && ret == -EINVAL)	/* kernel without AIO fdsync */
		return block_engine_submit(ae->fallback, fd, op, off, iov, iovcnt, cb, opaque);
	return ret < 0 ? ret : -EIO;
}

static void aio_destroy(struct block_engine *e)
{
	struct aio_engine *ae = (struct aio_engine *)e;
	uint64_t one = 1;

	if (ae->polled) {
		while (ae->inflight && aio_poll(e, true) > 0)
			;
		io_destroy(ae->ctx);
		if (ae->efd >= 0)
			close(ae->efd);
		free(ae);
		return;
	}
	pthread_mutex_lock(&ae->lock);
	while (ae->inflight)
		pthread_cond_wait(&ae->changed, &ae->lock);
	ae->stopping = true;
	pthread_mutex_unlock(&ae->lock);
	if (write(ae->efd, &one, sizeof(one)) < 0) {
		/* the eventfd cannot overflow at 1; nothing to do */
	}
	pthread_join(ae->reaper, NULL);
	block_engine_destroy(ae->fallback);
	io_destroy(ae->ctx);
	close(ae->efd);
	pthread_cond_destroy(&ae->changed);
	pthread_mutex_destroy(&ae->lock);
	free(ae);
}

static const struct block_engine_ops aio_ops = {
	.name = "native",
	.submit = aio_submit,
	.destroy = aio_destroy,
};

static unsigned aio_queued(struct block_engine *e)
{
	return ((struct aio_engine *)e)->npending;
}

static int aio_poll_fd(struct block_engine *e)
{
	struct aio_engine *ae = (struct aio_engine *)e;

	if (ae->efd < 0)
		ae->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return ae->efd;
}

static const struct block_engine_ops aio_polled_ops = {
	.name = "native",
	.submit = aio_submit,
	.destroy = aio_destroy,
	.poll = aio_poll,
	.queued = aio_queued,
	.poll_fd = aio_poll_fd,
};

static struct block_engine *aio_polled_create(struct aio_engine *ae, char *err, size_t errlen)
{
	int ret = io_setup(AIO_MAX_INFLIGHT, &ae->ctx);

	if (ret < 0) {
		snprintf(err, errlen, "native AIO: io_setup: %s", strerror(-ret));
		free(ae);
		return NULL;
	}
	ae->e.ops = &aio_polled_ops;
	ae->e.kind = BLOCK_ENGINE_NATIVE;
	ae->e.polled = true;
	ae->polled = true;
	ae->efd = -1;
	ae->ready_tail = &ae->ready;
	return &ae->e;
}

struct block_engine *engine_aio_create(bool polled, unsigned flags, char *err, size_t errlen)
{
	struct aio_engine *ae = calloc(1, sizeof(*ae));
	int ret;

	if (!ae) {
		snprintf(err, errlen, "native AIO: out of memory");
		return NULL;
	}
	if (polled) {
		ae->submit_at_once = flags & BLOCK_ENGINE_SUBMIT_AT_ONCE;
		ae->batch_when_busy = flags & BLOCK_ENGINE_BATCH_WHEN_BUSY;
		return aio_polled_create(ae, err, errlen);
	}
	ae->e.ops = &aio_ops;
	ae->e.kind = BLOCK_ENGINE_NATIVE;
	ae->efd = eventfd(0, EFD_CLOEXEC);
	if (ae->efd < 0) {
		snprintf(err, errlen, "native AIO: eventfd: %s", strerror(errno));
		free(ae);
		return NULL;
	}
	ret = io_setup(AIO_MAX_INFLIGHT, &ae->ctx);
	if (ret < 0) {
		snprintf(err, errlen, "native AIO: io_setup: %s", strerror(-ret));
		close(ae->efd);
		free(ae);
		return NULL;
	}
	ae->fallback = engine_threads_create(false, 0, err, errlen);
	pthread_mutex_init(&ae->lock, NULL);
	pthread_cond_init(&ae->changed, NULL);
	if (!ae->fallback || pthread_create(&ae->reaper, NULL, aio_reaper, ae) != 0) {
		snprintf(err, errlen, "native AIO: cannot start the completion thread");
		block_engine_destroy(ae->fallback);
		io_destroy(ae->ctx);
		close(ae->efd);
		free(ae);
		return NULL;
	}
	return &ae->e;
}
