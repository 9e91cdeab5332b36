/* libFuzzer target for the virtio-blk model over a small raw image in
 * /dev/shm: the input is a device setup (queues, features, cache, discard,
 * block size, read-only), a list of driver operations (kicks, config
 * writes, resets, drains) and the guest RAM holding the descriptor tables,
 * rings and requests. Whatever the guest writes, the device must never
 * touch memory outside guest RAM, hang or crash, and must leave no request
 * in flight once drained. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "block/block.h"
#include "hw/pci.h"
#include "hw/virtio_blk.h"
#include "tests/fuzz/fuzz_virtio_common.h"

#define RAM_SIZE	0x10000
#define IMG_SIZE	0x10000
#define MAX_OPS		32
#define FUZZ_QUEUES	4

struct fuzz_queue {
	uint8_t size_log2;	/* 0..4: 1..16 entries */
	uint8_t pad;
	uint16_t desc, avail, used;	/* offsets in RAM */
} __attribute__((packed));

struct fuzz_header {
	uint8_t num_queues;	/* 1..FUZZ_QUEUES */
	uint8_t flags;		/* bit 0 unmap, 1 writethrough, 2 read-only, 3 4K blocks,
				 * 4 no discard, 5 no write-zeroes, 6 small limits */
	uint32_t features;	/* driver features (low word), masked by the offer */
	uint8_t n_ops;
	struct fuzz_queue q[FUZZ_QUEUES];
} __attribute__((packed));

struct fuzz_op {
	uint8_t kind;		/* kick, config write, reset, drain */
	uint8_t arg;
	uint8_t value;
} __attribute__((packed));

static struct bdev *open_image(void)
{
	static char path[64];
	struct block_open_opts o = { .format = "raw", .engine = BLOCK_ENGINE_THREADS };
	struct bdev *bs;
	char err[256];
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/fuzz_virtio_blk.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, IMG_SIZE) < 0)
		abort();
	close(fd);
	if (bdev_open(path, &o, &bs, err, sizeof(err)) < 0)
		abort();
	unlink(path);		/* the open file lives on */
	return bs;
}

static void conf_from(const struct fuzz_header *h, struct virtio_blk_conf *c)
{
	virtio_blk_conf_init(c);
	c->num_queues = 1 + h->num_queues % FUZZ_QUEUES;
	c->queue_size = 16;
	c->discard_unmap = h->flags & 1;
	c->writeback = !(h->flags & 2);
	c->read_only = h->flags & 4;
	if (h->flags & 8) {
		c->logical_block_size = 4096;
		c->physical_block_size = 4096;
	}
	c->discard = !(h->flags & 16);
	c->write_zeroes = !(h->flags & 32);
	if (h->flags & 64) {
		c->max_discard_sectors = 8;
		c->max_write_zeroes_sectors = 8;
	}
	c->serial = "fuzz-serial-0123456789";
}

static void mw(struct virtio_blk *blk, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_modern_write(&blk->vp, off, v, size);
}

static void driver_init(struct virtio_blk *blk, const struct fuzz_header *h)
{
	mw(blk, VP_COMMON_STATUS, 0, 1);
	mw(blk, VP_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	mw(blk, VP_COMMON_GFSELECT, 0, 4);
	mw(blk, VP_COMMON_GF, h->features & blk->vp.host_features, 4);
	mw(blk, VP_COMMON_GFSELECT, 1, 4);
	mw(blk, VP_COMMON_GF, 1, 4);	/* VERSION_1 */
	mw(blk, VP_COMMON_STATUS, 0x0b, 1);
	for (unsigned q = 0; q < blk->conf.num_queues; q++) {
		const struct fuzz_queue *fq = &h->q[q];

		mw(blk, VP_COMMON_Q_SELECT, q, 2);
		mw(blk, VP_COMMON_Q_SIZE, 1u << (fq->size_log2 % 5), 2);
		mw(blk, VP_COMMON_Q_DESCLO, fq->desc & ~15u, 4);
		mw(blk, VP_COMMON_Q_DESCHI, 0, 4);
		mw(blk, VP_COMMON_Q_AVAILLO, fq->avail & ~1u, 4);
		mw(blk, VP_COMMON_Q_AVAILHI, 0, 4);
		mw(blk, VP_COMMON_Q_USEDLO, fq->used & ~3u, 4);
		mw(blk, VP_COMMON_Q_USEDHI, 0, 4);
		mw(blk, VP_COMMON_Q_ENABLE, 1, 2);
	}
	mw(blk, VP_COMMON_STATUS, 0x0f, 1);
}

static void run_op(struct virtio_blk *blk, const struct fuzz_header *h, const struct fuzz_op *o)
{
	switch (o->kind % 8) {
	case 0: case 1: case 2: case 3:
		virtio_pci_lock(&blk->vp);
		virtio_pci_kick(&blk->vp, o->arg % FUZZ_QUEUES);
		virtio_pci_unlock(&blk->vp);
		break;
	case 4:
		mw(blk, VP_DEVICE_OFF + o->arg % 64, o->value, 1);
		break;
	case 5:
		virtio_pci_modern_read(&blk->vp, VP_DEVICE_OFF + o->arg % 64, 1 << (o->value % 4));
		break;
	case 6:
		driver_init(blk, h);	/* reset with requests in flight */
		break;
	case 7:
		virtio_blk_drain(blk);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static struct bdev *bs;
	static struct virtio_blk blk;
	struct guest_memory mem = { .ram_size = RAM_SIZE, .below_4g = RAM_SIZE };
	struct virtio_blk_conf conf;
	struct fuzz_header h;
	size_t n_ops, used;

	if (size < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	n_ops = h.n_ops % (MAX_OPS + 1);
	used = sizeof(h) + n_ops * sizeof(struct fuzz_op);
	if (size < used)
		return 0;
	if (!ram) {
		ram = malloc(RAM_SIZE);
		bs = open_image();
	}
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + used, size - used < RAM_SIZE ? size - used : RAM_SIZE);
	mem.host = ram;

	conf_from(&h, &conf);
	if (virtio_blk_init(&blk, bs, &conf, &mem, NULL) < 0)
		abort();
	blk.vp.send_msi = no_msi;
	blk.vp.pci.config[PCI_COMMAND] |= PCI_COMMAND_MASTER;
	driver_init(&blk, &h);
	for (size_t i = 0; i < n_ops; i++) {
		struct fuzz_op o;

		memcpy(&o, data + sizeof(h) + i * sizeof(o), sizeof(o));
		run_op(&blk, &h, &o);
		for (unsigned q = 0; q < conf.num_queues; q++)
			if (blk.vp.vqs[q].inflight > blk.vp.vqs[q].size)
				abort();
	}
	virtio_blk_exit(&blk);
	if (blk.io_inflight || blk.done)
		abort();
	pthread_mutex_destroy(&blk.vp.own_lock);
	return 0;
}
