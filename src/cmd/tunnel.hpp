// The node side of the reverse tunnel in `vigil start` (a node that names
// only teleport.proxy_server): `vigil tunnel-agent`, a helper process the
// root monitor starts, which reads the node's host key and certificate as
// root, drops to the service user and then holds the tunnel
// (proxy::TunnelAgent), bridging each channel the proxy opens to the node's
// own SSH port, where the privsep front end serves it like any connection.
// The monitor starts it again when it dies (docs/architecture.md, "Privilege
// separation of the node").
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "common/result.hpp"
#include "privsep/drop.hpp"

namespace vigil::cmd {

struct TunnelAgentParams {
  std::string proxy_addr;      // the proxy's tunnel port, host:port
  std::string proxy_host_key;  // its SSH host key line (pinned)
  std::string host_key_path;   // the node's host key (root's, 0600)
  std::string host_cert_path;  // its host certificate
  std::string local_ssh_addr;  // where channels go: the node's SSH port
  privsep::ServiceUser user;
};

// Runs `vigil tunnel-agent` as a child and starts it again (after 1 s,
// doubling to 30 s while it keeps dying at once) until stop().
class TunnelAgentProcess {
 public:
  explicit TunnelAgentProcess(TunnelAgentParams params);
  ~TunnelAgentProcess();
  TunnelAgentProcess(const TunnelAgentProcess&) = delete;
  TunnelAgentProcess& operator=(const TunnelAgentProcess&) = delete;
  Result<void> start();
  void stop();

 private:
  Result<pid_t> spawn();
  void supervise();
  std::vector<std::string> argv_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  pid_t pid_ = 0;
  std::thread thread_;
};

// Where the tunnel's channels go: the node's SSH listen address, with a
// wildcard host made loopback.
std::string local_ssh_address(const std::string& listen_addr, uint16_t port);

Subcommand add_tunnel_agent(CLI::App& app);

}  // namespace vigil::cmd
