#include "proxy/tunnel_agent.hpp"

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <list>
#include <sstream>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "proxy/bridge.hpp"
#include "proxy/net.hpp"
#include "proxy/node_directory.hpp"

namespace vigil::proxy {
namespace {

struct Session {
  ssh_session s = ssh_new();
  ~Session() {
    if (s) {
      ssh_disconnect(s);
      ssh_free(s);
    }
  }
};

struct Forwarding {
  const TunnelAgentOptions* options;
  std::list<std::unique_ptr<Bridge>>* bridges;
  std::atomic<uint64_t>* bridged;
};

// The proxy opens a forwarded-tcpip channel per user connection: it is
// joined to the node's SSH port, or refused when that does not answer.
int on_message(ssh_session, ssh_message message, void* data) {
  auto* f = static_cast<Forwarding*>(data);
  if (ssh_message_type(message) != SSH_REQUEST_CHANNEL_OPEN ||
      ssh_message_subtype(message) != SSH_CHANNEL_FORWARDED_TCPIP)
    return 1;
  auto socket = dial(f->options->local_ssh_addr, 5000);
  if (!socket) {
    log::warn("tunnel agent: " + socket.error().message);
    return 1;
  }
  ssh_channel channel = ssh_message_channel_request_open_reply_accept(message);
  if (!channel) return 0;
  f->bridges->push_back(std::make_unique<Bridge>(channel, std::move(*socket)));
  ++*f->bridged;
  return 0;
}

}  // namespace

Result<std::unique_ptr<TunnelAgent>> TunnelAgent::create(const TunnelAgentOptions& options) {
  if (auto hp = split_host_port(options.proxy_addr); !hp)
    return Error::of(Errc::invalid_argument, "proxy address: " + hp.error().message);
  if (auto hp = split_host_port(options.local_ssh_addr); !hp)
    return Error::of(Errc::invalid_argument, "local SSH address: " + hp.error().message);
  if (options.min_backoff_ms <= 0 || options.max_backoff_ms < options.min_backoff_ms)
    return Error::of(Errc::invalid_argument, "the backoff must be 0 < min <= max");
  std::unique_ptr<TunnelAgent> agent(new TunnelAgent());
  agent->options_ = options;
  ssh_key key = nullptr;
  if (ssh_pki_import_privkey_file(options.host_key_path.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK)
    return Error::of(Errc::invalid_argument,
                     options.host_key_path + ": cannot read the node's host key (an OpenSSH private key?)");
  agent->key_ = key;
  ssh_key cert = nullptr;
  if (ssh_pki_import_cert_file(options.host_cert_path.c_str(), &cert) != SSH_OK)
    return Error::of(Errc::invalid_argument,
                     options.host_cert_path + ": cannot read the node's host certificate");
  int rc = ssh_pki_copy_cert_to_privkey(cert, key);
  ssh_key_free(cert);
  if (rc != SSH_OK)
    return Error::of(Errc::invalid_argument,
                     options.host_cert_path + ": the certificate is not for the key in " +
                         options.host_key_path);
  std::istringstream line(options.proxy_host_key);
  std::string type, b64;
  line >> type >> b64;
  ssh_key proxy_key = nullptr;
  if (b64.empty() ||
      ssh_pki_import_pubkey_base64(b64.c_str(), ssh_key_type_from_name(type.c_str()), &proxy_key) != SSH_OK)
    return Error::of(Errc::invalid_argument,
                     "the proxy's host key must be one line \"ssh-ed25519 AAAA...\"");
  agent->proxy_key_ = proxy_key;
  return agent;
}

TunnelAgent::~TunnelAgent() {
  if (key_) ssh_key_free(static_cast<ssh_key>(key_));
  if (proxy_key_) ssh_key_free(static_cast<ssh_key>(proxy_key_));
}

Result<void> TunnelAgent::hold_once(const std::atomic<bool>& stop) {
  auto where = split_host_port(options_.proxy_addr);
  Session session;
  if (!session.s) return Error::of(Errc::resource_exhausted, "cannot make an SSH session");
  ssh_session s = session.s;
  int port = where->port;
  long timeout_s = std::max(1, options_.connect_timeout_ms / 1000);
  bool no = false;
  ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no);
  ssh_options_set(s, SSH_OPTIONS_HOST, where->host.c_str());
  ssh_options_set(s, SSH_OPTIONS_PORT, &port);
  ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout_s);
  ssh_options_set(s, SSH_OPTIONS_USER, "vigil-node");
  if (ssh_connect(s) != SSH_OK)
    return Error::of(Errc::unavailable, "cannot reach the proxy at " + options_.proxy_addr + ": " +
                                            ssh_get_error(s));
  ssh_key server_key = nullptr;
  if (ssh_get_server_publickey(s, &server_key) != SSH_OK)
    return Error::of(Errc::unauthenticated, "the proxy sent no host key");
  const bool pinned = ssh_key_cmp(server_key, static_cast<ssh_key>(proxy_key_), SSH_KEY_CMP_PUBLIC) == 0;
  ssh_key_free(server_key);
  if (!pinned)
    return Error::of(Errc::unauthenticated,
                     "the host at " + options_.proxy_addr +
                         " is not the proxy: its host key differs from the pinned one");
  if (ssh_userauth_publickey(s, nullptr, static_cast<ssh_key>(key_)) != SSH_AUTH_SUCCESS)
    return Error::of(Errc::unauthenticated,
                     "the proxy refused the node's host certificate (expired, or of another cluster?)");
  int bound = 0;
  if (ssh_channel_listen_forward(s, "", kNodePort, &bound) != SSH_OK)
    return Error::of(Errc::permission_denied,
                     std::string("the proxy refused the tunnel: ") + ssh_get_error(s));
  int fd = ssh_get_fd(s);
  int one = 1, idle = 30, interval = 10, count = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ++tunnels_held_;
  log::info("tunnel agent: tunnel to " + options_.proxy_addr + " is up");

  std::list<std::unique_ptr<Bridge>> bridges;
  Forwarding forwarding{&options_, &bridges, &channels_bridged_};
  ssh_set_message_callback(s, on_message, &forwarding);
  ssh_set_blocking(s, 0);
  ssh_event event = ssh_event_new();
  ssh_event_add_session(event, s);
  std::vector<pollfd> fds;
  bool more = false;
  while (!stop.load()) {
    fds.clear();
    short sev = POLLIN;
    if (ssh_get_poll_flags(s) & SSH_WRITE_PENDING) sev |= POLLOUT;
    fds.push_back({fd, sev, 0});
    for (auto& b : bridges) fds.push_back(b->poll_fd());
    if (poll(fds.data(), fds.size(), more ? 0 : 200) < 0 && errno != EINTR) break;
    if (ssh_event_dopoll(event, 0) == SSH_ERROR) break;
    more = false;
    for (auto it = bridges.begin(); it != bridges.end();) {
      more = (*it)->step() || more;
      it = (*it)->done() ? bridges.erase(it) : std::next(it);
    }
    if (!ssh_is_connected(s)) break;
  }
  bridges.clear();
  ssh_event_remove_session(event, s);
  ssh_event_free(event);
  log::info("tunnel agent: tunnel to " + options_.proxy_addr + " closed");
  return {};
}

void TunnelAgent::run(const std::atomic<bool>& stop) {
  int backoff = options_.min_backoff_ms;
  while (!stop.load()) {
    const uint64_t before = tunnels_held_;
    auto r = hold_once(stop);
    if (stop.load()) break;
    if (tunnels_held_ != before) backoff = options_.min_backoff_ms;  // it stood: start over
    if (!r) log::warn("tunnel agent: " + r.error().message + "; retrying in " +
                      std::to_string(backoff) + " ms");
    for (int waited = 0; waited < backoff && !stop.load(); waited += 50)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (tunnels_held_ == before) backoff = std::min(backoff * 2, options_.max_backoff_ms);
  }
}

}  // namespace vigil::proxy
