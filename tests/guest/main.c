/* main.c: the kit's CPL3 main program. Reads the command line from the
 * PVH start info or the Multiboot info, runs the requested cases in order
 * (case=NAME[,NAME...], case=all, default demo), prints one PASS/FAIL line
 * per case and the final result, then leaves: ACPI S5 when the acpi or
 * demo case ran and everything passed, else the exit port. */
#include "tests/guest/kit.h"

struct test_case {
	const char *name;
	int (*fn)(void);
};

static const struct test_case cases[] = {
	{ "serial", case_serial },
	{ "cmos", case_cmos },
	{ "timers", case_timers },
	{ "kvmclock", case_kvmclock },
	{ "kvmclock-io", case_kvmclock_io },
	{ "smp", case_smp },
	{ "pci", case_pci },
	{ "acpi", case_acpi },
	{ "demo", case_demo },
	{ "reset", case_reset },
	{ "fatal", case_fatal },
	{ "badio", case_badio },
	{ "sleep", case_sleep },
	{ "virtio-rng", case_virtio_rng },
	{ "virtio-blk", case_virtio_blk },
	{ "virtio-blk-discard", case_virtio_blk_discard },
	{ "virtio-blk-config", case_virtio_blk_config },
	{ "virtio-blk-mq", case_virtio_blk_mq },
	{ "virtio-blk-pattern", case_virtio_blk_pattern },
	{ "blk-bench", case_blk_bench },
	{ "net-peer", case_net_peer },
	{ "net-user", case_net_user },
	{ "net-tap", case_net_tap },
	{ "net-bench", case_net_bench },
	{ "net-robust", case_net_robust },
};

static const char all_cases[] = "serial,cmos,timers,kvmclock,smp,pci,acpi";

static void cmdline_from_boot_info(void)
{
	u64 p = 0;

	if (boot_magic == BOOT_MAGIC_PVH && *(u32 *)(u64)boot_info == BOOT_MAGIC_PVH)
		p = *(u64 *)((u64)boot_info + 24);
	else if (boot_magic == BOOT_MAGIC_MB && (*(u32 *)(u64)boot_info & (1 << 2)))
		p = *(u32 *)((u64)boot_info + 16);
	else if (boot_magic == BOOT_MAGIC_LINUX)
		p = *(u32 *)((u64)boot_info + 0x228);
	if (p)
		cmdline = (const char *)p;
}

const char *boot_protocol_name(void)
{
	switch (boot_magic) {
	case BOOT_MAGIC_PVH:
		return "PVH";
	case BOOT_MAGIC_MB:
		return "multiboot";
	case BOOT_MAGIC_LINUX:
		return "linux";
	}
	return "unknown";
}

static const struct test_case *find_case(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (strlen(cases[i].name) == len && !strncmp(cases[i].name, name, len))
			return &cases[i];
	return NULL;
}

static bool run_list(const char *list, bool *wants_poweroff)
{
	bool pass = true;

	while (*list) {
		size_t len = 0;

		while (list[len] && list[len] != ',')
			len++;
		const struct test_case *tc = find_case(list, len);

		if (!tc) {
			current_case = "main";
			fail("unknown case '%s'", list);
			return false;
		}
		current_case = tc->name;
		case_pass_note = "";
		if (tc->fn() == 0) {
			info("PASS%s", case_pass_note);
		} else {
			pass = false;
		}
		if (!strncmp(tc->name, "acpi", 4) || !strncmp(tc->name, "demo", 4))
			*wants_poweroff = true;
		list += len;
		if (*list == ',')
			list++;
	}
	return pass;
}

void user_main(void)
{
	char list[128], buf[16];
	bool poweroff = false, pass;

	serial_init();
	cmdline_from_boot_info();
	if (cmdline_get("exit", buf, sizeof(buf)))
		exit_port = (u16)parse_num(buf, NULL);
	time_init();
	kprintf("testkit: boot via %s, cmdline \"%s\", kvmclock %s\n", boot_protocol_name(),
		cmdline, kvmclock_on ? "on" : "off");
	acpi_init();
	if (!cmdline_get("case", list, sizeof(list)))
		memcpy(list, "demo", 5);
	if (!strncmp(list, "all", 4))
		memcpy(list, all_cases, sizeof(all_cases));
	pass = run_list(list, &poweroff);
	kprintf("testkit: result %s\n", pass ? "PASS" : "FAIL");
	if (pass && poweroff)
		acpi_poweroff();
	kit_exit(pass);
}
