/* libFuzzer target for the split virtqueue: the input is a queue setup
 * header plus the contents of a small guest RAM holding the descriptor
 * table, the rings and indirect tables. The device side must never read
 * or write outside guest RAM, never loop, and always either return chains
 * whose buffers lie in RAM or mark the queue broken. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hw/virtqueue.h"

#define RAM_SIZE	0x10000

struct fuzz_header {
	uint8_t size_log2;
	uint8_t flags;		/* bit 0 event_idx, bit 1 indirect */
	uint16_t last_avail_idx;
	uint16_t used_idx;
	uint16_t desc_page, avail_off, used_off;	/* ring addresses */
	uint8_t rounds;
	uint8_t pad[3];
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static struct virtq_elem elem;
	struct guest_memory mem = { .ram_size = RAM_SIZE, .below_4g = RAM_SIZE };
	struct fuzz_header h;
	struct virtq vq;
	unsigned rounds;

	if (size < sizeof(h))
		return 0;
	if (!ram)
		ram = malloc(RAM_SIZE);
	memcpy(&h, data, sizeof(h));
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + sizeof(h), size - sizeof(h) < RAM_SIZE ? size - sizeof(h) : RAM_SIZE);
	mem.host = ram;

	virtq_reset(&vq, 256);
	vq.size = 1u << (h.size_log2 % 10);	/* 512 is rejected by virtq_map */
	vq.event_idx = h.flags & 1;
	vq.indirect = h.flags & 2;
	vq.last_avail_idx = h.last_avail_idx;
	vq.used_idx = h.used_idx;
	vq.desc_gpa = (uint64_t)h.desc_page << 4;
	vq.avail_gpa = h.avail_off;
	vq.used_gpa = h.used_off;
	vq.enabled = true;
	if (virtq_map(&vq, &mem) < 0)
		return 0;
	rounds = 1 + h.rounds % 4;
	for (unsigned r = 0; r < rounds; r++) {
		int got = 0;
		unsigned popped = 0;

		/* A budget per round, as devices have per kick: buffers may
		 * overlap the avail ring, so our writes can make up requests. */
		while (popped < vq.size && (got = virtq_pop(&vq, &elem)) == 1) {
			check_elem(&mem, &elem);
			popped++;
			if ((r + popped) % 3)
				virtq_push(&vq, &elem, elem.in_len);
		}
		virtq_should_notify(&vq);
		if (got < 0)
			break;
		/* The guest moves its index on between rounds. */
		if (vq.avail) {
			uint16_t idx = vq.avail[1];

			vq.avail[1] = idx + (uint16_t)(h.rounds + r);
		}
	}
	return 0;
}
