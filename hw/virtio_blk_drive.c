/* Command line glue for virtio-blk-pci: QEMU's -drive syntax (",," is a
 * literal comma in values: file=a,,b.img names "a,b.img"), the
 * "-device virtio-blk-pci,drive=ID[,...properties][,bootindex=N]" and
 * "-drive ...,if=virtio" creation, the boot order entries, and the
 * DEVICE_INIT that puts the devices on the VM. The model itself is
 * hw/virtio_blk.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "block/block.h"
#include "hw/bootorder.h"
#include "hw/virtio_blk.h"
#include "hw/virtio_rng.h"
#include "vmm/config.h"
#include "vmm/device.h"
#include "vmm/log.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define DEVICE_NAME	"virtio-blk-pci"
#define SERIAL_MAX	256

/* The devices made from the command line, for virtio_blk_drain_all. */
static struct virtio_blk *devices[MAX_DRIVE_SPECS];
static unsigned n_devices;

void virtio_blk_drain_all(void)
{
	for (unsigned i = 0; i < n_devices; i++)
		virtio_blk_drain(devices[i]);
}

/* --- option strings --------------------------------------------------------- */

/* One item of an option string: "key=value" (or a bare word). */
struct opt_item {
	const char *key;
	size_t klen;
	bool has_val;
	size_t len;			/* of the whole item as written */
	bool too_long;			/* the value did not fit val */
};

/* Parse the item at p, unescaping its value into val (NULL: only
 * measure). Returns the start of the next item (or the end). */
static const char *next_item(const char *p, struct opt_item *it, char *val, size_t vsize)
{
	const char *start = p;
	size_t n = 0;

	memset(it, 0, sizeof(*it));
	it->key = p;
	it->klen = strcspn(p, "=,");
	p += it->klen;
	it->has_val = *p == '=';
	if (it->has_val) {
		p++;
		while (*p && !(*p == ',' && p[1] != ',')) {
			if (val && n + 1 < vsize)
				val[n++] = *p;
			else if (val)
				it->too_long = true;
			p += *p == ',' ? 2 : 1;
		}
	}
	if (val && vsize)
		val[n] = 0;
	it->len = p - start;
	return *p ? p + 1 : p;
}

int virtio_blk_opt_get(const char *spec, const char *key, char *buf, size_t len)
{
	const char *p = spec;
	struct opt_item it;

	while (*p) {
		const char *item = p;

		p = next_item(p, &it, NULL, 0);
		if (!it.has_val || it.klen != strlen(key) || strncmp(it.key, key, it.klen))
			continue;
		next_item(item, &it, buf, len);
		return it.too_long ? -1 : 1;
	}
	return 0;
}

/* Report the first item whose key is not in keys. */
static int check_keys(const char *what, const char *spec, const char *const *keys)
{
	const char *p = spec;
	struct opt_item it;

	while (*p) {
		const char *item = p;
		bool ok = false;

		p = next_item(p, &it, NULL, 0);
		for (unsigned i = 0; keys[i]; i++)
			if (it.has_val && it.klen == strlen(keys[i]) &&
			    !strncmp(it.key, keys[i], it.klen))
				ok = true;
		if (!ok) {
			log_error("%s: unknown or bad parameter '%.*s'", what, (int)it.len, item);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_onoff(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
		*out = false;
		return 0;
	}
	return -1;
}

static int parse_u32(const char *v, bool sizes, uint32_t *out)
{
	uint64_t n;
	char *end;

	if (sizes) {
		if (parse_size(v, 'B', &n) < 0)
			return -1;
	} else {
		errno = 0;
		if (*v < '0' || *v > '9')
			return -1;
		n = strtoull(v, &end, 0);
		if (errno || *end)
			return -1;
	}
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

static int drive_strings(const char *spec, struct drive_spec *d)
{
	if (virtio_blk_opt_get(spec, "file", d->file, sizeof(d->file)) != 1 || !d->file[0]) {
		log_error("-drive %s: file= is required", spec);
		return -EINVAL;
	}
	if (virtio_blk_opt_get(spec, "id", d->id, sizeof(d->id)) < 0 ||
	    virtio_blk_opt_get(spec, "if", d->iface, sizeof(d->iface)) < 0 ||
	    virtio_blk_opt_get(spec, "format", d->format, sizeof(d->format)) < 0 ||
	    virtio_blk_opt_get(spec, "serial", d->serial, sizeof(d->serial)) < 0) {
		log_error("-drive %s: a value is too long", spec);
		return -EINVAL;
	}
	if (strcmp(d->iface, "none") && strcmp(d->iface, "virtio")) {
		log_error("-drive %s: only if=none and if=virtio are supported", spec);
		return -EINVAL;
	}
	if (!strcmp(d->iface, "none") && !d->id[0]) {
		log_error("-drive %s: if=none needs id=", spec);
		return -EINVAL;
	}
	d->opts.format = d->format[0] ? d->format : NULL;
	return 0;
}

/* cache= as QEMU splits it: the host side (O_DIRECT, flushes) goes to the
 * block layer, writeback vs writethrough is the device's write cache. */
static int drive_cache(const char *spec, struct drive_spec *d)
{
	char v[64];
	enum block_cache_mode mode = BLOCK_CACHE_WRITEBACK;

	if (virtio_blk_opt_get(spec, "cache", v, sizeof(v)) &&
	    block_parse_cache_mode(v, &mode) < 0) {
		log_error("-drive %s: invalid cache mode '%s'", spec, v);
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

static int drive_flags(const char *spec, struct drive_spec *d)
{
	char v[64];

	if (virtio_blk_opt_get(spec, "aio", v, sizeof(v)) &&
	    block_parse_engine(v, &d->opts.engine) < 0) {
		log_error("-drive %s: invalid aio '%s' (threads, native, io_uring)", spec, v);
		return -EINVAL;
	}
	if (virtio_blk_opt_get(spec, "readonly", v, sizeof(v))) {
		if (!strcmp(v, "on"))
			d->opts.read_only = true;
		else if (strcmp(v, "off")) {
			log_error("-drive %s: readonly must be on or off", spec);
			return -EINVAL;
		}
	}
	if (virtio_blk_opt_get(spec, "media", v, sizeof(v)) && strcmp(v, "disk")) {
		log_error("-drive %s: only media=disk is supported", spec);
		return -EINVAL;
	}
	if (virtio_blk_opt_get(spec, "discard", v, sizeof(v))) {
		if (!strcmp(v, "unmap") || !strcmp(v, "on"))
			d->discard_unmap = true;
		else if (strcmp(v, "ignore") && strcmp(v, "off")) {
			log_error("-drive %s: invalid discard option '%s' (ignore, unmap)",
				  spec, v);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_drive(const char *spec, struct drive_spec *d)
{
	memset(d, 0, sizeof(*d));
	if (check_keys("-drive", spec, drive_keys) < 0)
		return -EINVAL;
	if (drive_strings(spec, d) < 0 || drive_cache(spec, d) < 0 || drive_flags(spec, d) < 0)
		return -EINVAL;
	return 0;
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

static int device_props(const char *spec, struct virtio_blk_conf *c)
{
	char v[64];
	uint32_t n;

	for (size_t i = 0; i < sizeof(bool_props) / sizeof(bool_props[0]); i++) {
		bool *dst = (bool *)((char *)c + bool_props[i].off);

		if (virtio_blk_opt_get(spec, bool_props[i].key, v, sizeof(v)) &&
		    parse_onoff(v, dst) < 0) {
			log_error("-device %s: %s must be on or off", DEVICE_NAME,
				  bool_props[i].key);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < sizeof(u32_props) / sizeof(u32_props[0]); i++) {
		if (!virtio_blk_opt_get(spec, u32_props[i].key, v, sizeof(v)))
			continue;
		if (parse_u32(v, u32_props[i].size, &n) < 0) {
			log_error("-device %s: invalid %s '%s'", DEVICE_NAME, u32_props[i].key, v);
			return -EINVAL;
		}
		*(uint32_t *)((char *)c + u32_props[i].off) = n;
	}
	if (virtio_blk_opt_get(spec, "queue-size", v, sizeof(v))) {
		if (parse_u32(v, false, &n) < 0 || n > UINT16_MAX) {
			log_error("-device %s: invalid queue-size '%s'", DEVICE_NAME, v);
			return -EINVAL;
		}
		c->queue_size = n;
	}
	return 0;
}

/* QEMU 7.2's virtio-blk-pci default: one queue per vCPU. */
static unsigned auto_num_queues(const struct vm_config *cfg)
{
	unsigned n = cfg->ncpus ? cfg->ncpus : 1;

	return n < VIRTIO_BLK_MAX_NUM_QUEUES ? n : VIRTIO_BLK_MAX_NUM_QUEUES;
}

/* bootindex=N of a -device (QEMU's default -1: not in the boot order). */
static int parse_bootindex(const char *props, int32_t *index)
{
	char v[32];
	int r = virtio_blk_opt_get(props, "bootindex", v, sizeof(v));

	*index = -1;
	if (r == 0)
		return 0;
	if (r < 0 || bootorder_parse_index(v, index) < 0) {
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

/* Open the drive and put a virtio-blk-pci for it on the VM (device: the
 * -device properties, NULL for -drive if=virtio, which has no bootindex). */
static int create_blk(struct vm *vm, const char *drive, const char *device, int slot)
{
	static struct drive_spec d;	/* large; startup runs on one thread */
	char serial[SERIAL_MAX], err[512];
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
	r = device ? virtio_blk_opt_get(device, "serial", serial, sizeof(serial)) : 0;
	if (r < 0) {
		log_error("-device %s: serial is too long", DEVICE_NAME);
		return -EINVAL;
	}
	conf.serial = r == 1 ? serial : d.serial[0] ? d.serial : NULL;
	conf.read_only = d.opts.read_only;
	conf.discard_unmap = d.discard_unmap;
	conf.writeback = d.writeback;
	d.opts.inline_memory_io = true;	/* req_done copes with completions inside submit */
	r = bdev_open(d.file, &d.opts, &bs, err, sizeof(err));
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

		if (virtio_spec_packed(device, DEVICE_NAME, &packed) < 0)
			return -EINVAL;
		virtio_pci_offer_packed(&blk->vp, packed);
	}
	r = virtio_pci_realize(&blk->vp, vm, slot);	/* logs its errors */
	if (r < 0)
		return r;
	if (register_bootindex(blk, device, bootindex) < 0)
		return -EINVAL;
	vmstate_register(&virtio_blk_vmstate, &blk->st, sizeof(blk->st), blk->vp.pci.devfn);
	if (n_devices < MAX_DRIVE_SPECS)
		devices[n_devices++] = blk;
	return 0;
}

/* addr=SLOT[.0] (hex, 1-1f) as virtio_spec_slot reads it, but through
 * the escaping-aware parser; slot -1 when absent. bus= may only name the
 * root bus, "pci.0" (libvirt always writes it). */
static int parse_addr(const char *props, int *slot)
{
	char v[16], *end;
	unsigned long s;

	*slot = -1;
	if (virtio_blk_opt_get(props, "bus", v, sizeof(v)) && strcmp(v, "pci.0")) {
		log_error("-device %s: Bus '%s' not found (only pci.0)", DEVICE_NAME, v);
		return -EINVAL;
	}
	if (!virtio_blk_opt_get(props, "addr", v, sizeof(v)))
		return 0;
	errno = 0;
	s = strtoul(v, &end, 16);
	if (!errno && end != v && s >= 1 && s < PCI_SLOTS && (!*end || !strcmp(end, ".0"))) {
		*slot = s;
		return 0;
	}
	log_error("-device %s: invalid addr '%s' (slot 1-1f)", DEVICE_NAME, v);
	return -EINVAL;
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

static int device_spec_blk(struct vm *vm, const char *spec, bool *used)
{
	const char *props = spec + strlen(DEVICE_NAME);
	char id[64];
	const char *drive;
	unsigned index;
	int slot;

	if (*props == ',')
		props++;
	if (check_keys("-device " DEVICE_NAME, props, device_keys) < 0 ||
	    parse_addr(props, &slot) < 0)
		return -EINVAL;
	if (virtio_blk_opt_get(props, "drive", id, sizeof(id)) != 1) {
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
