/* Private to the virtio-net model: what its three files share. The data
 * path, config space and transport hooks are hw/virtio_net.c, the control
 * queue and the device state it sets hw/virtio_net_ctrl.c, the options and
 * the command line hw/virtio_net_conf.c. Nothing else includes this. */
#ifndef HW_VIRTIO_NET_INT_H
#define HW_VIRTIO_NET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "hw/virtio_net.h"

#define ETH_ALEN			6
#define ETH_HLEN			14

static inline bool has(const struct virtio_net *n, unsigned bit)
{
	return n->vp.guest_features & (1ull << bit);
}

/* The receive offloads the driver negotiated (GUEST_* feature bits). */
static inline uint64_t negotiated_guest_offloads(const struct virtio_net *n)
{
	return n->vp.guest_features & VIRTIO_NET_GUEST_OFFLOADS_MASK;
}

/* hw/virtio_net.c */
/* Copy up to len bytes at offset off of iov[0..cnt) into dst; returns
 * the bytes copied. */
size_t virtio_net_iov_read(const struct iovec *iov, unsigned cnt, uint64_t off, void *dst,
			   size_t len);
/* Host address of byte off of iov[0..cnt), NULL when beyond it. */
uint8_t *virtio_net_iov_byte(const struct iovec *iov, unsigned cnt, uint64_t off);
/* Tell a vnet-header backend which receive offloads (GUEST_* feature
 * bits) the guest takes; < 0 when it refuses. */
int virtio_net_apply_guest_offloads(struct virtio_net *n, uint64_t offloads);
/* The config space from the state: MAC, link up, queue pairs, MTU. */
void virtio_net_write_config(struct virtio_net *n);

/* hw/virtio_net_ctrl.c */
/* Does the guest want a frame? head: its first len bytes (at least the
 * Ethernet header). */
bool virtio_net_rx_filter(const struct virtio_net *n, const uint8_t *head, size_t len);
/* Serve the control queue q. */
void virtio_net_process_ctrl(struct virtio_net *n, unsigned q);
/* The state the control queue sets, as at device reset. */
void virtio_net_state_reset(struct virtio_net *n);

/* hw/virtio_net_conf.c */
/* The feature bits a device with options o offers (vnet_hdr: the backend
 * carries the header, so offloads are possible). */
uint64_t virtio_net_device_features(const struct virtio_net_opts *o, bool vnet_hdr,
				    unsigned pairs);
/* rx_queue_size= and tx_queue_size=: powers of 2 from 256 to 1024. */
bool virtio_net_queue_size_ok(unsigned s);

#endif
