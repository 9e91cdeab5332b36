/* The QEMU-compatible command line: a table of options, each parsed into
 * struct vm_config. Errors are one clear line; nothing here exits. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vmm/config.h"
#include "vmm/cpuid.h"
#include "vmm/device.h"
#include "vmm/log.h"
#include "vmm/opts.h"
#include "vmm/platform.h"

#define MINIKVM_VERSION "0.1.0"
#define DEFAULT_RAM (128ULL << 20)
#define MAX_SMP 1024
#define STR_(x) #x
#define STR(x) STR_(x)


struct cli_ctx {
	struct vm_config *cfg;
	const struct device_model *device;	/* the -device being parsed */
	char *err;
	size_t errlen;
	bool nodefaults;
};

static int cli_error(struct cli_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int cli_error(struct cli_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int parse_size(const char *s, char default_suffix, uint64_t *out)
{
	return opts_parse_size(s, default_suffix, out);
}

/* Parses "a=b,c,d=e" (vmm/opts.c), calling fn for each key (value NULL for
 * a bare word). A leading bare word is passed with key NULL and the word
 * as value when implied_key is NULL, else under implied_key. Empty items
 * are skipped. */
typedef int (*kv_fn)(struct cli_ctx *c, const char *key, const char *val);
static int parse_kv(struct cli_ctx *c, const char *opt, const char *arg,
		    const char *implied_key, kv_fn fn)
{
	const struct opts_syntax syn = { .implied_key = implied_key };
	struct opts o;
	char why[96];

	/* Values point into o and are kept in the configuration, so it lives
	 * as long as the process (never freed). */
	if (opts_parse(&o, arg, &syn, why, sizeof(why)) < 0)
		return cli_error(c, "%s: %s", opt, why);
	for (unsigned i = 0; i < o.n; i++) {
		const struct opt *it = &o.items[i];
		int r;

		if (!*it->key && !it->val)
			continue;
		if (i == 0 && !it->val)
			r = fn(c, NULL, it->key);
		else
			r = fn(c, it->key, it->val);
		if (r < 0)
			return r;
	}
	return 0;
}

static int opt_m_kv(struct cli_ctx *c, const char *key, const char *val)
{
	uint64_t size;

	if (key && !strcmp(key, "size")) {
		if (!val || parse_size(val, 'M', &size) < 0 || size < (1ULL << 20))
			return cli_error(c, "-m: invalid RAM size '%s'", val ? val : "");
		if (size > (4ULL << 40))
			return cli_error(c, "-m: RAM size '%s' is larger than 4 TiB", val);
		c->cfg->ram_size = size & ~0xfffULL;
		return 0;
	}
	if (key && (!strcmp(key, "slots") || !strcmp(key, "maxmem")))
		return cli_error(c, "-m: memory hotplug (%s=) is not supported", key);
	return cli_error(c, "-m: unknown parameter '%s'", key ? key : val);
}

static int opt_smp_kv(struct cli_ctx *c, const char *key, const char *val)
{
	uint64_t n;
	struct vm_config *cfg = c->cfg;

	if (opts_parse_uint(val, 1, MAX_SMP, &n) < 0)
		return cli_error(c, "-smp: invalid value for %s: '%s' (1 to " STR(MAX_SMP) ")", key ? key : "cpus",
				 val ? val : "");
	if (!key || !strcmp(key, "cpus"))
		cfg->ncpus = n;
	else if (!strcmp(key, "maxcpus"))
		cfg->max_cpus = n;
	else if (!strcmp(key, "sockets"))
		cfg->sockets = n;
	else if (!strcmp(key, "cores"))
		cfg->cores = n;
	else if (!strcmp(key, "threads"))
		cfg->threads = n;
	else if (!strcmp(key, "dies") && n == 1)
		;
	else
		return cli_error(c, "-smp: unknown parameter '%s'", key);
	return 0;
}

static int opt_cpu_kv(struct cli_ctx *c, const char *key, const char *val)
{
	struct vm_config *cfg = c->cfg;
	struct cpu_feature_edit *e;
	bool enable;
	const char *name;

	if (!key) {
		if (strcmp(val, "host") && strcmp(val, "max") && strcmp(val, "qemu64") &&
		    strcmp(val, "kvm64"))
			return cli_error(c, "-cpu: unsupported CPU model '%s' (use host, max, "
					 "qemu64 or kvm64)", val);
		cfg->cpu_model = val;
		return 0;
	}
	if (val) {		/* feat=on|off */
		if (opts_parse_bool(val, &enable) < 0)
			return cli_error(c, "-cpu: %s=%s: expected on or off", key, val);
		name = key;
	} else if (key[0] == '+' || key[0] == '-') {
		enable = key[0] == '+';
		name = key + 1;
	} else {
		enable = true;
		name = key;
	}
	if (!cpuid_feature_known(name))
		return cli_error(c, "-cpu: unknown CPU feature '%s'", name);
	if (cfg->n_cpu_edits == sizeof(cfg->cpu_edits) / sizeof(cfg->cpu_edits[0]))
		return cli_error(c, "-cpu: too many feature edits");
	e = &cfg->cpu_edits[cfg->n_cpu_edits++];
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->enable = enable;
	return 0;
}

/* -device: the model (hw/, registered) says which keys it takes. */
static int opt_device_kv(struct cli_ctx *c, const char *key, const char *val)
{
	const struct device_model *m = c->device;
	char err[160] = "";

	if (m->set) {
		if (m->set(c->cfg, key, val, err, sizeof(err)) < 0)
			return cli_error(c, "-device %s: %s", m->name, err);
		return 0;
	}
	if (!key)
		return 0;	/* the model name itself */
	if (!strcmp(key, "addr") && val && *val)
		return 0;	/* slot[.fn], checked by the device */
	if (!strcmp(key, "id") && val)
		return 0;
	for (unsigned i = 0; val && m->keys && m->keys[i]; i++)
		if (!strcmp(key, m->keys[i]))
			return 0;	/* the value is checked by the device */
	return cli_error(c, "-device %s: unknown or bad parameter '%s'", m->name, key);
}

static void print_model_usage(const struct device_model *m, void *opaque)
{
	printf("%s%s\n", (const char *)opaque, m->usage);
}

static void append_model_name(const struct device_model *m, void *opaque)
{
	char *list = opaque;
	size_t n = strlen(list);

	snprintf(list + n, 256 - n, "%s%s", n ? ", " : "", m->name);
}

static int opt_device(struct cli_ctx *c, const char *arg)
{
	size_t n = strcspn(arg, ",");
	char names[256] = "";

	if (!strcmp(arg, "help")) {
		device_models_each(print_model_usage, "-device ");
		return 1;
	}
	c->device = device_model_find(arg, n);
	if (!c->device) {
		device_models_each(append_model_name, names);
		return cli_error(c, "-device: unsupported device '%.*s' (supported: %s)", (int)n,
				 arg, names);
	}
	if (!c->device->set && c->cfg->n_devices == MAX_DEVICE_SPECS)
		return cli_error(c, "-device: too many devices");
	if (parse_kv(c, "-device", arg, NULL, opt_device_kv) < 0)
		return -1;
	if (!c->device->set)
		c->cfg->devices[c->cfg->n_devices++] = arg;
	return 0;
}

/* -netdev / -nic: stored raw; net/ parses them (type first). */
static int opt_netdev(struct cli_ctx *c, const char *opt, const char *arg, const char **list,
		      unsigned *n)
{
	if (*n == MAX_NETDEV_SPECS)
		return cli_error(c, "%s: at most %d", opt, MAX_NETDEV_SPECS);
	if (!*arg || *arg == ',')
		return cli_error(c, "%s: missing backend type (tap, user, socket)", opt);
	list[(*n)++] = arg;
	return 0;
}

/* -drive: stored raw; the block device models parse the keys. */
static int opt_drive(struct cli_ctx *c, const char *arg)
{
	if (c->cfg->n_drives == MAX_DRIVE_SPECS)
		return cli_error(c, "-drive: too many drives");
	if (!*arg)
		return cli_error(c, "-drive: empty specification");
	c->cfg->drives[c->cfg->n_drives++] = arg;
	return 0;
}

static int opt_machine_kv(struct cli_ctx *c, const char *key, const char *val)
{
	if (!key || !strcmp(key, "type")) {
		if (strcmp(val, "pc") && strncmp(val, "pc-i440fx", 9))
			return cli_error(c, "-machine: unsupported machine '%s' (only pc, the "
					 "i440FX/PIIX PC)", val);
		return 0;
	}
	if (!strcmp(key, "accel")) {
		if (!val || strcmp(val, "kvm"))
			return cli_error(c, "-machine accel=%s: only kvm is supported", val ? val : "");
		return 0;
	}
	return cli_error(c, "-machine: unsupported property '%s'", key);
}

static int opt_rtc_kv(struct cli_ctx *c, const char *key, const char *val)
{
	if (key && !strcmp(key, "base") && val && !strcmp(val, "utc"))
		c->cfg->rtc_localtime = false;
	else if (key && !strcmp(key, "base") && val && !strcmp(val, "localtime"))
		c->cfg->rtc_localtime = true;
	else if (key && (!strcmp(key, "clock") || !strcmp(key, "driftfix")))
		;
	else
		return cli_error(c, "-rtc: unsupported setting '%s%s%s'", key ? key : "",
				 val ? "=" : "", val ? val : "");
	return 0;
}

/* QEMU's generic -boot order check; the PC limits (a, b, c, d, n; three at
 * most) are hw/rtc.c's, which fills the CMOS bytes SeaBIOS reads. */
static int check_boot_devices(struct cli_ctx *c, const char *val)
{
	unsigned seen = 0;

	if (!*val)
		return cli_error(c, "-boot: invalid boot order ''");
	for (const char *p = val; *p; p++) {
		if (*p < 'a' || *p > 'p')
			return cli_error(c, "-boot: invalid boot device '%c'", *p);
		if (seen & 1u << (*p - 'a'))
			return cli_error(c, "-boot: boot device '%c' was given twice", *p);
		seen |= 1u << (*p - 'a');
	}
	return 0;
}

/* A number in C syntax within [min, max] (QEMU's -boot integers). */
static int parse_int_range(const char *v, long long min, long long max, long long *out)
{
	char *end;

	if (!v || !*v)
		return -1;
	errno = 0;
	*out = strtoll(v, &end, 0);
	return errno || *end || *out < min || *out > max ? -1 : 0;
}

static int opt_boot_kv(struct cli_ctx *c, const char *key, const char *val)
{
	struct vm_config *cfg = c->cfg;
	long long n;

	if (!key || !strcmp(key, "order") || !strcmp(key, "once")) {
		if (!val)
			return cli_error(c, "-boot: invalid boot order ''");
		if (check_boot_devices(c, val) < 0)
			return -1;
		if (key && !strcmp(key, "once"))
			cfg->boot_once = val;
		else
			cfg->boot_order = val;
		return 0;
	}
	if (!strcmp(key, "menu") || !strcmp(key, "strict")) {
		bool *flag = !strcmp(key, "menu") ? &cfg->boot_menu : &cfg->boot_strict;

		if (opts_parse_bool(val, flag) < 0)
			return cli_error(c, "-boot: parameter '%s' expects 'on' or 'off'", key);
		return 0;
	}
	if (!strcmp(key, "splash-time")) {
		if (parse_int_range(val, 0, 0xffff, &n) < 0)
			return cli_error(c, "-boot: splash-time is invalid, it should be a "
					 "value between 0 and 65535");
		cfg->has_splash_time = true;
		cfg->boot_splash_time = n;
		return 0;
	}
	if (!strcmp(key, "reboot-timeout")) {
		if (parse_int_range(val, -1, 0xffff, &n) < 0)
			return cli_error(c, "-boot: reboot timeout is invalid, it should be "
					 "a value between -1 and 65535");
		cfg->has_reboot_timeout = true;
		cfg->boot_reboot_timeout = n;
		return 0;
	}
	return cli_error(c, "-boot: unknown parameter '%s'", key);
}

static int parse_uuid(const char *s, uint8_t out[16])
{
	unsigned n = 0;

	for (const char *p = s; *p && n < 32; p++) {
		if (*p == '-' && (p - s == 8 || p - s == 13 || p - s == 18 || p - s == 23))
			continue;
		if (!isxdigit((unsigned char)*p))
			return -1;
		unsigned d = isdigit((unsigned char)*p) ? *p - '0' : (tolower(*p) - 'a' + 10);
		out[n / 2] = (n % 2) ? (out[n / 2] | d) : (d << 4);
		n++;
	}
	return (n == 32 && strlen(s) == 36) ? 0 : -1;
}

enum opt_id {
	OPT_M, OPT_SMP, OPT_CPU, OPT_BIOS, OPT_KERNEL, OPT_INITRD, OPT_APPEND, OPT_SERIAL,
	OPT_NOGRAPHIC, OPT_DISPLAY, OPT_NAME, OPT_UUID, OPT_NO_REBOOT, OPT_NO_SHUTDOWN,
	OPT_LOGFILE, OPT_LOGMASK, OPT_HELP, OPT_VERSION, OPT_ENABLE_KVM, OPT_MACHINE,
	OPT_ACCEL, OPT_NODEFAULTS, OPT_NO_USER_CONFIG, OPT_DEVICE, OPT_DRIVE, OPT_NETDEV, OPT_NIC,
	OPT_DEBUGCON, OPT_RTC,
	OPT_BOOT, OPT_VGA, OPT_MONITOR,
};

static const struct cli_option {
	const char *name;
	enum opt_id id;
	bool has_arg;
	const char *help;
} options[] = {
	{ "m", OPT_M, true, "-m [size=]SIZE     guest RAM (default 128M; suffixes K M G T)" },
	{ "smp", OPT_SMP, true, "-smp [cpus=]N[,sockets=,cores=,threads=,maxcpus=]" },
	{ "cpu", OPT_CPU, true, "-cpu host[,+feat,-feat,feat=on|off]" },
	{ "bios", OPT_BIOS, true, "-bios FILE        firmware (default: Debian's SeaBIOS)" },
	{ "kernel", OPT_KERNEL, true, "-kernel FILE      bzImage, PVH ELF or multiboot kernel" },
	{ "initrd", OPT_INITRD, true, "-initrd FILE      initial ramdisk / first module" },
	{ "append", OPT_APPEND, true, "-append CMDLINE   kernel command line" },
	{ "serial", OPT_SERIAL, true, "-serial stdio|mon:stdio|file:PATH|pty|unix:PATH,server|null|none" },
	{ "nographic", OPT_NOGRAPHIC, false, "-nographic        no display; COM1 on stdio" },
	{ "display", OPT_DISPLAY, true, "-display none" },
	{ "name", OPT_NAME, true, "-name [guest=]NAME" },
	{ "uuid", OPT_UUID, true, "-uuid UUID" },
	{ "no-reboot", OPT_NO_REBOOT, false, "-no-reboot        exit (status 0) when the guest resets" },
	{ "no-shutdown", OPT_NO_SHUTDOWN, false, "-no-shutdown      (accepted; stops are a later step)" },
	{ "D", OPT_LOGFILE, true, "-D FILE           write diagnostics to FILE" },
	{ "d", OPT_LOGMASK, true, "-d guest_errors,unimp,ioport,int,startup" },
	{ "h", OPT_HELP, false, NULL },
	{ "help", OPT_HELP, false, "--help            this text" },
	{ "version", OPT_VERSION, false, "--version         print the version" },
	{ "enable-kvm", OPT_ENABLE_KVM, false, "-enable-kvm       (always on)" },
	{ "machine", OPT_MACHINE, true, "-machine [type=]pc[,accel=kvm]" },
	{ "M", OPT_MACHINE, true, NULL },
	{ "accel", OPT_ACCEL, true, "-accel kvm" },
	{ "nodefaults", OPT_NODEFAULTS, false, "-nodefaults       no default serial port" },
	{ "no-user-config", OPT_NO_USER_CONFIG, false, NULL },
	{ "device", OPT_DEVICE, true,
	  "-device MODEL[,addr=SLOT,id=ID,...]  (the models below; -device help)" },
	{ "netdev", OPT_NETDEV, true,
	  "-netdev tap,id=ID[,ifname=,script=,downscript=,fd=,vnet_hdr=,queues=] |"
	  " user,id=ID[,net=,hostfwd=,tftp=,bootfile=] | socket,id=ID,listen=|connect=|udp=" },
	{ "nic", OPT_NIC, true, "-nic TYPE[,model=virtio-net-pci,mac=MAC,...backend options]" },
	{ "drive", OPT_DRIVE, true,
	  "-drive file=PATH[,format=F,if=none|virtio,id=ID,cache=C,aio=A,readonly=on]" },
	{ "debugcon", OPT_DEBUGCON, true, "-debugcon SPEC    port 0x402 debug console backend" },
	{ "rtc", OPT_RTC, true, "-rtc base=utc|localtime" },
	{ "boot", OPT_BOOT, true, "-boot [order=]DRIVES (a c d n)[,menu=on|off,strict=on|off,"
	  "splash-time=MS,reboot-timeout=MS]" },
	{ "vga", OPT_VGA, true, "-vga none" },
	{ "monitor", OPT_MONITOR, true, "-monitor none" },
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

void cli_usage(void)
{
	printf("usage: minikvm [options]\n"
	       "A small KVM virtual machine monitor emulating an i440FX PC; QEMU-style options:\n");
	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (options[i].help)
			printf("  %s\n", options[i].help);
		if (options[i].id == OPT_DEVICE && options[i].help)
			device_models_each(print_model_usage, "    ");
	}
	printf("During -nographic / -serial stdio: Ctrl-a x quits, Ctrl-a h helps.\n");
}

static int apply_option(struct cli_ctx *c, const struct cli_option *o, const char *arg)
{
	struct vm_config *cfg = c->cfg;

	switch (o->id) {
	case OPT_M:
		return parse_kv(c, "-m", arg, "size", opt_m_kv);
	case OPT_SMP:
		return parse_kv(c, "-smp", arg, "cpus", opt_smp_kv);
	case OPT_CPU:
		return parse_kv(c, "-cpu", arg, NULL, opt_cpu_kv);
	case OPT_BIOS: cfg->bios = arg; return 0;
	case OPT_KERNEL: cfg->kernel = arg; return 0;
	case OPT_INITRD: cfg->initrd = arg; return 0;
	case OPT_APPEND: cfg->append = arg; return 0;
	case OPT_SERIAL:
		if (cfg->n_serial == MAX_SERIAL_PORTS)
			return cli_error(c, "-serial: at most %d serial ports", MAX_SERIAL_PORTS);
		cfg->serial[cfg->n_serial++] = arg;
		return 0;
	case OPT_NOGRAPHIC: cfg->nographic = true; return 0;
	case OPT_DISPLAY:
		if (strcmp(arg, "none"))
			return cli_error(c, "-display %s: only 'none' is supported (no graphics)", arg);
		cfg->display_none = true;
		return 0;
	case OPT_NAME:
		cfg->name = !strncmp(arg, "guest=", 6) ? arg + 6 : arg;
		return 0;
	case OPT_UUID:
		if (parse_uuid(arg, cfg->uuid) < 0)
			return cli_error(c, "-uuid: '%s' is not a UUID", arg);
		cfg->has_uuid = true;
		return 0;
	case OPT_NO_REBOOT: cfg->no_reboot = true; return 0;
	case OPT_NO_SHUTDOWN: cfg->no_shutdown = true; return 0;
	case OPT_LOGFILE:
		if (log_set_file(arg) < 0)
			return cli_error(c, "-D %s: %s", arg, strerror(errno));
		return 0;
	case OPT_LOGMASK:
		if (log_parse_mask(arg) < 0)
			return cli_error(c, "-d %s: unknown item (known: guest_errors, unimp, "
					 "ioport, int, startup)", arg);
		return 0;
	case OPT_HELP: cli_usage(); return 1;
	case OPT_VERSION:
		printf("minikvm version " MINIKVM_VERSION "\n");
		return 1;
	case OPT_ENABLE_KVM:
	case OPT_NO_USER_CONFIG:
		return 0;
	case OPT_MACHINE:
		return parse_kv(c, "-machine", arg, "type", opt_machine_kv);
	case OPT_ACCEL:
		if (strcmp(arg, "kvm"))
			return cli_error(c, "-accel %s: only kvm is supported", arg);
		return 0;
	case OPT_NODEFAULTS: c->nodefaults = true; return 0;
	case OPT_DEVICE: return opt_device(c, arg);
	case OPT_DRIVE: return opt_drive(c, arg);
	case OPT_NETDEV: return opt_netdev(c, "-netdev", arg, cfg->netdevs, &cfg->n_netdevs);
	case OPT_NIC: return opt_netdev(c, "-nic", arg, cfg->nics, &cfg->n_nics);
	case OPT_DEBUGCON: cfg->debugcon = arg; return 0;
	case OPT_RTC: return parse_kv(c, "-rtc", arg, NULL, opt_rtc_kv);
	case OPT_BOOT: return parse_kv(c, "-boot", arg, "order", opt_boot_kv);
	case OPT_VGA:
	case OPT_MONITOR:
		if (strcmp(arg, "none"))
			return cli_error(c, "-%s %s: only 'none' is supported in this version",
					 o->name, arg);
		return 0;
	}
	return 0;
}

static void cli_defaults(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ram_size = DEFAULT_RAM;
	cfg->ncpus = 1;
	cfg->cpu_model = "host";
}

static int cli_finish(struct cli_ctx *c)
{
	struct vm_config *cfg = c->cfg;

	if (cfg->max_cpus && cfg->max_cpus < cfg->ncpus)
		return cli_error(c, "-smp: maxcpus (%u) is less than cpus (%u)",
				 cfg->max_cpus, cfg->ncpus);
	if (!cfg->max_cpus)
		cfg->max_cpus = cfg->ncpus;
	if (cfg->sockets && cfg->cores && cfg->threads &&
	    cfg->sockets * cfg->cores * cfg->threads < cfg->max_cpus)
		return cli_error(c, "-smp: sockets*cores*threads is less than the CPU count");
	if ((cfg->initrd || cfg->append) && !cfg->kernel)
		return cli_error(c, "-%s only allowed with -kernel", cfg->initrd ? "initrd" : "append");
	/* QEMU: -nographic puts COM1 on stdio unless -serial or -nodefaults */
	if (cfg->nographic && !cfg->n_serial && !c->nodefaults)
		cfg->serial[cfg->n_serial++] = "mon:stdio";
	for (unsigned i = 0; i < cfg->n_serial; i++)
		if (!strcmp(cfg->serial[i], "none"))
			cfg->serial[i] = NULL;
	return 0;
}

int cli_parse(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen)
{
	struct cli_ctx c = { .cfg = cfg, .err = err, .errlen = errlen };

	cli_defaults(cfg);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct cli_option *o = NULL;
		int r;

		if (a[0] != '-' || !a[1])
			return cli_error(&c, "unexpected argument '%s' (options start with '-')", a);
		a += (a[1] == '-') ? 2 : 1;
		for (size_t k = 0; k < N_OPTIONS; k++)
			if (!strcmp(options[k].name, a))
				o = &options[k];
		if (!o)
			return cli_error(&c, "unknown option '%s' (see --help)", argv[i]);
		if (o->has_arg && i + 1 >= argc)
			return cli_error(&c, "option '%s' needs an argument", argv[i]);
		r = apply_option(&c, o, o->has_arg ? argv[++i] : NULL);
		if (r)
			return r;
	}
	return cli_finish(&c);
}
