/* Unit tests for format probing and QEMU's raw-probing restriction
 * (CVE-2008-2004): a writable image whose format was guessed as raw warns
 * once at open and refuses writes that would make sector 0 probe as another
 * format; naming the raw format lifts the restriction. A stand-in "qcow2"
 * prober is registered by the test so it does not depend on qcow2.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "block/format.h"
#include "vmm/log.h"

static char dir[64], logpath[96];

static int fake_qcow2_probe(const uint8_t *head, size_t len, const char *filename)
{
	return len >= 8 && !memcmp(head, "QFI\xfb", 4) && head[7] >= 2 ? 100 : 0;
}

static int fake_open(struct bdev *bs, char *err, size_t errlen)
{
	snprintf(err, errlen, "fake format cannot open");
	return -ENOTSUP;
}

static struct block_format fake_qcow2 = {
	.name = "fakeqcow2",
	.probe = fake_qcow2_probe,
	.open = fake_open,
};
BLOCK_FORMAT_REGISTER(fake_qcow2)

static void qcow2_header(uint8_t *sector)
{
	static const uint8_t hdr[] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };

	memset(sector, 0, 512);
	memcpy(sector, hdr, sizeof(hdr));
	sector[31] = 16;	/* cluster_bits, for good measure */
}

static int setup(void **state)
{
	strcpy(dir, "/var/tmp/test_block_probe.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	return log_set_file(logpath);
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void make_image(const char *path, size_t size)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), (off_t)size), 0);
	fclose(f);
}

static struct bdev *open_img(const char *path, const char *format, bool ro)
{
	struct block_open_opts o = { .format = format, .read_only = ro };
	struct bdev *bs = NULL;
	char err[256];

	assert_int_equal(bdev_open(path, &o, &bs, err, sizeof(err)), 0);
	return bs;
}

static int count_warnings(void)
{
	char line[512];
	int n = 0;
	FILE *f = fopen(logpath, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "probing guessed raw"))
			n++;
	fclose(f);
	return n;
}

static void test_probe_picks_best(void **state)
{
	uint8_t sector[512];

	memset(sector, 0, sizeof(sector));
	assert_string_equal(block_probe(sector, sizeof(sector), NULL)->name, "raw");
	assert_string_equal(block_probe(sector, 0, NULL)->name, "raw");
	qcow2_header(sector);
	assert_string_equal(block_probe(sector, sizeof(sector), NULL)->name, "fakeqcow2");
	assert_non_null(block_format_find("raw"));
	assert_null(block_format_find("nope"));
}

static void test_probed_raw_refuses_header(void **state)
{
	uint8_t sector[512], back[512], zero[512] = { 0 };
	char p[128];
	struct bdev *bs;
	int before = count_warnings();

	snprintf(p, sizeof(p), "%s/probed.img", dir);
	make_image(p, 1 << 20);
	bs = open_img(p, NULL, false);
	assert_string_equal(bdev_format_name(bs), "raw");
	assert_true(bs->probed);
	assert_int_equal(count_warnings(), before + 1);

	qcow2_header(sector);
	assert_int_equal(bdev_pwrite(bs, 0, sector, sizeof(sector)), -EPERM);
	/* a partial write that completes a header with what is on disk */
	assert_int_equal(bdev_pwrite(bs, 7, "\x03", 1), 0);
	assert_int_equal(bdev_pwrite(bs, 0, "QFI\xfb", 4), -EPERM);
	assert_int_equal(bdev_pwrite(bs, 7, "\x00", 1), 0);
	/* nothing of the refused writes landed */
	assert_int_equal(bdev_pread(bs, 0, back, sizeof(back)), 0);
	assert_memory_equal(back, zero, sizeof(zero));
	/* other writes to sector 0, and the header anywhere else, are fine */
	memset(back, 0x55, sizeof(back));
	assert_int_equal(bdev_pwrite(bs, 0, back, sizeof(back)), 0);
	assert_int_equal(bdev_pwrite(bs, 512, sector, sizeof(sector)), 0);
	assert_int_equal(bdev_pwrite(bs, 4096, sector, sizeof(sector)), 0);
	assert_int_equal(bdev_write_zeroes(bs, 0, 4096, false), 0);
	bdev_close(bs);

	/* a read-only probed open warns not (nothing to restrict) */
	bs = open_img(p, NULL, true);
	assert_int_equal(count_warnings(), before + 1);
	bdev_close(bs);
}

struct result {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ret;
	bool done;
};

static void result_cb(void *opaque, int ret)
{
	struct result *r = opaque;

	pthread_mutex_lock(&r->lock);
	r->ret = ret;
	r->done = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static int wait_result(struct result *r)
{
	pthread_mutex_lock(&r->lock);
	while (!r->done)
		pthread_cond_wait(&r->cond, &r->lock);
	r->done = false;
	pthread_mutex_unlock(&r->lock);
	return r->ret;
}

static void test_probed_raw_async_path(void **state)
{
	struct result r = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false };
	uint8_t sector[512];
	struct iovec v = { sector, sizeof(sector) };
	char p[128];
	struct bdev *bs;

	snprintf(p, sizeof(p), "%s/async.img", dir);
	make_image(p, 1 << 20);
	bs = open_img(p, NULL, false);
	qcow2_header(sector);
	/* the fast path must not bypass the check */
	assert_int_equal(bdev_aio_writev(bs, 0, &v, 1, result_cb, &r), 0);
	assert_int_equal(wait_result(&r), -EPERM);
	assert_int_equal(bdev_aio_writev(bs, 512, &v, 1, result_cb, &r), 0);
	assert_int_equal(wait_result(&r), 0);
	bdev_close(bs);
}

static void test_explicit_raw_allows_header(void **state)
{
	uint8_t sector[512], back[512];
	char p[128], err[256];
	struct bdev *bs;
	int before = count_warnings();

	snprintf(p, sizeof(p), "%s/explicit.img", dir);
	make_image(p, 1 << 20);
	bs = open_img(p, "raw", false);
	assert_false(bs->probed);
	qcow2_header(sector);
	assert_int_equal(bdev_pwrite(bs, 0, sector, sizeof(sector)), 0);
	assert_int_equal(bdev_pread(bs, 0, back, sizeof(back)), 0);
	assert_memory_equal(back, sector, sizeof(sector));
	bdev_close(bs);
	assert_int_equal(count_warnings(), before);

	/* now it probes as the other format, which is what raw guards against */
	assert_int_equal(bdev_open(p, NULL, &bs, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "fake format"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_picks_best),
		cmocka_unit_test(test_probed_raw_refuses_header),
		cmocka_unit_test(test_probed_raw_async_path),
		cmocka_unit_test(test_explicit_raw_allows_header),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
