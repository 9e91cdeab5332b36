/* fw_cfg model: items, sorted big-endian file directory, the byte stream
 * with bounded offsets, and the DMA interface into fake guest RAM with
 * hostile addresses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hw/fw_cfg.h"
#include "vmm/memory.h"

#define RAM_SIZE (2 * MiB)

struct fixture {
	struct fw_cfg s;
	struct guest_memory mem;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->mem.host = calloc(1, RAM_SIZE);
	f->mem.ram_size = f->mem.below_4g = RAM_SIZE;
	fw_cfg_init_model(&f->s, &f->mem);
	assert_int_equal(fw_cfg_model_add(&f->s, FW_CFG_SIGNATURE, "QEMU", 4), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fw_cfg_free_model(&f->s);
	free(f->mem.host);
	free(f);
	return 0;
}

static void read_bytes(struct fw_cfg *s, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = fw_cfg_read_byte(s);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static void test_signature(void **state)
{
	struct fixture *f = *state;
	uint8_t sig[4];

	fw_cfg_select(&f->s, FW_CFG_SIGNATURE);
	read_bytes(&f->s, sig, 4);
	assert_memory_equal(sig, "QEMU", 4);
	/* Reselecting restarts at offset 0. */
	fw_cfg_select(&f->s, FW_CFG_SIGNATURE);
	assert_int_equal(fw_cfg_read_byte(&f->s), 'Q');
}

static void test_file_dir_sorted_big_endian(void **state)
{
	struct fixture *f = *state;
	uint8_t dir[4 + 3 * 64];
	uint8_t b;

	assert_int_equal(fw_cfg_model_add_file(&f->s, "zeta", "Z", 1), 0);
	assert_int_equal(fw_cfg_model_add_file(&f->s, "etc/e820", "0123456789", 10), 0);
	assert_int_equal(fw_cfg_model_add_file(&f->s, "bootorder", "", 0), 0);
	fw_cfg_select(&f->s, FW_CFG_FILE_DIR);
	read_bytes(&f->s, dir, sizeof(dir));
	assert_int_equal(be32(dir), 3);
	assert_string_equal((char *)dir + 4 + 8, "bootorder");
	assert_int_equal(be32(dir + 4), 0);
	assert_int_equal(dir[4 + 4] << 8 | dir[4 + 5], 0x20);
	assert_string_equal((char *)dir + 68 + 8, "etc/e820");
	assert_int_equal(be32(dir + 68), 10);
	assert_int_equal(dir[68 + 4] << 8 | dir[68 + 5], 0x21);
	assert_string_equal((char *)dir + 132 + 8, "zeta");
	assert_int_equal(dir[132 + 4] << 8 | dir[132 + 5], 0x22);
	/* The key in the directory selects the file. */
	fw_cfg_select(&f->s, 0x22);
	b = fw_cfg_read_byte(&f->s);
	assert_int_equal(b, 'Z');
	/* Replacing keeps one entry and updates the size. */
	assert_int_equal(fw_cfg_model_add_file(&f->s, "zeta", "ZZ", 2), 0);
	fw_cfg_select(&f->s, FW_CFG_FILE_DIR);
	read_bytes(&f->s, dir, sizeof(dir));
	assert_int_equal(be32(dir), 3);
	assert_int_equal(be32(dir + 132), 2);
	/* Names must fit in 55 bytes plus NUL. */
	char longname[80];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[79] = 0;
	assert_int_equal(fw_cfg_model_add_file(&f->s, longname, "", 0), -EINVAL);
}

static void test_stream_past_end_and_bad_selector(void **state)
{
	struct fixture *f = *state;

	fw_cfg_select(&f->s, FW_CFG_SIGNATURE);
	for (int i = 0; i < 4; i++)
		fw_cfg_read_byte(&f->s);
	for (int i = 0; i < 100; i++)
		assert_int_equal(fw_cfg_read_byte(&f->s), 0);
	/* Unknown keys, out-of-range file keys, write channel, arch keys. */
	static const uint16_t keys[] = { 0x3fff, 0x20, 0x7fff, 0xffff, 0x8003, 0x4000 };
	for (unsigned k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		fw_cfg_select(&f->s, keys[k]);
		assert_int_equal(fw_cfg_read_byte(&f->s), keys[k] == 0x4000 ? 'Q' : 0);
	}
	/* Items cannot take file keys or the write bit. */
	assert_int_equal(fw_cfg_model_add(&f->s, 0x25, "x", 1), -EINVAL);
	assert_int_equal(fw_cfg_model_add(&f->s, 0x4001, "x", 1), -EINVAL);
}

static void put_desc(struct fixture *f, uint64_t gpa, uint32_t control, uint32_t len,
		     uint64_t addr)
{
	uint8_t *d = f->mem.host + gpa;

	for (int i = 0; i < 4; i++) {
		d[i] = control >> (24 - 8 * i);
		d[4 + i] = len >> (24 - 8 * i);
	}
	for (int i = 0; i < 8; i++)
		d[8 + i] = addr >> (56 - 8 * i);
}

static uint32_t desc_control(struct fixture *f, uint64_t gpa)
{
	return be32(f->mem.host + gpa);
}

static void test_dma_read(void **state)
{
	struct fixture *f = *state;

	memset(f->mem.host + 0x2000, 0xaa, 16);
	put_desc(f, 0x1000, FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ,
		 8, 0x2000);
	/* Through the port halves, as SeaBIOS writes them (byte-swapped). */
	fw_cfg_dma_write_high(&f->s, __builtin_bswap32(0));
	fw_cfg_dma_write_low(&f->s, __builtin_bswap32(0x1000));
	assert_int_equal(desc_control(f, 0x1000), 0);
	assert_memory_equal(f->mem.host + 0x2000, "QEMU\0\0\0\0", 8);	/* zero-filled */
	assert_int_equal(f->mem.host[0x2008], 0xaa);
	/* Skip then read continues at the offset. */
	put_desc(f, 0x1000, FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_SKIP,
		 2, 0);
	fw_cfg_dma_run(&f->s, 0x1000);
	put_desc(f, 0x1000, FW_CFG_DMA_READ, 2, 0x3000);
	fw_cfg_dma_run(&f->s, 0x1000);
	assert_int_equal(desc_control(f, 0x1000), 0);
	assert_memory_equal(f->mem.host + 0x3000, "MU", 2);
	/* The byte stream shares the offset. */
	assert_int_equal(fw_cfg_read_byte(&f->s), 0);
}

static void test_dma_bad_addresses(void **state)
{
	struct fixture *f = *state;

	/* Destination outside RAM, straddling the end, wrapping. */
	static const uint64_t bad[] = { RAM_SIZE, RAM_SIZE - 2, 0xfffffffffffffff0ull,
					0xfee00000 };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_desc(f, 0x1000, FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_SELECT |
			 FW_CFG_DMA_READ, 4, bad[i]);
		fw_cfg_dma_run(&f->s, 0x1000);
		assert_int_equal(desc_control(f, 0x1000), FW_CFG_DMA_ERROR);
	}
	/* Huge length. */
	put_desc(f, 0x1000, FW_CFG_DMA_READ, 0xffffffff, 0x2000);
	fw_cfg_dma_run(&f->s, 0x1000);
	assert_int_equal(desc_control(f, 0x1000), FW_CFG_DMA_ERROR);
	/* Descriptor itself outside RAM: ignored, nothing crashes. */
	fw_cfg_dma_run(&f->s, RAM_SIZE - 8);
	fw_cfg_dma_run(&f->s, 0xfffffffffffffff8ull);
	/* No guest memory at all. */
	f->s.mem = NULL;
	fw_cfg_dma_run(&f->s, 0x1000);
}

static void test_dma_write_rejected(void **state)
{
	struct fixture *f = *state;
	uint8_t sig[4];

	memcpy(f->mem.host + 0x2000, "EVIL", 4);
	put_desc(f, 0x1000, FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE,
		 4, 0x2000);
	fw_cfg_dma_run(&f->s, 0x1000);
	assert_int_equal(desc_control(f, 0x1000), FW_CFG_DMA_ERROR);
	fw_cfg_select(&f->s, FW_CFG_SIGNATURE);
	read_bytes(&f->s, sig, 4);
	assert_memory_equal(sig, "QEMU", 4);
	/* Unknown selector read by DMA: zeros, no error. */
	memset(f->mem.host + 0x2000, 0xaa, 4);
	put_desc(f, 0x1000, 0x1234 << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ, 4, 0x2000);
	fw_cfg_dma_run(&f->s, 0x1000);
	assert_int_equal(desc_control(f, 0x1000), 0);
	assert_memory_equal(f->mem.host + 0x2000, "\0\0\0\0", 4);
}

static unsigned gen_len = 3;

static void generator(struct fw_cfg_item *it, void *opaque)
{
	fw_cfg_item_set(it, "abcdefgh", gen_len);
}

static void test_generated_file_refreshes_dir(void **state)
{
	struct fixture *f = *state;
	uint8_t dir[4 + 64];

	assert_int_equal(fw_cfg_model_add_file(&f->s, "etc/gen", "x", 1), 0);
	assert_int_equal(fw_cfg_model_set_generator(&f->s, "etc/gen", generator, NULL), 0);
	assert_int_equal(fw_cfg_model_set_generator(&f->s, "nope", generator, NULL), -ENOENT);
	gen_len = 5;
	fw_cfg_select(&f->s, FW_CFG_FILE_DIR);
	read_bytes(&f->s, dir, sizeof(dir));
	assert_int_equal(be32(dir + 4), 5);
	fw_cfg_select(&f->s, 0x20);
	assert_int_equal(fw_cfg_read_byte(&f->s), 'a');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_signature, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_dir_sorted_big_endian, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_past_end_and_bad_selector, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dma_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dma_bad_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dma_write_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generated_file_refreshes_dir, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
