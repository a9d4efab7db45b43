#include "ssh/server.hpp"

#include <fcntl.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "ca/proxy_header.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "privsep/drop.hpp"
#include "ssh/connection.hpp"

extern char** environ;

namespace vigil::ssh {
namespace {

struct ListenAddr {
  std::string host;
  std::string port;
};

Result<ListenAddr> split_listen_addr(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 == addr.size())
    return Error{"listen_addr " + addr + ": give host:port, e.g. 0.0.0.0:3022 or [::]:3022"};
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return ListenAddr{host, addr.substr(colon + 1)};
}

// The front end's fds: the connection and its end of the monitor socketpair.
constexpr int kConnectionFd = 3;
constexpr int kMonitorFd = 4;
// How long a connection's first bytes are awaited to tell a proxy's header
// from an SSH client's banner. Clients speak first (RFC 4253 section 4.2:
// both sides send their version at once), and so does the proxy, whose
// header is its first write: only a client that waits for the server's
// banner ever waits this long.
constexpr int kProxyHeaderWaitMs = 1000;

}  // namespace

Result<std::unique_ptr<Server>> Server::listen(const ServerOptions& options,
                                               privsep::MonitorContext& monitor) {
  auto where = split_listen_addr(options.listen_addr);
  if (!where) return where.error();
  if (options.front_end_argv.empty())
    return Error::of(Errc::invalid_argument, "no front end command to run connections in");
  std::unique_ptr<Server> server(new Server(monitor));
  server->options_ = options;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(where->host.empty() ? nullptr : where->host.c_str(), where->port.c_str(),
                       &hints, &found);
  if (rc != 0)
    return Error{"listen_addr " + options.listen_addr + ": " + gai_strerror(rc) +
                 " (give a numeric address and port, e.g. 0.0.0.0:3022)"};
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, freeaddrinfo);
  // No process this one starts may hold the port: CLOEXEC.
  Fd fd(socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::sys("cannot listen on " + options.listen_addr);
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0 ||
      ::listen(fd.get(), options.listen_backlog) != 0)
    return Error::sys("cannot listen on " + options.listen_addr);
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    server->port_ = ntohs(sa.ss_family == AF_INET6
                              ? reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port
                              : reinterpret_cast<sockaddr_in*>(&sa)->sin_port);
  server->listen_fd_ = fd.release();
  return server;
}

Server::~Server() {
  if (listen_fd_ >= 0) close(listen_fd_);
}

// One connection: its front end started, served until it ends, reaped.
void Server::serve(int connection) {
  Fd conn(connection);
  const privsep::Peer peer = peer_of(conn.get());
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    log::error(std::string("ssh: socketpair: ") + std::strerror(errno));
    return;
  }
  Fd mine(pair[0]), theirs(pair[1]);
  // posix_spawn: the monitor is multithreaded (the engine's threads), so the
  // child does nothing but place its fds and exec.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, conn.get(), kConnectionFd);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), kMonitorFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, kMonitorFd + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (const auto& a : options_.front_end_argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    log::error("ssh: cannot start a front end (" + options_.front_end_argv[0] +
               "): " + std::strerror(rc));
    return;
  }
  conn.reset();  // the front end holds the connection now, the monitor never reads it
  theirs.reset();
  {
    std::lock_guard lock(mu_);
    front_ends_.insert(pid);
  }
  privsep::Served served = privsep::serve_front_end(monitor_, std::move(mine), peer, stopping_);
  // Its sessions are ended; the front end has nothing left to do (a
  // violation, or a stop: it is killed; otherwise it is exiting).
  if (served.violation || stopping_) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
    log::warn("ssh: the front end of " + peer.addr + " died of signal " +
              std::to_string(WTERMSIG(status)) + "; its sessions were ended");
  std::lock_guard lock(mu_);
  front_ends_.erase(pid);
}

bool Server::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    // Polled with a timeout so that `stop` is seen within 200 ms.
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    {
      std::lock_guard lock(mu_);
      if (live_connections_ >= options_.max_connections) {
        log::warn("ssh: " + std::to_string(live_connections_) +
                  " connections already: closing a new one");
        close(fd);
        continue;
      }
      ++live_connections_;
    }
    std::thread([this, fd] {
      serve(fd);
      std::lock_guard lock(mu_);
      --live_connections_;
      all_done_.notify_all();
    }).detach();
  }
  // Each connection's monitor thread sees the stop within a poll round,
  // ends its sessions (session.end written) and kills its front end.
  stopping_ = true;
  std::unique_lock lock(mu_);
  auto none_left = [&] { return live_connections_ == 0; };
  if (all_done_.wait_for(lock, std::chrono::milliseconds(options_.stop_grace_ms), none_left))
    return true;
  log::info("ssh: stopping: " + std::to_string(live_connections_) +
            " connections still busy: killing their front ends");
  for (pid_t pid : front_ends_) kill(pid, SIGKILL);
  // Hundreds of sessions end in seconds, not in the grace: wait while they
  // make progress, and say how many are left.
  const auto stall = std::chrono::milliseconds(options_.stop_stall_ms);
  auto last_progress = std::chrono::steady_clock::now();
  size_t left = live_connections_;
  while (!none_left()) {
    all_done_.wait_for(lock, std::chrono::seconds(1), none_left);
    auto now = std::chrono::steady_clock::now();
    if (live_connections_ < left) {
      left = live_connections_;
      last_progress = now;
      if (left)
        log::warn("ssh: stopping: ending the sessions of " + std::to_string(left) +
                  (left == 1 ? " connection" : " connections"));
    } else if (left && now - last_progress >= stall) {
      log::error("ssh: stopping: " + std::to_string(left) + " connections did not end in " +
                 std::to_string(options_.stop_stall_ms / 1000) +
                 " s; exiting without them (their sessions' end is written, marked recovered, "
                 "at the next start)");
      return false;
    }
  }
  return true;
}

Result<std::string> read_proxy_header(int fd, int wait_ms, int total_ms) {
  const int64_t start = clock::monotonic_ns();
  auto left = [&](int budget) {
    return static_cast<int>(std::max<int64_t>(0, budget - (clock::monotonic_ns() - start) / 1'000'000));
  };
  // Peek until the first bytes say header or not.
  char prefix[ca::kProxyHeaderFixed];
  size_t have = 0;
  ca::ProbedHeader probed;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int budget = have == 0 ? left(wait_ms) : left(total_ms);
    int n = poll(&p, 1, budget);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::sys("poll on the connection");
    if (n == 0) {
      if (have == 0) return std::string();  // the client waits for our banner
      return Error::of(Errc::deadline_exceeded, "the connection's proxy header did not come whole in " +
                                                    std::to_string(total_ms) + " ms");
    }
    ssize_t got = recv(fd, prefix, sizeof prefix, MSG_PEEK);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Error::sys("reading the connection");
    if (got == 0) return std::string();  // closed before a byte: libssh will say so
    have = static_cast<size_t>(got);
    auto r = ca::probe_proxy_header(std::string_view(prefix, have));
    if (!r) return r.error();
    probed = *r;
    if (probed.start == ca::HeaderStart::none) return std::string();
    if (probed.start == ca::HeaderStart::header) break;
    if (have == sizeof prefix) break;  // cannot happen: 16 bytes always decide
    // Not enough yet: wait for more than what is there (no busy peek).
    usleep(1000);
  }
  std::string header(probed.length, '\0');
  size_t done = 0;
  while (done < header.size()) {
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, left(total_ms));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return Error::of(Errc::deadline_exceeded, "the connection's proxy header did not come whole in " +
                                                    std::to_string(total_ms) + " ms");
    ssize_t got = read(fd, header.data() + done, header.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      return Error::of(Errc::invalid_argument, "the connection ended inside its proxy header");
    done += static_cast<size_t>(got);
  }
  return header;
}

int run_front_end(const FrontEndOptions& options) {
  const pid_t monitor = getppid();
  // As root, before any byte from the network: what the front end needs
  // from root-only files.
  auto cas = sshcert::TrustedCAs::load(options.trusted_user_ca_keys);
  if (!cas) {
    log::error("ssh front end: " + cas.error().message);
    return 1;
  }
  ssh_key host_key = nullptr;
  if (ssh_pki_import_privkey_file(options.host_key_path.c_str(), nullptr, nullptr, nullptr,
                                  &host_key) != SSH_OK) {
    log::error("ssh front end: cannot read the host key " + options.host_key_path);
    return 1;
  }
  ssh_bind bind = ssh_bind_new();
  ssh_session session = ssh_new();
  if (!bind || !session || ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, host_key) != SSH_OK) {
    log::error("ssh front end: cannot set up libssh");
    return 1;
  }
  // Then root goes, for good; stderr stays for the log.
  privsep::DropOptions drop;
  drop.keep_fds = {2, kConnectionFd, kMonitorFd};
  if (auto r = privsep::drop_to({options.user, options.uid, options.gid}, drop); !r) {
    log::error("ssh front end: " + r.error().message);
    return 1;
  }
  // Dies with the monitor (set after the drop: changing ids clears it).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NAME, "vigil-ssh-fe");  // its name in ps (rather than "exe")
  if (getppid() != monitor) return 1;
  privsep::MonitorClient client{Fd(kMonitorFd)};
  Node node{client, *cas};
  // A connection the cluster's proxy carried starts with its signed header
  // (ca/proxy_header.hpp); only the monitor decides whether to believe it.
  auto header = read_proxy_header(kConnectionFd, kProxyHeaderWaitMs,
                                  std::min(options.login_grace_seconds, 10) * 1000);
  if (!header) {
    log::warn("ssh front end: " + peer_of(kConnectionFd).addr + ": " + header.error().message);
    return 1;
  }
  if (!header->empty()) {
    auto verdict = client.proxied(*header);
    if (!verdict) {
      log::error("ssh front end: monitor: " + verdict.error().message);
      return 1;
    }
    if (*verdict) {
      log::warn("ssh front end: " + peer_of(kConnectionFd).addr + ": " + (*verdict)->message +
                ": closing the connection");
      return 1;
    }
    auto origin = ca::read_proxy_origin(*header);
    if (!origin) {
      log::error("ssh front end: " + origin.error().message);
      return 1;
    }
    node.origin = privsep::Peer{origin->client_ip, origin->client_addr()};
  }
  if (ssh_bind_accept_fd(bind, session, kConnectionFd) != SSH_OK) {
    log::warn(std::string("ssh front end: accept failed: ") + ssh_get_error(bind));
    return 1;
  }
  node.login_grace_seconds = options.login_grace_seconds;
  serve_connection(session, node);  // frees the session
  ssh_bind_free(bind);
  return 0;
}

}  // namespace vigil::ssh
