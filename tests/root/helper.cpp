// vigil_test_helper: small, exact actions for the root tests to run inside
// a recorded session, so each expected event is known to the byte.
//   open PATH FLAGS        open(PATH, FLAGS (decimal), 0644), print the result
//   connect ADDR PORT      one TCP connect (IPv4, IPv6 or v4-mapped ADDR)
//   join-cgroup DIR CMD... move this process into cgroup DIR, then exec CMD
//   storm N PATH PORT [B]  N times: fork+exec /bin/true (with an argument of B bytes,
//                          when given), open PATH, connect 127.0.0.1:PORT
//   exec-burst N M TAG     N processes wait on one pipe, then all at once each runs
//                          /bin/true TAG I J (I its number, J 0..M-1) M times
//   connect-thread ADDR PORT  one TCP connect from a second thread
//   udp ADDR PORT N        N datagrams to ADDR:PORT from one socket (sendto)
//   udp-connect ADDR PORT  UDP connect() to ADDR:PORT, then send() twice
//   udp-pair CADDR SADDR PORT  UDP connect() to CADDR:PORT, then sendto SADDR:PORT
//   udp-thread ADDR PORT   a datagram from a second thread, then one from the main thread
//   udp-storm N PORT       datagrams to 127.0.0.1:PORT..PORT+N-1, then PORT again
//   unix PATH              connect a unix stream socket to PATH ('@NAME': abstract)
//   accept PORTFILE        listen on 127.0.0.1, write the port to PORTFILE, accept one
//   netns NSFILE PORT      in a new network namespace (lo up): write its inode to
//                          NSFILE, a datagram to 127.0.0.1:PORT, a TCP connect to it
//   fifo CPU CMD...        run CMD pinned to CPU at SCHED_FIFO priority 2 (CPU -1: as is),
//                          so that threads of lower class on that CPU wait until it is done
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

int do_open(const char* path, int flags) {
  int fd = open(path, flags, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

socklen_t address(const char* addr, int port, sockaddr_storage& ss) {
  ss = {};
  if (strchr(addr, ':')) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    return inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1 ? sizeof(*s6) : 0;
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
  s4->sin_family = AF_INET;
  s4->sin_port = htons(port);
  return inet_pton(AF_INET, addr, &s4->sin_addr) == 1 ? sizeof(*s4) : 0;
}

// n datagrams from one UDP socket of the address's family; 0 or errno.
int do_udp(const char* addr, int port, int n) {
  sockaddr_storage ss;
  socklen_t len = address(addr, port, ss);
  if (!len) return EINVAL;
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  for (int i = 0; i < n; ++i)
    if (sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&ss), len) != 1) {
      int err = errno;
      close(fd);
      return err;
    }
  close(fd);
  return 0;
}

int do_udp_connect(const char* addr, int port) {
  sockaddr_storage ss;
  socklen_t len = address(addr, port, ss);
  if (!len) return EINVAL;
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&ss), len) || send(fd, "x", 1, 0) != 1 ||
                   send(fd, "y", 1, 0) != 1
               ? errno
               : 0;
  close(fd);
  return rc;
}

int do_unix(const char* path) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  socklen_t len;
  size_t n = strlen(path);
  if (n >= sizeof(sun.sun_path)) return ENAMETOOLONG;
  if (path[0] == '@') {  // abstract: a leading NUL, no terminating one
    memcpy(sun.sun_path + 1, path + 1, n - 1);
    len = offsetof(sockaddr_un, sun_path) + n;
  } else {
    memcpy(sun.sun_path, path, n + 1);
    len = offsetof(sockaddr_un, sun_path) + n + 1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&sun), len) ? errno : 0;
  close(fd);
  return rc;
}

int do_accept(const char* port_file) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), len) || listen(fd, 8) ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len))
    return errno;
  std::string tmp = std::string(port_file) + ".tmp";
  FILE* f = fopen(tmp.c_str(), "w");
  if (!f) return errno;
  fprintf(f, "%d\n", ntohs(a.sin_port));
  fclose(f);
  if (rename(tmp.c_str(), port_file)) return errno;
  int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return errno;
  close(c);
  close(fd);
  return 0;
}

// A new network namespace with its loopback up.
int do_netns(const char* ns_file, int port) {
  if (unshare(CLONE_NEWNET)) return errno;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  strcpy(ifr.ifr_name, "lo");
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr)) return errno;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr)) return errno;
  close(s);
  struct stat st{};
  if (stat("/proc/self/ns/net", &st)) return errno;
  FILE* f = fopen(ns_file, "w");
  if (!f) return errno;
  fprintf(f, "%lu\n", static_cast<unsigned long>(st.st_ino));
  fclose(f);
  if (int rc = do_udp("127.0.0.1", port, 1)) return rc;
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

int run_true(const char* arg = nullptr, const char* arg2 = nullptr, const char* arg3 = nullptr) {
  pid_t pid = fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    execl("/bin/true", "true", arg, arg2, arg3, static_cast<char*>(nullptr));
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
  if (cmd == "connect-thread" && argc == 4) {
    int rc = 0;
    std::thread t([&] { rc = do_connect(argv[2], atoi(argv[3])); });
    t.join();
    return rc;
  }
  if (cmd == "udp" && argc == 5) return do_udp(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (cmd == "udp-connect" && argc == 4) return do_udp_connect(argv[2], atoi(argv[3]));
  if (cmd == "udp-pair" && argc == 5) {
    int rc = do_udp_connect(argv[2], atoi(argv[4]));
    return rc ? rc : do_udp(argv[3], atoi(argv[4]), 1);
  }
  if (cmd == "udp-thread" && argc == 4) {
    int rc = 0;
    std::thread t([&] { rc = do_udp(argv[2], atoi(argv[3]), 1); });
    t.join();
    return rc ? rc : do_udp(argv[2], atoi(argv[3]), 1);
  }
  if (cmd == "udp-storm" && argc == 4) {
    int n = atoi(argv[2]), port = atoi(argv[3]);
    for (int i = 0; i < n; ++i)
      if (int rc = do_udp("127.0.0.1", port + i, 1)) return rc;
    return do_udp("127.0.0.1", port, 1);
  }
  if (cmd == "unix" && argc == 3) return do_unix(argv[2]);
  if (cmd == "accept" && argc == 3) return do_accept(argv[2]);
  if (cmd == "netns" && argc == 4) {
    if (int rc = do_netns(argv[2], atoi(argv[3]))) return rc;
    // Refused in the new namespace: nothing listens there.
    return do_connect("127.0.0.1", atoi(argv[3])) == ECONNREFUSED ? 0 : 1;
  }
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
      // Above the engine's ring reader (SCHED_FIFO 1): on that CPU the
      // reader cannot run while CMD does, so a small ring overflows.
      param.sched_priority = 2;
      if (sched_setaffinity(0, sizeof(set), &set) || sched_setscheduler(0, SCHED_FIFO, &param)) {
        perror("fifo");
        return 2;
      }
    }
    execv(argv[3], argv + 3);
    perror("exec");
    return 127;
  }
  if (cmd == "exec-burst" && argc == 5) {
    int n = atoi(argv[2]), m = atoi(argv[3]);
    int go[2];
    if (pipe(go)) return 2;
    for (int i = 0; i < n; ++i) {
      pid_t pid = fork();
      if (pid < 0) return 2;
      if (pid == 0) {
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 0) _exit(3);  // EOF: every process starts now
        std::string who = std::to_string(i);
        for (int j = 0; j < m; ++j)
          if (run_true(argv[4], who.c_str(), std::to_string(j).c_str())) _exit(1);
        _exit(0);
      }
    }
    close(go[0]);
    close(go[1]);
    int failed = 0, status = 0;
    while (wait(&status) > 0)
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
    if (failed) fprintf(stderr, "exec-burst: %d processes failed\n", failed);
    return failed ? 1 : 0;
  }
  if (cmd == "storm" && (argc == 5 || argc == 6)) {
    int n = atoi(argv[2]), port = atoi(argv[4]);
    std::string big(argc == 6 ? static_cast<size_t>(atoi(argv[5])) : 0, 'b');
    for (int i = 0; i < n; ++i) {
      if (run_true(big.empty() ? nullptr : big.c_str()) || do_open(argv[3], O_RDONLY) ||
          do_connect("127.0.0.1", port)) {
        fprintf(stderr, "storm step %d failed\n", i);
        return 1;
      }
    }
    return 0;
  }
  fprintf(stderr, "usage: vigil_test_helper open|connect|connect-thread|udp|udp-connect|udp-thread|udp-storm|"
                  "unix|accept|netns|join-cgroup|fifo|storm|exec-burst ...\n");
  return 2;
}
