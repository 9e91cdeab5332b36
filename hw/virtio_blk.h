/* virtio-blk-pci model: the block device (virtio type 2) on the virtio-pci
 * transport and the block layer. Public so unit tests can drive it with a
 * fake guest memory and a bdev opened by the test. */
#ifndef HW_VIRTIO_BLK_H
#define HW_VIRTIO_BLK_H

#include "hw/virtio_pci.h"

struct bdev;
struct event_loop;

#define VIRTIO_ID_BLOCK		2
#define VIRTIO_BLK_PCI_ID	(VIRTIO_PCI_TRANSITIONAL_BASE + 1)

/* Request types and status values (virtio 1.x section 5.2.6) */
#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_FLUSH	4
#define VIRTIO_BLK_T_GET_ID	8
#define VIRTIO_BLK_S_OK		0
#define VIRTIO_BLK_S_IOERR	1
#define VIRTIO_BLK_S_UNSUPP	2
#define VIRTIO_BLK_ID_BYTES	20

/* Feature bits */
#define VIRTIO_BLK_F_SEG_MAX	2
#define VIRTIO_BLK_F_RO		5
#define VIRTIO_BLK_F_BLK_SIZE	6
#define VIRTIO_BLK_F_FLUSH	9

/* Device configuration layout (little-endian) */
#define VIRTIO_BLK_CFG_CAPACITY	0
#define VIRTIO_BLK_CFG_SIZE_MAX	8
#define VIRTIO_BLK_CFG_SEG_MAX	12
#define VIRTIO_BLK_CFG_BLK_SIZE	20
#define VIRTIO_BLK_CFG_SIZE	24

#define VIRTIO_BLK_QUEUE_SIZE	128

struct virtio_blk {
	struct virtio_pci vp;
	struct bdev *bs;
	struct event_loop *loop;	/* completions go here; NULL: inline */
	uint64_t capacity;		/* 512-byte sectors */
	bool read_only;
	char serial[VIRTIO_BLK_ID_BYTES];	/* zero padded, not terminated */
	unsigned generation;		/* bumped by reset: stale completions dropped */
	unsigned inflight;		/* submitted to the block layer */
};

/* Build the device over bs (the caller keeps ownership of bs; NULL serial
 * for none). loop NULL: completions are handled on the block thread. */
int virtio_blk_init(struct virtio_blk *blk, struct bdev *bs, bool read_only, const char *serial,
		    const struct guest_memory *mem, struct event_loop *loop);
/* Serve queue q: pop requests and submit them to the block layer. */
void virtio_blk_process(struct virtio_pci *vp, unsigned q);

#endif
