/* Unit tests for polled completions (block_open_opts.poll_completions):
 * with each engine (threads, native AIO, io_uring), cached and O_DIRECT,
 * on raw and qcow2 (whose unallocated clusters take the slow path), every
 * callback runs exactly once, on the submitting thread and only inside
 * bdev_aio_poll; more requests in flight than the engines' queues hold;
 * unaligned O_DIRECT requests; data read back as written; bdev_close
 * with requests still in flight; poll on an idle or unpolled bdev. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "block/bfile.h"
#include "block/format.h"
#include "block/qcow2.h"

/* The unit tests link the archive without --whole-archive: referencing
 * qcow2.o brings in the qcow2 format's registration. */
__attribute__((used)) static bool (*const link_qcow2)(const struct qcow2 *, uint64_t,
						       uint64_t) = qcow2_offset_sane;

#define SLOT		4096u
#define NREQ		3000u	/* more than the io_uring CQ and the AIO context hold */
#define IMG_SIZE	((uint64_t)SLOT * NREQ)

static char path[128];
static bool in_poll;
static pthread_t owner;

struct preq {
	unsigned calls;
	int ret;
	struct iovec iov;
	uint64_t off;
};

static struct preq reqs[NREQ];
static unsigned done;

static void poll_cb(void *opaque, int ret)
{
	struct preq *r = opaque;

	assert_true(in_poll);
	assert_true(pthread_equal(pthread_self(), owner));
	r->calls++;
	r->ret = ret;
	done++;
}

static int poll_once(struct bdev *bs, bool wait)
{
	int n;

	in_poll = true;
	n = bdev_aio_poll(bs, wait);
	in_poll = false;
	return n;
}

static void wait_all(struct bdev *bs, unsigned n)
{
	while (done < n)
		assert_true(poll_once(bs, true) >= 0);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(reqs[i].calls, 1);
		assert_int_equal(reqs[i].ret, 0);
	}
}

static uint8_t pattern_byte(uint64_t pos)
{
	return (uint8_t)(pos * 7 + pos / 4096 + 1);
}

/* Request i covers slot i: whole for even i, an odd piece for odd i when
 * unaligned requests are asked for (bounced under O_DIRECT). */
static void setup_req(unsigned i, bool unaligned, bool write)
{
	struct preq *r = &reqs[i];
	unsigned start = 0, len = SLOT;

	if (unaligned && i % 2) {
		start = 1 + i % 1000;
		len = SLOT - start - i % 7;
	}
	r->calls = 0;
	r->ret = -1;
	r->off = (uint64_t)i * SLOT + start;
	if (!r->iov.iov_base)
		assert_int_equal(posix_memalign(&r->iov.iov_base, 4096, SLOT), 0);
	r->iov.iov_len = len;
	if (write)
		for (unsigned k = 0; k < len; k++)
			((uint8_t *)r->iov.iov_base)[k] = pattern_byte(r->off + k);
	else
		memset(r->iov.iov_base, 0xee, len);
}

static struct bdev *open_polled(const char *fmt, enum block_cache_mode cache,
				enum block_engine_kind kind)
{
	struct block_open_opts o = { .format = fmt, .cache = cache, .engine = kind,
				     .poll_completions = true };
	char err[256];
	struct bdev *bs;

	assert_int_equal(bdev_open(path, &o, &bs, err, sizeof(err)), 0);
	return bs;
}

static void make_image(const char *fmt)
{
	struct block_create_opts co = { .size = IMG_SIZE };
	const struct block_format *f = block_format_find(fmt);
	char err[256];

	unlink(path);
	assert_non_null(f);
	assert_int_equal(f->create(path, &co, err, sizeof(err)), 0);
}

static void write_read_verify_n(const char *fmt, enum block_cache_mode cache,
				enum block_engine_kind kind, bool unaligned, unsigned nreq)
{
	struct bdev *bs;

	make_image(fmt);
	bs = open_polled(fmt, cache, kind);
	done = 0;
	for (unsigned i = 0; i < nreq; i++) {
		setup_req(i, unaligned, true);
		assert_int_equal(bdev_aio_writev(bs, reqs[i].off, &reqs[i].iov, 1, poll_cb,
						 &reqs[i]), 0);
		assert_int_equal(reqs[i].calls, 0);	/* never inside submit */
	}
	wait_all(bs, nreq);
	assert_int_equal(poll_once(bs, true), 0);	/* idle: returns at once */
	done = 0;
	for (unsigned i = 0; i < nreq; i++) {
		setup_req(i, unaligned, false);
		assert_int_equal(bdev_aio_readv(bs, reqs[i].off, &reqs[i].iov, 1, poll_cb,
						&reqs[i]), 0);
	}
	wait_all(bs, nreq);
	for (unsigned i = 0; i < nreq; i++)
		for (unsigned k = 0; k < reqs[i].iov.iov_len; k++)
			if (((uint8_t *)reqs[i].iov.iov_base)[k] != pattern_byte(reqs[i].off + k))
				fail_msg("%s engine %d request %u byte %u differs", fmt, kind,
					 i, k);
	/* close with requests in flight: bdev_close polls them */
	done = 0;
	for (unsigned i = 0; i < 64 && i < nreq; i++) {
		setup_req(i, unaligned, false);
		assert_int_equal(bdev_aio_readv(bs, reqs[i].off, &reqs[i].iov, 1, poll_cb,
						&reqs[i]), 0);
	}
	in_poll = true;		/* the callbacks run inside bdev_close */
	bdev_close(bs);
	in_poll = false;
	assert_int_equal(done, nreq < 64 ? nreq : 64);
}

static void write_read_verify(const char *fmt, enum block_cache_mode cache,
			      enum block_engine_kind kind, bool unaligned)
{
	write_read_verify_n(fmt, cache, kind, unaligned, NREQ);
}

static const enum block_engine_kind kinds[] = {
	BLOCK_ENGINE_THREADS, BLOCK_ENGINE_NATIVE, BLOCK_ENGINE_IO_URING,
};

static void test_raw_cached(void **state)
{
	for (unsigned k = 0; k < 3; k++) {
		write_read_verify("raw", BLOCK_CACHE_WRITEBACK, kinds[k], true);
		/* writes through the engine, each followed by its flush */
		write_read_verify_n("raw", BLOCK_CACHE_WRITETHROUGH, kinds[k], true, 40);
	}
}

static void test_raw_direct(void **state)
{
	for (unsigned k = 0; k < 3; k++)
		write_read_verify("raw", BLOCK_CACHE_NONE, kinds[k], true);
}

static void test_qcow2(void **state)
{
	for (unsigned k = 0; k < 3; k++) {
		write_read_verify("qcow2", BLOCK_CACHE_WRITEBACK, kinds[k], false);
		write_read_verify("qcow2", BLOCK_CACHE_NONE, kinds[k], false);
	}
}

static void flush_cb(void *opaque, int ret)
{
	int *r = opaque;

	assert_true(in_poll);
	*r = ret;
}

static void test_flush_and_errors(void **state)
{
	struct block_open_opts o = { .format = "raw" };
	struct bdev *bs, *plain;
	char err[256];
	int fr = 1;

	make_image("raw");
	bs = open_polled("raw", BLOCK_CACHE_WRITETHROUGH, BLOCK_ENGINE_IO_URING);
	assert_int_equal(bdev_aio_flush(bs, flush_cb, &fr), 0);
	while (fr == 1)
		assert_true(poll_once(bs, true) >= 0);
	assert_int_equal(fr, 0);
	/* an out-of-range request fails inside the submit call */
	reqs[0].calls = 0;
	in_poll = true;
	assert_int_equal(bdev_aio_readv(bs, IMG_SIZE, &reqs[0].iov, 1, poll_cb, &reqs[0]),
			 -EINVAL);
	in_poll = false;
	assert_int_equal(reqs[0].calls, 1);
	bdev_close(bs);
	assert_int_equal(bdev_open(path, &o, &plain, err, sizeof(err)), 0);
	assert_int_equal(bdev_aio_poll(plain, false), -EINVAL);
	bdev_close(plain);
}

static int setup(void **state)
{
	snprintf(path, sizeof(path), "build/tests/test_block_poll.%d.img", (int)getpid());
	owner = pthread_self();
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	for (unsigned i = 0; i < NREQ; i++)
		free(reqs[i].iov.iov_base);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw_cached),
		cmocka_unit_test(test_raw_direct),
		cmocka_unit_test(test_qcow2),
		cmocka_unit_test(test_flush_and_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
