// A node's membership of a cluster: joining once with a token, keeping the
// identity it got (a restart needs no token), heartbeating, and the roles
// it evaluates logins with.
//
// Files, in <data_dir>/node (0700; the node's root process owns them):
//   uuid               the uuid the auth service gave it
//   cluster            the cluster's name
//   tls.key            its TLS key (0600)
//   tls.crt            its TLS node identity (client and server)
//   cas.pem            the cluster's TLS CA certificates
//   user_cas.pub       the user CA keys that sign logins (TrustedUserCAKeys)
//   host-cert.pub      the SSH host certificate of its host key
//   auth_server        where it joined (host:port)
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/client.hpp"
#include "ca/key.hpp"
#include "ca/tls_ca.hpp"
#include "cluster/resources.hpp"
#include "cluster/roles.hpp"
#include "common/result.hpp"

namespace vigil::services {

struct NodeIdentity {
  std::string uuid;
  std::string cluster;
  std::string auth_server;
  ca::PrivateKey tls_key;
  ca::TlsCertificate tls_certificate{nullptr};
  std::vector<ca::TlsCertificate> tls_cas;
  std::string trusted_user_ca_keys;
  std::string host_certificate;
};

struct JoinParams {
  std::string data_dir;
  std::string auth_server;  // host:port of the auth service
  std::string token;
  // How to trust the auth service before the cluster CA is known: its pin,
  // or (a node on the auth host) its CA certificates.
  std::string ca_pin;
  std::vector<ca::TlsCertificate> trusted;
  std::string trusted_cluster;
  std::string node_name;
  std::vector<std::string> addresses;  // "host:port" users reach its SSH port at
  bool tunnel = false;
  cluster::Labels labels;
  std::string host_key_path;  // its SSH host key (the public half is certified)
  std::string role;           // "" (a node) or "proxy" (the token must allow it)
};

// The identity kept in data_dir, or not_found when the node never joined.
Result<NodeIdentity> load_node_identity(const std::string& data_dir);

// An HTTPS connection to the auth service the node joined, with its
// identity; the server must be the auth service (role auth), not a node.
Result<std::unique_ptr<api::Client>> connect_to_auth(const NodeIdentity& identity);

// Joins with the token and keeps the identity. Errors say what to do (an
// expired token: make a new one with vigilctl nodes add).
Result<NodeIdentity> join_cluster(const JoinParams& params);

// A node that names only proxy_server: where its reverse tunnel goes and the
// proxy's SSH host key it pins, both learned from the proxy's web API over
// the TLS connection checked with the cluster CA (connect_to_auth).
struct ProxyTunnel {
  std::string tunnel_addr;     // "host:port": proxy_server's host, the tunnel port
  std::string proxy_host_key;  // "ssh-ed25519 AAAA..." (one line)
};

// The tunnel address from GET /v1/webapi/find's proxy.ssh.tunnel_listen_addr:
// the proxy's listen host (often 0.0.0.0, or an address behind NAT) is not
// what the node reaches, so it takes the host it reached the web port at
// (proxy_server) and the tunnel's port, as Teleport's agents do without a
// tunnel_public_addr. Pure.
Result<std::string> tunnel_address(const std::string& proxy_server,
                                   const std::string& tunnel_listen_addr);

// Asks the proxy (the identity's auth_server: the proxy's web port) for
// its tunnel port and host key.
Result<ProxyTunnel> find_proxy_tunnel(const NodeIdentity& identity);

// What the node says of itself in each heartbeat.
struct NodeInfo {
  std::string name;
  std::string address;  // empty with a tunnel
  bool tunnel = false;
  cluster::Labels labels;
};

// Heartbeats to the auth service on a thread of its own and keeps the
// cluster's roles (fetched again when their revision changes). While the
// auth service is unreachable it retries with a capped backoff and keeps
// the roles it has: logins go on being decided with them.
class NodeAgent {
 public:
  NodeAgent(const NodeIdentity& identity, NodeInfo info);
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // The first heartbeat and roles fetch, synchronously (a node that cannot
  // reach its auth service at start says so), then the thread.
  Result<void> start();
  void stop();

  // May the user (key id) with these roles and login traits log in as
  // login here? permission_denied saying why; unavailable when the node has
  // never had the roles.
  // A role the node has not heard of (created since the last heartbeat)
  // makes it fetch the roles again at once (at most once a second: a login
  // that comes sooner waits for the rest of that second).
  Result<void> check_login(const std::vector<std::string>& roles,
                           const std::vector<std::string>& trait_logins,
                           const std::string& login);
  const cluster::Labels& labels() const { return info_.labels; }
  uint64_t heartbeats() const { return heartbeats_; }

 private:
  Result<void> beat();  // under beat_mu_
  void run();
  bool knows_all(const std::vector<std::string>& roles) const;  // under mu_
  std::mutex beat_mu_;  // one heartbeat at a time (the thread's, a login's)
  std::chrono::steady_clock::time_point last_refetch_{};
  const NodeIdentity& identity_;
  NodeInfo info_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<cluster::Role> roles_;
  std::string roles_revision_;
  bool have_roles_ = false;
  int interval_seconds_ = 30;
  std::atomic<uint64_t> heartbeats_{0};
  std::thread thread_;
  struct Conn;
  std::unique_ptr<Conn> conn_;
};

}  // namespace vigil::services
