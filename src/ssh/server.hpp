// The SSH node service: accepts SSH connections, lets in only holders of
// OpenSSH user certificates from trusted CAs, and runs every session
// channel's process inside its own recorded engine session.
//
//   Node node{engine, log, recordings, cas, ...};
//   auto server = Server::listen(options, node);
//   server->run(stop_flag);   // until stop_flag; ends every connection
//
// One thread per connection: key exchange, authentication and the
// connection's channels all run there, so a client that stalls or sends
// garbage only ever holds its own thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "audit/session.hpp"
#include "auditlog/emitter.hpp"
#include "recording/recording_store.hpp"
#include "sshcert/rate_limit.hpp"
#include "sshcert/trusted_cas.hpp"
#include "common/result.hpp"
#include "engine/engine.hpp"

namespace vigil::ssh {

// What every connection of a node shares. The members are thread-safe or
// read-only once the server runs.
struct Node {
  // Null when enhanced recording is off: sessions keep their terminal
  // recording and audit events, and no BPF is loaded.
  Engine* engine;
  auditlog::Emitter& log;
  recording::RecordingStore& recordings;  // each session's recording
  const sshcert::TrustedCAs& cas;
  sshcert::AuthRateLimiter& limiter;
  audit::SessionMeta identity;  // cluster_name, server_hostname, server_id
  std::string data_dir;         // the session journals go to <data_dir>/sessions
  KindSet default_kinds;        // when the certificate has no recording extension
  size_t max_channels_per_connection = 10;  // as sshd's MaxSessions
  int login_grace_seconds = 60;             // key exchange + authentication
  int max_auth_tries = 6;      // refused attempts per connection, then disconnect (sshd's MaxAuthTries)
  int max_auth_requests = 24;  // any authentication requests (answered "yes" or not) per connection
  // What a session channel's env requests may set (LANG and LC_* only).
  size_t max_env_vars = 32;         // distinct names per channel
  size_t max_env_var_bytes = 4096;  // one "NAME=value"
  size_t max_env_bytes = 32768;     // all of a channel's together
  // Refusals audited per source: the first of a kind in a window at once,
  // the rest as one event with a count (docs/ssh-node.md).
  sshcert::RefusalAggregator<audit::AuthAttempt> auth_refusals;
  sshcert::RefusalAggregator<audit::SessionRejection> rejections;
  std::string sftp_server = "/usr/lib/openssh/sftp-server";  // the sftp subsystem (openssh-sftp-server)
  std::atomic<bool> stopping{false};
};

struct ServerOptions {
  std::string listen_addr = "0.0.0.0:3022";  // "host:port", IPv6 as "[::]:3022"
  std::string host_key_path;                 // made on first start (host_key.hpp)
  size_t max_connections = 1024;             // beyond: new connections are closed at once
  int listen_backlog = 128;                  // as sshd's
  // A stop ends every connection within this: first they are asked to end
  // (each ends its sessions), then their sockets are shut down under them.
  int stop_grace_ms = 2000;
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> listen(const ServerOptions& options, Node& node);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  // Accepts until `stop` becomes true, then ends every connection (their
  // processes are killed and their sessions closed and logged) and returns
  // true; false when some connection thread had still not finished 5 s after
  // its socket was shut down (the caller should then exit without waiting:
  // the sessions' journals let the next start write their end).
  bool run(const std::atomic<bool>& stop);

 private:
  Server(Node& node) : node_(node) {}
  Node& node_;
  ServerOptions options_;
  void* bind_ = nullptr;  // ssh_bind (libssh stays out of this header)
  uint16_t port_ = 0;
  std::mutex mu_;
  size_t live_connections_ = 0;
  std::set<int> live_fds_;  // sockets of live connections (under mu_)
  std::condition_variable all_done_;  // a member: threads may outlive run()
};

}  // namespace vigil::ssh
