// The cluster's network-facing services in one unprivileged process: the
// auth service (its HTTPS API on auth_service.listen_addr, the cluster
// store, the CAs, the cluster audit log) and, when proxy_service is
// enabled, the proxy (the same API on web_listen_addr for users, the SSH
// jump port and the nodes' tunnel port).
//
// `vigil start` runs this in a child it forked and dropped to the service
// user (privsep::drop_to) before anything here reads a byte from the
// network; the root process keeps the engine and the node's sessions.
//
// Files, all under data_dir and owned by the service user:
//   cluster/state.db     users, roles, tokens, nodes (SQLite, 0600)
//   ca/                  the SSH user and host CAs and the TLS CA (0700/0600)
//   admin/               vigilctl's identity (key 0600), issued at every start
//   log/<uuid>/...       the cluster audit log (events.log links today's file)
//   proxy/host_key       the proxy's SSH host key (0600)
//   local-node-token     a join token for this host's own node (0600), when asked
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/result.hpp"
#include "config/config.hpp"

namespace vigil::services {

struct ClusterServicesOptions {
  config::Config config;
  std::string server_uuid;  // this host's uuid (the log's directory)
  // When set: write a join token for this host's own node there (0600) once
  // the API listens, valid local_token_ttl seconds.
  std::string local_node_token_path;
  int64_t local_token_ttl = 600;
  // Written "ready <auth port> <web port> <jump port> <tunnel port>\n" once
  // every port listens (0 for a port not served), then closed; -1: none.
  int ready_fd = -1;
};

// Serves until stop becomes true; returns the process exit status.
int run_cluster_services(const ClusterServicesOptions& options, const std::atomic<bool>& stop);

// "0.0.0.0:3025" / "[::]:3025" into the address and port the listeners take.
Result<std::pair<std::string, uint16_t>> split_listen_addr(const std::string& addr);

// What find's proxy.ssh.tunnel_listen_addr says: the host of
// proxy_service.tunnel_listen_addr (bracketed when IPv6) and the port its
// listener got. A node that names only proxy_server keeps the host it
// reached and takes the port.
std::string advertised_tunnel_addr(const std::string& tunnel_listen_addr, uint16_t port);

}  // namespace vigil::services
