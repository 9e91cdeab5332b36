/* Unit tests for the split virtqueue (hw/virtqueue.c) over a fake guest
 * memory: normal and indirect chains, EVENT_IDX arithmetic, 16-bit index
 * wrap-around, and every malformed input the device must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "hw/virtqueue.h"

#define RAM_SIZE	(1u << 20)
#define QSIZE		8
#define DESC_GPA	0x1000
#define AVAIL_GPA	0x2000
#define USED_GPA	0x3000
#define BUF_GPA		0x10000
#define TABLE_GPA	0x8000

struct fixture {
	struct guest_memory mem;
	struct virtq vq;
	struct virtq_elem e;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->mem.host = calloc(1, RAM_SIZE);
	f->mem.ram_size = RAM_SIZE;
	f->mem.below_4g = RAM_SIZE;
	virtq_reset(&f->vq, 256);
	f->vq.size = QSIZE;
	f->vq.desc_gpa = DESC_GPA;
	f->vq.avail_gpa = AVAIL_GPA;
	f->vq.used_gpa = USED_GPA;
	f->vq.enabled = true;
	f->vq.indirect = true;
	assert_int_equal(virtq_map(&f->vq, &f->mem), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->mem.host);
	free(f);
	return 0;
}

static uint8_t *gpa(struct fixture *f, uint64_t a)
{
	return f->mem.host + a;
}

static void set_desc_at(struct fixture *f, uint64_t table, unsigned i, uint64_t addr,
			uint32_t len, uint16_t flags, uint16_t next)
{
	struct virtq_desc d = { addr, len, flags, next };

	memcpy(gpa(f, table + 16 * i), &d, sizeof(d));
}

static void set_desc(struct fixture *f, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	set_desc_at(f, DESC_GPA, i, addr, len, flags, next);
}

static uint16_t rd16(struct fixture *f, uint64_t a)
{
	uint16_t v;

	memcpy(&v, gpa(f, a), 2);
	return v;
}

static uint32_t rd32(struct fixture *f, uint64_t a)
{
	uint32_t v;

	memcpy(&v, gpa(f, a), 4);
	return v;
}

static void wr16(struct fixture *f, uint64_t a, uint16_t v)
{
	memcpy(gpa(f, a), &v, 2);
}

/* Put head in the avail ring and bump avail->idx. */
static void publish(struct fixture *f, uint16_t head)
{
	uint16_t idx = rd16(f, AVAIL_GPA + 2);

	wr16(f, AVAIL_GPA + 4 + 2 * (idx % QSIZE), head);
	wr16(f, AVAIL_GPA + 2, idx + 1);
}

static void expect_broken(struct fixture *f, const char *needle)
{
	assert_int_equal(virtq_pop(&f->vq, &f->e), -22);
	assert_true(f->vq.broken);
	assert_non_null(strstr(f->vq.error, needle));
	/* A broken queue stays quiet until the transport resets it. */
	assert_false(virtq_ready(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
}

/* --- normal operation ---------------------------------------------------- */

static void test_empty_queue(void **state)
{
	struct fixture *f = *state;

	assert_false(virtq_has_work(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
	assert_false(f->vq.broken);
}

static void test_chain_out_then_in(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 10, VIRTQ_DESC_F_NEXT, 5);
	set_desc(f, 5, BUF_GPA + 100, 20, VIRTQ_DESC_F_NEXT, 2);
	set_desc(f, 2, BUF_GPA + 200, 30, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 7);
	set_desc(f, 7, BUF_GPA + 300, 40, VIRTQ_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_true(virtq_has_work(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 0);
	assert_int_equal(f->e.n_out, 2);
	assert_int_equal(f->e.n_in, 2);
	assert_int_equal(f->e.out_len, 30);
	assert_int_equal(f->e.in_len, 70);
	assert_ptr_equal(f->e.iov[0].iov_base, gpa(f, BUF_GPA));
	assert_ptr_equal(f->e.iov[1].iov_base, gpa(f, BUF_GPA + 100));
	assert_ptr_equal(f->e.iov[2].iov_base, gpa(f, BUF_GPA + 200));
	assert_int_equal(f->e.iov[3].iov_len, 40);
	assert_int_equal(f->vq.inflight, 1);

	virtq_push(&f->vq, &f->e, 1000);	/* clamped to the writable 70 */
	assert_int_equal(rd16(f, USED_GPA + 2), 1);
	assert_int_equal(rd32(f, USED_GPA + 4), 0);
	assert_int_equal(rd32(f, USED_GPA + 8), 70);
	assert_int_equal(f->vq.inflight, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
}

static void test_zero_length_descriptor(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 1, 0xdead0000ull, 0, VIRTQ_DESC_F_WRITE, 0);
	publish(f, 1);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.n_in, 1);
	assert_int_equal(f->e.in_len, 0);
}

static void test_indirect(void **state)
{
	struct fixture *f = *state;

	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	set_desc_at(f, TABLE_GPA, 2, BUF_GPA + 64, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc_at(f, TABLE_GPA, 1, BUF_GPA + 128, 32, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, 3, TABLE_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 3);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 3);
	assert_int_equal(f->e.n_out, 1);
	assert_int_equal(f->e.n_in, 2);
	assert_int_equal(f->e.in_len, 48);
	assert_ptr_equal(f->e.iov[2].iov_base, gpa(f, BUF_GPA + 128));
	virtq_push(&f->vq, &f->e, 48);
	assert_int_equal(rd32(f, USED_GPA + 4), 3);
	assert_int_equal(rd32(f, USED_GPA + 8), 48);
}

static void test_index_wraparound(void **state)
{
	struct fixture *f = *state;

	f->vq.last_avail_idx = 0xfffe;
	f->vq.used_idx = 0xfffe;
	wr16(f, AVAIL_GPA + 2, 0xfffe);
	for (unsigned i = 0; i < 4; i++) {
		set_desc(f, i, BUF_GPA + 16 * i, 16, VIRTQ_DESC_F_WRITE, 0);
		publish(f, i);
	}
	assert_int_equal(rd16(f, AVAIL_GPA + 2), 2);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
		assert_int_equal(f->e.head, i);
		virtq_push(&f->vq, &f->e, 16);
	}
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
	assert_int_equal(f->vq.last_avail_idx, 2);
	assert_int_equal(rd16(f, USED_GPA + 2), 2);
	/* Slot of used index 0xffff is 7, of index 0 is 0. */
	assert_int_equal(rd32(f, USED_GPA + 4 + 8 * 7), 1);
	assert_int_equal(rd32(f, USED_GPA + 4 + 8 * 0), 2);
}

/* --- notification suppression -------------------------------------------- */

static void test_need_event_math(void **state)
{
	(void)state;
	/* Fires when event lies in [old, new). */
	assert_true(virtq_need_event(0, 1, 0));
	assert_false(virtq_need_event(1, 1, 0));
	assert_true(virtq_need_event(5, 8, 3));
	assert_false(virtq_need_event(8, 8, 3));
	assert_false(virtq_need_event(2, 8, 3));
	/* Across the 16-bit wrap. */
	assert_true(virtq_need_event(0xffff, 2, 0xfffe));
	assert_true(virtq_need_event(1, 2, 0xfffe));
	assert_false(virtq_need_event(2, 2, 0xfffe));
	assert_false(virtq_need_event(0xfffd, 2, 0xfffe));
}

static void test_event_idx_notify(void **state)
{
	struct fixture *f = *state;
	uint64_t used_event = AVAIL_GPA + 4 + 2 * QSIZE;
	uint64_t avail_event = USED_GPA + 4 + 8 * QSIZE;

	f->vq.event_idx = true;
	wr16(f, used_event, 1);		/* interrupt once used idx passes 1 */
	for (unsigned i = 0; i < 3; i++) {
		set_desc(f, i, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
		publish(f, i);
	}
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(rd16(f, avail_event), 1);	/* kick me past 1 */
	virtq_push(&f->vq, &f->e, 0);
	assert_true(virtq_should_notify(&f->vq));	/* first one always */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);			/* used 1 -> 2: event 1 */
	assert_true(virtq_should_notify(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);			/* used 2 -> 3: no */
	assert_false(virtq_should_notify(&f->vq));
	assert_int_equal(rd16(f, avail_event), 3);
	wr16(f, used_event, 3);
	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);			/* used 3 -> 4: event 3 */
	assert_true(virtq_should_notify(&f->vq));
}

static void test_no_interrupt_flag(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);
	assert_true(virtq_should_notify(&f->vq));
	wr16(f, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_false(virtq_should_notify(&f->vq));
}

/* --- malformed input ----------------------------------------------------- */

static void test_loop(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(f, 1, BUF_GPA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	publish(f, 0);
	expect_broken(f, "longer than the queue size");
}

static void test_self_loop(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 4, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 4);
	publish(f, 4);
	expect_broken(f, "longer than the queue size");
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, QSIZE);
	publish(f, 0);
	expect_broken(f, "next 8");
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;

	publish(f, QSIZE + 3);
	expect_broken(f, "head 11");
}

static void test_avail_idx_too_far(void **state)
{
	struct fixture *f = *state;

	wr16(f, AVAIL_GPA + 2, QSIZE + 1);
	expect_broken(f, "ahead");
}

static void test_inflight_bounded(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < QSIZE; i++) {
		set_desc(f, i, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
		publish(f, i);
		assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	}
	/* The driver reuses heads the device still owns. */
	publish(f, 0);
	expect_broken(f, "in flight");
}

static void test_buffer_outside_ram(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, RAM_SIZE - 8, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(f, 0);
	expect_broken(f, "outside guest RAM");
}

static void test_buffer_address_wraps(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, ~0ull - 4, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(f, 0);
	expect_broken(f, "outside guest RAM");
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF_GPA, 16, 0, 0);
	publish(f, 0);
	expect_broken(f, "readable descriptor after a writable");
}

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *f = *state;

	f->vq.indirect = false;
	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "not negotiated");
}

static void test_indirect_bad_length(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, TABLE_GPA, 24, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "not a multiple of 16");
}

static void test_indirect_zero_length(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, TABLE_GPA, 0, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "not a multiple of 16");
}

static void test_indirect_nested(void **state)
{
	struct fixture *f = *state;

	set_desc_at(f, TABLE_GPA, 0, TABLE_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(f, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "nested indirect");
}

static void test_indirect_with_next(void **state)
{
	struct fixture *f = *state;

	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	publish(f, 0);
	expect_broken(f, "indirect descriptor with NEXT");
}

static void test_indirect_inside_chain(void **state)
{
	struct fixture *f = *state;

	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "inside a chain");
}

static void test_indirect_loop(void **state)
{
	struct fixture *f = *state;

	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc_at(f, TABLE_GPA, 1, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	set_desc(f, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "longer than the queue size");
}

static void test_indirect_next_out_of_table(void **state)
{
	struct fixture *f = *state;

	set_desc_at(f, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(f, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "indirect next 2 out of 2");
}

static void test_indirect_table_too_big(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, TABLE_GPA, 16 * (QSIZE + 1), VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "exceeds queue size");
}

static void test_indirect_table_outside_ram(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "outside guest RAM");
}

/* --- ring setup ---------------------------------------------------------- */

static void test_map_rejects(void **state)
{
	struct fixture *f = *state;
	struct virtq vq;

	virtq_reset(&vq, 256);
	vq.size = 6;
	vq.desc_gpa = DESC_GPA;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);
	assert_non_null(strstr(vq.error, "power of two"));

	virtq_reset(&vq, 256);
	vq.size = 512;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);

	virtq_reset(&vq, 256);
	vq.desc_gpa = DESC_GPA + 8;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);
	assert_non_null(strstr(vq.error, "misaligned"));

	virtq_reset(&vq, 256);
	vq.desc_gpa = DESC_GPA;
	vq.avail_gpa = AVAIL_GPA;
	vq.used_gpa = RAM_SIZE - 64;		/* used ring runs off RAM */
	assert_int_equal(virtq_map(&vq, &f->mem), -22);
	assert_non_null(strstr(vq.error, "outside guest RAM"));
	assert_null(vq.used);

	/* Device writes into the driver's rings would invent requests. */
	virtq_reset(&vq, 256);
	vq.size = 16;
	vq.desc_gpa = DESC_GPA;
	vq.avail_gpa = AVAIL_GPA;
	vq.used_gpa = AVAIL_GPA + 4;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);
	assert_non_null(strstr(vq.error, "overlaps"));
	vq.broken = false;
	vq.used_gpa = DESC_GPA + 16 * 15;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);

	virtq_reset(&vq, 256);
	vq.size = 16;
	vq.desc_gpa = DESC_GPA;
	vq.avail_gpa = AVAIL_GPA;
	vq.used_gpa = USED_GPA;
	assert_int_equal(virtq_map(&vq, &f->mem), 0);
	assert_false(virtq_ready(&vq));		/* not enabled yet */
}

static void test_legacy_layout(void **state)
{
	struct virtq vq;

	(void)state;
	virtq_reset(&vq, 256);
	virtq_set_legacy_pfn(&vq, 0x10);
	assert_int_equal(vq.desc_gpa, 0x10000);
	assert_int_equal(vq.avail_gpa, 0x10000 + 16 * 256);
	assert_int_equal(vq.used_gpa, 0x12000);	/* 4 KiB after 0x11000 + 518 */
	virtq_reset(&vq, 8);
	virtq_set_legacy_pfn(&vq, 1);
	assert_int_equal(vq.avail_gpa, 0x1000 + 128);
	assert_int_equal(vq.used_gpa, 0x2000);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_empty_queue),
		T(test_chain_out_then_in),
		T(test_zero_length_descriptor),
		T(test_indirect),
		T(test_index_wraparound),
		T(test_need_event_math),
		T(test_event_idx_notify),
		T(test_no_interrupt_flag),
		T(test_loop),
		T(test_self_loop),
		T(test_next_out_of_range),
		T(test_head_out_of_range),
		T(test_avail_idx_too_far),
		T(test_inflight_bounded),
		T(test_buffer_outside_ram),
		T(test_buffer_address_wraps),
		T(test_readable_after_writable),
		T(test_indirect_not_negotiated),
		T(test_indirect_bad_length),
		T(test_indirect_zero_length),
		T(test_indirect_nested),
		T(test_indirect_with_next),
		T(test_indirect_inside_chain),
		T(test_indirect_loop),
		T(test_indirect_next_out_of_table),
		T(test_indirect_table_too_big),
		T(test_indirect_table_outside_ram),
		T(test_map_rejects),
		T(test_legacy_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
