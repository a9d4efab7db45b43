#include "proxy/proxy_server.hpp"

#include <fcntl.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "proxy/proxy_connection.hpp"

namespace vigil::proxy {
namespace {

Result<ssh_bind> bind_port(const std::string& addr, const std::string& host_key, int backlog,
                           uint16_t* port) {
  auto where = split_host_port(addr, true);
  if (!where) return where.error();
  ssh_bind bind = ssh_bind_new();
  if (!bind) return Error::of(Errc::resource_exhausted, "cannot create an SSH listener");
  const std::string port_text = std::to_string(where->port);
  ssh_bind_options_set(bind, SSH_BIND_OPTIONS_BINDADDR, where->host.c_str());
  ssh_bind_options_set(bind, SSH_BIND_OPTIONS_BINDPORT_STR, port_text.c_str());
  if (ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY, host_key.c_str()) != SSH_OK) {
    Error e = Error::of(Errc::invalid_argument, "host key " + host_key + ": " + ssh_get_error(bind));
    ssh_bind_free(bind);
    return e;
  }
  if (ssh_bind_listen(bind) != SSH_OK) {
    Error e = Error::of(Errc::unavailable, "cannot listen on " + addr + ": " + ssh_get_error(bind));
    ssh_bind_free(bind);
    return e;
  }
  int fd = ssh_bind_get_fd(bind);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::listen(fd, backlog);  // libssh's backlog is 10
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    *port = ntohs(sa.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&sa)->sin_port);
  return bind;
}

}  // namespace

Result<std::unique_ptr<ProxyServer>> ProxyServer::listen(const ProxyOptions& options, Proxy& proxy) {
  if (options.jump_addr.empty() && options.tunnel_addr.empty())
    return Error::of(Errc::invalid_argument, "the proxy needs a jump port, a tunnel port or both");
  std::unique_ptr<ProxyServer> server(new ProxyServer(proxy));
  server->options_ = options;
  if (!options.jump_addr.empty()) {
    auto b = bind_port(options.jump_addr, options.host_key_path, options.listen_backlog,
                       &server->jump_port_);
    if (!b) return b.error();
    server->jump_bind_ = *b;
  }
  if (!options.tunnel_addr.empty()) {
    auto b = bind_port(options.tunnel_addr, options.host_key_path, options.listen_backlog,
                       &server->tunnel_port_);
    if (!b) return b.error();
    server->tunnel_bind_ = *b;
  }
  return server;
}

ProxyServer::~ProxyServer() {
  if (jump_bind_) ssh_bind_free(static_cast<ssh_bind>(jump_bind_));
  if (tunnel_bind_) ssh_bind_free(static_cast<ssh_bind>(tunnel_bind_));
}

bool ProxyServer::accept_one(void* bind_ptr, bool tunnel) {
  auto bind = static_cast<ssh_bind>(bind_ptr);
  ssh_session session = ssh_new();
  if (!session) return false;
  if (ssh_bind_accept(bind, session) != SSH_OK) {
    ++accept_failures_;
    const int64_t now = clock::monotonic_ns();
    if (accept_warned_ns_ == 0 || now - accept_warned_ns_ >= kAcceptWarningEveryNs) {
      log::warn("proxy: accept failed (" + std::to_string(accept_failures_) +
                " times since the last warning): " + ssh_get_error(bind) +
                "; trying again every " + std::to_string(kAcceptRetryPauseMs) +
                " ms (out of file descriptors? raise the limit, ulimit -n)");
      accept_warned_ns_ = now;
      accept_failures_ = 0;
    }
    ssh_free(session);
    return false;
  }
  int fd = ssh_get_fd(session);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  {
    std::lock_guard lock(mu_);
    if (live_ >= options_.max_connections) {
      log::warn("proxy: " + std::to_string(live_) + " connections already: closing a new one");
      ssh_disconnect(session);
      ssh_free(session);
      return true;
    }
    ++live_;
    live_fds_.insert(fd);
  }
  ++proxy_.stats.connections;
  std::thread([this, session, fd, tunnel] {
    if (tunnel)
      serve_tunnel(session, proxy_);
    else
      serve_jump(session, proxy_);
    std::lock_guard lock(mu_);
    live_fds_.erase(fd);
    --live_;
    all_done_.notify_all();
  }).detach();
  return true;
}

void ProxyServer::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    pollfd p[2];
    int n = 0;
    void* binds[2];
    bool tunnel[2];
    if (jump_bind_) {
      p[n] = {ssh_bind_get_fd(static_cast<ssh_bind>(jump_bind_)), POLLIN, 0};
      binds[n] = jump_bind_;
      tunnel[n++] = false;
    }
    if (tunnel_bind_) {
      p[n] = {ssh_bind_get_fd(static_cast<ssh_bind>(tunnel_bind_)), POLLIN, 0};
      binds[n] = tunnel_bind_;
      tunnel[n++] = true;
    }
    if (poll(p, n, 200) <= 0) continue;
    bool failed = false;
    for (int i = 0; i < n; ++i)
      if (p[i].revents & POLLIN) failed = !accept_one(binds[i], tunnel[i]) || failed;
    if (failed) std::this_thread::sleep_for(std::chrono::milliseconds(kAcceptRetryPauseMs));
  }
  proxy_.stopping = true;
  std::unique_lock lock(mu_);
  auto none_left = [&] { return live_ == 0; };
  if (all_done_.wait_for(lock, std::chrono::seconds(2), none_left)) return;
  for (int fd : live_fds_) shutdown(fd, SHUT_RDWR);
  if (!all_done_.wait_for(lock, std::chrono::seconds(5), none_left))
    log::error("proxy: stopping: " + std::to_string(live_) + " connections did not end");
}

}  // namespace vigil::proxy
