/* virtio_drv.c: the kit's CPL3 virtio-pci driver library: PCI discovery
 * and BAR assignment, modern capabilities / legacy I/O BAR, feature
 * negotiation, split virtqueues (free list, add, kick with EVENT_IDX, pop),
 * packed virtqueues (wrap counters, buffer ids, event suppression), MSI-X,
 * and a bump heap for ring and buffer memory. See virtio_drv.h. */
#include "tests/guest/virtio_drv.h"

/* ---------------- memory ---------------- */
extern char _end[];
#define HEAP_LIMIT	(96ull << 20)

static u64 heap_next;

static void heap_init(void)
{
	if (!heap_next)
		heap_next = ((u64)_end + (1 << 20) - 1) & ~((1ull << 20) - 1);
}

void *dma_alloc(size_t size, size_t align)
{
	u64 p;

	heap_init();
	if (align < 16)
		align = 16;
	p = (heap_next + align - 1) & ~(u64)(align - 1);
	if (p + size > HEAP_LIMIT || p + size < p)
		return NULL;
	heap_next = p + size;
	memset((void *)p, 0, size);
	return (void *)p;
}

u64 dma_mark(void)
{
	heap_init();
	return heap_next;
}

void dma_release(u64 mark)
{
	if (mark)
		heap_next = mark;
}

/* ---------------- PCI configuration space ---------------- */
static void cfg_addr(u32 slot, u32 off)
{
	outl(0xcf8, 0x80000000u | slot << 11 | (off & 0xfc));
}

u32 pci_cfg_read32(u32 slot, u32 off)
{
	cfg_addr(slot, off);
	return inl(0xcfc);
}

u16 pci_cfg_read16(u32 slot, u32 off)
{
	cfg_addr(slot, off);
	return inw(0xcfc + (off & 2));
}

u8 pci_cfg_read8(u32 slot, u32 off)
{
	cfg_addr(slot, off);
	return inb(0xcfc + (off & 3));
}

void pci_cfg_write32(u32 slot, u32 off, u32 v)
{
	cfg_addr(slot, off);
	outl(0xcfc, v);
}

void pci_cfg_write16(u32 slot, u32 off, u16 v)
{
	cfg_addr(slot, off);
	outw(0xcfc + (off & 2), v);
}

void pci_cfg_write8(u32 slot, u32 off, u8 v)
{
	cfg_addr(slot, off);
	outb(0xcfc + (off & 3), v);
}

/* ---------------- discovery and mapping ---------------- */
static u16 transitional_id(u16 type)
{
	switch (type) {
	case VIRTIO_ID_NET:	return 0x1000;
	case VIRTIO_ID_BLOCK:	return 0x1001;
	case VIRTIO_ID_CONSOLE:	return 0x1003;
	case VIRTIO_ID_RNG:	return 0x1005;
	}
	return 0xffff;
}

int vdev_find(struct vdev *d, u16 type, u32 nth)
{
	memset(d, 0, sizeof(*d));
	for (u32 slot = 0; slot < 32; slot++) {
		u32 id = pci_cfg_read32(slot, 0);
		u16 dev = id >> 16;

		if ((id & 0xffff) != VIRTIO_VENDOR)
			continue;
		if (dev != transitional_id(type) && dev != 0x1040u + type)
			continue;
		if (nth--)
			continue;
		d->slot = slot;
		d->pci_id = dev;
		d->type = type;
		return 0;
	}
	return -1;
}

/* Where a BAR sits; assigns one (direct boot has no firmware) when it is
 * unassigned or outside the identity-mapped 4 GiB. */
static u64 bar_address(struct vdev *d, u32 bar, u32 fallback)
{
	u32 off = 0x10 + 4 * bar, lo = pci_cfg_read32(d->slot, off);
	u64 addr;

	if (lo & 1) {
		addr = lo & ~3u;
		if (!addr) {
			pci_cfg_write32(d->slot, off, fallback);
			addr = pci_cfg_read32(d->slot, off) & ~3u;
		}
		return addr;
	}
	addr = lo & ~0xfu;
	if ((lo & 6) == 4)
		addr |= (u64)pci_cfg_read32(d->slot, off + 4) << 32;
	if (!addr || addr >> 32) {
		pci_cfg_write32(d->slot, off, fallback);
		if ((lo & 6) == 4)
			pci_cfg_write32(d->slot, off + 4, 0);
		addr = pci_cfg_read32(d->slot, off) & ~0xfu;
	}
	return addr;
}

static u64 mem_bar(struct vdev *d, u32 bir)
{
	if (bir == 4)
		return d->bar4;
	return bar_address(d, bir, 0xe4000000u + (d->slot << 20));
}

static int parse_caps(struct vdev *d)
{
	u8 c = pci_cfg_read8(d->slot, 0x34);
	int hops = 0;

	while (c >= 0x40 && hops++ < 48) {
		u8 id = pci_cfg_read8(d->slot, c), type = pci_cfg_read8(d->slot, c + 3);
		u32 bar = pci_cfg_read8(d->slot, c + 4), off = pci_cfg_read32(d->slot, c + 8);

		if (id == 0x11) {
			d->msix_cap = c;
			d->msix_size = (pci_cfg_read16(d->slot, c + 2) & 0x7ff) + 1;
			d->msix_table = pci_cfg_read32(d->slot, c + 4);
			d->msix_pba = pci_cfg_read32(d->slot, c + 8);
		} else if (id == 0x09 && bar == 4 && !d->legacy) {
			if (type == 1)
				d->common = d->bar4 + off;
			else if (type == 2) {
				d->notify = d->bar4 + off;
				d->notify_mult = pci_cfg_read32(d->slot, c + 16);
			} else if (type == 3)
				d->isr = d->bar4 + off;
			else if (type == 4)
				d->devcfg = d->bar4 + off;
		}
		c = pci_cfg_read8(d->slot, c + 1);
	}
	if (!d->legacy && (!d->common || !d->isr || !d->notify))
		return fail("modern capabilities missing (common %#lx isr %#lx notify %#lx)",
			    d->common, d->isr, d->notify);
	if (d->msix_cap) {	/* minikvm keeps table and PBA in BAR 4, QEMU in BAR 1 */
		if (d->legacy && ((d->msix_table & 7) == 4 || (d->msix_pba & 7) == 4))
			d->bar4 = bar_address(d, 4, 0xe0000000u + (d->slot << 20));
		d->msix_table = mem_bar(d, d->msix_table & 7) + (d->msix_table & ~7ull);
		d->msix_pba = mem_bar(d, d->msix_pba & 7) + (d->msix_pba & ~7ull);
	}
	return 0;
}

int vdev_map(struct vdev *d, bool legacy)
{
	u32 sub = pci_cfg_read32(d->slot, 0x2c);
	u16 cmd = pci_cfg_read16(d->slot, 0x04);

	d->legacy = legacy;
	if (sub >> 16 != d->type)
		return fail("subsystem id %#x, expected %u", sub >> 16, d->type);
	if (legacy) {
		if (d->pci_id >= 0x1040)
			return fail("modern-only device %#x has no legacy interface", d->pci_id);
		d->iobase = bar_address(d, 0, 0xc000 + d->slot * 0x100);
		cmd |= 0x5;	/* I/O decode, bus master */
	} else {
		d->bar4 = bar_address(d, 4, 0xe0000000u + (d->slot << 20));
		cmd |= 0x6;	/* memory decode, bus master */
	}
	if (parse_caps(d) < 0)
		return -1;
	if (d->msix_cap)
		cmd |= 0x2;	/* the MSI-X table needs memory decode */
	pci_cfg_write16(d->slot, 0x04, cmd);
	info("device at 00:%02x.0, %s, %s %#lx", d->slot,
	     d->pci_id < 0x1040 ? "transitional" : "modern",
	     legacy ? "I/O BAR 0" : "BAR 4", legacy ? (u64)d->iobase : d->bar4);
	return 0;
}

/* ---------------- registers ---------------- */
static u8 common_read8(struct vdev *d, u32 off) { return mmio_read8(d->common + off); }
static u16 common_read16(struct vdev *d, u32 off) { return mmio_read16(d->common + off); }
static u32 common_read32(struct vdev *d, u32 off) { return mmio_read32(d->common + off); }
static void common_write8(struct vdev *d, u32 off, u8 v) { mmio_write8(d->common + off, v); }
static void common_write16(struct vdev *d, u32 off, u16 v) { mmio_write16(d->common + off, v); }
static void common_write32(struct vdev *d, u32 off, u32 v) { mmio_write32(d->common + off, v); }
static void common_write64(struct vdev *d, u32 off, u64 v)
{
	common_write32(d, off, (u32)v);
	common_write32(d, off + 4, v >> 32);
}

u8 vdev_status(struct vdev *d)
{
	return d->legacy ? inb(d->iobase + 0x12) : common_read8(d, 0x14);
}

void vdev_set_status(struct vdev *d, u8 v)
{
	if (d->legacy)
		outb(d->iobase + 0x12, v);
	else
		common_write8(d, 0x14, v);
}

u8 vdev_isr(struct vdev *d)
{
	return d->legacy ? inb(d->iobase + 0x13) : mmio_read8(d->isr);
}

void vdev_reset(struct vdev *d)
{
	vdev_set_status(d, 0);
}

u16 vdev_num_queues(struct vdev *d)
{
	return d->legacy ? 0 : common_read16(d, 0x12);
}

u16 vdev_queue_max(struct vdev *d, u16 index)
{
	if (d->legacy) {
		outw(d->iobase + 0x0e, index);
		return inw(d->iobase + 0x0c);
	}
	common_write16(d, 0x16, index);
	return common_read16(d, 0x18);
}

static u32 legacy_cfg_base(struct vdev *d)
{
	return d->iobase + (d->msix_on ? 0x18 : 0x14);
}

u8 vdev_cfg8(struct vdev *d, u32 off)
{
	return d->legacy ? inb(legacy_cfg_base(d) + off) : mmio_read8(d->devcfg + off);
}

u16 vdev_cfg16(struct vdev *d, u32 off)
{
	return d->legacy ? inw(legacy_cfg_base(d) + off) : mmio_read16(d->devcfg + off);
}

u32 vdev_cfg32(struct vdev *d, u32 off)
{
	return d->legacy ? inl(legacy_cfg_base(d) + off) : mmio_read32(d->devcfg + off);
}

u64 vdev_cfg64(struct vdev *d, u32 off)
{
	return vdev_cfg32(d, off) | (u64)vdev_cfg32(d, off + 4) << 32;
}

void vdev_cfg_write8(struct vdev *d, u32 off, u8 v)
{
	if (d->legacy)
		outb(legacy_cfg_base(d) + off, v);
	else
		mmio_write8(d->devcfg + off, v);
}

u8 vdev_cfg_generation(struct vdev *d)
{
	return d->legacy ? 0 : common_read8(d, 0x15);
}

/* ---------------- initialisation ---------------- */
int vdev_init(struct vdev *d, u64 want)
{
	char packed[4];

	if (cmdline_get("packed", packed, sizeof(packed)) && packed[0] == '1')
		want |= VIRTIO_F_RING_PACKED;	/* every case on packed rings */
	vdev_set_status(d, 0);
	if (vdev_status(d) != 0)
		return fail("status not 0 after reset");
	vdev_set_status(d, VIRTIO_ST_ACK);
	vdev_set_status(d, VIRTIO_ST_ACK | VIRTIO_ST_DRIVER);
	if (d->legacy) {
		d->offered = inl(d->iobase + 0x00);
		d->features = want & d->offered;
		outl(d->iobase + 0x04, (u32)d->features);
		return 0;
	}
	common_write32(d, 0x00, 0);
	d->offered = common_read32(d, 0x04);
	common_write32(d, 0x00, 1);
	d->offered |= (u64)common_read32(d, 0x04) << 32;
	if (!(d->offered & VIRTIO_F_VERSION_1))
		return fail("VERSION_1 not offered (features %#lx)", d->offered);
	d->features = want & d->offered;
	common_write32(d, 0x08, 0);
	common_write32(d, 0x0c, (u32)d->features);
	common_write32(d, 0x08, 1);
	common_write32(d, 0x0c, d->features >> 32);
	vdev_set_status(d, VIRTIO_ST_ACK | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK);
	if (!(vdev_status(d) & VIRTIO_ST_FEATURES_OK))
		return fail("FEATURES_OK not accepted (features %#lx)", d->features);
	return 0;
}

int vdev_driver_ok(struct vdev *d)
{
	vdev_set_status(d, vdev_status(d) | VIRTIO_ST_DRIVER_OK);
	if (vdev_status(d) & VIRTIO_ST_NEEDS_RESET)
		return fail("device needs reset right after init");
	return 0;
}

/* ---------------- MSI-X ---------------- */
void vdev_msix_enable(struct vdev *d, bool on)
{
	u16 ctl = pci_cfg_read16(d->slot, d->msix_cap + 2);

	ctl = on ? (ctl | 0x8000) : (ctl & ~0x8000);
	pci_cfg_write16(d->slot, d->msix_cap + 2, ctl & 0xc000);
	d->msix_on = on;
}

void vdev_msix_set(struct vdev *d, u32 entry, u8 vector, bool masked)
{
	u64 e = d->msix_table + 16 * entry;

	mmio_write32(e, 0xfee00000u | lapic_id() << 12);
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, vector);
	mmio_write32(e + 12, masked);
}

void vdev_msix_mask(struct vdev *d, u32 entry, bool masked)
{
	mmio_write32(d->msix_table + 16 * entry + 12, masked);
}

bool vdev_msix_pending(struct vdev *d, u32 entry)
{
	return mmio_read32(d->msix_pba + 4 * (entry / 32)) & (1u << (entry % 32));
}

int vdev_config_msix(struct vdev *d, u16 entry)
{
	if (d->legacy) {
		outw(d->iobase + 0x14, entry);
		return inw(d->iobase + 0x14) == entry ? 0 : -1;
	}
	common_write16(d, 0x10, entry);
	return common_read16(d, 0x10) == entry ? 0 : -1;
}

/* ---------------- queues ---------------- */
static void vq_reset_free_list(struct virtq *q)
{
	for (u16 i = 0; i < q->size; i++)
		q->desc[i].next = (u16)(i + 1);
	q->free_head = 0;
	q->num_free = q->size;
}

static int vq_alloc_rings(struct virtq *q)
{
	u64 avail_end = 16ull * q->size + 6 + 2ull * q->size;
	u64 used_off = (avail_end + 4095) & ~4095ull;
	u64 total = used_off + ((6 + 8ull * q->size + 4095) & ~4095ull);
	u8 *area = dma_alloc(total, 4096);

	q->token = dma_alloc(sizeof(void *) * q->size, 16);
	if (!area || !q->token)
		return fail("queue %u: out of ring memory", q->index);
	q->desc = (struct vring_desc *)area;
	q->avail = (volatile u16 *)(area + 16 * q->size);
	q->used = area + used_off;
	q->avail_idx = q->kicked_idx = q->last_used = 0;
	vq_reset_free_list(q);
	return 0;
}

/* Packed: the descriptor ring and the two event suppression areas, plus
 * per-id bookkeeping; every id free, both wrap counters 1. */
static int vq_alloc_packed(struct virtq *q)
{
	q->ring = dma_alloc(16ull * q->size, 4096);
	q->driver_ev = dma_alloc(sizeof(struct vring_packed_event), 16);
	q->device_ev = dma_alloc(sizeof(struct vring_packed_event), 16);
	q->token = dma_alloc(sizeof(void *) * q->size, 16);
	q->free_ids = dma_alloc(2ull * q->size, 16);
	q->id_ndescs = dma_alloc(2ull * q->size, 16);
	if (!q->ring || !q->driver_ev || !q->device_ev || !q->token || !q->free_ids ||
	    !q->id_ndescs)
		return fail("queue %u: out of ring memory", q->index);
	for (u16 i = 0; i < q->size; i++)
		q->free_ids[i] = q->size - 1 - i;	/* id 0 first */
	q->num_free_ids = q->size;
	q->num_free = q->size;
	q->next_avail = q->next_used = q->num_added = 0;
	q->avail_wrap = q->used_wrap = true;
	return 0;
}

static int vq_setup_legacy(struct vdev *d, struct virtq *q, u16 index, u16 msix_entry)
{
	outw(d->iobase + 0x0e, index);
	q->size = inw(d->iobase + 0x0c);
	if (!q->size || q->size > VQ_MAX_SIZE || (q->size & (q->size - 1)))
		return fail("legacy queue %u size %u unusable", index, q->size);
	if (vq_alloc_rings(q) < 0)
		return -1;
	if (d->msix_on) {
		outw(d->iobase + 0x16, msix_entry);
		if (inw(d->iobase + 0x16) != msix_entry)
			return fail("queue %u: MSI-X entry %u not accepted", index, msix_entry);
	}
	outl(d->iobase + 0x08, (u64)q->desc >> 12);
	return 0;
}

static int vq_setup_modern(struct vdev *d, struct virtq *q, u16 index, u16 max_size,
			   u16 msix_entry)
{
	u16 size;

	if (index >= common_read16(d, 0x12))
		return fail("queue %u: the device has %u", index, common_read16(d, 0x12));
	common_write16(d, 0x16, index);
	size = common_read16(d, 0x18);
	if (size > max_size)
		size = max_size;
	if (size > VQ_MAX_SIZE)
		size = VQ_MAX_SIZE;
	if (!size || (!q->packed && (size & (size - 1))))
		return fail("queue %u size %u", index, size);
	q->size = size;
	common_write16(d, 0x18, size);
	if (q->packed) {
		if (vq_alloc_packed(q) < 0)
			return -1;
		common_write64(d, 0x20, (u64)q->ring);
		common_write64(d, 0x28, (u64)q->driver_ev);
		common_write64(d, 0x30, (u64)q->device_ev);
	} else {
		if (vq_alloc_rings(q) < 0)
			return -1;
		common_write64(d, 0x20, (u64)q->desc);
		common_write64(d, 0x28, (u64)q->avail);
		common_write64(d, 0x30, (u64)q->used);
	}
	common_write16(d, 0x1a, msix_entry);
	if (common_read16(d, 0x1a) != msix_entry)
		return fail("queue %u: MSI-X entry %u not accepted", index, msix_entry);
	q->notify_addr = d->notify + (u64)common_read16(d, 0x1e) * d->notify_mult;
	common_write16(d, 0x1c, 1);
	return 0;
}

int vq_setup(struct vdev *d, struct virtq *q, u16 index, u16 max_size, u16 msix_entry)
{
	memset(q, 0, sizeof(*q));
	q->d = d;
	q->index = index;
	q->msix_entry = msix_entry;
	q->event_idx = d->features & VIRTIO_F_EVENT_IDX;
	if (d->legacy)
		return vq_setup_legacy(d, q, index, msix_entry);
	q->packed = d->features & VIRTIO_F_RING_PACKED;
	return vq_setup_modern(d, q, index, max_size, msix_entry);
}

/* ---------------- packed rings ---------------- */
static u16 avail_bits(bool wrap)
{
	return wrap ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
}

static void packed_advance(struct virtq *q, u16 *pos, bool *wrap, u16 n)
{
	*pos += n;
	if (*pos >= q->size) {
		*pos -= q->size;
		*wrap = !*wrap;
	}
}

u16 vq_packed_put(struct virtq *q, const void *addr, u32 len, u16 id, u16 flags, bool avail)
{
	struct vring_packed_desc *e = &q->ring[q->next_avail];
	u16 slot = q->next_avail;

	e->addr = (u64)addr;
	e->len = len;
	e->id = id;
	virtio_barrier();
	*(volatile u16 *)&e->flags = flags | avail_bits(avail ? q->avail_wrap : !q->avail_wrap);
	packed_advance(q, &q->next_avail, &q->avail_wrap, 1);
	if (q->num_free)
		q->num_free--;
	q->num_added++;
	return slot;
}

/* Take a buffer id and n ring slots; -1 when short. */
static int packed_take(struct virtq *q, u32 n, void *token)
{
	u16 id;

	if (!n || n > q->num_free || !q->num_free_ids)
		return -1;
	id = q->free_ids[--q->num_free_ids];
	q->num_free -= n;
	q->num_added += n;
	q->id_ndescs[id] = n;
	q->token[id] = token;
	return id;
}

/* Write n descriptors from the next slot on, the head's flags last. */
static void packed_write_chain(struct virtq *q, const struct vring_packed_desc *src, u32 n)
{
	u16 head = q->next_avail;
	bool head_wrap = q->avail_wrap;

	for (u32 k = 0; k < n; k++) {
		struct vring_packed_desc *e = &q->ring[q->next_avail];

		e->addr = src[k].addr;
		e->len = src[k].len;
		e->id = src[k].id;
		if (k)
			e->flags = src[k].flags | avail_bits(q->avail_wrap);
		packed_advance(q, &q->next_avail, &q->avail_wrap, 1);
	}
	virtio_barrier();	/* x86 keeps store order: the rest is visible first */
	*(volatile u16 *)&q->ring[head].flags = src[0].flags | avail_bits(head_wrap);
}

static int packed_add(struct virtq *q, const struct vbuf *b, u32 n, void *token)
{
	struct vring_packed_desc chain[64];
	int id;

	if (n > 64)
		return -1;
	id = packed_take(q, n, token);
	if (id < 0)
		return -1;
	for (u32 k = 0; k < n; k++)
		chain[k] = (struct vring_packed_desc){ (u64)b[k].addr, b[k].len, (u16)id,
			(b[k].device_writes ? VRING_DESC_F_WRITE : 0) |
			(k + 1 < n ? VRING_DESC_F_NEXT : 0) };
	packed_write_chain(q, chain, n);
	return id;
}

static int packed_add_indirect(struct virtq *q, struct vring_desc *table, const struct vbuf *b,
			       u32 n, void *token)
{
	struct vring_packed_desc *t = (struct vring_packed_desc *)table, head;
	int id = packed_take(q, 1, token);

	if (id < 0)
		return -1;
	for (u32 k = 0; k < n; k++)
		t[k] = (struct vring_packed_desc){ (u64)b[k].addr, b[k].len, 0,
			b[k].device_writes ? VRING_DESC_F_WRITE : 0 };
	head = (struct vring_packed_desc){ (u64)table, 16 * n, (u16)id, VRING_DESC_F_INDIRECT };
	packed_write_chain(q, &head, 1);
	return id;
}

/* The device's event suppression: DESC asks for a notification when the
 * descriptors we added since the last one include off_wrap. */
static bool packed_kick_needed(struct virtq *q)
{
	u16 flags, off_wrap, event, new_idx, old;

	virtio_mb();
	flags = q->device_ev->flags;
	off_wrap = q->device_ev->off_wrap;
	if (flags != VRING_PACKED_EVENT_DESC)
		return flags != VRING_PACKED_EVENT_DISABLE;
	event = off_wrap & ~VRING_PACKED_EVENT_WRAP;
	if (!!(off_wrap & VRING_PACKED_EVENT_WRAP) != q->avail_wrap)
		event -= q->size;
	new_idx = q->next_avail;
	old = new_idx - q->num_added;
	return vring_need_event(event, new_idx, old);
}

static bool packed_slot_used(struct virtq *q, u16 pos, bool wrap)
{
	u16 flags = *(volatile u16 *)&q->ring[pos].flags;
	bool a = flags & VRING_PACKED_DESC_F_AVAIL, u = flags & VRING_PACKED_DESC_F_USED;

	return a == u && u == wrap;
}

/* Ring slots a used entry stands for (its chain's), 1 for a bogus id. */
static u16 packed_used_slots(struct virtq *q, u16 id)
{
	return id < q->size && q->id_ndescs[id] ? q->id_ndescs[id] : 1;
}

static bool packed_get_used(struct virtq *q, u32 *id, u32 *len)
{
	struct vring_packed_desc *e = &q->ring[q->next_used];
	u16 n;

	if (!packed_slot_used(q, q->next_used, q->used_wrap))
		return false;
	virtio_barrier();	/* read the entry after its flags */
	*id = *(volatile u16 *)&e->id;
	*len = *(volatile u32 *)&e->len;
	n = packed_used_slots(q, *id);
	packed_advance(q, &q->next_used, &q->used_wrap, n);
	if (*id < q->size && q->id_ndescs[*id]) {
		q->id_ndescs[*id] = 0;
		q->num_free += n;
		q->free_ids[q->num_free_ids++] = *id;
	}
	return true;
}

static void packed_set_driver_event(struct virtq *q)
{
	if (q->cb_off) {
		q->driver_ev->flags = VRING_PACKED_EVENT_DISABLE;
	} else if (q->event_idx) {
		q->driver_ev->off_wrap = q->next_used |
					 (q->used_wrap ? VRING_PACKED_EVENT_WRAP : 0);
		virtio_barrier();
		q->driver_ev->flags = VRING_PACKED_EVENT_DESC;
	} else {
		q->driver_ev->flags = VRING_PACKED_EVENT_ENABLE;
	}
}

/* Every outstanding slot covered by used entries not consumed yet. */
static bool packed_all_used(struct virtq *q)
{
	u16 pos = q->next_used, outstanding = q->size - q->num_free, covered = 0;
	bool wrap = q->used_wrap;

	while (covered < outstanding) {
		u16 n;

		if (!packed_slot_used(q, pos, wrap))
			return false;
		virtio_barrier();
		n = packed_used_slots(q, *(volatile u16 *)&q->ring[pos].id);
		covered += n;
		packed_advance(q, &pos, &wrap, n);
	}
	return true;
}

/* ---------------- ring access ---------------- */
void vq_set_desc(struct virtq *q, u16 i, const void *addr, u32 len, u16 flags, u16 next)
{
	q->desc[i] = (struct vring_desc){ (u64)addr, len, flags, next };
}

void vq_publish(struct virtq *q, u16 head)
{
	q->avail[2 + (q->avail_idx & (q->size - 1))] = head;
	virtio_barrier();	/* x86: stores are ordered; keep the compiler's order */
	q->avail_idx++;
	q->avail[1] = q->avail_idx;
}

u16 vq_used_idx(struct virtq *q)
{
	if (q->packed)
		return q->next_used;	/* for messages: no used index here */
	return *(volatile u16 *)(q->used + 2);
}

u32 vq_used_id_at(struct virtq *q, u16 idx)
{
	return *(volatile u32 *)(q->used + 4 + 8 * (idx & (q->size - 1)));
}

u32 vq_used_len_at(struct virtq *q, u16 idx)
{
	return *(volatile u32 *)(q->used + 8 + 8 * (idx & (q->size - 1)));
}

volatile u16 *vq_used_event(struct virtq *q)
{
	return &q->avail[2 + q->size];
}

volatile u16 *vq_avail_event(struct virtq *q)
{
	return (volatile u16 *)(q->used + 4 + 8 * q->size);
}

/* ---------------- chains ---------------- */
static int vq_take(struct virtq *q, u32 n)
{
	u16 head = q->free_head;

	if (!n || n > q->num_free)
		return -1;
	q->num_free -= n;
	u16 last = head;

	for (u32 i = 1; i < n; i++)
		last = q->desc[last].next;
	q->free_head = q->desc[last].next;
	return head;
}

int vq_add(struct virtq *q, const struct vbuf *b, u32 n, void *token)
{
	int head;
	u16 i;

	if (q->packed)
		return packed_add(q, b, n, token);
	head = vq_take(q, n);
	if (head < 0)
		return -1;
	i = head;
	for (u32 k = 0; k < n; k++) {
		struct vring_desc *e = &q->desc[i];

		e->addr = (u64)b[k].addr;
		e->len = b[k].len;
		e->flags = (b[k].device_writes ? VRING_DESC_F_WRITE : 0) |
			   (k + 1 < n ? VRING_DESC_F_NEXT : 0);
		i = e->next;	/* the free list already links the chain */
	}
	q->token[head] = token;
	vq_publish(q, head);
	return head;
}

int vq_add_indirect(struct virtq *q, struct vring_desc *table, const struct vbuf *b, u32 n,
		    void *token)
{
	int head;

	if (q->packed)
		return packed_add_indirect(q, table, b, n, token);
	head = vq_take(q, 1);
	if (head < 0)
		return -1;
	for (u32 k = 0; k < n; k++)
		table[k] = (struct vring_desc){ (u64)b[k].addr, b[k].len,
			(b[k].device_writes ? VRING_DESC_F_WRITE : 0) |
			(k + 1 < n ? VRING_DESC_F_NEXT : 0), (u16)(k + 1) };
	q->desc[head].addr = (u64)table;
	q->desc[head].len = 16 * n;
	q->desc[head].flags = VRING_DESC_F_INDIRECT;
	q->token[head] = token;
	vq_publish(q, head);
	return head;
}

bool vq_kick_needed(struct virtq *q)
{
	if (q->packed)
		return packed_kick_needed(q);
	virtio_mb();	/* avail idx visible before reading avail_event / flags */
	if (q->event_idx)
		return vring_need_event(*vq_avail_event(q), q->avail_idx, q->kicked_idx);
	return !(*(volatile u16 *)q->used & VRING_USED_F_NO_NOTIFY);
}

void vq_notify(struct virtq *q)
{
	virtio_mb();
	q->kicked_idx = q->avail_idx;
	q->num_added = 0;
	if (q->d->legacy)
		outw(q->d->iobase + 0x10, q->index);
	else
		mmio_write16(q->notify_addr, q->index);
}

bool vq_kick(struct virtq *q)
{
	if (!vq_kick_needed(q)) {
		q->kicked_idx = q->avail_idx;
		q->num_added = 0;
		return false;
	}
	vq_notify(q);
	return true;
}

bool vq_has_used(struct virtq *q)
{
	if (q->packed)
		return packed_slot_used(q, q->next_used, q->used_wrap);
	return vq_used_idx(q) != q->last_used;
}

bool vq_get_used(struct virtq *q, u32 *id, u32 *len)
{
	if (q->packed)
		return packed_get_used(q, id, len);
	if (!vq_has_used(q))
		return false;
	virtio_barrier();	/* read the entry after the index */
	*id = vq_used_id_at(q, q->last_used);
	*len = vq_used_len_at(q, q->last_used);
	q->last_used++;
	return true;
}

static void vq_free_chain(struct virtq *q, u16 head)
{
	u16 i = head, n = 1;

	while ((q->desc[i].flags & VRING_DESC_F_NEXT) && n < q->size) {
		i = q->desc[i].next;
		n++;
	}
	q->desc[i].next = q->free_head;
	q->free_head = head;
	q->num_free += n;
}

void *vq_pop(struct virtq *q, u32 *len)
{
	u32 id, l;

	if (!vq_get_used(q, &id, &l))
		return NULL;
	if (id >= q->size)
		return NULL;
	if (len)
		*len = l;
	if (q->packed) {
		if (q->event_idx && !q->cb_off)	/* interrupt at the next one */
			packed_set_driver_event(q);
		return q->token[id];
	}
	vq_free_chain(q, id);
	if (q->event_idx)	/* keep the request (or the suppression) current */
		*vq_used_event(q) = q->cb_off ? q->last_used + 0x8000 : q->last_used;
	return q->token[id];
}

void vq_enable_cb(struct virtq *q)
{
	q->cb_off = false;
	if (q->packed)
		packed_set_driver_event(q);
	else if (q->event_idx)
		*vq_used_event(q) = q->last_used;
	else
		q->avail[0] = 0;
	virtio_mb();
}

void vq_disable_cb(struct virtq *q)
{
	q->cb_off = true;
	if (q->packed)
		packed_set_driver_event(q);
	else if (q->event_idx)
		*vq_used_event(q) = q->last_used + 0x8000;
	else
		q->avail[0] = VRING_AVAIL_F_NO_INTERRUPT;
}

int vq_wait_all(struct virtq *q, u64 timeout_ms)
{
	u64 end = now_ns() + timeout_ms * 1000000ull;

	while (q->packed ? !packed_all_used(q) : vq_used_idx(q) != q->avail_idx) {
		if (now_ns() > end)
			return -1;
		cpu_relax();
	}
	return 0;
}
