/* Shared helpers for the virtio unit tests (virtqueue, virtio-pci,
 * virtio-blk, virtio-net, packed rings): a fake guest RAM, 16/32-bit
 * reads and writes at a guest address, split and packed descriptor
 * writers, the driver's side of a packed ring (wrap counters, chains made
 * available, used elements taken), an MSI sink that drops messages, and
 * the driver's side of the modern transport (feature negotiation, queue
 * setup, kicks). Header-only; the helpers return what they read and leave
 * the asserting to the test. */
#ifndef TESTS_UNIT_VIRTIO_TEST_UTIL_H
#define TESTS_UNIT_VIRTIO_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hw/virtio_pci.h"
#include "hw/virtqueue.h"
#include "vmm/memory.h"

/* --- fake guest memory ----------------------------------------------------- */

/* Zeroed RAM of size bytes, all of it below 4 GiB; free mem->host. */
/* Zeroed and page-aligned, as guest RAM is (O_DIRECT needs no bounce). */
static inline void vt_mem_init(struct guest_memory *mem, size_t size)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, size) == 0)
		memset(p, 0, size);
	mem->host = p;
	mem->ram_size = size;
	mem->below_4g = size;
}

static inline uint16_t vt_rd16(const struct guest_memory *mem, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, mem->host + gpa, 2);
	return v;
}

static inline uint32_t vt_rd32(const struct guest_memory *mem, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, mem->host + gpa, 4);
	return v;
}

static inline void vt_wr16(struct guest_memory *mem, uint64_t gpa, uint16_t v)
{
	memcpy(mem->host + gpa, &v, 2);
}

/* Split-ring descriptor i of the table at table_gpa. */
static inline void vt_put_desc(struct guest_memory *mem, uint64_t table_gpa, unsigned i,
			       uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct virtq_desc d = { addr, len, flags, next };

	memcpy(mem->host + table_gpa + 16 * i, &d, sizeof(d));
}

/* Packed-ring descriptor i of the ring (or indirect table) at table_gpa. */
static inline void vt_put_pdesc(struct guest_memory *mem, uint64_t table_gpa, unsigned i,
				uint64_t addr, uint32_t len, uint16_t id, uint16_t flags)
{
	struct virtq_packed_desc d = { addr, len, id, flags };

	memcpy(mem->host + table_gpa + 16 * i, &d, sizeof(d));
}

static inline struct virtq_packed_desc vt_get_pdesc(const struct guest_memory *mem,
						    uint64_t table_gpa, unsigned i)
{
	struct virtq_packed_desc d;

	memcpy(&d, mem->host + table_gpa + 16 * i, sizeof(d));
	return d;
}

/* --- the driver's side of a packed ring ----------------------------------- */

/* What the driver keeps for one packed ring: where its next descriptor
 * goes and where the next used one will show, the two wrap counters, and
 * how many ring slots each buffer id took (a used chain skips them all). */
struct vt_pring {
	struct guest_memory *mem;
	uint64_t ring_gpa;
	uint16_t size;
	uint16_t next_avail, next_used;
	bool avail_wrap, used_wrap;
	uint16_t ndescs[VIRTQ_MAX_SIZE];	/* per id: ring slots in flight */
};

/* One buffer of a chain; NEXT is added by vt_pring_add. */
struct vt_pbuf {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;		/* WRITE, INDIRECT */
};

/* An empty ring of size slots at ring_gpa, both wrap counters 1. */
static inline void vt_pring_init(struct vt_pring *r, struct guest_memory *mem,
				 uint64_t ring_gpa, uint16_t size)
{
	memset(r, 0, sizeof(*r));
	r->mem = mem;
	r->ring_gpa = ring_gpa;
	r->size = size;
	r->avail_wrap = r->used_wrap = true;
}

/* The AVAIL/USED pair that marks a descriptor available in lap wrap. */
static inline uint16_t vt_pring_avail_bits(bool wrap)
{
	return wrap ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
}

static inline uint16_t *vt_pring_flags_at(struct vt_pring *r, uint16_t pos)
{
	return (uint16_t *)(r->mem->host + r->ring_gpa + 16 * pos + 14);
}

/* Make the chain bufs[0, n) available with buffer id in every descriptor;
 * the head's flags are stored last (release), so a device polling from
 * another thread never sees part of a chain. Returns the head position.
 * The id is not checked: tests of a misbehaving driver reuse ids. */
static inline uint16_t vt_pring_add(struct vt_pring *r, uint16_t id,
				    const struct vt_pbuf *bufs, unsigned n)
{
	uint16_t head = r->next_avail, head_flags = 0;
	bool head_wrap = r->avail_wrap;

	for (unsigned k = 0; k < n; k++) {
		uint16_t flags = bufs[k].flags | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
		/* the head goes in marked for the other lap: not yet available */
		bool lap = k == 0 ? !head_wrap : r->avail_wrap;

		if (k == 0)
			head_flags = flags | vt_pring_avail_bits(head_wrap);
		vt_put_pdesc(r->mem, r->ring_gpa, r->next_avail, bufs[k].addr, bufs[k].len, id,
			     flags | vt_pring_avail_bits(lap));
		if (++r->next_avail == r->size) {
			r->next_avail = 0;
			r->avail_wrap = !r->avail_wrap;
		}
	}
	__atomic_store_n(vt_pring_flags_at(r, head), head_flags, __ATOMIC_RELEASE);
	r->ndescs[id] = n;
	return head;
}

/* Take the next used element: 1 with its id and written length, 0 when
 * the device has not used it yet, -1 when the id it names (in *id) is not
 * in flight with the driver (nothing is taken then). */
static inline int vt_pring_pop_used(struct vt_pring *r, uint16_t *id, uint32_t *len)
{
	uint16_t flags = __atomic_load_n(vt_pring_flags_at(r, r->next_used), __ATOMIC_ACQUIRE);
	bool avail = flags & VIRTQ_DESC_F_AVAIL, used = flags & VIRTQ_DESC_F_USED;
	struct virtq_packed_desc d;

	if (avail != used || used != r->used_wrap)
		return 0;
	d = vt_get_pdesc(r->mem, r->ring_gpa, r->next_used);
	*id = d.id;
	*len = d.len;
	if (d.id >= r->size || !r->ndescs[d.id])
		return -1;
	r->next_used += r->ndescs[d.id];
	r->ndescs[d.id] = 0;
	if (r->next_used >= r->size) {
		r->next_used -= r->size;
		r->used_wrap = !r->used_wrap;
	}
	return 1;
}

/* --- the driver's side of the modern transport ----------------------------- */

/* An MSI sink for tests that do not count interrupts. */
static inline void vt_drop_msi(struct virtio_pci *vp, uint64_t addr, uint32_t data)
{
	(void)vp;
	(void)addr;
	(void)data;
}

/* The 64 feature bits the device offers. */
static inline uint64_t vt_offered(struct virtio_pci *vp)
{
	virtio_pci_modern_write(vp, VP_COMMON_DFSELECT, 0, 4);
	uint64_t lo = virtio_pci_modern_read(vp, VP_COMMON_DF, 4);

	virtio_pci_modern_write(vp, VP_COMMON_DFSELECT, 1, 4);
	return lo | virtio_pci_modern_read(vp, VP_COMMON_DF, 4) << 32;
}

/* Write the driver's 64 feature bits, low word first. */
static inline void vt_set_features(struct virtio_pci *vp, uint64_t feat)
{
	virtio_pci_modern_write(vp, VP_COMMON_GFSELECT, 0, 4);
	virtio_pci_modern_write(vp, VP_COMMON_GF, (uint32_t)feat, 4);
	virtio_pci_modern_write(vp, VP_COMMON_GFSELECT, 1, 4);
	virtio_pci_modern_write(vp, VP_COMMON_GF, feat >> 32, 4);
}

/* From a reset device: ACKNOWLEDGE | DRIVER, feat, FEATURES_OK; returns
 * the status read back (0x0b when the device took the features). */
static inline uint8_t vt_negotiate(struct virtio_pci *vp, uint64_t feat)
{
	virtio_pci_modern_write(vp, VP_COMMON_STATUS,
				VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	vt_set_features(vp, feat);
	virtio_pci_modern_write(vp, VP_COMMON_STATUS, 0x0b, 1);
	return virtio_pci_modern_read(vp, VP_COMMON_STATUS, 1);
}

/* Queue q with size entries and its three areas, the 64-bit addresses
 * written as 32-bit halves (the avail/driver area as one 64-bit write). */
static inline void vt_queue_enable(struct virtio_pci *vp, unsigned q, unsigned size,
				   uint64_t desc, uint64_t driver, uint64_t device)
{
	virtio_pci_modern_write(vp, VP_COMMON_Q_SELECT, q, 2);
	virtio_pci_modern_write(vp, VP_COMMON_Q_SIZE, size, 2);
	virtio_pci_modern_write(vp, VP_COMMON_Q_DESCLO, desc, 4);
	virtio_pci_modern_write(vp, VP_COMMON_Q_DESCHI, desc >> 32, 4);
	virtio_pci_modern_write(vp, VP_COMMON_Q_AVAILLO, driver, 8);
	virtio_pci_modern_write(vp, VP_COMMON_Q_USEDLO, device, 4);
	virtio_pci_modern_write(vp, VP_COMMON_Q_USEDHI, device >> 32, 4);
	virtio_pci_modern_write(vp, VP_COMMON_Q_ENABLE, 1, 2);
}

/* The same with every address written as one 64-bit access. */
static inline void vt_queue_enable_wide(struct virtio_pci *vp, unsigned q, unsigned size,
					uint64_t desc, uint64_t driver, uint64_t device)
{
	virtio_pci_modern_write(vp, VP_COMMON_Q_SELECT, q, 2);
	virtio_pci_modern_write(vp, VP_COMMON_Q_SIZE, size, 2);
	virtio_pci_modern_write(vp, VP_COMMON_Q_DESCLO, desc, 8);
	virtio_pci_modern_write(vp, VP_COMMON_Q_AVAILLO, driver, 8);
	virtio_pci_modern_write(vp, VP_COMMON_Q_USEDLO, device, 8);
	virtio_pci_modern_write(vp, VP_COMMON_Q_ENABLE, 1, 2);
}

/* Notify queue q the way the vCPU's doorbell handler does. */
static inline void vt_kick(struct virtio_pci *vp, unsigned q)
{
	virtio_pci_lock(vp);
	virtio_pci_kick(vp, q);
	virtio_pci_unlock(vp);
}

#endif
