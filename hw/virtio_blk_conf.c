/* virtio-blk properties and configuration space, as QEMU 7.2 has them:
 * the defaults and realize's checks of the properties, the guessed CHS
 * geometry, the offered features and config size, the config space
 * itself (capacity, limits, topology, geometry) and the guest-visible
 * write cache (the wce byte with CONFIG_WCE, the negotiated WCE feature
 * at DRIVER_OK otherwise). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "block/block.h"
#include "block/endian.h"
#include "hw/virtio_blk_int.h"

#define SEG_MAX_UNADJUSTED	(128 - 2)

/* --- properties and features ---------------------------------------------- */

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

void virtio_blk_conf_init(struct virtio_blk_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->num_queues = 1;
	c->queue_size = VIRTIO_BLK_QUEUE_SIZE;
	c->seg_max_adjust = true;
	c->config_wce = true;
	c->discard = true;
	c->write_zeroes = true;
	c->writeback = true;
	c->logical_block_size = BDRV_SECTOR_SIZE;
	c->physical_block_size = BDRV_SECTOR_SIZE;
	c->discard_granularity = UINT32_MAX;
	c->max_discard_sectors = VIRTIO_BLK_REQUEST_MAX_SECTORS;
	c->max_write_zeroes_sectors = VIRTIO_BLK_REQUEST_MAX_SECTORS;
}

static bool valid_block_size(uint32_t v)
{
	return is_pow2(v) && v >= VIRTIO_BLK_MIN_BLOCK_SIZE && v <= VIRTIO_BLK_MAX_BLOCK_SIZE;
}

static int check_sizes(const struct virtio_blk_conf *c, char *err, size_t errlen)
{
	uint32_t lbs = c->logical_block_size;

	if (!valid_block_size(lbs) || !valid_block_size(c->physical_block_size)) {
		snprintf(err, errlen, "block sizes must be powers of two from 512 to 2M");
		return -EINVAL;
	}
	if (lbs > c->physical_block_size) {
		snprintf(err, errlen, "logical_block_size > physical_block_size not supported");
		return -EINVAL;
	}
	if (c->min_io_size % lbs) {
		snprintf(err, errlen, "min_io_size must be a multiple of logical_block_size");
		return -EINVAL;
	}
	if (c->min_io_size / lbs > UINT16_MAX) {
		snprintf(err, errlen, "min_io_size must not exceed %u logical blocks", UINT16_MAX);
		return -EINVAL;
	}
	if (c->opt_io_size % lbs) {
		snprintf(err, errlen, "opt_io_size must be a multiple of logical_block_size");
		return -EINVAL;
	}
	if (c->discard_granularity != UINT32_MAX && c->discard_granularity % lbs) {
		snprintf(err, errlen, "discard_granularity must be a multiple of "
			 "logical_block_size");
		return -EINVAL;
	}
	return 0;
}

int virtio_blk_conf_check(const struct virtio_blk_conf *c, char *err, size_t errlen)
{
	if (!c->num_queues) {
		snprintf(err, errlen, "num-queues property must be larger than 0");
		return -EINVAL;
	}
	if (c->num_queues > VIRTIO_BLK_MAX_NUM_QUEUES) {
		snprintf(err, errlen, "num-queues property must be at most %d",
			 VIRTIO_BLK_MAX_NUM_QUEUES);
		return -EINVAL;
	}
	if (c->queue_size <= 2) {
		snprintf(err, errlen, "invalid queue-size property (%u), must be > 2",
			 c->queue_size);
		return -EINVAL;
	}
	if (!is_pow2(c->queue_size) || c->queue_size > VIRTQ_MAX_SIZE) {
		snprintf(err, errlen, "invalid queue-size property (%u), must be a power of 2 "
			 "(max %d)", c->queue_size, VIRTQ_MAX_SIZE);
		return -EINVAL;
	}
	if (c->size_max && c->size_max < VIRTIO_BLK_MIN_SIZE_MAX) {
		snprintf(err, errlen, "invalid size-max property (%u), must be 0 (not offered) "
			 "or at least %d", c->size_max, VIRTIO_BLK_MIN_SIZE_MAX);
		return -EINVAL;
	}
	if (c->discard && (!c->max_discard_sectors ||
			   c->max_discard_sectors > VIRTIO_BLK_REQUEST_MAX_SECTORS)) {
		snprintf(err, errlen, "invalid max-discard-sectors property (%u), must be "
			 "between 1 and %d", c->max_discard_sectors,
			 VIRTIO_BLK_REQUEST_MAX_SECTORS);
		return -EINVAL;
	}
	if (c->write_zeroes && (!c->max_write_zeroes_sectors ||
				c->max_write_zeroes_sectors > VIRTIO_BLK_REQUEST_MAX_SECTORS)) {
		snprintf(err, errlen, "invalid max-write-zeroes-sectors property (%u), must be "
			 "between 1 and %d", c->max_write_zeroes_sectors,
			 VIRTIO_BLK_REQUEST_MAX_SECTORS);
		return -EINVAL;
	}
	return check_sizes(c, err, errlen);
}

/* QEMU's CHS guess: from an MBR partition's end (heads <= 16), else
 * 16 heads, 63 sectors and as many cylinders as fit (2..16383). */
void virtio_blk_guess_geometry(struct virtio_blk *blk)
{
	uint8_t mbr[BDRV_SECTOR_SIZE];
	uint64_t nb = blk->capacity, cyls;

	if (nb >= 1 && bdev_pread(blk->bs, 0, mbr, sizeof(mbr)) == 0 &&
	    mbr[510] == 0x55 && mbr[511] == 0xaa) {
		for (int i = 0; i < 4; i++) {
			const uint8_t *p = mbr + 0x1be + 16 * i;
			unsigned heads = p[5] + 1, secs = p[6] & 63;

			if (!ld_le32(p + 12) || !p[5] || !secs)
				continue;
			cyls = nb / (heads * secs);
			if (cyls < 1 || cyls > 16383)
				continue;
			if (heads > 16)
				break;	/* an LBA-translated layout: use the default */
			blk->cyls = cyls;
			blk->heads = heads;
			blk->secs = secs;
			return;
		}
	}
	cyls = nb / (16 * 63);
	blk->cyls = cyls > 16383 ? 16383 : cyls < 2 ? 2 : cyls;
	blk->heads = 16;
	blk->secs = 63;
}

uint64_t virtio_blk_offered_features(const struct virtio_blk *blk)
{
	const struct virtio_blk_conf *c = &blk->conf;
	uint64_t f = 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_GEOMETRY |
		     1ull << VIRTIO_BLK_F_TOPOLOGY | 1ull << VIRTIO_BLK_F_BLK_SIZE;

	if (c->config_wce)
		f |= 1ull << VIRTIO_BLK_F_CONFIG_WCE;
	if (c->size_max)
		f |= 1ull << VIRTIO_BLK_F_SIZE_MAX;
	if (c->discard)
		f |= 1ull << VIRTIO_BLK_F_DISCARD;
	if (c->write_zeroes)
		f |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	if (blk->original_wce || c->config_wce)	/* x-enable-wce-if-config-wce */
		f |= 1ull << VIRTIO_BLK_F_WCE;
	if (blk->read_only)
		f |= 1ull << VIRTIO_BLK_F_RO;
	if (c->num_queues > 1)
		f |= 1ull << VIRTIO_BLK_F_MQ;
	return f;
}

unsigned virtio_blk_config_size(const struct virtio_blk_conf *c)
{
	if (c->write_zeroes)
		return VIRTIO_BLK_CFG_SIZE_WRITE_ZEROES;
	return c->discard ? VIRTIO_BLK_CFG_SIZE_DISCARD : VIRTIO_BLK_CFG_SIZE_BASE;
}

/* --- configuration space ------------------------------------------------ */

static unsigned physical_block_exp(const struct virtio_blk_conf *c)
{
	uint32_t logical = c->logical_block_size > 512 ? c->logical_block_size : 512;
	unsigned exp = 0;

	for (uint32_t size = c->physical_block_size; size > logical; size >>= 1)
		exp++;
	return exp;
}

/* The whole config space from the device state (QEMU's get_config). */
void virtio_blk_refresh_config(struct virtio_blk *blk)
{
	const struct virtio_blk_conf *c = &blk->conf;
	uint8_t *cfg = blk->vp.config;
	uint32_t lbs = c->logical_block_size;
	uint32_t gran = c->discard_granularity == UINT32_MAX ? lbs : c->discard_granularity;

	memset(cfg, 0, VIRTIO_BLK_CFG_SIZE);
	st_le64(cfg + VIRTIO_BLK_CFG_CAPACITY, blk->capacity);
	st_le32(cfg + VIRTIO_BLK_CFG_SIZE_MAX, c->size_max);
	st_le32(cfg + VIRTIO_BLK_CFG_SEG_MAX,
		 c->seg_max_adjust ? c->queue_size - 2u : SEG_MAX_UNADJUSTED);
	st_le16(cfg + VIRTIO_BLK_CFG_CYLINDERS, blk->cyls);
	cfg[VIRTIO_BLK_CFG_HEADS] = blk->heads;
	cfg[VIRTIO_BLK_CFG_SECTORS] = blk->secs;
	st_le32(cfg + VIRTIO_BLK_CFG_BLK_SIZE, lbs);
	cfg[VIRTIO_BLK_CFG_PHYS_BLOCK_EXP] = physical_block_exp(c);
	st_le16(cfg + VIRTIO_BLK_CFG_MIN_IO_SIZE, c->min_io_size / lbs);
	st_le32(cfg + VIRTIO_BLK_CFG_OPT_IO_SIZE, c->opt_io_size / lbs);
	cfg[VIRTIO_BLK_CFG_WCE] = blk->st.wce;
	st_le16(cfg + VIRTIO_BLK_CFG_NUM_QUEUES, c->num_queues);
	if (c->discard) {
		st_le32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, c->max_discard_sectors);
		st_le32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1);
		st_le32(cfg + VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, gran / BDRV_SECTOR_SIZE);
	}
	if (c->write_zeroes) {
		st_le32(cfg + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS,
			 c->max_write_zeroes_sectors);
		st_le32(cfg + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 1);
		cfg[VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
	}
}

/* The driver wrote config bytes: as QEMU, only the wce byte matters (any
 * write sets the cache from it); everything else reads back unchanged. */
void virtio_blk_config_write(struct virtio_pci *vp, unsigned off, unsigned size)
{
	struct virtio_blk *blk = vp->opaque;

	(void)off;
	(void)size;
	blk->st.wce = vp->config[VIRTIO_BLK_CFG_WCE] != 0;
	virtio_blk_refresh_config(blk);
}

static bool guest_has(const struct virtio_blk *blk, unsigned bit)
{
	return blk->vp.guest_features & (1ull << bit);
}

/* At DRIVER_OK a driver without CONFIG_WCE gets the cache it negotiated
 * (QEMU's set_status): writeback only if it can flush. The transport calls
 * us on every queue right after DRIVER_OK is set. */
void virtio_blk_apply_driver_ok(struct virtio_blk *blk)
{
	if (blk->st.driver_ok_seen || !(blk->vp.status & VIRTIO_STATUS_DRIVER_OK))
		return;
	blk->st.driver_ok_seen = true;
	if (!guest_has(blk, VIRTIO_BLK_F_CONFIG_WCE)) {
		blk->st.wce = guest_has(blk, VIRTIO_BLK_F_WCE);
		virtio_blk_refresh_config(blk);
	}
}
