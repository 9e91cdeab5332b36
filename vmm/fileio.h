/* Small file helpers shared by the loaders (kernels, firmware, option
 * ROMs). */
#ifndef VMM_FILEIO_H
#define VMM_FILEIO_H

#include <stdint.h>

/* Reads exactly len bytes at off (pread, retried on EINTR and short
 * reads); 0, or a negative errno (-EIO when the file ends first). */
int read_full_at(int fd, uint64_t off, void *buf, uint64_t len);

#endif
