/* The generic worker pool (block_pool) and the "threads" I/O engine built
 * on it: each request is one preadv/pwritev/fdatasync on a pool thread.
 * Also block_engine_create(), which picks an engine and falls back.
 * A polled threads engine keeps submitted requests until threads_poll,
 * which hands them to the pool, except that an owner about to wait runs
 * one itself instead (a depth-1 request then costs no thread hop), and
 * it does itself the reads no device can delay: what the page cache
 * holds (BLOCK_ENGINE_PAGE_CACHE) and small reads of a tmpfs file
 * (BLOCK_ENGINE_IN_MEMORY); pool threads queue finished requests on the
 * ready list, waking the owner if it waits, and the callbacks run in
 * threads_poll on the owner's thread. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include "block/block.h"
#include "block/engine.h"

/* ---- worker pool ---- */

struct pool_job {
	void (*fn)(void *arg);
	void *arg;
	struct pool_job *next;
};

struct block_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pool_job *head, **tail;
	unsigned max_threads, nthreads, idle;
	bool stopping;
	pthread_t *threads;
};

static void *pool_thread(void *opaque)
{
	struct block_pool *p = opaque;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct pool_job *job = p->head;

		if (!job) {
			if (p->stopping)
				break;
			p->idle++;
			pthread_cond_wait(&p->cond, &p->lock);
			p->idle--;
			continue;
		}
		p->head = job->next;
		if (!p->head)
			p->tail = &p->head;
		pthread_mutex_unlock(&p->lock);
		job->fn(job->arg);
		free(job);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct block_pool *block_pool_create(unsigned nthreads)
{
	struct block_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->threads = calloc(nthreads ? nthreads : 1, sizeof(pthread_t));
	if (!p->threads) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->tail = &p->head;
	p->max_threads = nthreads ? nthreads : 1;
	return p;
}

int block_pool_submit(struct block_pool *p, void (*fn)(void *arg), void *arg)
{
	struct pool_job *job = malloc(sizeof(*job));

	if (!job)
		return -ENOMEM;
	job->fn = fn;
	job->arg = arg;
	job->next = NULL;
	pthread_mutex_lock(&p->lock);
	*p->tail = job;
	p->tail = &job->next;
	if (p->idle == 0 && p->nthreads < p->max_threads &&
	    pthread_create(&p->threads[p->nthreads], NULL, pool_thread, p) == 0)
		p->nthreads++;
	if (p->nthreads == 0) {
		/* Could not start any thread: run inline rather than hang. */
		p->head = NULL;
		p->tail = &p->head;
		pthread_mutex_unlock(&p->lock);
		fn(arg);
		free(job);
		return 0;
	}
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void block_pool_destroy(struct block_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

/* At exit, a pool whose threads are all idle is joined (so leak checkers
 * see no thread stacks); a busy one is left alone, never waited for. */
bool block_pool_destroy_if_idle(struct block_pool *p)
{
	bool idle;

	if (!p)
		return true;
	pthread_mutex_lock(&p->lock);
	idle = !p->head && p->idle == p->nthreads;
	pthread_mutex_unlock(&p->lock);
	if (idle)
		block_pool_destroy(p);
	return idle;
}

#define BLOCK_IO_THREADS 16

static struct block_pool *io_pool;
static pthread_once_t io_pool_once = PTHREAD_ONCE_INIT;

static void io_pool_init(void)
{
	io_pool = block_pool_create(BLOCK_IO_THREADS);
}

struct block_pool *block_io_pool(void)
{
	pthread_once(&io_pool_once, io_pool_init);
	return io_pool;
}

__attribute__((destructor)) static void io_pool_exit(void)
{
	if (block_pool_destroy_if_idle(io_pool))
		io_pool = NULL;
}

/* ---- threads engine ---- */

struct threads_req;

struct threads_engine {
	struct block_engine e;
	pthread_mutex_t lock;
	pthread_cond_t drained;		/* polled: also "a request finished" */
	unsigned inflight;
	bool polled, owner_waits;
	bool cached_reads;		/* polled: BLOCK_ENGINE_PAGE_CACHE, until refused */
	bool memory_reads;		/* polled: BLOCK_ENGINE_IN_MEMORY */
	struct threads_req *ready, **ready_tail;	/* polled: done, callback not yet run */
	struct threads_req *queued, **queued_tail;	/* polled: not yet handed to the pool */
};

struct threads_req {
	struct threads_engine *te;
	int fd;
	enum engine_op op;
	uint64_t off;
	const struct iovec *iov;
	int iovcnt;
	engine_cb cb;
	void *opaque;
	ssize_t res;
	struct threads_req *next;
};

static ssize_t threads_do_io(const struct threads_req *r)
{
	ssize_t n;

	do {
		switch (r->op) {
		case ENGINE_READ:
			n = preadv(r->fd, r->iov, r->iovcnt, (off_t)r->off);
			break;
		case ENGINE_WRITE:
			n = pwritev(r->fd, r->iov, r->iovcnt, (off_t)r->off);
			break;
		default:
			n = fdatasync(r->fd);
			break;
		}
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static void threads_run(void *arg)
{
	struct threads_req *r = arg;
	struct threads_engine *te = r->te;

	if (te->polled) {
		r->res = threads_do_io(r);
		r->next = NULL;
		pthread_mutex_lock(&te->lock);
		*te->ready_tail = r;
		te->ready_tail = &r->next;
		if (te->owner_waits)
			pthread_cond_signal(&te->drained);
		pthread_mutex_unlock(&te->lock);
		return;
	}
	r->cb(r->opaque, threads_do_io(r));
	free(r);
	pthread_mutex_lock(&te->lock);
	if (--te->inflight == 0)
		pthread_cond_broadcast(&te->drained);
	pthread_mutex_unlock(&te->lock);
}

static int threads_submit(struct block_engine *e, int fd, enum engine_op op, uint64_t off,
			  const struct iovec *iov, int iovcnt, engine_cb cb, void *opaque)
{
	struct threads_engine *te = (struct threads_engine *)e;
	struct threads_req *r = malloc(sizeof(*r));
	struct block_pool *pool = block_io_pool();
	int ret;

	if (!r || !pool) {
		free(r);
		return -ENOMEM;
	}
	*r = (struct threads_req){ te, fd, op, off, iov, iovcnt, cb, opaque, 0, NULL };
	pthread_mutex_lock(&te->lock);
	te->inflight++;
	pthread_mutex_unlock(&te->lock);
	if (te->polled) {
		*te->queued_tail = r;
		te->queued_tail = &r->next;
		return 0;
	}
	ret = block_pool_submit(pool, threads_run, r);
	if (ret < 0) {
		free(r);
		pthread_mutex_lock(&te->lock);
		te->inflight--;
		pthread_mutex_unlock(&te->lock);
	}
	return ret;
}

bool engine_read_in_memory(int fd, enum engine_op op, uint64_t off, const struct iovec *iov,
			   int iovcnt, ssize_t *res)
{
	size_t len = op == ENGINE_READ ? iov_size(iov, iovcnt) : 0;
	ssize_t n;

	if (!len || len > IN_MEMORY_READ_MAX)
		return false;
	n = preadv(fd, iov, iovcnt, (off_t)off);
	if (n < 0 || (size_t)n < len)
		return false;
	*res = n;
	return true;
}

/* Polled: a read that cannot wait on a device, done here: with
 * BLOCK_ENGINE_PAGE_CACHE one the page cache holds in full (RWF_NOWAIT; a
 * file system without it turns this off), with BLOCK_ENGINE_IN_MEMORY one
 * of up to IN_MEMORY_READ_MAX bytes. False sends it to the pool (also a
 * short read, which the pool repeats). */
static bool read_here(struct threads_engine *te, struct threads_req *r)
{
	size_t len;
	ssize_t n;

	if (te->memory_reads)
		return engine_read_in_memory(r->fd, r->op, r->off, r->iov, r->iovcnt, &r->res);
	if (!te->cached_reads || r->op != ENGINE_READ)
		return false;
	len = iov_size(r->iov, r->iovcnt);
	n = preadv2(r->fd, r->iov, r->iovcnt, (off_t)r->off, RWF_NOWAIT);
	if (n < 0 && errno == EOPNOTSUPP)
		te->cached_reads = false;
	if (n < 0 || (size_t)n < len)
		return false;
	r->res = n;
	return true;
}

/* Polled: hands the queued requests to the pool but keeps the first one
 * when keep_one (returned, for the caller to run); reads done here
 * (read_here) and requests the pool refuses (-ENOMEM) go to *done. */
static struct threads_req *hand_to_pool(struct threads_engine *te, bool keep_one,
					struct threads_req **done)
{
	struct threads_req *list = te->queued, *mine = NULL;

	te->queued = NULL;
	te->queued_tail = &te->queued;
	if (list && keep_one) {
		mine = list;
		list = list->next;
		mine->next = NULL;
	}
	while (list) {
		struct threads_req *r = list;

		list = r->next;
		r->next = NULL;
		if (read_here(te, r)) {
			r->next = *done;
			*done = r;
		} else if (block_pool_submit(block_io_pool(), threads_run, r) < 0) {
			r->res = -ENOMEM;
			r->next = *done;
			*done = r;
		}
	}
	return mine;
}

static int threads_poll(struct block_engine *e, bool wait)
{
	struct threads_engine *te = (struct threads_engine *)e;
	struct threads_req *list = NULL, *mine, **tail;
	bool have_ready;
	int n = 0;

	pthread_mutex_lock(&te->lock);
	have_ready = te->ready != NULL;
	pthread_mutex_unlock(&te->lock);
	mine = hand_to_pool(te, wait && !have_ready, &list);
	if (mine) {
		mine->res = threads_do_io(mine);
		mine->next = list;
		list = mine;
	}
	pthread_mutex_lock(&te->lock);
	te->owner_waits = true;
	while (wait && !list && !te->ready && te->inflight)
		pthread_cond_wait(&te->drained, &te->lock);
	te->owner_waits = false;
	for (tail = &list; *tail; tail = &(*tail)->next)
		;
	*tail = te->ready;
	te->ready = NULL;
	te->ready_tail = &te->ready;
	pthread_mutex_unlock(&te->lock);
	while (list) {
		struct threads_req *r = list;

		list = r->next;
		r->cb(r->opaque, r->res);
		free(r);
		pthread_mutex_lock(&te->lock);
		te->inflight--;
		pthread_mutex_unlock(&te->lock);
		n++;
	}
	return n;
}

static void threads_destroy(struct block_engine *e)
{
	struct threads_engine *te = (struct threads_engine *)e;

	while (te->polled && threads_poll(e, true) > 0)
		;
	pthread_mutex_lock(&te->lock);
	while (te->inflight)
		pthread_cond_wait(&te->drained, &te->lock);
	pthread_mutex_unlock(&te->lock);
	pthread_cond_destroy(&te->drained);
	pthread_mutex_destroy(&te->lock);
	free(te);
}

static const struct block_engine_ops threads_ops = {
	.name = "threads",
	.submit = threads_submit,
	.destroy = threads_destroy,
};

static const struct block_engine_ops threads_polled_ops = {
	.name = "threads",
	.submit = threads_submit,
	.destroy = threads_destroy,
	.poll = threads_poll,
};

struct block_engine *engine_threads_create(bool polled, unsigned flags, char *err,
					   size_t errlen)
{
	struct threads_engine *te = calloc(1, sizeof(*te));

	if (!te) {
		snprintf(err, errlen, "threads engine: out of memory");
		return NULL;
	}
	te->e.ops = polled ? &threads_polled_ops : &threads_ops;
	te->e.kind = BLOCK_ENGINE_THREADS;
	te->e.polled = polled;
	te->polled = polled;
	te->cached_reads = polled && (flags & BLOCK_ENGINE_PAGE_CACHE);
	te->memory_reads = polled && (flags & BLOCK_ENGINE_IN_MEMORY);
	te->ready_tail = &te->ready;
	te->queued_tail = &te->queued;
	pthread_mutex_init(&te->lock, NULL);
	pthread_cond_init(&te->drained, NULL);
	return &te->e;
}

/* ---- engine selection ---- */

/* Native AIO and io_uring engines are shared by every file of the process
 * (one io context or ring, one completion thread), as QEMU shares them per
 * AioContext: per-file instances would cost a thread each and exhaust
 * fs.aio-max-nr. Reference-counted; the last bfile_close destroys it. */
static struct {
	struct block_engine *e;
	unsigned refs;
} shared[BLOCK_ENGINE_IO_URING + 1];
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

static struct block_engine *shared_get(enum block_engine_kind kind, char *err, size_t errlen)
{
	struct block_engine *e;

	pthread_mutex_lock(&shared_lock);
	if (!shared[kind].e) {
		shared[kind].e = kind == BLOCK_ENGINE_NATIVE ?
				 engine_aio_create(false, 0, err, errlen) :
				 engine_uring_create(false, 0, err, errlen);
		shared[kind].refs = 0;
	}
	e = shared[kind].e;
	if (e)
		shared[kind].refs++;
	pthread_mutex_unlock(&shared_lock);
	return e;
}

struct block_engine *block_engine_create(enum block_engine_kind kind, char *err, size_t errlen)
{
	struct block_engine *e = NULL;
	char why[256] = "";

	switch (kind) {
	case BLOCK_ENGINE_NATIVE:
		return shared_get(BLOCK_ENGINE_NATIVE, err, errlen);	/* asked for: no fallback */
	case BLOCK_ENGINE_IO_URING:
		e = shared_get(BLOCK_ENGINE_IO_URING, why, sizeof(why));
		if (!e)
			fprintf(stderr, "minikvm: note: io_uring unavailable (%s), "
				"using the threads engine\n", why);
		break;
	case BLOCK_ENGINE_DEFAULT:
		e = shared_get(BLOCK_ENGINE_IO_URING, why, sizeof(why));
		break;
	case BLOCK_ENGINE_THREADS:
		break;
	}
	if (!e)
		e = engine_threads_create(false, 0, err, errlen);
	return e;
}

struct block_engine *block_engine_create_polled(enum block_engine_kind kind, unsigned flags,
						char *err, size_t errlen)
{
	struct block_engine *e = NULL;
	char why[256] = "";

	switch (kind) {
	case BLOCK_ENGINE_NATIVE:
		return engine_aio_create(true, flags, err, errlen);	/* asked for: no fallback */
	case BLOCK_ENGINE_IO_URING:
		e = engine_uring_create(true, flags, why, sizeof(why));
		if (!e)
			fprintf(stderr, "minikvm: note: io_uring unavailable (%s), "
				"using the threads engine\n", why);
		break;
	case BLOCK_ENGINE_DEFAULT:
		e = engine_uring_create(true, flags, why, sizeof(why));
		break;
	case BLOCK_ENGINE_THREADS:
		break;
	}
	if (!e)
		e = engine_threads_create(true, flags, err, errlen);
	return e;
}

void block_engine_destroy(struct block_engine *e)
{
	if (!e)
		return;
	if (!e->polled && (e->kind == BLOCK_ENGINE_NATIVE || e->kind == BLOCK_ENGINE_IO_URING)) {
		pthread_mutex_lock(&shared_lock);
		if (shared[e->kind].e == e && --shared[e->kind].refs > 0) {
			pthread_mutex_unlock(&shared_lock);
			return;
		}
		if (shared[e->kind].e == e)
			shared[e->kind].e = NULL;
		pthread_mutex_unlock(&shared_lock);
	}
	e->ops->destroy(e);
}

const char *block_engine_name(const struct block_engine *e)
{
	return e ? e->ops->name : "none";
}
