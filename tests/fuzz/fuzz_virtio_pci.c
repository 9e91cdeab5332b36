/* libFuzzer target for the virtio-pci transport with the virtio-rng model:
 * the input is a list of register operations (modern BAR 4, legacy BAR 0,
 * PCI config space, kicks, bus resets) followed by the guest RAM contents
 * the rings live in. Nothing a driver does may crash the device, touch
 * memory outside guest RAM or leave it in an inconsistent state. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hw/pci.h"
#include "hw/virtio_pci.h"
#include "tests/fuzz/fuzz_virtio_common.h"
#include "hw/virtio_rng.h"

#define RAM_SIZE	0x10000
#define DEVFN		(3 << 3)
#define MAX_OPS		96

struct op {
	uint8_t kind;
	uint8_t size;
	uint16_t off;
	uint32_t value;
} __attribute__((packed));

static void run_op(struct pci_bus *bus, struct virtio_pci *vp, const struct op *o)
{
	unsigned size = access_size(o->size);

	switch (o->kind % 8) {
	case 0:
		virtio_pci_modern_read(vp, o->off % VP_BAR4_SIZE, size);
		break;
	case 1:
		virtio_pci_modern_write(vp, o->off % VP_BAR4_SIZE, o->value, size);
		break;
	case 2:
		virtio_pci_legacy_read(vp, o->off % vp->pci.bars[0].size, size);
		break;
	case 3:
		virtio_pci_legacy_write(vp, o->off % vp->pci.bars[0].size, o->value, size);
		break;
	case 4:
		pci_config_read(bus, DEVFN, o->off % PCI_CONFIG_SIZE, size > 4 ? 4 : size);
		break;
	case 5:
		pci_config_write(bus, DEVFN, o->off % PCI_CONFIG_SIZE, size > 4 ? 4 : size,
				 o->value);
		break;
	case 6:
		virtio_pci_lock(vp);
		virtio_pci_kick(vp, o->off % 2);
		virtio_pci_unlock(vp);
		break;
	case 7:
		if (o->value == 0x52455345)	/* rare: "RESE" */
			pci_bus_reset(bus);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static struct pci_bus bus;
	static struct virtio_pci vp;
	struct guest_memory mem = { .ram_size = RAM_SIZE, .below_4g = RAM_SIZE };
	size_t n_ops, ops_bytes;

	if (size < 1)
		return 0;
	n_ops = data[0] % (MAX_OPS + 1);
	ops_bytes = 1 + n_ops * sizeof(struct op);
	if (size < ops_bytes)
		return 0;
	if (!ram)
		ram = malloc(RAM_SIZE);
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + ops_bytes,
	       size - ops_bytes < RAM_SIZE ? size - ops_bytes : RAM_SIZE);
	mem.host = ram;

	pci_bus_init(&bus, NULL, NULL);
	if (virtio_rng_init(&vp, &mem) < 0 || pci_bus_add_device(&bus, &vp.pci, 3, 0) < 0)
		abort();
	vp.send_msi = no_msi;
	for (size_t i = 0; i < n_ops; i++) {
		struct op o;

		memcpy(&o, data + 1 + i * sizeof(o), sizeof(o));
		run_op(&bus, &vp, &o);
		if (vp.msix_pba >> vp.msix_vectors || vp.vqs[0].inflight > vp.vqs[0].size)
			abort();
	}
	free(vp.elem);
	pthread_mutex_destroy(&bus.lock);
	pthread_mutex_destroy(&vp.own_lock);
	return 0;
}
