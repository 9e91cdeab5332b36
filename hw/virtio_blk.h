/* virtio-blk-pci model: the block device (virtio type 2) on the virtio-pci
 * transport and the block layer, with QEMU 7.2's feature set, config
 * layout, limits and status values. Public so unit tests can drive it with
 * a fake guest memory and a bdev opened by the test, and so the monitor
 * can read its statistics. */
#ifndef HW_VIRTIO_BLK_H
#define HW_VIRTIO_BLK_H

#include <pthread.h>
#include "hw/virtio_pci.h"
#include "hw/virtq_poll.h"

struct bdev;
struct event_loop;

#define VIRTIO_ID_BLOCK		2
#define VIRTIO_BLK_PCI_ID	(VIRTIO_PCI_TRANSITIONAL_BASE + 1)

/* Request types (virtio 1.x section 5.2.6); the OUT bit gives the
 * direction and BARRIER is ignored, as QEMU does. */
#define VIRTIO_BLK_T_IN			0
#define VIRTIO_BLK_T_OUT		1
#define VIRTIO_BLK_T_SCSI_CMD		2
#define VIRTIO_BLK_T_FLUSH		4
#define VIRTIO_BLK_T_GET_ID		8
#define VIRTIO_BLK_T_DISCARD		11
#define VIRTIO_BLK_T_WRITE_ZEROES	13
#define VIRTIO_BLK_T_BARRIER		0x80000000u
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1
#define VIRTIO_BLK_S_OK		0
#define VIRTIO_BLK_S_IOERR	1
#define VIRTIO_BLK_S_UNSUPP	2
#define VIRTIO_BLK_ID_BYTES	20
#define VIRTIO_BLK_HDR_SIZE	16	/* type, reserved, sector */
#define VIRTIO_BLK_DWZ_SIZE	16	/* discard/write-zeroes segment */

/* Feature bits (SCSI is defined but, like QEMU 7.2's transitional device,
 * never offered; SIZE_MAX only with size-max=, which QEMU lacks) */
#define VIRTIO_BLK_F_SIZE_MAX	1
#define VIRTIO_BLK_F_SEG_MAX	2
#define VIRTIO_BLK_F_GEOMETRY	4
#define VIRTIO_BLK_F_RO		5
#define VIRTIO_BLK_F_BLK_SIZE	6
#define VIRTIO_BLK_F_SCSI	7
#define VIRTIO_BLK_F_FLUSH	9	/* legacy name: WCE */
#define VIRTIO_BLK_F_WCE	9
#define VIRTIO_BLK_F_TOPOLOGY	10
#define VIRTIO_BLK_F_CONFIG_WCE	11
#define VIRTIO_BLK_F_MQ		12
#define VIRTIO_BLK_F_DISCARD	13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Device configuration layout (little-endian, struct virtio_blk_config) */
#define VIRTIO_BLK_CFG_CAPACITY			0	/* u64, 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX			8	/* u32 */
#define VIRTIO_BLK_CFG_SEG_MAX			12	/* u32 */
#define VIRTIO_BLK_CFG_CYLINDERS		16	/* u16 */
#define VIRTIO_BLK_CFG_HEADS			18	/* u8 */
#define VIRTIO_BLK_CFG_SECTORS			19	/* u8 */
#define VIRTIO_BLK_CFG_BLK_SIZE			20	/* u32 */
#define VIRTIO_BLK_CFG_PHYS_BLOCK_EXP		24	/* u8 */
#define VIRTIO_BLK_CFG_ALIGNMENT_OFFSET		25	/* u8 */
#define VIRTIO_BLK_CFG_MIN_IO_SIZE		26	/* u16, logical blocks */
#define VIRTIO_BLK_CFG_OPT_IO_SIZE		28	/* u32, logical blocks */
#define VIRTIO_BLK_CFG_WCE			32	/* u8, guest-writable */
#define VIRTIO_BLK_CFG_NUM_QUEUES		34	/* u16 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS	36	/* u32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG		40	/* u32 */
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT	44	/* u32, sectors */
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS	48	/* u32 */
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG	52	/* u32 */
#define VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP	56	/* u8 */
/* Config sizes as QEMU computes them from the offered features */
#define VIRTIO_BLK_CFG_SIZE_BASE		36
#define VIRTIO_BLK_CFG_SIZE_DISCARD		48
#define VIRTIO_BLK_CFG_SIZE_WRITE_ZEROES	57
#define VIRTIO_BLK_CFG_SIZE			VIRTIO_BLK_CFG_SIZE_WRITE_ZEROES

/* Limits and defaults (QEMU 7.2) */
#define VIRTIO_BLK_QUEUE_SIZE		256	/* queue-size default */
#define VIRTIO_BLK_REQUEST_MAX_SECTORS	0x3fffff	/* INT_MAX >> 9 */
#define VIRTIO_BLK_MAX_NUM_QUEUES	(VIRTIO_MAX_QUEUES < 16 ? VIRTIO_MAX_QUEUES : 16)
#define VIRTIO_BLK_MIN_BLOCK_SIZE	512
#define VIRTIO_BLK_MAX_BLOCK_SIZE	(2u << 20)
#define VIRTIO_BLK_MIN_SIZE_MAX		4096	/* a page: what Linux accepts */

/* Device properties: -device virtio-blk-pci,... and -drive ... */
struct virtio_blk_conf {
	const char *serial;		/* NULL: none */
	unsigned num_queues;		/* 1..VIRTIO_BLK_MAX_NUM_QUEUES */
	uint16_t queue_size;		/* power of two, 4..VIRTQ_MAX_SIZE */
	bool seg_max_adjust;		/* seg_max = queue_size - 2 (else 126) */
	bool config_wce;		/* offer CONFIG_WCE */
	bool discard;			/* offer DISCARD */
	bool write_zeroes;		/* offer WRITE_ZEROES */
	bool read_only;			/* also forced by a read-only bdev */
	bool discard_unmap;		/* -drive discard=unmap: discards reach the image */
	bool writeback;			/* initial write cache state (cache= mode) */
	uint32_t logical_block_size;	/* bytes, 512..2M, power of two */
	uint32_t physical_block_size;	/* 0: = 512 */
	uint32_t min_io_size, opt_io_size;	/* bytes, multiples of logical */
	uint32_t discard_granularity;	/* bytes; UINT32_MAX: logical block size */
	uint32_t max_discard_sectors;	/* 1..VIRTIO_BLK_REQUEST_MAX_SECTORS */
	uint32_t max_write_zeroes_sectors;
	uint32_t size_max;		/* bytes per data segment; 0: SIZE_MAX not offered */
};

/* Per-operation statistics (like QEMU's query-blockstats). ops/bytes count
 * successful requests, failed those the block layer failed, invalid those
 * refused before reaching it (range, size, read-only). Latencies cover
 * ops and failed requests, from pop to completion, in nanoseconds. */
enum virtio_blk_op {
	VIRTIO_BLK_OP_READ,
	VIRTIO_BLK_OP_WRITE,
	VIRTIO_BLK_OP_FLUSH,
	VIRTIO_BLK_OP_DISCARD,
	VIRTIO_BLK_OP_WRITE_ZEROES,
	VIRTIO_BLK_OP_COUNT
};
/* Histogram buckets: < 10 us, < 100 us, < 1 ms, < 10 ms, < 100 ms, < 1 s, more */
#define VIRTIO_BLK_LAT_BUCKETS	7
struct virtio_blk_op_stats {
	uint64_t ops, bytes, failed, invalid;
	uint64_t total_ns, max_ns;
	uint64_t hist[VIRTIO_BLK_LAT_BUCKETS];
};
struct virtio_blk_stats {
	struct virtio_blk_op_stats op[VIRTIO_BLK_OP_COUNT];
	uint64_t wr_highest_offset;	/* end of the highest successful write, bytes */
	uint64_t last_access_ns;	/* clock_ns() of the last completion; 0: none */
	uint64_t writethrough_flushes;	/* flushes added after writes (write cache off) */
	unsigned inflight;		/* in the block layer now */
};

struct blk_req;

/* Migrated device state (registered as "virtio-blk" by the -device glue). */
struct virtio_blk_state {
	bool wce;			/* write cache on: no flush after writes */
	bool driver_ok_seen;		/* the DRIVER_OK rule for WCE was applied */
	uint16_t num_queues, queue_size;	/* checked against ours on load */
	uint16_t local_num_queues, local_queue_size;	/* not in the stream */
};

struct virtio_blk {
	struct virtio_pci vp;
	struct virtio_dev_ops ops;	/* per device: features, queues, config size */
	struct virtio_blk_conf conf;
	char serial[VIRTIO_BLK_ID_BYTES + 1];
	struct bdev *bs;
	struct event_loop *loop;	/* completions run here */
	uint64_t capacity;		/* 512-byte sectors */
	uint32_t sector_mask;		/* logical block size / 512 - 1 */
	bool read_only;
	uint16_t cyls;			/* guessed geometry, as QEMU does */
	uint8_t heads, secs;

	/* Device state (device lock). */
	struct virtio_blk_state st;
	bool original_wce;		/* restored by reset */
	unsigned generation;		/* bumped by reset: stale completions dropped */
	struct virtio_blk_stats stats;

	/* Completion hand-off from block threads (done_lock, a leaf lock). */
	pthread_mutex_t done_lock;
	pthread_cond_t idle_cond;
	struct blk_req *done;		/* finished in the block layer, not yet pushed */
	unsigned io_inflight;		/* submitted to the block layer, not finished */
	bool done_scheduled;		/* done_timer is armed */
	struct event_timer *done_timer;	/* completes the done list on the event loop */
	bool processing;		/* a queue is being served: that thread completes
					 * the done list before it drops the device lock */
	struct virtq_elem *done_elem;	/* scratch for used entries (device lock) */
	int poll_fd;			/* polled bdev: its completion fd on loop; else -1 */
	struct virtq_poll queue_poll[VIRTIO_BLK_MAX_NUM_QUEUES];	/* hw/virtq_poll.h */
	struct virtq_answer answer[VIRTIO_BLK_MAX_NUM_QUEUES];	/* device lock */
	bool stopping;			/* exit: poll timers no longer re-armed */
};

/* QEMU's defaults: one queue of 256, CONFIG_WCE/DISCARD/WRITE_ZEROES on,
 * writeback, 512-byte blocks, discard=ignore. */
void virtio_blk_conf_init(struct virtio_blk_conf *conf);
/* Check conf as QEMU's realize does; 0 or -EINVAL with one line in err. */
int virtio_blk_conf_check(const struct virtio_blk_conf *conf, char *err, size_t errlen);
/* Build the device over bs (the caller keeps ownership of bs). Requests
 * are completed on loop; NULL: on a private completion thread shared by
 * such devices (tests, fuzzers). A bdev opened with poll_completions is
 * polled on loop through bdev_aio_poll_fd() (its engine must have one):
 * the loop then submits and reaps itself, with no block thread hop. */
int virtio_blk_init(struct virtio_blk *blk, struct bdev *bs, const struct virtio_blk_conf *conf,
		    const struct guest_memory *mem, struct event_loop *loop);
/* Drain and release what init allocated (then bs may be closed). Not on
 * the completion loop's thread. */
void virtio_blk_exit(struct virtio_blk *blk);
/* Serve queue q: pop requests and submit them to the block layer. */
void virtio_blk_process(struct virtio_pci *vp, unsigned q);
/* Wait until no request is in the block layer and every finished one is
 * back in its used ring (migration, shutdown). Any thread but a block
 * layer callback; the device lock may be held. */
void virtio_blk_drain(struct virtio_blk *blk);
/* virtio_blk_drain for every device made from the command line (for
 * migration and snapshots, with the vCPUs stopped). */
void virtio_blk_drain_all(void);
/* Requests in the block layer now. */
unsigned virtio_blk_inflight(struct virtio_blk *blk);
/* Snapshot of the statistics. */
void virtio_blk_get_stats(struct virtio_blk *blk, struct virtio_blk_stats *out);
/* Latency histogram bucket of a duration. */
unsigned virtio_blk_lat_bucket(uint64_t ns);

/* -drive / -device option strings (QEMU syntax, ",," is a literal comma):
 * the value of key in spec, unescaped, into buf. 1 found, 0 absent, -1 too
 * long for buf. */
int virtio_blk_opt_get(const char *spec, const char *key, char *buf, size_t len);

extern const struct vmstate_desc virtio_blk_vmstate;

#endif
