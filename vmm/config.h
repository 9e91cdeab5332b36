/* The VM configuration produced by the command line parser (cli.c) and
 * read by the VMM core and by devices. */
#ifndef VMM_CONFIG_H
#define VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define MAX_SERIAL_PORTS 4
#define MAX_DRIVE_SPECS	16
#define MAX_DEVICE_SPECS 32
#define MAX_NETDEV_SPECS 8

struct cpu_feature_edit {
	char name[32];
	bool enable;
};

struct vm_config {
	uint64_t ram_size;		/* bytes, -m */
	unsigned ncpus;			/* -smp */
	unsigned max_cpus;
	unsigned sockets, cores, threads;
	const char *cpu_model;		/* "host" (default) */
	struct cpu_feature_edit cpu_edits[32];
	unsigned n_cpu_edits;

	const char *bios;		/* -bios; NULL: default SeaBIOS */
	const char *kernel;		/* -kernel */
	const char *initrd;		/* -initrd */
	const char *append;		/* -append */
	const char *boot_order;		/* -boot order=... (e.g. "cd") */
	const char *boot_once;		/* -boot once=...: first boot only */
	/* -boot menu=, splash-time=, reboot-timeout=, strict=, given to
	 * SeaBIOS through fw_cfg (hw/fw_cfg.c) as QEMU does. */
	bool boot_menu;
	bool boot_strict;		/* "HALT" ends the bootorder file */
	bool has_splash_time;
	bool has_reboot_timeout;
	uint16_t boot_splash_time;	/* ms: etc/boot-menu-wait */
	int32_t boot_reboot_timeout;	/* ms, -1: never (etc/boot-fail-wait) */

	const char *serial[MAX_SERIAL_PORTS];	/* -serial specs, NULL = none */
	unsigned n_serial;
	bool nographic;
	bool display_none;
	bool no_reboot;
	bool no_shutdown;

	const char *name;		/* -name */
	uint8_t uuid[16];		/* -uuid */
	bool has_uuid;

	const char *debugcon;		/* -debugcon spec (port 0x402) */
	bool exit_port;			/* -device isa-debug-exit[,iobase=,iosize=] */
	uint16_t exit_port_base;
	uint16_t exit_port_size;

	bool rtc_localtime;		/* -rtc base=localtime */

	/* -device specs for devices that parse their own options (the raw
	 * option string, e.g. "virtio-rng-pci,addr=5"), in command line order. */
	const char *devices[MAX_DEVICE_SPECS];
	unsigned n_devices;

	/* -drive specs (raw option strings, e.g. "file=a.img,if=none,id=d0"),
	 * parsed by the block device models (hw/virtio_blk.c). */
	const char *drives[MAX_DRIVE_SPECS];
	unsigned n_drives;

	/* -netdev specs (raw, e.g. "user,id=n0,hostfwd=tcp::2222-:22"), parsed
	 * by net/; -nic specs (a backend plus its NIC in one: net/ creates the
	 * backend with id "__nicN", the NIC model (model=, default
	 * virtio-net-pci) picks it up). */
	const char *netdevs[MAX_NETDEV_SPECS];
	unsigned n_netdevs;
	const char *nics[MAX_NETDEV_SPECS];
	unsigned n_nics;
};

/* Parse argv into cfg. Returns 0 on success, 1 when the program should
 * exit successfully (--help, --version printed), -1 on error with one
 * line in err. Never exits, never crashes on bad input. */
int cli_parse(int argc, char **argv, struct vm_config *cfg, char *err, size_t errlen);
void cli_usage(void);
/* Parse a size with QEMU suffixes (M is the default unit for -m). */
int parse_size(const char *s, char default_suffix, uint64_t *out);

#endif
