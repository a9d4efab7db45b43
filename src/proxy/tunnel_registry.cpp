#include "proxy/tunnel_registry.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace vigil::proxy {

Tunnel::Tunnel() {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
    wake_read_.reset(p[0]);
    wake_write_.reset(p[1]);
  }
}

bool Tunnel::post(std::shared_ptr<TunnelOpen> request) {
  std::lock_guard lock(mu_);
  if (closed_ || !wake_write_) return false;
  pending_.push_back(std::move(request));
  char b = 1;
  // A full pipe already wakes the thread.
  [[maybe_unused]] ssize_t n = write(wake_write_.get(), &b, 1);
  return true;
}

std::deque<std::shared_ptr<TunnelOpen>> Tunnel::take() {
  char buf[256];
  while (read(wake_read_.get(), buf, sizeof buf) > 0) {
  }
  std::lock_guard lock(mu_);
  return std::exchange(pending_, {});
}

void Tunnel::close(const std::string& why) {
  std::deque<std::shared_ptr<TunnelOpen>> left;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    left = std::exchange(pending_, {});
  }
  for (auto& r : left) r->result.set_value(why);
}

std::shared_ptr<Tunnel> TunnelRegistry::add(const std::string& node_uuid) {
  auto tunnel = std::make_shared<Tunnel>();
  std::shared_ptr<Tunnel> old;
  {
    std::lock_guard lock(mu_);
    auto& slot = tunnels_[node_uuid];
    old = std::exchange(slot, tunnel);
  }
  if (old) old->close("the node reconnected its tunnel");
  return tunnel;
}

void TunnelRegistry::remove(const std::string& node_uuid, const std::shared_ptr<Tunnel>& tunnel) {
  {
    std::lock_guard lock(mu_);
    auto it = tunnels_.find(node_uuid);
    if (it != tunnels_.end() && it->second == tunnel) tunnels_.erase(it);
  }
  tunnel->close("the node's tunnel closed");
}

size_t TunnelRegistry::size() {
  std::lock_guard lock(mu_);
  return tunnels_.size();
}

Result<Fd> TunnelRegistry::open(const std::string& node_uuid, const std::string& originator,
                                uint32_t originator_port, std::chrono::milliseconds timeout) {
  std::shared_ptr<Tunnel> tunnel;
  {
    std::lock_guard lock(mu_);
    auto it = tunnels_.find(node_uuid);
    if (it != tunnels_.end()) tunnel = it->second;
  }
  if (!tunnel)
    return Error::of(Errc::unavailable, "node " + node_uuid +
                                            " is reached through a tunnel and holds none now: "
                                            "is its agent running and able to reach the proxy?");
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return Error::sys("cannot make a socket pair for the tunnel");
  Fd mine(sv[0]);
  auto request = std::make_shared<TunnelOpen>();
  request->end.reset(sv[1]);
  request->originator = originator;
  request->originator_port = originator_port;
  auto answer = request->result.get_future();
  if (!tunnel->post(request))
    return Error::of(Errc::unavailable, "node " + node_uuid + "'s tunnel just closed; retry");
  if (answer.wait_for(timeout) != std::future_status::ready)
    return Error::of(Errc::deadline_exceeded,
                     "node " + node_uuid + " did not answer through its tunnel in time");
  std::string why = answer.get();
  if (!why.empty()) return Error::of(Errc::unavailable, "node " + node_uuid + ": " + why);
  return mine;
}

}  // namespace vigil::proxy
