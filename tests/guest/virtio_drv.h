/* virtio_drv.h: the kit's CPL3 virtio-pci driver library (split rings, and
 * packed rings when VIRTIO_F_RING_PACKED is negotiated).
 * Used by the virtio-rng, virtio-blk and virtio-net cases. Runs at CPL3
 * with identity-mapped memory (guest virtual = guest physical).
 *
 * Typical use:
 *
 *	struct vdev d;
 *	struct virtq q;
 *
 *	if (vdev_find(&d, VIRTIO_ID_BLOCK, 0) < 0)		// first virtio-blk
 *		return fail("no device");
 *	if (vdev_map(&d, false) < 0)				// modern (BAR 4 caps)
 *		return -1;
 *	if (vdev_init(&d, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | ...) < 0)
 *		return -1;					// d.features = negotiated
 *	if (vq_setup(&d, &q, 0, 128, VQ_NO_MSIX) < 0)		// queue 0, <= 128 entries
 *		return -1;
 *	vdev_driver_ok(&d);
 *	struct vbuf b[3] = { { &hdr, 16, false }, { data, 4096, true }, { &st, 1, true } };
 *	vq_add(&q, b, 3, token);		// chain from the free list, published
 *	vq_kick(&q);				// or vq_kick_needed()/vq_notify()
 *	while (!(tok = vq_pop(&q, &len)))	// polled; frees the chain
 *		cpu_relax();
 *
 * Devices: vdev_find() scans bus 0 for vendor 0x1af4 with the transitional
 * (0x1000 + n) or modern (0x1040 + type) device ID of a virtio type; nth
 * picks the N-th such device (0 = first). Direct boot has no firmware, so
 * vdev_map() assigns unassigned BARs per slot: BAR 4 at 0xe0000000 +
 * slot * 1 MiB, other memory BARs (QEMU's MSI-X BAR 1) at 0xe4000000 +
 * slot * 1 MiB, I/O BAR 0 at 0xc000 + slot * 0x100. Legacy mode drives I/O
 * BAR 0 (config at 0x14, or 0x18 while MSI-X is enabled).
 *
 * Memory: dma_alloc() hands out zeroed, aligned guest memory from a bump
 * heap above the kit image (up to 96 MiB: run with -m 128); dma_mark() /
 * dma_release() free everything allocated after a mark.
 *
 * Queues: each struct virtq owns its ring memory (legacy layout: desc,
 * avail right after, used on the next 4 KiB boundary; also valid for the
 * modern interface), a free list of descriptors threaded through
 * desc.next, the driver's avail index shadow (avail_idx) and the next used
 * index to consume (last_used). Low-level helpers (vq_set_desc,
 * vq_publish, used_*_at) let tests place descriptors themselves; then they
 * must not mix with vq_add/vq_pop on the same queue.
 *
 * Interrupts: vdev_msix_set(d, entry, vector, masked) programs an MSI-X
 * table entry to the BSP's LAPIC; vq_setup's msix_entry selects the entry
 * a queue signals (VQ_NO_MSIX = none); vdev_config_msix() the config one.
 * The kit's IDT stubs count every vector in irq_counts[] and EOI.
 *
 * Packed rings (virtio 1.1+ section 2.8): when vdev_init negotiated
 * VIRTIO_F_RING_PACKED (modern only), vq_setup builds a packed queue
 * (q->packed): a descriptor ring with wrap counters, the driver event
 * suppression area (ours: when we want interrupts) and the device's (when
 * it wants notifications). vq_add (buffer id from a free-id list, in every
 * descriptor of the chain, head flags written last), vq_add_indirect (the
 * table holds packed descriptors), vq_kick_needed / vq_kick, vq_has_used,
 * vq_pop / vq_get_used (both release the id and its ring slots),
 * vq_enable_cb / vq_disable_cb and vq_wait_all work on both layouts; the
 * split-only low-level helpers do not (vq_used_idx returns the next used
 * slot, for messages). vq_packed_put places one raw descriptor for tests
 * that build malformed chains. `packed=1` on the kit command line makes
 * vdev_init ask for VIRTIO_F_RING_PACKED for every case (virtio-blk runs
 * on it when the device offers it; virtio-net's tx reset still assumes
 * split rings). */
#ifndef TESTKIT_VIRTIO_DRV_H
#define TESTKIT_VIRTIO_DRV_H

#include "tests/guest/kit.h"

#define VIRTIO_VENDOR		0x1af4

/* virtio device types (PCI subsystem ID) */
#define VIRTIO_ID_NET		1
#define VIRTIO_ID_BLOCK		2
#define VIRTIO_ID_CONSOLE	3
#define VIRTIO_ID_RNG		4

/* device status */
#define VIRTIO_ST_ACK		0x01
#define VIRTIO_ST_DRIVER	0x02
#define VIRTIO_ST_DRIVER_OK	0x04
#define VIRTIO_ST_FEATURES_OK	0x08
#define VIRTIO_ST_NEEDS_RESET	0x40
#define VIRTIO_ST_FAILED	0x80

/* transport feature bits */
#define VIRTIO_F_INDIRECT	(1ull << 28)
#define VIRTIO_F_EVENT_IDX	(1ull << 29)
#define VIRTIO_F_VERSION_1	(1ull << 32)
#define VIRTIO_F_RING_PACKED	(1ull << 34)

/* descriptor flags */
#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_DESC_F_INDIRECT	4
/* ring flags */
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	1
/* packed rings: descriptor flags and event suppression flags */
#define VRING_PACKED_DESC_F_AVAIL	(1u << 7)
#define VRING_PACKED_DESC_F_USED	(1u << 15)
#define VRING_PACKED_EVENT_ENABLE	0
#define VRING_PACKED_EVENT_DISABLE	1
#define VRING_PACKED_EVENT_DESC		2
#define VRING_PACKED_EVENT_WRAP		(1u << 15)

#define VQ_NO_MSIX		0xffff	/* msix_entry: the queue does not signal */
#define VQ_MAX_SIZE		1024	/* largest queue the library sets up */

struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct vring_packed_desc {
	u64 addr;
	u32 len;
	u16 id;
	u16 flags;
};

struct vring_packed_event {
	u16 off_wrap;
	u16 flags;
};

struct vdev {
	u32 slot;		/* PCI device number on bus 0 */
	u16 pci_id;		/* PCI device ID found */
	u16 type;		/* virtio device type */
	bool legacy;		/* driven through I/O BAR 0 */
	bool msix_on;		/* MSI-X enabled (moves the legacy config) */
	u16 iobase;
	u64 bar4;
	u64 common, isr, devcfg, notify;	/* modern regions */
	u32 notify_mult;
	u8 msix_cap;		/* 0: none */
	u16 msix_size;		/* table entries */
	u64 msix_table, msix_pba;
	u64 features;		/* negotiated */
	u64 offered;		/* what the device offered */
};

struct virtq {
	struct vdev *d;
	u16 index;		/* queue number */
	u16 size;		/* entries, a power of two */
	u16 msix_entry;		/* VQ_NO_MSIX or the MSI-X table entry */
	bool event_idx;		/* VIRTIO_F_EVENT_IDX negotiated */
	bool cb_off;		/* vq_disable_cb: interrupts suppressed */
	struct vring_desc *desc;
	volatile u16 *avail;	/* flags, idx, ring[size], used_event */
	volatile u8 *used;	/* flags, idx, {u32 id, u32 len}[size], avail_event */
	u64 notify_addr;	/* modern: where to write the queue index */
	u16 avail_idx;		/* driver's copy of avail->idx */
	u16 kicked_idx;		/* avail_idx at the last notification */
	u16 last_used;		/* next used index to consume */
	u16 free_head;		/* free descriptor list through desc.next */
	u16 num_free;
	void **token;		/* per head descriptor (packed: per id), for vq_pop */

	/* Packed rings only. */
	bool packed;
	struct vring_packed_desc *ring;
	volatile struct vring_packed_event *driver_ev;	/* ours */
	volatile struct vring_packed_event *device_ev;	/* the device's */
	u16 next_avail;		/* next ring slot we fill */
	bool avail_wrap;	/* wrap counter of next_avail */
	u16 next_used;		/* next ring slot to look at for a used entry */
	bool used_wrap;
	u16 num_added;		/* descriptors made available since the last kick */
	u16 *free_ids;		/* stack of free buffer ids */
	u16 num_free_ids;
	u16 *id_ndescs;		/* per id: ring slots of its chain */
};

/* A buffer for vq_add: device_writes marks it device-writable. */
struct vbuf {
	void *addr;
	u32 len;
	bool device_writes;
};

/* ---- memory ---- */
void *dma_alloc(size_t size, size_t align);	/* zeroed; NULL when exhausted */
u64 dma_mark(void);
void dma_release(u64 mark);

/* ---- PCI configuration space (bus 0, function 0) ---- */
u32 pci_cfg_read32(u32 slot, u32 off);
u16 pci_cfg_read16(u32 slot, u32 off);
u8 pci_cfg_read8(u32 slot, u32 off);
void pci_cfg_write32(u32 slot, u32 off, u32 v);
void pci_cfg_write16(u32 slot, u32 off, u16 v);
void pci_cfg_write8(u32 slot, u32 off, u8 v);

static inline void virtio_mb(void) { asm volatile("mfence" ::: "memory"); }
static inline void virtio_barrier(void) { asm volatile("" ::: "memory"); }

/* ---- device ---- */
/* The nth (0-based) virtio-pci device of a type on bus 0; 0 or -1. */
int vdev_find(struct vdev *d, u16 type, u32 nth);
/* Enables decoding and bus mastering, assigns BARs, parses the modern
 * capabilities and MSI-X; prints "device at 00:SS.0 ..."; 0 or fail(). */
int vdev_map(struct vdev *d, bool legacy);
/* Reset, ACK, DRIVER, features = want & offered (modern: VERSION_1
 * required; packed=1 on the command line adds RING_PACKED to want),
 * FEATURES_OK (modern). Queues are set up after it; 0 or fail(). */
int vdev_init(struct vdev *d, u64 want);
int vdev_driver_ok(struct vdev *d);	/* fails when NEEDS_RESET is already set */
void vdev_reset(struct vdev *d);
u8 vdev_status(struct vdev *d);
void vdev_set_status(struct vdev *d, u8 v);
u8 vdev_isr(struct vdev *d);		/* read-to-clear */
u16 vdev_num_queues(struct vdev *d);	/* modern: num_queues; legacy: 0 */
u16 vdev_queue_max(struct vdev *d, u16 index);	/* device's size for a queue; 0: none */
/* Device-specific configuration, offset from its start. */
u8 vdev_cfg8(struct vdev *d, u32 off);
u16 vdev_cfg16(struct vdev *d, u32 off);
u32 vdev_cfg32(struct vdev *d, u32 off);
u64 vdev_cfg64(struct vdev *d, u32 off);
void vdev_cfg_write8(struct vdev *d, u32 off, u8 v);
u8 vdev_cfg_generation(struct vdev *d);	/* modern; legacy 0 */

/* ---- MSI-X ---- */
void vdev_msix_enable(struct vdev *d, bool on);
void vdev_msix_set(struct vdev *d, u32 entry, u8 vector, bool masked);
void vdev_msix_mask(struct vdev *d, u32 entry, bool masked);
bool vdev_msix_pending(struct vdev *d, u32 entry);
/* Route config changes to an MSI-X entry (VQ_NO_MSIX = none); 0 or -1
 * when the device did not accept it. */
int vdev_config_msix(struct vdev *d, u16 entry);

/* ---- queues ---- */
/* Sets up queue index with min(max_size, device maximum) entries (modern
 * may shrink, legacy takes the device's size), allocates its rings,
 * programs them and the MSI-X entry, enables it; 0 or fail(). */
int vq_setup(struct vdev *d, struct virtq *q, u16 index, u16 max_size, u16 msix_entry);
/* Adds a chain of n buffers from the free list and publishes it (no
 * notification); returns the head, or -1 when fewer than n are free. */
int vq_add(struct virtq *q, const struct vbuf *b, u32 n, void *token);
/* Same through an indirect table (16 * n bytes, caller's memory) in one
 * ring descriptor. */
int vq_add_indirect(struct virtq *q, struct vring_desc *table, const struct vbuf *b, u32 n,
		    void *token);
/* Notification: vq_kick_needed follows avail_event (EVENT_IDX) or the used
 * ring's NO_NOTIFY flag since the last kick; vq_notify always writes the
 * doorbell; vq_kick does both (returns whether it notified). */
bool vq_kick_needed(struct virtq *q);
void vq_notify(struct virtq *q);
bool vq_kick(struct virtq *q);
/* Used ring: vq_has_used is true when an entry waits; vq_pop consumes it,
 * frees its chain and returns its token (NULL when none; *len = used
 * length). vq_get_used consumes without touching the free list. */
bool vq_has_used(struct virtq *q);
void *vq_pop(struct virtq *q, u32 *len);
bool vq_get_used(struct virtq *q, u32 *id, u32 *len);
/* Interrupt requests: enable asks for one at the next used entry
 * (used_event = last_used, or clears NO_INTERRUPT); disable suppresses
 * them (used_event far ahead, or sets NO_INTERRUPT). */
void vq_enable_cb(struct virtq *q);
void vq_disable_cb(struct virtq *q);
/* Wait until every published buffer is used (used idx == avail_idx);
 * 0 or -1 after timeout_ms. Does not consume. */
int vq_wait_all(struct virtq *q, u64 timeout_ms);

/* Packed: place one raw descriptor at the next ring slot (flags plus the
 * avail/used bits of the current wrap counter, unless avail is false)
 * and move on; for tests that build malformed chains. Returns the slot. */
u16 vq_packed_put(struct virtq *q, const void *addr, u32 len, u16 id, u16 flags, bool avail);

/* Low-level ring access for tests that place descriptors themselves. */
void vq_set_desc(struct virtq *q, u16 i, const void *addr, u32 len, u16 flags, u16 next);
void vq_publish(struct virtq *q, u16 head);	/* ring[avail_idx] = head; avail_idx++ */
u16 vq_used_idx(struct virtq *q);
u32 vq_used_id_at(struct virtq *q, u16 idx);
u32 vq_used_len_at(struct virtq *q, u16 idx);
volatile u16 *vq_used_event(struct virtq *q);
volatile u16 *vq_avail_event(struct virtq *q);

/* True when a notification/interrupt is due for new_idx given event_idx
 * and the previous index (virtio spec 2.7.10). */
static inline bool vring_need_event(u16 event_idx, u16 new_idx, u16 old)
{
	return (u16)(new_idx - event_idx - 1) < (u16)(new_idx - old);
}

#endif
