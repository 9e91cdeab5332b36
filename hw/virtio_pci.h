/* virtio over PCI (virtio 1.x section 4.1): a transitional device with the
 * modern capabilities (common, notify, ISR, device config, PCI config
 * access) in 64-bit BAR 4, the legacy register block in I/O BAR 0, MSI-X
 * (table and PBA in BAR 4) with INTx + ISR as the fallback, and one
 * ioeventfd per queue. Device models (virtio-rng, ...) supply a
 * struct virtio_dev_ops and process their queues from queue_notify. */
#ifndef HW_VIRTIO_PCI_H
#define HW_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include "hw/pci.h"
#include "hw/virtqueue.h"
#include "vmm/memory.h"

struct vm;
struct virtio_pci;

/* Device status bits */
#define VIRTIO_STATUS_ACKNOWLEDGE	0x01
#define VIRTIO_STATUS_DRIVER		0x02
#define VIRTIO_STATUS_DRIVER_OK		0x04
#define VIRTIO_STATUS_FEATURES_OK	0x08
#define VIRTIO_STATUS_NEEDS_RESET	0x40
#define VIRTIO_STATUS_FAILED		0x80

/* Transport feature bits */
#define VIRTIO_F_RING_INDIRECT_DESC	28
#define VIRTIO_F_RING_EVENT_IDX		29
#define VIRTIO_F_VERSION_1		32
#define VIRTIO_F_RING_PACKED		34	/* offered only with packed=on */

#define VIRTIO_PCI_VENDOR		0x1af4
#define VIRTIO_PCI_TRANSITIONAL_BASE	0x1000	/* + device-specific offset */
#define VIRTIO_MSI_NO_VECTOR		0xffff
#define VIRTIO_ISR_QUEUE		0x01
#define VIRTIO_ISR_CONFIG		0x02
#define VIRTIO_MAX_QUEUES		17	/* 8 net queue pairs + control */
#define VIRTIO_CONFIG_MAX		256

/* Modern capabilities: cfg_type values */
#define VIRTIO_PCI_CAP_COMMON_CFG	1
#define VIRTIO_PCI_CAP_NOTIFY_CFG	2
#define VIRTIO_PCI_CAP_ISR_CFG		3
#define VIRTIO_PCI_CAP_DEVICE_CFG	4
#define VIRTIO_PCI_CAP_PCI_CFG		5

/* Layout of BAR 4 (QEMU's order; the MSI-X structures added after it) */
#define VIRTIO_PCI_BAR_MODERN		4
#define VIRTIO_PCI_BAR_LEGACY		0
#define VP_COMMON_OFF			0x0000
#define VP_ISR_OFF			0x1000
#define VP_DEVICE_OFF			0x2000
#define VP_NOTIFY_OFF			0x3000
#define VP_NOTIFY_MULT			4
#define VP_MSIX_TABLE_OFF		0x4000
#define VP_MSIX_PBA_OFF			0x5000
#define VP_REGION_SIZE			0x1000
#define VP_BAR4_SIZE			0x8000

/* Modern common configuration structure (offsets) */
#define VP_COMMON_DFSELECT		0x00
#define VP_COMMON_DF			0x04
#define VP_COMMON_GFSELECT		0x08
#define VP_COMMON_GF			0x0c
#define VP_COMMON_MSIX			0x10
#define VP_COMMON_NUMQ			0x12
#define VP_COMMON_STATUS		0x14
#define VP_COMMON_CFGGENERATION		0x15
#define VP_COMMON_Q_SELECT		0x16
#define VP_COMMON_Q_SIZE		0x18
#define VP_COMMON_Q_MSIX		0x1a
#define VP_COMMON_Q_ENABLE		0x1c
#define VP_COMMON_Q_NOFF		0x1e
#define VP_COMMON_Q_DESCLO		0x20
#define VP_COMMON_Q_DESCHI		0x24
#define VP_COMMON_Q_AVAILLO		0x28
#define VP_COMMON_Q_AVAILHI		0x2c
#define VP_COMMON_Q_USEDLO		0x30
#define VP_COMMON_Q_USEDHI		0x34
#define VP_COMMON_SIZE			0x38

/* Legacy I/O BAR registers */
#define VIRTIO_LEGACY_HOST_FEATURES	0x00
#define VIRTIO_LEGACY_GUEST_FEATURES	0x04
#define VIRTIO_LEGACY_QUEUE_PFN		0x08
#define VIRTIO_LEGACY_QUEUE_NUM		0x0c
#define VIRTIO_LEGACY_QUEUE_SEL		0x0e
#define VIRTIO_LEGACY_QUEUE_NOTIFY	0x10
#define VIRTIO_LEGACY_STATUS		0x12
#define VIRTIO_LEGACY_ISR		0x13
#define VIRTIO_LEGACY_CONFIG_VECTOR	0x14	/* only while MSI-X is enabled */
#define VIRTIO_LEGACY_QUEUE_VECTOR	0x16
#define VIRTIO_LEGACY_CONFIG_NOMSIX	0x14
#define VIRTIO_LEGACY_CONFIG_MSIX	0x18

/* MSI-X */
#define PCI_CAP_ID_MSIX			0x11
#define PCI_CAP_ID_VNDR			0x09
#define PCI_MSIX_FLAGS_ENABLE		0x8000
#define PCI_MSIX_FLAGS_MASKALL		0x4000
#define PCI_MSIX_ENTRY_SIZE		16
#define PCI_MSIX_ENTRY_CTRL_MASKBIT	1
#define VIRTIO_MSIX_MAX			(VIRTIO_MAX_QUEUES + 1)

struct virtio_dev_ops {
	const char *name;
	uint16_t device_type;		/* virtio device ID (4: entropy) */
	uint16_t transitional_id;	/* PCI device ID (0x1005: entropy) */
	uint32_t class_code;
	uint64_t features;		/* device-specific feature bits */
	unsigned num_queues;
	uint16_t queue_size;		/* power of two, <= VIRTQ_MAX_SIZE */
	unsigned config_size;		/* device configuration bytes */
	/* A queue was kicked; the device lock is held. */
	void (*queue_notify)(struct virtio_pci *vp, unsigned q);
	/* The driver wrote device configuration bytes (already stored). */
	void (*config_write)(struct virtio_pci *vp, unsigned off, unsigned size);
	/* Device reset (after the transport reset itself). */
	void (*reset)(struct virtio_pci *vp);
};

struct vp_notifier {
	struct virtio_pci *vp;
	unsigned q;
	int fd;				/* eventfd, -1 when none */
	bool mmio_assigned, pio_assigned;
	uint64_t mmio_addr;
	uint16_t pio_addr;
};

/* One MSI-X vector delivered through an irqfd: a GSI routed to the
 * vector's message and an eventfd attached to it. Not migrated: rebuilt
 * from the table when the vector is unmasked or used. */
struct vp_msix_route {
	int gsi;			/* -1: none yet */
	int fd;				/* eventfd, -1: none yet */
	bool attached;			/* fd is an irqfd on gsi */
	uint64_t addr;			/* the message the route carries */
	uint32_t data;
	bool failed;			/* refused: send_msi until reprogrammed */
};

/* Where MSI-X routes come from: the VM's GSI routing (vm_msi_route_*,
 * vm_irqfd_attach) once realized; unit tests may install fakes. Each
 * returns 0 (alloc: the GSI) or -errno. */
struct virtio_msi_router {
	int (*alloc)(void *opaque, uint64_t addr, uint32_t data);
	int (*update)(void *opaque, unsigned gsi, uint64_t addr, uint32_t data);
	int (*attach)(void *opaque, int fd, unsigned gsi);
};

struct virtio_pci {
	struct pci_device pci;
	const struct virtio_dev_ops *ops;
	void *opaque;			/* the device model */
	struct vm *vm;			/* NULL in unit tests */
	const struct guest_memory *mem;
	pthread_mutex_t own_lock;	/* used until the device sits on a bus */

	/* Interrupt delivery: MSI-X vectors go through irqfds from router
	 * (NULL: none); send_msi (vm_signal_msi by default, one ioctl per
	 * interrupt; tests replace it) when a vector has no route. */
	const struct virtio_msi_router *router;
	void *router_opaque;
	void (*send_msi)(struct virtio_pci *vp, uint64_t addr, uint32_t data);

	/* Transport state (migrated). */
	uint64_t host_features;
	uint64_t guest_features;
	uint32_t dfselect, gfselect;
	uint8_t status;
	uint8_t isr;
	uint8_t config_generation;
	uint16_t queue_sel;
	uint16_t config_vector;
	bool broken;			/* violation seen: no processing until reset */
	bool offer_packed;		/* packed=on: offer RING_PACKED (not migrated) */
	uint8_t config[VIRTIO_CONFIG_MAX];
	struct virtq vqs[VIRTIO_MAX_QUEUES];

	/* MSI-X state (migrated). */
	unsigned msix_vectors;
	uint8_t msix_cap;		/* config offset of the MSI-X capability */
	uint32_t msix_table[VIRTIO_MSIX_MAX * 4];
	uint32_t msix_pba;
	uint8_t pci_cfg_cap;		/* config offset of VIRTIO_PCI_CAP_PCI_CFG */
	struct vp_msix_route msix_routes[VIRTIO_MSIX_MAX];
	bool msix_route_warned;		/* a routing failure was logged */

	struct vp_notifier notifiers[VIRTIO_MAX_QUEUES];
	struct virtq_elem *elem;	/* scratch for the device's queue work */
};

/* Build the transport (config space, BARs, capabilities) for ops; the
 * model is driven through the functions below. mem may be a fake. */
int virtio_pci_init(struct virtio_pci *vp, const struct virtio_dev_ops *ops, void *opaque,
		    const struct guest_memory *mem);
/* packed=on|off (QEMU's default off): offer VIRTIO_F_RING_PACKED to modern
 * drivers (legacy ones only see feature bits 0-31). Between init and
 * realize. */
void virtio_pci_offer_packed(struct virtio_pci *vp, bool on);
/* Put it on the VM: PCI slot (-1: first free from 2), eventfds, vmstate. */
int virtio_pci_realize(struct virtio_pci *vp, struct vm *vm, int slot);

/* Register access, as BAR 4 and BAR 0 see it. */
uint64_t virtio_pci_modern_read(struct virtio_pci *vp, uint64_t off, unsigned size);
void virtio_pci_modern_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size);
uint64_t virtio_pci_legacy_read(struct virtio_pci *vp, uint64_t off, unsigned size);
void virtio_pci_legacy_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size);

/* For device models (device lock held): interrupt for a queue's used
 * buffers when the driver wants one (with MSI-X a write to the vector's
 * irqfd: no ioctl, no exit), the config-change interrupt, and
 * the violation path (DEVICE_NEEDS_RESET + config interrupt, logged once). */
bool virtio_pci_queue_interrupt(struct virtio_pci *vp, unsigned q);	/* false: not wanted */
void virtio_pci_config_changed(struct virtio_pci *vp);
void virtio_pci_set_needs_reset(struct virtio_pci *vp, const char *why);
/* Queue q has more work than one pass may do: serve it again from the
 * event loop (a no-op without a VM; tests call the device again). */
void virtio_pci_kick_later(struct virtio_pci *vp, unsigned q);
/* Process queue q as a kick would (used by the notify paths). */
void virtio_pci_kick(struct virtio_pci *vp, unsigned q);
bool virtio_pci_msix_enabled(const struct virtio_pci *vp);
void virtio_pci_lock(struct virtio_pci *vp);
/* Take the device lock only if that needs no waiting (true: taken; also
 * when this thread holds it already): for threads that must never wait
 * for it, such as block-layer completion callbacks. */
bool virtio_pci_trylock(struct virtio_pci *vp);
void virtio_pci_unlock(struct virtio_pci *vp);
/* Full reset, as a status write of 0 does. */
void virtio_pci_reset(struct virtio_pci *vp);

extern const struct vmstate_desc virtio_pci_vmstate;
extern const struct vmstate_desc virtqueue_vmstate;

/* -device options of every virtio-pci model, from a parsed spec
 * (vmm/opts.h): addr=SLOT[.0] (hex, 1-1f; *slot -1 when absent) and
 * packed=on|off (for virtio_pci_offer_packed; *packed left alone when
 * absent). Every occurrence must be valid, the last counts; a bad one is
 * logged as "-device NAME: ..." and returns -EINVAL. */
struct opts;
int virtio_opts_slot(const struct opts *o, const char *name, int *slot);
int virtio_opts_packed(const struct opts *o, const char *name, bool *packed);
/* Parse a whole -device spec ("MODEL,key=value,...": the model is a bare
 * first word) into o; -EINVAL, logged, when it is too long or has too
 * many items. */
int virtio_spec_parse(struct opts *o, const char *spec, const char *name);

#endif
