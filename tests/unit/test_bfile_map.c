/* Unit tests for writes through a mapping of memory-backed image files
 * (block/bfile_map.c and its use in block/bfile.c): data lands in the file,
 * ranges outside the mapping take system calls, a copy that faults (file
 * truncated under us, tmpfs full) falls back and reports what the system
 * call reports, a SIGBUS that is not ours gets the previous disposition, the
 * file's mtime is set at flush, read-only files are not mapped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "block/bfile.h"
#include "block/bfile_map.h"

#define SHM_FILE	"/dev/shm/test_bfile_map.img"
#define FILE_SIZE	(1u << 20)

static uint8_t wbuf[3 * 4096], rbuf[3 * 4096];

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

/* A file of size bytes on tmpfs (the test needs /dev/shm to be one). */
static int make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static struct bfile *open_file(const char *path, int flags)
{
	struct bfile *f = NULL;
	char err[256];

	assert_int_equal(bfile_open(path, flags, BLOCK_CACHE_WRITEBACK, BLOCK_ENGINE_THREADS, &f,
				    err, sizeof(err)), 0);
	return f;
}

static void expect_file_data(int fd, uint64_t off, const uint8_t *want, size_t len)
{
	assert_int_equal(pread(fd, rbuf, len, (off_t)off), (ssize_t)len);
	assert_memory_equal(rbuf, want, len);
}

static int teardown(void **state)
{
	unlink(SHM_FILE);
	return 0;
}

/* bfile_map alone: in range it copies, out of range or unmapped it
 * declines, shrinking narrows it, and a copy into pages the file no
 * longer has faults and declines, twice in a row (the guard re-arms). */
static void test_map_write_ranges_and_faults(void **state)
{
	struct iovec v = { wbuf, 4096 };
	struct bfile_map m;
	int fd = make_file(SHM_FILE, FILE_SIZE);

	assert_false(bfile_map_write(&(struct bfile_map){ 0 }, 0, &v, 1));
	assert_int_equal(bfile_map_open(&m, fd, FILE_SIZE), 0);
	fill(wbuf, 4096, 1);
	assert_true(bfile_map_write(&m, FILE_SIZE - 4096, &v, 1));
	expect_file_data(fd, FILE_SIZE - 4096, wbuf, 4096);
	assert_false(bfile_map_write(&m, FILE_SIZE - 4095, &v, 1));
	assert_false(bfile_map_write(&m, UINT64_MAX - 10, &v, 1));
	assert_true(bfile_map_take_wrote(&m));
	assert_false(bfile_map_take_wrote(&m));

	bfile_map_shrink(&m, 8192);
	assert_true(bfile_map_write(&m, 4096, &v, 1));
	assert_false(bfile_map_write(&m, 8192, &v, 1));

	assert_int_equal(ftruncate(fd, 0), 0);		/* behind the mapping's back */
	assert_false(bfile_map_write(&m, 0, &v, 1));
	assert_false(bfile_map_write(&m, 4096, &v, 1));
	assert_int_equal(ftruncate(fd, FILE_SIZE), 0);
	assert_true(bfile_map_write(&m, 0, &v, 1));
	expect_file_data(fd, 0, wbuf, 4096);
	bfile_map_close(&m);
	close(fd);
}

/* Through bfile: several iovecs land in order; a write crossing the
 * mapped size (the file grew) still lands. A write into pages already
 * mapped leaves the mtime alone (only the first write fault of a page
 * sets it): the flush sets it. A write over BFILE_MAP_WRITE_MAX takes
 * pwritev. */
static void test_bfile_writes_and_mtime(void **state)
{
	static uint8_t large[BFILE_MAP_WRITE_MAX + 1];
	struct iovec v[3] = { { wbuf, 100 }, { wbuf + 100, 5000 }, { wbuf + 5100, 3000 } };
	struct iovec big = { large, 0 };
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	struct stat st;
	struct bfile *f;
	int fd = make_file(SHM_FILE, FILE_SIZE);

	f = open_file(SHM_FILE, O_RDWR);
	assert_true(bfile_in_memory(f));
	fill(wbuf, sizeof(wbuf), 5);
	assert_int_equal(bfile_pwritev(f, 4096 + 7, v, 3), 0);
	assert_int_equal(bfile_flush(f), 0);
	assert_int_equal(futimens(fd, old), 0);
	fill(wbuf, sizeof(wbuf), 2);
	assert_int_equal(bfile_pwritev(f, 4096 + 7, v, 3), 0);
	expect_file_data(fd, 4096 + 7, wbuf, 8100);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000);	/* the mapping wrote it */
	assert_int_equal(bfile_flush(f), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_mtim.tv_sec > 1000);

	big.iov_len = 4096;		/* map every page of the range below first */
	for (uint64_t off = 4096; off < 4096 + BFILE_MAP_WRITE_MAX + 4096; off += 4096)
		assert_int_equal(bfile_pwritev(f, off, &big, 1), 0);
	assert_int_equal(bfile_flush(f), 0);
	big.iov_len = BFILE_MAP_WRITE_MAX + 1;		/* larger: pwritev, which sets it */
	assert_int_equal(futimens(fd, old), 0);
	assert_int_equal(bfile_pwritev(f, 4096, &big, 1), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_mtim.tv_sec > 1000);

	assert_int_equal(bfile_pwritev(f, FILE_SIZE - 50, v, 3), 0);
	assert_int_equal(bfile_size(f), FILE_SIZE - 50 + 8100);
	expect_file_data(fd, FILE_SIZE - 50, wbuf, 8100);
	bfile_close(f);
	close(fd);
}

/* The file is cut short by someone else: a write into the cut part
 * faults in the mapping and is done by the system call instead, which
 * extends the file as pwrite does. bfile_truncate narrows the mapping
 * itself. */
static void test_bfile_truncated(void **state)
{
	struct iovec v = { wbuf, 4096 };
	struct bfile *f;
	int fd = make_file(SHM_FILE, FILE_SIZE);

	f = open_file(SHM_FILE, O_RDWR);
	assert_int_equal(ftruncate(fd, 4096), 0);
	fill(wbuf, 4096, 3);
	assert_int_equal(bfile_pwritev(f, 65536, &v, 1), 0);
	assert_int_equal(bfile_size(f), 65536 + 4096);
	expect_file_data(fd, 65536, wbuf, 4096);

	assert_int_equal(bfile_truncate(f, 8192), 0);
	fill(wbuf, 4096, 4);
	assert_int_equal(bfile_pwritev(f, 16384, &v, 1), 0);
	assert_int_equal(bfile_size(f), 16384 + 4096);
	expect_file_data(fd, 16384, wbuf, 4096);
	bfile_close(f);
	close(fd);
}

/* A read-only file is not mapped: writes fail as before. */
static void test_read_only_not_mapped(void **state)
{
	struct iovec v = { wbuf, 4096 };
	struct bfile *f;
	int fd = make_file(SHM_FILE, FILE_SIZE);

	f = open_file(SHM_FILE, O_RDONLY);
	assert_int_equal(bfile_pwritev(f, 0, &v, 1), -EBADF);
	bfile_close(f);
	close(fd);
}

/* In a child with a private mount namespace (a user namespace too when
 * not root): a 64 KiB tmpfs filled page by page. The write that finds it
 * full faults in the mapping and returns ENOSPC from the system call. */
static int full_tmpfs_child(void)
{
	static uint8_t page[4096];
	char dir[] = "/tmp/test_bfile_map.XXXXXX", path[64];
	struct iovec v = { page, sizeof(page) };
	struct bfile *f = NULL;
	char err[256];
	int fd, ret;
	unsigned n = 0;

	if (unshare(geteuid() == 0 ? CLONE_NEWNS : CLONE_NEWUSER | CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || !mkdtemp(dir) ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=64k") < 0)
		return 10;
	snprintf(path, sizeof(path), "%s/img", dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return 11;
	if (bfile_open(path, O_RDWR, BLOCK_CACHE_WRITEBACK, BLOCK_ENGINE_THREADS, &f, err,
		       sizeof(err)) < 0 || !bfile_in_memory(f))
		return 12;
	memset(page, 0x5a, sizeof(page));
	while ((ret = bfile_pwritev(f, (uint64_t)n * sizeof(page), &v, 1)) == 0 && n < 64)
		n++;
	if (ret != -ENOSPC || n < 8)
		return 13;
	if (bfile_pwritev(f, 0, &v, 1) != 0)	/* pages it has still take writes */
		return 14;
	bfile_close(f);
	return 0;
}

static void test_full_tmpfs_enospc(void **state)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(full_tmpfs_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);	/* 10: no namespace or tmpfs mount */
}

static void exit_42(int sig)
{
	_exit(42);
}

/* A fault outside a guarded copy and a SIGBUS sent by kill get what was
 * there before the mapping's handler: the default action (the process
 * ends with SIGBUS), a handler of the program's, or SIG_IGN (a sent
 * signal is ignored; a fault cannot be, the process ends with SIGBUS). */
static int foreign_sigbus_child(bool sent, void (*before)(int))
{
	struct bfile_map m;
	volatile char *p;
	int fd = open(SHM_FILE, O_RDWR);

	signal(SIGBUS, before);		/* in place of cmocka's */
	if (fd < 0 || bfile_map_open(&m, fd, FILE_SIZE) < 0)	/* installs the handler */
		return 1;
	if (sent) {
		kill(getpid(), SIGBUS);
		return 2;
	}
	p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || ftruncate(fd, 0) < 0)
		return 3;
	p[4096] = 1;
	return 4;
}

static void test_foreign_sigbus_keeps_disposition(void **state)
{
	static const struct {
		bool sent;
		void (*before)(int);
		int exit_status;	/* -1: ends with SIGBUS */
	} cases[] = {
		{ false, SIG_DFL, -1 }, { true, SIG_DFL, -1 },
		{ false, exit_42, 42 }, { true, exit_42, 42 },
		{ false, SIG_IGN, -1 }, { true, SIG_IGN, 2 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int status, fd = make_file(SHM_FILE, FILE_SIZE);
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0)
			_exit(foreign_sigbus_child(cases[i].sent, cases[i].before));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (cases[i].exit_status < 0) {
			assert_true(WIFSIGNALED(status));
			assert_int_equal(WTERMSIG(status), SIGBUS);
		} else {
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), cases[i].exit_status);
		}
		close(fd);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_map_write_ranges_and_faults, teardown),
		cmocka_unit_test_teardown(test_bfile_writes_and_mtime, teardown),
		cmocka_unit_test_teardown(test_bfile_truncated, teardown),
		cmocka_unit_test_teardown(test_read_only_not_mapped, teardown),
		cmocka_unit_test(test_full_tmpfs_enospc),
		cmocka_unit_test_teardown(test_foreign_sigbus_keeps_disposition, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
