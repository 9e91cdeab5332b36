/* The block layer's public interface: open an image of any supported
 * format and read, write, flush, discard and write zeroes, asynchronously
 * (completions on the caller's event loop or a callback thread) or through
 * a synchronous wrapper for tools.
 *
 * Architecture:
 *   struct bdev          an open image (format instance), possibly with a
 *                        backing bdev (chains)
 *   struct block_format  a format's ops table (block/raw.c, qcow2.c, ...)
 *   struct bfile         the host file under a format, where every byte of
 *                        I/O goes through an I/O engine (block/engine.h)
 * Formats implement synchronous ops on bfiles (run on the block layer's
 * worker threads) plus an optional map() fast path: when a guest range maps
 * to plain data in the image file, the layer submits the data I/O straight
 * to the engine without a worker hop. */
#ifndef BLOCK_BLOCK_H
#define BLOCK_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct bdev;
struct bfile;

#define BDRV_SECTOR_SIZE 512

enum block_cache_mode {		/* as QEMU defines them */
	BLOCK_CACHE_WRITEBACK = 0,	/* host page cache, guest flushes honoured */
	BLOCK_CACHE_NONE,		/* O_DIRECT, flushes honoured */
	BLOCK_CACHE_WRITETHROUGH,	/* page cache, every write followed by fdatasync */
	BLOCK_CACHE_DIRECTSYNC,		/* O_DIRECT + O_DSYNC semantics */
	BLOCK_CACHE_UNSAFE,		/* page cache, flushes ignored */
};

enum block_engine_kind {
	BLOCK_ENGINE_DEFAULT = 0,	/* io_uring if usable, else threads */
	BLOCK_ENGINE_THREADS,
	BLOCK_ENGINE_NATIVE,		/* Linux AIO via libaio (needs O_DIRECT to be async) */
	BLOCK_ENGINE_IO_URING,
};

struct block_open_opts {
	const char *format;		/* NULL: probe (raw gets a warning) */
	bool read_only;
	enum block_cache_mode cache;
	enum block_engine_kind engine;
	bool no_backing;		/* open without the backing chain */
	const char *backing_format;	/* override the format of the backing file */
	uint64_t l2_cache_bytes;	/* qcow2: 0 = cover the whole image */
	bool allow_absolute_paths;	/* backing/extent names outside the image's dir */
	unsigned max_chain_depth;	/* 0 = default (16) */
	bool for_check;			/* open for check -r: a corrupt or dirty image opens
					 * read-write without automatic repair (qcow2) */
	bool skip_backing_check;	/* cow: don't compare the backing file's mtime and
					 * size with the header (UML's check) */
	bool poll_completions;		/* bdev_aio_* callbacks run only in bdev_aio_poll() */
	bool single_thread;		/* with poll_completions: only the opening thread
					 * ever submits, polls and closes. Lets io_uring bind
					 * its ring to that thread for cheaper completions
					 * (bdev_aio_poll_fd then gives -ENOTSUP) */
	bool batch_when_busy;		/* with poll_completions on an O_DIRECT file: the
					 * caller submits in bursts (a virtqueue pass) and
					 * polls after each, so once the device holds
					 * AT_ONCE_DEPTH requests the rest of a burst goes
					 * in one system call (BLOCK_ENGINE_BATCH_WHEN_BUSY) */
	bool inline_memory_io;		/* data I/O to a memory-backed image file (tmpfs,
					 * ramfs: it never waits for a device) runs inside
					 * the submit call, callback included */
};

/* Parse "writeback|none|writethrough|directsync|unsafe" and
 * "threads|native|io_uring"; -1 on unknown. */
int block_parse_cache_mode(const char *s, enum block_cache_mode *out);
int block_parse_engine(const char *s, enum block_engine_kind *out);

/* Open path. Returns 0 or a negative errno with one line naming the file
 * (and field) in err. Never crashes on a hostile image. */
int bdev_open(const char *path, const struct block_open_opts *opts,
	      struct bdev **out, char *err, size_t errlen);
void bdev_close(struct bdev *bs);

uint64_t bdev_size(const struct bdev *bs);		/* virtual size, bytes */
const char *bdev_format_name(const struct bdev *bs);
const char *bdev_filename(const struct bdev *bs);
struct bdev *bdev_backing(const struct bdev *bs);	/* NULL when none */
bool bdev_is_read_only(const struct bdev *bs);

/* Asynchronous I/O. Offsets and lengths in bytes (need not be aligned;
 * the layer bounces where O_DIRECT demands it). The callback runs exactly
 * once, on a block-layer thread or synchronously inside the submit call
 * for an immediate error; ret is 0 or a negative errno. The iovec array
 * must stay valid until completion.
 * Details (block/block.c): the submit call returns 0, or the immediate
 * error it has already passed to the callback (never complete twice). The
 * callback runs on a format worker or an engine completion thread: keep it
 * short (e.g. post to the device's event loop through an eventfd); it may
 * submit more requests but must not call bdev_close(), which waits for
 * every in-flight request of the bdev. Out-of-range requests fail with
 * -EINVAL, writes to a read-only bdev with -EROFS, and a write to a probed
 * raw image that would make sector 0 look like another format with -EPERM. */
typedef void (*bdev_cb)(void *opaque, int ret);
int bdev_aio_readv(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt,
		   bdev_cb cb, void *opaque);
int bdev_aio_writev(struct bdev *bs, uint64_t offset, const struct iovec *iov, int iovcnt,
		    bdev_cb cb, void *opaque);
int bdev_aio_flush(struct bdev *bs, bdev_cb cb, void *opaque);
/* Discard (unmap) or zero [offset, offset+len). may_unmap lets
 * write-zeroes deallocate. */
int bdev_aio_discard(struct bdev *bs, uint64_t offset, uint64_t len, bdev_cb cb, void *opaque);
int bdev_aio_write_zeroes(struct bdev *bs, uint64_t offset, uint64_t len, bool may_unmap,
			  bdev_cb cb, void *opaque);
/* Polled completions (opts.poll_completions), for a single thread that
 * waits for its own requests (tools, an iothread), as qemu-img and QEMU's
 * AioContext do: the image file gets a private engine without a
 * completion thread; fast-path requests are queued and reach the kernel
 * in one batch at the next poll; other requests run synchronously inside
 * the submit call. Every callback then runs inside bdev_aio_poll(), which
 * runs those that are ready and, with wait, first blocks until one is when
 * none is and requests are in flight. Returns the number of callbacks run
 * or a negative errno (-EINVAL for a bdev opened without the option). Such
 * a bdev is used by one thread at a time; bdev_close() polls what is left. */
int bdev_aio_poll(struct bdev *bs, bool wait);
/* Polled bdevs: a file descriptor that becomes readable (EPOLLIN) when
 * bdev_aio_poll() has callbacks to run for requests already handed to the
 * kernel, for an event loop to wait on. Requests completed inside submit
 * are not signalled: poll once after submitting. -EINVAL for a bdev that
 * is not polled, -ENOTSUP when its engine cannot signal (threads; a ring
 * bound to its thread). Native engines signal only requests submitted
 * after the first call: ask before the first request. */
int bdev_aio_poll_fd(struct bdev *bs);

/* Synchronous wrappers (tools, tests): return 0 or a negative errno. */
int bdev_pread(struct bdev *bs, uint64_t offset, void *buf, size_t len);
int bdev_pwrite(struct bdev *bs, uint64_t offset, const void *buf, size_t len);
int bdev_flush(struct bdev *bs);
int bdev_discard(struct bdev *bs, uint64_t offset, uint64_t len);
int bdev_write_zeroes(struct bdev *bs, uint64_t offset, uint64_t len, bool may_unmap);

/* Allocation status of [offset, offset+len) for map, convert -S and
 * compare: returns the length (> 0) of the leading run that shares one
 * status, or a negative errno. */
enum block_status {
	BLOCK_STATUS_DATA = 1,		/* allocated in this image */
	BLOCK_STATUS_ZERO = 2,		/* reads as zeroes (may combine with DATA) */
	BLOCK_STATUS_BACKING = 4,	/* unallocated here: comes from the backing file */
	BLOCK_STATUS_COMPRESSED = 8,
	/* With ZERO: not allocated in this layer, which has no backing file
	 * (qemu-img map's "present": false), as opposed to zero clusters. */
	BLOCK_STATUS_UNALLOCATED = 16,
};
int64_t bdev_block_status(struct bdev *bs, uint64_t offset, uint64_t len,
			  unsigned *status, uint64_t *host_offset);

/* iovec helpers (block/util.c), for formats and front ends alike. */
size_t iov_size(const struct iovec *iov, int iovcnt);
/* The part of iov at [off, off+len) as a new iovec array in out (room for
 * iovcnt entries); returns the number of entries. */
int iov_slice(const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len,
	      struct iovec *out);
/* Copy between a flat buffer and an iovec at a byte offset into the iovec. */
size_t iov_to_buf(const struct iovec *iov, int iovcnt, size_t iov_off, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, int iovcnt, size_t iov_off, const void *buf,
		    size_t len);
void iov_memset(const struct iovec *iov, int iovcnt, size_t iov_off, int c, size_t len);

#endif
