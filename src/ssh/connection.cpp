#include "ssh/connection.hpp"
#include "common/clock.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libssh/callbacks.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include <list>
#include <memory>

#include "audit/encode.hpp"
#include "audit/uuid.hpp"
#include "sshcert/authorize.hpp"
#include "sshcert/keys.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "ssh/channel.hpp"

namespace vigil::ssh {
namespace {

using AuthSummaries = std::vector<sshcert::RefusalAggregator<audit::AuthAttempt>::Summary>;
using RejectionSummaries = std::vector<sshcert::RefusalAggregator<audit::SessionRejection>::Summary>;

// Security events are synced: written and on stable storage before the
// client hears the answer.
void emit_synced(Node& node, const std::string& line) {
  if (auto r = node.log.emit(line, auditlog::Durability::sync); !r)
    log::error("ssh: audit log: " + r.error().message);
}

// A summary's sample spans first_time..time and stands for `count` refusals.
template <class Event, class Summary>
Event summarised(const Summary& s) {
  Event e = s.sample;
  if (e.first_time_ns == 0) e.first_time_ns = e.time_ns;
  e.count = s.count;
  return e;
}

void write_summaries(Node& node, const AuthSummaries& auths,
                     const RejectionSummaries& rejections) {
  std::string line;
  for (const auto& s : auths) {
    line.clear();
    audit::encode_auth(summarised<audit::AuthAttempt>(s), node.identity, audit::new_uuid(), line);
    emit_synced(node, line);
  }
  for (const auto& s : rejections) {
    line.clear();
    audit::encode_session_rejected(summarised<audit::SessionRejection>(s), node.identity,
                                   audit::new_uuid(), line);
    emit_synced(node, line);
  }
}

// An auth refusal, aggregated per source and reason.
void emit_auth(Node& node, const audit::AuthAttempt& attempt) {
  AuthSummaries evicted;
  // One kind per reason and method: a bounded set.
  bool now = node.auth_refusals.note(audit::address_only(attempt.remote_addr),
                                     attempt.reason + '\0' + attempt.method, attempt,
                                     clock::monotonic_ns(), &evicted);
  if (now) {
    log::info("ssh: refused " + attempt.login + " from " + attempt.remote_addr + ": " +
              attempt.reason);
    std::string line;
    audit::encode_auth(attempt, node.identity, audit::new_uuid(), line);
    emit_synced(node, line);
  }
  write_summaries(node, evicted, {});
}

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
    // What this source's refusals still have counted is written now, not
    // at some later window's end (nothing is left behind when the node stops).
    write_summaries(node_, node_.auth_refusals.take_source(peer_.ip),
                    node_.rejections.take_source(peer_.ip));
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

  // Every authentication request passes here first: false when the
  // connection has used up its attempts (the request is then refused
  // unexamined, and the connection ends after this poll round).
  bool begin_attempt(const std::string& login);
  // Audits why the connection ends after this poll round (once).
  void end_attempts(const std::string& login, const std::string& why);
  // A refusal: audited (synced, a security event; aggregated per source and
  // reason), counted toward MaxAuthTries and, when `counted`, by the limiter.
  void refuse(const std::string& user, const std::string& login, std::string reason,
              std::string message, std::optional<sshcert::Proof> counted,
              std::string method = "publickey");
  void audit_login(const sshcert::Identity& id, const std::string& login);
  int check_certificate(const char* login, ssh_key key, bool signed_attempt);
  void rejected(std::string reason, std::string request, std::string message, uint64_t max = 0);
  // Sends SSH_MSG_DISCONNECT and closes without a reset.
  void close_after_disconnect();
  // Summaries of refusal windows that have closed (any source's).
  void write_due() {
    const int64_t now = clock::monotonic_ns();
    write_summaries(node_, node_.auth_refusals.take_due(now), node_.rejections.take_due(now));
  }

  ssh_session session_;
  Node& node_;
  ssh_event event_ = nullptr;
  Peer peer_;
  ssh_server_callbacks_struct callbacks_{};
  std::optional<LoginContext> login_;
  int auth_requests_ = 0;  // every userauth request but a first "none"
  int auth_failures_ = 0;  // refused ones (sshd's MaxAuthTries counts these)
  bool too_many_attempts_ = false;
  // A list: SessionChannel registers its own address with libssh.
  std::list<std::unique_ptr<SessionChannel>> channels_;
};

bool Connection::begin_attempt(const std::string& login) {
  ++auth_requests_;
  if (auth_requests_ > node_.max_auth_requests)
    end_attempts(login, std::to_string(node_.max_auth_requests) +
                            " authentication requests on one connection");
  if (!too_many_attempts_) return true;
  refuse("", login, "too_many_attempts",
         "the connection has used up its authentication attempts", std::nullopt);
  return false;
}

void Connection::end_attempts(const std::string& login, const std::string& why) {
  if (too_many_attempts_) return;
  too_many_attempts_ = true;
  audit::AuthAttempt attempt;
  attempt.time_ns = clock::realtime_ns();
  attempt.login = login;
  attempt.remote_addr = peer_.addr;
  attempt.reason = "too_many_attempts";
  attempt.message = why + ": disconnecting";
  emit_auth(node_, attempt);
}

void Connection::refuse(const std::string& user, const std::string& login, std::string reason,
                        std::string message, std::optional<sshcert::Proof> counted,
                        std::string method) {
  if (counted) node_.limiter.failed(peer_.ip, clock::monotonic_ns(), *counted);
  audit::AuthAttempt attempt;
  attempt.time_ns = clock::realtime_ns();
  attempt.user = user;
  attempt.login = login;
  attempt.remote_addr = peer_.addr;
  attempt.reason = std::move(reason);
  attempt.message = std::move(message);
  attempt.method = std::move(method);
  emit_auth(node_, attempt);
  // sshd's MaxAuthTries: the connection ends once it has failed this often.
  if (++auth_failures_ >= node_.max_auth_tries)
    end_attempts(login, std::to_string(auth_failures_) +
                            " failed authentication attempts on one connection (MaxAuthTries)");
}

void Connection::audit_login(const sshcert::Identity& id, const std::string& login) {
  audit::AuthAttempt attempt;
  attempt.time_ns = clock::realtime_ns();
  attempt.success = true;
  attempt.user = id.user;
  attempt.login = login;
  attempt.remote_addr = peer_.addr;
  attempt.method = "publickey";
  attempt.key_id = id.user;
  attempt.cert_serial = id.serial;
  attempt.ca_fingerprint = id.ca_fingerprint;
  std::string line;
  audit::encode_auth(attempt, node_.identity, audit::new_uuid(), line);
  // Synced: a login is acknowledged only once it is on stable storage.
  if (auto r = node_.log.emit(line, auditlog::Durability::sync); !r)
    log::error("ssh: audit log: " + r.error().message);
}

void Connection::rejected(std::string reason, std::string request, std::string message,
                          uint64_t max) {
  if (!login_) return;  // libssh refuses channel traffic before login itself
  reject(node_, *login_, std::move(reason), std::move(request), std::move(message), max);
}

// Item 9 of issue 7: only attempts that could have succeeded count toward
// the limiter (a verified signature, or a certificate refused for a reason
// about the certificate), and a source blocked by probes still lets a
// certificate through that would be accepted: the probes proved no key.
int Connection::check_certificate(const char* login, ssh_key key, bool signed_attempt) {
  if (!begin_attempt(login)) return SSH_AUTH_DENIED;
  const sshcert::Proof proof = signed_attempt ? sshcert::Proof::signature : sshcert::Proof::probe;
  // Only a key holder's failures (signed) count for this; saves looking at
  // anything from a source that has run through them.
  if (!node_.limiter.allow(peer_.ip, clock::monotonic_ns(), sshcert::Proof::signature)) {
    refuse("", login, "rate_limited", "too many failed logins from " + peer_.ip + "; wait",
           std::nullopt);
    return SSH_AUTH_DENIED;
  }
  // A plain key's probe proves nothing: it is not counted (anyone can send
  // anyone's public key).
  const std::optional<sshcert::Proof> if_signed =
      signed_attempt ? std::optional(sshcert::Proof::signature) : std::nullopt;
  if (!ssh_key_is_public(key) || !ssh_key_type_to_char(ssh_key_type(key)) ||
      std::string_view(ssh_key_type_to_char(ssh_key_type(key))).find("-cert-v01@openssh.com") ==
          std::string_view::npos) {
    refuse("", login, "no_certificate",
           "plain public keys are not accepted: log in with an OpenSSH user certificate "
           "signed by a CA this node trusts",
           if_signed);
    return SSH_AUTH_DENIED;
  }
  // libssh hands the key over as an object; its base64 is the certificate's
  // wire blob, which vigil_sshcert reads itself.
  char* b64 = nullptr;
  if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
    refuse("", login, "malformed_certificate", "the certificate cannot be read", proof);
    return SSH_AUTH_DENIED;
  }
  auto line = sshcert::parse_key_line(std::string(ssh_key_type_to_char(ssh_key_type(key))) + " " + b64);
  ssh_string_free_char(b64);
  if (!line) {
    refuse("", login, "malformed_certificate", line.error().message, proof);
    return SSH_AUTH_DENIED;
  }
  const std::string& cert_blob = line->blob;
  auto result = sshcert::authorize_blob(cert_blob, node_.cas, login, clock::realtime_ns() / 1'000'000'000,
                                     peer_.ip);
  std::string key_id;
  if (auto cert = sshcert::parse_certificate(cert_blob)) key_id = cert->key_id;
  if (!result) {
    // Whoever makes a certificate chooses its key id: it names a user only
    // once a trusted CA's signature over it verified. Otherwise it is kept
    // in the message as a claim, never as the event's `user`.
    auto reason = result.refusal().reason;
    bool ca_verified = reason != sshcert::RefusalReason::malformed_certificate &&
                       reason != sshcert::RefusalReason::untrusted_ca &&
                       reason != sshcert::RefusalReason::weak_signature &&
                       reason != sshcert::RefusalReason::bad_signature;
    std::string user = ca_verified ? key_id : "";
    std::string claim = ca_verified || key_id.empty()
                            ? ""
                            : " (the certificate, not signed by a trusted CA, claims key id \"" +
                                  key_id.substr(0, 256) + "\")";
    // A source that probed too much gets no reasons for failing probes.
    if (!signed_attempt && !node_.limiter.allow(peer_.ip, clock::monotonic_ns(), proof)) {
      refuse(user, login, "rate_limited",
             "too many failed logins from " + peer_.ip + "; wait" + claim, std::nullopt);
      return SSH_AUTH_DENIED;
    }
    refuse(user, login, std::string(sshcert::refusal_name(reason)), result.refusal().message + claim,
           proof);
    return SSH_AUTH_DENIED;
  }
  auto account = credentials_for(login);
  if (!account) {
    refuse(key_id, login, "unknown_login", "no local account " + std::string(login) + " on this node",
           if_signed);
    return SSH_AUTH_DENIED;
  }
  // Without a signature the client only asks whether the key would do: it
  // proves nothing yet, so nobody is logged in.
  if (!signed_attempt) return SSH_AUTH_SUCCESS;
  node_.limiter.succeeded(peer_.ip, clock::monotonic_ns());
  audit_login(result.value(), login);
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
      // A signature that does not verify proves no key: not counted.
      if (!c->begin_attempt(user)) return SSH_AUTH_DENIED;
      c->refuse("", user, "bad_client_signature",
                "the client's signature does not verify with the offered key", std::nullopt);
      return SSH_AUTH_DENIED;
  }
}

// Methods that can never succeed here are refused, audited and counted
// toward MaxAuthTries, never by the limiter.
int Connection::on_password(ssh_session, const char* user, const char*, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (!c->begin_attempt(user)) return SSH_AUTH_DENIED;
  c->refuse("", user, "method_not_allowed",
            "password logins are not accepted: log in with an OpenSSH user certificate",
            std::nullopt, "password");
  return SSH_AUTH_DENIED;
}

ssh_channel Connection::on_channel_open(ssh_session, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (!c->login_) return nullptr;
  const size_t cap = c->node_.max_channels_per_connection;
  if (c->channels_.size() >= cap) {
    c->rejected("channel_limit", "session channel",
                "already " + std::to_string(c->channels_.size()) +
                    " sessions on this connection (as sshd's MaxSessions)",
                cap);
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
  if (type == SSH_REQUEST_AUTH) {
    const char* user = ssh_message_auth_user(message);
    std::string login = user ? user : "";
    // A client's first "none" asks which methods there are (sshd does not
    // count it either); any later one is an attempt like the others.
    if (subtype == SSH_AUTH_METHOD_NONE && c->auth_requests_ == 0) {
      ++c->auth_requests_;
      return 1;
    }
    if (!c->begin_attempt(login)) return 1;
    const char* method = subtype == SSH_AUTH_METHOD_INTERACTIVE ? "keyboard-interactive"
                         : subtype == SSH_AUTH_METHOD_NONE      ? "none"
                         : subtype == SSH_AUTH_METHOD_HOSTBASED ? "hostbased"
                         : subtype == SSH_AUTH_METHOD_GSSAPI_MIC ? "gssapi-with-mic"
                                                                 : "unknown";
    c->refuse("", login, "method_not_allowed",
              std::string(method) + " logins are not accepted: log in with an OpenSSH user "
              "certificate",
              std::nullopt, method);
    return 1;
  }
  if (type == SSH_REQUEST_CHANNEL_OPEN && subtype == SSH_CHANNEL_DIRECT_TCPIP) {
    const char* host = ssh_message_channel_request_open_destination(message);
    c->rejected("port_forwarding",
                "direct-tcpip " + std::string(host ? host : "?") + ":" +
                    std::to_string(ssh_message_channel_request_open_destination_port(message)),
                "port forwarding (-L, -D) is not allowed on this node");
  } else if (type == SSH_REQUEST_CHANNEL_OPEN) {
    const char* kind = subtype == SSH_CHANNEL_FORWARDED_TCPIP ? "forwarded-tcpip"
                       : subtype == SSH_CHANNEL_X11           ? "x11"
                       : subtype == SSH_CHANNEL_AUTH_AGENT    ? "auth-agent@openssh.com"
                                                              : "unknown";
    c->rejected("channel_type", std::string(kind) + " channel",
                "this channel type is not allowed on this node (only session channels)");
  } else if (type == SSH_REQUEST_GLOBAL && subtype == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
    const char* addr = ssh_message_global_request_address(message);
    c->rejected("remote_port_forwarding",
                "tcpip-forward " + std::string(addr ? addr : "?") + ":" +
                    std::to_string(ssh_message_global_request_port(message)),
                "remote port forwarding (-R) is not allowed on this node");
  } else if (type == SSH_REQUEST_CHANNEL && subtype == SSH_CHANNEL_REQUEST_X11) {
    c->rejected("x11_forwarding", "x11-req", "X11 forwarding is not allowed on this node");
  } else if (type == SSH_REQUEST_CHANNEL && subtype == SSH_CHANNEL_REQUEST_UNKNOWN) {
    // libssh does not say which request it was.
    c->rejected("channel_request", "unknown channel request",
                "this channel request is not supported on this node");
  }
  return 1;
}

// A client that is still sending (its next attempt is on the way) would get
// a TCP reset from a plain close, and a reset makes it drop the
// DISCONNECT it has not read yet: the user would see "Connection reset"
// instead of why. So the socket is kept open past libssh's close, shut for
// writing after the DISCONNECT, and read until the client closes (bounded
// in time and bytes).
void Connection::close_after_disconnect() {
  Fd socket(fcntl(ssh_get_fd(session_), F_DUPFD_CLOEXEC, 0));
  if (socket) {
    // libssh only queues a packet unless its last poll found the socket
    // writable, and nothing polls after ssh_disconnect: say that it is.
    pollfd p{socket.get(), POLLOUT, 0};
    if (poll(&p, 1, 1000) == 1 && (p.revents & POLLOUT)) ssh_set_fd_towrite(session_);
  }
  ssh_disconnect(session_);
  if (!socket) return;
  shutdown(socket.get(), SHUT_WR);
  char buf[4096];
  size_t drained = 0;
  const int64_t until = clock::monotonic_ns() + 2'000'000'000;
  while (drained < (1u << 20)) {
    int64_t left_ms = (until - clock::monotonic_ns()) / 1'000'000;
    pollfd p{socket.get(), POLLIN, 0};
    if (left_ms <= 0 || poll(&p, 1, static_cast<int>(left_ms)) <= 0) break;
    ssize_t n = read(socket.get(), buf, sizeof buf);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
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
    write_due();
    if (too_many_attempts_) {
      // As sshd: the client is told why (OpenSSH prints it) and the connection ends.
      ssh_session_set_disconnect_message(session_, "Too many authentication failures");
      close_after_disconnect();
      return;
    }
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
    write_due();
    for (auto it = channels_.begin(); it != channels_.end();) {
      (*it)->step();
      it = (*it)->done() ? channels_.erase(it) : std::next(it);
    }
    if (rc == SSH_ERROR || !ssh_is_connected(session_)) break;
  }
  // Dropped or stopping: ~SessionChannel kills what runs and closes the sessions.
}

}  // namespace

void reject(Node& node, const LoginContext& login, std::string reason, std::string request,
            std::string message, uint64_t max) {
  audit::SessionRejection r;
  r.time_ns = clock::realtime_ns();
  r.user = login.user;
  r.login = login.account.name;
  r.remote_addr = login.remote_addr;
  r.reason = std::move(reason);
  r.request = std::move(request);
  r.message = std::move(message);
  r.max = max;
  // Per user too: two users behind one address are not summed together.
  std::string kind = r.reason + '\0' + r.user + '\0' + r.login;
  RejectionSummaries evicted;
  bool now = node.rejections.note(audit::address_only(r.remote_addr), kind, r,
                                  clock::monotonic_ns(), &evicted);
  if (now) {
    // Logged with the event: a flood of refusals is summed, not logged line by line.
    log::warn("ssh: " + r.remote_addr + ": " + r.user + ": " + r.request + " refused: " +
              r.message);
    std::string line;
    audit::encode_session_rejected(r, node.identity, audit::new_uuid(), line);
    emit_synced(node, line);
  }
  write_summaries(node, {}, evicted);
}

void serve_connection(ssh_session session, Node& node) {
  Connection connection(session, node);
  connection.serve();
}

}  // namespace vigil::ssh
