/* Host files under formats: opening with a cache mode (O_DIRECT for
 * none/directsync, a flush after every write for writethrough/directsync,
 * no flushes at all for unsafe), O_DIRECT alignment detection, bounce
 * buffers for unaligned O_DIRECT requests, sparse-file helpers, and
 * asynchronous data I/O through the file's engine (block/engine.h) with
 * short transfers completed and unaligned requests bounced on a pool
 * thread. Regular files and block devices (BLKGETSIZE64).
 * Writes to a memory-backed file (tmpfs, ramfs) opened for writing go
 * through a shared mapping of it where they can (block/bfile_map.h).
 * A polled bfile (bfile_open_polled) has a private polled engine: its
 * asynchronous requests complete only in bfile_aio_poll() on the owner's
 * thread, and the bounce and no-op cases and page-cache writes (see
 * write_in_caller) run synchronously in the submit call, their callbacks
 * deferred to that poll. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "block/bfile.h"
#include "block/bfile_map.h"
#include "block/engine.h"
#include "block/format.h"

#define BOUNCE_MAX	(1u << 20)	/* bytes of guest data per bounce round */
#define MAX_ALIGN	4096u

struct bfile {
	int fd;
	char *path;
	bool direct;		/* opened with O_DIRECT */
	bool writethrough;	/* fdatasync after every write */
	bool no_flush;		/* cache=unsafe */
	bool is_blockdev;
	bool in_memory;		/* a tmpfs or ramfs file: no device behind the page cache */
	struct bfile_map map;	/* in_memory and writable: where writes go */
	unsigned align;		/* offset/length/buffer alignment for O_DIRECT, else 1 */
	struct block_engine *engine;
	pthread_mutex_t rmw_lock;	/* serialises bounced (read-modify-write) writes */
	pthread_mutex_t lock;
	pthread_cond_t drained;
	unsigned inflight;		/* async requests not yet completed */
	bool polled;
	struct bfile_aio *ready, **ready_tail;	/* polled: done, callback not yet run */
};

/* ---- opening ---- */

/* The smallest O_DIRECT read size at offset 0 the file accepts. A short
 * file cannot tell (the kernel may answer EOF before checking), so it gets
 * the safe maximum. */
static unsigned detect_alignment(int fd, bool blockdev, uint64_t size)
{
	void *buf;
	unsigned a, found = MAX_ALIGN;

	if (blockdev) {
		int ssz = 0;

		if (ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz >= 512 && ssz <= (int)MAX_ALIGN &&
		    !(ssz & (ssz - 1)))
			return (unsigned)ssz;
		return MAX_ALIGN;
	}
	if (size < MAX_ALIGN || posix_memalign(&buf, MAX_ALIGN, MAX_ALIGN))
		return MAX_ALIGN;
	for (a = 512; a < MAX_ALIGN; a <<= 1) {
		if (pread(fd, buf, a, 0) == (ssize_t)a) {
			found = a;
			break;
		}
	}
	free(buf);
	return found;
}

static bool file_in_memory(int fd)
{
	struct statfs sfs;

	return fstatfs(fd, &sfs) == 0 &&
	       (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
}

static int open_fd(const char *path, int flags, bool direct, char *err, size_t errlen)
{
	int oflags = flags | O_CLOEXEC | (direct ? O_DIRECT : 0);
	int fd = open(path, oflags, 0644);
	int e = errno;

	if (fd >= 0)
		return fd;
	if (e == EINVAL && direct) {
		/* Same wording as QEMU: the file is fine, O_DIRECT is not. */
		int probe = open(path, oflags & ~O_DIRECT, 0644);

		if (probe >= 0) {
			close(probe);
			snprintf(err, errlen, "Could not open '%s': filesystem does not "
				 "support O_DIRECT", path);
			return -EINVAL;
		}
	}
	snprintf(err, errlen, "Could not open '%s': %s", path, strerror(e));
	return -e;
}

static int open_common(const char *path, int flags, enum block_cache_mode cache,
		       enum block_engine_kind engine, bool polled, unsigned engine_flags,
		       struct bfile **out, char *err, size_t errlen)
{
	bool direct = cache == BLOCK_CACHE_NONE || cache == BLOCK_CACHE_DIRECTSYNC;
	struct bfile *f;
	struct stat st;
	int fd;

	*out = NULL;
	fd = open_fd(path, flags, direct, err, errlen);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		int e = S_ISDIR(st.st_mode) ? EISDIR : errno;

		snprintf(err, errlen, "Could not open '%s': %s", path, strerror(e));
		close(fd);
		return -e;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		free(f);
		close(fd);
		snprintf(err, errlen, "Could not open '%s': out of memory", path);
		return -ENOMEM;
	}
	f->fd = fd;
	f->direct = direct;
	f->writethrough = cache == BLOCK_CACHE_WRITETHROUGH || cache == BLOCK_CACHE_DIRECTSYNC;
	f->no_flush = cache == BLOCK_CACHE_UNSAFE;
	f->is_blockdev = S_ISBLK(st.st_mode);
	f->in_memory = !f->is_blockdev && file_in_memory(fd);
	if (f->in_memory && (flags & O_ACCMODE) == O_RDWR)
		bfile_map_open(&f->map, fd, (uint64_t)st.st_size);	/* else: system calls */
	pthread_mutex_init(&f->rmw_lock, NULL);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->drained, NULL);
	f->align = 1;
	if (direct)
		f->align = detect_alignment(fd, f->is_blockdev, (uint64_t)bfile_size(f));
	f->polled = polled;
	f->ready_tail = &f->ready;
	f->engine = polled ? block_engine_create_polled(engine,
							engine_flags |
							(direct ? BLOCK_ENGINE_SUBMIT_AT_ONCE :
							 f->in_memory ? BLOCK_ENGINE_IN_MEMORY :
							 BLOCK_ENGINE_PAGE_CACHE),
							err, errlen) :
		    block_engine_create(engine, err, errlen);
	if (!f->engine) {
		char why[200];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "'%s': %s", path, why);
		bfile_close(f);
		return -EINVAL;
	}
	*out = f;
	return 0;
}

int bfile_open(const char *path, int flags, enum block_cache_mode cache,
	       enum block_engine_kind engine, struct bfile **out, char *err, size_t errlen)
{
	return open_common(path, flags, cache, engine, false, 0, out, err, errlen);
}

int bfile_open_polled(const char *path, int flags, enum block_cache_mode cache,
		      enum block_engine_kind engine, unsigned engine_flags, struct bfile **out,
		      char *err, size_t errlen)
{
	return open_common(path, flags, cache, engine, true, engine_flags, out, err, errlen);
}

/* Writes through the mapping leave the file's mtime alone once a page is
 * mapped (tmpfs has no page_mkwrite; only the first write fault sets it):
 * flushes and closing set it, as the writes' system calls would have. */
static void touch_if_mapped_writes(struct bfile *f)
{
	static const struct timespec now[2] = { { .tv_nsec = UTIME_OMIT },
						{ .tv_nsec = UTIME_NOW } };

	if (bfile_map_take_wrote(&f->map))
		futimens(f->fd, now);
}

void bfile_close(struct bfile *f)
{
	if (!f)
		return;
	while (f->polled && f->inflight && bfile_aio_poll(f, true) >= 0)
		;
	pthread_mutex_lock(&f->lock);
	while (f->inflight)
		pthread_cond_wait(&f->drained, &f->lock);
	pthread_mutex_unlock(&f->lock);
	block_engine_destroy(f->engine);
	touch_if_mapped_writes(f);
	bfile_map_close(&f->map);
	close(f->fd);
	pthread_cond_destroy(&f->drained);
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->rmw_lock);
	free(f->path);
	free(f);
}

int bfile_fd(const struct bfile *f)
{
	return f->fd;
}

bool bfile_is_direct(const struct bfile *f)
{
	return f->direct;
}

bool bfile_in_memory(const struct bfile *f)
{
	return f->in_memory;
}

unsigned bfile_alignment(const struct bfile *f)
{
	return f->align;
}

const char *bfile_engine_name(const struct bfile *f)
{
	return block_engine_name(f->engine);
}

/* ---- synchronous I/O ---- */

static bool request_aligned(const struct bfile *f, uint64_t off, const struct iovec *iov,
			    int iovcnt)
{
	uintptr_t mask = f->align - 1;

	if (!f->direct)
		return true;
	if (off & mask)
		return false;
	for (int i = 0; i < iovcnt; i++)
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & mask)
			return false;
	return true;
}

/* Full-length preadv/pwritev. A short read means end of file: the rest
 * reads as zeroes. */
static int rw_full(struct bfile *f, bool write, uint64_t off, const struct iovec *iov,
		   int iovcnt)
{
	struct iovec small[8], *copy = small, *v;
	int cnt = iovcnt, ret = 0;

	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	if (iovcnt > (int)(sizeof(small) / sizeof(small[0]))) {
		copy = malloc(sizeof(*copy) * (size_t)iovcnt);
		if (!copy)
			return -ENOMEM;
	}
	if (iovcnt)
		memcpy(copy, iov, sizeof(*copy) * (size_t)iovcnt);
	v = copy;
	while (cnt > 0) {
		ssize_t n;

		if (v->iov_len == 0) {
			v++, cnt--;
			continue;
		}
		n = write ? pwritev(f->fd, v, cnt, (off_t)off) : preadv(f->fd, v, cnt, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0 && write) {
			ret = -EIO;
			break;
		}
		off += (uint64_t)n;
		if (!write && (size_t)n < iov_size(v, cnt)) {
			/* EOF: zero the rest. */
			iov_memset(v, cnt, (size_t)n, 0, iov_size(v, cnt) - (size_t)n);
			break;
		}
		while (cnt > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++, cnt--;
		}
		if (cnt > 0) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	if (copy != small)
		free(copy);
	return ret;
}

static int rw_flat(struct bfile *f, bool write, uint64_t off, void *buf, size_t len)
{
	struct iovec v = { buf, len };

	return rw_full(f, write, off, &v, 1);
}

static uint64_t align_down(uint64_t x, unsigned a)
{
	return x - x % a;
}

static uint64_t align_up(uint64_t x, unsigned a)
{
	return align_down(x + a - 1, a);
}

/* A bounce buffer for len bytes of data (at most BOUNCE_MAX per round)
 * plus the partial blocks around them: small requests (metadata entries)
 * get a small heap buffer rather than a fresh 1 MiB mapping. */
static uint8_t *bounce_alloc(size_t len)
{
	void *buf;

	if (posix_memalign(&buf, MAX_ALIGN, (len < BOUNCE_MAX ? len : BOUNCE_MAX) + 2 * MAX_ALIGN))
		return NULL;
	return buf;
}

static int bounce_read(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt)
{
	size_t len = iov_size(iov, iovcnt), done = 0;
	unsigned a = f->align;
	uint8_t *bounce = bounce_alloc(len);
	int ret = 0;

	if (!bounce)
		return -ENOMEM;
	while (done < len) {
		uint64_t pos = off + done;
		size_t n = len - done < BOUNCE_MAX ? len - done : BOUNCE_MAX;
		uint64_t astart = align_down(pos, a), aend = align_up(pos + n, a);

		ret = rw_flat(f, false, astart, bounce, (size_t)(aend - astart));
		if (ret < 0)
			break;
		iov_from_buf(iov, iovcnt, done, bounce + (pos - astart), n);
		done += n;
	}
	free(bounce);
	return ret;
}

static int bounce_write_chunk(struct bfile *f, uint8_t *bounce, uint64_t pos,
			      const struct iovec *iov, int iovcnt, size_t iov_off, size_t n)
{
	unsigned a = f->align;
	uint64_t astart = align_down(pos, a), aend = align_up(pos + n, a);
	struct stat st;
	int ret;

	if (pos != astart) {
		ret = rw_flat(f, false, astart, bounce, a);
		if (ret < 0)
			return ret;
	}
	if ((pos + n) % a && (aend - a != astart || pos == astart)) {
		ret = rw_flat(f, false, aend - a, bounce + (aend - a - astart), a);
		if (ret < 0)
			return ret;
	}
	iov_to_buf(iov, iovcnt, iov_off, bounce + (pos - astart), n);
	if (f->is_blockdev || fstat(f->fd, &st) < 0)
		st.st_size = -1;
	ret = rw_flat(f, true, astart, bounce, (size_t)(aend - astart));
	if (ret < 0)
		return ret;
	/* Writing whole blocks may have grown the file past the data. */
	if (st.st_size >= 0 && aend > (uint64_t)st.st_size && aend > pos + n) {
		uint64_t keep = pos + n > (uint64_t)st.st_size ? pos + n : (uint64_t)st.st_size;

		if (ftruncate(f->fd, (off_t)keep) < 0)
			return -errno;
	}
	return 0;
}

static int bounce_write(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt)
{
	size_t len = iov_size(iov, iovcnt), done = 0;
	uint8_t *bounce = bounce_alloc(len);
	int ret = 0;

	if (!bounce)
		return -ENOMEM;
	pthread_mutex_lock(&f->rmw_lock);
	while (done < len && ret == 0) {
		size_t n = len - done < BOUNCE_MAX ? len - done : BOUNCE_MAX;

		ret = bounce_write_chunk(f, bounce, off + done, iov, iovcnt, done, n);
		done += n;
	}
	pthread_mutex_unlock(&f->rmw_lock);
	free(bounce);
	return ret;
}

static int sync_after_write(struct bfile *f, int ret)
{
	if (ret == 0 && f->writethrough && !f->no_flush && fdatasync(f->fd) < 0)
		return -errno;
	return ret;
}

int bfile_preadv(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt)
{
	if (off > INT64_MAX || iov_size(iov, iovcnt) > INT64_MAX - off)
		return -EINVAL;
	if (request_aligned(f, off, iov, iovcnt))
		return rw_full(f, false, off, iov, iovcnt);
	return bounce_read(f, off, iov, iovcnt);
}

int bfile_pwritev(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt)
{
	int ret;

	if (off > INT64_MAX || iov_size(iov, iovcnt) > INT64_MAX - off)
		return -EINVAL;
	if (bfile_map_write(&f->map, off, iov, iovcnt))
		ret = 0;
	else if (request_aligned(f, off, iov, iovcnt))
		ret = rw_full(f, true, off, iov, iovcnt);
	else
		ret = bounce_write(f, off, iov, iovcnt);
	return sync_after_write(f, ret);
}

int bfile_pread(struct bfile *f, uint64_t off, void *buf, size_t len)
{
	struct iovec v = { buf, len };

	return bfile_preadv(f, off, &v, 1);
}

int bfile_pwrite(struct bfile *f, uint64_t off, const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };

	return bfile_pwritev(f, off, &v, 1);
}

int bfile_flush(struct bfile *f)
{
	touch_if_mapped_writes(f);
	if (f->no_flush)
		return 0;
	return fdatasync(f->fd) < 0 ? -errno : 0;
}

int64_t bfile_size(struct bfile *f)
{
	struct stat st;

	if (f->is_blockdev) {
		uint64_t sz;

		if (ioctl(f->fd, BLKGETSIZE64, &sz) < 0)
			return -errno;
		return sz > INT64_MAX ? -EOVERFLOW : (int64_t)sz;
	}
	if (fstat(f->fd, &st) < 0)
		return -errno;
	return st.st_size;
}

int bfile_truncate(struct bfile *f, uint64_t size)
{
	if (size > INT64_MAX)
		return -EINVAL;
	if (f->is_blockdev) {
		int64_t cur = bfile_size(f);

		if (cur < 0)
			return (int)cur;
		return size > (uint64_t)cur ? -EINVAL : 0;	/* cannot grow a device */
	}
	bfile_map_shrink(&f->map, size);
	return ftruncate(f->fd, (off_t)size) < 0 ? -errno : 0;
}

static int do_fallocate(struct bfile *f, int mode, uint64_t off, uint64_t len)
{
	int ret;

	if (off > INT64_MAX || len > INT64_MAX - off)
		return -EINVAL;
	if (len == 0)
		return 0;
	do {
		ret = fallocate(f->fd, mode, (off_t)off, (off_t)len);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : 0;
}

int bfile_discard(struct bfile *f, uint64_t off, uint64_t len)
{
	return do_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
}

int bfile_fallocate(struct bfile *f, uint64_t off, uint64_t len)
{
	return do_fallocate(f, 0, off, len);
}

static int write_zeroes_slow(struct bfile *f, uint64_t off, uint64_t len)
{
	size_t chunk = len < BOUNCE_MAX ? (size_t)len : BOUNCE_MAX;
	void *zero;
	int ret = 0;

	if (posix_memalign(&zero, MAX_ALIGN, chunk ? chunk : 1))
		return -ENOMEM;
	memset(zero, 0, chunk);
	while (len && ret == 0) {
		size_t n = len < chunk ? (size_t)len : chunk;
		struct iovec v = { zero, n };

		ret = request_aligned(f, off, &v, 1) ? rw_full(f, true, off, &v, 1) :
		      bounce_write(f, off, &v, 1);
		off += n;
		len -= n;
	}
	free(zero);
	return ret;
}

int bfile_write_zeroes(struct bfile *f, uint64_t off, uint64_t len)
{
	int ret = do_fallocate(f, FALLOC_FL_ZERO_RANGE, off, len);

	if (ret == -EOPNOTSUPP || ret == -ENOSYS || ret == -EINVAL || ret == -ENODEV)
		ret = write_zeroes_slow(f, off, len);
	return sync_after_write(f, ret);
}

int64_t bfile_seek_data(struct bfile *f, uint64_t off, bool hole)
{
	off_t r;

	if (off > INT64_MAX)
		return -EINVAL;
	r = lseek(f->fd, (off_t)off, hole ? SEEK_HOLE : SEEK_DATA);
	return r < 0 ? -errno : (int64_t)r;
}

/* ---- asynchronous I/O ---- */

struct bfile_aio {
	struct bfile *f;
	enum engine_op op;
	uint64_t off;
	const struct iovec *orig;
	int orig_cnt;
	struct iovec *iov;	/* the not-yet-transferred part (a private copy) */
	int iovcnt;
	size_t total, done;
	bdev_cb cb;
	void *opaque;
	struct iovec inline_iov[4];
	struct iovec *heap_iov;
	int ret;			/* polled: result of a request done in submit */
	struct bfile_aio *next;
};

static void aio_finish(struct bfile_aio *r, int ret)
{
	struct bfile *f = r->f;

	r->cb(r->opaque, ret);
	free(r->heap_iov);
	free(r);
	pthread_mutex_lock(&f->lock);
	if (--f->inflight == 0)
		pthread_cond_broadcast(&f->drained);
	pthread_mutex_unlock(&f->lock);
}

static void aio_done(void *opaque, ssize_t res);

static int aio_submit_rest(struct bfile_aio *r)
{
	return block_engine_submit(r->f->engine, r->f->fd, r->op, r->off + r->done,
				   r->iov, r->iovcnt, aio_done, r);
}

static void aio_advance(struct bfile_aio *r, size_t n)
{
	while (r->iovcnt > 0 && n >= r->iov->iov_len) {
		n -= r->iov->iov_len;
		r->iov++, r->iovcnt--;
	}
	if (r->iovcnt > 0) {
		r->iov->iov_base = (char *)r->iov->iov_base + n;
		r->iov->iov_len -= n;
	}
}

static void aio_done(void *opaque, ssize_t res)
{
	struct bfile_aio *r = opaque;
	int ret;

	if (res < 0 || r->op == ENGINE_FLUSH) {
		aio_finish(r, res < 0 ? (int)res : 0);
		return;
	}
	r->done += (size_t)res;
	if (r->done < r->total && r->op == ENGINE_READ) {
		/* Short read: end of file, the rest reads as zeroes. */
		iov_memset(r->orig, r->orig_cnt, r->done, 0, r->total - r->done);
		r->done = r->total;
	}
	if (r->done < r->total) {
		if (res == 0) {
			aio_finish(r, -EIO);
			return;
		}
		aio_advance(r, (size_t)res);
		ret = aio_submit_rest(r);
		if (ret < 0)
			aio_finish(r, ret);
		return;
	}
	if (r->op == ENGINE_WRITE && r->f->writethrough && !r->f->no_flush) {
		r->op = ENGINE_FLUSH;
		ret = block_engine_submit(r->f->engine, r->f->fd, ENGINE_FLUSH, 0, NULL, 0,
					  aio_done, r);
		if (ret < 0)
			aio_finish(r, ret);
		return;
	}
	aio_finish(r, 0);
}

/* Unaligned O_DIRECT requests take the synchronous bounce path on a pool
 * thread. */
static void aio_bounce_run(void *arg)
{
	struct bfile_aio *r = arg;
	int ret;

	if (r->op == ENGINE_READ)
		ret = bfile_preadv(r->f, r->off, r->orig, r->orig_cnt);
	else
		ret = bfile_pwritev(r->f, r->off, r->orig, r->orig_cnt);
	aio_finish(r, ret);
}

/* Nothing to transfer: complete on a pool thread all the same. */
static void aio_noop_run(void *arg)
{
	aio_finish(arg, 0);
}

/* Polled: the bounce and no-op cases run here, their callbacks at the
 * next bfile_aio_poll. */
static int aio_run_deferred(struct bfile_aio *r, bool noop)
{
	struct bfile *f = r->f;

	if (noop)
		r->ret = 0;
	else if (r->op == ENGINE_READ)
		r->ret = bfile_preadv(f, r->off, r->orig, r->orig_cnt);
	else
		r->ret = bfile_pwritev(f, r->off, r->orig, r->orig_cnt);
	r->next = NULL;
	*f->ready_tail = r;
	f->ready_tail = &r->next;
	return 0;
}

int bfile_aio_poll(struct bfile *f, bool wait)
{
	struct bfile_aio *list = f->ready;
	int n = 0, m;

	if (!f->polled)
		return -EINVAL;
	f->ready = NULL;
	f->ready_tail = &f->ready;
	while (list) {
		struct bfile_aio *r = list;

		list = r->next;
		aio_finish(r, r->ret);
		n++;
	}
	m = block_engine_poll(f->engine, wait && n == 0);
	return m < 0 && n == 0 ? m : n + (m > 0 ? m : 0);
}

/* Polled: page-cache writes that gain nothing from the engine are copied
 * on the owner's thread.
 *  - Small writes to a regular file. Every engine would serialise them
 *    anyway: the file's inode lock does for threads, libaio completes them
 *    inside io_submit, and io_uring (ext4 and tmpfs without non-blocking
 *    buffered writes) hands each to an io-wq worker that runs one write of
 *    a file at a time, at the price of two context switches. Larger writes
 *    to a disk-backed file still go to the engine, so a copy of a MiB or
 *    more (or a wait for dirty-page throttling) does not hold up the
 *    owner's other work, such as the page-cache reads convert runs
 *    meanwhile on its own thread (1 MiB writes here made convert on ext4
 *    15% slower).
 *  - Writes of any size to a file in memory (tmpfs, ramfs): they never
 *    wait for a device, and with io_uring the worker's wake-up of the owner
 *    per completion tends, on a busy host, to put the owner on the
 *    worker's CPU: 1 MiB writes ran 7-10% slower there than here, and
 *    convert to tmpfs was no faster. (Reads stay with the engine, which
 *    copies those of up to 64 KiB itself (BLOCK_ENGINE_IN_MEMORY) and lets
 *    bigger ones, such as convert's, overlap the owner's work on a
 *    worker.)
 * Writethrough keeps the engine's write+flush. */
#define WRITE_IN_CALLER_MAX	(128u << 10)

static bool write_in_caller(const struct bfile *f, size_t len)
{
	return f->polled && !f->direct && !f->writethrough && !f->is_blockdev &&
	       (len <= WRITE_IN_CALLER_MAX || f->in_memory);
}

static int aio_start(struct bfile *f, enum engine_op op, uint64_t off, const struct iovec *iov,
		     int iovcnt, bdev_cb cb, void *opaque)
{
	struct bfile_aio *r;
	int ret;

	if (iovcnt < 0 || iovcnt > IOV_MAX || off > INT64_MAX ||
	    iov_size(iov, iovcnt) > INT64_MAX - off) {
		cb(opaque, -EINVAL);
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (r && iovcnt > 4 && !(r->heap_iov = malloc(sizeof(*iov) * (size_t)iovcnt))) {
		free(r);
		r = NULL;
	}
	if (!r) {
		cb(opaque, -ENOMEM);
		return -ENOMEM;
	}
	r->f = f;
	r->op = op;
	r->off = off;
	r->orig = iov;
	r->orig_cnt = iovcnt;
	r->iov = r->heap_iov ? r->heap_iov : r->inline_iov;
	if (iovcnt)
		memcpy(r->iov, iov, sizeof(*iov) * (size_t)iovcnt);
	r->iovcnt = iovcnt;
	r->total = iov_size(iov, iovcnt);
	r->cb = cb;
	r->opaque = opaque;
	if (op == ENGINE_FLUSH)
		touch_if_mapped_writes(f);
	pthread_mutex_lock(&f->lock);
	f->inflight++;
	pthread_mutex_unlock(&f->lock);
	if ((op != ENGINE_FLUSH && r->total == 0) || (op == ENGINE_FLUSH && f->no_flush))
		ret = f->polled ? aio_run_deferred(r, true) :
		      block_pool_submit(block_io_pool(), aio_noop_run, r);
	else if (op != ENGINE_FLUSH && !request_aligned(f, off, iov, iovcnt))
		ret = f->polled ? aio_run_deferred(r, false) :
		      block_pool_submit(block_io_pool(), aio_bounce_run, r);
	else if (op == ENGINE_WRITE && write_in_caller(f, r->total))
		ret = aio_run_deferred(r, false);
	else
		ret = aio_submit_rest(r);
	if (ret < 0)
		aio_finish(r, ret);
	return ret;
}

int bfile_aio_readv(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt,
		    bdev_cb cb, void *opaque)
{
	return aio_start(f, ENGINE_READ, off, iov, iovcnt, cb, opaque);
}

int bfile_aio_writev(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt,
		     bdev_cb cb, void *opaque)
{
	return aio_start(f, ENGINE_WRITE, off, iov, iovcnt, cb, opaque);
}

int bfile_aio_flush(struct bfile *f, bdev_cb cb, void *opaque)
{
	return aio_start(f, ENGINE_FLUSH, 0, NULL, 0, cb, opaque);
}

int bfile_aio_poll_fd(struct bfile *f)
{
	int fd;

	if (!f->polled)
		return -EINVAL;
	fd = block_engine_poll_fd(f->engine);
	return fd >= 0 ? fd : -ENOTSUP;
}
