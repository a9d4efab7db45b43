// Where the proxy may send a user's direct-tcpip channel: only to nodes of
// the cluster, never to an arbitrary host:port (the proxy is not an open
// relay). The target a client names (`ssh -J proxy login@TARGET`) is a node's
// name, its uuid, or "<name>.<cluster>"; the port it asks for is 0, 3022
// (Vigil's node port) or the port the node listed with its address. The
// proxy then dials the address the node listed, not the one asked for.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cluster/store.hpp"
#include "common/result.hpp"

namespace vigil::proxy {

inline constexpr uint16_t kNodePort = 3022;
// Longer targets are refused before any look-up (DNS names stop at 253).
inline constexpr size_t kMaxTargetBytes = 253;

struct NodeRoute {
  std::string uuid;
  std::string name;
  std::string address;  // "host:port" to dial; empty when reached through its tunnel
  bool tunnel = false;
};

class NodeDirectory {
 public:
  virtual ~NodeDirectory() = default;
  // not_found: no node answers to target; permission_denied: the port is
  // not the node's SSH port; invalid_argument: the target cannot be a name.
  virtual Result<NodeRoute> resolve(std::string_view target, uint32_t port) = 0;
};

// The nodes a ClusterStore lists (the auth service's node list; in tests a
// real SQLite store). Looked up on every request: a node that stops sending
// heartbeats is gone once its record expires.
class ClusterNodeDirectory : public NodeDirectory {
 public:
  ClusterNodeDirectory(cluster::ClusterStore& store, std::string cluster_name)
      : store_(store), cluster_(std::move(cluster_name)) {}
  Result<NodeRoute> resolve(std::string_view target, uint32_t port) override;

 private:
  cluster::ClusterStore& store_;
  std::string cluster_;
};

// The node a target names among nodes (pure; resolve() uses it). A name
// shared by two nodes is refused as ambiguous: the uuid then picks one.
Result<NodeRoute> pick_node(const std::vector<cluster::Node>& nodes, std::string_view target,
                            uint32_t port, std::string_view cluster_name, int64_t now_unix);

// "host:port" split; IPv6 as "[::1]:22". invalid_argument when it is not
// that. Port 0 (any free port) only for a listener.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
Result<HostPort> split_host_port(std::string_view address, bool listener = false);

}  // namespace vigil::proxy
