// The node side of a reverse tunnel: a node with no address users can reach
// connects OUT to the proxy's tunnel port, logs in with its host
// certificate (key id = its uuid), asks tcpip-forward, and bridges every
// forwarded-tcpip channel the proxy opens to the node's own SSH port. When
// the proxy goes away it connects again, waiting min_backoff_ms, doubling up
// to max_backoff_ms (back to the minimum once a tunnel stood).
//
// The proxy's host key is pinned (proxy_host_key): libssh 0.10's server
// cannot present a host certificate, so the proxy's plain key is what the
// node checks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.hpp"

namespace vigil::proxy {

struct TunnelAgentOptions {
  std::string proxy_addr;        // "host:port" of the proxy's tunnel port
  std::string proxy_host_key;    // the proxy's public key, "ssh-ed25519 AAAA... [comment]"
  std::string host_key_path;     // the node's private host key
  std::string host_cert_path;    // its host certificate (the -cert.pub file)
  std::string local_ssh_addr = "127.0.0.1:3022";  // where forwarded channels go
  int connect_timeout_ms = 10'000;
  int min_backoff_ms = 200;
  int max_backoff_ms = 10'000;
};

class TunnelAgent {
 public:
  // Reads and checks the keys; nothing connects yet.
  static Result<std::unique_ptr<TunnelAgent>> create(const TunnelAgentOptions& options);
  ~TunnelAgent();
  TunnelAgent(const TunnelAgent&) = delete;
  TunnelAgent& operator=(const TunnelAgent&) = delete;

  // Holds the tunnel until stop, re-connecting when it drops.
  void run(const std::atomic<bool>& stop);

  // How often a tunnel was set up (the proxy accepted tcpip-forward).
  uint64_t tunnels_held() const { return tunnels_held_; }
  uint64_t channels_bridged() const { return channels_bridged_; }

 private:
  TunnelAgent() = default;
  // One connection: Ok after it stood and ended; an error when it could not be set up.
  Result<void> hold_once(const std::atomic<bool>& stop);

  TunnelAgentOptions options_;
  void* key_ = nullptr;        // ssh_key: private key with its certificate
  void* proxy_key_ = nullptr;  // ssh_key: the pinned proxy key
  std::atomic<uint64_t> tunnels_held_{0};
  std::atomic<uint64_t> channels_bridged_{0};
};

}  // namespace vigil::proxy
