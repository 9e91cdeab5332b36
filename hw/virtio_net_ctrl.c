/* The control queue of virtio-net-pci (virtio 1.x section 5.1.6.5) and
 * the device state it sets: rx modes, MAC tables and VLAN ids (the receive
 * filter every frame passes), the MAC address, the queue pairs in use (MQ) and
 * the guest offloads command. Also that state's reset values and its
 * migration section ("virtio-net"). The rest of the model is
 * hw/virtio_net.c. */
#include <errno.h>
#include <string.h>
#include "hw/virtio_net_int.h"
#include "vmm/log.h"
#include "vmm/vmstate.h"

/* --- receive filter ------------------------------------------------------ */

static bool mac_in(const uint8_t *table, unsigned count, const uint8_t *mac)
{
	for (unsigned i = 0; i < count; i++)
		if (!memcmp(table + i * ETH_ALEN, mac, ETH_ALEN))
			return true;
	return false;
}

static bool vlan_set(const struct virtio_net_state *s, unsigned vid)
{
	return s->vlans[vid / 8] & (1u << (vid % 8));
}

/* With CTRL_VLAN, an 802.1Q-tagged frame passes only for a VLAN id the
 * driver added (a tag cut short passes for none). */
static bool vlan_wanted(const struct virtio_net *n, const uint8_t *head, size_t len)
{
	if (!has(n, VIRTIO_NET_F_CTRL_VLAN) || head[12] != 0x81 || head[13] != 0)
		return true;
	return len >= ETH_HLEN + 2 &&
	       vlan_set(&n->st, ((head[14] & 0x0f) << 8 | head[15]));
}

/* Does the guest want a frame? (QEMU's order of checks) */
bool virtio_net_rx_filter(const struct virtio_net *n, const uint8_t *head, size_t len)
{
	static const uint8_t bcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	const struct virtio_net_state *s = &n->st;
	const uint8_t *dst = head;

	if (s->promisc)
		return true;
	if (!vlan_wanted(n, head, len))
		return false;
	if (!memcmp(dst, bcast, ETH_ALEN))
		return !s->nobcast;
	if (dst[0] & 1) {
		if (s->nomulti)
			return false;
		if (s->allmulti || s->multi_overflow)
			return true;
		return mac_in(s->mac_table + s->uni_count * ETH_ALEN, s->multi_count, dst);
	}
	if (s->nouni)
		return false;
	if (s->alluni || s->uni_overflow || !memcmp(dst, s->mac, ETH_ALEN))
		return true;
	return mac_in(s->mac_table, s->uni_count, dst);
}

/* --- control queue ------------------------------------------------------- */

static uint8_t ctrl_rx(struct virtio_net *n, uint8_t cmd, const struct virtq_elem *e,
		       uint64_t dlen)
{
	struct virtio_net_state *s = &n->st;
	bool *modes[] = { &s->promisc, &s->allmulti, &s->alluni, &s->nomulti, &s->nouni,
			  &s->nobcast };
	uint8_t on;

	if (!has(n, VIRTIO_NET_F_CTRL_RX) || cmd > VIRTIO_NET_CTRL_RX_NOBCAST ||
	    (cmd > VIRTIO_NET_CTRL_RX_ALLMULTI && !has(n, VIRTIO_NET_F_CTRL_RX_EXTRA))) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: rx mode command %u not negotiated", cmd);
		return VIRTIO_NET_ERR;
	}
	if (dlen != 1) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: rx mode command with %llu data bytes",
			  (unsigned long long)dlen);
		return VIRTIO_NET_ERR;
	}
	virtio_net_iov_read(e->iov, e->n_out, 2, &on, 1);
	*modes[cmd] = on != 0;
	return VIRTIO_NET_OK;
}

static uint32_t read_le32_at(const struct virtq_elem *e, uint64_t off)
{
	uint8_t b[4] = { 0 };

	virtio_net_iov_read(e->iov, e->n_out, off, b, 4);
	return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Two tables, unicast then multicast: le32 entries, entries * 6 bytes. */
static uint8_t ctrl_mac_table(struct virtio_net *n, const struct virtq_elem *e, uint64_t dlen)
{
	struct virtio_net_state *s = &n->st;
	uint8_t table[sizeof(s->mac_table)];
	uint64_t uni, multi, off = 2, uni_bytes;
	unsigned in_use = 0;
	bool uni_over = false, multi_over = false;

	if (dlen < 8)
		goto bad;
	uni = read_le32_at(e, off);
	uni_bytes = 4 + ETH_ALEN * uni;
	if (uni_bytes > dlen - 4)
		goto bad;
	multi = read_le32_at(e, off + uni_bytes);
	if (uni_bytes + 4 + ETH_ALEN * multi != dlen)
		goto bad;
	if (uni <= VIRTIO_NET_MAC_TABLE_ENTRIES) {
		virtio_net_iov_read(e->iov, e->n_out, off + 4, table, ETH_ALEN * uni);
		in_use = uni;
	} else {
		uni_over = true;
	}
	if (multi <= VIRTIO_NET_MAC_TABLE_ENTRIES - in_use)
		virtio_net_iov_read(e->iov, e->n_out, off + uni_bytes + 4,
				    table + in_use * ETH_ALEN, ETH_ALEN * multi);
	else
		multi_over = true;
	memset(s->mac_table, 0, sizeof(s->mac_table));
	s->uni_count = in_use;
	s->multi_count = multi_over ? 0 : multi;
	memcpy(s->mac_table, table, (s->uni_count + s->multi_count) * ETH_ALEN);
	s->uni_overflow = uni_over;
	s->multi_overflow = multi_over;
	return VIRTIO_NET_OK;
bad:
	log_guest(LOG_GUEST_ERRORS, "virtio-net: MAC table command of %llu bytes is malformed",
		  (unsigned long long)dlen);
	return VIRTIO_NET_ERR;
}

static uint8_t ctrl_mac(struct virtio_net *n, uint8_t cmd, const struct virtq_elem *e,
			uint64_t dlen)
{
	if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET && has(n, VIRTIO_NET_F_CTRL_RX))
		return ctrl_mac_table(n, e, dlen);
	if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET && has(n, VIRTIO_NET_F_CTRL_MAC_ADDR)) {
		if (dlen != ETH_ALEN) {
			log_guest(LOG_GUEST_ERRORS, "virtio-net: MAC address command of %llu bytes",
				  (unsigned long long)dlen);
			return VIRTIO_NET_ERR;
		}
		virtio_net_iov_read(e->iov, e->n_out, 2, n->st.mac, ETH_ALEN);
		virtio_net_write_config(n);
		return VIRTIO_NET_OK;
	}
	log_guest(LOG_GUEST_ERRORS, "virtio-net: MAC command %u not negotiated", cmd);
	return VIRTIO_NET_ERR;
}

static uint8_t ctrl_vlan(struct virtio_net *n, uint8_t cmd, const struct virtq_elem *e,
			 uint64_t dlen)
{
	uint8_t b[2];
	unsigned vid;

	if (cmd > VIRTIO_NET_CTRL_VLAN_DEL || !has(n, VIRTIO_NET_F_CTRL_VLAN) || dlen != 2) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: VLAN command %u (%llu bytes) refused", cmd,
			  (unsigned long long)dlen);
		return VIRTIO_NET_ERR;
	}
	virtio_net_iov_read(e->iov, e->n_out, 2, b, 2);
	vid = b[0] | b[1] << 8;
	if (vid >= VIRTIO_NET_MAX_VLAN) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: VLAN id %u out of range", vid);
		return VIRTIO_NET_ERR;
	}
	if (cmd == VIRTIO_NET_CTRL_VLAN_ADD)
		n->st.vlans[vid / 8] |= 1u << (vid % 8);
	else
		n->st.vlans[vid / 8] &= ~(1u << (vid % 8));
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_mq(struct virtio_net *n, uint8_t cmd, const struct virtq_elem *e,
		       uint64_t dlen)
{
	uint8_t b[2];
	unsigned pairs;

	if (cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || !has(n, VIRTIO_NET_F_MQ) || dlen != 2) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: MQ command %u (%llu bytes) refused", cmd,
			  (unsigned long long)dlen);
		return VIRTIO_NET_ERR;
	}
	virtio_net_iov_read(e->iov, e->n_out, 2, b, 2);
	pairs = b[0] | b[1] << 8;
	if (pairs < 1 || pairs > n->st.max_pairs) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: %u queue pairs requested, %u offered",
			  pairs, n->st.max_pairs);
		return VIRTIO_NET_ERR;
	}
	n->st.curr_pairs = pairs;
	return VIRTIO_NET_OK;
}

/* A le64 of GUEST_* feature bits: the receive offloads from now on, a
 * subset of the negotiated ones (QEMU accepts longer data, as here). */
static uint8_t ctrl_guest_offloads(struct virtio_net *n, uint8_t cmd, const struct virtq_elem *e,
				   uint64_t dlen)
{
	uint8_t b[8];
	uint64_t want = 0;

	if (cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET ||
	    !has(n, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) || dlen < 8) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: guest offloads command %u (%llu bytes) "
			  "refused", cmd, (unsigned long long)dlen);
		return VIRTIO_NET_ERR;
	}
	virtio_net_iov_read(e->iov, e->n_out, 2, b, 8);
	for (int i = 7; i >= 0; i--)
		want = want << 8 | b[i];
	if (want & ~negotiated_guest_offloads(n)) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: guest offloads 0x%llx not negotiated",
			  (unsigned long long)want);
		return VIRTIO_NET_ERR;
	}
	if (n->be_vnet_hdr && virtio_net_apply_guest_offloads(n, want) < 0) {
		log_warn("%s: backend %s refused the offloads", n->ops.name,
			 n->netdev_id ? n->netdev_id : "");
		return VIRTIO_NET_ERR;
	}
	n->st.guest_offloads = want;
	n->st.guest_offloads_set = true;
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_command(struct virtio_net *n, const struct virtq_elem *e)
{
	uint8_t cmd[2];
	uint64_t dlen = e->out_len - 2;

	virtio_net_iov_read(e->iov, e->n_out, 0, cmd, 2);
	switch (cmd[0]) {
	case VIRTIO_NET_CTRL_RX:
		return ctrl_rx(n, cmd[1], e, dlen);
	case VIRTIO_NET_CTRL_MAC:
		return ctrl_mac(n, cmd[1], e, dlen);
	case VIRTIO_NET_CTRL_VLAN:
		return ctrl_vlan(n, cmd[1], e, dlen);
	case VIRTIO_NET_CTRL_MQ:
		return ctrl_mq(n, cmd[1], e, dlen);
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
		return ctrl_guest_offloads(n, cmd[1], e, dlen);
	}
	log_guest(LOG_GUEST_ERRORS, "virtio-net: unsupported control class %u", cmd[0]);
	return VIRTIO_NET_ERR;
}

void virtio_net_process_ctrl(struct virtio_net *n, unsigned q)
{
	struct virtio_pci *vp = &n->vp;
	struct virtq *vq = &vp->vqs[q];
	struct virtq_elem *e = vp->elem;
	unsigned done = 0;
	int r = 0;

	while (done < vq->size && (r = virtq_pop(vq, e)) == 1) {
		uint8_t ack;

		if (e->out_len < 2 || !e->in_len) {
			virtio_pci_set_needs_reset(vp, "virtio-net: control command without class, "
						   "command or ack byte");
			return;
		}
		ack = ctrl_command(n, e);
		*(uint8_t *)virtio_net_iov_byte(e->iov + e->n_out, e->n_in, 0) = ack;
		virtq_push(vq, e, 1);
		done++;
	}
	if (r < 0)
		virtio_pci_set_needs_reset(vp, vq->error);
	if (done)
		virtio_pci_queue_interrupt(vp, q);
	if (r == 1 && done == vq->size)
		virtio_pci_kick_later(vp, q);
}

/* --- reset and migration ------------------------------------------------- */

void virtio_net_state_reset(struct virtio_net *n)
{
	struct virtio_net_state *s = &n->st;

	memcpy(s->mac, n->opts.mac, ETH_ALEN);
	s->promisc = true;	/* QEMU's reset state: a driver without CTRL_RX sees all */
	s->allmulti = s->alluni = s->nomulti = s->nouni = s->nobcast = false;
	s->uni_count = s->multi_count = 0;
	s->uni_overflow = s->multi_overflow = false;
	memset(s->mac_table, 0, sizeof(s->mac_table));
	memset(s->vlans, 0, sizeof(s->vlans));	/* with CTRL_VLAN tagged frames wait for an ADD */
	s->curr_pairs = 1;
	s->guest_offloads = 0;		/* the negotiated set once features are known */
	s->guest_offloads_set = false;
}

static int virtio_net_post_load(void *opaque)
{
	struct virtio_net_state *s = opaque;

	if (s->uni_count + s->multi_count > VIRTIO_NET_MAC_TABLE_ENTRIES)
		return -EINVAL;
	if (s->curr_pairs < 1 || s->curr_pairs > s->max_pairs)
		return -EINVAL;
	if (s->guest_offloads & ~VIRTIO_NET_GUEST_OFFLOADS_MASK)
		return -EINVAL;
	return 0;
}

static const struct vmstate_field virtio_net_fields[] = {
	VMSTATE_U8_ARRAY(struct virtio_net_state, mac),
	VMSTATE_BOOL(struct virtio_net_state, promisc),
	VMSTATE_BOOL(struct virtio_net_state, allmulti),
	VMSTATE_BOOL(struct virtio_net_state, alluni),
	VMSTATE_BOOL(struct virtio_net_state, nomulti),
	VMSTATE_BOOL(struct virtio_net_state, nouni),
	VMSTATE_BOOL(struct virtio_net_state, nobcast),
	VMSTATE_U32_MAX(struct virtio_net_state, uni_count, VIRTIO_NET_MAC_TABLE_ENTRIES),
	VMSTATE_U32_MAX(struct virtio_net_state, multi_count, VIRTIO_NET_MAC_TABLE_ENTRIES),
	VMSTATE_BOOL(struct virtio_net_state, uni_overflow),
	VMSTATE_BOOL(struct virtio_net_state, multi_overflow),
	VMSTATE_U8_ARRAY(struct virtio_net_state, mac_table),
	VMSTATE_U8_ARRAY(struct virtio_net_state, vlans),
	VMSTATE_U16_MAX(struct virtio_net_state, curr_pairs, VIRTIO_NET_MAX_PAIRS),
	VMSTATE_U64(struct virtio_net_state, guest_offloads),
	VMSTATE_BOOL(struct virtio_net_state, guest_offloads_set),
};
const struct vmstate_desc virtio_net_vmstate =
	VMSTATE_DESC("virtio-net", 3, virtio_net_fields, virtio_net_post_load);
