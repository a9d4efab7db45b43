#include "ssh/server.hpp"

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "common/log.hpp"
#include "ssh/connection.hpp"

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

}  // namespace

Result<std::unique_ptr<Server>> Server::listen(const ServerOptions& options, Node& node) {
  auto where = split_listen_addr(options.listen_addr);
  if (!where) return where.error();
  std::unique_ptr<Server> server(new Server(node));
  server->options_ = options;
  ssh_bind bind = ssh_bind_new();
  if (!bind) return Error{"cannot create an SSH listener"};
  server->bind_ = bind;
  ssh_bind_options_set(bind, SSH_BIND_OPTIONS_BINDADDR, where->host.c_str());
  ssh_bind_options_set(bind, SSH_BIND_OPTIONS_BINDPORT_STR, where->port.c_str());
  if (ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY, options.host_key_path.c_str()) != SSH_OK)
    return Error{"host key " + options.host_key_path + ": " + ssh_get_error(bind)};
  if (ssh_bind_listen(bind) != SSH_OK)
    return Error{"cannot listen on " + options.listen_addr + ": " + ssh_get_error(bind)};
  int fd = ssh_bind_get_fd(bind);
  // No process this one starts may hold the port (launch also closes every
  // fd above 2 in sessions; this covers any other exec).
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  // libssh listens with a backlog of 10: bursts of clients would wait for
  // SYN retries. listen() again only changes the backlog.
  if (::listen(fd, options.listen_backlog) != 0)
    return Error::sys("cannot listen on " + options.listen_addr);
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  if (getsockname(ssh_bind_get_fd(bind), reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    server->port_ = ntohs(sa.ss_family == AF_INET6
                              ? reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port
                              : reinterpret_cast<sockaddr_in*>(&sa)->sin_port);
  return server;
}

Server::~Server() {
  if (bind_) ssh_bind_free(static_cast<ssh_bind>(bind_));
}

bool Server::run(const std::atomic<bool>& stop) {
  auto bind = static_cast<ssh_bind>(bind_);
  while (!stop.load()) {
    // Polled with a timeout so that `stop` is seen within 200 ms.
    pollfd p{ssh_bind_get_fd(bind), POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    ssh_session session = ssh_new();
    if (!session) continue;
    if (ssh_bind_accept(bind, session) != SSH_OK) {
      log::warn(std::string("ssh: accept failed: ") + ssh_get_error(bind));
      ssh_free(session);
      continue;
    }
    int fd = ssh_get_fd(session);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    {
      std::lock_guard lock(mu_);
      if (live_connections_ >= options_.max_connections) {
        log::warn("ssh: " + std::to_string(live_connections_) +
                  " connections already: closing a new one");
        ssh_disconnect(session);
        ssh_free(session);
        continue;
      }
      ++live_connections_;
      live_fds_.insert(fd);
    }
    std::thread([this, session, fd] {
      serve_connection(session, node_);
      std::lock_guard lock(mu_);
      live_fds_.erase(fd);
      --live_connections_;
      all_done_.notify_all();
    }).detach();
  }
  // Bounded: connections see `stopping` within a poll round and end their
  // sessions; one stuck in a blocking step (the key exchange of a client
  // that stalls) is cut off by shutting its socket down.
  node_.stopping = true;
  std::unique_lock lock(mu_);
  auto none_left = [&] { return live_connections_ == 0; };
  if (all_done_.wait_for(lock, std::chrono::milliseconds(options_.stop_grace_ms), none_left))
    return true;
  log::info("ssh: stopping: " + std::to_string(live_connections_) +
            " connections still busy: shutting their sockets down");
  for (int fd : live_fds_) shutdown(fd, SHUT_RDWR);
  if (all_done_.wait_for(lock, std::chrono::seconds(5), none_left)) return true;
  log::error("ssh: stopping: " + std::to_string(live_connections_) +
             " connections did not end; exiting without them");
  return false;
}

}  // namespace vigil::ssh
