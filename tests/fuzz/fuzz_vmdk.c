/* libFuzzer target for the vmdk format: the input is an image file (a
 * KDMV sparse extent, possibly streamOptimized with a footer, or a text
 * descriptor). It is opened from a private directory that also holds a
 * small flat file "f.raw" and a sparse extent "s.vmdk" for descriptors to
 * name; then block status, info, check and a few reads run, and for a
 * KDMV input a write that allocates a grain (extent files stay pristine). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "block/block.h"
#include "block/format.h"
#include "block/vmdk.h"

static char dir[64], input[128];

static void setup(void)
{
	struct block_create_opts o = { .size = 1024 * 1024, .subformat = "monolithicSparse" };
	char path[128], err[256];
	int fd;

	snprintf(dir, sizeof(dir), "/tmp/fuzz_vmdk.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/f.raw", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, 64 * 1024) < 0)
		abort();
	close(fd);
	snprintf(path, sizeof(path), "%s/s.vmdk", dir);
	if (vmdk_create_ex(path, &o, NULL, err, sizeof(err)) < 0)
		abort();
	snprintf(input, sizeof(input), "%s/input.vmdk", dir);
}

static void noop_str(void *o, const char *k, const char *v) { (void)o; (void)k; (void)v; }
static void noop_num(void *o, const char *k, uint64_t v) { (void)o; (void)k; (void)v; }
static void noop_flag(void *o, const char *k, bool v) { (void)o; (void)k; (void)v; }

static void exercise(struct bdev *bs, bool write)
{
	static uint8_t buf[128 * 1024];
	uint64_t size = bdev_size(bs), host;
	uint64_t offs[] = { 0, 512, size / 2, size > 70000 ? size - 70000 : 0 };
	struct block_info_writer w = { noop_str, noop_num, noop_flag, NULL };
	struct block_check_result res = {0};
	unsigned st;
	FILE *devnull = fopen("/dev/null", "w");

	for (unsigned i = 0; i < 4 && size; i++) {
		uint64_t n = size - offs[i] < sizeof(buf) ? size - offs[i] : sizeof(buf);

		bdev_pread(bs, offs[i], buf, n);
		bdev_block_status(bs, offs[i], n, &st, &host);
	}
	bs->fmt->info(bs, &w);
	if (devnull) {
		bs->fmt->check(bs, BLOCK_REPAIR_NONE, &res, devnull);
		fclose(devnull);
	}
	if (write && size >= 4096) {
		memset(buf, 0xa5, 4096);
		bdev_pwrite(bs, size / 3, buf, 4096);
		bdev_write_zeroes(bs, 0, size < 65536 ? size : 65536, false);
		bdev_pread(bs, size / 3, buf, 4096);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct block_open_opts o = { .format = "vmdk", .read_only = true, .no_backing = true,
				     .cache = BLOCK_CACHE_UNSAFE, .engine = BLOCK_ENGINE_THREADS };
	bool kdmv = size >= 4 && !memcmp(data, "KDMV", 4);
	struct bdev *bs;
	char err[512];
	int fd;

	if (!dir[0])
		setup();
	fd = open(input, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	o.read_only = !kdmv;	/* never write into the shared extent files */
	if (bdev_open(input, &o, &bs, err, sizeof(err)) == 0) {
		exercise(bs, kdmv);
		bdev_close(bs);
	}
	return 0;
}
