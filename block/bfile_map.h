/* Small writes to a memory-backed image file (tmpfs, ramfs) through a
 * shared mapping of the file: a memcpy instead of a pwritev, no system
 * call and no page-cache lookup per request.
 *
 * Only small ones: a write fault on a hole maps a zeroed page that the
 * copy then overwrites, where pwrite() fills a new page once, so large
 * writes into new space (convert to a fresh image) ran 30-50% slower
 * through the mapping, even with the range prefaulted in one madvise;
 * for a small write the system call it saves costs more than that.
 *
 * Only writes go through the mapping: a read fault on a hole of a tmpfs
 * file allocates a page where pread() would return zeroes without
 * allocating, so reading a sparse image through the mapping could fill
 * the host's memory. A copy that faults (the file shrank under us, the
 * file system is full) is abandoned through a SIGBUS handler, and the
 * caller then takes its system-call path, which reports the error as
 * usual (ENOSPC) or extends the file. A SIGBUS outside such a copy keeps
 * its previous disposition. */
#ifndef BLOCK_BFILE_MAP_H
#define BLOCK_BFILE_MAP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define BFILE_MAP_MAX		(1ull << 40)	/* bytes of a file mapped at most */
#define BFILE_MAP_WRITE_MAX	(64u << 10)	/* larger writes take pwritev */

struct bfile_map {
	char *base;		/* NULL: no mapping */
	uint64_t mapped;	/* bytes mapped at base */
	uint64_t usable;	/* bytes that writes may use (<= mapped; shrinks
				 * with the file, atomically) */
	bool wrote;		/* a write went through the mapping since the
				 * last bfile_map_take_wrote() */
};

/* Map the first size bytes (at most BFILE_MAP_MAX) of fd, which is open
 * for writing. Returns 0, or a negative errno with *m left unmapped (the
 * file works without a mapping). */
int bfile_map_open(struct bfile_map *m, int fd, uint64_t size);
void bfile_map_close(struct bfile_map *m);
/* The file is about to be cut to size: writes beyond it take system calls. */
void bfile_map_shrink(struct bfile_map *m, uint64_t size);
/* Copy iov to offset off through the mapping. False when it is larger
 * than BFILE_MAP_WRITE_MAX, the range is not (wholly) mapped or the copy
 * faulted: nothing is promised about the
 * range then, and the caller writes it with a system call. */
bool bfile_map_write(struct bfile_map *m, uint64_t off, const struct iovec *iov, int iovcnt);
/* Whether writes went through the mapping since the last call (through
 * a shared tmpfs mapping only a page's first write fault sets the file's
 * mtime). */
bool bfile_map_take_wrote(struct bfile_map *m);

#endif
