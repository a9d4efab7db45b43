// vigil start's cluster parts (start_cluster.cpp): the child running the
// auth service and proxy as the service user, and a node's membership.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "commands.hpp"
#include "privsep/drop.hpp"
#include "privsep/monitor.hpp"
#include "recording/file_store.hpp"
#include "relay/forwarder.hpp"
#include "relay/outbox.hpp"
#include "relay/spooling_store.hpp"
#include "relay/uploader.hpp"
#include "services/node_join.hpp"

namespace vigil::cmd {

struct ServicesChild {
  pid_t pid = 0;
  uint16_t auth_port = 0, web_port = 0, jump_port = 0, tunnel_port = 0;
};

// The service user's directories under data_dir (created, and chowned when
// an earlier run left them root's); data_dir itself becomes traversable.
// auth false (a proxy alone): only proxy/.
Result<void> prepare_service_dirs(const std::string& data_dir, const privsep::ServiceUser& who,
                                  bool auth = true);

// Starts `vigil cluster-services` (it drops to `who` first) and waits until
// it listens. local_token_path: where it writes a join token for this
// host's node ("" for none).
Result<ServicesChild> spawn_cluster_services(const DataDirOptions& where, const config::Config& cfg,
                                             const privsep::ServiceUser& who,
                                             const std::string& server_id,
                                             const std::string& local_token_path);
void stop_cluster_services(ServicesChild& child);

// A node of a cluster: its identity (joined now when it has none), the
// spool its events go to and the thread delivering it, its local
// recordings and their upload, its heartbeats and the roles logins are
// decided with (agent: the caller starts it once the node listens).
struct ClusterNode {
  services::NodeIdentity identity;
  std::unique_ptr<relay::Outbox> outbox;
  std::unique_ptr<relay::SpoolingStore> sink;
  std::unique_ptr<relay::Forwarder> forwarder;
  std::unique_ptr<recording::FileRecordingStore> recordings;
  std::unique_ptr<relay::RecordingUploader> uploader;
  std::unique_ptr<services::NodeAgent> agent;
  std::string user_cas_path;  // the user CA keys the front ends trust
  // A node that names only proxy_server: its tunnel's address and the
  // proxy's host key (asked at every start, over the checked TLS connection).
  std::optional<services::ProxyTunnel> tunnel;
  ~ClusterNode();
};

struct ClusterNodeParams {
  std::string server_id;
  std::string host_key_path;
  std::string auth_server;   // host:port
  std::string token;         // when it has not joined yet
  std::string ca_pin;        // how to trust the auth service when joining...
  std::vector<ca::TlsCertificate> trusted;  // ...or its CA (a node on the auth host)
  uint16_t ssh_port = 3022;  // the port it listens on
  // Reached only through the proxy's reverse tunnel: auth_server is then the
  // proxy's web port, and the node lists no address.
  bool tunnel = false;
};

Result<std::unique_ptr<ClusterNode>> start_cluster_node(const config::Config& cfg,
                                                        const ClusterNodeParams& params);

// The roles' decision on a login, for the monitor (privsep::MonitorContext::authorize_login).
Result<void> authorize_cluster_login(services::NodeAgent& agent,
                                     const sshcert::Certificate& cert, const std::string& login);

Subcommand add_cluster_services(CLI::App& app);

}  // namespace vigil::cmd
