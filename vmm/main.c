/* minikvm entry point: parse the command line, build the machine, run it
 * and turn the way it ended into the process exit status. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include "vmm/config.h"
#include "vmm/device.h"
#include "vmm/chardev.h"
#include "vmm/log.h"
#include "vmm/machine.h"
#include "vmm/vm.h"

static struct vm the_vm;

/* SIGINT/SIGTERM/SIGHUP end the VM like QEMU's "terminating on signal". */
static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	while (sigwait(set, &sig) == 0) {
		log_info("terminating on signal %d", sig);
		vm_request_quit(&the_vm);
	}
	return NULL;
}

static void start_signal_thread(void)
{
	static sigset_t set;
	pthread_t t;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&t, NULL, signal_thread, &set) == 0) {
		pthread_setname_np(t, "signals");
		pthread_detach(t);
	}
}

static void quit_from_console(void *opaque)
{
	vm_request_quit(opaque);
}

int main(int argc, char **argv)
{
	static struct vm_config cfg;
	char err[512] = "";
	int r, status;

	r = cli_parse(argc, argv, &cfg, err, sizeof(err));
	if (r > 0)
		return 0;
	if (r < 0) {
		fprintf(stderr, "minikvm: %s\n", err);
		return EXIT_CONFIG_ERROR;
	}
	start_signal_thread();
	atexit(chardev_cleanup_all);
	chardev_set_quit_handler(quit_from_console, &the_vm);
	if (machine_create(&the_vm, &cfg, err, sizeof(err)) < 0) {
		if (err[0])
			fprintf(stderr, "minikvm: %s\n", err);
		return EXIT_CONFIG_ERROR;
	}
	status = vm_run(&the_vm);
	fflush(stdout);
	/* Device threads may still hold state: leave without tearing down,
	 * but run the host-side exit hooks (tap downscripts, ...). */
	devices_run_exit_hooks();
	chardev_cleanup_all();
	_exit(status);
}
