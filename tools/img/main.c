/* minikvm-img: the qemu-img-compatible image tool. This file owns the
 * command table, the top-level --help/--version, the dispatch (each
 * command parses its own options: see the cmd_* files) and qemu-img's
 * wording of the block layer's probed-raw warning. */
#include <string.h>
#include "tools/img/img.h"

static const struct img_cmd commands[] = {
	{ "bench", cmd_bench,
	  "[-c count] [-d depth] [-f fmt] [-i aio] [-n] [-o offset] [--pattern=p] [-q] "
	  "[-r] [-s buffer_size] [-S step_size] [-t cache] [-w] [--flush-interval=n] filename",
	  "  -c count       number of requests (default 75000)\n"
	  "  -d depth       requests in flight (default 64)\n"
	  "  -i aio         I/O engine: threads, native or io_uring\n"
	  "  -n             same as -i native\n"
	  "  -o offset      first offset (default 0)\n"
	  "  -s size        bytes per request (default 4K)\n"
	  "  -S step        distance between request offsets (default: the buffer size)\n"
	  "  -t cache       cache mode (default writeback)\n"
	  "  -w             write instead of read\n"
	  "  --pattern=p    byte written with -w (default 0, as qemu-img)\n"
	  "  -r, --random   minikvm extension: uniformly random, buffer-aligned offsets\n"
	  "  --flush-interval=n  flush after every n writes\n" },
	{ "check", cmd_check,
	  "[-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] filename",
	  "  -r leaks|all   repair leaked clusters only, or everything\n"
	  "  exit status: 0 clean, 1 check failed, 2 corruptions, 3 leaks only,\n"
	  "               63 format does not support checks\n" },
	{ "commit", cmd_commit,
	  "[-q] [-f fmt] [-t cache] [-b base] [-d] [-p] filename",
	  "  -b base        commit down to this backing file (default: the direct backing)\n"
	  "  -d             do not empty the top image afterwards (implied by -b)\n" },
	{ "compare", cmd_compare,
	  "[-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] filename1 filename2",
	  "  -s             strict: allocation status and size must match too\n"
	  "  exit status: 0 identical, 1 different, 2 error\n" },
	{ "convert", cmd_convert,
	  "[-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] "
	  "[-B backing_file [-F backing_fmt]] [-o options] [-S sparse_size] [-m num] [-W] "
	  "filename [filename2 [...]] output_filename",
	  "  -c             compress the target (qcow2, qcow)\n"
	  "  -n             the target exists: do not create it\n"
	  "  -S size        zero runs of this size are left sparse (default 4k, 0: never)\n"
	  "  -m num         parallel requests in flight (default 8, 1 to 16)\n"
	  "  -W             allow out-of-order writes\n" },
	{ "create", cmd_create,
	  "[-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]",
	  "  -o options     comma-separated key=value: cluster_size, preallocation, compat,\n"
	  "                 lazy_refcounts, refcount_bits, extended_l2, backing_file,\n"
	  "                 backing_fmt, subformat, size (-o help lists them)\n"
	  "  size           bytes, with optional suffix k, M, G, T, P, E (powers of 1024)\n" },
	{ "info", cmd_info,
	  "[-f fmt] [--output=ofmt] [--backing-chain] [-U] filename", NULL },
	{ "map", cmd_map,
	  "[-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename",
	  NULL },
	{ "measure", cmd_measure,
	  "[--output=ofmt] [-O output_fmt] [-o options] [--size N | [-f fmt] filename]", NULL },
	{ "rebase", cmd_rebase,
	  "[-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt] "
	  "filename",
	  "  -u             unsafe: only rewrite the backing file name\n"
	  "  -b \"\"          rebase onto nothing (copy the whole backing chain in)\n" },
	{ "resize", cmd_resize,
	  "[-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size", NULL },
	{ "snapshot", cmd_snapshot,
	  "[-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename", NULL },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

const struct img_cmd *img_find_cmd(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int img_cmd_help(const char *name)
{
	const struct img_cmd *c = img_find_cmd(name);

	printf("usage: %s %s %s\n", IMG_PROG, c->name, c->usage);
	if (c->help)
		printf("\n%s", c->help);
	printf("\n  -f fmt takes one of:");
	for (const struct block_format *f = block_format_first(); f; f = f->next)
		printf(" %s", f->name);
	printf("\n");
	return 0;
}

void img_help(void)
{
	printf("%s version %s, a qemu-img compatible disk image utility\n"
	       "usage: %s [-h | --help | -V | --version | -T pattern] command "
	       "[command options]\n\n"
	       "Command syntax:\n", IMG_PROG, IMG_VERSION, IMG_PROG);
	for (size_t i = 0; i < N_COMMANDS; i++)
		printf("  %s %s\n", commands[i].name, commands[i].usage);
	printf("\n'%s COMMAND --help' describes a command's options.\n"
	       "Sizes take the suffixes k, M, G, T, P, E (powers of 1024).\n"
	       "Supported formats:", IMG_PROG);
	for (const struct block_format *f = block_format_first(); f; f = f->next)
		printf(" %s", f->name);
	printf("\n");
}

/* qemu-img's warning for a writable image probed as raw: no program
 * name, as QEMU's raw driver prints it. */
static void warn_probed_raw(const char *path)
{
	fflush(stdout);
	fprintf(stderr, "WARNING: Image format was not specified for '%s' and probing guessed "
		"raw.\n"
		"         Automatically detecting the format is dangerous for raw images, "
		"write operations on block 0 will be restricted.\n"
		"         Specify the 'raw' format explicitly to remove the restrictions.\n",
		path);
}

/* -T/--trace: minikvm-img has no trace events, so, as qemu-img says of
 * an event name it does not know, every event named ([enable=]NAME,
 * file=...; a glob pattern matches nothing, silently) does not exist. */
static void trace_option(const char *arg)
{
	char *copy = strdup(arg), *save = NULL, *item;

	for (item = copy ? strtok_r(copy, ",", &save) : NULL; item;
	     item = strtok_r(NULL, ",", &save)) {
		if (!strncmp(item, "enable=", 7))
			item += 7;
		else if (strchr(item, '='))
			continue;	/* file=, events=: nothing to trace */
		if (!strpbrk(item, "*?["))
			img_warn("trace event '%s' does not exist", item);
	}
	free(copy);
}

/* The options before the command, as qemu-img's: -h/--help, -V/--version,
 * -T/--trace. Returns the index of the command in argv, or -1 with *rc
 * the exit status when there is nothing more to do. */
static int parse_global_options(int argc, char **argv, int *rc)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "trace", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hVT:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			img_help();
			*rc = 0;
			return -1;
		case 'V':
			printf("%s version %s\n", IMG_PROG, IMG_VERSION);
			*rc = 0;
			return -1;
		case 'T':
			trace_option(optarg);
			break;
		default:
			*rc = img_bad_option(c, argv);
			return -1;
		}
	}
	*rc = 0;		/* options but no command: qemu-img exits 0 */
	return optind < argc ? optind : -1;
}

int main(int argc, char **argv)
{
	const struct img_cmd *c;
	int cmd, rc;

	block_warn_probed_raw = warn_probed_raw;

	if (argc < 2)
		return img_usage_error("Not enough arguments");
	cmd = parse_global_options(argc, argv, &rc);
	if (cmd < 0)
		return rc;
	c = img_find_cmd(argv[cmd]);
	if (!c)
		return img_usage_error("Command not found: %s", argv[cmd]);
	optind = 0;
	opterr = 0;
	return c->run(argc - cmd, argv + cmd);
}
