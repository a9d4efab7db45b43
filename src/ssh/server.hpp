// The SSH node service, privilege-separated (docs/architecture.md,
// "Privilege separation of the node"):
//
//   root monitor (vigil start)                 front end (vigil ssh-frontend), one per connection
//   --------------------------                 ----------------------------------------------
//   Server::listen: binds the port             drops to the `vigil` user before reading a byte
//   Server::run: accept(), then spawns a       libssh: key exchange, certificate authentication,
//     front end with the connection (fd 3)       channels (serve_connection)
//     and its end of a socketpair (fd 4);      asks the monitor (privsep/client.hpp) to log in,
//     serves it (privsep/monitor.hpp)            open sessions, resize, signal, end them
//
// accept() reads nothing from the network: the monitor takes the client's
// address from the kernel, so a front end cannot lie about it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "privsep/client.hpp"
#include "privsep/monitor.hpp"
#include "sshcert/trusted_cas.hpp"

namespace vigil::ssh {

// What a front end's connection uses: the monitor, and its own limits.
struct Node {
  privsep::MonitorClient& monitor;
  const sshcert::TrustedCAs& cas;  // the front end checks first; the monitor checks again
  size_t max_channels_per_connection = 10;  // as sshd's MaxSessions
  int login_grace_seconds = 60;             // key exchange + authentication
  int max_auth_tries = 6;      // refused attempts per connection, then disconnect (sshd's MaxAuthTries)
  int max_auth_requests = 24;  // any authentication requests (answered "yes" or not) per connection
  // What a session channel's env requests may set (LANG and LC_* only).
  size_t max_env_vars = 32;         // distinct names per channel
  size_t max_env_var_bytes = 4096;  // one "NAME=value"
  size_t max_env_bytes = 32768;     // all of a channel's together
  std::atomic<bool> stopping{false};
  // The client's address from the proxy's header, when the monitor believed
  // one (replaces the socket's peer in the front end's own checks and logs).
  std::optional<privsep::Peer> origin;
};

struct ServerOptions {
  std::string listen_addr = "0.0.0.0:3022";  // "host:port", IPv6 as "[::]:3022"
  size_t max_connections = 1024;             // beyond: new connections are closed at once
  int listen_backlog = 128;                  // as sshd's
  // A stop ends every connection: within this their sessions are ended
  // (session.end written) and their front ends told to go; past it the
  // front ends still there are killed.
  int stop_grace_ms = 2000;
  // Then the stop waits as long as sessions go on ending: it gives up only
  // when none has ended for this long (their journals let the next start
  // write their ends, and the engine's guard kills what they ran).
  int stop_stall_ms = 15000;
  // The front end's command line; it gets the connection as fd 3 and its
  // end of the monitor socketpair as fd 4.
  std::vector<std::string> front_end_argv;
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> listen(const ServerOptions& options,
                                                privsep::MonitorContext& monitor);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  // Accepts until `stop` becomes true, then ends every connection (their
  // front ends are killed, their sessions ended and logged) and returns
  // true; false when connections are left and none ended for
  // stop_stall_ms (the caller should then exit without waiting: the
  // sessions' journals let the next start write their end).
  bool run(const std::atomic<bool>& stop);

 private:
  Server(privsep::MonitorContext& monitor) : monitor_(monitor) {}
  void serve(int connection);
  privsep::MonitorContext& monitor_;
  ServerOptions options_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  size_t live_connections_ = 0;
  std::set<pid_t> front_ends_;  // live front ends (under mu_)
  std::condition_variable all_done_;  // a member: threads may outlive run()
};

// The front end process: `vigil ssh-frontend`, started by Server::run as
// root with the connection on fd 3 and the monitor on fd 4.
struct FrontEndOptions {
  std::string host_key_path;
  std::vector<std::string> trusted_user_ca_keys;
  int login_grace_seconds = 60;
  std::string user;  // the service user to drop to
  uid_t uid = 0;
  gid_t gid = 0;
};
// Reads the host key and the CAs, drops to the service user (privsep/drop),
// then serves the one connection. The exit status of the process.
int run_front_end(const FrontEndOptions& options);

// The PROXY protocol v2 header a connection begins with, read off fd (its
// bytes are consumed; the SSH banner that follows is not): "" when the
// first bytes are not a header's, or when nothing comes within wait_ms (a
// client that waits for the server's banner). A header cut, over
// ca::kMaxProxyHeader bytes or not whole within total_ms is an error.
Result<std::string> read_proxy_header(int fd, int wait_ms, int total_ms);

}  // namespace vigil::ssh
