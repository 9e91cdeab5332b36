/* libFuzzer target for the virtqueues, split and packed: the input is a
 * queue setup header plus the contents of a small guest RAM holding the
 * descriptor table or ring, the rings or event suppression areas and
 * indirect tables. The device side must never read or write outside guest
 * RAM, never loop, and always either return chains whose buffers lie in
 * RAM or mark the queue broken; its packed bookkeeping (in-flight ids,
 * wrap counters) must stay consistent through pops, pushes, batched
 * fills, give-backs and notification changes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hw/virtqueue.h"

#define RAM_SIZE	0x10000

struct fuzz_header {
	uint8_t size_log2;
	uint8_t flags;		/* bit 0 event_idx, 1 indirect, 2 packed, 3 batched */
	uint16_t last_avail_idx;
	uint16_t used_idx;
	uint16_t desc_page, avail_off, used_off;	/* ring addresses */
	uint8_t rounds;
	uint8_t pad[3];		/* packed: pad[0] size tweak, pad[1] flag toggles */
} __attribute__((packed));

static void check_elem(const struct guest_memory *m, const struct virtq_elem *e)
{
	for (unsigned i = 0; i < e->n_out + e->n_in; i++) {
		const uint8_t *p = e->iov[i].iov_base;
		size_t len = e->iov[i].iov_len;

		if (!len)
			continue;
		if (p < m->host || p + len > m->host + m->ram_size || p + len < p)
			abort();
		/* Touch it, as a device would (ASan checks the range). */
		if (i >= e->n_out)
			memset(e->iov[i].iov_base, 0xa5, len);
	}
}

static void check_packed(const struct virtq *vq)
{
	if (vq->packed && !vq->broken && virtq_check_loaded(vq) < 0)
		abort();
}

static void setup_queue(struct virtq *vq, const struct fuzz_header *h)
{
	virtq_reset(vq, 256);
	vq->packed = h->flags & 4;
	vq->size = 1u << (h->size_log2 % 10);	/* 512 is rejected by virtq_map */
	if (vq->packed && (h->pad[0] & 1))
		vq->size = 1 + h->pad[0] % 300;	/* any size; over 256 rejected */
	vq->event_idx = h->flags & 1;
	vq->indirect = h->flags & 2;
	vq->last_avail_idx = h->last_avail_idx;
	vq->used_idx = h->used_idx;
	if (vq->packed && vq->size) {	/* positions inside the ring, as post_load demands */
		vq->last_avail_idx = vq->used_idx = h->last_avail_idx % vq->size;
		vq->avail_wrap = vq->used_wrap = h->used_idx & 1;
	}
	vq->desc_gpa = (uint64_t)h->desc_page << 4;
	vq->avail_gpa = h->avail_off;
	vq->used_gpa = h->used_off;
	vq->enabled = true;
}

/* One kick's worth of work: pop up to a queue's worth, complete some at
 * once, some in a batch, give some back. */
static int serve(struct virtq *vq, const struct guest_memory *mem, struct virtq_elem *e,
		 unsigned r, bool batched)
{
	unsigned popped = 0, filled = 0;
	int got = 0;

	virtq_disable_notify(vq);
	while (popped < vq->size && (got = virtq_pop(vq, e)) == 1) {
		check_elem(mem, e);
		popped++;
		if (batched)
			virtq_fill(vq, e, e->in_len, filled++);
		else if ((r + popped) % 3)
			virtq_push(vq, e, e->in_len);
		check_packed(vq);
	}
	if (batched && filled > 1 && r % 2) {
		virtq_unpop(vq, 1);	/* the last one goes back... */
		filled--;
	}
	if (batched)
		virtq_flush(vq, filled);	/* ...the others are used at once */
	check_packed(vq);
	virtq_enable_notify(vq);
	virtq_has_work(vq);
	virtq_should_notify(vq);
	check_packed(vq);
	return got;
}

/* The guest moves on between rounds: split bumps avail->idx, packed
 * flips descriptor flags. */
static void guest_moves(struct virtq *vq, const struct fuzz_header *h, unsigned r)
{
	if (!vq->desc)
		return;
	if (!vq->packed) {
		uint16_t idx = vq->avail[1];

		vq->avail[1] = idx + (uint16_t)(h->rounds + r);
		return;
	}
	for (unsigned k = 0; k < 4 && vq->size; k++) {
		volatile struct virtq_packed_desc *d =
			(volatile struct virtq_packed_desc *)vq->desc;
		unsigned i = (h->pad[1] + 7u * k + r) % vq->size;

		d[i].flags ^= (h->pad[2] & (1u << k)) ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static struct virtq_elem elem;
	static struct virtq vq;
	struct guest_memory mem = { .ram_size = RAM_SIZE, .below_4g = RAM_SIZE };
	struct fuzz_header h;
	unsigned rounds;

	if (size < sizeof(h))
		return 0;
	if (!ram)
		ram = malloc(RAM_SIZE);
	memcpy(&h, data, sizeof(h));
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + sizeof(h), size - sizeof(h) < RAM_SIZE ? size - sizeof(h) : RAM_SIZE);
	mem.host = ram;

	setup_queue(&vq, &h);
	if (virtq_map(&vq, &mem) < 0)
		return 0;
	rounds = 1 + h.rounds % 4;
	for (unsigned r = 0; r < rounds; r++) {
		if (serve(&vq, &mem, &elem, r, h.flags & 8) < 0)
			break;
		guest_moves(&vq, &h, r);
	}
	return 0;
}
