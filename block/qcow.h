/* qcow (version 1) internals shared by block/qcow*.c: the on-disk
 * constants, the open-image state (geometry, L1 table, L2 cache,
 * allocation point, cluster buffers) and the functions the parts call on
 * each other.
 *
 * On-disk layout (all fields big-endian):
 *   0  u32 magic "QFI\xfb"      4  u32 version (1)
 *   8  u64 backing_file_offset  16 u32 backing_file_size
 *   20 u32 mtime                24 u64 size (bytes)
 *   32 u8  cluster_bits         33 u8  l2_bits
 *   34 u16 padding              36 u32 crypt_method
 *   40 u64 l1_table_offset      (48 bytes)
 * L1 entries are L2 table offsets; L2 entries are cluster offsets, with
 * bit 63 marking a compressed cluster whose compressed length is stored
 * in the cluster_bits bits below it. */
#ifndef BLOCK_QCOW_H
#define BLOCK_QCOW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "block/format.h"

#define QCOW_MAGIC		0x514649fbu
#define QCOW_VERSION		1
#define QCOW_HEADER_SIZE	48
#define QCOW_CRYPT_NONE		0
#define QCOW_CRYPT_AES		1
#define QCOW_OFLAG_COMPRESSED	(1ull << 63)
#define QCOW_MAX_BACKING_NAME	1023
#define QCOW_MAX_L1_BYTES	(256u << 20)
#define QCOW_L2_CACHE_SIZE	16
#define QCOW_MAX_ERRORS_LOGGED	8

struct qcow_l2_slot {
	uint64_t offset;		/* 0 = empty */
	uint64_t last_use;
	uint64_t *table;		/* host byte order */
};

struct qcow_state {
	unsigned cluster_bits, l2_bits;
	uint32_t cluster_size, l2_entries;
	uint64_t cluster_offset_mask;	/* offset bits of a compressed entry */
	uint64_t l1_table_offset;
	uint32_t l1_size;
	uint64_t *l1;			/* host byte order */
	uint64_t file_end;		/* allocation point (grows) */
	struct qcow_l2_slot l2[QCOW_L2_CACHE_SIZE];
	uint64_t use_clock;
	uint8_t *cluster_buf;		/* one cluster, for COW and decompression */
	uint8_t *zbuf;			/* one compressed cluster */
	unsigned errors_logged;
};

/* qcow.c */
/* Forget every cached L2 table (after the file's tables changed under
 * the cache). */
void qcow_l2_cache_drop(struct qcow_state *s);

/* qcow_create.c */
int qcow_create(const char *path, const struct block_create_opts *o, char *err, size_t errlen);
int qcow_change_backing(struct bdev *bs, const char *file, const char *fmt);

/* qcow_check.c */
int qcow_check(struct bdev *bs, enum block_repair fix, struct block_check_result *res,
	       FILE *report);

#endif
