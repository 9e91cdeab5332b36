/* Virtqueues, device side: ring mapping, chain walking with indirect
 * tables, used-ring updates and EVENT_IDX suppression, for split rings and
 * (second half of the file) packed rings. The guest writes these rings
 * concurrently: every descriptor is copied once before it is checked, and
 * every index is bounded before use. */
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
	vq->avail_wrap = true;
	vq->used_wrap = true;
}

static bool is_pow2(unsigned v)
{
	return v && !(v & (v - 1));
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static int packed_map(struct virtq *vq, const struct guest_memory *mem);

int virtq_map(struct virtq *vq, const struct guest_memory *mem)
{
	uint16_t n = vq->size;

	vq->mem = mem;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	if (vq->packed)
		return packed_map(vq, mem);
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

/* Packed ring implementations of the public functions (below). */
static bool packed_has_work(const struct virtq *vq);
static void packed_update_avail_event(struct virtq *vq);
static void packed_disable_notify(struct virtq *vq);
static uint16_t packed_enable_notify(struct virtq *vq);
static int packed_pop(struct virtq *vq, struct virtq_elem *e);
static void packed_push(struct virtq *vq, const struct virtq_elem *e, uint32_t written);
static void packed_fill(struct virtq *vq, const struct virtq_elem *e, uint32_t written,
			uint16_t i);
static void packed_flush(struct virtq *vq, uint16_t n);
static void packed_unpop(struct virtq *vq, uint16_t n);
static bool packed_should_notify(struct virtq *vq);

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
	if (vq->packed)
		return packed_has_work(vq);
	return virtq_ready(vq) && avail_idx(vq) != vq->last_avail_idx;
}

void virtq_update_avail_event(struct virtq *vq)
{
	if (vq->packed) {
		packed_update_avail_event(vq);
		return;
	}
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

	if (vq->packed) {
		packed_disable_notify(vq);
		return;
	}
	if (vq->no_notify || !virtq_ready(vq))
		return;
	vq->no_notify = true;
	if (vq->event_idx)
		return;		/* avail_event just stays behind */
	flags = used_u16(vq, USED_FLAGS);
	__atomic_store_n(flags, *flags | VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

void virtq_suppress_kicks(struct virtq *vq)
{
	virtq_disable_notify(vq);
	if (vq->packed || !vq->event_idx || !virtq_ready(vq))
		return;
	/* an index the driver has passed: no add from now on reaches it */
	__atomic_store_n(used_u16(vq, USED_RING + 8ull * vq->size),
			 (uint16_t)(vq->last_avail_idx - 1), __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint16_t virtq_enable_notify(struct virtq *vq)
{
	volatile uint16_t *p;
	uint16_t idx;

	if (vq->packed)
		return packed_enable_notify(vq);
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

/* Checks shared by split and packed indirect descriptors (both kinds of
 * table entry are 16 bytes): negotiated, no NEXT, a whole number of
 * entries, at most the queue size, inside guest RAM. Returns the mapped
 * table and its entry count in *n, or NULL (queue marked broken). */
static const void *map_indirect_table(struct chain_walk *w, uint64_t addr, uint32_t len,
				      uint16_t flags, unsigned *n)
{
	struct virtq *vq = w->vq;
	const void *table;

	if (!vq->indirect) {
		vq_fail(vq, "chain %u: indirect descriptor not negotiated", w->e->head);
		return NULL;
	}
	if (flags & VIRTQ_DESC_F_NEXT) {
		vq_fail(vq, "chain %u: indirect descriptor with NEXT", w->e->head);
		return NULL;
	}
	if (!len || len % 16) {
		vq_fail(vq, "chain %u: indirect table length %u is not a multiple of 16",
			w->e->head, len);
		return NULL;
	}
	*n = len / 16;
	if (*n > vq->size) {
		vq_fail(vq, "chain %u: indirect table of %u entries exceeds queue size %u",
			w->e->head, *n, vq->size);
		return NULL;
	}
	table = gpa_to_hva(vq->mem, addr, len);
	if (!table)
		vq_fail(vq, "chain %u: indirect table 0x%llx+%u outside guest RAM", w->e->head,
			(unsigned long long)addr, len);
	return table;
}

static int walk_indirect(struct chain_walk *w, const struct virtq_desc *d)
{
	struct virtq *vq = w->vq;
	const struct virtq_desc *table;
	struct virtq_desc cur;
	unsigned n, i = 0;

	_Static_assert(sizeof(struct virtq_desc) == 16, "split descriptor size");
	table = map_indirect_table(w, d->addr, d->len, d->flags, &n);
	if (!table)
		return -EINVAL;
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

	if (vq->packed)
		return packed_pop(vq, e);
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

	if (vq->packed) {
		packed_push(vq, e, written);
		return;
	}
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

	if (vq->packed) {
		packed_fill(vq, e, written, i);
		return;
	}
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
	if (vq->packed) {
		packed_flush(vq, n);
		return;
	}
	if (!virtq_ready(vq))
		return;
	vq->used_idx += n;
	/* The elements must be visible before the index that publishes them. */
	__atomic_store_n(used_u16(vq, USED_IDX), vq->used_idx, __ATOMIC_RELEASE);
	vq->inflight = vq->inflight > n ? vq->inflight - n : 0;
}

void virtq_unpop(struct virtq *vq, uint16_t n)
{
	if (vq->packed) {
		packed_unpop(vq, n);
		return;
	}
	if (n > vq->inflight)
		n = vq->inflight;
	vq->last_avail_idx -= n;
	vq->inflight -= n;
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old, new_idx;
	bool valid;

	if (vq->packed)
		return packed_should_notify(vq);
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

/* --- packed rings (virtio 1.1+ section 2.8) ------------------------------- */

/* Descriptor i of the ring, and the event suppression areas. */
static volatile struct virtq_packed_desc *packed_ring(const struct virtq *vq)
{
	return (volatile struct virtq_packed_desc *)vq->desc;
}

static volatile struct virtq_event *driver_event(const struct virtq *vq)
{
	return (volatile struct virtq_event *)vq->avail;
}

static volatile struct virtq_event *device_event(const struct virtq *vq)
{
	return (volatile struct virtq_event *)vq->used;
}

static int packed_map(struct virtq *vq, const struct guest_memory *mem)
{
	uint16_t n = vq->size;
	uint64_t ev = virtq_event_bytes();

	if (!n || n > vq->max_size)
		return vq_fail(vq, "packed queue size %u is not in 1..%u", n, vq->max_size);
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 3) || (vq->used_gpa & 3))
		return vq_fail(vq, "misaligned packed ring (desc 0x%llx driver 0x%llx "
			       "device 0x%llx)", (unsigned long long)vq->desc_gpa,
			       (unsigned long long)vq->avail_gpa,
			       (unsigned long long)vq->used_gpa);
	/* The device area is the device's alone: our event writes must not
	 * land in descriptors or in the driver's event structure. */
	if (ranges_overlap(vq->used_gpa, ev, vq->desc_gpa, virtq_desc_bytes(n)) ||
	    ranges_overlap(vq->used_gpa, ev, vq->avail_gpa, ev))
		return vq_fail(vq, "device area 0x%llx overlaps the descriptor ring or driver area",
			       (unsigned long long)vq->used_gpa);
	vq->desc = gpa_to_hva(mem, vq->desc_gpa, virtq_desc_bytes(n));
	vq->avail = gpa_to_hva(mem, vq->avail_gpa, ev);
	vq->used = gpa_to_hva(mem, vq->used_gpa, ev);
	if (!vq->desc || !vq->avail || !vq->used) {
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		return vq_fail(vq, "packed ring outside guest RAM (desc 0x%llx driver 0x%llx "
			       "device 0x%llx)", (unsigned long long)vq->desc_gpa,
			       (unsigned long long)vq->avail_gpa,
			       (unsigned long long)vq->used_gpa);
	}
	return 0;
}

/* A descriptor is available when AVAIL matches the wrap counter and USED
 * does not. */
static bool desc_is_avail(uint16_t flags, bool wrap)
{
	return !!(flags & VIRTQ_DESC_F_AVAIL) == wrap && !!(flags & VIRTQ_DESC_F_USED) != wrap;
}

static uint16_t ring_flags_acquire(const struct virtq *vq, uint16_t i)
{
	return __atomic_load_n(&packed_ring(vq)[i].flags, __ATOMIC_ACQUIRE);
}

static void read_packed_desc(const volatile struct virtq_packed_desc *table, unsigned i,
			     struct virtq_packed_desc *out)
{
	memcpy(out, (const void *)&table[i], sizeof(*out));
}

/* Move a ring position on by n descriptors (n <= size). */
static void ring_advance(const struct virtq *vq, uint16_t *pos, bool *wrap, uint16_t n)
{
	unsigned p = *pos + n;

	if (p >= vq->size) {
		p -= vq->size;
		*wrap = !*wrap;
	}
	*pos = p;
}

static void ring_rewind(const struct virtq *vq, uint16_t *pos, bool *wrap, uint16_t n)
{
	if (*pos < n) {
		*pos = *pos + vq->size - n;
		*wrap = !*wrap;
	} else {
		*pos -= n;
	}
}

static bool packed_has_work(const struct virtq *vq)
{
	return virtq_ready(vq) &&
	       desc_is_avail(ring_flags_acquire(vq, vq->last_avail_idx), vq->avail_wrap);
}

static int add_packed_segment(struct chain_walk *w, const struct virtq_packed_desc *p)
{
	struct virtq_desc d = { .addr = p->addr, .len = p->len,
				.flags = p->flags & VIRTQ_DESC_F_WRITE };

	return add_segment(w, &d);
}

/* A packed indirect table: len / 16 descriptors in a row; only WRITE
 * means something in them (NEXT and the id are ignored), INDIRECT is a
 * nesting the spec forbids. */
static int walk_packed_indirect(struct chain_walk *w, const struct virtq_packed_desc *d)
{
	struct virtq *vq = w->vq;
	const struct virtq_packed_desc *table;
	struct virtq_packed_desc cur;
	unsigned n;

	_Static_assert(sizeof(struct virtq_packed_desc) == 16, "packed descriptor size");
	table = map_indirect_table(w, d->addr, d->len, d->flags, &n);
	if (!table)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		read_packed_desc(table, i, &cur);
		if (cur.flags & VIRTQ_DESC_F_INDIRECT)
			return vq_fail(vq, "chain %u: nested indirect table", w->e->head);
		if (add_packed_segment(w, &cur) < 0)
			return -EINVAL;
	}
	return 0;
}

/* Walk the chain starting at *pos: fills e, returns the ring descriptors
 * it took (1 for an indirect one), moves pos and wrap past it and sets
 * id to its buffer id; or -EINVAL. */
static int walk_packed_chain(struct virtq *vq, struct virtq_elem *e, uint16_t *pos, bool *wrap,
			     uint16_t *id)
{
	struct chain_walk w = { .vq = vq, .e = e };
	struct virtq_packed_desc cur;
	unsigned count = 0;

	for (;;) {
		if (++count > vq->size)
			return vq_fail(vq, "chain %u: longer than the queue size", e->head);
		read_packed_desc(packed_ring(vq), *pos, &cur);
		/* The driver makes the whole chain available, head last. */
		if (count > 1 && !desc_is_avail(cur.flags, *wrap))
			return vq_fail(vq, "chain %u: descriptor %u is not available", e->head,
				       *pos);
		ring_advance(vq, pos, wrap, 1);
		if (cur.flags & VIRTQ_DESC_F_INDIRECT) {
			if (count != 1)
				return vq_fail(vq, "chain %u: indirect descriptor inside a chain",
					       e->head);
			if (walk_packed_indirect(&w, &cur) < 0)
				return -EINVAL;
			*id = cur.id;
			return count;
		}
		if (add_packed_segment(&w, &cur) < 0)
			return -EINVAL;
		if (!(cur.flags & VIRTQ_DESC_F_NEXT)) {
			*id = cur.id;	/* the buffer id is in the last descriptor */
			return count;
		}
	}
}

static int packed_pop(struct virtq *vq, struct virtq_elem *e)
{
	uint16_t pos = vq->last_avail_idx, id = 0;
	bool wrap = vq->avail_wrap;
	int n;

	if (!virtq_ready(vq))
		return 0;
	if (!desc_is_avail(ring_flags_acquire(vq, pos), wrap))
		return 0;
	if (vq->inflight >= vq->size)
		return vq_fail(vq, "more than %u requests in flight", vq->size);
	e->head = pos;		/* for messages until the id is known */
	e->n_out = e->n_in = 0;
	e->out_len = e->in_len = 0;
	n = walk_packed_chain(vq, e, &pos, &wrap, &id);
	if (n < 0)
		return -EINVAL;
	if (id >= vq->size)
		return vq_fail(vq, "chain %u: buffer id %u out of queue size %u", e->head, id,
			       vq->size);
	if (vq->packed_ndescs[id])
		return vq_fail(vq, "chain %u: buffer id %u reused while in flight", e->head, id);
	vq->packed_ndescs[id] = n;
	vq->pop_ids[vq->pop_seq++ % VIRTQ_MAX_SIZE] = id;
	e->head = id;
	vq->last_avail_idx = pos;
	vq->avail_wrap = wrap;
	vq->inflight++;
	if (!vq->no_notify)
		packed_update_avail_event(vq);
	return 1;
}

static void packed_unpop(struct virtq *vq, uint16_t n)
{
	while (n-- && vq->inflight) {
		uint16_t id = vq->pop_ids[--vq->pop_seq % VIRTQ_MAX_SIZE];
		uint16_t nd = id < vq->size ? vq->packed_ndescs[id] : 0;

		if (!nd)
			break;		/* already pushed: not ours to give back */
		ring_rewind(vq, &vq->last_avail_idx, &vq->avail_wrap, nd);
		vq->packed_ndescs[id] = 0;
		vq->inflight--;
	}
}

/* Write one used descriptor at ring position pos; its flags (which hand
 * it over) are stored last, with release ordering. */
static void write_used_desc(struct virtq *vq, uint16_t pos, bool wrap, uint16_t id,
			    uint32_t len)
{
	volatile struct virtq_packed_desc *d = &packed_ring(vq)[pos];
	uint16_t flags = wrap ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;

	if (len)
		flags |= VIRTQ_DESC_F_WRITE;
	__atomic_store_n(&d->id, id, __ATOMIC_RELAXED);
	__atomic_store_n(&d->len, len, __ATOMIC_RELAXED);
	__atomic_store_n(&d->flags, flags, __ATOMIC_RELEASE);
}

/* Ring descriptors of in-flight buffer id, or 0 (with the queue marked
 * broken: the device pushed something it does not own). */
static uint16_t inflight_ndescs(struct virtq *vq, uint16_t id)
{
	uint16_t nd = id < vq->size ? vq->packed_ndescs[id] : 0;

	if (!nd)
		vq_fail(vq, "device returned buffer id %u that is not in flight", id);
	return nd;
}

static void used_advance(struct virtq *vq, uint16_t id, uint16_t nd)
{
	bool wrap = vq->used_wrap;

	ring_advance(vq, &vq->used_idx, &vq->used_wrap, nd);
	/* Event offsets compare within one lap: signal on every wrap. */
	if (wrap != vq->used_wrap)
		vq->signalled_used_valid = false;
	vq->packed_ndescs[id] = 0;
	if (vq->inflight)
		vq->inflight--;
}

static void packed_push(struct virtq *vq, const struct virtq_elem *e, uint32_t written)
{
	uint16_t nd;

	if (!virtq_ready(vq))
		return;
	nd = inflight_ndescs(vq, e->head);
	if (!nd)
		return;
	if (written > e->in_len)
		written = e->in_len;
	write_used_desc(vq, vq->used_idx, vq->used_wrap, e->head, written);
	used_advance(vq, e->head, nd);
}

/* Fills are kept aside until the flush: a device may still give the
 * buffers back (virtq_unpop) and they are live descriptors until then. */
static void packed_fill(struct virtq *vq, const struct virtq_elem *e, uint32_t written,
			uint16_t i)
{
	if (!virtq_ready(vq) || i >= VIRTQ_MAX_SIZE || i > vq->n_filled)
		return;
	if (written > e->in_len)
		written = e->in_len;
	vq->fill_ids[i] = e->head;
	vq->fill_lens[i] = written;
	vq->n_filled = i + 1;
}

/* Publish fills 0..n-1 in ring order; the first one's flags go last so
 * the driver sees the batch at once. */
static void packed_flush(struct virtq *vq, uint16_t n)
{
	uint16_t pos = vq->used_idx, first_pos = pos;
	bool wrap = vq->used_wrap, first_wrap = wrap;

	if (!virtq_ready(vq))
		return;
	if (n > vq->n_filled)
		n = vq->n_filled;
	for (uint16_t i = 0; i < n; i++) {
		uint16_t id = vq->fill_ids[i], nd = inflight_ndescs(vq, id);

		if (!nd)
			return;
		if (i)
			write_used_desc(vq, pos, wrap, id, vq->fill_lens[i]);
		ring_advance(vq, &pos, &wrap, nd);
	}
	if (n)
		write_used_desc(vq, first_pos, first_wrap, vq->fill_ids[0], vq->fill_lens[0]);
	for (uint16_t i = 0; i < n; i++)
		used_advance(vq, vq->fill_ids[i], vq->packed_ndescs[vq->fill_ids[i]]);
	vq->n_filled = 0;
}

static void set_device_event(struct virtq *vq, uint16_t off_wrap, uint16_t flags)
{
	volatile struct virtq_event *ev = device_event(vq);

	__atomic_store_n(&ev->off_wrap, off_wrap, __ATOMIC_RELAXED);
	__atomic_store_n(&ev->flags, flags, __ATOMIC_RELEASE);
	/* Visible before we look at the descriptor ring again. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static uint16_t off_wrap(uint16_t pos, bool wrap)
{
	return pos | (wrap ? VIRTQ_EVENT_WRAP : 0);
}

static void packed_update_avail_event(struct virtq *vq)
{
	if (!vq->event_idx || !virtq_ready(vq))
		return;
	set_device_event(vq, off_wrap(vq->last_avail_idx, vq->avail_wrap), VIRTQ_EVENT_F_DESC);
}

static void packed_disable_notify(struct virtq *vq)
{
	if (vq->no_notify || !virtq_ready(vq))
		return;
	vq->no_notify = true;
	set_device_event(vq, 0, VIRTQ_EVENT_F_DISABLE);
}

/* Enable kicks for descriptors beyond those available now. Returns the
 * first position not available (after chains popped and given back), so
 * "nothing new" compares equal to last_avail_idx as it was. */
static uint16_t packed_enable_notify(struct virtq *vq)
{
	uint16_t pos = vq->last_avail_idx;
	bool wrap = vq->avail_wrap;

	vq->no_notify = false;
	if (!virtq_ready(vq))
		return pos;
	if (!vq->event_idx)
		set_device_event(vq, 0, VIRTQ_EVENT_F_ENABLE);
	for (unsigned n = 0; n < vq->size && desc_is_avail(ring_flags_acquire(vq, pos), wrap);
	     n++)
		ring_advance(vq, &pos, &wrap, 1);
	/* One made available after the scan is seen by the caller's
	 * virtq_has_work check (the store is fenced). */
	if (vq->event_idx)
		set_device_event(vq, off_wrap(pos, wrap), VIRTQ_EVENT_F_DESC);
	return pos;
}

static bool packed_should_notify(struct virtq *vq)
{
	uint16_t old, new_idx, flags, event;
	bool valid;

	if (!virtq_ready(vq))
		return false;
	/* Our used descriptor stores must be visible before we read the
	 * driver's event structure. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	flags = __atomic_load_n(&driver_event(vq)->flags, __ATOMIC_RELAXED);
	event = __atomic_load_n(&driver_event(vq)->off_wrap, __ATOMIC_RELAXED);
	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	new_idx = vq->used_idx;
	vq->signalled_used = new_idx;
	vq->signalled_used_valid = true;
	if (flags == VIRTQ_EVENT_F_DISABLE)
		return false;
	if (flags != VIRTQ_EVENT_F_DESC || !vq->event_idx || !valid)
		return true;
	/* An offset from the other lap lies one ring behind. */
	if (!!(event & VIRTQ_EVENT_WRAP) != vq->used_wrap)
		return virtq_need_event((uint16_t)((event & ~VIRTQ_EVENT_WRAP) - vq->size),
					new_idx, old);
	return virtq_need_event(event & ~VIRTQ_EVENT_WRAP, new_idx, old);
}

/* --- migration ------------------------------------------------------------ */

int virtq_check_loaded(const struct virtq *vq)
{
	unsigned ids = 0, slots = 0, dist;

	if (vq->size > vq->max_size || vq->inflight > vq->size)
		return -EINVAL;
	if (!vq->packed) {
		for (unsigned i = 0; i < VIRTQ_MAX_SIZE; i++)
			if (vq->packed_ndescs[i])
				return -EINVAL;
		return 0;
	}
	if (vq->enabled && !vq->size)
		return -EINVAL;
	if (vq->size && (vq->last_avail_idx >= vq->size || vq->used_idx >= vq->size ||
			 vq->signalled_used >= vq->size))
		return -EINVAL;
	for (unsigned i = 0; i < VIRTQ_MAX_SIZE; i++) {
		if (!vq->packed_ndescs[i])
			continue;
		if (i >= vq->size || vq->packed_ndescs[i] > vq->size)
			return -EINVAL;
		ids++;
		slots += vq->packed_ndescs[i];
	}
	if (ids != vq->inflight || slots > vq->size)
		return -EINVAL;
	/* In-flight chains are exactly the descriptors between the used and
	 * the avail position (counted over two laps for the wrap counters). */
	dist = (vq->last_avail_idx + (vq->avail_wrap ? 0u : vq->size) + 2u * vq->size -
		vq->used_idx - (vq->used_wrap ? 0u : vq->size)) % (2u * (vq->size ? vq->size : 1));
	return dist == slots ? 0 : -EINVAL;
}
