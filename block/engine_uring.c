/* The "io_uring" engine (liburing): one ring per engine (one engine per
 * process, see block_engine_create). Submitters fill SQEs under a mutex
 * and submit; a completion thread, woken through an eventfd registered
 * with the ring, reaps CQEs and runs the callbacks. In-flight requests are
 * capped at the CQ size so the completion queue cannot overflow; a full
 * engine makes submitters wait, except the completion thread itself
 * (resubmitting a short transfer), which hands the request to a threads
 * engine instead. When the ring cannot be set up (old kernel, io_uring
 * disabled), creation fails and block_engine_create() falls back to
 * threads. */
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
};

struct uring_req {
	engine_cb cb;
	void *opaque;
	int published;	/* release/acquire pair: the kernel's hand-off is invisible to TSan */
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
	switch (op) {
	case ENGINE_READ:
		io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, off);
		break;
	case ENGINE_WRITE:
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

static int uring_submit(struct block_engine *e, int fd, enum engine_op op, uint64_t off,
			const struct iovec *iov, int iovcnt, engine_cb cb, void *opaque)
{
	struct uring_engine *ue = (struct uring_engine *)e;
	struct uring_req *r;
	int ret;

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

struct block_engine *engine_uring_create(char *err, size_t errlen)
{
	struct uring_engine *ue = calloc(1, sizeof(*ue));
	int ret;

	if (!ue) {
		snprintf(err, errlen, "io_uring: out of memory");
		return NULL;
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
	ue->fallback = engine_threads_create(err, errlen);
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
