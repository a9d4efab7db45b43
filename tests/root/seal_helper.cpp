// vigil_seal_helper: the ways around syscall tracepoints that the session
// seal closes, each tried for real, so the root tests can run them in a
// sealed and in an unsealed session. Prints one line per try:
//   ok:<what was read or got>     the call worked
//   err:<ERRNO NAME>              the call failed
// and exits 0 when the call worked, 1 when it failed, 2 on a usage error.
//
//   int80-open PATH      open(PATH) through int $0x80 (the i386 ABI), read it
//   io_uring-setup       io_uring_setup alone
//   io_uring-open PATH   IORING_OP_OPENAT of PATH on a new ring, read it
//   handle-open PATH     name_to_handle_at + open_by_handle_at of PATH, read it
//   x32-getpid           getpid through the x32 ABI (amd64)
//   euid                 print the effective uid (copied setuid root by a test)
//   fork ACTION ARGS...  run ACTION in a forked child, exit with its status
//   allow-all ACTION ... stack an allow-everything seccomp filter first (with
//                        no_new_privs, as any user may), then run ACTION
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

int report_error(int err) {
  std::printf("err:%s\n", strerrorname_np(err) ? strerrorname_np(err) : "?");
  return 1;
}

// Reads what fd holds (a few bytes are enough for the tests) and closes it.
int report_read(int fd) {
  char buf[256] = {};
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n < 0) return report_error(errno);
  std::printf("ok:%s\n", buf);
  return 0;
}

int int80_open(const char* path) {
#if defined(__x86_64__)
  // The i386 ABI takes 32-bit pointers: the path must sit below 4 GiB.
  void* low = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
                   -1, 0);
  if (low == MAP_FAILED) return report_error(errno);
  std::strncpy(static_cast<char*>(low), path, 4095);
  long ret = 5;  // i386 open
  long arg = reinterpret_cast<long>(low);
  asm volatile("int $0x80"
               : "+a"(ret)
               : "b"(arg), "c"(O_RDONLY), "d"(0)
               : "memory", "r8", "r9", "r10", "r11");
  if (ret < 0) return report_error(static_cast<int>(-ret));
  return report_read(static_cast<int>(ret));
#else
  (void)path;
  return report_error(ENOSYS);
#endif
}

int x32_getpid() {
#if defined(__x86_64__)
  long pid = syscall(__X32_SYSCALL_BIT | __NR_getpid);
  if (pid < 0) return report_error(errno);
  std::printf("ok:%ld\n", pid);
  return 0;
#else
  return report_error(ENOSYS);
#endif
}

int io_uring_setup_only() {
  io_uring_params p{};
  long fd = syscall(__NR_io_uring_setup, 4, &p);
  if (fd < 0) return report_error(errno);
  close(static_cast<int>(fd));
  std::printf("ok:ring\n");
  return 0;
}

// One IORING_OP_OPENAT on a fresh ring, by hand (no liburing): map the
// rings, write one SQE, submit and wait for its CQE.
int io_uring_open(const char* path) {
  io_uring_params p{};
  long ring = syscall(__NR_io_uring_setup, 4, &p);
  if (ring < 0) return report_error(errno);
  int fd = static_cast<int>(ring);
  size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  auto* sq = static_cast<char*>(mmap(nullptr, sq_size, PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING));
  auto* cq = static_cast<char*>(mmap(nullptr, cq_size, PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING));
  auto* sqes = static_cast<io_uring_sqe*>(mmap(nullptr, p.sq_entries * sizeof(io_uring_sqe),
                                               PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                                               fd, IORING_OFF_SQES));
  if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) return report_error(errno);

  io_uring_sqe& sqe = sqes[0];
  std::memset(&sqe, 0, sizeof(sqe));
  sqe.opcode = IORING_OP_OPENAT;
  sqe.fd = AT_FDCWD;
  sqe.addr = reinterpret_cast<uint64_t>(path);
  sqe.open_flags = O_RDONLY;
  auto* tail = reinterpret_cast<std::atomic<unsigned>*>(sq + p.sq_off.tail);
  unsigned mask = *reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
  unsigned t = tail->load(std::memory_order_relaxed);
  reinterpret_cast<unsigned*>(sq + p.sq_off.array)[t & mask] = 0;
  tail->store(t + 1, std::memory_order_release);

  if (syscall(__NR_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, nullptr, 0) < 0)
    return report_error(errno);
  auto* head = reinterpret_cast<std::atomic<unsigned>*>(cq + p.cq_off.head);
  unsigned cmask = *reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
  unsigned h = head->load(std::memory_order_acquire);
  auto* cqes = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
  int res = cqes[h & cmask].res;
  head->store(h + 1, std::memory_order_release);
  close(fd);
  if (res < 0) return report_error(-res);
  return report_read(res);
}

int handle_open(const char* path) {
  alignas(file_handle) unsigned char buf[sizeof(file_handle) + MAX_HANDLE_SZ] = {};
  auto* handle = reinterpret_cast<file_handle*>(buf);
  handle->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, path, handle, &mount_id, 0) != 0) return report_error(errno);
  int mount_fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::string dir(path);
  dir = dir.substr(0, dir.rfind('/') + 1);
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    close(mount_fd);
    mount_fd = dir_fd;  // any fd on the file's mount names it
  }
  int fd = open_by_handle_at(mount_fd, handle, O_RDONLY);
  int err = errno;
  close(mount_fd);
  if (fd < 0) return report_error(err);
  return report_read(fd);
}

int allow_all() {
  sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  sock_fprog prog{1, &allow};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
    std::printf("allow-all filter not installed: %s\n", strerror(errno));
    return 2;
  }
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string action = argv[1];
  const char* arg = argc > 2 ? argv[2] : nullptr;
  if (action == "int80-open" && arg) return int80_open(arg);
  if (action == "io_uring-setup") return io_uring_setup_only();
  if (action == "io_uring-open" && arg) return io_uring_open(arg);
  if (action == "handle-open" && arg) return handle_open(arg);
  if (action == "x32-getpid") return x32_getpid();
  if (action == "euid") {
    std::printf("ok:%u\n", geteuid());
    return 0;
  }
  if (action == "fork") {
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return report_error(errno);
    if (pid == 0) {
      int rc = run(argc - 1, argv + 1);
      std::fflush(stdout);
      _exit(rc);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
  }
  if (action == "allow-all") {
    if (int rc = allow_all(); rc != 0) return rc;
    return run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "vigil_seal_helper: unknown action or missing argument: %s\n",
               action.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
