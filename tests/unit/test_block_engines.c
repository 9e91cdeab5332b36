/* Unit tests for the I/O engines (threads, native AIO, io_uring) under
 * bfile and bdev: random writes then verified reads on an O_DIRECT file in
 * build/ (tmpfs may refuse O_DIRECT), unaligned requests bounced, EOF
 * zero-fill, flush, and 1000 concurrent requests each completing exactly
 * once; the same through the bdev fast path. Polled bfiles: 1 MiB writes
 * to a tmpfs file are done inside the submit call, callbacks deferred to
 * the poll; on a disk-backed file they reach the engine. Polled bdevs
 * opened single_thread: io_uring binds its ring to the opening thread
 * (another thread's poll fails cleanly), and a kernel that refuses the
 * flags for that (simulated by wrapping io_uring_queue_init) gives an
 * ordinary polled ring that works the same. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include "block/bfile.h"
#include "block/engine.h"
#include "block/format.h"

#define SLOT	4096u
#define NREQ	1000u
#define FILE_SIZE (SLOT * NREQ)

static char path[128];
static uint8_t *shadow;

struct tracker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned pending, errors;
	atomic_uint calls[NREQ];
};

struct req {
	struct tracker *t;
	unsigned idx;
	uint64_t off;
	struct iovec iov[3];
	int iovcnt;
	uint8_t *buf;
	size_t len;
};

static void req_cb(void *opaque, int ret)
{
	struct req *r = opaque;
	struct tracker *t = r->t;

	atomic_fetch_add(&t->calls[r->idx], 1);
	pthread_mutex_lock(&t->lock);
	if (ret)
		t->errors++;
	if (--t->pending == 0)
		pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void tracker_init(struct tracker *t, unsigned n)
{
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->pending = n;
	t->errors = 0;
	for (unsigned i = 0; i < NREQ; i++)
		atomic_init(&t->calls[i], 0);
}

static void tracker_wait_exactly_once(struct tracker *t, unsigned n)
{
	pthread_mutex_lock(&t->lock);
	while (t->pending)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
	usleep(20000);		/* a second, late callback would show up here */
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(atomic_load(&t->calls[i]), 1);
	assert_int_equal(t->errors, 0);
}

/* Request i covers a random piece of slot i: aligned for even i, odd
 * offsets and lengths (bounced under O_DIRECT) for odd i; split over up to
 * three iovecs. */
static void make_req(struct req *r, struct tracker *t, unsigned i, bool aligned_only)
{
	unsigned start, len;

	if (i % 2 == 0 || aligned_only) {
		start = (unsigned)(rand() % 4) * 512;
		len = 512 * (1 + (unsigned)rand() % ((SLOT - start) / 512));
	} else {
		start = (unsigned)rand() % (SLOT - 1);
		len = 1 + (unsigned)rand() % (SLOT - start);
	}
	r->t = t;
	r->idx = i;
	r->off = (uint64_t)i * SLOT + start;
	r->len = len;
	assert_int_equal(posix_memalign((void **)&r->buf, 4096, SLOT), 0);
	if (len >= 2048 && len % 1024 == 0) {
		r->iov[0] = (struct iovec){ r->buf, 1024 };
		r->iov[1] = (struct iovec){ r->buf + 1024, len - 2048 };
		r->iov[2] = (struct iovec){ r->buf + len - 1024, 1024 };
		r->iovcnt = 3;
	} else {
		r->iov[0] = (struct iovec){ r->buf, len };
		r->iovcnt = 1;
	}
}

typedef int (*aio_fn)(void *target, uint64_t off, const struct iovec *iov, int iovcnt,
		      bdev_cb cb, void *opaque);

static int file_read(void *t, uint64_t o, const struct iovec *v, int n, bdev_cb cb, void *op)
{
	return bfile_aio_readv(t, o, v, n, cb, op);
}

static int file_write(void *t, uint64_t o, const struct iovec *v, int n, bdev_cb cb, void *op)
{
	return bfile_aio_writev(t, o, v, n, cb, op);
}

static int dev_read(void *t, uint64_t o, const struct iovec *v, int n, bdev_cb cb, void *op)
{
	return bdev_aio_readv(t, o, v, n, cb, op);
}

static int dev_write(void *t, uint64_t o, const struct iovec *v, int n, bdev_cb cb, void *op)
{
	return bdev_aio_writev(t, o, v, n, cb, op);
}

static void random_write_read(void *target, aio_fn wr, aio_fn rd, bool aligned_only)
{
	static struct req reqs[NREQ];
	static struct tracker t;

	tracker_init(&t, NREQ);
	for (unsigned i = 0; i < NREQ; i++) {
		make_req(&reqs[i], &t, i, aligned_only);
		for (size_t b = 0; b < reqs[i].len; b++)
			reqs[i].buf[b] = (uint8_t)rand();
		memcpy(shadow + reqs[i].off, reqs[i].buf, reqs[i].len);
	}
	for (unsigned i = 0; i < NREQ; i++)
		assert_int_equal(wr(target, reqs[i].off, reqs[i].iov, reqs[i].iovcnt, req_cb,
				    &reqs[i]), 0);
	tracker_wait_exactly_once(&t, NREQ);

	tracker_init(&t, NREQ);
	for (unsigned i = 0; i < NREQ; i++) {
		memset(reqs[i].buf, 0xee, SLOT);
		assert_int_equal(rd(target, reqs[i].off, reqs[i].iov, reqs[i].iovcnt, req_cb,
				    &reqs[i]), 0);
	}
	tracker_wait_exactly_once(&t, NREQ);
	for (unsigned i = 0; i < NREQ; i++) {
		assert_memory_equal(reqs[i].buf, shadow + reqs[i].off, reqs[i].len);
		free(reqs[i].buf);
	}
}

static void flush_one(struct bfile *f)
{
	static struct tracker t;
	struct req r = { .t = &t, .idx = 0 };

	tracker_init(&t, 1);
	assert_int_equal(bfile_aio_flush(f, req_cb, &r), 0);
	tracker_wait_exactly_once(&t, 1);
}

static void whole_file_matches(struct bfile *f)
{
	uint8_t *buf = malloc(FILE_SIZE);

	assert_non_null(buf);
	assert_int_equal(bfile_pread(f, 0, buf, FILE_SIZE), 0);
	assert_memory_equal(buf, shadow, FILE_SIZE);
	free(buf);
}

static void eof_zero_fill(struct bfile *f)
{
	static struct tracker t;
	struct req r = { .t = &t, .idx = 0 };
	uint8_t *buf = NULL;
	struct iovec v;

	assert_int_equal(posix_memalign((void **)&buf, 4096, 2 * SLOT), 0);
	memset(buf, 0xee, 2 * SLOT);
	v = (struct iovec){ buf, 2 * SLOT };
	tracker_init(&t, 1);
	assert_int_equal(bfile_aio_readv(f, FILE_SIZE - SLOT, &v, 1, req_cb, &r), 0);
	tracker_wait_exactly_once(&t, 1);
	assert_memory_equal(buf, shadow + FILE_SIZE - SLOT, SLOT);
	for (unsigned i = SLOT; i < 2 * SLOT; i++)
		assert_int_equal(buf[i], 0);
	free(buf);
}

static void make_file(void)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, FILE_SIZE), 0);
	close(fd);
	memset(shadow, 0, FILE_SIZE);
}

static void engine_on_file(enum block_engine_kind kind, const char *name,
			   enum block_cache_mode cache)
{
	struct bfile *f;
	char err[256];

	make_file();
	assert_int_equal(bfile_open(path, O_RDWR, cache, kind, &f, err, sizeof(err)), 0);
	assert_string_equal(bfile_engine_name(f), name);
	assert_int_equal(bfile_is_direct(f), cache == BLOCK_CACHE_NONE);
	if (cache == BLOCK_CACHE_NONE)
		assert_true(bfile_alignment(f) >= 512);
	random_write_read(f, file_write, file_read, false);
	flush_one(f);
	eof_zero_fill(f);
	whole_file_matches(f);
	assert_int_equal(bfile_flush(f), 0);
	bfile_close(f);
}

static void engine_on_bdev(enum block_engine_kind kind, const char *name)
{
	struct block_open_opts o = { .format = "raw", .cache = BLOCK_CACHE_NONE, .engine = kind };
	struct bdev *bs;
	char err[256];

	make_file();
	assert_int_equal(bdev_open(path, &o, &bs, err, sizeof(err)), 0);
	assert_string_equal(bfile_engine_name(bs->file), name);
	/* aligned requests map straight to the engine (raw's map fast path) */
	random_write_read(bs, dev_write, dev_read, true);
	random_write_read(bs, dev_write, dev_read, false);
	assert_int_equal(bdev_flush(bs), 0);
	whole_file_matches(bs->file);
	bdev_close(bs);
}

static void test_threads(void **state)
{
	engine_on_file(BLOCK_ENGINE_THREADS, "threads", BLOCK_CACHE_NONE);
	engine_on_file(BLOCK_ENGINE_THREADS, "threads", BLOCK_CACHE_WRITEBACK);
	engine_on_bdev(BLOCK_ENGINE_THREADS, "threads");
}

static void test_native(void **state)
{
	engine_on_file(BLOCK_ENGINE_NATIVE, "native", BLOCK_CACHE_NONE);
	engine_on_file(BLOCK_ENGINE_NATIVE, "native", BLOCK_CACHE_WRITETHROUGH);
	engine_on_bdev(BLOCK_ENGINE_NATIVE, "native");
}

static void test_io_uring(void **state)
{
	engine_on_file(BLOCK_ENGINE_IO_URING, "io_uring", BLOCK_CACHE_NONE);
	engine_on_file(BLOCK_ENGINE_IO_URING, "io_uring", BLOCK_CACHE_UNSAFE);
	engine_on_bdev(BLOCK_ENGINE_IO_URING, "io_uring");
}

static void test_default_engine(void **state)
{
	struct bfile *f;
	char err[256];

	make_file();
	assert_int_equal(bfile_open(path, O_RDONLY, BLOCK_CACHE_WRITEBACK, BLOCK_ENGINE_DEFAULT,
				    &f, err, sizeof(err)), 0);
	assert_true(!strcmp(bfile_engine_name(f), "io_uring") ||
		    !strcmp(bfile_engine_name(f), "threads"));
	bfile_close(f);
}

/* Native and io_uring engines are shared by all files: closing one file
 * leaves the engine working for the others, and the last close frees it. */
static void test_shared_engines(void **state)
{
	enum block_engine_kind kinds[] = { BLOCK_ENGINE_NATIVE, BLOCK_ENGINE_IO_URING };
	struct bfile *f1, *f2;
	char err[256];

	for (int round = 0; round < 2; round++) {
		for (unsigned k = 0; k < 2; k++) {
			make_file();
			assert_int_equal(bfile_open(path, O_RDWR, BLOCK_CACHE_NONE, kinds[k], &f1,
						    err, sizeof(err)), 0);
			assert_int_equal(bfile_open(path, O_RDWR, BLOCK_CACHE_NONE, kinds[k], &f2,
						    err, sizeof(err)), 0);
			bfile_close(f1);
			random_write_read(f2, file_write, file_read, false);
			whole_file_matches(f2);
			bfile_close(f2);
		}
	}
}

#define BIG	(1u << 20)
#define NBIG	4u

static void count_cb(void *opaque, int ret)
{
	int *calls = opaque;

	assert_int_equal(ret, 0);
	(*calls)++;
}

static void poll_until(struct bfile *f, int *calls, int n)
{
	while (*calls < n)
		assert_true(bfile_aio_poll(f, true) > 0);
	assert_int_equal(bfile_aio_poll(f, false), 0);
	assert_int_equal(*calls, n);
}

/* Four 1 MiB writes (two iovecs each, above the small-write limit), then
 * four 1 MiB reads, on a polled io_uring bfile: in memory the writes are
 * done when submit returns; either way no callback runs before the poll,
 * each runs once there, and the data round-trips. */
static void polled_big_io(const char *file, bool in_memory)
{
	uint8_t *data = malloc(NBIG * BIG), *back = malloc(NBIG * BIG);
	struct iovec iov[NBIG][2];
	struct bfile *f;
	char err[256];
	int calls = 0, fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);

	assert_non_null(data);
	assert_non_null(back);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, NBIG * BIG), 0);
	close(fd);
	for (size_t i = 0; i < NBIG * BIG; i++)
		data[i] = (uint8_t)(i * 7 + i / 4096);
	assert_int_equal(bfile_open_polled(file, O_RDWR, BLOCK_CACHE_WRITEBACK,
					   BLOCK_ENGINE_IO_URING, 0, &f, err, sizeof(err)), 0);
	for (unsigned i = 0; i < NBIG; i++) {
		iov[i][0] = (struct iovec){ data + i * BIG, 4096 };
		iov[i][1] = (struct iovec){ data + i * BIG + 4096, BIG - 4096 };
		assert_int_equal(bfile_aio_writev(f, (uint64_t)i * BIG, iov[i], 2, count_cb,
						  &calls), 0);
	}
	assert_int_equal(calls, 0);
	if (in_memory) {
		assert_int_equal(bfile_pread(f, 0, back, NBIG * BIG), 0);
		assert_memory_equal(back, data, NBIG * BIG);
	}
	poll_until(f, &calls, NBIG);

	calls = 0;
	memset(back, 0, NBIG * BIG);
	for (unsigned i = 0; i < NBIG; i++) {
		iov[i][0] = (struct iovec){ back + i * BIG, BIG - 4096 };
		iov[i][1] = (struct iovec){ back + (i + 1) * BIG - 4096, 4096 };
		assert_int_equal(bfile_aio_readv(f, (uint64_t)i * BIG, iov[i], 2, count_cb,
						 &calls), 0);
	}
	assert_int_equal(calls, 0);
	poll_until(f, &calls, NBIG);
	assert_memory_equal(back, data, NBIG * BIG);
	bfile_close(f);
	unlink(file);
	free(data);
	free(back);
}

static void test_polled_big_io(void **state)
{
	char shm[128];
	struct statfs sfs;

	polled_big_io(path, false);
	if (statfs("/dev/shm", &sfs) < 0 || sfs.f_type != TMPFS_MAGIC) {
		skip();		/* no tmpfs here: only the disk half ran */
		return;
	}
	snprintf(shm, sizeof(shm), "/dev/shm/test_block_engines.%d.img", (int)getpid());
	polled_big_io(shm, true);
}

/* ---- polled engines on O_DIRECT files: submit at once ---- */

static void count_done(void *opaque, ssize_t res)
{
	int *n = opaque;

	assert_int_equal(res, 4096);
	(*n)++;
}

/* With BLOCK_ENGINE_SUBMIT_AT_ONCE a request that does not continue the
 * previous one is in the kernel when submit returns; a sequential run
 * waits for the batch (merged by the block layer); without the flag all
 * wait for the next poll. */
static void submit_at_once_on(enum block_engine_kind kind, unsigned flags)
{
	bool at_once = flags & BLOCK_ENGINE_SUBMIT_AT_ONCE;
	uint64_t offs[4] = { 0, 4096, 1 << 20, 8192 };
	unsigned want[4] = { 0, 1, 0, 0 };
	struct iovec iov[4];
	char err[256];
	uint8_t *buf = NULL;
	int fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0644), done = 0;
	struct block_engine *e = block_engine_create_polled(kind, flags, err, sizeof(err));

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 << 20), 0);
	assert_non_null(e);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 4 * 4096), 0);
	for (int i = 0; i < 4; i++) {
		iov[i] = (struct iovec){ buf + i * 4096, 4096 };
		assert_int_equal(block_engine_submit(e, fd, ENGINE_READ, offs[i], &iov[i], 1,
						     count_done, &done), 0);
		assert_int_equal(block_engine_queued(e), at_once ? want[i] : (unsigned)i + 1);
	}
	while (done < 4)
		assert_true(block_engine_poll(e, true) >= 0);
	assert_int_equal(block_engine_queued(e), 0);
	block_engine_destroy(e);
	free(buf);
	close(fd);
}

/* With BLOCK_ENGINE_BATCH_WHEN_BUSY, past AT_ONCE_DEPTH requests in the
 * kernel further ones wait for the poll (one system call for the lot),
 * even when none continues another; without it every one goes at once. */
static void at_once_up_to_depth(enum block_engine_kind kind, bool batch)
{
	enum { N = AT_ONCE_DEPTH + 4 };
	struct iovec iov[N];
	char err[256];
	uint8_t *buf = NULL;
	int fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0644), done = 0;
	unsigned flags = BLOCK_ENGINE_SUBMIT_AT_ONCE | (batch ? BLOCK_ENGINE_BATCH_WHEN_BUSY : 0);
	struct block_engine *e = block_engine_create_polled(kind, flags, err, sizeof(err));

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 << 20), 0);
	assert_non_null(e);
	assert_int_equal(posix_memalign((void **)&buf, 4096, N * 4096), 0);
	for (unsigned i = 0; i < N; i++) {
		iov[i] = (struct iovec){ buf + i * 4096, 4096 };
		assert_int_equal(block_engine_submit(e, fd, ENGINE_READ, (N - i) * 8192ull,
						     &iov[i], 1, count_done, &done), 0);
		assert_int_equal(block_engine_queued(e),
				 !batch || i < AT_ONCE_DEPTH ? 0 : i + 1 - AT_ONCE_DEPTH);
	}
	while (done < N)
		assert_true(block_engine_poll(e, true) >= 0);
	assert_int_equal(block_engine_queued(e), 0);
	block_engine_destroy(e);
	free(buf);
	close(fd);
}

static void test_submit_at_once(void **state)
{
	(void)state;
	at_once_up_to_depth(BLOCK_ENGINE_IO_URING, true);
	at_once_up_to_depth(BLOCK_ENGINE_IO_URING, false);
	at_once_up_to_depth(BLOCK_ENGINE_NATIVE, true);
	at_once_up_to_depth(BLOCK_ENGINE_NATIVE, false);
	submit_at_once_on(BLOCK_ENGINE_IO_URING, BLOCK_ENGINE_SUBMIT_AT_ONCE);
	submit_at_once_on(BLOCK_ENGINE_IO_URING, 0);
	submit_at_once_on(BLOCK_ENGINE_NATIVE, BLOCK_ENGINE_SUBMIT_AT_ONCE);
	submit_at_once_on(BLOCK_ENGINE_NATIVE, 0);
}

/* ---- polled engines: the poll fd an event loop waits on ---- */

static bool fd_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* The fd turns readable when a request completes, stays quiet while
 * none has, and the poll that runs the callbacks makes it quiet again;
 * the same for a second round (the reset is not one-shot). */
static void poll_fd_on(enum block_engine_kind kind)
{
	char err[256];
	uint8_t *buf = NULL;
	int fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0644), done = 0, efd;
	struct block_engine *e = block_engine_create_polled(kind, BLOCK_ENGINE_SUBMIT_AT_ONCE,
							    err, sizeof(err));
	struct iovec iov;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_non_null(e);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 4096), 0);
	iov = (struct iovec){ buf, 4096 };
	efd = block_engine_poll_fd(e);
	assert_true(efd >= 0);
	assert_false(fd_readable(efd, 0));
	for (int round = 1; round <= 2; round++) {
		assert_int_equal(block_engine_submit(e, fd, ENGINE_READ, round * 65536ull, &iov, 1,
						     count_done, &done), 0);
		assert_true(fd_readable(efd, 10000));
		assert_int_equal(block_engine_poll(e, false), 1);
		assert_int_equal(done, round);
		assert_false(fd_readable(efd, 0));
	}
	block_engine_destroy(e);
	free(buf);
	close(fd);
}

static void test_poll_fd(void **state)
{
	char err[256];
	struct block_engine *e = block_engine_create_polled(BLOCK_ENGINE_THREADS, 0, err,
							    sizeof(err));

	(void)state;
	poll_fd_on(BLOCK_ENGINE_IO_URING);
	poll_fd_on(BLOCK_ENGINE_NATIVE);
	assert_non_null(e);
	assert_int_equal(block_engine_poll_fd(e), -1);	/* threads cannot signal */
	block_engine_destroy(e);
}

/* ---- polled engines on a buffered file: cached reads here ---- */

struct cached_read {
	ssize_t res;
	bool done;
};

static void cached_read_done(void *opaque, ssize_t res)
{
	struct cached_read *c = opaque;

	c->res = res;
	c->done = true;
}

/* With BLOCK_ENGINE_PAGE_CACHE (reads the page cache holds) or
 * BLOCK_ENGINE_IN_MEMORY (small reads of a tmpfs file) the reads complete
 * in the first poll, without waiting for the pool or io_uring's workers,
 * and no callback runs inside submit; a read crossing the end of the file
 * (short) still goes the engine's usual way and returns what is there. */
static void reads_done_in_poll(enum block_engine_kind kind, const char *file, unsigned flag)
{
	enum { NREAD = 16, TAIL = 100, LEN = NREAD * 4096 + TAIL };
	static uint8_t data[LEN], back[NREAD + 1][4096];
	struct cached_read c[NREAD + 1] = { 0 };
	struct iovec iov[NREAD + 1];
	char err[256];
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644), now = 0;
	struct block_engine *e = block_engine_create_polled(kind, flag, err, sizeof(err));

	assert_true(fd >= 0);
	assert_non_null(e);
	assert_string_equal(block_engine_name(e), kind == BLOCK_ENGINE_THREADS ? "threads" :
			    "io_uring");
	for (int i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i * 7 + i / 4096);
	assert_int_equal(pwrite(fd, data, LEN, 0), LEN);
	assert_int_equal(pread(fd, back[0], 4096, 0), 4096);	/* cached */
	for (int i = 0; i <= NREAD; i++) {
		int k = (i * 5) % NREAD;	/* scattered; the last one at the tail */

		iov[i] = (struct iovec){ back[i], 4096 };
		assert_int_equal(block_engine_submit(e, fd, ENGINE_READ,
						     i == NREAD ? NREAD * 4096 : k * 4096ull,
						     &iov[i], 1, cached_read_done, &c[i]), 0);
	}
	for (int i = 0; i <= NREAD; i++)
		assert_false(c[i].done);
	assert_true(block_engine_poll(e, false) >= NREAD);
	for (int i = 0; i < NREAD; i++)
		now += c[i].done && c[i].res == 4096;
	assert_int_equal(now, NREAD);
	while (!c[NREAD].done)
		assert_true(block_engine_poll(e, true) >= 0);
	assert_int_equal(c[NREAD].res, TAIL);
	assert_memory_equal(back[NREAD], data + NREAD * 4096, TAIL);
	for (int i = 0; i < NREAD; i++)
		assert_memory_equal(back[i], data + (i * 5) % NREAD * 4096, 4096);
	block_engine_destroy(e);
	close(fd);
}

static void test_reads_in_poll(void **state)
{
	char shm[128];
	struct statfs sfs;

	reads_done_in_poll(BLOCK_ENGINE_THREADS, path, BLOCK_ENGINE_PAGE_CACHE);
	assert_true(statfs("/dev/shm", &sfs) == 0 && sfs.f_type == TMPFS_MAGIC);
	snprintf(shm, sizeof(shm), "/dev/shm/test_block_engines.%d.mem", (int)getpid());
	reads_done_in_poll(BLOCK_ENGINE_THREADS, shm, BLOCK_ENGINE_IN_MEMORY);
	reads_done_in_poll(BLOCK_ENGINE_IO_URING, shm, BLOCK_ENGINE_IN_MEMORY);
	unlink(shm);
}

/* ---- polled bdevs opened single_thread ---- */


/* The engine's io_uring_queue_init resolves to this wrapper: it records the
 * setup flags asked for and refuses, as an older kernel would with EINVAL,
 * any set that contains one of refused_flags. */
static unsigned refused_flags, asked_flags;

int io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
	static int (*real)(unsigned, struct io_uring *, unsigned);

	if (!real)
		real = (int (*)(unsigned, struct io_uring *, unsigned))
			dlsym(RTLD_NEXT, "io_uring_queue_init");
	assert_non_null(real);
	asked_flags |= flags;
	if (flags & refused_flags)
		return -EINVAL;
	return real(entries, ring, flags);
}

#define BIND_FLAGS	(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN)
#define NPOLLED		64u
#define BIG_READ	(2 * IN_MEMORY_READ_MAX)
_Static_assert(BIG_READ <= NPOLLED * SLOT, "BIG_READ past the end of the file");

static struct bdev *open_polled_raw(const char *file, enum block_cache_mode cache,
				    bool single_thread)
{
	struct block_open_opts o = { .format = "raw", .cache = cache,
				     .engine = BLOCK_ENGINE_IO_URING,
				     .poll_completions = true, .single_thread = single_thread };
	struct bdev *bs;
	char err[256];
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, NPOLLED * SLOT), 0);
	close(fd);
	assert_int_equal(bdev_open(file, &o, &bs, err, sizeof(err)), 0);
	assert_string_equal(bfile_engine_name(bs->file), "io_uring");
	return bs;
}

static void poll_bdev_until(struct bdev *bs, int *calls, int n)
{
	while (*calls < n)
		assert_true(bdev_aio_poll(bs, true) > 0);
	assert_int_equal(*calls, n);
}

/* Polls without waiting until n callbacks ran (5 s at most): completions
 * that a bound ring defers to its thread must show up there too. */
static void poll_bdev_nowait_until(struct bdev *bs, int *calls, int n)
{
	for (int i = 0; i < 50000 && *calls < n; i++) {
		assert_true(bdev_aio_poll(bs, false) >= 0);
		if (*calls < n)
			usleep(100);
	}
	assert_int_equal(*calls, n);
}

/* NPOLLED 4 KiB writes in flight at once, then as many reads, twice (the
 * second time polled without waiting), every callback run by the poll,
 * the data back as written. */
static void polled_round_trip(struct bdev *bs)
{
	uint8_t *data = NULL, *back = NULL;
	struct iovec iov[NPOLLED];
	int calls = 0;

	assert_int_equal(posix_memalign((void **)&data, 4096, NPOLLED * SLOT), 0);
	assert_int_equal(posix_memalign((void **)&back, 4096, NPOLLED * SLOT), 0);
	for (size_t i = 0; i < NPOLLED * SLOT; i++)
		data[i] = (uint8_t)rand();
	for (unsigned i = 0; i < NPOLLED; i++) {
		iov[i] = (struct iovec){ data + i * SLOT, SLOT };
		assert_int_equal(bdev_aio_writev(bs, i * SLOT, &iov[i], 1, count_cb, &calls), 0);
	}
	assert_int_equal(calls, 0);
	poll_bdev_until(bs, &calls, NPOLLED);
	calls = 0;
	memset(back, 0xee, NPOLLED * SLOT);
	for (unsigned i = 0; i < NPOLLED; i++) {
		iov[i] = (struct iovec){ back + i * SLOT, SLOT };
		assert_int_equal(bdev_aio_readv(bs, i * SLOT, &iov[i], 1, count_cb, &calls), 0);
	}
	assert_int_equal(calls, 0);
	poll_bdev_until(bs, &calls, NPOLLED);
	assert_int_equal(bdev_aio_poll(bs, false), 0);
	assert_memory_equal(back, data, NPOLLED * SLOT);
	calls = 0;
	memset(back, 0xee, NPOLLED * SLOT);
	for (unsigned i = 0; i < NPOLLED; i++)
		assert_int_equal(bdev_aio_readv(bs, i * SLOT, &iov[i], 1, count_cb, &calls), 0);
	poll_bdev_nowait_until(bs, &calls, NPOLLED);
	assert_memory_equal(back, data, NPOLLED * SLOT);
	free(data);
	free(back);
}

struct foreign_poll {
	struct bdev *bs;
	int ret;
};

static void *poll_from_other_thread(void *arg)
{
	struct foreign_poll *fp = arg;

	fp->ret = bdev_aio_poll(fp->bs, true);
	return NULL;
}

/* A ring bound to the opening thread refuses another thread's submit and
 * wait (EEXIST): the poll fails without running the callback, and the
 * owner's next poll completes the request. A read too big to be copied
 * in submit from a tmpfs file (BLOCK_ENGINE_IN_MEMORY), so that it
 * reaches the ring on every file. */
static void other_thread_is_refused(struct bdev *bs)
{
	struct foreign_poll fp = { bs, 0 };
	uint8_t *buf = NULL;
	struct iovec v;
	pthread_t th;
	int calls = 0;

	assert_int_equal(posix_memalign((void **)&buf, 4096, BIG_READ), 0);
	v = (struct iovec){ buf, BIG_READ };
	assert_int_equal(bdev_aio_readv(bs, 0, &v, 1, count_cb, &calls), 0);
	assert_int_equal(pthread_create(&th, NULL, poll_from_other_thread, &fp), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(fp.ret, -EEXIST);
	assert_int_equal(calls, 0);
	poll_bdev_until(bs, &calls, 1);
	free(buf);
}

/* Whether this kernel takes the flags that bind a ring (6.1 and later). */
static bool kernel_binds_rings(void)
{
	struct io_uring ring;

	if (io_uring_queue_init(8, &ring, BIND_FLAGS | IORING_SETUP_COOP_TASKRUN) < 0)
		return false;
	io_uring_queue_exit(&ring);
	return true;
}

/* On disk with O_DIRECT (writes and reads both reach the ring) and on
 * tmpfs (big reads punted to io-wq, whose completions the bound ring
 * defers to the owner; small reads copied in submit). */
static void single_thread_on(const char *file, enum block_cache_mode cache, bool binds)
{
	struct bdev *bs;

	asked_flags = 0;
	bs = open_polled_raw(file, cache, true);
	assert_int_equal(asked_flags & BIND_FLAGS, BIND_FLAGS);
	/* bound: completions are only posted when the owner waits */
	if (binds)
		assert_int_equal(bdev_aio_poll_fd(bs), -ENOTSUP);
	polled_round_trip(bs);
	if (binds)
		other_thread_is_refused(bs);
	polled_round_trip(bs);
	bdev_close(bs);
	unlink(file);
}

static bool have_tmpfs_file(char *buf, size_t len)
{
	struct statfs sfs;

	if (statfs("/dev/shm", &sfs) < 0 || sfs.f_type != TMPFS_MAGIC)
		return false;
	snprintf(buf, len, "/dev/shm/test_block_engines.%d.img", (int)getpid());
	return true;
}

static void test_single_thread(void **state)
{
	bool binds = kernel_binds_rings();
	char shm[128];
	struct bdev *bs;

	single_thread_on(path, BLOCK_CACHE_NONE, binds);
	/* without the option: an ordinary polled ring, its fd pollable */
	asked_flags = 0;
	bs = open_polled_raw(path, BLOCK_CACHE_NONE, false);
	assert_int_equal(asked_flags & BIND_FLAGS, 0);
	assert_true(bdev_aio_poll_fd(bs) >= 0);
	polled_round_trip(bs);
	bdev_close(bs);
	if (have_tmpfs_file(shm, sizeof(shm)))
		single_thread_on(shm, BLOCK_CACHE_WRITEBACK, binds);
	if (!binds)
		skip();		/* kernel before 6.1: the fallback ring was tested */
}

/* A kernel that refuses the binding flags (before 6.1), or every flag
 * (before 5.19): single_thread still opens, with an ordinary ring. */
static void test_single_thread_old_kernel(void **state)
{
	const unsigned refuse[] = { IORING_SETUP_DEFER_TASKRUN, ~0u };
	char shm[128];
	const char *file = have_tmpfs_file(shm, sizeof(shm)) ? shm : path;

	for (unsigned i = 0; i < 2; i++) {
		struct bdev *bs;

		refused_flags = refuse[i];
		asked_flags = 0;
		bs = open_polled_raw(file, BLOCK_CACHE_WRITEBACK, true);
		assert_int_equal(asked_flags & BIND_FLAGS, BIND_FLAGS);
		assert_true(bdev_aio_poll_fd(bs) >= 0);		/* not bound */
		polled_round_trip(bs);
		bdev_close(bs);
	}
	refused_flags = 0;
	unlink(file);
}

static int setup(void **state)
{
	const char *base = access("build", W_OK) == 0 ? "build" : "/var/tmp";

	snprintf(path, sizeof(path), "%s/test_block_engines.%d.img", base, (int)getpid());
	shadow = malloc(FILE_SIZE);
	srand(12345);
	return shadow ? 0 : -1;
}

static int teardown(void **state)
{
	unlink(path);
	free(shadow);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_native),
		cmocka_unit_test(test_io_uring),
		cmocka_unit_test(test_default_engine),
		cmocka_unit_test(test_shared_engines),
		cmocka_unit_test(test_polled_big_io),
		cmocka_unit_test(test_submit_at_once),
		cmocka_unit_test(test_poll_fd),
		cmocka_unit_test(test_reads_in_poll),
		cmocka_unit_test(test_single_thread),
		cmocka_unit_test(test_single_thread_old_kernel),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
