/* I/O engines: how a bfile's asynchronous data I/O reaches the kernel.
 *
 *   threads    preadv/pwritev/fdatasync on a shared pool of I/O threads
 *              (works on every file, cached or O_DIRECT)
 *   native     Linux AIO (libaio io_submit); completions signalled on an
 *              eventfd (io_set_eventfd) and reaped on the engine's thread;
 *              one io context per process
 *   io_uring   liburing; one ring per process, a completion thread waits
 *              for CQEs; falls back to threads when the ring cannot be set up
 *
 * Polled engines (block_engine_create_polled) are private instances for one
 * thread, with no completion thread: requests are queued by submit and
 * handed to the kernel, and their callbacks run, only inside
 * block_engine_poll() on the caller's thread (as QEMU's AioContext rings
 * and qemu-img do). Depth-1 I/O then costs one system call and no thread
 * hop, and the requests queued between two polls go in one batch.
 *
 * An engine moves bytes and reports the raw result (bytes transferred or a
 * negative errno); bfile.c turns short transfers into full-length ones and
 * bounces unaligned O_DIRECT requests. Completion callbacks run on an engine
 * thread and must not block for long.
 *
 * The file also declares the small generic thread pool (engine_threads.c)
 * that the threads engine, bfile's bounce path and the block layer's format
 * workers are built on. */
#ifndef BLOCK_ENGINE_H
#define BLOCK_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include "block/block.h"

/* Generic worker pool: jobs run in FIFO order on up to nthreads threads
 * (started lazily). A job is a function and its argument. */
struct block_pool;
struct block_pool *block_pool_create(unsigned nthreads);
/* Queues fn(arg); returns 0 or -ENOMEM (fn is then not called). */
int block_pool_submit(struct block_pool *p, void (*fn)(void *arg), void *arg);
/* Runs every queued job, then joins the threads. */
void block_pool_destroy(struct block_pool *p);
/* Destroys the pool only if no job is queued or running; true if done. */
bool block_pool_destroy_if_idle(struct block_pool *p);
/* The process-wide pool for blocking I/O (threads engine, bounce path). */
struct block_pool *block_io_pool(void);

enum engine_op { ENGINE_READ, ENGINE_WRITE, ENGINE_FLUSH };

/* res: bytes transferred (may be short) or a negative errno. */
typedef void (*engine_cb)(void *opaque, ssize_t res);

struct block_engine;
struct block_engine_ops {
	const char *name;
	/* Queue one request; 0 or a negative errno (cb not called then). The
	 * iovec array must stay valid until the callback. */
	int (*submit)(struct block_engine *e, int fd, enum engine_op op, uint64_t off,
		      const struct iovec *iov, int iovcnt, engine_cb cb, void *opaque);
	/* Waits for in-flight requests, then frees the engine (a polled
	 * engine must have none: its owner polls them to completion). */
	void (*destroy)(struct block_engine *e);
	/* Polled engines: starts the queued requests, then runs the callbacks
	 * of completed ones on the calling thread; with wait, first blocks
	 * until one completes when none has and some are in flight. Returns
	 * the number of callbacks run or a negative errno. */
	int (*poll)(struct block_engine *e, bool wait);
	/* Polled engines: requests queued, not yet handed to the kernel. */
	unsigned (*queued)(struct block_engine *e);
	/* Polled engines that can signal: an fd that turns readable when
	 * completions wait for a poll (see block_engine_poll_fd). */
	int (*poll_fd)(struct block_engine *e);
};

struct block_engine {
	const struct block_engine_ops *ops;
	enum block_engine_kind kind;
	bool polled;
};

/* Gets an engine of the kind asked for (native and io_uring engines are
 * one shared, reference-counted instance per process; threads engines are
 * cheap per-file objects over the shared I/O pool). DEFAULT means io_uring when it
 * can be set up, else threads. NATIVE on a file without O_DIRECT is
 * accepted (the kernel then completes inside io_submit, as in QEMU).
 * io_uring that cannot be set up falls back to threads with a note on
 * stderr when it was asked for explicitly. Never fails for THREADS. */
struct block_engine *block_engine_create(enum block_engine_kind kind, char *err, size_t errlen);
static inline int block_engine_submit(struct block_engine *e, int fd, enum engine_op op,
				      uint64_t off, const struct iovec *iov, int iovcnt,
				      engine_cb cb, void *opaque)
{
	return e->ops->submit(e, fd, op, off, iov, iovcnt, cb, opaque);
}
/* A private engine whose completions run only in block_engine_poll(), for
 * one thread at a time (kinds and fallbacks as block_engine_create).
 * Flags:
 *  - BLOCK_ENGINE_BIND_THREAD (block_open_opts.single_thread): only the
 *    creating thread will ever submit, poll and destroy it, so io_uring
 *    may bind its ring to that thread for cheaper completions
 *    (SINGLE_ISSUER | DEFER_TASKRUN; a kernel without them gives an
 *    ordinary polled ring).
 *  - BLOCK_ENGINE_SUBMIT_AT_ONCE (O_DIRECT files): a request that does not
 *    continue the previous one goes to the kernel in its submit call, not
 *    with the next poll, so a device is not left idle while callbacks run
 *    (4 KiB random writes at depth 32: 118k -> 187k IOPS here, fio 200k);
 *    a sequential run still waits for the batch, which the block layer
 *    merges (4 KiB sequential writes at depth 32: 213k IOPS batched, 50k
 *    one by one).
 *  - BLOCK_ENGINE_BATCH_WHEN_BUSY (with SUBMIT_AT_ONCE, for a caller that
 *    submits in bursts and polls after each, as virtio-blk does per
 *    virtqueue pass): at once only while the device holds at most
 *    AT_ONCE_DEPTH requests; beyond that it has work enough, and the rest
 *    of the burst waits for the poll, which hands it over in one system
 *    call and one doorbell (engine_submit_now). Not for a caller whose
 *    requests come one at a time with the device mostly idle in between
 *    (minikvm-img bench: 4 KiB random writes at depth 32 here took 0.35 s
 *    with it, 0.27 s without). */
#define BLOCK_ENGINE_BIND_THREAD	1u
#define BLOCK_ENGINE_SUBMIT_AT_ONCE	2u
#define BLOCK_ENGINE_BATCH_WHEN_BUSY	16u
/*  - BLOCK_ENGINE_PAGE_CACHE (buffered files with a device behind them):
 *    the threads engine reads what the page cache holds on the polling
 *    thread (preadv2 RWF_NOWAIT) and hands only the rest to the pool, so a
 *    cached 4 KiB read costs no thread hop at any depth. */
#define BLOCK_ENGINE_PAGE_CACHE		4u
/*  - BLOCK_ENGINE_IN_MEMORY (tmpfs or ramfs files, which have no
 *    RWF_NOWAIT): the threads and io_uring engines do reads of up to
 *    IN_MEMORY_READ_MAX bytes on the polling thread, a copy no device can
 *    delay (io_uring would hand each one to a worker thread). */
#define BLOCK_ENGINE_IN_MEMORY		8u
#define IN_MEMORY_READ_MAX	(64u << 10)	/* bigger copies share the pool's CPUs */

/* BLOCK_ENGINE_IN_MEMORY: does a read of up to IN_MEMORY_READ_MAX bytes
 * on the caller's thread; false (nothing to report) for other requests
 * and for a failed or short read, which the engine then does its own way. */
bool engine_read_in_memory(int fd, enum engine_op op, uint64_t off, const struct iovec *iov,
			   int iovcnt, ssize_t *res);

/* Where the previous request of a polled engine ended: with
 * BLOCK_ENGINE_SUBMIT_AT_ONCE a request that continues it waits for the
 * batch (the block layer merges a sequential run submitted together), any
 * other goes to the kernel at once, with what waits before it. */
struct engine_stream {
	int fd;
	uint64_t end;
};

static inline bool engine_stream_continues(struct engine_stream *s, int fd, enum engine_op op,
					   uint64_t off, const struct iovec *iov, int iovcnt)
{
	bool continues = (op == ENGINE_READ || op == ENGINE_WRITE) && fd == s->fd &&
			 off == s->end;
	uint64_t len = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	s->fd = fd;
	s->end = op == ENGINE_READ || op == ENGINE_WRITE ? off + len : UINT64_MAX;
	return continues;
}

/* Requests a device holds before BLOCK_ENGINE_BATCH_WHEN_BUSY batches.
 * virtio-blk, 4 KiB random writes at depth 32 on disk, A/B runs
 * interleaved: every request at once 117-138k IOPS, at once up to 16 then
 * batched 137-147k (about 3 requests per system call instead of 1: the
 * event loop's CPU is the limit there), random reads unchanged (80-88k);
 * at once up to 12 or 24 gained nothing, and batching every request cost
 * reads 17% (the device then idles while a burst is collected). */
#define AT_ONCE_DEPTH	16

/* BLOCK_ENGINE_SUBMIT_AT_ONCE: should the request just queued go to the
 * kernel now? outstanding counts it and every other one not reaped;
 * batch_when_busy: BLOCK_ENGINE_BATCH_WHEN_BUSY. The stream is updated
 * either way. */
static inline bool engine_submit_now(struct engine_stream *s, unsigned outstanding,
				     bool batch_when_busy, int fd, enum engine_op op,
				     uint64_t off, const struct iovec *iov, int iovcnt)
{
	return !engine_stream_continues(s, fd, op, off, iov, iovcnt) &&
	       (!batch_when_busy || outstanding <= AT_ONCE_DEPTH);
}
struct block_engine *block_engine_create_polled(enum block_engine_kind kind, unsigned flags,
						char *err, size_t errlen);
/* Polled engines: see block_engine_ops.poll. 0 for other engines. */
static inline int block_engine_poll(struct block_engine *e, bool wait)
{
	return e->ops->poll ? e->ops->poll(e, wait) : 0;
}
static inline unsigned block_engine_queued(struct block_engine *e)
{
	return e->ops->queued ? e->ops->queued(e) : 0;
}
/* A polled engine's completion fd, for an event loop: readable when
 * completions wait for block_engine_poll (which resets it). io_uring: the
 * ring fd (none for a ring bound to its thread); native: an eventfd every
 * request signals, created at the first call, so ask before submitting.
 * -1 when the engine cannot signal (threads, bound rings). */
static inline int block_engine_poll_fd(struct block_engine *e)
{
	return e->ops->poll_fd ? e->ops->poll_fd(e) : -1;
}
/* Drops a reference; the caller has no requests in flight on it. */
void block_engine_destroy(struct block_engine *e);
const char *block_engine_name(const struct block_engine *e);

/* Constructors of each engine (shared or polled); NULL with err set when
 * unavailable. */
struct block_engine *engine_threads_create(bool polled, unsigned flags, char *err,
					   size_t errlen);
struct block_engine *engine_aio_create(bool polled, unsigned flags, char *err, size_t errlen);
struct block_engine *engine_uring_create(bool polled, unsigned flags, char *err,
					 size_t errlen);

#endif
