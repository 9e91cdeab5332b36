/* Command line glue for virtio-blk-pci: QEMU's -drive syntax (",," is a
 * literal comma in values: file=a,,b.img names "a,b.img"), the
 * "-device virtio-blk-pci,drive=ID[,...properties][,bootindex=N]" and
 * "-drive ...,if=virtio" creation, the boot order entries, and the
 * DEVICE_INIT that puts the devices on the VM. The model itself is
 * hw/virtio_blk.c (with hw/virtio_blk_req.c and hw/virtio_blk_conf.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "block/block.h"
#include "hw/bootorder.h"
#include "hw/virtio_blk.h"
#include "hw/virtio_pci.h"
#include "vmm/config.h"
#include "vmm/device.h"
#include "vmm/log.h"
#include "vmm/opts.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define DEVICE_NAME	"virtio-blk-pci"
#define SERIAL_MAX	256
#define SPEC_MAX	16383	/* a -drive spec: paths are long */

/* The devices made from the command line, for virtio_blk_drain_all. */
static struct virtio_blk *devices[MAX_DRIVE_SPECS];
static unsigned n_devices;

void virtio_blk_drain_all(void)
{
	for (unsigned i = 0; i < n_devices; i++)
		virtio_blk_drain(devices[i]);
}

/* --- option strings --------------------------------------------------------- */

static const struct opts_syntax blk_syntax = { .max_len = SPEC_MAX };

int virtio_blk_opt_get(const char *spec, const char *key, char *buf, size_t len)
{
	struct opts o;
	char err[96];
	int r;

	if (opts_parse(&o, spec, &blk_syntax, err, sizeof(err)) < 0)
		return -1;
	r = opts_copy(&o, key, buf, len);
	opts_free(&o);
	return r;
}

/* Parse spec into o, refusing (logged) the first item whose key is not
 * in keys or that has no value. */
static int parse_checked(const char *what, const char *spec, const char *const *keys,
			 struct opts *o)
{
	const struct opt *bad;
	char err[96];

	if (opts_parse(o, spec, &blk_syntax, err, sizeof(err)) < 0) {
		log_error("%s: %s", what, err);
		return -EINVAL;
	}
	bad = opts_check_keys(o, keys, 0);
	if (bad) {
		log_error("%s: unknown or bad parameter '%.*s'", what, (int)bad->len,
			  spec + bad->offset);
		opts_free(o);
		return -EINVAL;
	}
	return 0;
}

/* A u32, with K/M/G suffixes when sizes (logical_block_size=4K). */
static int parse_u32(const char *v, bool sizes, uint32_t *out)
{
	uint64_t n;

	if (sizes ? opts_parse_size(v, 'B', &n) < 0 : opts_parse_uint(v, 0, UINT32_MAX, &n) < 0)
		return -1;
	if (n > UINT32_MAX)
		return -1;
	*out = n;
	return 0;
}

/* --- -drive --------------------------------------------------------------- */

struct drive_spec {
	char file[4096];
	char id[64];
	char iface[16];
	char format[32];
	char serial[SERIAL_MAX];
	struct block_open_opts opts;
	bool writeback;			/* from cache= */
	bool discard_unmap;
};

static const char *const drive_keys[] = {
	"file", "format", "if", "id", "cache", "aio", "readonly", "media", "serial", "discard",
	NULL,
};

static int drive_strings(const struct opts *o, struct drive_spec *d)
{
	int r = opts_copy(o, "file", d->file, sizeof(d->file));

	if (r == 0 || (r == 1 && !d->file[0])) {
		log_error("-drive %s: file= is required", o->spec);
		return -EINVAL;
	}
	if (r < 0 || opts_copy(o, "id", d->id, sizeof(d->id)) < 0 ||
	    opts_copy(o, "if", d->iface, sizeof(d->iface)) < 0 ||
	    opts_copy(o, "format", d->format, sizeof(d->format)) < 0 ||
	    opts_copy(o, "serial", d->serial, sizeof(d->serial)) < 0) {
		log_error("-drive %s: a value is too long", o->spec);
		return -EINVAL;
	}
	if (strcmp(d->iface, "none") && strcmp(d->iface, "virtio")) {
		log_error("-drive %s: only if=none and if=virtio are supported", o->spec);
		return -EINVAL;
	}
	if (!strcmp(d->iface, "none") && !d->id[0]) {
		log_error("-drive %s: if=none needs id=", o->spec);
		return -EINVAL;
	}
	d->opts.format = d->format[0] ? d->format : NULL;
	return 0;
}

/* cache= as QEMU splits it: the host side (O_DIRECT, flushes) goes to the
 * block layer, writeback vs writethrough is the device's write cache. */
static int drive_cache(const struct opts *o, struct drive_spec *d)
{
	const char *v = opts_get(o, "cache");
	enum block_cache_mode mode = BLOCK_CACHE_WRITEBACK;

	if (v && block_parse_cache_mode(v, &mode) < 0) {
		log_error("-drive %s: invalid cache mode '%s'", o->spec, v);
		return -EINVAL;
	}
	d->writeback = mode != BLOCK_CACHE_WRITETHROUGH && mode != BLOCK_CACHE_DIRECTSYNC;
	if (mode == BLOCK_CACHE_WRITETHROUGH)
		mode = BLOCK_CACHE_WRITEBACK;
	else if (mode == BLOCK_CACHE_DIRECTSYNC)
		mode = BLOCK_CACHE_NONE;
	d->opts.cache = mode;
	return 0;
}

static int drive_flags(const struct opts *o, struct drive_spec *d)
{
	const char *aio = opts_get(o, "aio"), *ro = opts_get(o, "readonly");
	const char *media = opts_get(o, "media"), *discard = opts_get(o, "discard");

	if (aio && block_parse_engine(aio, &d->opts.engine) < 0) {
		log_error("-drive %s: invalid aio '%s' (threads, native, io_uring)", o->spec, aio);
		return -EINVAL;
	}
	if (ro && strcmp(ro, "on") && strcmp(ro, "off")) {
		log_error("-drive %s: readonly must be on or off", o->spec);
		return -EINVAL;
	}
	d->opts.read_only = ro && !strcmp(ro, "on");
	if (media && strcmp(media, "disk")) {
		log_error("-drive %s: only media=disk is supported", o->spec);
		return -EINVAL;
	}
	if (discard && strcmp(discard, "unmap") && strcmp(discard, "on") &&
	    strcmp(discard, "ignore") && strcmp(discard, "off")) {
		log_error("-drive %s: invalid discard option '%s' (ignore, unmap)", o->spec,
			  discard);
		return -EINVAL;
	}
	d->discard_unmap = discard && (!strcmp(discard, "unmap") || !strcmp(discard, "on"));
	return 0;
}

static int parse_drive(const char *spec, struct drive_spec *d)
{
	struct opts o;
	int r = -EINVAL;

	memset(d, 0, sizeof(*d));
	if (parse_checked("-drive", spec, drive_keys, &o) < 0)
		return -EINVAL;
	if (drive_strings(&o, d) == 0 && drive_cache(&o, d) == 0 && drive_flags(&o, d) == 0)
		r = 0;
	opts_free(&o);
	return r;
}

/* --- -device virtio-blk-pci ----------------------------------------------- */

static const char *const device_keys[] = {
	"drive", "serial", "num-queues", "queue-size", "discard", "write-zeroes", "config-wce",
	"seg-max-adjust", "logical_block_size", "physical_block_size", "min_io_size",
	"opt_io_size", "discard_granularity", "max-discard-sectors", "max-write-zeroes-sectors",
	"addr", "id", "bootindex", "bus", "packed", "size-max", NULL,
};

static const struct {
	const char *key;
	size_t off;
} bool_props[] = {
	{ "discard", offsetof(struct virtio_blk_conf, discard) },
	{ "write-zeroes", offsetof(struct virtio_blk_conf, write_zeroes) },
	{ "config-wce", offsetof(struct virtio_blk_conf, config_wce) },
	{ "seg-max-adjust", offsetof(struct virtio_blk_conf, seg_max_adjust) },
};

static const struct {
	const char *key;
	size_t off;
	bool size;			/* accepts K/M suffixes */
} u32_props[] = {
	{ "num-queues", offsetof(struct virtio_blk_conf, num_queues), false },
	{ "logical_block_size", offsetof(struct virtio_blk_conf, logical_block_size), true },
	{ "physical_block_size", offsetof(struct virtio_blk_conf, physical_block_size), true },
	{ "min_io_size", offsetof(struct virtio_blk_conf, min_io_size), true },
	{ "opt_io_size", offsetof(struct virtio_blk_conf, opt_io_size), true },
	{ "discard_granularity", offsetof(struct virtio_blk_conf, discard_granularity), true },
	{ "max-discard-sectors", offsetof(struct virtio_blk_conf, max_discard_sectors), false },
	{ "max-write-zeroes-sectors", offsetof(struct virtio_blk_conf, max_write_zeroes_sectors),
	  false },
	{ "size-max", offsetof(struct virtio_blk_conf, size_max), true },
};

DEVICE_MODEL(virtio_blk_model, .name = DEVICE_NAME, .keys = device_keys,
	     .usage = DEVICE_NAME ",drive=ID[,addr=SLOT,serial=S,num-queues=N,queue-size=N,"
		      "bootindex=N,packed=on,discard=on|off,write-zeroes=on|off,size-max=BYTES,"
		      "logical_block_size=,physical_block_size=,min_io_size=,opt_io_size=]")

/* Every value of key as a u32 up to max; the last counts. */
static int prop_u32(const struct opts *o, const char *key, bool sizes, uint32_t max,
		    uint32_t *dst)
{
	unsigned pos = 0;
	const char *v;
	uint32_t n;

	while ((v = opts_next(o, key, &pos))) {
		if (parse_u32(v, sizes, &n) < 0 || n > max) {
			log_error("-device %s: invalid %s '%s'", DEVICE_NAME, key, v);
			return -EINVAL;
		}
		*dst = n;
	}
	return 0;
}

static int device_props(const struct opts *o, struct virtio_blk_conf *c)
{
	uint32_t queue_size = c->queue_size;
	const char *bad;

	for (size_t i = 0; i < sizeof(bool_props) / sizeof(bool_props[0]); i++) {
		bool *dst = (bool *)((char *)c + bool_props[i].off);

		if (opts_get_bool(o, bool_props[i].key, dst, &bad) < 0) {
			log_error("-device %s: %s must be on or off", DEVICE_NAME,
				  bool_props[i].key);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < sizeof(u32_props) / sizeof(u32_props[0]); i++) {
		uint32_t *dst = (uint32_t *)((char *)c + u32_props[i].off);

		if (prop_u32(o, u32_props[i].key, u32_props[i].size, UINT32_MAX, dst) < 0)
			return -EINVAL;
	}
	if (prop_u32(o, "queue-size", false, UINT16_MAX, &queue_size) < 0)
		return -EINVAL;
	c->queue_size = queue_size;
	return 0;
}

/* QEMU 7.2's virtio-blk-pci default: one queue per vCPU. */
static unsigned auto_num_queues(const struct vm_config *cfg)
{
	unsigned n = cfg->ncpus ? cfg->ncpus : 1;

	return n < VIRTIO_BLK_MAX_NUM_QUEUES ? n : VIRTIO_BLK_MAX_NUM_QUEUES;
}

/* bootindex=N of a -device (QEMU's default -1: not in the boot order). */
static int parse_bootindex(const struct opts *props, int32_t *index)
{
	const char *v = opts_get(props, "bootindex");

	*index = -1;
	if (v && bootorder_parse_index(v, index) < 0) {
		log_error("-device %s: Parameter 'bootindex' expects integer", DEVICE_NAME);
		return -EINVAL;
	}
	return 0;
}

/* Name the device in the firmware boot order: QEMU's path for a
 * virtio-blk-pci (PCI class 0x0100, "scsi") is /pci@i0cf8/scsi@SLOT/disk@0,0. */
static int register_bootindex(const struct virtio_blk *blk, const char *device,
			      int32_t bootindex)
{
	char what[256];

	if (bootindex < 0)
		return 0;
	snprintf(what, sizeof(what), "-device %s,%s", DEVICE_NAME, device);
	return bootorder_register_pci(what, bootindex, "scsi", blk->vp.pci.devfn,
				      BOOTORDER_SUFFIX_DISK);
}

/* The image of a -drive. Small I/O to a memory-backed file is done inline
 * (req_done copes with completions inside submit). With io_uring or native
 * AIO the event loop that submits also reaps the completions (a polled
 * bdev: no completion thread, no wake-ups between threads): half the host
 * CPU per request, and as fast or faster in A/B runs on disk (io_uring
 * randwrite d32 116k -> 135k, randread d32 84k -> 86k median IOPS).
 * Engines that cannot signal completions (threads) are opened as before. */
static int open_drive(const struct drive_spec *d, struct bdev **bs, char *err, size_t errlen)
{
	struct block_open_opts o = d->opts;
	int r;

	o.inline_memory_io = true;
	o.poll_completions = o.engine != BLOCK_ENGINE_THREADS;
	o.batch_when_busy = true;	/* each virtqueue pass ends with a poll */
	r = bdev_open(d->file, &o, bs, err, errlen);
	if (r == 0 && o.poll_completions && bdev_aio_poll_fd(*bs) == -ENOTSUP) {
		bdev_close(*bs);
		o.poll_completions = false;
		r = bdev_open(d->file, &o, bs, err, errlen);
	}
	return r;
}

/* Open the drive and put a virtio-blk-pci for it on the VM (device: the
 * -device properties, NULL for -drive if=virtio, which has no bootindex). */
static int create_blk(struct vm *vm, const char *drive, const struct opts *device, int slot)
{
	static struct drive_spec d;	/* large; startup runs on one thread */
	const char *serial = device ? opts_get(device, "serial") : NULL;
	char err[512];
	struct virtio_blk_conf conf;
	struct virtio_blk *blk;
	struct bdev *bs;
	int32_t bootindex = -1;
	int r;

	if (parse_drive(drive, &d) < 0 || (device && parse_bootindex(device, &bootindex) < 0))
		return -EINVAL;
	virtio_blk_conf_init(&conf);
	conf.num_queues = auto_num_queues(vm->cfg);
	if (device && device_props(device, &conf) < 0)
		return -EINVAL;
	if (virtio_blk_conf_check(&conf, err, sizeof(err)) < 0) {
		log_error("-device %s: %s", DEVICE_NAME, err);
		return -EINVAL;
	}
	if (serial && strlen(serial) >= SERIAL_MAX) {
		log_error("-device %s: serial is too long", DEVICE_NAME);
		return -EINVAL;
	}
	conf.serial = serial ? serial : d.serial[0] ? d.serial : NULL;
	conf.read_only = d.opts.read_only;
	conf.discard_unmap = d.discard_unmap;
	conf.writeback = d.writeback;
	r = open_drive(&d, &bs, err, sizeof(err));
	if (r < 0) {
		log_error("-drive: %s", err);
		return r;
	}
	blk = calloc(1, sizeof(*blk));
	if (!blk) {
		bdev_close(bs);
		return -ENOMEM;
	}
	r = virtio_blk_init(blk, bs, &conf, &vm->mem, vm->loop);
	if (r < 0) {
		log_error("-drive %s: cannot create the device: %s", d.file, strerror(-r));
		return r;
	}
	if (device) {
		bool packed = false;

		if (virtio_opts_packed(device, DEVICE_NAME, &packed) < 0)
			return -EINVAL;
		virtio_pci_offer_packed(&blk->vp, packed);
	}
	r = virtio_pci_realize(&blk->vp, vm, slot);	/* logs its errors */
	if (r < 0)
		return r;
	if (register_bootindex(blk, device ? device->spec : NULL, bootindex) < 0)
		return -EINVAL;
	vmstate_register(&virtio_blk_vmstate, &blk->st, sizeof(blk->st), blk->vp.pci.devfn);
	if (n_devices < MAX_DRIVE_SPECS)
		devices[n_devices++] = blk;
	return 0;
}

/* addr=SLOT[.0] (hex, 1-1f; slot -1 when absent) and bus=, which may
 * only name the root bus, "pci.0" (libvirt always writes it). */
static int parse_addr(const struct opts *props, int *slot)
{
	const char *bus = opts_get(props, "bus");

	*slot = -1;
	if (bus && strcmp(bus, "pci.0")) {
		log_error("-device %s: Bus '%s' not found (only pci.0)", DEVICE_NAME, bus);
		return -EINVAL;
	}
	return virtio_opts_slot(props, DEVICE_NAME, slot);
}

/* The -drive spec whose id= is id, or NULL. */
static const char *find_drive(const struct vm_config *cfg, const char *id, unsigned *index)
{
	char v[64];

	for (unsigned i = 0; i < cfg->n_drives; i++)
		if (virtio_blk_opt_get(cfg->drives[i], "id", v, sizeof(v)) == 1 && !strcmp(v, id)) {
			*index = i;
			return cfg->drives[i];
		}
	return NULL;
}

static int device_blk(struct vm *vm, const struct opts *props, bool *used)
{
	const char *id = opts_get(props, "drive"), *drive;
	unsigned index;
	int slot;

	if (parse_addr(props, &slot) < 0)
		return -EINVAL;
	if (!id) {
		log_error("-device %s: drive=ID is required", DEVICE_NAME);
		return -EINVAL;
	}
	drive = find_drive(vm->cfg, id, &index);
	if (!drive) {
		log_error("-device %s: no -drive with id=%s", DEVICE_NAME, id);
		return -EINVAL;
	}
	if (used[index]) {
		log_error("-device %s: drive %s is already in use", DEVICE_NAME, id);
		return -EINVAL;
	}
	used[index] = true;
	return create_blk(vm, drive, props, slot);
}

static int device_spec_blk(struct vm *vm, const char *spec, bool *used)
{
	const char *props = spec + strlen(DEVICE_NAME);
	struct opts o;
	int r;

	if (*props == ',')
		props++;
	if (parse_checked("-device " DEVICE_NAME, props, device_keys, &o) < 0)
		return -EINVAL;
	r = device_blk(vm, &o, used);
	opts_free(&o);
	return r;
}

static int virtio_blk_device_init(struct vm *vm)
{
	size_t nlen = strlen(DEVICE_NAME);
	bool used[MAX_DRIVE_SPECS] = { false };
	char iface[16];
	int r;

	for (unsigned i = 0; i < vm->cfg->n_devices; i++) {
		const char *spec = vm->cfg->devices[i];

		if (strncmp(spec, DEVICE_NAME, nlen) || (spec[nlen] && spec[nlen] != ','))
			continue;
		r = device_spec_blk(vm, spec, used);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < vm->cfg->n_drives; i++) {
		const char *spec = vm->cfg->drives[i];

		if (virtio_blk_opt_get(spec, "if", iface, sizeof(iface)) == 1 &&
		    !strcmp(iface, "virtio")) {
			if (used[i]) {
				log_error("-drive %s: if=virtio drive also used by a -device",
					  spec);
				return -EINVAL;
			}
			r = create_blk(vm, spec, NULL, -1);
			if (r < 0)
				return r;
		} else if (!used[i]) {
			static struct drive_spec d;

			r = parse_drive(spec, &d);
			if (r < 0)	/* unused drives still get their syntax checked */
				return r;
		}
	}
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_DEVICE, virtio_blk_device_init);
