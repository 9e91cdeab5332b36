/* The "io_uring" engine (liburing): one ring per engine (one engine per
 * process, see block_engine_create). Submitters fill SQEs under a mutex
 * and submit; a completion thread, woken through an eventfd registered
 * with the ring, reaps CQEs and runs the callbacks. In-flight requests are
 * capped at the CQ size so the completion queue cannot overflow; a full
 * engine makes submitters wait, except the completion thread itself
 * (resubmitting a short transfer), which hands the request to a threads
 * engine instead. When the ring cannot be set up (old kernel, io_uring
 * disabled), creation fails and block_engine_create() falls back to
 * threads.
 *
 * A polled engine (one thread at a time, no completion thread, no eventfd)
 * only queues SQEs in submit; uring_poll() submits them and waits in the
 * same io_uring_enter call, then runs the callbacks of the CQEs. Buffered
 * reads that hit the page cache complete inside that call, so depth-1
 * reads cost one system call. When the CQ budget is used up, submit reaps
 * completions into a list that the next poll runs (callbacks never run
 * inside submit). For O_DIRECT files (BLOCK_ENGINE_SUBMIT_AT_ONCE) submit
 * hands each request to the kernel at once instead, so the device stays
 * busy while callbacks run (with BLOCK_ENGINE_BATCH_WHEN_BUSY only until it
 * holds AT_ONCE_DEPTH). A polled engine created with
 * BLOCK_ENGINE_BIND_THREAD gets a ring bound to the creating thread
 * (SINGLE_ISSUER | DEFER_TASKRUN, as fio's): completions punted to io-wq
 * cost the owner fewer wake-ups. With BLOCK_ENGINE_IN_MEMORY (tmpfs) small
 * reads are copied in submit instead (io_uring would send each to a worker
 * thread) and their callbacks run in the next poll. */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "block/engine.h"

#define URING_ENTRIES	512	/* SQ size; the CQ gets twice that */

struct uring_engine {
	struct block_engine e;
	struct io_uring ring;
	pthread_mutex_t sq_lock;
	pthread_t completer;
	int efd;			/* signalled by the kernel on each CQE */
	struct block_engine *fallback;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	unsigned inflight, max_inflight;
	bool polled;
	unsigned in_kernel;			/* polled: queued or submitted, not reaped */
	bool submit_at_once;			/* polled: BLOCK_ENGINE_SUBMIT_AT_ONCE */
	bool batch_when_busy;			/* polled: BLOCK_ENGINE_BATCH_WHEN_BUSY */
	bool memory_reads;			/* polled: BLOCK_ENGINE_IN_MEMORY */
	struct engine_stream stream;		/* polled: where the last request ended */
	struct uring_req *ready, **ready_tail;	/* polled: reaped, callback not yet run */
};

struct uring_req {
	engine_cb cb;
	void *opaque;
	int published;	/* release/acquire pair: the kernel's hand-off is invisible to TSan */
	ssize_t res;
	struct uring_req *next;
};

/* Runs one completion; false for the stop marker. */
static bool complete_cqe(struct uring_engine *ue, struct io_uring_cqe *cqe)
{
	struct uring_req *r = io_uring_cqe_get_data(cqe);
	int res = cqe->res;

	io_uring_cqe_seen(&ue->ring, cqe);
	if (!r)
		return false;		/* the stop marker from uring_destroy */
	(void)__atomic_load_n(&r->published, __ATOMIC_ACQUIRE);
	r->cb(r->opaque, res);
	free(r);
	pthread_mutex_lock(&ue->lock);
	ue->inflight--;
	pthread_cond_broadcast(&ue->changed);
	pthread_mutex_unlock(&ue->lock);
	return true;
}

/* Sleeps in read() on the ring's eventfd rather than in io_uring_enter:
 * same cost, and tools that serialise threads (valgrind) know read()
 * blocks while they treat io_uring_enter as non-blocking and hang. */
static void *uring_completer(void *opaque)
{
	struct uring_engine *ue = opaque;

	for (;;) {
		struct io_uring_cqe *cqe;
		uint64_t count;

		while (io_uring_peek_cqe(&ue->ring, &cqe) == 0)
			if (!complete_cqe(ue, cqe))
				return NULL;
		if (read(ue->efd, &count, sizeof(count)) < 0 && errno != EINTR &&
		    errno != EAGAIN) {
			fprintf(stderr, "minikvm: io_uring: wait for completions: %s\n",
				strerror(errno));
			return NULL;
		}
	}
}

static bool reserve_slot(struct uring_engine *ue)
{
	bool on_completer = pthread_equal(pthread_self(), ue->completer);

	pthread_mutex_lock(&ue->lock);
	while (ue->inflight >= ue->max_inflight) {
		if (on_completer) {
			pthread_mutex_unlock(&ue->lock);
			return false;
		}
		pthread_cond_wait(&ue->changed, &ue->lock);
	}
	ue->inflight++;
	pthread_mutex_unlock(&ue->lock);
	return true;
}

static void release_slot(struct uring_engine *ue)
{
	pthread_mutex_lock(&ue->lock);
	ue->inflight--;
	pthread_cond_broadcast(&ue->changed);
	pthread_mutex_unlock(&ue->lock);
}

/* Gets an SQE (submitting queued ones to make room); sq_lock held. */
static struct io_uring_sqe *get_sqe(struct uring_engine *ue)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ue->ring);

	if (!sqe && io_uring_submit(&ue->ring) >= 0)
		sqe = io_uring_get_sqe(&ue->ring);
	return sqe;
}

/* One iovec goes as a plain read/write: the kernel skips importing it. */
static void prep_sqe(struct io_uring_sqe *sqe, int fd, enum engine_op op, uint64_t off,
		     const struct iovec *iov, int iovcnt, void *data)
{
	switch (op) {
	case ENGINE_READ:
		if (iovcnt == 1 && iov->iov_len <= UINT32_MAX)
			io_uring_prep_read(sqe, fd, iov->iov_base, (unsigned)iov->iov_len, off);
		else
			io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, off);
		break;
	case ENGINE_WRITE:
		if (iovcnt == 1 && iov->iov_len <= UINT32_MAX)
			io_uring_prep_write(sqe, fd, iov->iov_base, (unsigned)iov->iov_len, off);
		else
			io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, off);
		break;
	case ENGINE_FLUSH:
		if (fd >= 0)
			io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		else
			io_uring_prep_nop(sqe);
		break;
	}
	io_uring_sqe_set_data(sqe, data);
}

static int queue_sqe(struct uring_engine *ue, int fd, enum engine_op op, uint64_t off,
		     const struct iovec *iov, int iovcnt, void *data)
{
	struct io_uring_sqe *sqe;
	int ret;

	pthread_mutex_lock(&ue->sq_lock);
	sqe = get_sqe(ue);
	if (!sqe) {
		pthread_mutex_unlock(&ue->sq_lock);
		return -EAGAIN;
	}
	prep_sqe(sqe, fd, op, off, iov, iovcnt, data);
	/* From here the request is committed: a queued SQE cannot be taken
	 * back, so transient failures are retried and anything else is left
	 * for the next submission to flush. */
	do {
		ret = io_uring_submit(&ue->ring);
	} while (ret == -EINTR || ret == -EAGAIN || ret == -EBUSY);
	pthread_mutex_unlock(&ue->sq_lock);
	if (ret < 0)
		fprintf(stderr, "minikvm: io_uring: submit: %s\n", strerror(-ret));
	return 0;
}

/* ---- polled engines ---- */

/* Submits queued SQEs and, with wait, waits for one CQE in the same call. */
static int polled_enter(struct uring_engine *ue, bool wait)
{
	int ret;

	if (!wait && !io_uring_sq_ready(&ue->ring))
		return 0;
	do {
		ret = wait ? io_uring_submit_and_wait(&ue->ring, 1) : io_uring_submit(&ue->ring);
	} while (ret == -EINTR);
	return ret < 0 ? ret : 0;
}

static void polled_ready(struct uring_engine *ue, struct uring_req *r)
{
	r->next = NULL;
	*ue->ready_tail = r;
	ue->ready_tail = &r->next;
}

/* Moves every available CQE to the ready list; returns how many. */
static unsigned polled_reap(struct uring_engine *ue)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&ue->ring, &cqe) == 0) {
		struct uring_req *r = io_uring_cqe_get_data(cqe);

		r->res = cqe->res;
		io_uring_cqe_seen(&ue->ring, cqe);
		ue->in_kernel--;
		polled_ready(ue, r);
		n++;
	}
	return n;
}

static int uring_poll(struct block_engine *e, bool wait)
{
	struct uring_engine *ue = (struct uring_engine *)e;
	struct uring_req *list;
	int ret, n = 0;

	/* One system call: submit the queued SQEs and, when nothing is ready
	 * yet, wait for a CQE (requests served from the page cache complete
	 * inside the call). */
	wait = wait && !ue->ready && ue->in_kernel && !io_uring_cq_ready(&ue->ring);
	ret = polled_enter(ue, wait);
	polled_reap(ue);
	/* Callbacks may queue more requests (and reap into a new list). */
	list = ue->ready;
	ue->ready = NULL;
	ue->ready_tail = &ue->ready;
	while (list) {
		struct uring_req *r = list;

		list = r->next;
		ue->inflight--;
		r->cb(r->opaque, r->res);
		free(r);
		n++;
	}
	return n ? n : ret;
}

static int polled_submit(struct uring_engine *ue, int fd, enum engine_op op, uint64_t off,
			 const struct iovec *iov, int iovcnt, engine_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe;
	struct uring_req *r;

	r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cb = cb;
	r->opaque = opaque;
	if (ue->memory_reads && engine_read_in_memory(fd, op, off, iov, iovcnt, &r->res)) {
		ue->inflight++;
		polled_ready(ue, r);	/* its callback runs in the next poll */
		return 0;
	}
	/* Room in the CQ: wait for completions (run by the next poll). */
	while (ue->in_kernel >= ue->max_inflight) {
		int ret = polled_enter(ue, true);

		if (!polled_reap(ue) && ret < 0) {
			free(r);
			return ret;
		}
	}
	sqe = io_uring_get_sqe(&ue->ring);
	if (!sqe && polled_enter(ue, false) == 0)
		sqe = io_uring_get_sqe(&ue->ring);
	if (!sqe) {
		free(r);
		return -EAGAIN;
	}
	prep_sqe(sqe, fd, op, off, iov, iovcnt, r);
	ue->inflight++;
	ue->in_kernel++;
	if (ue->submit_at_once &&
	    engine_submit_now(&ue->stream, ue->in_kernel, ue->batch_when_busy, fd, op, off, iov,
			      iovcnt))
		polled_enter(ue, false);
	return 0;
}

/* ---- shared engines ---- */

static int uring_submit(struct block_engine *e, int fd, enum engine_op op, uint64_t off,
			const struct iovec *iov, int iovcnt, engine_cb cb, void *opaque)
{
	struct uring_engine *ue = (struct uring_engine *)e;
	struct uring_req *r;
	int ret;

	if (ue->polled)
		return polled_submit(ue, fd, op, off, iov, iovcnt, cb, opaque);
	if (!reserve_slot(ue))
		return block_engine_submit(ue->fallback, fd, op, off, iov, iovcnt, cb, opaque);
	r = malloc(sizeof(*r));
	if (!r) {
		release_slot(ue);
		return -ENOMEM;
	}
	r->cb = cb;
	r->opaque = opaque;
	__atomic_store_n(&r->published, 1, __ATOMIC_RELEASE);
	ret = queue_sqe(ue, fd, op, off, iov, iovcnt, r);
	if (ret < 0) {		/* no SQE: nothing was queued */
		free(r);
		release_slot(ue);
	}
	return ret;
}

static void uring_destroy(struct block_engine *e)
{
	struct uring_engine *ue = (struct uring_engine *)e;

	if (ue->polled) {
		while (ue->inflight && uring_poll(e, true) >= 0)
			;
		io_uring_queue_exit(&ue->ring);
		free(ue);
		return;
	}
	pthread_mutex_lock(&ue->lock);
	while (ue->inflight)
		pthread_cond_wait(&ue->changed, &ue->lock);
	pthread_mutex_unlock(&ue->lock);
	/* Nothing is in flight, so an SQE is free for the stop marker. */
	queue_sqe(ue, -1, ENGINE_FLUSH, 0, NULL, 0, NULL);
	pthread_join(ue->completer, NULL);
	block_engine_destroy(ue->fallback);
	io_uring_queue_exit(&ue->ring);
	close(ue->efd);
	pthread_cond_destroy(&ue->changed);
	pthread_mutex_destroy(&ue->lock);
	pthread_mutex_destroy(&ue->sq_lock);
	free(ue);
}

static const struct block_engine_ops uring_ops = {
	.name = "io_uring",
	.submit = uring_submit,
	.destroy = uring_destroy,
};

static unsigned uring_queued(struct block_engine *e)
{
	return io_uring_sq_ready(&((struct uring_engine *)e)->ring);
}

/* A ring bound to its thread (DEFER_TASKRUN) has its completions posted
 * only when that thread enters the kernel to wait, so its fd never needs
 * to become readable: it has none to offer. */
static int uring_poll_fd(struct block_engine *e)
{
	struct uring_engine *ue = (struct uring_engine *)e;

	return ue->ring.flags & IORING_SETUP_DEFER_TASKRUN ? -1 : ue->ring.ring_fd;
}

static const struct block_engine_ops uring_polled_ops = {
	.name = "io_uring",
	.submit = uring_submit,
	.destroy = uring_destroy,
	.poll = uring_poll,
	.queued = uring_queued,
	.poll_fd = uring_poll_fd,
};

/* Setup flags of a polled ring, best first; a kernel that does not know
 * one refuses the set with EINVAL and the next is tried.
 *  - COOP_TASKRUN: completions are only wanted when the owner polls, so
 *    the kernel need not interrupt the owner to post them (TASKRUN_FLAG
 *    lets a peek see that some are pending): page-cache reads punted to
 *    io-wq ran 2.8x faster so on PVM, where those interruptions are
 *    expensive (5.19).
 *  - SINGLE_ISSUER | DEFER_TASKRUN, for a ring bound to its creating
 *    thread: an io-wq worker finishing a request queues the completion as
 *    work for that thread instead of posting it and waking every waiter,
 *    and the thread runs it when it next enters the kernel to wait, woken
 *    only once as many are ready as it waits for (6.1; fio's rings). Any
 *    other thread's submit or wait on such a ring fails with EEXIST. */
static const unsigned polled_setup_flags[] = {
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER |
		IORING_SETUP_DEFER_TASKRUN,
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	0,
};

static int polled_ring_init(struct io_uring *ring, bool bound)
{
	size_t n = sizeof(polled_setup_flags) / sizeof(polled_setup_flags[0]);
	int ret = -EINVAL;

	for (size_t i = bound ? 0 : 1; i < n && ret == -EINVAL; i++)
		ret = io_uring_queue_init(URING_ENTRIES, ring, polled_setup_flags[i]);
	return ret;
}

/* A polled ring: no eventfd, no completion thread. */
static struct block_engine *uring_polled_create(struct uring_engine *ue, unsigned flags,
						char *err, size_t errlen)
{
	int ret = polled_ring_init(&ue->ring, flags & BLOCK_ENGINE_BIND_THREAD);

	if (ret < 0) {
		snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-ret));
		free(ue);
		return NULL;
	}
	ue->e.ops = &uring_polled_ops;
	ue->e.kind = BLOCK_ENGINE_IO_URING;
	ue->e.polled = true;
	ue->polled = true;
	ue->ready_tail = &ue->ready;
	ue->max_inflight = ue->ring.cq.ring_entries;
	return &ue->e;
}

struct block_engine *engine_uring_create(bool polled, unsigned flags, char *err,
					 size_t errlen)
{
	struct uring_engine *ue = calloc(1, sizeof(*ue));
	int ret;

	if (!ue) {
		snprintf(err, errlen, "io_uring: out of memory");
		return NULL;
	}
	if (polled) {
		ue->submit_at_once = flags & BLOCK_ENGINE_SUBMIT_AT_ONCE;
		ue->batch_when_busy = flags & BLOCK_ENGINE_BATCH_WHEN_BUSY;
		ue->memory_reads = flags & BLOCK_ENGINE_IN_MEMORY;
		return uring_polled_create(ue, flags, err, errlen);
	}
	ret = io_uring_queue_init(URING_ENTRIES, &ue->ring, 0);
	if (ret < 0) {
		snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-ret));
		free(ue);
		return NULL;
	}
	ue->efd = eventfd(0, EFD_CLOEXEC);
	ret = ue->efd < 0 ? -errno : io_uring_register_eventfd(&ue->ring, ue->efd);
	if (ret < 0) {
		snprintf(err, errlen, "io_uring: eventfd: %s", strerror(-ret));
		if (ue->efd >= 0)
			close(ue->efd);
		io_uring_queue_exit(&ue->ring);
		free(ue);
		return NULL;
	}
	ue->e.ops = &uring_ops;
	ue->e.kind = BLOCK_ENGINE_IO_URING;
	ue->max_inflight = ue->ring.cq.ring_entries;
	pthread_mutex_init(&ue->sq_lock, NULL);
	pthread_mutex_init(&ue->lock, NULL);
	pthread_cond_init(&ue->changed, NULL);
	ue->fallback = engine_threads_create(false, 0, err, errlen);
	if (!ue->fallback || pthread_create(&ue->completer, NULL, uring_completer, ue) != 0) {
		snprintf(err, errlen, "io_uring: cannot start the completion thread");
		block_engine_destroy(ue->fallback);
		io_uring_queue_exit(&ue->ring);
		close(ue->efd);
		free(ue);
		return NULL;
	}
	return &ue->e;
}
