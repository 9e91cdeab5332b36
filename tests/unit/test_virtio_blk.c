/* Unit tests for the virtio-blk model (hw/virtio_blk.c) without a VM: a
 * fake guest memory, a raw image in a temporary file opened through the
 * block layer (completions on block threads), requests built by hand:
 * config space, write/read round trips with the header and data split
 * across descriptors, FLUSH, GET_ID, UNSUPP, read-only drives, and hostile
 * layouts (short header, no status byte, unaligned length, sector
 * overflow). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "block/block.h"
#include "hw/pci.h"
#include "hw/virtio_blk.h"

#define RAM_SIZE	(1u << 20)
#define IMG_SIZE	(1u << 20)
#define QSIZE		16
#define DESC_GPA	0x10000
#define AVAIL_GPA	0x11000
#define USED_GPA	0x12000
#define HDR_GPA		0x20000
#define STATUS_GPA	0x21000
#define DATA_GPA	0x30000

struct fixture {
	struct guest_memory mem;
	struct virtio_blk blk;
	struct bdev *bs;
	char path[64];
	uint16_t avail_idx;
};

static void fake_msi(struct virtio_pci *vp, uint64_t addr, uint32_t data)
{
	(void)vp;
	(void)addr;
	(void)data;
}

static void mwrite(struct fixture *f, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_modern_write(&f->blk.vp, off, v, size);
}

static uint64_t mread(struct fixture *f, uint64_t off, unsigned size)
{
	return virtio_pci_modern_read(&f->blk.vp, off, size);
}

static void modern_init(struct fixture *f)
{
	uint64_t feat = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_FLUSH);

	mwrite(f, VP_COMMON_STATUS, 0, 1);
	mwrite(f, VP_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	mwrite(f, VP_COMMON_GFSELECT, 0, 4);
	mwrite(f, VP_COMMON_GF, (uint32_t)feat, 4);
	mwrite(f, VP_COMMON_GFSELECT, 1, 4);
	mwrite(f, VP_COMMON_GF, feat >> 32, 4);
	mwrite(f, VP_COMMON_STATUS, 0x0b, 1);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 0x0b);
	mwrite(f, VP_COMMON_Q_SELECT, 0, 2);
	mwrite(f, VP_COMMON_Q_SIZE, QSIZE, 2);
	mwrite(f, VP_COMMON_Q_DESCLO, DESC_GPA, 4);
	mwrite(f, VP_COMMON_Q_DESCHI, 0, 4);
	mwrite(f, VP_COMMON_Q_AVAILLO, AVAIL_GPA, 8);
	mwrite(f, VP_COMMON_Q_USEDLO, USED_GPA, 4);
	mwrite(f, VP_COMMON_Q_USEDHI, 0, 4);
	mwrite(f, VP_COMMON_Q_ENABLE, 1, 2);
	mwrite(f, VP_COMMON_STATUS, 0x0f, 1);
}

static int open_device(struct fixture *f, bool read_only)
{
	struct block_open_opts o = { .format = "raw", .engine = BLOCK_ENGINE_THREADS };
	char err[256];
	int r;

	o.read_only = read_only;
	r = bdev_open(f->path, &o, &f->bs, err, sizeof(err));
	if (r < 0)
		return r;
	r = virtio_blk_init(&f->blk, f->bs, read_only, "unit-serial", &f->mem, NULL);
	if (r < 0)
		return r;
	f->blk.vp.send_msi = fake_msi;
	f->blk.vp.pci.config[PCI_COMMAND] |= PCI_COMMAND_MASTER;	/* no bus here */
	modern_init(f);
	return 0;
}

static int setup_common(void **state, bool read_only)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	f->mem.host = calloc(1, RAM_SIZE);
	f->mem.ram_size = RAM_SIZE;
	f->mem.below_4g = RAM_SIZE;
	snprintf(f->path, sizeof(f->path), "/tmp/test_virtio_blk.XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_SIZE), 0);
	close(fd);
	assert_int_equal(open_device(f, read_only), 0);
	*state = f;
	return 0;
}

static int setup(void **state) { return setup_common(state, false); }
static int setup_ro(void **state) { return setup_common(state, true); }

static int teardown(void **state)
{
	struct fixture *f = *state;

	bdev_close(f->bs);	/* waits for in-flight requests */
	unlink(f->path);
	free(f->blk.vp.elem);
	free(f->mem.host);
	free(f);
	return 0;
}

static uint16_t used_idx(struct fixture *f)
{
	return __atomic_load_n((uint16_t *)(f->mem.host + USED_GPA + 2), __ATOMIC_ACQUIRE);
}

static uint32_t used_len(struct fixture *f, uint16_t idx)
{
	uint32_t v;

	memcpy(&v, f->mem.host + USED_GPA + 4 + 8 * (idx % QSIZE) + 4, 4);
	return v;
}

static void set_desc(struct fixture *f, uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct virtq_desc d = { gpa, len, flags, next };

	memcpy(f->mem.host + DESC_GPA + 16 * i, &d, 16);
}

static void set_header(struct fixture *f, uint32_t type, uint64_t sector)
{
	uint32_t zero = 0;

	memcpy(f->mem.host + HDR_GPA, &type, 4);
	memcpy(f->mem.host + HDR_GPA + 4, &zero, 4);
	memcpy(f->mem.host + HDR_GPA + 8, &sector, 8);
	f->mem.host[STATUS_GPA] = 0xee;
}

/* Publish chain head 0, kick, wait for the used ring; returns the used length. */
static uint32_t run_chain(struct fixture *f)
{
	uint16_t idx = f->avail_idx;
	struct timespec ts = { 0, 1000000 };

	memcpy(f->mem.host + AVAIL_GPA + 4 + 2 * (idx % QSIZE), &(uint16_t){ 0 }, 2);
	f->avail_idx++;
	memcpy(f->mem.host + AVAIL_GPA + 2, &f->avail_idx, 2);
	virtio_pci_lock(&f->blk.vp);
	virtio_pci_kick(&f->blk.vp, 0);
	virtio_pci_unlock(&f->blk.vp);
	for (int i = 0; i < 5000 && used_idx(f) != f->avail_idx; i++)
		nanosleep(&ts, NULL);
	assert_int_equal(used_idx(f), f->avail_idx);
	return used_len(f, idx);
}

/* header | data (device-readable for OUT, writable otherwise) | status */
static uint32_t request(struct fixture *f, uint32_t type, uint64_t sector, uint32_t len)
{
	uint16_t dflags = type == VIRTIO_BLK_T_OUT ? 0 : VIRTQ_DESC_F_WRITE;

	set_header(f, type, sector);
	set_desc(f, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	if (len) {
		set_desc(f, 1, DATA_GPA, len, dflags | VIRTQ_DESC_F_NEXT, 2);
		set_desc(f, 2, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	} else {
		set_desc(f, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	}
	return run_chain(f);
}

static uint8_t status(struct fixture *f)
{
	return f->mem.host[STATUS_GPA];
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	uint32_t feat;

	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY, 4), IMG_SIZE / 512);
	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY + 4, 4), 0);
	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_BLK_CFG_BLK_SIZE, 4), 512);
	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_BLK_CFG_SEG_MAX, 4),
			 VIRTIO_BLK_QUEUE_SIZE - 2);
	mwrite(f, VP_COMMON_DFSELECT, 0, 4);
	feat = mread(f, VP_COMMON_DF, 4);
	assert_true(feat & (1u << VIRTIO_BLK_F_FLUSH));
	assert_false(feat & (1u << VIRTIO_BLK_F_RO));
}

static void test_write_read_flush(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[1024];

	/* Header and data in one descriptor, status separately. */
	memset(f->mem.host + HDR_GPA + 16, 0x3c, 1024);
	set_header(f, VIRTIO_BLK_T_OUT, 4);
	set_desc(f, 0, HDR_GPA, 16 + 1024, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(run_chain(f), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(bdev_pread(f->bs, 4 * 512, buf, sizeof(buf)), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x3c);

	/* Read back: data and status in one writable descriptor. */
	memset(f->mem.host + DATA_GPA, 0, 2048);
	set_header(f, VIRTIO_BLK_T_IN, 4);
	set_desc(f, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA_GPA, 1025, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(run_chain(f), 1025);
	assert_int_equal(f->mem.host[DATA_GPA + 1024], VIRTIO_BLK_S_OK);
	for (size_t i = 0; i < 1024; i++)
		assert_int_equal(f->mem.host[DATA_GPA + i], 0x3c);
}

static void test_get_id_unsupp(void **state)
{
	struct fixture *f = *state;

	memset(f->mem.host + DATA_GPA, 0xff, 32);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, 20), 21);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_memory_equal(f->mem.host + DATA_GPA, "unit-serial\0\0\0\0\0\0\0\0", 20);
	assert_int_equal(request(f, 0x1234, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(f, 11 /* DISCARD, not offered */, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;
	const uint64_t cap = IMG_SIZE / 512;

	assert_int_equal(request(f, VIRTIO_BLK_T_IN, cap, 512), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, cap - 1, 1024), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* sector * 512 would wrap around 2^64 */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 1ull << 55, 512), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, UINT64_MAX, 512), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* not a multiple of the sector size */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 100), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* the last sector is fine */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, cap - 1, 512), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_false(f->blk.vp.status & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_short_header(void **state)
{
	struct fixture *f = *state;

	set_header(f, VIRTIO_BLK_T_IN, 0);
	set_desc(f, 0, HDR_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(run_chain(f), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_false(f->blk.vp.status & VIRTIO_STATUS_NEEDS_RESET);
	/* still working */
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

static void test_no_status_byte(void **state)
{
	struct fixture *f = *state;

	set_header(f, VIRTIO_BLK_T_OUT, 0);
	set_desc(f, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA_GPA, 512, 0, 0);
	f->avail_idx++;
	memcpy(f->mem.host + AVAIL_GPA + 4, &(uint16_t){ 0 }, 2);
	memcpy(f->mem.host + AVAIL_GPA + 2, &f->avail_idx, 2);
	virtio_pci_lock(&f->blk.vp);
	virtio_pci_kick(&f->blk.vp, 0);
	virtio_pci_unlock(&f->blk.vp);
	assert_true(mread(f, VP_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* A reset brings it back. */
	f->avail_idx = 0;
	memset(f->mem.host + AVAIL_GPA, 0, 0x3000);
	modern_init(f);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

static void test_read_only(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[512];

	mwrite(f, VP_COMMON_DFSELECT, 0, 4);
	assert_true(mread(f, VP_COMMON_DF, 4) & (1u << VIRTIO_BLK_F_RO));
	memset(f->mem.host + DATA_GPA, 0x77, 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(bdev_pread(f->bs, 0, buf, sizeof(buf)), 0);
	assert_int_equal(buf[0], 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_id_unsupp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_status_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
