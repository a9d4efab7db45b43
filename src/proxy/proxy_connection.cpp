#include "proxy/proxy_connection.hpp"

#include <libssh/callbacks.h>
#include <libssh/server.h>
#include <poll.h>

#include <list>
#include <memory>
#include <optional>
#include <vector>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "proxy/bridge.hpp"
#include "proxy/host_auth.hpp"
#include "proxy/net.hpp"
#include "sshcert/authorize.hpp"
#include "sshcert/keys.hpp"

namespace vigil::proxy {
namespace {

int64_t now_unix() { return clock::realtime_ns() / 1'000'000'000; }

// The certificate blob of the key a client offered, or why there is none.
Result<std::string> certificate_blob(ssh_key key) {
  const char* type = ssh_key_type_to_char(ssh_key_type(key));
  if (!type || std::string_view(type).find("-cert-v01@openssh.com") == std::string_view::npos)
    return Error::of(Errc::unauthenticated,
                     "no_certificate: plain public keys are not accepted: log in with an "
                     "OpenSSH certificate signed by the cluster's CA (`vsh login`)");
  char* b64 = nullptr;
  if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
    return Error::of(Errc::unauthenticated, "malformed_certificate: the certificate cannot be read");
  auto line = sshcert::parse_key_line(std::string(type) + " " + b64);
  ssh_string_free_char(b64);
  if (!line) return Error::of(Errc::unauthenticated, "malformed_certificate: " + line.error().message);
  return std::move(line->blob);
}

struct PendingOpen {
  ssh_channel channel;
  std::shared_ptr<TunnelOpen> request;
};

class Connection {
 public:
  Connection(ssh_session session, Proxy& proxy, bool tunnel)
      : session_(session), proxy_(proxy), tunnel_mode_(tunnel) {}
  ~Connection() {
    for (auto& p : opening_) {
      ssh_channel_free(p.channel);
      p.request->result.set_value("the node's tunnel closed");
    }
    for (auto& b : bridges_) proxy_.stats.bytes_relayed += b->bytes_to_channel() + b->bytes_to_socket();
    bridges_.clear();
    if (tunnel_) proxy_.tunnels.remove(who_, tunnel_);
    if (event_) {
      ssh_event_remove_session(event_, session_);
      ssh_event_free(event_);
    }
    ssh_disconnect(session_);
    ssh_free(session_);
  }

  void serve();

 private:
  static int on_pubkey(ssh_session, const char* user, ssh_key key, char state, void* self);
  static ssh_channel on_session_open(ssh_session, void* self);
  static int on_message(ssh_session, ssh_message message, void* self);

  const char* side() const { return tunnel_mode_ ? "proxy tunnel" : "proxy"; }
  // A refused login; the connection ends after max_auth_tries of them.
  int refuse_auth(const std::string& login, const std::string& why);
  // A refused request: counted, logged, and told to the client as an
  // SSH_MSG_DEBUG (OpenSSH shows it with -v): libssh 0.10 cannot put a
  // message in the CHANNEL_OPEN_FAILURE it sends.
  int refuse_request(std::atomic<uint64_t>& counter, const std::string& what, const std::string& why);
  int direct_tcpip(ssh_message message);
  int tcpip_forward(ssh_message message);
  void take_tunnel_requests();
  void step_opening();

  ssh_session session_;
  Proxy& proxy_;
  bool tunnel_mode_;
  ssh_event event_ = nullptr;
  ssh_server_callbacks_struct callbacks_{};
  PeerAddress peer_;
  bool authed_ = false;
  std::string who_;          // jump: the Vigil user (key id); tunnel: the node uuid
  int64_t valid_before_ = 0; // the certificate's end
  int failures_ = 0;
  std::list<std::unique_ptr<Bridge>> bridges_;
  // Tunnel mode.
  std::shared_ptr<Tunnel> tunnel_;
  std::string forward_addr_;
  uint32_t forward_port_ = kNodePort;
  std::vector<PendingOpen> opening_;
};

int Connection::refuse_auth(const std::string& login, const std::string& why) {
  ++proxy_.stats.auth_refused;
  ++failures_;
  log::warn(std::string(side()) + ": " + peer_.text() + ": login " + login + " refused: " + why);
  return SSH_AUTH_DENIED;
}

int Connection::refuse_request(std::atomic<uint64_t>& counter, const std::string& what,
                               const std::string& why) {
  ++counter;
  log::warn(std::string(side()) + ": " + peer_.text() + " (" + who_ + "): " + what + " refused: " + why);
  ssh_send_debug(session_, ("vigil proxy: " + what + " refused: " + why).c_str(), 1);
  return 1;  // libssh answers with the refusal
}

int Connection::on_pubkey(ssh_session, const char* user, ssh_key key, char state, void* self) {
  auto* c = static_cast<Connection*>(self);
  const std::string login = user ? user : "";
  if (c->failures_ >= c->proxy_.max_auth_tries) return SSH_AUTH_DENIED;
  if (state != SSH_PUBLICKEY_STATE_NONE && state != SSH_PUBLICKEY_STATE_VALID)
    return c->refuse_auth(login, "bad_client_signature: the signature does not verify with the offered key");
  auto blob = certificate_blob(key);
  if (!blob) return c->refuse_auth(login, blob.error().message);
  std::string who;
  int64_t valid_before = 0;
  if (c->tunnel_mode_) {
    auto uuid = authorize_node_certificate(*blob, c->proxy_.host_cas, now_unix());
    if (!uuid) return c->refuse_auth(login, uuid.error().message);
    who = *uuid;
    auto cert = sshcert::parse_certificate(*blob);
    valid_before = cert->valid_before > uint64_t{INT64_MAX} ? INT64_MAX
                                                            : static_cast<int64_t>(cert->valid_before);
  } else {
    // The hop's login is not an account: any principal of a valid
    // certificate stands for it, so every other check still applies.
    auto cert = sshcert::parse_certificate(*blob);
    std::string principal = cert && !cert->principals.empty() ? cert->principals.front() : login;
    auto id = sshcert::authorize_blob(*blob, c->proxy_.user_cas, principal, now_unix(), c->peer_.ip);
    if (!id) return c->refuse_auth(login, id.error().message);
    who = id->user;
    valid_before = id->valid_before;
  }
  // A probe without a signature proves nothing: it only learns the key would do.
  if (state == SSH_PUBLICKEY_STATE_NONE) return SSH_AUTH_SUCCESS;
  c->authed_ = true;
  c->who_ = who;
  c->valid_before_ = valid_before;
  if (!c->tunnel_mode_) ++c->proxy_.stats.logins;
  log::info(std::string(c->side()) + ": " + who + " logged in from " + c->peer_.text());
  return SSH_AUTH_SUCCESS;
}

ssh_channel Connection::on_session_open(ssh_session, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (c->authed_)
    c->refuse_request(c->proxy_.stats.requests_refused, "session channel (shell, exec, subsystem)",
                      "the proxy only forwards to nodes: use ssh -J PROXY LOGIN@NODE");
  return nullptr;
}

int Connection::direct_tcpip(ssh_message message) {
  const char* host = ssh_message_channel_request_open_destination(message);
  const int port = ssh_message_channel_request_open_destination_port(message);
  const std::string target = host ? host : "";
  const std::string what = "direct-tcpip to " + target + ":" + std::to_string(port);
  if (tunnel_mode_)
    return refuse_request(proxy_.stats.requests_refused, what, "a tunnel connection only carries its node's channels");
  if (bridges_.size() >= proxy_.max_channels_per_connection)
    return refuse_request(proxy_.stats.channels_refused, what,
                          "already " + std::to_string(bridges_.size()) +
                              " channels on this connection; open another connection");
  auto route = proxy_.nodes.resolve(target, port < 0 ? 0 : static_cast<uint32_t>(port));
  if (!route) return refuse_request(proxy_.stats.channels_refused, what, route.error().message);
  Result<Fd> socket = route->tunnel
                          ? proxy_.tunnels.open(route->uuid, peer_.ip, peer_.port)
                          : dial(route->address, proxy_.dial_timeout_ms);
  if (!socket) return refuse_request(proxy_.stats.channels_refused, what, socket.error().message);
  if (proxy_.sign_origin) {
    // Before any byte of the client's: the node reads it first.
    auto header = proxy_.sign_origin(peer_.ip, static_cast<uint16_t>(peer_.port), route->uuid);
    if (!header)
      return refuse_request(proxy_.stats.channels_refused, what,
                            "cannot say where the connection comes from: " + header.error().message);
    if (auto sent = send_all(socket->get(), *header, proxy_.dial_timeout_ms); !sent)
      return refuse_request(proxy_.stats.channels_refused, what, sent.error().message);
  }
  ssh_channel channel = ssh_message_channel_request_open_reply_accept(message);
  if (!channel) {
    ++proxy_.stats.channels_refused;
    return 0;
  }
  ++proxy_.stats.channels_opened;
  log::info("proxy: " + who_ + " from " + peer_.text() + " -> node " + route->name + " (" +
            (route->tunnel ? "tunnel" : route->address) + ")");
  bridges_.push_back(std::make_unique<Bridge>(channel, std::move(*socket)));
  return 0;
}

int Connection::tcpip_forward(ssh_message message) {
  const char* addr = ssh_message_global_request_address(message);
  const int port = ssh_message_global_request_port(message);
  if (!tunnel_mode_)
    return refuse_request(proxy_.stats.requests_refused,
                          "tcpip-forward " + std::string(addr ? addr : "") + ":" + std::to_string(port),
                          "remote port forwarding (-R) is not allowed on the proxy");
  forward_addr_ = addr ? addr : "";
  forward_port_ = port > 0 ? static_cast<uint32_t>(port) : kNodePort;
  if (!tunnel_) {
    tunnel_ = proxy_.tunnels.add(who_);
    ++proxy_.stats.tunnels_registered;
    log::info("proxy tunnel: node " + who_ + " holds a tunnel from " + peer_.text());
  }
  ssh_message_global_request_reply_success(message, static_cast<uint16_t>(forward_port_));
  return 0;
}

int Connection::on_message(ssh_session, ssh_message message, void* self) {
  auto* c = static_cast<Connection*>(self);
  const int type = ssh_message_type(message);
  const int subtype = ssh_message_subtype(message);
  if (type == SSH_REQUEST_AUTH) {
    // A first "none" asks which methods there are.
    if (subtype == SSH_AUTH_METHOD_NONE) return 1;
    const char* user = ssh_message_auth_user(message);
    c->refuse_auth(user ? user : "", "method_not_allowed: only OpenSSH certificates are accepted");
    return 1;
  }
  if (!c->authed_) return 1;
  if (type == SSH_REQUEST_CHANNEL_OPEN && subtype == SSH_CHANNEL_DIRECT_TCPIP)
    return c->direct_tcpip(message);
  if (type == SSH_REQUEST_GLOBAL && subtype == SSH_GLOBAL_REQUEST_TCPIP_FORWARD)
    return c->tcpip_forward(message);
  if (type == SSH_REQUEST_GLOBAL && subtype == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD) return 1;
  if (type == SSH_REQUEST_CHANNEL_OPEN) {
    const char* kind = subtype == SSH_CHANNEL_FORWARDED_TCPIP ? "forwarded-tcpip channel"
                       : subtype == SSH_CHANNEL_X11           ? "x11 channel"
                       : subtype == SSH_CHANNEL_AUTH_AGENT    ? "agent channel"
                                                              : "channel";
    return c->refuse_request(c->proxy_.stats.requests_refused, kind,
                             "the proxy only opens direct-tcpip channels to nodes");
  }
  if (type == SSH_REQUEST_GLOBAL) {
    // keepalive@openssh.com and the like: refused quietly, as OpenSSH expects.
    return 1;
  }
  return c->refuse_request(c->proxy_.stats.requests_refused, "request",
                           "the proxy only opens direct-tcpip channels to nodes");
}

void Connection::take_tunnel_requests() {
  for (auto& request : tunnel_->take()) {
    ssh_channel channel = ssh_channel_new(session_);
    if (!channel) {
      request->result.set_value("cannot make a channel on the tunnel");
      continue;
    }
    opening_.push_back({channel, std::move(request)});
  }
}

// ssh_channel_open_reverse_forward on a non-blocking session answers
// SSH_AGAIN until the node confirms or refuses; it is called again with the
// same arguments each round.
void Connection::step_opening() {
  for (auto it = opening_.begin(); it != opening_.end();) {
    int rc = ssh_channel_open_reverse_forward(it->channel, forward_addr_.c_str(),
                                              static_cast<int>(forward_port_),
                                              it->request->originator.c_str(),
                                              static_cast<int>(it->request->originator_port));
    if (rc == SSH_AGAIN) {
      ++it;
      continue;
    }
    if (rc == SSH_OK) {
      bridges_.push_back(std::make_unique<Bridge>(it->channel, std::move(it->request->end)));
      it->request->result.set_value("");
    } else {
      ssh_channel_free(it->channel);
      it->request->result.set_value("the node refused the channel (is its SSH service up?)");
    }
    it = opening_.erase(it);
  }
}

void Connection::serve() {
  peer_ = peer_address(ssh_get_fd(session_));
  long timeout = proxy_.login_grace_seconds;
  ssh_options_set(session_, SSH_OPTIONS_TIMEOUT, &timeout);
  ssh_set_auth_methods(session_, SSH_AUTH_METHOD_PUBLICKEY);
  callbacks_.userdata = this;
  callbacks_.auth_pubkey_function = on_pubkey;
  callbacks_.channel_open_request_session_function = on_session_open;
  ssh_callbacks_init(&callbacks_);
  ssh_set_server_callbacks(session_, &callbacks_);
  ssh_set_message_callback(session_, on_message, this);

  if (ssh_handle_key_exchange(session_) != SSH_OK) {
    log::debug(std::string(side()) + ": " + peer_.text() + ": key exchange failed: " + ssh_get_error(session_));
    return;
  }
  event_ = ssh_event_new();
  if (!event_ || ssh_event_add_session(event_, session_) != SSH_OK) return;
  const int64_t deadline = clock::monotonic_ns() + int64_t{proxy_.login_grace_seconds} * 1'000'000'000;
  while (!authed_) {
    if (proxy_.stopping || clock::monotonic_ns() > deadline) return;
    if (failures_ >= proxy_.max_auth_tries) {
      ssh_session_set_disconnect_message(session_, "Too many authentication failures");
      return;
    }
    if (ssh_event_dopoll(event_, 100) == SSH_ERROR) return;
  }

  ssh_set_blocking(session_, 0);
  std::vector<pollfd> fds;
  bool more = false;
  while (!proxy_.stopping) {
    // Nothing may outlive the certificate that let it in.
    if (now_unix() >= valid_before_) {
      log::info(std::string(side()) + ": " + who_ + ": certificate expired: ending the connection");
      break;
    }
    fds.clear();
    const int sfd = ssh_get_fd(session_);
    short sev = POLLIN;
    if (ssh_get_poll_flags(session_) & SSH_WRITE_PENDING) sev |= POLLOUT;
    fds.push_back({sfd, sev, 0});
    if (tunnel_) fds.push_back({tunnel_->wake_fd(), POLLIN, 0});
    for (auto& b : bridges_) fds.push_back(b->poll_fd());
    const int wait_ms = more ? 0 : !opening_.empty() ? 10 : 200;
    if (poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR) break;
    if (ssh_event_dopoll(event_, 0) == SSH_ERROR) break;
    if (tunnel_) take_tunnel_requests();
    if (!opening_.empty()) step_opening();
    more = false;
    for (auto it = bridges_.begin(); it != bridges_.end();) {
      more = (*it)->step() || more;
      if ((*it)->done()) {
        proxy_.stats.bytes_relayed += (*it)->bytes_to_channel() + (*it)->bytes_to_socket();
        it = bridges_.erase(it);
      } else {
        ++it;
      }
    }
    if (!ssh_is_connected(session_)) break;
  }
}

}  // namespace

void serve_jump(ssh_session session, Proxy& proxy) {
  Connection c(session, proxy, false);
  c.serve();
}

void serve_tunnel(ssh_session session, Proxy& proxy) {
  Connection c(session, proxy, true);
  c.serve();
}

}  // namespace vigil::proxy
