/* Split virtqueue, device side: ring mapping, chain walking with indirect
 * tables, used-ring updates and EVENT_IDX suppression. The guest writes
 * these rings concurrently: every descriptor is copied once before it is
 * checked, and every index is bounded before use. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "hw/virtqueue.h"

/* Offsets inside the rings (in bytes). */
#define AVAIL_FLAGS	0
#define AVAIL_IDX	2
#define AVAIL_RING	4
#define USED_FLAGS	0
#define USED_IDX	2
#define USED_RING	4

static int vq_fail(struct virtq *vq, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int vq_fail(struct virtq *vq, const char *fmt, ...)
{
	va_list ap;

	if (!vq->broken) {
		va_start(ap, fmt);
		vsnprintf(vq->error, sizeof(vq->error), fmt, ap);
		va_end(ap);
	}
	vq->broken = true;
	return -EINVAL;
}

void virtq_reset(struct virtq *vq, uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->max_size = max_size;
	vq->size = max_size;
	vq->msix_vector = 0xffff;
}

static bool is_pow2(unsigned v)
{
	return v && !(v & (v - 1));
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int virtq_map(struct virtq *vq, const struct guest_memory *mem)
{
	uint16_t n = vq->size;

	vq->mem = mem;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	if (!is_pow2(n) || n > vq->max_size)
		return vq_fail(vq, "queue size %u is not a power of two up to %u", n,
			       vq->max_size);
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return vq_fail(vq, "misaligned rings (desc 0x%llx avail 0x%llx used 0x%llx)",
			       (unsigned long long)vq->desc_gpa,
			       (unsigned long long)vq->avail_gpa,
			       (unsigned long long)vq->used_gpa);
	/* The used ring is the device's: if it overlapped what the driver
	 * writes, our own stores would make up new requests forever. */
	if (ranges_overlap(vq->used_gpa, virtq_used_bytes(n), vq->desc_gpa, virtq_desc_bytes(n)) ||
	    ranges_overlap(vq->used_gpa, virtq_used_bytes(n), vq->avail_gpa, virtq_avail_bytes(n)))
		return vq_fail(vq, "used ring 0x%llx overlaps the descriptor table or avail ring",
			       (unsigned long long)vq->used_gpa);
	vq->desc = gpa_to_hva(mem, vq->desc_gpa, virtq_desc_bytes(n));
	vq->avail = gpa_to_hva(mem, vq->avail_gpa, virtq_avail_bytes(n));
	vq->used = gpa_to_hva(mem, vq->used_gpa, virtq_used_bytes(n));
	if (!vq->desc || !vq->avail || !vq->used) {
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		return vq_fail(vq, "rings outside guest RAM (desc 0x%llx avail 0x%llx used 0x%llx)",
			       (unsigned long long)vq->desc_gpa,
			       (unsigned long long)vq->avail_gpa,
			       (unsigned long long)vq->used_gpa);
	}
	return 0;
}

void virtq_set_legacy_pfn(struct virtq *vq, uint32_t pfn)
{
	uint64_t base = (uint64_t)pfn * VIRTQ_LEGACY_ALIGN;
	uint64_t avail = base + virtq_desc_bytes(vq->size);
	uint64_t used = avail + virtq_avail_bytes(vq->size);

	vq->desc_gpa = base;
	vq->avail_gpa = avail;
	vq->used_gpa = (used + VIRTQ_LEGACY_ALIGN - 1) & ~(uint64_t)(VIRTQ_LEGACY_ALIGN - 1);
}

bool virtq_ready(const struct virtq *vq)
{
	return vq->enabled && vq->desc && !vq->broken;
}

/* --- ring accessors ------------------------------------------------------ */

static uint16_t avail_idx(const struct virtq *vq)
{
	return __atomic_load_n(&vq->avail[AVAIL_IDX / 2], __ATOMIC_ACQUIRE);
}

static uint16_t avail_flags(const struct virtq *vq)
{
	return __atomic_load_n(&vq->avail[AVAIL_FLAGS / 2], __ATOMIC_RELAXED);
}

static uint16_t avail_ring(const struct virtq *vq, uint16_t i)
{
	return __atomic_load_n(&vq->avail[AVAIL_RING / 2 + i], __ATOMIC_RELAXED);
}

static uint16_t used_event(const struct virtq *vq)
{
	return __atomic_load_n(&vq->avail[AVAIL_RING / 2 + vq->size], __ATOMIC_RELAXED);
}

static volatile uint16_t *used_u16(const struct virtq *vq, uint64_t off)
{
	return (volatile uint16_t *)(vq->used + off);
}

bool virtq_has_work(const struct virtq *vq)
{
	return virtq_ready(vq) && avail_idx(vq) != vq->last_avail_idx;
}

void virtq_update_avail_event(struct virtq *vq)
{
	if (!vq->event_idx || !virtq_ready(vq))
		return;
	__atomic_store_n(used_u16(vq, USED_RING + 8ull * vq->size), vq->last_avail_idx,
			 __ATOMIC_RELEASE);
	/* The store must be visible before we look at avail->idx again. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void virtq_disable_notify(struct virtq *vq)
{
	volatile uint16_t *flags;

	if (vq->no_notify || !virtq_ready(vq))
		return;
	vq->no_notify = true;
	if (vq->event_idx)
		return;		/* avail_event just stays behind */
	flags = used_u16(vq, USED_FLAGS);
	__atomic_store_n(flags, *flags | VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

uint16_t virtq_enable_notify(struct virtq *vq)
{
	volatile uint16_t *p;
	uint16_t idx;

	vq->no_notify = false;
	if (!virtq_ready(vq))
		return vq->last_avail_idx;
	idx = avail_idx(vq);
	if (vq->event_idx) {
		p = used_u16(vq, USED_RING + 8ull * vq->size);
		__atomic_store_n(p, idx, __ATOMIC_RELAXED);
	} else {
		p = used_u16(vq, USED_FLAGS);
		__atomic_store_n(p, *p & ~VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
	}
	/* Visible before the caller looks at avail->idx again. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return idx;
}

/* --- chain walking ------------------------------------------------------- */

struct chain_walk {
	struct virtq *vq;
	struct virtq_elem *e;
	unsigned count;		/* descriptors seen, direct and indirect */
	bool seen_write;
};

static int add_segment(struct chain_walk *w, const struct virtq_desc *d)
{
	struct virtq_elem *e = w->e;
	bool write = d->flags & VIRTQ_DESC_F_WRITE;
	void *hva = NULL;
	unsigned n;

	if (!write && w->seen_write)
		return vq_fail(w->vq, "chain %u: readable descriptor after a writable one",
			       e->head);
	w->seen_write |= write;
	if (d->len) {
		hva = gpa_to_hva(w->vq->mem, d->addr, d->len);
		if (!hva)
			return vq_fail(w->vq, "chain %u: buffer 0x%llx+%u outside guest RAM",
				       e->head, (unsigned long long)d->addr, d->len);
	}
	n = e->n_out + e->n_in;
	if (n >= VIRTQ_MAX_SIZE)
		return vq_fail(w->vq, "chain %u: too many segments", e->head);
	e->iov[n].iov_base = hva;
	e->iov[n].iov_len = d->len;
	if (write) {
		e->n_in++;
		e->in_len += d->len;
	} else {
		e->n_out++;
		e->out_len += d->len;
	}
	return 0;
}

/* Copy descriptor i of table[0..n) once, so later checks see one value. */
static void read_desc(const struct virtq_desc *table, unsigned i, struct virtq_desc *out)
{
	memcpy(out, (const void *)&table[i], sizeof(*out));
}

static int walk_indirect(struct chain_walk *w, const struct virtq_desc *d)
{
	struct virtq *vq = w->vq;
	const struct virtq_desc *table;
	struct virtq_desc cur;
	unsigned n, i = 0;

	if (!vq->indirect)
		return vq_fail(vq, "chain %u: indirect descriptor not negotiated", w->e->head);
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return vq_fail(vq, "chain %u: indirect descriptor with NEXT", w->e->head);
	if (!d->len || d->len % sizeof(struct virtq_desc))
		return vq_fail(vq, "chain %u: indirect table length %u is not a multiple of 16",
			       w->e->head, d->len);
	n = d->len / sizeof(struct virtq_desc);
	if (n > vq->size)
		return vq_fail(vq, "chain %u: indirect table of %u entries exceeds queue size %u",
			       w->e->head, n, vq->size);
	table = gpa_to_hva(vq->mem, d->addr, d->len);
	if (!table)
		return vq_fail(vq, "chain %u: indirect table 0x%llx+%u outside guest RAM",
			       w->e->head, (unsigned long long)d->addr, d->len);
	for (;;) {
		if (++w->count > vq->size)
			return vq_fail(vq, "chain %u: longer than the queue size (loop?)",
				       w->e->head);
		read_desc(table, i, &cur);
		if (cur.flags & VIRTQ_DESC_F_INDIRECT)
			return vq_fail(vq, "chain %u: nested indirect table", w->e->head);
		if (add_segment(w, &cur) < 0)
			return -EINVAL;
		if (!(cur.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (cur.next >= n)
			return vq_fail(vq, "chain %u: indirect next %u out of %u", w->e->head,
				       cur.next, n);
		i = cur.next;
	}
}

static int walk_chain(struct virtq *vq, struct virtq_elem *e)
{
	struct chain_walk w = { .vq = vq, .e = e };
	struct virtq_desc cur;
	unsigned i = e->head;

	for (;;) {
		if (++w.count > vq->size)
			return vq_fail(vq, "chain %u: longer than the queue size (loop?)", e->head);
		read_desc(vq->desc, i, &cur);
		if (cur.flags & VIRTQ_DESC_F_INDIRECT) {
			if (w.count != 1 || e->n_out + e->n_in)
				return vq_fail(vq, "chain %u: indirect descriptor inside a chain",
					       e->head);
			return walk_indirect(&w, &cur);
		}
		if (add_segment(&w, &cur) < 0)
			return -EINVAL;
		if (!(cur.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (cur.next >= vq->size)
			return vq_fail(vq, "chain %u: next %u out of queue size %u", e->head,
				       cur.next, vq->size);
		i = cur.next;
	}
}

int virtq_pop(struct virtq *vq, struct virtq_elem *e)
{
	uint16_t idx, pending, head;

	if (!virtq_ready(vq))
		return 0;
	idx = avail_idx(vq);
	pending = idx - vq->last_avail_idx;
	if (pending > vq->size)
		return vq_fail(vq, "avail idx %u is %u ahead of %u (queue size %u)", idx, pending,
			       vq->last_avail_idx, vq->size);
	if (!pending)
		return 0;
	if (vq->inflight >= vq->size)
		return vq_fail(vq, "more than %u requests in flight", vq->size);
	head = avail_ring(vq, vq->last_avail_idx & (vq->size - 1));
	if (head >= vq->size)
		return vq_fail(vq, "avail ring head %u out of queue size %u", head, vq->size);
	e->head = head;
	e->n_out = e->n_in = 0;
	e->out_len = e->in_len = 0;
	if (walk_chain(vq, e) < 0)
		return -EINVAL;
	vq->last_avail_idx++;
	vq->inflight++;
	if (!vq->no_notify)
		virtq_update_avail_event(vq);
	return 1;
}

void virtq_push(struct virtq *vq, const struct virtq_elem *e, uint32_t written)
{
	uint64_t slot;

	if (!virtq_ready(vq))
		return;
	if (written > e->in_len)
		written = e->in_len;
	slot = USED_RING + 8ull * (vq->used_idx & (vq->size - 1));
	__atomic_store_n((volatile uint32_t *)(vq->used + slot), e->head, __ATOMIC_RELAXED);
	__atomic_store_n((volatile uint32_t *)(vq->used + slot + 4), written, __ATOMIC_RELAXED);
	vq->used_idx++;
	/* The element must be visible before the index that publishes it. */
	__atomic_store_n(used_u16(vq, USED_IDX), vq->used_idx, __ATOMIC_RELEASE);
	if (vq->inflight)
		vq->inflight--;
}

void virtq_fill(struct virtq *vq, const struct virtq_elem *e, uint32_t written, uint16_t i)
{
	uint64_t slot;

	if (!virtq_ready(vq))
		return;
	if (written > e->in_len)
		written = e->in_len;
	slot = USED_RING + 8ull * ((uint16_t)(vq->used_idx + i) & (vq->size - 1));
	__atomic_store_n((volatile uint32_t *)(vq->used + slot), e->head, __ATOMIC_RELAXED);
	__atomic_store_n((volatile uint32_t *)(vq->used + slot + 4), written, __ATOMIC_RELAXED);
}

void virtq_flush(struct virtq *vq, uint16_t n)
{
	if (!virtq_ready(vq))
		return;
	vq->used_idx += n;
	/* The elements must be visible before the index that publishes them. */
	__atomic_store_n(used_u16(vq, USED_IDX), vq->used_idx, __ATOMIC_RELEASE);
	vq->inflight = vq->inflight > n ? vq->inflight - n : 0;
}

void virtq_unpop(struct virtq *vq, uint16_t n)
{
	if (n > vq->inflight)
		n = vq->inflight;
	vq->last_avail_idx -= n;
	vq->inflight -= n;
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old, new_idx;
	bool valid;

	if (!virtq_ready(vq))
		return false;
	/* Our used->idx store must be visible before we read used_event. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(avail_flags(vq) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	new_idx = vq->used_idx;
	vq->signalled_used = new_idx;
	vq->signalled_used_valid = true;
	return !valid || virtq_need_event(used_event(vq), new_idx, old);
}
