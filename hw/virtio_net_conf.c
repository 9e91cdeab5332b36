/* Configuration and creation of virtio-net-pci: the device options (their
 * defaults and the feature bits they offer), the net/ layer as the
 * backend, the "-device virtio-net-pci,netdev=ID,..." and "-nic" command
 * line (option parsing: mac, host_mtu, queue sizes, vectors, bootindex,
 * QEMU's iPXE option ROM romfile=; the DEVICE_MODEL registration), the
 * DEVICE_INIT that puts the devices on the VM, and the list of created
 * devices for the monitor's statistics. The model is hw/virtio_net.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hw/bootorder.h"
#include "hw/pci_rom.h"
#include "hw/virtio_net_int.h"
#include "vmm/log.h"
#include "vmm/opts.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define MAX_NET_DEVICES			(MAX_DEVICE_SPECS + MAX_NETDEV_SPECS)
#define VIRTIO_F_ANY_LAYOUT		27

static struct virtio_net *devices[MAX_NET_DEVICES];
static unsigned n_devices;

/* --- options and features ------------------------------------------------ */

void virtio_net_default_opts(struct virtio_net_opts *o)
{
	*o = (struct virtio_net_opts){
		.pairs = 1,
		.vectors = -1,
		.rx_queue_size = VIRTIO_NET_QUEUE_SIZE,
		.tx_queue_size = VIRTIO_NET_QUEUE_SIZE,
		.mq = false,
		.ctrl_vq = true,
		.ctrl_vlan = true,
		.mrg_rxbuf = true,
		.csum = true,
		.guest_csum = true,
		.gso = true,
		.host_tso4 = true,
		.host_tso6 = true,
		.guest_tso4 = true,
		.guest_tso6 = true,
	};
}

static uint64_t bit(unsigned b)
{
	return 1ull << b;
}

/* Offloads exist only when the backend carries the vnet header. UFO is
 * not offered: Linux taps no longer take it (QEMU probes; we cannot). */
static uint64_t offload_features(const struct virtio_net_opts *o)
{
	uint64_t f = 0;

	if (o->csum) {
		f |= bit(VIRTIO_NET_F_CSUM);
		if (o->gso)
			f |= bit(VIRTIO_NET_F_GSO) | bit(VIRTIO_NET_F_HOST_ECN);
		if (o->host_tso4)
			f |= bit(VIRTIO_NET_F_HOST_TSO4);
		if (o->host_tso6)
			f |= bit(VIRTIO_NET_F_HOST_TSO6);
	}
	if (o->guest_csum) {
		f |= bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_ECN);
		if (o->guest_tso4)
			f |= bit(VIRTIO_NET_F_GUEST_TSO4);
		if (o->guest_tso6)
			f |= bit(VIRTIO_NET_F_GUEST_TSO6);
	}
	return f;
}

uint64_t virtio_net_device_features(const struct virtio_net_opts *o, bool vnet_hdr,
				    unsigned pairs)
{
	/* Frames may be laid out over descriptors in any way (legacy drivers
	 * need the bit to put the header in front of the frame). */
	uint64_t f = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_F_ANY_LAYOUT);

	if (o->mrg_rxbuf)
		f |= bit(VIRTIO_NET_F_MRG_RXBUF);
	if (o->ctrl_vq) {
		f |= bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_CTRL_RX) |
		     bit(VIRTIO_NET_F_CTRL_RX_EXTRA) | bit(VIRTIO_NET_F_CTRL_MAC_ADDR);
		if (o->ctrl_vlan)
			f |= bit(VIRTIO_NET_F_CTRL_VLAN);
		if (pairs > 1)
			f |= bit(VIRTIO_NET_F_MQ);
	}
	if (vnet_hdr)
		f |= offload_features(o);
	/* QEMU's default: on, needs the control queue and a receive offload */
	if ((f & bit(VIRTIO_NET_F_CTRL_VQ)) && (f & VIRTIO_NET_GUEST_OFFLOADS_MASK))
		f |= bit(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);
	if (o->host_mtu)
		f |= bit(VIRTIO_NET_F_MTU);
	return f;
}

bool virtio_net_queue_size_ok(unsigned s)
{
	return s >= VIRTIO_NET_QUEUE_SIZE && s <= VIRTQ_MAX_SIZE && !(s & (s - 1));
}

/* --- statistics ---------------------------------------------------------- */

unsigned virtio_net_count(void)
{
	return n_devices;
}

const char *virtio_net_stats(unsigned i, struct net_stats *out)
{
	if (i >= n_devices)
		return NULL;
	virtio_net_get_stats(devices[i], out);
	return devices[i]->netdev_id ? devices[i]->netdev_id : "";
}

/* --- the net/ layer as the backend ---------------------------------------- */

static int nd_attach(void *be, const struct net_frontend *fe)
{
	return net_attach(be, fe);
}

static ssize_t nd_send(void *be, const struct iovec *iov, int iovcnt)
{
	return net_send(be, iov, iovcnt);
}

static ssize_t nd_send_more(void *be, const struct iovec *iov, int iovcnt)
{
	return net_send_more(be, iov, iovcnt);
}

static void nd_flush(void *be)
{
	net_flush(be);
}

static void nd_receive_ready(void *be)
{
	net_receive_ready(be);
}

static bool nd_has_vnet_hdr(void *be)
{
	return net_has_vnet_hdr(be);
}

static int nd_set_vnet_hdr_len(void *be, unsigned len)
{
	return net_set_vnet_hdr_len(be, len);
}

static int nd_set_offloads(void *be, const struct net_offloads *o)
{
	return net_set_offloads(be, o);
}

const struct virtio_net_backend_ops virtio_net_netdev_ops = {
	.attach = nd_attach,
	.send = nd_send,
	.send_more = nd_send_more,
	.flush = nd_flush,
	.receive_ready = nd_receive_ready,
	.has_vnet_hdr = nd_has_vnet_hdr,
	.set_vnet_hdr_len = nd_set_vnet_hdr_len,
	.set_offloads = nd_set_offloads,
};

/* --- command line -------------------------------------------------------- */

#define DEV_NAME "virtio-net-pci"
/* QEMU 7.2's romfile default for virtio-net-pci (Debian: ipxe-qemu). */
#define DEFAULT_ROMFILE "efi-virtio.rom"
#define ROMFILE_MAX 1024

static int opt_bool(const char *what, const struct opts *p, const char *key, bool *out)
{
	const char *bad;

	if (opts_get_bool(p, key, out, &bad) == 0)
		return 0;
	log_error("%s: %s must be on or off", what, key);
	return -EINVAL;
}

static int opt_uint(const char *what, const struct opts *p, const char *key, unsigned min,
		    unsigned max, unsigned *out)
{
	uint64_t x = *out;
	const char *bad;

	if (opts_get_uint(p, key, min, max, &x, &bad) < 0) {
		log_error("%s: %s must be a number from %u to %u", what, key, min, max);
		return -EINVAL;
	}
	*out = x;
	return 0;
}

/* A -netdev or -nic spec ("TYPE,key=value,..."). */
static int parse_netdev_spec(struct opts *p, const char *spec, const char *what)
{
	const struct opts_syntax syn = { .implied_key = "type", .max_len = 65535 };
	char err[128];

	if (opts_parse(p, spec, &syn, err, sizeof(err)) < 0) {
		log_error("%s: %s", what, err);
		return -EINVAL;
	}
	return 0;
}

/* The queues= of the backend's spec (-netdev id=ID, or -nic i). */
static int backend_pairs(const struct vm_config *cfg, const char *id, const char *nic_spec,
			 unsigned *pairs)
{
	struct opts p = { 0 };
	const char *v;
	int r = 0;

	*pairs = 1;
	if (nic_spec)
		r = parse_netdev_spec(&p, nic_spec, "-nic");
	for (unsigned i = 0; !nic_spec && r == 0 && i < cfg->n_netdevs; i++) {
		r = parse_netdev_spec(&p, cfg->netdevs[i], "-netdev");
		if (r == 0 && (v = opts_get(&p, "id")) && !strcmp(v, id))
			break;
		opts_free(&p);
	}
	if (r == 0 && opt_uint("-netdev", &p, "queues", 1, 1024, pairs) < 0)
		r = -EINVAL;
	opts_free(&p);
	if (r == 0 && *pairs > VIRTIO_NET_MAX_PAIRS) {
		log_error("-device %s: netdev %s has queues=%u; at most %d queue pairs are "
			  "supported", DEV_NAME, id, *pairs, VIRTIO_NET_MAX_PAIRS);
		r = -EINVAL;
	}
	return r;
}

static const char *const bool_keys[] = {
	"mq", "ctrl_vq", "mrg_rxbuf", "csum", "guest_csum", "gso", "host_tso4", "host_tso6",
	"guest_tso4", "guest_tso6", "packed", "ctrl_vlan",
};

static const char *const device_keys[] = {
	"netdev", "mac", "mq", "vectors", "csum", "guest_csum", "gso", "host_tso4", "host_tso6",
	"guest_tso4", "guest_tso6", "mrg_rxbuf", "ctrl_vq", "rx_queue_size", "tx_queue_size",
	"packed", "bootindex", "romfile", "bus", "host_mtu", "ctrl_vlan", NULL,
};
DEVICE_MODEL(virtio_net_model, .name = DEV_NAME, .keys = device_keys,
	     .usage = DEV_NAME ",netdev=ID[,addr=SLOT,mac=MAC,mq=on,vectors=N,bootindex=N,"
		      "romfile=FILE,host_mtu=N,csum=,guest_csum=,host_tso4=,guest_tso4=,mrg_rxbuf=,"
		      "ctrl_vq=,ctrl_vlan=,rx_queue_size=N,tx_queue_size=N,packed=on]")

static bool *bool_opt(struct virtio_net_opts *o, unsigned i)
{
	bool *fields[] = { &o->mq, &o->ctrl_vq, &o->mrg_rxbuf, &o->csum, &o->guest_csum, &o->gso,
			   &o->host_tso4, &o->host_tso6, &o->guest_tso4, &o->guest_tso6,
			   &o->packed, &o->ctrl_vlan };

	return fields[i];
}

static int parse_mac(const char *what, const struct opts *p, uint8_t mac[6])
{
	const char *v = opts_get(p, "mac");

	if (!v) {
		net_generate_mac(mac);
		return 0;
	}
	if (net_parse_mac(v, mac) < 0 || (mac[0] & 1)) {
		log_error("%s: invalid mac '%s' (a unicast address like 52:54:00:12:34:56)", what,
			  v);
		return -EINVAL;
	}
	return 0;
}

static int parse_opts(const char *what, const struct opts *p, struct virtio_net_opts *o)
{
	unsigned rxs = VIRTIO_NET_QUEUE_SIZE, txs = VIRTIO_NET_QUEUE_SIZE, vectors = 0;

	virtio_net_default_opts(o);
	for (unsigned i = 0; i < sizeof(bool_keys) / sizeof(bool_keys[0]); i++)
		if (opt_bool(what, p, bool_keys[i], bool_opt(o, i)) < 0)
			return -EINVAL;
	if (parse_mac(what, p, o->mac) < 0 ||
	    opt_uint(what, p, "vectors", 0, VIRTIO_MSIX_MAX, &vectors) < 0 ||
	    opt_uint(what, p, "rx_queue_size", 0, 1u << 16, &rxs) < 0 ||
	    opt_uint(what, p, "tx_queue_size", 0, 1u << 16, &txs) < 0 ||
	    opt_uint(what, p, "host_mtu", VIRTIO_NET_MIN_MTU, VIRTIO_NET_MAX_MTU,
		     &o->host_mtu) < 0)
		return -EINVAL;
	if (!virtio_net_queue_size_ok(rxs) || !virtio_net_queue_size_ok(txs)) {
		log_error("%s: rx_queue_size and tx_queue_size must be powers of 2 from %d to %d",
			  what, VIRTIO_NET_QUEUE_SIZE, VIRTQ_MAX_SIZE);
		return -EINVAL;
	}
	o->rx_queue_size = rxs;
	o->tx_queue_size = txs;
	o->vectors = opts_find(p, "vectors") ? (int)vectors : -1;
	return 0;
}

/* The option ROM romfile names (NULL or empty: none), read once: *data
 * stays allocated for the device's lifetime. QEMU refuses a device whose
 * ROM cannot be found, its default one included. */
static int load_romfile(const char *what, const char *romfile, uint8_t **data, size_t *len)
{
	char err[512];

	*data = NULL;
	*len = 0;
	if (!romfile || !romfile[0])
		return 0;
	if (pci_rom_load(romfile, data, len, err, sizeof(err)) < 0) {
		log_error("%s: %s", what, err);
		return -EINVAL;
	}
	return 0;
}

/* Put a virtio-net-pci for backend id on the VM, with option ROM romfile:
 * NULL for QEMU's default (patched to the device's IDs as QEMU does for
 * default ROMs only), "" for none. */
static int create_net(struct vm *vm, const char *what, const char *id, const char *nic_spec,
		      struct virtio_net_opts *o, int slot, const char *romfile)
{
	bool default_rom = !romfile;
	struct net_backend *nb = net_find(id);
	struct virtio_net *n;
	uint8_t *rom;
	size_t rom_len;
	int r;

	if (!nb) {
		log_error("%s: no -netdev with id=%s", what, id);
		return -EINVAL;
	}
	if (backend_pairs(vm->cfg, id, nic_spec, &o->pairs) < 0)
		return -EINVAL;
	if (n_devices == MAX_NET_DEVICES) {
		log_error("%s: too many network devices", what);
		return -ENOSPC;
	}
	if (default_rom)
		romfile = DEFAULT_ROMFILE;
	if (load_romfile(what, romfile, &rom, &rom_len) < 0)
		return -EINVAL;
	n = calloc(1, sizeof(*n));
	if (!n) {
		free(rom);
		return -ENOMEM;
	}
	r = virtio_net_init(n, o, &virtio_net_netdev_ops, nb, &vm->mem, vm->loop);
	if (r < 0)
		free(rom);
	if (r == -EBUSY) {
		log_error("%s: netdev %s is already in use", what, id);
		return r;
	}
	if (r < 0) {
		log_error("%s: cannot create the device: %s", what, strerror(-r));
		return r;
	}
	n->netdev_id = strdup(id);
	if (rom && default_rom)
		pci_rom_patch_ids(rom, rom_len, pci_get_word(n->vp.pci.config, PCI_VENDOR_ID),
				  pci_get_word(n->vp.pci.config, PCI_DEVICE_ID));
	if (rom && pci_register_rom(&n->vp.pci, rom, rom_len) < 0) {
		log_error("%s: romfile \"%s\" cannot be used", what, romfile);
		free(rom);
		return -EINVAL;
	}
	virtio_pci_offer_packed(&n->vp, o->packed);
	r = virtio_pci_realize(&n->vp, vm, slot);	/* logs its errors */
	if (r < 0)
		return r;
	vmstate_register(&virtio_net_vmstate, &n->st, sizeof(n->st), n->vp.pci.devfn);
	devices[n_devices++] = n;
	return 0;
}

/* bootindex=N (QEMU's default -1: not in the boot order), romfile=
 * (*romfile NULL: absent, QEMU's default iPXE ROM; empty: no option ROM),
 * and bus=, only the root bus "pci.0" (libvirt always writes it). */
static int parse_boot_props(const char *what, const struct opts *p, int32_t *bootindex,
			    const char **romfile)
{
	const char *v = opts_get(p, "bus");

	if (v && strcmp(v, "pci.0")) {
		log_error("%s: Bus '%s' not found (only pci.0)", what, v);
		return -EINVAL;
	}
	v = opts_get(p, "bootindex");
	*bootindex = -1;
	if (v && bootorder_parse_index(v, bootindex) < 0) {
		log_error("%s: Parameter 'bootindex' expects integer", what);
		return -EINVAL;
	}
	*romfile = opts_get(p, "romfile");
	if (*romfile && strlen(*romfile) >= ROMFILE_MAX) {
		log_error("%s: romfile name too long", what);
		return -EINVAL;
	}
	return 0;
}

/* QEMU's firmware path of a virtio-net-pci (PCI class 0x0200):
 * /pci@i0cf8/ethernet@SLOT/ethernet-phy@0. */
static int register_bootindex(const struct virtio_net *n, const char *spec, int32_t bootindex)
{
	char what[256];

	if (bootindex < 0)
		return 0;
	snprintf(what, sizeof(what), "-device %s", spec);
	return bootorder_register_pci(what, bootindex, "ethernet", n->vp.pci.devfn,
				      BOOTORDER_SUFFIX_NET);
}

static int device_spec_net(struct vm *vm, const char *spec)
{
	const char *what = "-device " DEV_NAME, *id, *romfile;
	struct virtio_net_opts o;
	struct opts p;
	int32_t bootindex;
	int slot, r;

	if (virtio_spec_parse(&p, spec, DEV_NAME) < 0)
		return -EINVAL;
	r = virtio_opts_slot(&p, DEV_NAME, &slot) < 0 || parse_opts(what, &p, &o) < 0 ||
	    parse_boot_props(what, &p, &bootindex, &romfile) < 0 ? -EINVAL : 0;
	id = opts_get(&p, "netdev");
	if (r == 0 && (!id || !id[0])) {
		log_error("%s: netdev=ID is required", what);
		r = -EINVAL;
	}
	if (r == 0)
		r = create_net(vm, what, id, NULL, &o, slot, romfile);
	if (r == 0 && register_bootindex(devices[n_devices - 1], spec, bootindex) < 0)
		r = -EINVAL;
	opts_free(&p);
	return r;
}

/* -nic TYPE[,model=virtio-net-pci][,mac=...]: backend "__nic<i>"; the
 * device has QEMU's default option ROM, as QEMU's -nic gives it. */
static int nic_spec_net(struct vm *vm, const char *spec, unsigned i)
{
	struct virtio_net_opts o;
	const char *model, *type;
	struct opts p;
	char id[16];
	int r = 0;

	if (parse_netdev_spec(&p, spec, "-nic") < 0)
		return -EINVAL;
	type = opts_get(&p, "type");
	if (type && !strcmp(type, "none")) {	/* no backend, no NIC */
		opts_free(&p);
		return 0;
	}
	model = opts_get(&p, "model");
	if (model && strcmp(model, DEV_NAME) && strcmp(model, "virtio")) {
		log_error("-nic: model %s is not supported (only " DEV_NAME ")", model);
		r = -EINVAL;
	}
	virtio_net_default_opts(&o);
	if (r == 0 && parse_mac("-nic", &p, o.mac) < 0)
		r = -EINVAL;
	opts_free(&p);
	if (r < 0)
		return r;
	snprintf(id, sizeof(id), "__nic%u", i);
	return create_net(vm, "-nic", id, spec, &o, -1, NULL);
}

static int virtio_net_device_init(struct vm *vm)
{
	size_t nlen = strlen(DEV_NAME);
	int r;

	for (unsigned i = 0; i < vm->cfg->n_devices; i++) {
		const char *spec = vm->cfg->devices[i];

		if (strncmp(spec, DEV_NAME, nlen) || (spec[nlen] && spec[nlen] != ','))
			continue;
		r = device_spec_net(vm, spec);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < vm->cfg->n_nics; i++) {
		r = nic_spec_net(vm, vm->cfg->nics[i], i);
		if (r < 0)
			return r;
	}
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_DEVICE, virtio_net_device_init);
