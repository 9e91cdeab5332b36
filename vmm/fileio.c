/* Small file helpers shared by the loaders (kernels, firmware, option
 * ROMs). */
#include <errno.h>
#include <unistd.h>
#include "vmm/fileio.h"

int read_full_at(int fd, uint64_t off, void *buf, uint64_t len)
{
	uint8_t *p = buf;

	while (len) {
		size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t n = pread(fd, p, chunk, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}
