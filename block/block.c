/* The block layer core: the format registry and probing, bdev_open with
 * backing chains, request dispatch and the synchronous wrappers.
 *
 * Threading model:
 *  - Format ops (struct block_format) are synchronous and run with the
 *    bdev's mutex held: on the caller's thread for the synchronous
 *    wrappers (bdev_pread & co.), on the shared pool of format workers
 *    (BLOCK_WORKERS threads) for bdev_aio_*.
 *  - The fast path: when a format's map() says a read or write lands on
 *    plain data in its image file, bdev_aio_readv/writev submit the data
 *    I/O straight to the file's engine, with no worker hop and no lock.
 *  - Completion callbacks run exactly once, on a worker or engine thread
 *    (never inside the submit call, except for an immediate error such as
 *    a range check, in which case the submit call also returns that
 *    error). Callers that need completions on their event loop signal it
 *    from the callback (e.g. an eventfd).
 *  - bdev_close() waits for the bdev's in-flight requests.
 *  - Polled bdevs (opts.poll_completions): the slow path runs inside the
 *    submit call instead of on a worker, and every callback runs inside
 *    bdev_aio_poll() on the owner's thread (its bfile has a private polled
 *    engine); backing images are opened without it (they only see
 *    synchronous format I/O). With opts.single_thread the engine may
 *    bind itself to the opening thread (an io_uring ring bound to it).
 *
 * Backing chains: a format sets bs->backing_filename (and optionally
 * bs->backing_format) in open(); bdev_open then opens the backing image
 * read-only, resolved relative to the image with block_resolve_relative(),
 * up to max_chain_depth images, refusing a chain that loops back to an
 * image already in it (same device and inode).
 *
 * Probing (QEMU's rule since CVE-2008-2004): without a format the best
 * probe score wins; a writable image probed as raw gets a warning and
 * raw.c refuses writes that would make sector 0 probe as another format. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "block/bfile.h"
#include "block/engine.h"
#include "block/format.h"
#include "vmm/log.h"

#define BLOCK_WORKERS		4
#define DEFAULT_CHAIN_DEPTH	16
#define ZERO_CHUNK		(1u << 20)

/* ---- format registry ---- */

static struct block_format *formats;
extern struct block_format block_format_raw;	/* raw.c: always linked in */

void block_format_register(struct block_format *f)
{
	struct block_format **pp = &formats;

	for (; *pp; pp = &(*pp)->next)
		if (*pp == f)
			return;
	f->next = NULL;
	*pp = f;
}

const struct block_format *block_format_first(void)
{
	/* Referencing raw keeps raw.o in programs linked without
	 * --whole-archive (unit tests). */
	block_format_register(&block_format_raw);
	return formats;
}

const struct block_format *block_format_find(const char *name)
{
	for (const struct block_format *f = block_format_first(); f; f = f->next)
		if (name && !strcmp(f->name, name))
			return f;
	return NULL;
}

const struct block_format *block_probe(const uint8_t *head, size_t len, const char *filename)
{
	const struct block_format *best = NULL;
	int best_score = 0;

	for (const struct block_format *f = block_format_first(); f; f = f->next) {
		int score = f->probe ? f->probe(head, len, filename) : 0;

		if (score > best_score) {
			best = f;
			best_score = score;
		}
	}
	return best;
}

/* ---- the private part of a bdev ---- */

struct bdev_req;

struct bdev_priv {
	struct bdev bs;
	pthread_mutex_t qlock;
	pthread_cond_t drained;
	unsigned inflight;	/* async requests submitted, callbacks not yet returned */
	bool polled;
	bool inline_io;		/* inline_memory_io asked for and the file is in memory */
	struct bdev_req *ready, **ready_tail;	/* polled: done in submit, callback not run */
};

static struct bdev_priv *priv(struct bdev *bs)
{
	return (struct bdev_priv *)bs;
}

static void inflight_inc(struct bdev *bs)
{
	struct bdev_priv *p = priv(bs);

	pthread_mutex_lock(&p->qlock);
	p->inflight++;
	pthread_mutex_unlock(&p->qlock);
}

static void inflight_dec(struct bdev *bs)
{
	struct bdev_priv *p = priv(bs);

	pthread_mutex_lock(&p->qlock);
	if (--p->inflight == 0)
		pthread_cond_broadcast(&p->drained);
	pthread_mutex_unlock(&p->qlock);
}

static void drain(struct bdev *bs)
{
	struct bdev_priv *p = priv(bs);

	while (p->polled && p->inflight && bdev_aio_poll(bs, true) >= 0)
		;
	pthread_mutex_lock(&p->qlock);
	while (p->inflight)
		pthread_cond_wait(&p->drained, &p->qlock);
	pthread_mutex_unlock(&p->qlock);
}

/* ---- open / close ---- */

/* Images already in the chain being opened, for loop detection. */
struct chain_link {
	dev_t dev;
	ino_t ino;
	const struct chain_link *next;
};

static int open_image(const char *path, const struct block_open_opts *opts, unsigned depth,
		      const struct chain_link *chain, struct bdev **out, char *err,
		      size_t errlen);

static void warn_probed_raw_default(const char *path)
{
	log_warn("Image format was not specified for '%s' and probing guessed raw.\n"
		 "         Automatically detecting the format is dangerous for raw images, "
		 "write operations on block 0 will be restricted.\n"
		 "         Specify the 'raw' format explicitly to remove the restrictions.",
		 path);
}

void (*block_warn_probed_raw)(const char *path) = warn_probed_raw_default;

static int pick_format(struct bfile *file, const char *path, const char *name,
		       const struct block_format **fmt, bool *probed, char *err, size_t errlen)
{
	uint8_t head[BLOCK_PROBE_BUF_SIZE];
	int64_t size;
	int ret;

	*probed = false;
	if (name) {
		*fmt = block_format_find(name);
		if (!*fmt) {
			snprintf(err, errlen, "Could not open '%s': Unknown driver '%s'", path,
				 name);
			return -EINVAL;
		}
		return 0;
	}
	size = bfile_size(file);
	ret = size < 0 ? (int)size : bfile_pread(file, 0, head, sizeof(head));
	if (ret < 0) {
		snprintf(err, errlen, "Could not read image for determining its format: '%s': %s",
			 path, strerror(-ret));
		return ret;
	}
	*fmt = block_probe(head, (size_t)size < sizeof(head) ? (size_t)size : sizeof(head), path);
	if (!*fmt) {
		snprintf(err, errlen, "Could not determine image format of '%s'", path);
		return -EINVAL;
	}
	*probed = true;
	return 0;
}

static int open_backing(struct bdev *bs, const struct block_open_opts *opts,
			const struct chain_link *chain, char *err, size_t errlen)
{
	unsigned max_depth = opts->max_chain_depth ? opts->max_chain_depth : DEFAULT_CHAIN_DEPTH;
	struct block_open_opts bo = *opts;
	char *path;
	int ret;

	if (!bs->backing_filename || opts->no_backing)
		return 0;
	if (bs->depth + 1 >= max_depth) {
		snprintf(err, errlen, "'%s': backing chain longer than %u images", bs->filename,
			 max_depth);
		return -ELOOP;
	}
	path = block_resolve_relative(bs, bs->backing_filename, opts->allow_absolute_paths,
				      err, errlen);
	if (!path)
		return -EINVAL;
	bo.format = bs->depth == 0 && opts->backing_format ? opts->backing_format :
		    bs->backing_format;
	bo.backing_format = NULL;
	bo.read_only = true;
	bo.poll_completions = false;
	ret = open_image(path, &bo, bs->depth + 1, chain, &bs->backing, err, errlen);
	free(path);
	return ret;
}

static void free_bdev(struct bdev *bs)
{
	struct bdev_priv *p = priv(bs);

	bfile_close(bs->file);
	free(bs->filename);
	free(bs->backing_filename);
	free(bs->backing_format);
	pthread_mutex_destroy(&bs->lock);
	pthread_mutex_destroy(&p->qlock);
	pthread_cond_destroy(&p->drained);
	free(p);
}

static unsigned polled_engine_flags(const struct block_open_opts *opts)
{
	return (opts->single_thread ? BLOCK_ENGINE_BIND_THREAD : 0) |
	       (opts->batch_when_busy ? BLOCK_ENGINE_BATCH_WHEN_BUSY : 0);
}

static int open_image(const char *path, const struct block_open_opts *opts, unsigned depth,
		      const struct chain_link *chain, struct bdev **out, char *err,
		      size_t errlen)
{
	struct chain_link link;
	struct bdev_priv *p;
	struct bdev *bs;
	struct stat st;
	int ret;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "Could not open '%s': out of memory", path);
		return -ENOMEM;
	}
	bs = &p->bs;
	pthread_mutex_init(&bs->lock, NULL);
	pthread_mutex_init(&p->qlock, NULL);
	pthread_cond_init(&p->drained, NULL);
	bs->opts = *opts;
	bs->opts.format = NULL;		/* the caller's strings do not outlive the call */
	bs->opts.backing_format = NULL;
	bs->read_only = opts->read_only;
	bs->depth = depth;
	bs->filename = strdup(path);
	p->polled = opts->poll_completions;
	p->ready_tail = &p->ready;
	if (!bs->filename)
		ret = -ENOMEM;
	else if (p->polled)
		ret = bfile_open_polled(path, opts->read_only ? O_RDONLY : O_RDWR, opts->cache,
					opts->engine, polled_engine_flags(opts), &bs->file,
					err, errlen);
	else
		ret = bfile_open(path, opts->read_only ? O_RDONLY : O_RDWR, opts->cache,
				 opts->engine, &bs->file, err, errlen);
	if (ret == -ENOMEM && !bs->filename)
		snprintf(err, errlen, "Could not open '%s': out of memory", path);
	if (ret < 0)
		goto fail;
	if (fstat(bfile_fd(bs->file), &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "Could not open '%s': %s", path, strerror(errno));
		goto fail;
	}
	for (const struct chain_link *l = chain; l; l = l->next) {
		if (l->dev == st.st_dev && l->ino == st.st_ino) {
			snprintf(err, errlen, "'%s': backing chain loops back to an image "
				 "already in it", path);
			ret = -ELOOP;
			goto fail;
		}
	}
	p->inline_io = opts->inline_memory_io && bfile_in_memory(bs->file);
	link = (struct chain_link){ st.st_dev, st.st_ino, chain };
	ret = pick_format(bs->file, path, opts->format, &bs->fmt, &bs->probed, err, errlen);
	if (ret < 0)
		goto fail;
	ret = bs->fmt->open(bs, err, errlen);
	if (ret < 0) {
		bs->fmt = NULL;
		goto fail;
	}
	if (bs->probed && bs->fmt == &block_format_raw && !bs->read_only)
		block_warn_probed_raw(path);
	ret = open_backing(bs, opts, &link, err, errlen);
	if (ret < 0)
		goto fail;
	*out = bs;
	return 0;
fail:
	if (bs->fmt && bs->fmt->close)
		bs->fmt->close(bs);
	free_bdev(bs);
	return ret;
}

int bdev_open(const char *path, const struct block_open_opts *opts, struct bdev **out,
	      char *err, size_t errlen)
{
	static const struct block_open_opts defaults;

	if (err && errlen)
		err[0] = '\0';
	return open_image(path, opts ? opts : &defaults, 0, NULL, out, err, errlen);
}

void bdev_close(struct bdev *bs)
{
	if (!bs)
		return;
	drain(bs);
	if (bs->fmt->close)
		bs->fmt->close(bs);
	bdev_close(bs->backing);
	free_bdev(bs);
}

uint64_t bdev_size(const struct bdev *bs)
{
	return bs->size;
}

const char *bdev_format_name(const struct bdev *bs)
{
	return bs->fmt->name;
}

const char *bdev_filename(const struct bdev *bs)
{
	return bs->filename;
}

struct bdev *bdev_backing(const struct bdev *bs)
{
	return bs->backing;
}

bool bdev_is_read_only(const struct bdev *bs)
{
	return bs->read_only;
}

/* ---- requests ---- */

enum bdev_op { OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD, OP_WRITE_ZEROES };

static int check_request(struct bdev *bs, enum bdev_op op, uint64_t off, uint64_t len)
{
	if (op != OP_READ && op != OP_FLUSH && bs->read_only)
		return -EROFS;
	if (op != OP_FLUSH && (off > bs->size || len > bs->size - off))
		return -EINVAL;
	return 0;
}

/* write_zeroes for formats without one: write a zero buffer. */
static int zeroes_by_writing(struct bdev *bs, uint64_t off, uint64_t len)
{
	size_t chunk = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;
	void *zero = calloc(1, chunk ? chunk : 1);
	int ret = 0;

	if (!zero)
		return -ENOMEM;
	while (len && ret == 0) {
		struct iovec v = { zero, len < chunk ? (size_t)len : chunk };

		ret = bs->fmt->pwritev(bs, off, &v, 1);
		off += v.iov_len;
		len -= v.iov_len;
	}
	free(zero);
	return ret;
}

/* Runs one request through the format, bs->lock held. */
static int run_locked(struct bdev *bs, enum bdev_op op, uint64_t off, uint64_t len,
		      const struct iovec *iov, int iovcnt, bool may_unmap)
{
	const struct block_format *f = bs->fmt;

	switch (op) {
	case OP_READ:
		return len ? f->preadv(bs, off, iov, iovcnt) : 0;
	case OP_WRITE:
		return len ? f->pwritev(bs, off, iov, iovcnt) : 0;
	case OP_FLUSH:
		return f->flush ? f->flush(bs) : 0;
	case OP_DISCARD:
		return f->discard && len ? f->discard(bs, off, len) : 0;	/* advisory */
	case OP_WRITE_ZEROES:
		if (!len)
			return 0;
		return f->write_zeroes ? f->write_zeroes(bs, off, len, may_unmap) :
		       zeroes_by_writing(bs, off, len);
	}
	return -EINVAL;
}

static int run_request(struct bdev *bs, enum bdev_op op, uint64_t off, uint64_t len,
		       const struct iovec *iov, int iovcnt, bool may_unmap)
{
	int ret = check_request(bs, op, off, len);

	if (ret < 0)
		return ret;
	pthread_mutex_lock(&bs->lock);
	ret = run_locked(bs, op, off, len, iov, iovcnt, may_unmap);
	pthread_mutex_unlock(&bs->lock);
	return ret;
}

/* ---- synchronous wrappers ---- */

int bdev_pread(struct bdev *bs, uint64_t offset, void *buf, size_t len)
{
	struct iovec v = { buf, len };

	return run_request(bs, OP_READ, offset, len, &v, 1, false);
}

int bdev_pwrite(struct bdev *bs, uint64_t offset, const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };

	return run_request(bs, OP_WRITE, offset, len, &v, 1, false);
}

int bdev_flush(struct bdev *bs)
{
	return run_request(bs, OP_FLUSH, 0, 0, NULL, 0, false);
}

int bdev_discard(struct bdev *bs, uint64_t offset, uint64_t len)
{
	return run_request(bs, OP_DISCARD, offset, len, NULL, 0, false);
}

int bdev_write_zeroes(struct bdev *bs, uint64_t offset, uint64_t len, bool may_unmap)
{
	return run_request(bs, OP_WRITE_ZEROES, offset, len, NULL, 0, may_unmap);
}

/* ---- asynchronous dispatch ---- */

struct bdev_req {
	struct bdev *bs;
	enum bdev_op op;
	uint64_t off, len;
	const struct iovec *iov;
	int iovcnt;
	bool may_unmap;
	bdev_cb cb;
	void *opaque;
	int ret;		/* polled: result of a request run in submit */
	struct bdev_req *next;
};

static struct block_pool *workers;
static pthread_once_t workers_once = PTHREAD_ONCE_INIT;

static void workers_init(void)
{
	workers = block_pool_create(BLOCK_WORKERS);
}

__attribute__((destructor)) static void workers_exit(void)
{
	if (block_pool_destroy_if_idle(workers))
		workers = NULL;
}

static void req_complete(struct bdev_req *r, int ret)
{
	struct bdev *bs = r->bs;

	r->cb(r->opaque, ret);
	free(r);
	inflight_dec(bs);
}

static void worker_run(void *arg)
{
	struct bdev_req *r = arg;
	struct bdev *bs = r->bs;
	int ret;

	pthread_mutex_lock(&bs->lock);
	ret = run_locked(bs, r->op, r->off, r->len, r->iov, r->iovcnt, r->may_unmap);
	pthread_mutex_unlock(&bs->lock);
	req_complete(r, ret);
}

static void fast_done(void *opaque, int ret)
{
	req_complete(opaque, ret);
}

/* Polled bdevs: a request finished inside submit; its callback runs at
 * the next bdev_aio_poll. */
static void defer_callback(struct bdev_req *r, int ret)
{
	struct bdev_priv *p = priv(r->bs);

	r->ret = ret;
	*p->ready_tail = r;
	p->ready_tail = &r->next;
}

/* Memory-backed image files (opts.inline_memory_io): a copy from or to
 * the page cache that no device can delay, cheaper done here than handed
 * to another thread and back (4 KiB: 4x the rate; 1 MiB: 10-18% more,
 * with huge-page guest RAM). The caller bounds how much it submits at
 * once. */
static int run_inline(struct bdev_req *r, uint64_t host_offset)
{
	int ret = r->op == OP_READ ? bfile_preadv(r->bs->file, host_offset, r->iov, r->iovcnt)
				   : bfile_pwritev(r->bs->file, host_offset, r->iov, r->iovcnt);

	if (priv(r->bs)->polled)
		defer_callback(r, ret);
	else
		req_complete(r, ret);
	return 0;
}

/* Data I/O straight to the engine when the format maps the whole range
 * to plain data in its file: returns the engine submission's result (a
 * failure has already completed the request), or 1 to take the slow path. */
static int try_fast_path(struct bdev_req *r)
{
	struct bdev *bs = r->bs;
	struct block_extent ext = { 0 };

	if ((r->op != OP_READ && r->op != OP_WRITE) || !bs->fmt->map || !bs->file || !r->len)
		return 1;
	if (bs->fmt->map(bs, r->off, r->len, &ext) < 0 || ext.len < r->len ||
	    (ext.status & (BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO | BLOCK_STATUS_BACKING |
			   BLOCK_STATUS_COMPRESSED)) != BLOCK_STATUS_DATA)
		return 1;
	if (priv(bs)->inline_io)
		return run_inline(r, ext.host_offset);
	if (r->op == OP_READ)
		return bfile_aio_readv(bs->file, ext.host_offset, r->iov, r->iovcnt, fast_done, r);
	return bfile_aio_writev(bs->file, ext.host_offset, r->iov, r->iovcnt, fast_done, r);
}

/* Polled bdevs: the slow path on the submitting thread; the callback runs
 * at the next bdev_aio_poll. */
static void run_deferred(struct bdev_req *r)
{
	int ret;

	pthread_mutex_lock(&r->bs->lock);
	ret = run_locked(r->bs, r->op, r->off, r->len, r->iov, r->iovcnt, r->may_unmap);
	pthread_mutex_unlock(&r->bs->lock);
	defer_callback(r, ret);
}

int bdev_aio_poll(struct bdev *bs, bool wait)
{
	struct bdev_priv *p = priv(bs);
	struct bdev_req *list = p->ready;
	int n = 0, m = 0;

	if (!p->polled)
		return -EINVAL;
	p->ready = NULL;
	p->ready_tail = &p->ready;
	while (list) {
		struct bdev_req *r = list;

		list = r->next;
		req_complete(r, r->ret);
		n++;
	}
	if (bs->file)
		m = bfile_aio_poll(bs->file, wait && n == 0);
	return m < 0 && n == 0 ? m : n + (m > 0 ? m : 0);
}

static int submit(struct bdev *bs, enum bdev_op op, uint64_t off, uint64_t len,
		  const struct iovec *iov, int iovcnt, bool may_unmap, bdev_cb cb, void *opaque)
{
	struct bdev_req *r;
	int ret = check_request(bs, op, off, len);

	if (ret == 0 && iovcnt < 0)
		ret = -EINVAL;
	pthread_once(&workers_once, workers_init);
	if (ret == 0 && !workers)
		ret = -ENOMEM;
	r = ret == 0 ? malloc(sizeof(*r)) : NULL;
	if (ret == 0 && !r)
		ret = -ENOMEM;
	if (ret < 0) {
		cb(opaque, ret);
		return ret;
	}
	*r = (struct bdev_req){ bs, op, off, len, iov, iovcnt, may_unmap, cb, opaque, 0, NULL };
	inflight_inc(bs);
	ret = try_fast_path(r);
	if (ret <= 0)
		return ret;
	if (priv(bs)->polled) {
		run_deferred(r);
		return 0;
	}
	ret = block_pool_submit(workers, worker_run, r);
	if (ret < 0)
		req_complete(r, ret);
	return ret;
}

int bdev_aio_readv(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt,
		   bdev_cb cb, void *opaque)
{
	return submit(bs, OP_READ, offset, iov_size(iov, iovcnt), iov, iovcnt, false, cb, opaque);
}

int bdev_aio_writev(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt,
		    bdev_cb cb, void *opaque)
{
	return submit(bs, OP_WRITE, offset, iov_size(iov, iovcnt), iov, iovcnt, false, cb,
		      opaque);
}

int bdev_aio_flush(struct bdev *bs, bdev_cb cb, void *opaque)
{
	return submit(bs, OP_FLUSH, 0, 0, NULL, 0, false, cb, opaque);
}

int bdev_aio_discard(struct bdev *bs, uint64_t offset, uint64_t len, bdev_cb cb, void *opaque)
{
	return submit(bs, OP_DISCARD, offset, len, NULL, 0, false, cb, opaque);
}

int bdev_aio_write_zeroes(struct bdev *bs, uint64_t offset, uint64_t len, bool may_unmap,
			  bdev_cb cb, void *opaque)
{
	return submit(bs, OP_WRITE_ZEROES, offset, len, NULL, 0, may_unmap, cb, opaque);
}

/* ---- block status ---- */

int64_t bdev_block_status(struct bdev *bs, uint64_t offset, uint64_t len,
			  unsigned *status, uint64_t *host_offset)
{
	struct block_extent ext = { 0 };
	int ret = 0;

	if (offset >= bs->size || len == 0)
		return -EINVAL;
	if (len > bs->size - offset)
		len = bs->size - offset;
	if (bs->fmt->block_status) {
		pthread_mutex_lock(&bs->lock);
		ret = bs->fmt->block_status(bs, offset, len, &ext);
		pthread_mutex_unlock(&bs->lock);
		if (ret < 0)
			return ret;
	} else {
		ext = (struct block_extent){ len, BLOCK_STATUS_DATA, 0 };
	}
	if (ext.len == 0)
		return -EIO;		/* a format must make progress */
	if (ext.len > len)
		ext.len = len;
	if ((ext.status & BLOCK_STATUS_BACKING) && !bs->backing)
		ext.status = (ext.status & ~BLOCK_STATUS_BACKING) | BLOCK_STATUS_ZERO;
	if (status)
		*status = ext.status;
	if (host_offset)
		*host_offset = ext.host_offset;
	return (int64_t)ext.len;
}

int bdev_aio_poll_fd(struct bdev *bs)
{
	if (!priv(bs)->polled)
		return -EINVAL;
	return bs->file ? bfile_aio_poll_fd(bs->file) : -ENOTSUP;
}
