// The reverse tunnels nodes hold to the proxy, by node uuid. A user's
// connection thread asks for a channel to a node through open(); the
// tunnel's own thread (the only one that may touch the tunnel's libssh
// session) opens a forwarded-tcpip channel on it and bridges it to one end
// of a socket pair, whose other end open() returns. Each side then relays
// its end with the same Bridge as a directly dialed node.
#pragma once

#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace vigil::proxy {

struct TunnelOpen {
  Fd end;                    // the tunnel thread's end of the socket pair
  std::string originator;    // the user's address, for forwarded-tcpip
  uint32_t originator_port = 0;
  std::promise<std::string> result;  // empty: open; else why not
};

class Tunnel {
 public:
  Tunnel();
  // For the tunnel thread: readable when requests wait.
  int wake_fd() const { return wake_read_.get(); }
  // Takes what waits (and drains the wake pipe).
  std::deque<std::shared_ptr<TunnelOpen>> take();
  // After this, open() on it fails at once; what waits is refused.
  void close(const std::string& why);

 private:
  friend class TunnelRegistry;
  bool post(std::shared_ptr<TunnelOpen> request);
  std::mutex mu_;
  std::deque<std::shared_ptr<TunnelOpen>> pending_;
  bool closed_ = false;
  Fd wake_read_, wake_write_;
};

class TunnelRegistry {
 public:
  // A node's tunnel; a newer one for the same uuid replaces the older (the
  // node reconnected), whose pending requests are refused.
  std::shared_ptr<Tunnel> add(const std::string& node_uuid);
  // Only if it is still the one registered.
  void remove(const std::string& node_uuid, const std::shared_ptr<Tunnel>& tunnel);
  // A socket joined to the node's SSH port through its tunnel. unavailable
  // when the node holds no tunnel now, or the node did not answer in time.
  Result<Fd> open(const std::string& node_uuid, const std::string& originator,
                  uint32_t originator_port,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
  size_t size();

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Tunnel>> tunnels_;
};

}  // namespace vigil::proxy
