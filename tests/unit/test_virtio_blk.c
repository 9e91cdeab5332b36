/* Unit tests for the virtio-blk model (hw/virtio_blk.c) and its option
 * parsing (hw/virtio_blk_drive.c) without a VM: a fake guest memory, raw
 * and qcow2 images in temporary files opened through the block layer
 * (completions on the model's private completion thread), requests built by hand. Covers the
 * config space (QEMU 7.2's layout, features, topology, geometry), reads,
 * writes, FLUSH, GET_ID, UNSUPP and the SCSI answer, discard and
 * write-zeroes (read back and checked by block status and sparseness),
 * the write cache (WCE / CONFIG_WCE, writethrough flushes, reset), several
 * queues, read-only drives, bounds, hostile layouts, statistics, draining
 * and reset with requests in flight, and ",," in option values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <liburing.h>
#include "block/block.h"
#include "block/qcow2.h"
#include "hw/pci.h"
#include "hw/virtio_blk.h"
#include "tests/unit/virtio_test_util.h"
#include "vmm/event_loop.h"

#define RAM_SIZE	(1u << 20)
#define IMG_SIZE	(1u << 20)
#define QSIZE		16
#define RING_BASE	0x10000		/* queue q: desc, avail, used 4K apart */
#define RING_STRIDE	0x4000
#define HDR_GPA		0x60000		/* slot s: 32 bytes at HDR_GPA + 32 * s */
#define STATUS_GPA	0x61000		/* slot s: one byte at STATUS_GPA + s */
#define DATA_GPA	0x70000
#define CAP		(IMG_SIZE / 512)

/* Unit tests link without --whole-archive: keep the qcow2 driver in. */
static void *const keep_qcow2 __attribute__((used)) = (void *)qcow2_l1_needed;

struct fixture {
	struct guest_memory mem;
	struct virtio_blk blk;
	struct bdev *bs;
	char path[64];
	uint16_t avail_idx[VIRTIO_MAX_QUEUES];
	uint64_t features;		/* driver features beyond VERSION_1 */
};

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

static uint64_t desc_gpa(unsigned q) { return RING_BASE + q * RING_STRIDE; }
static uint64_t avail_gpa(unsigned q) { return desc_gpa(q) + 0x1000; }
static uint64_t used_gpa(unsigned q) { return desc_gpa(q) + 0x2000; }

static void mwrite(struct fixture *f, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_modern_write(&f->blk.vp, off, v, size);
}

static uint64_t mread(struct fixture *f, uint64_t off, unsigned size)
{
	return virtio_pci_modern_read(&f->blk.vp, off, size);
}

static uint64_t cfg_read(struct fixture *f, unsigned off, unsigned size)
{
	return mread(f, VP_DEVICE_OFF + off, size);
}

static void driver_init(struct fixture *f)
{
	uint64_t feat = ((1ull << VIRTIO_F_VERSION_1) | f->features) & vt_offered(&f->blk.vp);

	mwrite(f, VP_COMMON_STATUS, 0, 1);
	memset(f->mem.host + RING_BASE, 0, RING_STRIDE * VIRTIO_MAX_QUEUES);
	memset(f->avail_idx, 0, sizeof(f->avail_idx));
	assert_int_equal(vt_negotiate(&f->blk.vp, feat), 0x0b);
	for (unsigned q = 0; q < f->blk.conf.num_queues; q++)
		vt_queue_enable(&f->blk.vp, q, QSIZE, desc_gpa(q), avail_gpa(q), used_gpa(q));
	mwrite(f, VP_COMMON_STATUS, 0x0f, 1);
}

static bool fixture_in_memory;	/* next fixture: image on tmpfs, inline I/O */

static int make_image(struct fixture *f, const char *fmt)
{
	char cmd[256];
	int fd;

	snprintf(f->path, sizeof(f->path), "%s/test_virtio_blk.XXXXXX",
		 fixture_in_memory ? "/dev/shm" : "/tmp");
	fd = mkstemp(f->path);
	if (fd < 0)
		return -1;
	close(fd);
	if (!strcmp(fmt, "raw"))
		return truncate(f->path, IMG_SIZE);
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f %s %s %u", fmt, f->path, IMG_SIZE);
	return system(cmd) == 0 ? 0 : -1;
}

/* next fixture: a polled bdev on this engine (DEFAULT: not polled), with
 * batch_when_busy as -drive opens it */
static enum block_engine_kind fixture_polled;
static bool fixture_direct;	/* next fixture: cache=none (requests stay in flight) */

/* A device over a fresh image; conf NULL: QEMU's defaults. */
static struct fixture *fixture_new(const char *fmt, const struct virtio_blk_conf *conf)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct block_open_opts o = { .format = fmt, .engine = BLOCK_ENGINE_THREADS };

	if (fixture_polled != BLOCK_ENGINE_DEFAULT) {
		o.engine = fixture_polled;
		o.poll_completions = true;
		o.batch_when_busy = true;
	}
	o.inline_memory_io = fixture_in_memory;
	if (fixture_direct)
		o.cache = BLOCK_CACHE_NONE;
	struct virtio_blk_conf c;
	char err[256];

	if (conf)
		c = *conf;
	else
		virtio_blk_conf_init(&c);
	if (!c.serial)
		c.serial = "unit-serial";
	vt_mem_init(&f->mem, RAM_SIZE);
	assert_int_equal(make_image(f, fmt), 0);
	o.read_only = c.read_only;
	assert_int_equal(bdev_open(f->path, &o, &f->bs, err, sizeof(err)), 0);
	assert_int_equal(virtio_blk_init(&f->blk, f->bs, &c, &f->mem, NULL), 0);
	f->blk.vp.send_msi = vt_drop_msi;
	f->blk.vp.pci.config[PCI_COMMAND] |= PCI_COMMAND_MASTER;	/* no bus here */
	f->features = 1ull << VIRTIO_BLK_F_FLUSH | 1ull << VIRTIO_BLK_F_CONFIG_WCE;
	driver_init(f);
	return f;
}

static void fixture_free(struct fixture *f)
{
	virtio_blk_exit(&f->blk);
	bdev_close(f->bs);
	unlink(f->path);
	free(f->mem.host);
	free(f);
}

static int setup(void **state)
{
	*state = fixture_new("raw", NULL);
	return 0;
}

static int setup_ro(void **state)
{
	struct virtio_blk_conf c;

	virtio_blk_conf_init(&c);
	c.read_only = true;
	*state = fixture_new("raw", &c);
	return 0;
}

static int teardown(void **state)
{
	if (*state)
		fixture_free(*state);
	return 0;
}

/* A device whose bdev is polled on engine kind, on its loop. */
static struct fixture *polled_fixture(enum block_engine_kind kind)
{
	struct fixture *f;

	fixture_polled = kind;
	f = fixture_new("raw", NULL);
	fixture_polled = BLOCK_ENGINE_DEFAULT;
	assert_true(f->blk.poll_fd >= 0);
	return f;
}

/* The bdev opened with poll_completions on io_uring: the device polls it
 * on its loop (NULL state, and the tests skip, without io_uring). */
static int setup_polled(void **state)
{
	struct io_uring ring;

	*state = NULL;
	if (io_uring_queue_init(4, &ring, 0) < 0)
		return 0;
	io_uring_queue_exit(&ring);
	*state = polled_fixture(BLOCK_ENGINE_IO_URING);
	return 0;
}

/* A polled native AIO bdev on an O_DIRECT file, as -drive
 * cache=none,aio=native opens it: its eventfd wakes the loop. */
static int setup_polled_native(void **state)
{
	fixture_direct = true;
	*state = polled_fixture(BLOCK_ENGINE_NATIVE);
	fixture_direct = false;
	return 0;
}

/* Polled, and O_DIRECT: requests wait for the disk, as with
 * -drive cache=none,aio=io_uring. */
static int setup_polled_direct(void **state)
{
	fixture_direct = true;
	setup_polled(state);
	fixture_direct = false;
	return 0;
}

/* The image on tmpfs with inline_memory_io, as -drive opens it: requests
 * finish inside the pass that takes them. */
static int setup_mem(void **state)
{
	fixture_in_memory = true;
	*state = fixture_new("raw", NULL);
	fixture_in_memory = false;
	return 0;
}

/* --- requests ------------------------------------------------------------- */

static uint16_t used_idx(struct fixture *f, unsigned q)
{
	return __atomic_load_n((uint16_t *)(f->mem.host + used_gpa(q) + 2), __ATOMIC_ACQUIRE);
}

static uint32_t used_len(struct fixture *f, unsigned q, uint16_t idx)
{
	return vt_rd32(&f->mem, used_gpa(q) + 4 + 8 * (idx % QSIZE) + 4);
}

/* Write the chain at descriptor head of queue q and make it available. */
static void publish(struct fixture *f, unsigned q, uint16_t head, const struct seg *s, unsigned n)
{
	uint16_t idx = f->avail_idx[q];

	for (unsigned i = 0; i < n; i++)
		vt_put_desc(&f->mem, desc_gpa(q), head + i, s[i].gpa, s[i].len,
			    (s[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
			    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0), head + i + 1);
	memcpy(f->mem.host + avail_gpa(q) + 4 + 2 * (idx % QSIZE), &head, 2);
	f->avail_idx[q]++;
	__atomic_store_n((uint16_t *)(f->mem.host + avail_gpa(q) + 2), f->avail_idx[q],
			 __ATOMIC_RELEASE);
}

static void wait_used(struct fixture *f, unsigned q)
{
	struct timespec ts = { 0, 1000000 };

	for (int i = 0; i < 5000 && used_idx(f, q) != f->avail_idx[q]; i++)
		nanosleep(&ts, NULL);
	assert_int_equal(used_idx(f, q), f->avail_idx[q]);
}

/* Publish, kick, wait; returns the used length of the chain. */
static uint32_t run(struct fixture *f, unsigned q, const struct seg *s, unsigned n)
{
	uint16_t idx = f->avail_idx[q];

	publish(f, q, 0, s, n);
	vt_kick(&f->blk.vp, q);
	wait_used(f, q);
	return used_len(f, q, idx);
}

static void set_header(struct fixture *f, unsigned slot, uint32_t type, uint64_t sector)
{
	uint8_t *h = f->mem.host + HDR_GPA + 32 * slot;

	memcpy(h, &type, 4);
	memset(h + 4, 0, 4);
	memcpy(h + 8, &sector, 8);
	f->mem.host[STATUS_GPA + slot] = 0xee;
}

static uint8_t status(struct fixture *f)
{
	return f->mem.host[STATUS_GPA];
}

/* header | data (device-readable for OUT, writable otherwise) | status */
static uint32_t request(struct fixture *f, uint32_t type, uint64_t sector, uint32_t len)
{
	struct seg s[3] = { { HDR_GPA, 16, false } };
	unsigned n = 1;

	set_header(f, 0, type, sector);
	if (len)
		s[n++] = (struct seg){ DATA_GPA, len, !(type & VIRTIO_BLK_T_OUT) };
	s[n++] = (struct seg){ STATUS_GPA, 1, true };
	return run(f, 0, s, n);
}

/* Discard / write-zeroes with one segment (or raw bytes of seg_len). */
static uint32_t dwz(struct fixture *f, uint32_t type, uint64_t sector, uint32_t num,
		    uint32_t flags, uint32_t seg_len)
{
	uint8_t *seg = f->mem.host + DATA_GPA;
	struct seg s[3] = { { HDR_GPA, 16, false }, { DATA_GPA, seg_len, false },
			    { STATUS_GPA, 1, true } };

	set_header(f, 0, type, 0);
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	memcpy(seg + 12, &flags, 4);
	memcpy(seg + 16, seg, 16);	/* a second segment, when seg_len says so */
	return run(f, 0, s, 3);
}

static void fill_sectors(struct fixture *f, uint64_t sector, unsigned n, uint8_t v)
{
	uint8_t *buf = malloc(n * 512);

	memset(buf, v, n * 512);
	assert_int_equal(bdev_pwrite(f->bs, sector * 512, buf, n * 512), 0);
	free(buf);
}

static bool reads_as(struct fixture *f, uint64_t sector, unsigned n, uint8_t v)
{
	uint8_t *buf = malloc(n * 512);
	bool ok = bdev_pread(f->bs, sector * 512, buf, n * 512) == 0;

	for (unsigned i = 0; ok && i < n * 512; i++)
		ok = buf[i] == v;
	free(buf);
	return ok;
}

static unsigned block_status(struct fixture *f, uint64_t sector, unsigned n)
{
	unsigned st = 0;
	uint64_t host;

	assert_true(bdev_block_status(f->bs, sector * 512, n * 512ull, &st, &host) ==
		    n * 512ll);
	return st;
}

static long long file_blocks(struct fixture *f)
{
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	return st.st_blocks;
}

/* --- config space and features -------------------------------------------- */

static void test_config(void **state)
{
	struct fixture *f = *state;
	uint64_t feat = vt_offered(&f->blk.vp);

	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_CAPACITY, 8), CAP);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_SIZE_MAX, 4), 0);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_SEG_MAX, 4), 254);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_CYLINDERS, 2), 2);	/* 2048 / (16*63) */
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_HEADS, 1), 16);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_SECTORS, 1), 63);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_BLK_SIZE, 4), 512);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_PHYS_BLOCK_EXP, 1), 0);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_ALIGNMENT_OFFSET, 1), 0);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_MIN_IO_SIZE, 2), 0);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_OPT_IO_SIZE, 4), 0);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 1);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_NUM_QUEUES, 2), 1);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4), 0x3fffff);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4), 1);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, 4), 1);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, 4), 0x3fffff);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 4), 1);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1), 1);
	assert_int_equal(f->blk.vp.ops->config_size, 57);
	assert_int_equal(f->blk.vp.pci.bars[0].size, 128);	/* 24 + 57, rounded up */
	/* QEMU 7.2's set for a writable single-queue drive */
	assert_int_equal(feat & 0xffffff, 1u << VIRTIO_BLK_F_SEG_MAX | 1u << VIRTIO_BLK_F_GEOMETRY |
			 1u << VIRTIO_BLK_F_BLK_SIZE | 1u << VIRTIO_BLK_F_FLUSH |
			 1u << VIRTIO_BLK_F_TOPOLOGY | 1u << VIRTIO_BLK_F_CONFIG_WCE |
			 1u << VIRTIO_BLK_F_DISCARD | 1u << VIRTIO_BLK_F_WRITE_ZEROES);
	/* read-only fields stay as they are when the driver writes them */
	mwrite(f, VP_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY, 0x1234, 4);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_CAPACITY, 8), CAP);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 1);
}

static void test_config_features_off(void **state)
{
	struct virtio_blk_conf c;
	struct fixture *f;
	uint64_t feat;

	(void)state;
	virtio_blk_conf_init(&c);
	c.discard = false;
	c.write_zeroes = false;
	c.config_wce = false;
	c.writeback = false;		/* cache=writethrough: no WCE offered either */
	c.seg_max_adjust = false;
	f = fixture_new("raw", &c);
	feat = vt_offered(&f->blk.vp);
	assert_false(feat & (1u << VIRTIO_BLK_F_DISCARD | 1u << VIRTIO_BLK_F_WRITE_ZEROES |
			     1u << VIRTIO_BLK_F_CONFIG_WCE | 1u << VIRTIO_BLK_F_WCE));
	assert_int_equal(f->blk.vp.ops->config_size, 36);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_SEG_MAX, 4), 126);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 0);
	/* not offered: UNSUPP */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 1, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	fixture_free(f);

	virtio_blk_conf_init(&c);
	c.discard = false;		/* discard off, write-zeroes on: still 57 */
	f = fixture_new("raw", &c);
	assert_int_equal(f->blk.vp.ops->config_size, 57);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4), 0);
	fixture_free(f);
	virtio_blk_conf_init(&c);
	c.write_zeroes = false;
	f = fixture_new("raw", &c);
	assert_int_equal(f->blk.vp.ops->config_size, 48);
	fixture_free(f);
}

/* size-max= (not a QEMU property): SIZE_MAX offered with the value. */
static void test_config_size_max(void **state)
{
	struct virtio_blk_conf c;
	struct fixture *f;

	(void)state;
	virtio_blk_conf_init(&c);
	c.size_max = 65536;
	f = fixture_new("raw", &c);
	assert_true(vt_offered(&f->blk.vp) & (1u << VIRTIO_BLK_F_SIZE_MAX));
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_SIZE_MAX, 4), 65536);
	fixture_free(f);
}

static void test_topology(void **state)
{
	struct virtio_blk_conf c;
	struct fixture *f;

	(void)state;
	virtio_blk_conf_init(&c);
	c.logical_block_size = 4096;
	c.physical_block_size = 16384;
	c.min_io_size = 8192;
	c.opt_io_size = 65536;
	c.discard_granularity = 65536;
	c.queue_size = 64;
	f = fixture_new("raw", &c);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_BLK_SIZE, 4), 4096);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_PHYS_BLOCK_EXP, 1), 2);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_MIN_IO_SIZE, 2), 2);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_OPT_IO_SIZE, 4), 16);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, 4), 128);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_SEG_MAX, 4), 62);
	/* the capacity stays in 512-byte units */
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_CAPACITY, 8), CAP);
	/* requests must be aligned to the logical block */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 8, 4096), 4097);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 1, 4096), 4097);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 8, 512), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 4, 8, 0, 16);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	fixture_free(f);
}

static void test_geometry_from_mbr(void **state)
{
	struct fixture *f = *state;
	uint8_t mbr[512] = { 0 };
	struct virtio_blk_conf c;
	struct virtio_blk *blk = calloc(1, sizeof(*blk));

	/* one partition ending at head 31, sector 32: 32 heads -> LBA layout,
	 * QEMU keeps 16/63; ending at head 15, sector 32: taken as is */
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	mbr[0x1be + 5] = 15;
	mbr[0x1be + 6] = 32;
	mbr[0x1be + 12] = 100;
	assert_int_equal(bdev_pwrite(f->bs, 0, mbr, sizeof(mbr)), 0);
	virtio_blk_conf_init(&c);
	assert_int_equal(virtio_blk_init(blk, f->bs, &c, &f->mem, NULL), 0);
	assert_int_equal(blk->heads, 16);
	assert_int_equal(blk->secs, 32);
	assert_int_equal(blk->cyls, CAP / (16 * 32));
	virtio_blk_exit(blk);
	mbr[0x1be + 5] = 31;
	assert_int_equal(bdev_pwrite(f->bs, 0, mbr, sizeof(mbr)), 0);
	assert_int_equal(virtio_blk_init(blk, f->bs, &c, &f->mem, NULL), 0);
	assert_int_equal(blk->heads, 16);
	assert_int_equal(blk->secs, 63);
	virtio_blk_exit(blk);
	free(blk);
}

static void test_conf_check(void **state)
{
	struct virtio_blk_conf c;
	char err[160];

	(void)state;
#define BAD(field, value, msg) do {						\
		virtio_blk_conf_init(&c);					\
		c.field = value;						\
		assert_int_equal(virtio_blk_conf_check(&c, err, sizeof(err)), -EINVAL); \
		assert_non_null(strstr(err, msg));				\
	} while (0)
	virtio_blk_conf_init(&c);
	assert_int_equal(virtio_blk_conf_check(&c, err, sizeof(err)), 0);
	BAD(num_queues, 0, "must be larger than 0");
	BAD(num_queues, VIRTIO_BLK_MAX_NUM_QUEUES + 1, "at most");
	BAD(queue_size, 2, "must be > 2");
	BAD(queue_size, 96, "power of 2");
	BAD(queue_size, 2048, "power of 2");
	BAD(max_discard_sectors, 0, "max-discard-sectors");
	BAD(max_write_zeroes_sectors, 0x400000, "max-write-zeroes-sectors");
	BAD(logical_block_size, 1024, "logical_block_size > physical_block_size");
	BAD(physical_block_size, 1000, "powers of two");
	BAD(min_io_size, 1000, "min_io_size must be a multiple");
	BAD(min_io_size, 512u * 65536, "must not exceed");
	BAD(opt_io_size, 100, "opt_io_size");
	BAD(discard_granularity, 100, "discard_granularity");
	BAD(size_max, 512, "size-max");
#undef BAD
}

/* --- basic requests ------------------------------------------------------- */

static void test_write_read_flush(void **state)
{
	struct fixture *f = *state;
	struct seg s[2];

	/* header and data in one descriptor, status separately */
	memset(f->mem.host + HDR_GPA + 16, 0x3c, 1024);
	set_header(f, 0, VIRTIO_BLK_T_OUT, 4);
	s[0] = (struct seg){ HDR_GPA, 16 + 1024, false };
	s[1] = (struct seg){ STATUS_GPA, 1, true };
	assert_int_equal(run(f, 0, s, 2), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(reads_as(f, 4, 2, 0x3c));

	/* read back: data and status in one writable descriptor */
	memset(f->mem.host + DATA_GPA, 0, 2048);
	set_header(f, 0, VIRTIO_BLK_T_IN, 4);
	s[0] = (struct seg){ HDR_GPA, 16, false };
	s[1] = (struct seg){ DATA_GPA, 1025, true };
	assert_int_equal(run(f, 0, s, 2), 1025);
	assert_int_equal(f->mem.host[DATA_GPA + 1024], VIRTIO_BLK_S_OK);
	for (size_t i = 0; i < 1024; i++)
		assert_int_equal(f->mem.host[DATA_GPA + i], 0x3c);
	/* the BARRIER bit is ignored, FLUSH|OUT is a flush */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN | VIRTIO_BLK_T_BARRIER, 4, 512), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH | VIRTIO_BLK_T_OUT, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

static void test_get_id_unsupp(void **state)
{
	struct fixture *f = *state;
	struct seg s[3];

	memset(f->mem.host + DATA_GPA, 0xff, 32);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, 20), 21);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	/* QEMU writes the string and its NUL, nothing more */
	assert_memory_equal(f->mem.host + DATA_GPA, "unit-serial\0\xff\xff", 14);
	/* a short buffer gets a prefix */
	memset(f->mem.host + DATA_GPA, 0xff, 32);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, 4), 5);
	assert_memory_equal(f->mem.host + DATA_GPA, "unit\xff", 5);

	assert_int_equal(request(f, 0x1234, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(f, 16, 0, 512), 513);	/* used length: all writable bytes */
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	/* discard/write-zeroes types without the OUT bit */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD & ~1u, 0, 1, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES & ~1u, 0, 1, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	/* SCSI: IOERR without its headers, else UNSUPP with errors = 255 */
	assert_int_equal(request(f, VIRTIO_BLK_T_SCSI_CMD, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	set_header(f, 0, VIRTIO_BLK_T_SCSI_CMD, 0);
	memset(f->mem.host + DATA_GPA, 0, 64);
	s[0] = (struct seg){ HDR_GPA, 16, false };
	s[1] = (struct seg){ HDR_GPA + 16, 6, false };		/* the CDB */
	s[2] = (struct seg){ DATA_GPA, 96, true };		/* sense */
	publish(f, 0, 0, s, 3);
	{
		struct seg t[2] = { { DATA_GPA + 128, 16, true }, { STATUS_GPA, 1, true } };
		struct virtq_desc d;

		/* extend the chain: sense | scsi inhdr | status */
		memcpy(&d, f->mem.host + desc_gpa(0) + 32, 16);
		d.flags |= VIRTQ_DESC_F_NEXT;
		d.next = 3;
		memcpy(f->mem.host + desc_gpa(0) + 32, &d, 16);
		for (unsigned i = 0; i < 2; i++) {
			struct virtq_desc e = { t[i].gpa, t[i].len, VIRTQ_DESC_F_WRITE |
						(i ? 0 : VIRTQ_DESC_F_NEXT), 4 };

			memcpy(f->mem.host + desc_gpa(0) + 16 * (3 + i), &e, 16);
		}
	}
	vt_kick(&f->blk.vp, 0);
	wait_used(f, 0);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(f->mem.host[DATA_GPA + 128], 255);
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_stats st;

	assert_int_equal(request(f, VIRTIO_BLK_T_IN, CAP, 512), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, CAP - 1, 1024), 1025);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* sector * 512 would wrap around 2^64 */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 1ull << 55, 512), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, UINT64_MAX, 512), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* not a multiple of the sector size */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 100), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* the last sector is fine, and so is an empty read at the end */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, CAP - 1, 512), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, CAP, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_false(f->blk.vp.status & VIRTIO_STATUS_NEEDS_RESET);
	virtio_blk_get_stats(&f->blk, &st);
	assert_int_equal(st.op[VIRTIO_BLK_OP_READ].invalid, 3);
	assert_int_equal(st.op[VIRTIO_BLK_OP_WRITE].invalid, 2);
	assert_int_equal(st.op[VIRTIO_BLK_OP_READ].ops, 2);
}

/* A chain the device cannot parse stops it until the driver resets it. */
static void expect_needs_reset(struct fixture *f, const struct seg *s, unsigned n)
{
	publish(f, 0, 0, s, n);
	vt_kick(&f->blk.vp, 0);
	assert_true(mread(f, VP_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	driver_init(f);
	assert_false(mread(f, VP_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

static void test_bad_layouts(void **state)
{
	struct fixture *f = *state;
	struct seg s[3];

	set_header(f, 0, VIRTIO_BLK_T_IN, 0);
	s[0] = (struct seg){ HDR_GPA, 8, false };	/* short outhdr */
	s[1] = (struct seg){ STATUS_GPA, 1, true };
	expect_needs_reset(f, s, 2);
	set_header(f, 0, VIRTIO_BLK_T_OUT, 0);
	s[0] = (struct seg){ HDR_GPA, 16, false };	/* no writable descriptor */
	s[1] = (struct seg){ DATA_GPA, 512, false };
	expect_needs_reset(f, s, 2);
	s[0] = (struct seg){ DATA_GPA, 512, true };	/* no readable descriptor */
	expect_needs_reset(f, s, 1);
	set_header(f, 0, VIRTIO_BLK_T_DISCARD, 0);	/* discard segment too short */
	s[0] = (struct seg){ HDR_GPA, 16, false };
	s[1] = (struct seg){ DATA_GPA, 8, false };
	s[2] = (struct seg){ STATUS_GPA, 1, true };
	expect_needs_reset(f, s, 3);
}

/* --- discard and write-zeroes --------------------------------------------- */

static struct fixture *unmap_fixture(const char *fmt)
{
	struct virtio_blk_conf c;

	virtio_blk_conf_init(&c);
	c.discard_unmap = true;
	return fixture_new(fmt, &c);
}

static void test_discard_raw(void **state)
{
	struct fixture *f = unmap_fixture("raw");
	long long before;

	(void)state;
	fill_sectors(f, 0, 512, 0x5a);
	assert_int_equal(bdev_flush(f->bs), 0);
	before = file_blocks(f);
	assert_true(block_status(f, 64, 128) & BLOCK_STATUS_DATA);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 64, 128, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(reads_as(f, 64, 128, 0));
	assert_true(reads_as(f, 0, 64, 0x5a));
	assert_true(reads_as(f, 192, 64, 0x5a));
	assert_false(block_status(f, 64, 128) & BLOCK_STATUS_DATA);
	assert_true(file_blocks(f) <= before - 128);	/* 64 KiB punched */

	/* rejected segments */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
			     16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 8, 4, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 8, 0, 32), 1);	/* two segments */
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, CAP - 4, 8, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, UINT64_MAX - 2, 8, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 0x400000, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_true(reads_as(f, 0, 64, 0x5a));
	fixture_free(f);
}

static void test_discard_ignore(void **state)
{
	struct fixture *f = *state;	/* discard=ignore, QEMU's default */

	fill_sectors(f, 0, 64, 0x5a);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 64, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(reads_as(f, 0, 64, 0x5a));
	assert_true(block_status(f, 0, 64) & BLOCK_STATUS_DATA);
	/* write-zeroes still zeroes; UNMAP cannot deallocate */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 64,
			     VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(reads_as(f, 0, 64, 0));
	/* still bounds-checked */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, CAP, 1, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
}

static void test_write_zeroes_raw(void **state)
{
	struct fixture *f = unmap_fixture("raw");

	(void)state;
	fill_sectors(f, 0, 512, 0x77);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 8, 64, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(reads_as(f, 8, 64, 0));
	assert_true(reads_as(f, 0, 8, 0x77));
	assert_true(reads_as(f, 72, 8, 0x77));
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES | VIRTIO_BLK_T_BARRIER, 128, 128,
			     VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(reads_as(f, 128, 128, 0));
	assert_false(block_status(f, 128, 128) & BLOCK_STATUS_DATA);	/* deallocated */
	assert_true(reads_as(f, 256, 256, 0x77));
	/* limits */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 2, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, CAP - 1, 2, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	fixture_free(f);
}

static void test_discard_qcow2(void **state)
{
	struct fixture *f = unmap_fixture("qcow2");
	char cmd[256];

	(void)state;
	/* the guest writes 256 KiB, then discards and zeroes parts of it */
	memset(f->mem.host + DATA_GPA, 0x42, 0x40000);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 0x40000), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(block_status(f, 0, 512) & BLOCK_STATUS_DATA);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 128, 0, 16), 1);	/* 1 cluster */
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(reads_as(f, 0, 128, 0));
	assert_false(block_status(f, 0, 128) & BLOCK_STATUS_DATA);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 128, 128, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(reads_as(f, 128, 128, 0));
	assert_true(block_status(f, 128, 128) & BLOCK_STATUS_ZERO);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 256, 128,
			     VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_true(reads_as(f, 256, 128, 0));
	assert_false(block_status(f, 256, 128) & BLOCK_STATUS_DATA);
	assert_true(reads_as(f, 384, 128, 0x42));
	/* the image stays consistent for qemu-img */
	virtio_blk_drain(&f->blk);
	bdev_close(f->bs);
	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", f->path);
	assert_int_equal(system(cmd), 0);
	{
		char err[256];
		struct block_open_opts o = { .format = "qcow2", .engine = BLOCK_ENGINE_THREADS };

		assert_int_equal(bdev_open(f->path, &o, &f->bs, err, sizeof(err)), 0);
	}
	fixture_free(f);
}

/* --- write cache ------------------------------------------------------------ */

static uint64_t wt_flushes(struct fixture *f)
{
	struct virtio_blk_stats st;

	virtio_blk_get_stats(&f->blk, &st);
	return st.writethrough_flushes;
}

static void test_wce_toggle(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 1);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(wt_flushes(f), 0);
	/* writethrough: every write (and write-zeroes) is followed by a flush */
	mwrite(f, VP_DEVICE_OFF + VIRTIO_BLK_CFG_WCE, 0, 1);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(wt_flushes(f), 1);
	dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0, 16);
	assert_int_equal(wt_flushes(f), 2);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512), 513);
	assert_int_equal(wt_flushes(f), 2);
	/* any non-zero byte is writeback and reads back as 1 */
	mwrite(f, VP_DEVICE_OFF + VIRTIO_BLK_CFG_WCE, 5, 1);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 1);
	mwrite(f, VP_DEVICE_OFF + VIRTIO_BLK_CFG_WCE, 0, 1);
	/* a reset restores the cache= mode */
	driver_init(f);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 1);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(wt_flushes(f), 2);
}

static void test_wce_without_config_wce(void **state)
{
	struct fixture *f = *state;

	/* a driver that acks neither CONFIG_WCE nor FLUSH gets writethrough */
	f->features = 0;
	driver_init(f);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(wt_flushes(f), 1);
	/* FLUSH alone: writeback */
	f->features = 1ull << VIRTIO_BLK_F_FLUSH;
	driver_init(f);
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 1);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(wt_flushes(f), 1);
}

static void test_writethrough_default(void **state)
{
	struct virtio_blk_conf c;
	struct fixture *f;

	(void)state;
	virtio_blk_conf_init(&c);
	c.writeback = false;		/* cache=writethrough / directsync */
	f = fixture_new("raw", &c);
	assert_true(vt_offered(&f->blk.vp) & (1ull << VIRTIO_BLK_F_WCE));	/* via CONFIG_WCE */
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_WCE, 1), 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(wt_flushes(f), 1);
	mwrite(f, VP_DEVICE_OFF + VIRTIO_BLK_CFG_WCE, 1, 1);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(wt_flushes(f), 1);
	fixture_free(f);
}

/* --- read-only -------------------------------------------------------------- */

static void test_read_only(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_stats st;
	uint8_t buf[512];

	assert_true(vt_offered(&f->blk.vp) & (1u << VIRTIO_BLK_F_RO));
	memset(f->mem.host + DATA_GPA, 0x77, 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(bdev_pread(f->bs, 0, buf, sizeof(buf)), 0);
	assert_int_equal(buf[0], 0);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* discard=ignore never reaches the image: QEMU answers OK */
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 8, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	virtio_blk_get_stats(&f->blk, &st);
	assert_int_equal(st.op[VIRTIO_BLK_OP_WRITE].failed, 1);
	assert_int_equal(st.op[VIRTIO_BLK_OP_WRITE_ZEROES].failed, 1);
	assert_int_equal(st.op[VIRTIO_BLK_OP_WRITE].ops, 0);
}

static void test_read_only_unmap(void **state)
{
	struct virtio_blk_conf c;
	struct fixture *f;

	(void)state;
	virtio_blk_conf_init(&c);
	c.read_only = true;
	c.discard_unmap = true;
	f = fixture_new("raw", &c);
	assert_int_equal(dwz(f, VIRTIO_BLK_T_DISCARD, 0, 8, 0, 16), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	fixture_free(f);
}

/* --- multiqueue ------------------------------------------------------------- */

static void test_multiqueue(void **state)
{
	struct virtio_blk_conf c;
	struct fixture *f;
	const unsigned nq = 4, per_q = 4;

	(void)state;
	virtio_blk_conf_init(&c);
	c.num_queues = nq;
	f = fixture_new("raw", &c);
	assert_true(vt_offered(&f->blk.vp) & (1u << VIRTIO_BLK_F_MQ));
	assert_int_equal(cfg_read(f, VIRTIO_BLK_CFG_NUM_QUEUES, 2), nq);
	assert_int_equal(mread(f, VP_COMMON_NUMQ, 2), nq);
	assert_int_equal(f->blk.vp.msix_vectors, nq + 1);
	/* per_q writes on every queue, all in flight together */
	for (unsigned q = 0; q < nq; q++) {
		for (unsigned i = 0; i < per_q; i++) {
			unsigned slot = q * per_q + i;
			struct seg s[3] = { { HDR_GPA + 32 * slot, 16, false },
					    { DATA_GPA + 4096 * slot, 4096, false },
					    { STATUS_GPA + slot, 1, true } };

			set_header(f, slot, VIRTIO_BLK_T_OUT, 8 * slot);
			memset(f->mem.host + DATA_GPA + 4096 * slot, slot + 1, 4096);
			publish(f, q, 3 * i, s, 3);
		}
	}
	for (unsigned q = 0; q < nq; q++)
		vt_kick(&f->blk.vp, q);
	for (unsigned q = 0; q < nq; q++)
		wait_used(f, q);
	for (unsigned slot = 0; slot < nq * per_q; slot++) {
		assert_int_equal(f->mem.host[STATUS_GPA + slot], VIRTIO_BLK_S_OK);
		assert_true(reads_as(f, 8 * slot, 8, slot + 1));
	}
	/* and reads on the last queue */
	{
		struct seg s[3] = { { HDR_GPA, 16, false }, { DATA_GPA, 4096, true },
				    { STATUS_GPA, 1, true } };

		set_header(f, 0, VIRTIO_BLK_T_IN, 8 * 5);
		assert_int_equal(run(f, nq - 1, s, 3), 4097);
		assert_int_equal(f->mem.host[DATA_GPA + 100], 6);
	}
	fixture_free(f);
}

/* --- statistics --------------------------------------------------------------- */

static void test_stats(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_stats st;
	uint64_t n;

	request(f, VIRTIO_BLK_T_OUT, 10, 4096);
	request(f, VIRTIO_BLK_T_OUT, 100, 1024);
	request(f, VIRTIO_BLK_T_IN, 0, 2048);
	request(f, VIRTIO_BLK_T_FLUSH, 0, 0);
	request(f, VIRTIO_BLK_T_IN, CAP, 512);		/* invalid */
	dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, 200, 16, 0, 16);
	dwz(f, VIRTIO_BLK_T_DISCARD, 300, 8, 0, 16);
	virtio_blk_get_stats(&f->blk, &st);
	assert_int_equal(st.op[VIRTIO_BLK_OP_WRITE].ops, 2);
	assert_int_equal(st.op[VIRTIO_BLK_OP_WRITE].bytes, 5120);
	assert_int_equal(st.op[VIRTIO_BLK_OP_READ].ops, 1);
	assert_int_equal(st.op[VIRTIO_BLK_OP_READ].bytes, 2048);
	assert_int_equal(st.op[VIRTIO_BLK_OP_READ].invalid, 1);
	assert_int_equal(st.op[VIRTIO_BLK_OP_FLUSH].ops, 1);
	assert_int_equal(st.op[VIRTIO_BLK_OP_WRITE_ZEROES].ops, 1);
	assert_int_equal(st.op[VIRTIO_BLK_OP_WRITE_ZEROES].bytes, 8192);
	assert_int_equal(st.op[VIRTIO_BLK_OP_DISCARD].ops, 1);
	assert_int_equal(st.op[VIRTIO_BLK_OP_DISCARD].bytes, 4096);
	assert_int_equal(st.wr_highest_offset, 216 * 512);
	assert_int_equal(st.inflight, 0);
	assert_true(st.last_access_ns > 0);
	for (unsigned op = 0; op < VIRTIO_BLK_OP_COUNT; op++) {
		const struct virtio_blk_op_stats *s = &st.op[op];

		n = 0;
		for (unsigned b = 0; b < VIRTIO_BLK_LAT_BUCKETS; b++)
			n += s->hist[b];
		assert_int_equal(n, s->ops + s->failed);
		assert_true(s->max_ns <= s->total_ns);
		if (op != VIRTIO_BLK_OP_DISCARD && s->ops)	/* ignored discards take ~0 */
			assert_true(s->total_ns > 0);
	}
	assert_int_equal(virtio_blk_lat_bucket(0), 0);
	assert_int_equal(virtio_blk_lat_bucket(9999), 0);
	assert_int_equal(virtio_blk_lat_bucket(10000), 1);
	assert_int_equal(virtio_blk_lat_bucket(999999), 2);
	assert_int_equal(virtio_blk_lat_bucket(1000000), 3);
	assert_int_equal(virtio_blk_lat_bucket(UINT64_MAX), VIRTIO_BLK_LAT_BUCKETS - 1);
}

/* --- draining and reset ----------------------------------------------------- */

static void publish_reads(struct fixture *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct seg s[3] = { { HDR_GPA + 32 * i, 16, false },
				    { DATA_GPA + 8192 * i, 8192, true },
				    { STATUS_GPA + i, 1, true } };

		set_header(f, i, VIRTIO_BLK_T_IN, 16 * i);
		publish(f, 0, 3 * i, s, 3);
	}
}

static void test_drain(void **state)
{
	struct fixture *f = *state;

	publish_reads(f, 5);
	vt_kick(&f->blk.vp, 0);
	virtio_blk_drain(&f->blk);
	/* no waiting: everything is in the used ring when drain returns */
	assert_int_equal(used_idx(f, 0), 5);
	assert_int_equal(virtio_blk_inflight(&f->blk), 0);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(f->mem.host[STATUS_GPA + i], VIRTIO_BLK_S_OK);
}

static void test_reset_inflight(void **state)
{
	struct fixture *f = *state;

	for (int round = 0; round < 20; round++) {
		publish_reads(f, 5);
		vt_kick(&f->blk.vp, 0);
		mwrite(f, VP_COMMON_STATUS, 0, 1);	/* reset with requests in flight */
		assert_int_equal(virtio_blk_inflight(&f->blk), 0);
		assert_int_equal(f->blk.vp.vqs[0].inflight, 0);
		driver_init(f);
		assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), 1);
		assert_int_equal(status(f), VIRTIO_BLK_S_OK);
		/* only the new request completed after the reset */
		assert_int_equal(used_idx(f, 0), 1);
	}
}

/* --- batched completion, kick suppression ----------------------------------- */

/* Writes and reads made available together, with one kick, each come
 * back once in the used ring with its own length and status. */
static void test_batch_completion(void **state)
{
	struct fixture *f = *state;
	bool seen[5] = { false };

	for (unsigned i = 0; i < 5; i++) {
		bool wr = i % 2 == 0;
		struct seg s[3] = { { HDR_GPA + 32 * i, 16, false },
				    { DATA_GPA + 4096 * i, 4096, !wr },
				    { STATUS_GPA + i, 1, true } };

		memset(f->mem.host + DATA_GPA + 4096 * i, wr ? 0x40 + i : 0, 4096);
		set_header(f, i, wr ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 64 * i);
		publish(f, 0, 3 * i, s, 3);
	}
	vt_kick(&f->blk.vp, 0);
	wait_used(f, 0);
	for (uint16_t u = 0; u < 5; u++) {
		uint32_t id;

		memcpy(&id, f->mem.host + used_gpa(0) + 4 + 8 * u, 4);
		assert_true(id % 3 == 0 && id / 3 < 5);
		assert_false(seen[id / 3]);
		seen[id / 3] = true;
		assert_int_equal(used_len(f, 0, u), id / 3 % 2 == 0 ? 1 : 4097);
	}
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(f->mem.host[STATUS_GPA + i], VIRTIO_BLK_S_OK);
		if (i % 2 == 0)
			assert_true(reads_as(f, 64 * i, 8, 0x40 + i));
	}
	assert_int_equal(f->blk.vp.vqs[0].inflight, 0);
}

/* Kicks are suppressed only while a queue is being served: afterwards
 * the driver is asked to kick again (else the next request would hang). */
static void test_kicks_reenabled(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512), 513);
	assert_false(vt_rd16(&f->mem, used_gpa(0)) & VIRTQ_USED_F_NO_NOTIFY);
	f->features |= 1ull << VIRTIO_F_RING_EVENT_IDX;
	driver_init(f);
	assert_true(f->blk.vp.vqs[0].event_idx);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(request(f, VIRTIO_BLK_T_IN, 8, 512), 513);
		/* avail_event: a kick is wanted for the next request */
		assert_int_equal(vt_rd16(&f->mem, used_gpa(0) + 4 + 8 * QSIZE), f->avail_idx[0]);
	}
	assert_false(vt_rd16(&f->mem, used_gpa(0)) & VIRTQ_USED_F_NO_NOTIFY);
}

/* Requests done inline: after a busy pass the device keeps kicks off and
 * looks at the ring from its poll timer: a request published without a
 * kick still completes; after a few empty looks the driver is asked to
 * kick again. */
static void test_poll_after_busy_pass(void **state)
{
	struct fixture *f = *state;
	struct timespec ts = { 0, 20000000 };
	bool kicks_off;

	publish_reads(f, 4);	/* a busy pass: POLL_BATCH requests */
	/* Holding the device lock keeps the timer from looking meanwhile (no
	 * assertion may leave the test with it held). */
	virtio_pci_lock(&f->blk.vp);
	virtio_pci_kick(&f->blk.vp, 0);
	kicks_off = vt_rd16(&f->mem, used_gpa(0)) & VIRTQ_USED_F_NO_NOTIFY;
	set_header(f, 4, VIRTIO_BLK_T_IN, 64);		/* no kick for this one */
	publish(f, 0, 12, (struct seg[3]){ { HDR_GPA + 128, 16, false },
					   { DATA_GPA + 32768, 8192, true },
					   { STATUS_GPA + 4, 1, true } }, 3);
	virtio_pci_unlock(&f->blk.vp);
	assert_true(kicks_off);
	wait_used(f, 0);
	assert_int_equal(f->mem.host[STATUS_GPA + 4], VIRTIO_BLK_S_OK);
	nanosleep(&ts, NULL);		/* the empty looks run out */
	assert_false(vt_rd16(&f->mem, used_gpa(0)) & VIRTQ_USED_F_NO_NOTIFY);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512), 513);	/* a kick works */
}

/* The device's trylock resolves to this wrapper. While trylock_gate is
 * set, a trylock that finds the lock taken counts itself in busy_trylocks
 * and returns only once the test has released that many
 * (released_trylocks): the test acts while a block thread sits between
 * its failed trylock and the hand-over to the event loop. */
static unsigned trylock_gate, busy_trylocks, released_trylocks;

int pthread_mutex_trylock(pthread_mutex_t *m)
{
	static int (*real)(pthread_mutex_t *);
	struct timespec ts = { 0, 100000 };
	unsigned ticket;
	int ret;

	if (!real)
		real = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_trylock");
	ret = real(m);
	if (ret != EBUSY || !__atomic_load_n(&trylock_gate, __ATOMIC_ACQUIRE))
		return ret;
	ticket = __atomic_add_fetch(&busy_trylocks, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&released_trylocks, __ATOMIC_ACQUIRE) < ticket)
		nanosleep(&ts, NULL);
	return ret;
}

/* The threads engine's reads resolve to this wrapper: while reads_held is
 * set, a read waits (the test decides when a request completes). */
static unsigned reads_held;

ssize_t preadv(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	static ssize_t (*real)(int, const struct iovec *, int, off_t);
	struct timespec ts = { 0, 100000 };

	if (!real)
		real = (ssize_t (*)(int, const struct iovec *, int, off_t))dlsym(RTLD_NEXT,
										 "preadv");
	while (__atomic_load_n(&reads_held, __ATOMIC_ACQUIRE))
		nanosleep(&ts, NULL);
	return real(fd, iov, iovcnt, off);
}

static void hold_reads(bool on)
{
	__atomic_store_n(&reads_held, on, __ATOMIC_RELEASE);
}

/* Waits (5 s at most) until n block threads wait in the gate; false if
 * they never came. No assert: callers hold the device lock. */
static bool wait_busy_trylocks(unsigned n)
{
	struct timespec ts = { 0, 100000 };

	for (int i = 0; i < 50000 && __atomic_load_n(&busy_trylocks, __ATOMIC_ACQUIRE) < n; i++)
		nanosleep(&ts, NULL);
	return __atomic_load_n(&busy_trylocks, __ATOMIC_ACQUIRE) == n;
}

static void release_trylocks(unsigned n)
{
	__atomic_store_n(&released_trylocks, n, __ATOMIC_RELEASE);
}

/* Close the gate, let every thread in it go, drop the device lock: what a
 * test does before it asserts. */
static void leave_gate(struct fixture *f)
{
	__atomic_store_n(&trylock_gate, 0, __ATOMIC_RELEASE);
	release_trylocks(UINT_MAX);
	virtio_pci_unlock(&f->blk.vp);
}

/* A request that finishes while someone else holds the device lock (a
 * vCPU, a reset) is completed by the event loop: the block thread never
 * waits for the lock. The test holds it across the kick, and the reads
 * finish only after the pass (hold_reads), so every one of them goes
 * through the loop, published only once the lock is dropped. */
static void test_completion_while_locked(void **state)
{
	struct fixture *f = *state;
	struct timespec ts = { 0, 100000 };
	unsigned via_loop = 0;

	for (int attempt = 0; attempt < 20; attempt++) {
		uint16_t before = used_idx(f, 0), seen;

		publish_reads(f, 4);
		virtio_pci_lock(&f->blk.vp);
		hold_reads(true);
		virtio_pci_kick(&f->blk.vp, 0);
		hold_reads(false);
		for (int i = 0; i < 50000 && virtio_blk_inflight(&f->blk); i++)
			nanosleep(&ts, NULL);
		seen = used_idx(f, 0);
		virtio_pci_unlock(&f->blk.vp);
		assert_int_equal(virtio_blk_inflight(&f->blk), 0);
		via_loop += (uint16_t)(f->avail_idx[0] - seen);
		assert_int_equal(seen, before);
		wait_used(f, 0);
		for (unsigned i = 0; i < 4; i++)
			assert_int_equal(f->mem.host[STATUS_GPA + i], VIRTIO_BLK_S_OK);
		memset(f->mem.host + STATUS_GPA, 0xff, 4);
	}
	assert_int_equal(via_loop, 20 * 4);
}

/* A completion handed to the event loop after another thread already took
 * it from the done list must not keep later hand-overs from being
 * scheduled. Here: a read completes (after its kick returned) while the
 * test holds the device lock; while its block thread waits between the
 * failed trylock and the hand-over, a second kick (lock still held)
 * completes it through end_processing. Then a second read completes the
 * same way and must reach the driver through the event loop once the lock
 * is dropped (it hung: a stale "scheduled" flag left the loop's timer
 * unarmed). */
static void test_handover_after_list_taken(void **state)
{
	struct fixture *f = *state;
	struct timespec ts = { 0, 100000 };
	bool in_gate, completed;

	busy_trylocks = released_trylocks = 0;
	__atomic_store_n(&trylock_gate, 1, __ATOMIC_RELEASE);
	virtio_pci_lock(&f->blk.vp);
	hold_reads(true);
	publish_reads(f, 1);
	virtio_pci_kick(&f->blk.vp, 0);
	hold_reads(false);		/* completes outside the pass */
	in_gate = wait_busy_trylocks(1);	/* its block thread in the gate */
	virtio_pci_kick(&f->blk.vp, 0);	/* end_processing completes it */
	completed = used_idx(f, 0) == f->avail_idx[0];
	if (!in_gate || !completed) {
		leave_gate(f);
		fail_msg("first read: in the gate %d, completed by the kick %d", in_gate,
			 completed);
	}
	release_trylocks(1);		/* its thread hands over an empty list */
	for (int i = 0; i < 50000 && virtio_blk_inflight(&f->blk); i++)
		nanosleep(&ts, NULL);
	hold_reads(true);
	publish_reads(f, 1);
	virtio_pci_kick(&f->blk.vp, 0);
	hold_reads(false);
	in_gate = wait_busy_trylocks(2);
	leave_gate(f);
	assert_true(in_gate);
	wait_used(f, 0);
	assert_int_equal(f->mem.host[STATUS_GPA], VIRTIO_BLK_S_OK);
	assert_int_equal(virtio_blk_inflight(&f->blk), 0);
}

/* --- a polled bdev: submitted and reaped on the device's loop ---------------- */

#define POLLED_TEST(name, body)						\
	static void name(void **state)					\
	{								\
		if (!*state)						\
			skip();						\
		body(state);						\
	}
POLLED_TEST(test_polled_write_read_flush, test_write_read_flush)
POLLED_TEST(test_polled_batch, test_batch_completion)
POLLED_TEST(test_polled_drain, test_drain)
POLLED_TEST(test_polled_reset_inflight, test_reset_inflight)

/* With requests in flight after a pass (a disk image), kicks stay on:
 * they get new requests to the block layer at once. */
static void test_kicks_while_inflight(void **state)
{
	struct fixture *f = *state;
	bool inflight, kicks_off;

	publish_reads(f, 4);
	virtio_pci_lock(&f->blk.vp);
	virtio_pci_kick(&f->blk.vp, 0);
	inflight = virtio_blk_inflight(&f->blk) > 0;
	kicks_off = vt_rd16(&f->mem, used_gpa(0)) & VIRTQ_USED_F_NO_NOTIFY;
	virtio_pci_unlock(&f->blk.vp);
	if (inflight)	/* the block threads may have been quicker than the pass */
		assert_false(kicks_off);
	wait_used(f, 0);
}

/* One round of requests A and B, B added without a kick while A is in
 * flight: holding the device lock keeps A's completion from going out
 * meanwhile, so B is in the ring when it does. Returns the answers the
 * device watched for and took (hits) in the round; B completes either way
 * (a device that asks for kicks again looks at the ring once more). */
static uint64_t answer_round(struct fixture *f)
{
	struct timespec ts = { 0, 20000000 };

	for (int attempt = 0; attempt < 20; attempt++) {
		uint16_t base = f->avail_idx[0];
		uint64_t hits = f->blk.answer[0].hits, until;
		bool a_out;

		for (unsigned i = 0; i < 2; i++) {	/* A: slot 0, B: slot 1 */
			set_header(f, i, VIRTIO_BLK_T_IN, 8 * i);
			f->mem.host[DATA_GPA + 8192 * i + 4095] = 0;
		}
		publish(f, 0, 0, (struct seg[3]){ { HDR_GPA, 16, false },
						  { DATA_GPA, 4096, true },
						  { STATUS_GPA, 1, true } }, 3);
		vt_kick(&f->blk.vp, 0);
		virtio_pci_lock(&f->blk.vp);
		a_out = used_idx(f, 0) != base;		/* done inside the pass */
		if (!a_out)
			publish(f, 0, 3, (struct seg[3]){ { HDR_GPA + 32, 16, false },
							  { DATA_GPA + 8192, 4096, true },
							  { STATUS_GPA + 1, 1, true } }, 3);
		nanosleep(&ts, NULL);
		virtio_pci_unlock(&f->blk.vp);
		if (a_out)
			continue;
		until = clock_ns() + 5000000000ull;
		while (used_idx(f, 0) != f->avail_idx[0] && clock_ns() < until)
			nanosleep(&(struct timespec){ 0, 100000 }, NULL);
		assert_int_equal(used_idx(f, 0), f->avail_idx[0]);
		for (unsigned i = 0; i < 2; i++) {
			assert_int_equal(f->mem.host[STATUS_GPA + i], VIRTIO_BLK_S_OK);
			assert_int_equal(f->mem.host[DATA_GPA + 8192 * i + 4095], 0x5a);
		}
		return f->blk.answer[0].hits - hits;
	}
	fail_msg("request A never stayed in flight");
	return 0;
}

/* Set up for answer_round: data on disk, EVENT_IDX, and one request
 * done (the first completion always interrupts). */
static void answer_setup(struct fixture *f, bool polling)
{
	fill_sectors(f, 0, 64, 0x5a);	/* allocated: reads wait for the disk */
	f->features |= 1ull << VIRTIO_F_RING_EVENT_IDX;
	driver_init(f);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512), 513);
	/* used_event far ahead: no interrupts; else one per completion */
	vt_wr16(&f->mem, avail_gpa(0) + 4 + 2 * QSIZE, polling ? 0x8000 : used_idx(f, 0));
}

/* A polling driver (no interrupts) answers completions with new requests
 * at once. After handing out completions while other requests are in
 * flight, the device keeps kicks suppressed and takes the answer from
 * the ring without a kick. */
static void test_polling_driver_answers(void **state)
{
	struct fixture *f = *state;

	if (!f)
		skip();
	answer_setup(f, true);
	assert_int_equal(answer_round(f), 1);
}

/* A driver that wants interrupts answers after its handler: the device
 * does not watch for that, it asks for kicks again (and finds B). */
static void test_interrupt_driver_not_watched(void **state)
{
	struct fixture *f = *state;

	if (!f)
		skip();
	answer_setup(f, false);
	assert_int_equal(answer_round(f), 0);
}

/* A bdev polled through an engine that cannot signal is refused. */
static void test_polled_needs_fd(void **state)
{
	struct block_open_opts o = { .format = "raw", .engine = BLOCK_ENGINE_THREADS,
				     .poll_completions = true };
	struct guest_memory mem = { 0 };
	struct virtio_blk_conf c;
	struct virtio_blk *blk = calloc(1, sizeof(*blk));
	struct fixture f = { 0 };
	struct bdev *bs;
	char err[256];

	(void)state;
	vt_mem_init(&mem, RAM_SIZE);
	virtio_blk_conf_init(&c);
	assert_int_equal(make_image(&f, "raw"), 0);
	assert_int_equal(bdev_open(f.path, &o, &bs, err, sizeof(err)), 0);
	assert_int_equal(bdev_aio_poll_fd(bs), -ENOTSUP);
	assert_int_equal(virtio_blk_init(blk, bs, &c, &mem, NULL), -ENOTSUP);
	bdev_close(bs);
	unlink(f.path);
	free(blk);
	free(mem.host);
}

/* --- option strings ---------------------------------------------------------- */

static void test_opt_get(void **state)
{
	char v[16];

	(void)state;
	assert_int_equal(virtio_blk_opt_get("file=a,,b.img,if=none", "file", v, sizeof(v)), 1);
	assert_string_equal(v, "a,b.img");
	assert_int_equal(virtio_blk_opt_get("file=a,,b.img,if=none", "if", v, sizeof(v)), 1);
	assert_string_equal(v, "none");
	assert_int_equal(virtio_blk_opt_get("file=x,,,id=d", "file", v, sizeof(v)), 1);
	assert_string_equal(v, "x,");
	assert_int_equal(virtio_blk_opt_get("file=x,,,id=d", "id", v, sizeof(v)), 1);
	assert_string_equal(v, "d");
	assert_int_equal(virtio_blk_opt_get("file=,,if=x,,", "file", v, sizeof(v)), 1);
	assert_string_equal(v, ",if=x,");
	assert_int_equal(virtio_blk_opt_get("file=,,if=x,,", "if", v, sizeof(v)), 0);
	assert_int_equal(virtio_blk_opt_get("ifx=1,xif=2", "if", v, sizeof(v)), 0);
	assert_int_equal(virtio_blk_opt_get("virtio-blk-pci,drive=d0", "drive", v, sizeof(v)), 1);
	assert_string_equal(v, "d0");
	assert_int_equal(virtio_blk_opt_get("file=0123456789abcdefXYZ", "file", v, sizeof(v)), -1);
	assert_int_equal(virtio_blk_opt_get("file=", "file", v, sizeof(v)), 1);
	assert_string_equal(v, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test(test_config_features_off),
		cmocka_unit_test(test_config_size_max),
		cmocka_unit_test(test_topology),
		cmocka_unit_test_setup_teardown(test_geometry_from_mbr, setup, teardown),
		cmocka_unit_test(test_conf_check),
		cmocka_unit_test_setup_teardown(test_write_read_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_id_unsupp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_layouts, setup, teardown),
		cmocka_unit_test(test_discard_raw),
		cmocka_unit_test_setup_teardown(test_discard_ignore, setup, teardown),
		cmocka_unit_test(test_write_zeroes_raw),
		cmocka_unit_test(test_discard_qcow2),
		cmocka_unit_test_setup_teardown(test_wce_toggle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wce_without_config_wce, setup, teardown),
		cmocka_unit_test(test_writethrough_default),
		cmocka_unit_test_setup_teardown(test_poll_after_busy_pass, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_kicks_while_inflight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_flush, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_batch_completion, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_reset_inflight, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
		cmocka_unit_test(test_read_only_unmap),
		cmocka_unit_test(test_multiqueue),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_inflight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_completion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kicks_reenabled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_completion_while_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_after_list_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_polled_write_read_flush, setup_polled, teardown),
		cmocka_unit_test_setup_teardown(test_polled_batch, setup_polled, teardown),
		cmocka_unit_test_setup_teardown(test_polled_drain, setup_polled, teardown),
		cmocka_unit_test_setup_teardown(test_polled_reset_inflight, setup_polled, teardown),
		cmocka_unit_test_setup_teardown(test_polled_write_read_flush, setup_polled_native,
						 teardown),
		cmocka_unit_test_setup_teardown(test_polled_batch, setup_polled_native, teardown),
		cmocka_unit_test_setup_teardown(test_polled_drain, setup_polled_native, teardown),
		cmocka_unit_test_setup_teardown(test_polled_reset_inflight, setup_polled_native,
						 teardown),
		cmocka_unit_test_setup_teardown(test_polling_driver_answers, setup_polled_native,
						 teardown),
		cmocka_unit_test(test_polled_needs_fd),
		cmocka_unit_test_setup_teardown(test_polling_driver_answers, setup_polled_direct,
						 teardown),
		cmocka_unit_test_setup_teardown(test_interrupt_driver_not_watched,
						 setup_polled_direct, teardown),
		cmocka_unit_test(test_opt_get),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
