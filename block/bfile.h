/* A host file (or block device) opened for a format, with the cache mode
 * applied (O_DIRECT for none/directsync) and all I/O going through one I/O
 * engine. Synchronous calls for formats' metadata and slow paths;
 * asynchronous submission for the data fast path. */
#ifndef BLOCK_BFILE_H
#define BLOCK_BFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "block/block.h"

struct bfile;

/* flags: O_RDONLY or O_RDWR, optionally O_CREAT|O_TRUNC for create. */
int bfile_open(const char *path, int flags, enum block_cache_mode cache,
	       enum block_engine_kind engine, struct bfile **out, char *err, size_t errlen);
/* Like bfile_open, with a private engine whose completions run only in
 * bfile_aio_poll() on the caller's thread: a polled bfile is used by one
 * thread at a time (block_open_opts.poll_completions). engine_flags:
 * BLOCK_ENGINE_BIND_THREAD, BLOCK_ENGINE_BATCH_WHEN_BUSY (block/engine.h);
 * the file's kind adds its own. */
int bfile_open_polled(const char *path, int flags, enum block_cache_mode cache,
		      enum block_engine_kind engine, unsigned engine_flags, struct bfile **out,
		      char *err, size_t errlen);
void bfile_close(struct bfile *f);

/* Synchronous, full-length (short reads past EOF are zero-filled; short
 * writes retried). Unaligned requests are bounced for O_DIRECT. */
int bfile_pread(struct bfile *f, uint64_t off, void *buf, size_t len);
int bfile_pwrite(struct bfile *f, uint64_t off, const void *buf, size_t len);
int bfile_preadv(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt);
int bfile_pwritev(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt);
int bfile_flush(struct bfile *f);			/* fdatasync unless cache=unsafe */
int bfile_truncate(struct bfile *f, uint64_t size);
int64_t bfile_size(struct bfile *f);
/* Deallocate (FALLOC_FL_PUNCH_HOLE) or zero (FALLOC_FL_ZERO_RANGE, else
 * write zeroes) a range. */
int bfile_discard(struct bfile *f, uint64_t off, uint64_t len);
int bfile_write_zeroes(struct bfile *f, uint64_t off, uint64_t len);
int bfile_fallocate(struct bfile *f, uint64_t off, uint64_t len);
/* Next data / hole (SEEK_DATA / SEEK_HOLE) for sparse-aware raw. */
int64_t bfile_seek_data(struct bfile *f, uint64_t off, bool hole);
int bfile_fd(const struct bfile *f);
bool bfile_is_direct(const struct bfile *f);
/* A file whose pages live only in memory (tmpfs, ramfs): no device
 * behind its page cache, so its I/O never waits for one. */
bool bfile_in_memory(const struct bfile *f);
unsigned bfile_alignment(const struct bfile *f);	/* 1, or 512/4096 for O_DIRECT */
const char *bfile_engine_name(const struct bfile *f);	/* "threads", "native", "io_uring" */

/* Asynchronous data I/O through the engine. */
int bfile_aio_readv(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt,
		    bdev_cb cb, void *opaque);
int bfile_aio_writev(struct bfile *f, uint64_t off, const struct iovec *iov, int iovcnt,
		     bdev_cb cb, void *opaque);
int bfile_aio_flush(struct bfile *f, bdev_cb cb, void *opaque);
/* Polled bfiles: starts queued requests and runs the callbacks of finished
 * ones on this thread; with wait, first blocks until one finishes when
 * none has and some are in flight. Returns the number of callbacks run,
 * or a negative errno (-EINVAL for a bfile that is not polled). */
int bfile_aio_poll(struct bfile *f, bool wait);
/* Polled bfiles: see bdev_aio_poll_fd. */
int bfile_aio_poll_fd(struct bfile *f);

#endif
