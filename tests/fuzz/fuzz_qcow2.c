/* libFuzzer target for the qcow2 reader: the input is an image file
 * (written to a memfd), opened read-only without its backing chain, read
 * at a few ranges (chosen from the input's tail), block-status queried and
 * checked. Must never crash, hang or allocate without bound. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "block/block.h"
#include "block/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct block_open_opts o = { .format = "qcow2", .read_only = true, .no_backing = true };
	struct block_check_result res;
	struct bdev *bs;
	char path[64], err[256];
	static uint8_t buf[128 << 10];
	int fd = memfd_create("fuzz_qcow2", 0);

	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (bdev_open(path, &o, &bs, err, sizeof(err)) == 0) {
		uint64_t vs = bdev_size(bs), offs[4] = { 0, vs / 2, vs > 4096 ? vs - 4096 : 0, 0 };
		if (size >= 8)
			memcpy(&offs[3], data + size - 8, 8);
		for (int i = 0; i < 4; i++) {
			uint64_t off = vs ? offs[i] % vs : 0;
			size_t len = vs - off < sizeof(buf) ? (size_t)(vs - off) : sizeof(buf);
			unsigned st;
			uint64_t host;
			if (len)
				bdev_pread(bs, off, buf, len);
			if (len)
				bdev_block_status(bs, off, len, &st, &host);
		}
		memset(&res, 0, sizeof(res));
		if (bs->fmt->check)
			bs->fmt->check(bs, BLOCK_REPAIR_NONE, &res, NULL);
		bdev_close(bs);
	}
	close(fd);
	return 0;
}
