// vigil_test_helper: small, exact actions for the root tests to run inside
// a recorded session, so each expected event is known to the byte.
//   open PATH FLAGS        open(PATH, FLAGS (decimal), 0644), print the result
//   connect ADDR PORT      one TCP connect (IPv4, IPv6 or v4-mapped ADDR)
//   join-cgroup DIR CMD... move this process into cgroup DIR, then exec CMD
//   storm N PATH PORT      N times: fork+exec /bin/true, open PATH, connect 127.0.0.1:PORT
//   fifo CPU CMD...        run CMD pinned to CPU at SCHED_FIFO priority 1 (CPU -1: as is),
//                          so that threads of lower class on that CPU wait until it is done
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int do_open(const char* path, int flags) {
  int fd = open(path, flags, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

int do_connect(const char* addr, int port) {
  sockaddr_storage ss{};
  socklen_t len;
  int family;
  if (strchr(addr, ':')) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) return EINVAL;
    family = AF_INET6;
    len = sizeof(*s6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1) return EINVAL;
    family = AF_INET;
    len = sizeof(*s4);
  }
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&ss), len) ? errno : 0;
  close(fd);
  return rc;
}

int run_true() {
  pid_t pid = fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    execl("/bin/true", "true", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "open" && argc == 4) {
    int err = do_open(argv[2], atoi(argv[3]));
    printf("%d\n", err);
    return 0;
  }
  if (cmd == "connect" && argc == 4) return do_connect(argv[2], atoi(argv[3]));
  if (cmd == "join-cgroup" && argc >= 4) {
    int fd = open((std::string(argv[2]) + "/cgroup.procs").c_str(), O_WRONLY);
    if (fd < 0 || write(fd, "0", 1) != 1) {
      perror("join-cgroup");
      return 2;
    }
    close(fd);
    execv(argv[3], argv + 3);
    perror("exec");
    return 127;
  }
  if (cmd == "fifo" && argc >= 4) {
    int cpu = atoi(argv[2]);
    if (cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      sched_param param{};
      param.sched_priority = 1;
      if (sched_setaffinity(0, sizeof(set), &set) || sched_setscheduler(0, SCHED_FIFO, &param)) {
        perror("fifo");
        return 2;
      }
    }
    execv(argv[3], argv + 3);
    perror("exec");
    return 127;
  }
  if (cmd == "storm" && argc == 5) {
    int n = atoi(argv[2]), port = atoi(argv[4]);
    for (int i = 0; i < n; ++i) {
      if (run_true() || do_open(argv[3], O_RDONLY) || do_connect("127.0.0.1", port)) {
        fprintf(stderr, "storm step %d failed\n", i);
        return 1;
      }
    }
    return 0;
  }
  fprintf(stderr, "usage: vigil_test_helper open|connect|join-cgroup|fifo|storm ...\n");
  return 2;
}
