/* Unit tests for the virtqueues (hw/virtqueue.c) over a fake guest memory,
 * split and packed: normal and indirect chains, EVENT_IDX arithmetic and
 * event suppression (and kick suppression while a device watches for a
 * driver's answer), index wrap-around (16-bit indexes; packed wrap
 * counters over many laps), batched used entries, giving buffers back,
 * migrated-state checks, and every malformed input the device must
 * refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "hw/virtq_poll.h"
#include "hw/virtqueue.h"
#include "tests/unit/virtio_test_util.h"

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
	struct vt_pring drv;	/* packed tests: the driver's side */
};

/* A fresh enabled queue of size entries at DESC_GPA, AVAIL_GPA (the
 * packed driver area) and USED_GPA (the device area), not yet mapped. */
static void vq_configure(struct fixture *f, bool packed, uint16_t size)
{
	virtq_reset(&f->vq, 256);
	f->vq.packed = packed;
	f->vq.size = size;
	f->vq.desc_gpa = DESC_GPA;
	f->vq.avail_gpa = AVAIL_GPA;
	f->vq.used_gpa = USED_GPA;
	f->vq.enabled = true;
	f->vq.indirect = true;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	vt_mem_init(&f->mem, RAM_SIZE);
	vq_configure(f, false, QSIZE);
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

static void set_desc(struct fixture *f, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	vt_put_desc(&f->mem, DESC_GPA, i, addr, len, flags, next);
}

/* Put head in the avail ring and bump avail->idx. */
static void publish(struct fixture *f, uint16_t head)
{
	uint16_t idx = vt_rd16(&f->mem, AVAIL_GPA + 2);

	vt_wr16(&f->mem, AVAIL_GPA + 4 + 2 * (idx % QSIZE), head);
	vt_wr16(&f->mem, AVAIL_GPA + 2, idx + 1);
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
	assert_int_equal(vt_rd16(&f->mem, USED_GPA + 2), 1);
	assert_int_equal(vt_rd32(&f->mem, USED_GPA + 4), 0);
	assert_int_equal(vt_rd32(&f->mem, USED_GPA + 8), 70);
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

	vt_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	vt_put_desc(&f->mem, TABLE_GPA, 2, BUF_GPA + 64, 16,
		    VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	vt_put_desc(&f->mem, TABLE_GPA, 1, BUF_GPA + 128, 32, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, 3, TABLE_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 3);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 3);
	assert_int_equal(f->e.n_out, 1);
	assert_int_equal(f->e.n_in, 2);
	assert_int_equal(f->e.in_len, 48);
	assert_ptr_equal(f->e.iov[2].iov_base, gpa(f, BUF_GPA + 128));
	virtq_push(&f->vq, &f->e, 48);
	assert_int_equal(vt_rd32(&f->mem, USED_GPA + 4), 3);
	assert_int_equal(vt_rd32(&f->mem, USED_GPA + 8), 48);
}

static void test_index_wraparound(void **state)
{
	struct fixture *f = *state;

	f->vq.last_avail_idx = 0xfffe;
	f->vq.used_idx = 0xfffe;
	vt_wr16(&f->mem, AVAIL_GPA + 2, 0xfffe);
	for (unsigned i = 0; i < 4; i++) {
		set_desc(f, i, BUF_GPA + 16 * i, 16, VIRTQ_DESC_F_WRITE, 0);
		publish(f, i);
	}
	assert_int_equal(vt_rd16(&f->mem, AVAIL_GPA + 2), 2);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
		assert_int_equal(f->e.head, i);
		virtq_push(&f->vq, &f->e, 16);
	}
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
	assert_int_equal(f->vq.last_avail_idx, 2);
	assert_int_equal(vt_rd16(&f->mem, USED_GPA + 2), 2);
	/* Slot of used index 0xffff is 7, of index 0 is 0. */
	assert_int_equal(vt_rd32(&f->mem, USED_GPA + 4 + 8 * 7), 1);
	assert_int_equal(vt_rd32(&f->mem, USED_GPA + 4 + 8 * 0), 2);
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
	vt_wr16(&f->mem, used_event, 1);		/* interrupt once used idx passes 1 */
	for (unsigned i = 0; i < 3; i++) {
		set_desc(f, i, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
		publish(f, i);
	}
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(vt_rd16(&f->mem, avail_event), 1);	/* kick me past 1 */
	virtq_push(&f->vq, &f->e, 0);
	assert_true(virtq_should_notify(&f->vq));	/* first one always */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);			/* used 1 -> 2: event 1 */
	assert_true(virtq_should_notify(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);			/* used 2 -> 3: no */
	assert_false(virtq_should_notify(&f->vq));
	assert_int_equal(vt_rd16(&f->mem, avail_event), 3);
	vt_wr16(&f->mem, used_event, 3);
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
	vt_wr16(&f->mem, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_false(virtq_should_notify(&f->vq));
}

/* Suppressing kicks under EVENT_IDX moves avail_event behind what was
 * consumed: no batch the driver adds from there asks for a kick (a plain
 * disable still asks for one at the next request); enabling asks for the
 * kick at the next request again. */
static void test_suppress_kicks(void **state)
{
	struct fixture *f = *state;
	uint64_t avail_event = USED_GPA + 4 + 8 * QSIZE;

	f->vq.event_idx = true;
	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_disable_notify(&f->vq);
	assert_true(virtq_need_event(vt_rd16(&f->mem, avail_event), 2, 1));
	virtq_suppress_kicks(&f->vq);
	for (uint16_t n = 2; n < 2 + QSIZE; n++)
		assert_false(virtq_need_event(vt_rd16(&f->mem, avail_event), n, 1));
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);	/* suppressed pops leave it */
	assert_false(virtq_need_event(vt_rd16(&f->mem, avail_event), 3, 2));
	assert_int_equal(virtq_enable_notify(&f->vq), 2);
	assert_true(virtq_need_event(vt_rd16(&f->mem, avail_event), 3, 2));
}

/* Watching for a driver's answer: work in the ring counts at once (a
 * hit); VIRTQ_ANSWER_MISSES empty watches in a row make the next
 * VIRTQ_ANSWER_PAUSE return at once; a hit clears the misses. */
static void test_answer_wait(void **state)
{
	struct fixture *f = *state;
	struct virtq_answer a = { 0 };

	assert_false(virtq_answer_wait(&a, &f->vq, 1000));
	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_true(virtq_answer_wait(&a, &f->vq, 1000));
	assert_int_equal(a.hits, 1);
	assert_int_equal(a.misses, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	for (unsigned i = 0; i < VIRTQ_ANSWER_MISSES; i++)
		assert_false(virtq_answer_wait(&a, &f->vq, 1000));
	assert_int_equal(a.skip, VIRTQ_ANSWER_PAUSE);
	for (unsigned i = 0; i < VIRTQ_ANSWER_PAUSE; i++)
		assert_false(virtq_answer_wait(&a, &f->vq, 1000));
	assert_int_equal(a.skip, 0);
	publish(f, 0);		/* skipping or not, work already there is a hit */
	assert_true(virtq_answer_wait(&a, &f->vq, 1000));
	assert_int_equal(a.hits, 2);
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

	vt_wr16(&f->mem, AVAIL_GPA + 2, QSIZE + 1);
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
	vt_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
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

	vt_put_desc(&f->mem, TABLE_GPA, 0, TABLE_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(f, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "nested indirect");
}

static void test_indirect_with_next(void **state)
{
	struct fixture *f = *state;

	vt_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	publish(f, 0);
	expect_broken(f, "indirect descriptor with NEXT");
}

static void test_indirect_inside_chain(void **state)
{
	struct fixture *f = *state;

	vt_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "inside a chain");
}

static void test_indirect_loop(void **state)
{
	struct fixture *f = *state;

	vt_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	vt_put_desc(&f->mem, TABLE_GPA, 1, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	set_desc(f, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(f, 0);
	expect_broken(f, "longer than the queue size");
}

static void test_indirect_next_out_of_table(void **state)
{
	struct fixture *f = *state;

	vt_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
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

/* --- packed rings --------------------------------------------------------- */

#define DRV_AREA	AVAIL_GPA	/* driver event suppression */
#define DEV_AREA	USED_GPA	/* device event suppression */
#define F_AVAIL		VIRTQ_DESC_F_AVAIL
#define F_USED		VIRTQ_DESC_F_USED

static void packed_configure(struct fixture *f, uint16_t size)
{
	vq_configure(f, true, size);	/* DRV_AREA, DEV_AREA */
	memset(gpa(f, DESC_GPA), 0, 16 * 256);
	assert_int_equal(virtq_map(&f->vq, &f->mem), 0);
	vt_pring_init(&f->drv, &f->mem, DESC_GPA, size);
}

static int setup_packed(void **state)
{
	setup(state);
	packed_configure(*state, QSIZE);
	return 0;
}

/* Make a chain of n buffers (lens[k] bytes at BUF_GPA + 256 * k, WRITE
 * from first_in on) available with buffer id. Returns the head position. */
static uint16_t drv_add(struct fixture *f, uint16_t id, unsigned n, const uint32_t *lens,
			unsigned first_in)
{
	struct vt_pbuf bufs[QSIZE];

	assert_true(n <= QSIZE);
	for (unsigned k = 0; k < n; k++)
		bufs[k] = (struct vt_pbuf){ BUF_GPA + 256 * k, lens[k],
					    k >= first_in ? VIRTQ_DESC_F_WRITE : 0 };
	return vt_pring_add(&f->drv, id, bufs, n);
}

static void drv_add_writable(struct fixture *f, uint16_t id, unsigned n)
{
	uint32_t lens[QSIZE];

	assert_true(n <= QSIZE);
	for (unsigned k = 0; k < n; k++)
		lens[k] = 16;
	drv_add(f, id, n, lens, 0);
}

static void set_event(struct fixture *f, uint64_t area, uint16_t off_wrap, uint16_t flags)
{
	vt_wr16(&f->mem, area, off_wrap);
	vt_wr16(&f->mem, area + 2, flags);
}

static void test_packed_empty(void **state)
{
	struct fixture *f = *state;

	assert_false(virtq_has_work(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
	/* Zeroed memory with wrap counter 1: AVAIL clear, not available. */
	assert_false(f->vq.broken);
	assert_true(f->vq.avail_wrap);
	assert_true(f->vq.used_wrap);
}

static void test_packed_chain(void **state)
{
	struct fixture *f = *state;
	const uint32_t lens[4] = { 10, 20, 30, 40 };
	struct virtq_packed_desc d;
	uint16_t id;
	uint32_t len;

	drv_add(f, 5, 4, lens, 2);
	assert_true(virtq_has_work(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 5);
	assert_int_equal(f->e.n_out, 2);
	assert_int_equal(f->e.n_in, 2);
	assert_int_equal(f->e.out_len, 30);
	assert_int_equal(f->e.in_len, 70);
	assert_ptr_equal(f->e.iov[1].iov_base, gpa(f, BUF_GPA + 256));
	assert_ptr_equal(f->e.iov[3].iov_base, gpa(f, BUF_GPA + 768));
	assert_int_equal(f->vq.last_avail_idx, 4);
	assert_int_equal(f->vq.inflight, 1);
	assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);

	virtq_push(&f->vq, &f->e, 1000);	/* clamped to the writable 70 */
	d = vt_get_pdesc(&f->mem, DESC_GPA, 0);
	assert_int_equal(d.id, 5);
	assert_int_equal(d.len, 70);
	assert_int_equal(d.flags, F_AVAIL | F_USED | VIRTQ_DESC_F_WRITE);
	assert_int_equal(f->vq.used_idx, 4);	/* skips the whole chain */
	assert_int_equal(f->vq.inflight, 0);
	assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 1);
	assert_int_equal(id, 5);
	assert_int_equal(len, 70);
	assert_int_equal(f->vq.packed_ndescs[5], 0);
}

static void test_packed_indirect(void **state)
{
	struct fixture *f = *state;
	uint16_t id;
	uint32_t len;

	vt_put_pdesc(&f->mem, TABLE_GPA, 0, BUF_GPA, 8, 0, VIRTQ_DESC_F_NEXT);	/* NEXT ignored */
	vt_put_pdesc(&f->mem, TABLE_GPA, 1, BUF_GPA + 64, 16, 99, VIRTQ_DESC_F_WRITE);
	vt_put_pdesc(&f->mem, TABLE_GPA, 2, BUF_GPA + 128, 32, 0, VIRTQ_DESC_F_WRITE);
	vt_pring_add(&f->drv, 3, &(struct vt_pbuf){ TABLE_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT }, 1);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 3);
	assert_int_equal(f->e.n_out, 1);
	assert_int_equal(f->e.n_in, 2);
	assert_int_equal(f->e.in_len, 48);
	assert_ptr_equal(f->e.iov[2].iov_base, gpa(f, BUF_GPA + 128));
	assert_int_equal(f->vq.last_avail_idx, 1);
	virtq_push(&f->vq, &f->e, 48);
	assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 1);
	assert_int_equal(id, 3);
	assert_int_equal(len, 48);
	assert_int_equal(f->vq.used_idx, 1);
}

/* Thousands of laps over a 6-entry ring (packed sizes need not be powers
 * of two) with chains of 1 to 3 descriptors crossing the ring end and
 * completions out of order. */
static void test_packed_wraparound(void **state)
{
	struct fixture *f = *state;
	unsigned slots = 0, used_slots = 0;
	uint16_t ids[2];

	packed_configure(f, 6);
	for (unsigned round = 0; round < 5000; round++) {
		unsigned n0 = 1 + round % 3, n1 = 1 + (round / 3) % 3;
		uint16_t id;
		uint32_t len;

		if (n0 + n1 > 6)
			n1 = 6 - n0;
		drv_add_writable(f, round % 6, n0);
		drv_add_writable(f, (round + 1) % 6, n1);
		slots += n0 + n1;
		for (unsigned k = 0; k < 2; k++) {
			assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
			ids[k] = f->e.head;
			assert_int_equal(f->e.in_len, 16 * (k ? n1 : n0));
		}
		assert_int_equal(ids[0], round % 6);
		assert_int_equal(ids[1], (round + 1) % 6);
		assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
		/* Out of order every other round. */
		for (unsigned k = 0; k < 2; k++) {
			f->e.head = ids[round & 1 ? 1 - k : k];
			f->e.in_len = 1000;
			virtq_push(&f->vq, &f->e, 7);
		}
		for (unsigned k = 0; k < 2; k++) {
			assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 1);
			assert_int_equal(id, ids[round & 1 ? 1 - k : k]);
			assert_int_equal(len, 7);
		}
		used_slots += n0 + n1;
		assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 0);
		assert_false(f->vq.broken);
	}
	assert_int_equal(f->vq.last_avail_idx, slots % 6);
	assert_int_equal(f->vq.avail_wrap, !((slots / 6) & 1));
	assert_int_equal(f->vq.used_idx, used_slots % 6);
	assert_int_equal(f->vq.used_wrap, !((used_slots / 6) & 1));
	assert_int_equal(virtq_check_loaded(&f->vq), 0);
}

/* Batched used entries appear only at the flush, the first one's flags
 * last; buffers given back are popped again unchanged. */
static void test_packed_fill_flush_unpop(void **state)
{
	struct fixture *f = *state;
	uint16_t id, seen;
	uint32_t len;

	drv_add_writable(f, 4, 2);
	drv_add_writable(f, 2, 1);
	drv_add_writable(f, 7, 3);
	for (unsigned k = 0; k < 3; k++)
		assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->vq.last_avail_idx, 6);
	/* Give back the last two (as virtio-net does when a frame does not
	 * fit), then look for new buffers the way it does. */
	seen = f->vq.last_avail_idx;
	virtq_unpop(&f->vq, 2);
	assert_int_equal(f->vq.last_avail_idx, 2);
	assert_int_equal(f->vq.inflight, 1);
	assert_int_equal(f->vq.packed_ndescs[2], 0);
	assert_int_equal(virtq_enable_notify(&f->vq), seen);	/* nothing new */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 2);
	/* Fills of both, then an unpop: the ring must be untouched. */
	virtq_fill(&f->vq, &f->e, 5, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 7);
	virtq_fill(&f->vq, &f->e, 9, 1);
	assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 0);
	assert_int_equal(vt_get_pdesc(&f->mem, DESC_GPA, 2).len, 16);
	virtq_unpop(&f->vq, 2);
	assert_int_equal(f->vq.last_avail_idx, 2);
	assert_int_equal(vt_get_pdesc(&f->mem, DESC_GPA, 2).flags, F_AVAIL | VIRTQ_DESC_F_WRITE);

	/* Pop all again; fill out of order and flush at once. */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_fill(&f->vq, &f->e, 5, 0);		/* id 2 */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_fill(&f->vq, &f->e, 9, 1);		/* id 7 */
	f->e.head = 4;
	f->e.in_len = 32;
	virtq_fill(&f->vq, &f->e, 32, 2);
	assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 0);
	virtq_flush(&f->vq, 3);
	assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 1);
	assert_int_equal(id, 2);
	assert_int_equal(len, 5);
	assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 1);
	assert_int_equal(id, 7);
	assert_int_equal(len, 9);
	assert_int_equal(vt_pring_pop_used(&f->drv, &id, &len), 1);
	assert_int_equal(id, 4);
	assert_int_equal(len, 32);
	assert_int_equal(f->vq.used_idx, 6);
	assert_int_equal(f->vq.inflight, 0);
	assert_false(f->vq.broken);
}

static void test_packed_driver_event(void **state)
{
	struct fixture *f = *state;

	f->vq.event_idx = true;
	for (unsigned k = 0; k < 4; k++)
		drv_add_writable(f, k, 1);
	/* ENABLE: always; DISABLE: never. */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);
	assert_true(virtq_should_notify(&f->vq));
	set_event(f, DRV_AREA, 0, VIRTQ_EVENT_F_DISABLE);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);
	assert_false(virtq_should_notify(&f->vq));
	/* DESC at position 3 with wrap 1: used 2 -> 3 does not reach it... */
	set_event(f, DRV_AREA, 3 | VIRTQ_EVENT_WRAP, VIRTQ_EVENT_F_DESC);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);
	assert_false(virtq_should_notify(&f->vq));
	/* ...used 3 -> 4 does. */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);
	assert_true(virtq_should_notify(&f->vq));
	/* An event in the next lap (wrap 0) is not reached before the wrap. */
	set_event(f, DRV_AREA, 1, VIRTQ_EVENT_F_DESC);
	for (unsigned k = 0; k < 3; k++) {
		drv_add_writable(f, k, 1);
		assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
		virtq_push(&f->vq, &f->e, 0);
		assert_false(virtq_should_notify(&f->vq));
	}
	drv_add_writable(f, 3, 1);		/* position 7: used wraps to 0 */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);
	assert_false(f->vq.used_wrap);
	assert_true(virtq_should_notify(&f->vq));	/* signalled on the wrap */
	drv_add_writable(f, 0, 1);		/* used 0 -> 1: reaches 0 not 1 */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);
	assert_false(virtq_should_notify(&f->vq));
	drv_add_writable(f, 1, 1);		/* used 1 -> 2: reaches 1 */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);
	assert_true(virtq_should_notify(&f->vq));
	/* DESC without EVENT_IDX means nothing: interrupt. */
	f->vq.event_idx = false;
	set_event(f, DRV_AREA, 5, VIRTQ_EVENT_F_DESC);
	assert_true(virtq_should_notify(&f->vq));
}

static void test_packed_device_event(void **state)
{
	struct fixture *f = *state;

	/* Without EVENT_IDX: disable / enable flip the flags. */
	virtq_disable_notify(&f->vq);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA + 2), VIRTQ_EVENT_F_DISABLE);
	drv_add_writable(f, 0, 2);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA + 2), VIRTQ_EVENT_F_DISABLE);
	assert_int_equal(virtq_enable_notify(&f->vq), 2);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA + 2), VIRTQ_EVENT_F_ENABLE);

	/* EVENT_IDX: pops ask for a kick at the next position and wrap. */
	f->vq.event_idx = true;
	drv_add_writable(f, 1, 3);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA + 2), VIRTQ_EVENT_F_DESC);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA), 5 | VIRTQ_EVENT_WRAP);
	virtq_disable_notify(&f->vq);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA + 2), VIRTQ_EVENT_F_DISABLE);
	drv_add_writable(f, 2, 3);		/* positions 5, 6, 7 */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA + 2), VIRTQ_EVENT_F_DISABLE);
	drv_add_writable(f, 3, 1);		/* position 0 of lap 2 */
	/* Enabling points past what is already available. */
	assert_int_equal(virtq_enable_notify(&f->vq), 1);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA + 2), VIRTQ_EVENT_F_DESC);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA), 1);	/* wrap counter 0 */
	assert_true(virtq_has_work(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_false(f->vq.avail_wrap);
	assert_int_equal(vt_rd16(&f->mem, DEV_AREA), 1);
}

/* --- packed: malformed input ---------------------------------------------- */

static void test_packed_id_out_of_range(void **state)
{
	struct fixture *f = *state;

	drv_add_writable(f, QSIZE, 1);
	expect_broken(f, "buffer id 8 out of queue size 8");
}

static void test_packed_id_reused(void **state)
{
	struct fixture *f = *state;

	drv_add_writable(f, 2, 1);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	drv_add_writable(f, 2, 2);
	expect_broken(f, "buffer id 2 reused while in flight");
}

static void test_packed_id_from_last_descriptor(void **state)
{
	struct fixture *f = *state;
	const uint32_t lens[2] = { 16, 16 };

	drv_add(f, 1, 2, lens, 0);
	vt_wr16(&f->mem, DESC_GPA + 12, 6);		/* the head's id does not count */
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, 1);
}

static void test_packed_chain_too_long(void **state)
{
	struct fixture *f = *state;

	/* Every descriptor says NEXT and is available: the walk would go
	 * round the ring forever. */
	for (unsigned i = 0; i < QSIZE; i++)
		vt_put_pdesc(&f->mem, DESC_GPA, i, BUF_GPA, 16, 0,
			     VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE | F_AVAIL);
	expect_broken(f, "longer than the queue size");
}

static void test_packed_chain_not_available(void **state)
{
	struct fixture *f = *state;

	vt_put_pdesc(&f->mem, DESC_GPA, 0, BUF_GPA, 16, 0, VIRTQ_DESC_F_NEXT | F_AVAIL);
	vt_put_pdesc(&f->mem, DESC_GPA, 1, BUF_GPA, 16, 0, 0);	/* never made available */
	expect_broken(f, "descriptor 1 is not available");
}

static void test_packed_chain_across_wrap_needs_new_counter(void **state)
{
	struct fixture *f = *state;

	/* At position 7 of lap 1, a chain continues at 0 with wrap 0: the
	 * next descriptor must carry the flipped counter. */
	f->vq.last_avail_idx = 7;
	f->vq.used_idx = 7;
	vt_put_pdesc(&f->mem, DESC_GPA, 7, BUF_GPA, 16, 0, VIRTQ_DESC_F_NEXT | F_AVAIL);
	vt_put_pdesc(&f->mem, DESC_GPA, 0, BUF_GPA, 16, 3, F_AVAIL);	/* lap 1 flags: stale */
	expect_broken(f, "descriptor 0 is not available");
}

static void test_packed_buffer_outside_ram(void **state)
{
	struct fixture *f = *state;

	vt_put_pdesc(&f->mem, DESC_GPA, 0, RAM_SIZE - 8, 16, 0, VIRTQ_DESC_F_WRITE | F_AVAIL);
	expect_broken(f, "outside guest RAM");
}

static void test_packed_readable_after_writable(void **state)
{
	struct fixture *f = *state;
	const uint32_t lens[2] = { 16, 16 };

	drv_add(f, 0, 2, lens, 0);
	vt_wr16(&f->mem, DESC_GPA + 16 + 14, F_AVAIL);	/* second: readable */
	expect_broken(f, "readable descriptor after a writable");
}

static void put_indirect(struct fixture *f, uint32_t len, uint16_t flags)
{
	vt_put_pdesc(&f->mem, DESC_GPA, 0, TABLE_GPA, len, 0, flags | F_AVAIL);
}

static void test_packed_indirect_bad(void **state)
{
	struct fixture *f = *state;
	static const struct {
		uint32_t len;
		uint16_t flags;
		uint16_t entry_flags;
		bool negotiated;
		const char *needle;
	} cases[] = {
		{ 24, VIRTQ_DESC_F_INDIRECT, 0, true, "not a multiple of 16" },
		{ 0, VIRTQ_DESC_F_INDIRECT, 0, true, "not a multiple of 16" },
		{ 16, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_INDIRECT, true, "nested indirect" },
		{ 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 0, true, "with NEXT" },
		{ 16, VIRTQ_DESC_F_INDIRECT, 0, false, "not negotiated" },
		{ 16 * (QSIZE + 1), VIRTQ_DESC_F_INDIRECT, 0, true, "exceeds queue size" },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		packed_configure(f, QSIZE);
		f->vq.indirect = cases[i].negotiated;
		vt_put_pdesc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, 0,
			     cases[i].entry_flags | VIRTQ_DESC_F_WRITE);
		put_indirect(f, cases[i].len, cases[i].flags);
		expect_broken(f, cases[i].needle);
	}
	packed_configure(f, QSIZE);
	vt_put_pdesc(&f->mem, DESC_GPA, 0, RAM_SIZE - 16, 32, 0, VIRTQ_DESC_F_INDIRECT | F_AVAIL);
	expect_broken(f, "outside guest RAM");
	/* An indirect descriptor after chained ones. */
	packed_configure(f, QSIZE);
	vt_put_pdesc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, 0, VIRTQ_DESC_F_WRITE);
	vt_put_pdesc(&f->mem, DESC_GPA, 1, TABLE_GPA, 16, 0, VIRTQ_DESC_F_INDIRECT | F_AVAIL);
	vt_put_pdesc(&f->mem, DESC_GPA, 0, BUF_GPA, 16, 0, VIRTQ_DESC_F_NEXT | F_AVAIL);
	expect_broken(f, "inside a chain");
}

static void test_packed_device_push_not_in_flight(void **state)
{
	struct fixture *f = *state;

	f->e.head = 3;
	f->e.in_len = 0;
	virtq_push(&f->vq, &f->e, 0);
	assert_true(f->vq.broken);
	assert_non_null(strstr(f->vq.error, "not in flight"));
	assert_int_equal(vt_get_pdesc(&f->mem, DESC_GPA, 0).flags, 0);	/* nothing written */
}

static void test_packed_map_rejects(void **state)
{
	struct fixture *f = *state;
	struct virtq vq;

	virtq_reset(&vq, 256);
	vq.packed = true;
	vq.size = 0;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);
	assert_non_null(strstr(vq.error, "packed queue size 0"));

	virtq_reset(&vq, 256);
	vq.packed = true;
	vq.size = 257;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);

	virtq_reset(&vq, 256);
	vq.packed = true;
	vq.size = 100;		/* any size up to the maximum is fine */
	vq.desc_gpa = DESC_GPA;
	vq.avail_gpa = DRV_AREA + 2;
	vq.used_gpa = DEV_AREA;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);
	assert_non_null(strstr(vq.error, "misaligned"));

	virtq_reset(&vq, 256);
	vq.packed = true;
	vq.desc_gpa = DESC_GPA;
	vq.avail_gpa = DRV_AREA;
	vq.used_gpa = DESC_GPA + 16 * 255 + 12;	/* inside the last descriptor */
	assert_int_equal(virtq_map(&vq, &f->mem), -22);
	assert_non_null(strstr(vq.error, "overlaps"));

	virtq_reset(&vq, 256);
	vq.packed = true;
	vq.desc_gpa = DESC_GPA;
	vq.avail_gpa = DRV_AREA;
	vq.used_gpa = DRV_AREA;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);
	assert_non_null(strstr(vq.error, "overlaps"));

	virtq_reset(&vq, 256);
	vq.packed = true;
	vq.desc_gpa = RAM_SIZE - 16 * 128;
	vq.avail_gpa = DRV_AREA;
	vq.used_gpa = DEV_AREA;
	assert_int_equal(virtq_map(&vq, &f->mem), -22);
	assert_non_null(strstr(vq.error, "outside guest RAM"));
	assert_null(vq.desc);

	virtq_reset(&vq, 256);
	vq.packed = true;
	vq.size = 100;
	vq.desc_gpa = DESC_GPA;
	vq.avail_gpa = DRV_AREA;
	vq.used_gpa = DEV_AREA;
	assert_int_equal(virtq_map(&vq, &f->mem), 0);
}

/* Migrated state: indexes inside the ring, in-flight ids that add up. */
static void test_packed_check_loaded(void **state)
{
	struct fixture *f = *state;
	struct virtq *vq = &f->vq;

	drv_add_writable(f, 4, 3);
	drv_add_writable(f, 1, 2);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, &f->e, 0);		/* id 1 first: used at 2 */
	assert_int_equal(virtq_check_loaded(vq), 0);
	vq->inflight = 2;
	assert_int_equal(virtq_check_loaded(vq), -22);
	vq->inflight = 1;
	vq->packed_ndescs[4] = 2;		/* 3 slots are between used and avail */
	assert_int_equal(virtq_check_loaded(vq), -22);
	vq->packed_ndescs[4] = 3;
	vq->last_avail_idx = QSIZE;
	assert_int_equal(virtq_check_loaded(vq), -22);
	vq->last_avail_idx = 5;
	vq->avail_wrap = false;			/* a lap ahead */
	assert_int_equal(virtq_check_loaded(vq), -22);
	vq->avail_wrap = true;
	vq->packed_ndescs[QSIZE + 1] = 1;	/* id beyond the queue */
	assert_int_equal(virtq_check_loaded(vq), -22);
	vq->packed_ndescs[QSIZE + 1] = 0;
	assert_int_equal(virtq_check_loaded(vq), 0);
	vq->packed = false;			/* split state never has packed ids */
	assert_int_equal(virtq_check_loaded(vq), -22);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define P(fn) cmocka_unit_test_setup_teardown(fn, setup_packed, teardown)

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
		T(test_suppress_kicks),
		T(test_answer_wait),
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
		P(test_packed_empty),
		P(test_packed_chain),
		P(test_packed_indirect),
		P(test_packed_wraparound),
		P(test_packed_fill_flush_unpop),
		P(test_packed_driver_event),
		P(test_packed_device_event),
		P(test_packed_id_out_of_range),
		P(test_packed_id_reused),
		P(test_packed_id_from_last_descriptor),
		P(test_packed_chain_too_long),
		P(test_packed_chain_not_available),
		P(test_packed_chain_across_wrap_needs_new_counter),
		P(test_packed_buffer_outside_ram),
		P(test_packed_readable_after_writable),
		P(test_packed_indirect_bad),
		P(test_packed_device_push_not_in_flight),
		P(test_packed_map_rejects),
		P(test_packed_check_loaded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
