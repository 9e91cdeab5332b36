/* virtio-rng-pci (virtio entropy device, type 4): one request queue whose
 * device-writable buffers are filled from the host's getrandom(). Created
 * for each "-device virtio-rng-pci[,addr=SLOT][,packed=on|off]" on the
 * command line (packed=on offers packed virtqueues, off by default). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "hw/virtio_pci.h"
#include "hw/virtio_rng.h"
#include "vmm/log.h"
#include "vmm/opts.h"
#include "vmm/vm.h"

#define VIRTIO_ID_RNG		4
#define VIRTIO_RNG_PCI_ID	(VIRTIO_PCI_TRANSITIONAL_BASE + 5)
#define VIRTIO_RNG_QUEUE_SIZE	256
#define PCI_CLASS_OTHERS	0xff0000

/* Fill one writable segment; returns the bytes written. */
static size_t fill_random(void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = getrandom((uint8_t *)buf + done, len - done, GRND_NONBLOCK);

		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
		done += r;
	}
	return done;
}

static size_t fill_elem(const struct virtq_elem *e)
{
	size_t total = 0;

	for (unsigned i = e->n_out; i < e->n_out + e->n_in; i++) {
		size_t n = fill_random(e->iov[i].iov_base, e->iov[i].iov_len);

		total += n;
		if (n < e->iov[i].iov_len)
			break;
	}
	return total;
}

void virtio_rng_process(struct virtio_pci *vp, unsigned q)
{
	struct virtq *vq = &vp->vqs[q];
	unsigned pushed = 0;
	int r = 0;

	/* One queue's worth per pass keeps the loop thread fair (and finite
	 * if the guest's buffers overlap its own avail ring). */
	while (pushed < vq->size && (r = virtq_pop(vq, vp->elem)) == 1) {
		virtq_push(vq, vp->elem, fill_elem(vp->elem));
		pushed++;
	}
	if (r < 0)
		virtio_pci_set_needs_reset(vp, vq->error);
	if (pushed)
		virtio_pci_queue_interrupt(vp, q);
	if (r == 1 && pushed == vq->size)
		virtio_pci_kick_later(vp, q);
}

static const struct virtio_dev_ops virtio_rng_ops = {
	.name = "virtio-rng-pci",
	.device_type = VIRTIO_ID_RNG,
	.transitional_id = VIRTIO_RNG_PCI_ID,
	.class_code = PCI_CLASS_OTHERS,
	.num_queues = 1,
	.queue_size = VIRTIO_RNG_QUEUE_SIZE,
	.queue_notify = virtio_rng_process,
};

int virtio_rng_init(struct virtio_pci *vp, const struct guest_memory *mem)
{
	return virtio_pci_init(vp, &virtio_rng_ops, NULL, mem);
}

/* One -device virtio-rng-pci[,addr=SLOT][,packed=on|off] on the VM. */
static int create_rng(struct vm *vm, const char *spec)
{
	const char *name = virtio_rng_ops.name;
	struct virtio_pci *vp;
	bool packed = false;
	struct opts o;
	int slot, r;

	if (virtio_spec_parse(&o, spec, name) < 0)
		return -EINVAL;
	r = virtio_opts_slot(&o, name, &slot);
	if (r == 0)
		r = virtio_opts_packed(&o, name, &packed);
	opts_free(&o);
	if (r < 0)
		return r;
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	r = virtio_rng_init(vp, &vm->mem);
	if (r < 0) {
		log_error("-device %s: cannot create the device: %s", name, strerror(-r));
		return r;
	}
	virtio_pci_offer_packed(vp, packed);
	return virtio_pci_realize(vp, vm, slot);	/* logs its errors */
}

static int virtio_rng_device_init(struct vm *vm)
{
	const char *name = virtio_rng_ops.name;
	size_t nlen = strlen(name);

	for (unsigned i = 0; i < vm->cfg->n_devices; i++) {
		const char *spec = vm->cfg->devices[i];
		int r;

		if (strncmp(spec, name, nlen) || (spec[nlen] && spec[nlen] != ','))
			continue;
		r = create_rng(vm, spec);
		if (r < 0)
			return r;
	}
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_DEVICE, virtio_rng_device_init);

static const char *const virtio_rng_keys[] = { "packed", NULL };
DEVICE_MODEL(virtio_rng_model, .name = "virtio-rng-pci", .keys = virtio_rng_keys,
	     .usage = "virtio-rng-pci[,addr=SLOT,packed=on|off]")
