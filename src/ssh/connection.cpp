#include "ssh/connection.hpp"
#include "common/clock.hpp"

#include <arpa/inet.h>
#include <libssh/callbacks.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <list>
#include <memory>

#include "audit/encode.hpp"
#include "audit/uuid.hpp"
#include "auth/authorize.hpp"
#include "auth/keys.hpp"
#include "common/log.hpp"
#include "ssh/channel.hpp"

namespace vigil::ssh {
namespace {



struct Peer {
  std::string ip;    // for the certificate's source-address and the rate limiter
  std::string addr;  // "ip:port" for the audit log
};

Peer peer_of(int fd) {
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  char ip[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
    if (sa.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&sa);
      inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
      port = ntohs(in->sin_port);
    } else if (sa.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
      inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
      port = ntohs(in6->sin6_port);
    }
  }
  std::string text = ip;
  // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
  if (text.rfind("::ffff:", 0) == 0 && text.find('.') != std::string::npos) text = text.substr(7);
  std::string addr = text.find(':') != std::string::npos
                         ? "[" + text + "]:" + std::to_string(port)
                         : text + ":" + std::to_string(port);
  return {text, addr};
}

class Connection {
 public:
  Connection(ssh_session session, Node& node) : session_(session), node_(node) {}
  ~Connection() {
    channels_.clear();  // aborts what still runs before the session goes
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
  static int on_password(ssh_session, const char* user, const char* password, void* self);
  static ssh_channel on_channel_open(ssh_session, void* self);
  static int on_message(ssh_session, ssh_message message, void* self);

  // A refusal: audited (synced, a security event), counted by the limiter.
  void refuse(const std::string& user, const std::string& login, std::string reason,
              std::string message);
  int check_certificate(const char* login, ssh_key key, bool signed_attempt);

  ssh_session session_;
  Node& node_;
  ssh_event event_ = nullptr;
  Peer peer_;
  ssh_server_callbacks_struct callbacks_{};
  std::optional<LoginContext> login_;
  // A list: SessionChannel registers its own address with libssh.
  std::list<std::unique_ptr<SessionChannel>> channels_;
};

void Connection::refuse(const std::string& user, const std::string& login, std::string reason,
                        std::string message) {
  if (reason != "rate_limited") node_.limiter.failed(peer_.ip, clock::monotonic_ns());
  audit::AuthAttempt attempt;
  attempt.time_ns = clock::realtime_ns();
  attempt.user = user;
  attempt.login = login;
  attempt.remote_addr = peer_.addr;
  attempt.reason = std::move(reason);
  attempt.message = std::move(message);
  std::string line;
  audit::encode_auth(attempt, node_.identity, audit::new_uuid(), line);
  if (auto r = node_.log.emit(line, auditlog::Durability::sync); !r)
    log::error("ssh: audit log: " + r.error().message);
  log::info("ssh: refused " + login + " from " + peer_.addr + ": " + attempt.reason);
}

int Connection::check_certificate(const char* login, ssh_key key, bool signed_attempt) {
  if (!node_.limiter.allow(peer_.ip, clock::monotonic_ns())) {
    refuse("", login, "rate_limited", "too many failed logins from " + peer_.ip + "; wait");
    return SSH_AUTH_DENIED;
  }
  if (!ssh_key_is_public(key) || !ssh_key_type_to_char(ssh_key_type(key)) ||
      std::string_view(ssh_key_type_to_char(ssh_key_type(key))).find("-cert-v01@openssh.com") ==
          std::string_view::npos) {
    refuse("", login, "no_certificate",
           "plain public keys are not accepted: log in with an OpenSSH user certificate "
           "signed by a CA this node trusts");
    return SSH_AUTH_DENIED;
  }
  // libssh hands the key over as an object; its base64 is the certificate's
  // wire blob, which vigil_auth reads itself.
  char* b64 = nullptr;
  if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
    refuse("", login, "malformed_certificate", "the certificate cannot be read");
    return SSH_AUTH_DENIED;
  }
  auto line = auth::parse_key_line(std::string(ssh_key_type_to_char(ssh_key_type(key))) + " " + b64);
  ssh_string_free_char(b64);
  if (!line) {
    refuse("", login, "malformed_certificate", line.error().message);
    return SSH_AUTH_DENIED;
  }
  const std::string& cert_blob = line->blob;
  auto result = auth::authorize_blob(cert_blob, node_.cas, login, clock::realtime_ns() / 1'000'000'000,
                                     peer_.ip);
  std::string key_id;
  if (auto cert = auth::parse_certificate(cert_blob)) key_id = cert->key_id;
  if (!result) {
    refuse(key_id, login, std::string(auth::refusal_name(result.refusal().reason)),
           result.refusal().message);
    return SSH_AUTH_DENIED;
  }
  auto account = credentials_for(login);
  if (!account) {
    refuse(key_id, login, "unknown_login", "no local account " + std::string(login) + " on this node");
    return SSH_AUTH_DENIED;
  }
  // Without a signature the client only asks whether the key would do: it
  // proves nothing yet, so nobody is logged in.
  if (!signed_attempt) return SSH_AUTH_SUCCESS;
  node_.limiter.succeeded(peer_.ip, clock::monotonic_ns());
  LoginContext ctx;
  ctx.user = result->user;
  ctx.account = std::move(account.value());
  ctx.kinds = result->recorded_kinds.value_or(node_.default_kinds);
  ctx.force_command = result->force_command;
  for (const auto& ext : result->extensions)
    if (ext == "permit-pty") ctx.permit_pty = true;
  ctx.valid_before = result->valid_before;
  ctx.remote_addr = peer_.addr;
  login_ = std::move(ctx);
  log::info("ssh: " + login_->user + " logged in as " + std::string(login) + " from " + peer_.addr);
  return SSH_AUTH_SUCCESS;
}

int Connection::on_pubkey(ssh_session, const char* user, ssh_key key, char state, void* self) {
  auto* c = static_cast<Connection*>(self);
  switch (state) {
    case SSH_PUBLICKEY_STATE_NONE: return c->check_certificate(user, key, false);
    // libssh verified the client's signature with the certified key.
    case SSH_PUBLICKEY_STATE_VALID: return c->check_certificate(user, key, true);
    default:
      c->refuse("", user, "bad_client_signature",
                "the client's signature does not verify with the offered key");
      return SSH_AUTH_DENIED;
  }
}

int Connection::on_password(ssh_session, const char* user, const char*, void* self) {
  static_cast<Connection*>(self)->refuse(
      "", user, "method_not_allowed",
      "password logins are not accepted: log in with an OpenSSH user certificate");
  return SSH_AUTH_DENIED;
}

ssh_channel Connection::on_channel_open(ssh_session, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (!c->login_) return nullptr;
  if (c->channels_.size() >= c->node_.max_channels_per_connection) {
    log::warn("ssh: " + c->peer_.addr + ": channel refused: already " +
              std::to_string(c->channels_.size()) + " sessions on this connection");
    return nullptr;
  }
  c->channels_.push_back(
      std::make_unique<SessionChannel>(c->node_, *c->login_, c->session_, c->event_));
  return c->channels_.back()->handle();
}

// What no callback handles arrives here; returning 1 lets libssh refuse it.
int Connection::on_message(ssh_session, ssh_message message, void* self) {
  auto* c = static_cast<Connection*>(self);
  int type = ssh_message_type(message);
  int subtype = ssh_message_subtype(message);
  std::string what;
  if (type == SSH_REQUEST_AUTH && subtype == SSH_AUTH_METHOD_INTERACTIVE) {
    c->refuse("", ssh_message_auth_user(message), "method_not_allowed",
              "keyboard-interactive logins are not accepted: log in with an OpenSSH user "
              "certificate");
  } else if (type == SSH_REQUEST_CHANNEL_OPEN && subtype == SSH_CHANNEL_DIRECT_TCPIP) {
    what = "port forwarding (-L, -D) is not allowed on this node";
  } else if (type == SSH_REQUEST_CHANNEL_OPEN) {
    what = "this channel type is not allowed on this node";
  } else if (type == SSH_REQUEST_GLOBAL && subtype == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
    what = "remote port forwarding (-R) is not allowed on this node";
  } else if (type == SSH_REQUEST_CHANNEL && subtype == SSH_CHANNEL_REQUEST_X11) {
    what = "X11 forwarding is not allowed on this node";
  } else if (type == SSH_REQUEST_CHANNEL && subtype == SSH_CHANNEL_REQUEST_UNKNOWN) {
    what = "agent forwarding and other channel requests are not allowed on this node";
  }
  if (!what.empty()) log::warn("ssh: " + c->peer_.addr + ": refused: " + what);
  return 1;
}

void Connection::serve() {
  peer_ = peer_of(ssh_get_fd(session_));
  // Bounds the blocking key exchange: a client that stalls in it holds only
  // this thread, and only for this long.
  long timeout = node_.login_grace_seconds;
  ssh_options_set(session_, SSH_OPTIONS_TIMEOUT, &timeout);
  ssh_set_auth_methods(session_, SSH_AUTH_METHOD_PUBLICKEY);
  callbacks_.userdata = this;
  callbacks_.auth_pubkey_function = on_pubkey;
  callbacks_.auth_password_function = on_password;
  callbacks_.channel_open_request_session_function = on_channel_open;
  ssh_callbacks_init(&callbacks_);
  ssh_set_server_callbacks(session_, &callbacks_);
  ssh_set_message_callback(session_, on_message, this);

  if (ssh_handle_key_exchange(session_) != SSH_OK) {
    log::debug("ssh: " + peer_.addr + ": key exchange failed: " + ssh_get_error(session_));
    return;
  }
  event_ = ssh_event_new();
  if (!event_ || ssh_event_add_session(event_, session_) != SSH_OK) return;

  int64_t deadline = clock::monotonic_ns() + int64_t{node_.login_grace_seconds} * 1'000'000'000;
  while (!login_) {
    if (node_.stopping || clock::monotonic_ns() > deadline) return;
    if (ssh_event_dopoll(event_, 100) == SSH_ERROR) return;
  }
  // From here on nothing may wait for the client: libssh sends what the
  // channel windows admit and keeps the rest (channel.cpp), so a client that
  // stops reading stalls only its own sessions' output, never this thread.
  ssh_set_blocking(session_, 0);
  while (!node_.stopping) {
    // A session must not outlive the certificate that let it in (sshd too
    // ends the connection then).
    if (clock::realtime_ns() / 1'000'000'000 >= login_->valid_before) {
      log::info("ssh: " + login_->user + " from " + peer_.addr +
                ": certificate expired: ending the connection");
      for (auto& channel : channels_) channel->notify("vigil: your certificate has expired");
      break;
    }
    int rc = ssh_event_dopoll(event_, 100);
    for (auto it = channels_.begin(); it != channels_.end();) {
      (*it)->step();
      it = (*it)->done() ? channels_.erase(it) : std::next(it);
    }
    if (rc == SSH_ERROR || !ssh_is_connected(session_)) break;
  }
  // Dropped or stopping: ~SessionChannel kills what runs and closes the sessions.
}

}  // namespace

void serve_connection(ssh_session session, Node& node) {
  Connection connection(session, node);
  connection.serve();
}

}  // namespace vigil::ssh
