/* Virtqueues, device side: split rings (virtio 1.x section 2.7, and the
 * legacy layout: descriptor table, available ring, used ring) and packed
 * rings (virtio 1.1+ section 2.8, VIRTIO_F_RING_PACKED: one descriptor ring
 * with wrap counters plus the driver and device event suppression
 * structures), both with indirect descriptors and EVENT_IDX notification
 * suppression, behind one pop/push/fill/flush API.
 * Device-independent and free of KVM: it only needs guest memory. Every
 * index, length and address read from the guest is validated; a violation
 * marks the queue broken with a message, and the transport then sets
 * DEVICE_NEEDS_RESET. */
#ifndef HW_VIRTQUEUE_H
#define HW_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "vmm/memory.h"

#define VIRTQ_MAX_SIZE		1024	/* largest queue size a device offers */

#define VIRTQ_DESC_F_NEXT	1
#define VIRTQ_DESC_F_WRITE	2
#define VIRTQ_DESC_F_INDIRECT	4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	1

#define VIRTQ_LEGACY_ALIGN	4096	/* legacy ring: used ring alignment */

/* Packed rings: descriptor flags (with NEXT, WRITE, INDIRECT above) and
 * the event suppression structure's flags. */
#define VIRTQ_DESC_F_AVAIL	(1u << 7)
#define VIRTQ_DESC_F_USED	(1u << 15)
#define VIRTQ_EVENT_F_ENABLE	0
#define VIRTQ_EVENT_F_DISABLE	1
#define VIRTQ_EVENT_F_DESC	2	/* only with EVENT_IDX: at off_wrap */
#define VIRTQ_EVENT_WRAP	(1u << 15)	/* off_wrap: the wrap counter bit */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
} __attribute__((packed));

struct virtq_packed_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;			/* buffer id (of the chain's last descriptor) */
	uint16_t flags;
};
_Static_assert(sizeof(struct virtq_packed_desc) == 16, "packed descriptor layout");

/* Driver area (driver -> device: when to interrupt) and device area
 * (device -> driver: when to notify) of a packed ring. */
struct virtq_event {
	uint16_t off_wrap;		/* descriptor offset | wrap counter << 15 */
	uint16_t flags;			/* VIRTQ_EVENT_F_* */
};

/* One request: a descriptor chain flattened into host iovecs, the
 * device-readable ones (out) first, then the device-writable ones (in). */
struct virtq_elem {
	uint16_t head;			/* split: head descriptor; packed: buffer id */
	unsigned n_out, n_in;
	uint64_t out_len, in_len;	/* total bytes of each part */
	struct iovec iov[VIRTQ_MAX_SIZE];	/* out: [0, n_out), in: [n_out, n_out + n_in) */
};

struct virtq {
	/* Programmed by the driver (transport registers). */
	uint16_t size;			/* entries: split a power of two, packed any */
	uint16_t max_size;		/* offered by the device */
	bool enabled;
	/* Packed: descriptor ring, driver area and device area. */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t msix_vector;

	/* Negotiated features. */
	bool event_idx;
	bool indirect;
	bool packed;			/* VIRTIO_F_RING_PACKED: set before virtq_map */

	/* Device-side progress. Packed: both indexes are ring positions
	 * below size, each with its wrap counter. */
	uint16_t last_avail_idx;	/* next avail entry to consume */
	uint16_t used_idx;		/* our copy of used->idx */
	bool avail_wrap, used_wrap;	/* packed wrap counters (1 at reset) */
	uint16_t inflight;		/* popped, not yet pushed */
	uint16_t signalled_used;	/* used_idx at the last interrupt */
	bool signalled_used_valid;
	bool no_notify;			/* device busy: no kicks wanted (not migrated) */

	/* Host views of the rings, set by virtq_map. */
	const struct guest_memory *mem;
	struct virtq_desc *desc;
	volatile uint16_t *avail;	/* flags, idx, ring[size], used_event */
	volatile uint8_t *used;		/* flags, idx, {id,len}[size], avail_event */

	bool broken;
	char error[160];		/* first violation, for the log */

	/* Packed only. Per buffer id: ring descriptors of its chain while
	 * in flight, 0 when the driver owns it (migrated). The last pops in
	 * order (for virtq_unpop) and the pending fills (for virtq_flush). */
	uint16_t packed_ndescs[VIRTQ_MAX_SIZE];
	uint16_t pop_ids[VIRTQ_MAX_SIZE];
	uint16_t pop_seq;
	uint16_t n_filled;
	uint16_t fill_ids[VIRTQ_MAX_SIZE];
	uint32_t fill_lens[VIRTQ_MAX_SIZE];
};

/* Reset to the power-on state (size = max_size, nothing mapped, split). */
void virtq_reset(struct virtq *vq, uint16_t max_size);
/* Check the driver's addresses and size and map the rings (the packed
 * layout when vq->packed); returns 0, or -EINVAL with vq->broken set and
 * vq->error filled. */
int virtq_map(struct virtq *vq, const struct guest_memory *mem);
/* Legacy layout: all three rings from one page frame number. */
void virtq_set_legacy_pfn(struct virtq *vq, uint32_t pfn);
bool virtq_ready(const struct virtq *vq);

/* Take the next available chain. Returns 1 with *e filled, 0 when nothing
 * is available (or the in-flight limit is reached), -EINVAL on a
 * violation (vq->broken set). */
int virtq_pop(struct virtq *vq, struct virtq_elem *e);
/* Return a chain to the driver with `written` bytes of device-writable
 * data (clamped to what the chain offers). */
void virtq_push(struct virtq *vq, const struct virtq_elem *e, uint32_t written);
/* Batched used-ring updates (a merged rx frame must appear at once):
 * write chain e as the i-th element after used_idx without publishing
 * it, then publish n filled elements with one index update. */
void virtq_fill(struct virtq *vq, const struct virtq_elem *e, uint32_t written, uint16_t i);
void virtq_flush(struct virtq *vq, uint16_t n);
/* Give back the last n popped, not yet pushed chains: the next pops
 * return them again (a device that ran short of buffers or backend room). */
void virtq_unpop(struct virtq *vq, uint16_t n);
/* After pushes: does the driver want an interrupt now? (EVENT_IDX
 * used_event, or the NO_INTERRUPT flag) */
bool virtq_should_notify(struct virtq *vq);
/* EVENT_IDX: ask for a kick when the driver adds beyond what we consumed. */
void virtq_update_avail_event(struct virtq *vq);
/* Kick suppression while the device works through a queue anyway (like
 * QEMU's virtio_queue_set_notification): pops stop moving avail_event and
 * without EVENT_IDX the used ring says NO_NOTIFY. Enabling asks for a kick
 * once the driver adds beyond the avail index it has now; callers check
 * virtq_has_work afterwards (the driver may have added in between). */
void virtq_disable_notify(struct virtq *vq);
/* Disable, and under EVENT_IDX also move avail_event behind what was
 * consumed: a disabled ring still asks for the kick at the avail_event it
 * had, so a driver answering completions would kick once more; with this
 * it does not kick at all until notifications are enabled again. */
void virtq_suppress_kicks(struct virtq *vq);
/* Ask for kicks again. Returns the avail idx read before the store that
 * asks: to know nothing came meanwhile, recheck with virtq_has_work. */
uint16_t virtq_enable_notify(struct virtq *vq);
/* The ring wrap arithmetic of the spec: should an event fire when the
 * index moved from old to new_idx, given the other side's event index? */
static inline bool virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

/* Does the available ring hold entries we have not consumed? */
bool virtq_has_work(const struct virtq *vq);
/* Consistency of migrated state (indexes, wrap counters, in-flight ids):
 * 0 or -EINVAL. Called by the transport's post_load before virtq_map. */
int virtq_check_loaded(const struct virtq *vq);

/* Bytes of guest memory each ring occupies for a queue of n entries. */
static inline uint64_t virtq_desc_bytes(uint16_t n) { return 16ull * n; }
static inline uint64_t virtq_avail_bytes(uint16_t n) { return 6ull + 2ull * n; }
static inline uint64_t virtq_used_bytes(uint16_t n) { return 6ull + 8ull * n; }
static inline uint64_t virtq_event_bytes(void) { return sizeof(struct virtq_event); }

#endif
