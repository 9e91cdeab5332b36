/* Private to the virtio-blk model: the request the block layer carries
 * and the functions its files share: hw/virtio_blk.c (life cycle, queues,
 * completion, statistics), hw/virtio_blk_req.c (request handlers) and
 * hw/virtio_blk_conf.c (properties, features, config space). */
#ifndef HW_VIRTIO_BLK_INT_H
#define HW_VIRTIO_BLK_INT_H

#include <sys/uio.h>
#include "hw/virtio_blk.h"

/* One request handed to the block layer. */
struct blk_req {
	struct virtio_blk *blk;
	struct blk_req *next;		/* done list */
	unsigned q;
	unsigned generation;
	uint16_t head;
	uint64_t in_len;		/* the chain's writable bytes (the used length) */
	uint8_t *status;		/* host address of the status byte */
	enum virtio_blk_op op;
	uint64_t offset, bytes;		/* for the statistics */
	uint64_t start_ns;
	bool flush_after;		/* writethrough: flush before completing */
	bool flushed_after;		/* ... and that flush was issued */
	int ret;
	int niov;
	struct iovec iov[];		/* data segments */
};

/* Completion and statistics (hw/virtio_blk.c). The status byte and used
 * entry of a request finished at once (device lock held); the interrupt
 * is sent once per batch, for the queues collected in notify. */
void virtio_blk_push_status(struct virtio_blk *blk, unsigned q, uint16_t head, uint64_t in_len,
			    uint8_t *status, uint8_t st, unsigned *notify);
/* Account a request r and push its status (unless the device was reset or
 * broke meanwhile). */
void virtio_blk_complete_req(struct virtio_blk *blk, struct blk_req *r, unsigned *notify);
/* Hand r to the block layer; it completes through the done list. */
void virtio_blk_submit(struct virtio_blk *blk, struct blk_req *r, bool may_unmap);
void virtio_blk_account_done(struct virtio_blk *blk, const struct blk_req *r, bool ok);
void virtio_blk_account_invalid(struct virtio_blk *blk, enum virtio_blk_op op);

/* Requests (hw/virtio_blk_req.c): handle one popped chain (device lock
 * held); false when the device had to stop. */
bool virtio_blk_handle_request(struct virtio_blk *blk, unsigned q, const struct virtq_elem *e,
			       unsigned *notify);

/* Features and config space (hw/virtio_blk_conf.c). */
void virtio_blk_guess_geometry(struct virtio_blk *blk);
uint64_t virtio_blk_offered_features(const struct virtio_blk *blk);
unsigned virtio_blk_config_size(const struct virtio_blk_conf *c);
/* The whole config space from the device state (QEMU's get_config). */
void virtio_blk_refresh_config(struct virtio_blk *blk);
/* The transport's config_write callback. */
void virtio_blk_config_write(struct virtio_pci *vp, unsigned off, unsigned size);
/* The write cache a driver without CONFIG_WCE negotiated, at DRIVER_OK. */
void virtio_blk_apply_driver_ok(struct virtio_blk *blk);

#endif
