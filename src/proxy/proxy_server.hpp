// The proxy's SSH side: a jump host for users and the end of nodes'
// reverse tunnels (docs/architecture.md, "The proxy").
//
//   jump port (3023): users log in with an OpenSSH user certificate of the
//     cluster's user CA (any valid one: the hop's login name is not an
//     account; the key id names the Vigil user) and may open ONLY
//     direct-tcpip channels (ssh -J / ssh -W) to nodes the NodeDirectory
//     lists. Shells, exec, subsystems, agent and X11 forwarding, -R, and
//     direct-tcpip to anything that is not a node: refused, counted, logged.
//   tunnel port (3024): nodes log in with their host certificate of the
//     cluster's host CA (key id = node uuid) and ask tcpip-forward; the
//     connection is then that node's tunnel in the TunnelRegistry.
//
// One thread per connection (the limit: max_connections, each thread
// ~8 MiB of address space, mostly unused stack). Everything after listen()
// needs no privilege: bind, then drop to an unprivileged user, then run().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/result.hpp"
#include "proxy/node_directory.hpp"
#include "proxy/tunnel_registry.hpp"
#include "sshcert/trusted_cas.hpp"

namespace vigil::proxy {

// Every refusal and acceptance, by kind: what a user can see of the proxy
// (nothing is refused without a count).
struct ProxyStats {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> logins{0};            // jump: users in
  std::atomic<uint64_t> auth_refused{0};      // jump and tunnel: credentials refused
  std::atomic<uint64_t> channels_opened{0};   // direct-tcpip relayed to a node
  std::atomic<uint64_t> channels_refused{0};  // direct-tcpip refused (not a node, limit, dial failed)
  std::atomic<uint64_t> requests_refused{0};  // shell/exec/subsystem/session/x11/agent/-R...
  std::atomic<uint64_t> tunnels_registered{0};
  std::atomic<uint64_t> bytes_relayed{0};     // both ways, all channels ended so far
};

struct Proxy {
  const sshcert::TrustedCAs& user_cas;  // who may use the jump port
  const sshcert::TrustedCAs& host_cas;  // which nodes may hold tunnels
  NodeDirectory& nodes;
  TunnelRegistry& tunnels;
  ProxyStats stats;
  size_t max_channels_per_connection = 64;
  int login_grace_seconds = 30;  // key exchange + authentication
  int max_auth_tries = 6;        // refused attempts, then disconnect (as sshd's MaxAuthTries)
  int dial_timeout_ms = 10'000;  // connecting to a node's address
  // The signed header each connection to a node starts with, naming the
  // client it carries (ca/proxy_header.hpp): its address and port, and the
  // node's uuid. Empty: none is sent, and the node sees the proxy's address.
  std::function<Result<std::string>(const std::string& client_ip, uint16_t client_port,
                                    const std::string& node_uuid)>
      sign_origin;
  std::atomic<bool> stopping{false};
};

struct ProxyOptions {
  std::string jump_addr = "0.0.0.0:3023";    // "" : no jump port
  std::string tunnel_addr = "0.0.0.0:3024";  // "" : no tunnel port
  std::string host_key_path;                 // an OpenSSH private key (0600)
  size_t max_connections = 1024;             // beyond: closed at once
  int listen_backlog = 128;
};

class ProxyServer {
 public:
  // Binds both ports (the part that may need privilege).
  static Result<std::unique_ptr<ProxyServer>> listen(const ProxyOptions& options, Proxy& proxy);
  ~ProxyServer();
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  uint16_t jump_port() const { return jump_port_; }
  uint16_t tunnel_port() const { return tunnel_port_; }
  // Accepts until stop; then ends every connection (bounded) and returns.
  void run(const std::atomic<bool>& stop);

 private:
  explicit ProxyServer(Proxy& proxy) : proxy_(proxy) {}
  // False when accept() itself failed (EMFILE, ENFILE, ENOBUFS...): the
  // connection stays in the backlog and the listener stays readable, so the
  // loop pauses (kAcceptRetryPause) instead of polling again at once.
  bool accept_one(void* bind, bool tunnel);

  Proxy& proxy_;
  ProxyOptions options_;
  void* jump_bind_ = nullptr;    // ssh_bind
  void* tunnel_bind_ = nullptr;  // ssh_bind
  uint16_t jump_port_ = 0, tunnel_port_ = 0;
  std::mutex mu_;
  size_t live_ = 0;
  std::set<int> live_fds_;
  std::condition_variable all_done_;
  // Failed accepts since the last warning, and when it was (monotonic ns):
  // one line per kAcceptWarningEvery, not one per failure.
  uint64_t accept_failures_ = 0;
  int64_t accept_warned_ns_ = 0;
};

// A listener that cannot accept (out of fds) is tried again after this.
inline constexpr int kAcceptRetryPauseMs = 100;
inline constexpr int64_t kAcceptWarningEveryNs = 10'000'000'000;

}  // namespace vigil::proxy
