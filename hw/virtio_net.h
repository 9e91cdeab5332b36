/* virtio-net-pci model: the network device (virtio type 1) on the
 * virtio-pci transport and a network backend (net/net.h). The backend is
 * reached through a small ops table so unit tests and the fuzzer plug in
 * a fake one; the machine uses the net/ layer's. Public so tests can
 * drive the model with a fake guest memory, and so the monitor can read
 * per-interface statistics. */
#ifndef HW_VIRTIO_NET_H
#define HW_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/uio.h>
#include "hw/virtio_pci.h"
#include "hw/virtq_poll.h"
#include "net/net.h"

struct event_loop;

#define VIRTIO_ID_NET		1
#define VIRTIO_NET_PCI_ID	(VIRTIO_PCI_TRANSITIONAL_BASE + 0)

/* Feature bits (virtio 1.x section 5.1.3) */
#define VIRTIO_NET_F_CSUM		0
#define VIRTIO_NET_F_GUEST_CSUM		1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU		3
#define VIRTIO_NET_F_MAC		5
#define VIRTIO_NET_F_GSO		6
#define VIRTIO_NET_F_GUEST_TSO4		7
#define VIRTIO_NET_F_GUEST_TSO6		8
#define VIRTIO_NET_F_GUEST_ECN		9
#define VIRTIO_NET_F_GUEST_UFO		10
#define VIRTIO_NET_F_HOST_TSO4		11
#define VIRTIO_NET_F_HOST_TSO6		12
#define VIRTIO_NET_F_HOST_ECN		13
#define VIRTIO_NET_F_HOST_UFO		14
#define VIRTIO_NET_F_MRG_RXBUF		15
#define VIRTIO_NET_F_STATUS		16
#define VIRTIO_NET_F_CTRL_VQ		17
#define VIRTIO_NET_F_CTRL_RX		18
#define VIRTIO_NET_F_CTRL_VLAN		19
#define VIRTIO_NET_F_CTRL_RX_EXTRA	20
#define VIRTIO_NET_F_GUEST_ANNOUNCE	21
#define VIRTIO_NET_F_MQ			22
#define VIRTIO_NET_F_CTRL_MAC_ADDR	23

/* Device configuration layout (little-endian), as QEMU lays it out */
#define VIRTIO_NET_CFG_MAC		0
#define VIRTIO_NET_CFG_STATUS		6
#define VIRTIO_NET_CFG_MAX_PAIRS	8
#define VIRTIO_NET_CFG_MTU		10
#define VIRTIO_NET_CFG_SIZE		12
#define VIRTIO_NET_S_LINK_UP		1

/* struct virtio_net_hdr (10 bytes) + num_buffers (12 bytes) */
#define VIRTIO_NET_HDR_LEN		10
#define VIRTIO_NET_HDR_MRG_LEN		12
#define VIRTIO_NET_HDR_NUM_BUFFERS	10	/* offset of num_buffers */
#define VIRTIO_NET_HDR_GSO_NONE		0
#define VIRTIO_NET_MAX_PAYLOAD		65535	/* largest frame behind a header */

/* Control virtqueue (section 5.1.6.5): class, command, data, ack */
#define VIRTIO_NET_OK			0
#define VIRTIO_NET_ERR			1
#define VIRTIO_NET_CTRL_RX		0
#define VIRTIO_NET_CTRL_RX_PROMISC	0
#define VIRTIO_NET_CTRL_RX_ALLMULTI	1
#define VIRTIO_NET_CTRL_RX_ALLUNI	2
#define VIRTIO_NET_CTRL_RX_NOMULTI	3
#define VIRTIO_NET_CTRL_RX_NOUNI	4
#define VIRTIO_NET_CTRL_RX_NOBCAST	5
#define VIRTIO_NET_CTRL_MAC		1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET	0
#define VIRTIO_NET_CTRL_MAC_ADDR_SET	1
#define VIRTIO_NET_CTRL_VLAN		2
#define VIRTIO_NET_CTRL_VLAN_ADD	0	/* data: le16 VLAN id, below 4096 */
#define VIRTIO_NET_CTRL_VLAN_DEL	1
#define VIRTIO_NET_CTRL_MQ		4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET	0
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS	5
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET 0	/* data: le64 of GUEST_* feature bits */

#define VIRTIO_NET_QUEUE_SIZE		256	/* QEMU's rx/tx default */
#define VIRTIO_NET_CTRL_QUEUE_SIZE	64
#define VIRTIO_NET_MAC_TABLE_ENTRIES	64	/* unicast + multicast, like QEMU */
#define VIRTIO_NET_MAX_VLAN		4096	/* VLAN ids 0..4095 */
#define VIRTIO_NET_MIN_MTU		68	/* host_mtu= bounds, as in QEMU */
#define VIRTIO_NET_MAX_MTU		65535
/* The receive offloads CTRL_GUEST_OFFLOADS_SET may switch (feature bits). */
#define VIRTIO_NET_GUEST_OFFLOADS_MASK	((1ull << VIRTIO_NET_F_GUEST_CSUM) | \
					 (1ull << VIRTIO_NET_F_GUEST_TSO4) | \
					 (1ull << VIRTIO_NET_F_GUEST_TSO6) | \
					 (1ull << VIRTIO_NET_F_GUEST_ECN) | \
					 (1ull << VIRTIO_NET_F_GUEST_UFO))
/* rx0, tx0, rx1, tx1, ..., ctrl: what the transport's queue array holds */
#define VIRTIO_NET_MAX_PAIRS		((VIRTIO_MAX_QUEUES - 1) / 2)

/* The backend as the model sees it (net/net.h for the machine; a fake in
 * tests). Calls happen on the event loop thread with the device locked. */
struct virtio_net_backend_ops {
	int (*attach)(void *be, const struct net_frontend *fe);
	ssize_t (*send)(void *be, const struct iovec *iov, int iovcnt);
	/* Optional batching (net_send_more / net_flush): send_more may copy
	 * the frame aside until flush, which follows each tx pass. */
	ssize_t (*send_more)(void *be, const struct iovec *iov, int iovcnt);
	void (*flush)(void *be);
	void (*receive_ready)(void *be);
	bool (*has_vnet_hdr)(void *be);
	int (*set_vnet_hdr_len)(void *be, unsigned len);
	int (*set_offloads)(void *be, const struct net_offloads *o);
};

/* The net/ layer's backends behind those ops (be is a struct net_backend). */
extern const struct virtio_net_backend_ops virtio_net_netdev_ops;

/* Device options (the -device keys); defaults from virtio_net_default_opts. */
struct virtio_net_opts {
	uint8_t mac[6];
	unsigned pairs;			/* the netdev's queues (1..VIRTIO_NET_MAX_PAIRS) */
	int vectors;			/* MSI-X vectors: -1 one per queue + config,
					 * 0 none (INTx only) */
	uint16_t rx_queue_size, tx_queue_size;
	bool mq, ctrl_vq, ctrl_vlan, mrg_rxbuf;
	bool csum, guest_csum, gso;
	bool host_tso4, host_tso6, guest_tso4, guest_tso6;
	bool packed;			/* offer packed rings (QEMU's default: off) */
	unsigned host_mtu;		/* 0: no F_MTU (QEMU's default), else 68..65535 */
};

/* Device state carried by migration (the "virtio-net" vmstate section). */
struct virtio_net_state {
	uint8_t mac[6];
	bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
	uint32_t uni_count, multi_count;	/* table: unicast first */
	bool uni_overflow, multi_overflow;
	uint8_t mac_table[VIRTIO_NET_MAC_TABLE_ENTRIES * 6];
	uint8_t vlans[VIRTIO_NET_MAX_VLAN / 8];	/* CTRL_VLAN: tagged frames pass for
						 * the ids set here (bit id % 8 of
						 * byte id / 8) */
	uint16_t curr_pairs;
	uint64_t guest_offloads;	/* receive offloads on (GUEST_* feature bits) */
	bool guest_offloads_set;	/* guest_offloads follows this negotiation */
	uint16_t max_pairs;		/* not migrated: bounds curr_pairs */
};

struct virtio_net;

/* Transmit polling of one queue pair: after a busy pass the device looks
 * at the tx queue again from a timer instead of asking for a kick. */

struct virtio_net {
	struct virtio_pci vp;
	struct virtio_dev_ops ops;	/* per device: queue count, features */
	struct virtio_net_opts opts;
	const struct virtio_net_backend_ops *be_ops;
	void *be;
	struct net_frontend fe;		/* what the backend calls */
	const char *netdev_id;		/* for the monitor */
	struct event_loop *loop;	/* NULL: interrupts inline (tests) */
	bool be_vnet_hdr;

	struct virtio_net_state st;

	/* Runtime (rebuilt after reset or migration). */
	uint64_t applied_features;	/* what the backend was told */
	bool applied;
	bool rx_blocked;		/* receive refused: call receive_ready on a kick */
	uint32_t tx_blocked;		/* tx queues waiting for send_ready (bit per pair) */
	uint32_t rx_irq_pending;	/* rx queues with used buffers not signalled */
	bool rx_irq_scheduled;
	struct virtq_poll tx_poll[VIRTIO_NET_MAX_PAIRS];	/* per pair: its tx queue */
	struct event_timer *rx_timer;	/* out of rx buffers: look again (NULL: no loop) */
	bool rx_poll_armed;
	unsigned rx_polls;		/* looks since the rx queues ran dry */
	bool loop_thread_known;
	pthread_t loop_thread;
	struct net_stats stats;
	struct iovec tx_iov[VIRTQ_MAX_SIZE];	/* a frame behind its header */
};

void virtio_net_default_opts(struct virtio_net_opts *o);
/* Build the device over a backend (be_ops/be: see above; the frontend is
 * attached here). loop NULL: rx interrupts are raised inline. */
int virtio_net_init(struct virtio_net *n, const struct virtio_net_opts *o,
		    const struct virtio_net_backend_ops *be_ops, void *be,
		    const struct guest_memory *mem, struct event_loop *loop);
/* Serve queue q (the transport's queue_notify). */
void virtio_net_process(struct virtio_pci *vp, unsigned q);

/* Header length the guest uses with the negotiated features (10 or 12). */
unsigned virtio_net_hdr_len(const struct virtio_net *n);

/* Statistics for the monitor: the devices in creation order. */
unsigned virtio_net_count(void);
/* Device i: its netdev id (NULL past the end) and counters. */
const char *virtio_net_stats(unsigned i, struct net_stats *out);
void virtio_net_get_stats(struct virtio_net *n, struct net_stats *out);

extern const struct vmstate_desc virtio_net_vmstate;

#endif
