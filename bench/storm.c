/*
 * storm: the benchmark's workload, a separate process so that the driver can
 * start it inside a recorded session or outside every session.
 *
 *   storm exec N          N times fork + execve /bin/true + wait
 *   storm fork N          N times fork + _exit(0) in the child + wait
 *   storm open N PATH     N times open(PATH, O_RDONLY) + close
 *   storm uring N PATH    N times an io_uring IORING_OP_OPENAT of PATH + close
 *   storm connect N PORT  N times TCP connect to 127.0.0.1:PORT + close
 *   storm udp N PORT      N datagrams to 127.0.0.1:PORT from one socket (sendto)
 *
 * The uring storm submits each open alone and waits for it, so one
 * io_uring_enter (and no open syscall) carries each open. When the kernel
 * refuses io_uring (a sealed session: io_uring_setup fails with EPERM; a
 * kernel without it: ENOSYS), it does what a program with a fallback does:
 * the same opens with openat(2), and it says so after the time
 * ("fallback io_uring_setup: Operation not permitted").
 *
 * A connect's socket is closed with a reset (SO_LINGER 0): a normal close
 * leaves it in TIME_WAIT for a minute, and the tens of thousands of a run
 * would fill the ephemeral port range, slowing whichever storm runs later.
 *
 * It does nothing else (no allocation, no output inside the loop), so that
 * every mode times the same system calls. On success it prints the loop's
 * wall time in nanoseconds on stdout (and the fallback, if any) and exits 0;
 * on any failure it says what failed on stderr and exits 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int fail(const char *what)
{
	fprintf(stderr, "storm: %s: %s\n", what, strerror(errno));
	return 1;
}

static int exec_storm(long n)
{
	char *const argv[] = { "true", NULL };

	for (long i = 0; i < n; ++i) {
		pid_t pid = fork();
		if (pid < 0)
			return fail("fork");
		if (pid == 0) {
			execve("/bin/true", argv, environ);
			_exit(127);
		}
		int status;
		if (waitpid(pid, &status, 0) < 0)
			return fail("waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "storm: /bin/true did not exit 0 (status %#x)\n", status);
			return 1;
		}
	}
	return 0;
}

static int fork_storm(long n)
{
	for (long i = 0; i < n; ++i) {
		pid_t pid = fork();
		if (pid < 0)
			return fail("fork");
		if (pid == 0)
			_exit(0);
		int status;
		if (waitpid(pid, &status, 0) < 0)
			return fail("waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "storm: the forked child did not exit 0 (status %#x)\n", status);
			return 1;
		}
	}
	return 0;
}

static int open_storm(long n, const char *path)
{
	for (long i = 0; i < n; ++i) {
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return fail(path);
		close(fd);
	}
	return 0;
}

/* Why the uring storm fell back to openat(2), or "" when it did not. */
static char fallback[128];

static int uring_storm(long n, const char *path)
{
	struct io_uring ring;
	int err = io_uring_queue_init(8, &ring, 0);

	if (err == -EPERM || err == -ENOSYS) {
		snprintf(fallback, sizeof(fallback), "io_uring_setup: %s", strerror(-err));
		return open_storm(n, path);
	}
	if (err < 0) {
		errno = -err;
		return fail("io_uring_queue_init");
	}
	int status = 0;
	for (long i = 0; i < n && status == 0; ++i) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		struct io_uring_cqe *cqe;

		io_uring_prep_openat(sqe, AT_FDCWD, path, O_RDONLY, 0);
		err = io_uring_submit_and_wait(&ring, 1);
		if (err >= 0)
			err = io_uring_peek_cqe(&ring, &cqe);
		if (err < 0) {
			errno = -err;
			status = fail("io_uring_submit_and_wait");
			break;
		}
		int fd = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
		if (fd < 0) {
			errno = -fd;
			status = fail(path);
			break;
		}
		close(fd);
	}
	io_uring_queue_exit(&ring);
	return status;
}

static int connect_storm(long n, int port)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct linger reset_on_close = { .l_onoff = 1, .l_linger = 0 };

	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (long i = 0; i < n; ++i) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return fail("socket");
		if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0)
			return fail("connect to 127.0.0.1");
		if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof(reset_on_close)))
			return fail("SO_LINGER");
		close(fd);
	}
	return 0;
}

static int udp_storm(long n, int port)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		return fail("socket");
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (long i = 0; i < n; ++i)
		if (sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) != 1)
			return fail("sendto 127.0.0.1");
	close(fd);
	return 0;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int usage(void)
{
	fprintf(stderr, "usage: storm exec N | storm fork N | storm open N PATH | storm uring N PATH |"
			" storm connect N PORT | storm udp N PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return usage();
	char *end;
	long n = strtol(argv[2], &end, 10);
	if (*end || n < 0)
		return usage();

	long long start = now_ns();
	int status;
	if (strcmp(argv[1], "exec") == 0 && argc == 3)
		status = exec_storm(n);
	else if (strcmp(argv[1], "fork") == 0 && argc == 3)
		status = fork_storm(n);
	else if (strcmp(argv[1], "open") == 0 && argc == 4)
		status = open_storm(n, argv[3]);
	else if (strcmp(argv[1], "uring") == 0 && argc == 4)
		status = uring_storm(n, argv[3]);
	else if (strcmp(argv[1], "connect") == 0 && argc == 4)
		status = connect_storm(n, atoi(argv[3]));
	else if (strcmp(argv[1], "udp") == 0 && argc == 4)
		status = udp_storm(n, atoi(argv[3]));
	else
		return usage();
	if (status != 0)
		return status;
	long long ns = now_ns() - start;
	if (fallback[0])
		printf("%lld fallback %s\n", ns, fallback);
	else
		printf("%lld\n", ns);
	return 0;
}
