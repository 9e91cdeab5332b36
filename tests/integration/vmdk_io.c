/* A small driver for tests/integration/test_vmdk_interop.sh: create vmdk
 * images, write patterns, dump the virtual disk to a raw file, convert a
 * raw file into a (possibly compressed) vmdk, and print what we parsed.
 * Built by the test script against build/libminikvm.a.
 *
 *   vmdk_io create IMG SUBFORMAT SIZE [zeroed|BACKING]
 *   vmdk_io write IMG OFFSET LEN BYTE
 *   vmdk_io zero IMG OFFSET LEN
 *   vmdk_io dump IMG RAW
 *   vmdk_io fromraw RAW IMG SUBFORMAT
 *   vmdk_io info IMG */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "block/block.h"
#include "block/format.h"
#include "block/vmdk.h"

#define CHUNK (1024 * 1024)

static char err[512];

static struct bdev *open_or_die(const char *path, bool ro)
{
	struct block_open_opts o = { .format = "vmdk", .read_only = ro };
	struct bdev *bs;

	if (bdev_open(path, &o, &bs, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmdk_io: %s\n", err);
		exit(1);
	}
	return bs;
}

static int do_create(const char *img, const char *sub, uint64_t size, bool zeroed,
		     const char *backing)
{
	struct block_create_opts o = { .size = size, .subformat = sub, .backing_file = backing };
	struct vmdk_create_params p = { .zeroed_grain = zeroed };

	if (vmdk_create_ex(img, &o, &p, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmdk_io: %s\n", err);
		return 1;
	}
	return 0;
}

static int do_write(const char *img, uint64_t off, uint64_t len, int byte, bool zero)
{
	struct bdev *bs = open_or_die(img, false);
	uint8_t *buf = malloc(CHUNK);
	int ret = 0;

	memset(buf, byte, CHUNK);
	for (uint64_t done = 0; done < len && ret == 0;) {
		size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;

		ret = zero ? bdev_write_zeroes(bs, off + done, n, false)
			   : bdev_pwrite(bs, off + done, buf, n);
		done += n;
	}
	if (ret == 0)
		ret = bdev_flush(bs);
	bdev_close(bs);
	free(buf);
	if (ret < 0)
		fprintf(stderr, "vmdk_io: write: %s\n", strerror(-ret));
	return ret < 0;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static int do_dump(const char *img, const char *raw)
{
	struct bdev *bs = open_or_die(img, true);
	uint64_t size = bdev_size(bs);
	uint8_t *buf = malloc(CHUNK);
	int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0644), ret = 0;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		perror(raw);
		return 1;
	}
	for (uint64_t off = 0; off < size && ret == 0; off += CHUNK) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;

		ret = bdev_pread(bs, off, buf, n);
		if (ret == 0 && !all_zero(buf, n) && pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			ret = -EIO;
	}
	close(fd);
	bdev_close(bs);
	free(buf);
	if (ret < 0)
		fprintf(stderr, "vmdk_io: dump: %s\n", strerror(-ret));
	return ret < 0;
}

static int do_fromraw(const char *raw, const char *img, const char *sub)
{
	const struct block_format *f = block_format_find("vmdk");
	int fd = open(raw, O_RDONLY), ret = 0;
	struct stat st;
	struct bdev *bs;
	uint8_t *buf = malloc(65536);
	bool compress = !strcmp(sub, "streamOptimized");

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(raw);
		return 1;
	}
	if (do_create(img, sub, (uint64_t)st.st_size, false, NULL))
		return 1;
	bs = open_or_die(img, false);
	for (uint64_t off = 0; off < (uint64_t)st.st_size && ret == 0; off += 65536) {
		size_t n = (uint64_t)st.st_size - off < 65536 ? (size_t)(st.st_size - off) : 65536;

		if (pread(fd, buf, n, (off_t)off) != (ssize_t)n) {
			ret = -EIO;
			break;
		}
		if (all_zero(buf, n))
			continue;
		if (compress) {
			pthread_mutex_lock(&bs->lock);
			ret = f->write_compressed(bs, off, buf, n);
			pthread_mutex_unlock(&bs->lock);
		} else {
			ret = bdev_pwrite(bs, off, buf, n);
		}
	}
	if (ret == 0)
		ret = bdev_flush(bs);
	bdev_close(bs);
	close(fd);
	free(buf);
	if (ret < 0)
		fprintf(stderr, "vmdk_io: fromraw: %s\n", strerror(-ret));
	return ret < 0;
}

static void info_str(void *o, const char *k, const char *v)
{
	printf("%s: %s\n", k, v);
}

static void info_num(void *o, const char *k, uint64_t v)
{
	printf("%s: %" PRIu64 "\n", k, v);
}

static void info_flag(void *o, const char *k, bool v)
{
	printf("%s: %s\n", k, v ? "true" : "false");
}

static int do_info(const char *img)
{
	struct bdev *bs = open_or_die(img, true);
	struct block_info_writer w = { info_str, info_num, info_flag, NULL };

	printf("format: %s\nvirtual-size: %" PRIu64 "\n", bdev_format_name(bs), bdev_size(bs));
	bs->fmt->info(bs, &w);
	bdev_close(bs);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "create"))
		return do_create(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				 argc > 5 && !strcmp(argv[5], "zeroed"),
				 argc > 5 && strcmp(argv[5], "zeroed") ? argv[5] : NULL);
	if (argc == 6 && !strcmp(argv[1], "write"))
		return do_write(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
				(int)strtol(argv[5], NULL, 0), false);
	if (argc == 5 && !strcmp(argv[1], "zero"))
		return do_write(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
				0, true);
	if (argc == 4 && !strcmp(argv[1], "dump"))
		return do_dump(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "fromraw"))
		return do_fromraw(argv[2], argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "info"))
		return do_info(argv[2]);
	fprintf(stderr, "usage: vmdk_io create|write|zero|dump|fromraw|info ...\n");
	return 2;
}
