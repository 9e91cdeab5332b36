/* Shared body of the image-format fuzz targets (fuzz_qcow.c, fuzz_cow.c,
 * fuzz_cloop.c): the input becomes an image file in a private directory
 * that also holds "base.raw" for backing names to resolve to; it is opened
 * (backing chain included), then block status and reads run over a few
 * ranges, and, for writable formats, a write, a partial write and a read
 * back. Every outcome but a crash, hang or leak is acceptable. */
#ifndef TESTS_FUZZ_FMT_COMMON_H
#define TESTS_FUZZ_FMT_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "block/block.h"
#include "block/format.h"

static char fuzz_dir[64], fuzz_input[128];

static void fuzz_fmt_setup(const char *name)
{
	char path[128];
	uint8_t buf[4096];
	int fd;

	snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/%s.XXXXXX", name);
	if (!mkdtemp(fuzz_dir))
		abort();
	snprintf(path, sizeof(path), "%s/base.raw", fuzz_dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	memset(buf, 0x5b, sizeof(buf));
	if (fd < 0 || write(fd, buf, sizeof(buf)) != sizeof(buf) || ftruncate(fd, 1 << 20) < 0)
		abort();
	close(fd);
	snprintf(fuzz_input, sizeof(fuzz_input), "%s/input.img", fuzz_dir);
}

static void fuzz_fmt_exercise(struct bdev *bs, bool writable)
{
	static uint8_t buf[96 * 1024];
	uint64_t size = bdev_size(bs), host;
	uint64_t offs[] = { 0, 511, size / 2, size > 70000 ? size - 70000 : 0 };
	unsigned st;

	for (unsigned i = 0; i < 4 && size; i++) {
		uint64_t n = size - offs[i] < sizeof(buf) ? size - offs[i] : sizeof(buf);

		bdev_pread(bs, offs[i], buf, n);
		bdev_block_status(bs, offs[i], n, &st, &host);
	}
	if (writable && size >= 8192) {
		memset(buf, 0xa5, 5000);
		bdev_pwrite(bs, size / 3 + 7, buf, 5000);
		bdev_pwrite(bs, 0, buf, 100);
		bdev_pread(bs, size / 3, buf, 8192);
	}
}

static int fuzz_fmt_run(const char *format, const uint8_t *data, size_t size, bool writable)
{
	/* skip_backing_check: cow's mtime/size comparison with the backing file
	 * (unit-tested) would reject nearly every input against the fixed
	 * base.raw and starve the parsers of coverage */
	struct block_open_opts o = { .format = format, .read_only = !writable,
				     .skip_backing_check = true };
	struct bdev *bs;
	char err[512];
	int fd;

	fd = open(fuzz_input, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
	if (bdev_open(fuzz_input, &o, &bs, err, sizeof(err)) == 0) {
		fuzz_fmt_exercise(bs, writable);
		bdev_close(bs);
	}
	return 0;
}

#endif
