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

#include <algorithm>
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

}  // namespace

// The front end's own idea of its peer (for its first check of
// source-address and its log); the monitor takes its own from accept().
privsep::Peer peer_of(int fd) {
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

namespace {

using Peer = privsep::Peer;

privsep::Counted counted_as(const std::optional<sshcert::Proof>& proof) {
  if (!proof) return privsep::Counted::no;
  return *proof == sshcert::Proof::probe ? privsep::Counted::probe : privsep::Counted::signature;
}

class Connection {
 public:
  Connection(ssh_session session, Node& node) : session_(session), node_(node) {}
  ~Connection() {
    end_sessions();
    channels_.clear();
    if (event_) {
      if (monitor_polled_) ssh_event_remove_fd(event_, node_.monitor.fd());
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
  static int on_monitor(int fd, int revents, void* self);

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
  int check_certificate(const char* login, ssh_key key, bool signed_attempt);
  void rejected(std::string reason, std::string request, std::string message, uint64_t max = 0);
  // Sends SSH_MSG_DISCONNECT and closes without a reset.
  void close_after_disconnect();
  // The monitor's socket failed: nothing can be audited or run any more.
  void monitor_failed(const Error& e) {
    if (!monitor_gone_) log::error("ssh: " + peer_.addr + ": monitor: " + e.message);
    monitor_gone_ = true;
  }
  // Sessions that ended (the monitor wrote their session.end).
  void dispatch_exited();
  // The connection is going away: the monitor ends what its sessions run,
  // and the client is let go only once their session.end is written
  // (bounded), as when the node ran them itself.
  void end_sessions();

  ssh_session session_;
  Node& node_;
  ssh_event event_ = nullptr;
  Peer peer_;
  ssh_server_callbacks_struct callbacks_{};
  std::optional<LoginContext> login_;
  int auth_requests_ = 0;  // every userauth request but a first "none"
  int auth_failures_ = 0;  // refused ones (sshd's MaxAuthTries counts these)
  bool too_many_attempts_ = false;
  bool monitor_gone_ = false;
  bool monitor_polled_ = false;
  uint32_t last_channel_ = 0;  // ids the monitor knows the connection's sessions by
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
  if (auto r = node_.monitor.auth_refused({login, "", attempt.reason, "", attempt.message,
                                           privsep::Counted::no});
      !r)
    monitor_failed(r.error());
}

void Connection::refuse(const std::string& user, const std::string& login, std::string reason,
                        std::string message, std::optional<sshcert::Proof> counted,
                        std::string method) {
  // Audited (synced, aggregated per source and reason) and counted by the
  // source's rate limit, both in the monitor.
  log::debug("ssh: refused " + login + " from " + peer_.addr + ": " + reason);
  if (auto r = node_.monitor.auth_refused(
          {login, user, std::move(reason), std::move(method), std::move(message), counted_as(counted)});
      !r)
    monitor_failed(r.error());
  // sshd's MaxAuthTries: the connection ends once it has failed this often.
  if (++auth_failures_ >= node_.max_auth_tries)
    end_attempts(login, std::to_string(auth_failures_) +
                            " failed authentication attempts on one connection (MaxAuthTries)");
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
  auto allowed = node_.monitor.rate_check(privsep::Counted::signature);
  if (!allowed) {
    monitor_failed(allowed.error());
    return SSH_AUTH_DENIED;
  }
  if (!*allowed) {
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
    auto probe_allowed =
        signed_attempt ? Result<bool>(true) : node_.monitor.rate_check(privsep::Counted::probe);
    if (!probe_allowed) {
      monitor_failed(probe_allowed.error());
      return SSH_AUTH_DENIED;
    }
    if (!*probe_allowed) {
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
  // The monitor checks the certificate again, audits the login and says
  // what this user's sessions may do.
  auto answer = node_.monitor.login(cert_blob, login);
  if (!answer) {
    monitor_failed(answer.error());
    return SSH_AUTH_DENIED;
  }
  if (auto* no = std::get_if<privsep::Refused>(&*answer)) {
    log::warn("ssh: the monitor refused " + std::string(login) + " from " + peer_.addr + ": " +
              no->message);
    if (++auth_failures_ >= node_.max_auth_tries)
      end_attempts(login, std::to_string(auth_failures_) +
                              " failed authentication attempts on one connection (MaxAuthTries)");
    return SSH_AUTH_DENIED;
  }
  const auto& ok = std::get<privsep::LoginOk>(*answer);
  LoginContext ctx;
  ctx.user = ok.user;
  ctx.account = std::move(account.value());
  ctx.kinds = KindSet(ok.kinds);
  ctx.force_command = ok.force_command;
  ctx.permit_pty = ok.permit_pty;
  ctx.valid_before = ok.valid_before;
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
  c->channels_.push_back(std::make_unique<SessionChannel>(c->node_, *c->login_, c->session_,
                                                          c->event_, ++c->last_channel_));
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

int Connection::on_monitor(int, int, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (auto r = c->node_.monitor.read_pending(); !r) c->monitor_failed(r.error());
  c->dispatch_exited();
  return 0;
}

void Connection::end_sessions() {
  auto waiting = [&] {
    for (auto& channel : channels_)
      if (channel->running()) return true;
    return false;
  };
  for (auto& channel : channels_)
    if (channel->running()) (void)node_.monitor.end_session(channel->id());
  const int64_t until = clock::monotonic_ns() + 5'000'000'000;
  while (!monitor_gone_ && waiting()) {
    int64_t left_ms = (until - clock::monotonic_ns()) / 1'000'000;
    pollfd p{node_.monitor.fd(), POLLIN, 0};
    if (left_ms <= 0 || poll(&p, 1, static_cast<int>(left_ms)) <= 0) break;
    if (auto r = node_.monitor.read_pending(); !r) monitor_failed(r.error());
    dispatch_exited();
  }
}

void Connection::dispatch_exited() {
  for (const auto& e : node_.monitor.take_exited())
    for (auto& channel : channels_)
      if (channel->id() == e.channel) channel->exited(e.wait_status);
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
  peer_ = node_.origin ? *node_.origin : peer_of(ssh_get_fd(session_));
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
    if (ssh_event_dopoll(event_, 100) == SSH_ERROR || monitor_gone_) return;
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
  // The monitor's notes (a session's process exited) wake the poll.
  if (ssh_event_add_fd(event_, node_.monitor.fd(), POLLIN, on_monitor, this) == SSH_OK)
    monitor_polled_ = true;
  dispatch_exited();
  while (!node_.stopping && !monitor_gone_) {
    // A session must not outlive the certificate that let it in (sshd too
    // ends the connection then).
    if (clock::realtime_ns() / 1'000'000'000 >= login_->valid_before) {
      log::info("ssh: " + login_->user + " from " + peer_.addr +
                ": certificate expired: ending the connection");
      for (auto& channel : channels_) channel->notify("vigil: your certificate has expired");
      break;
    }
    // Everything else comes as an fd event (the client, the monitor's
    // notes, a session's pipes): the poll waits for one, or for the
    // certificate's expiry (checked at least once a minute). A fixed 100 ms
    // woke 1,000 idle connections 10,000 times a second.
    const int64_t left_s = login_->valid_before - clock::realtime_ns() / 1'000'000'000;
    int wait_ms = left_s >= 60 ? 60'000 : static_cast<int>(std::max<int64_t>(left_s, 0) * 1000 + 1);
    int rc = ssh_event_dopoll(event_, wait_ms);
    dispatch_exited();
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
  // Audited by the monitor (as session.rejected, synced, aggregated), with
  // the user and address it knows itself.
  log::debug("ssh: " + login.remote_addr + ": " + login.user + ": " + request + " refused: " +
             message);
  if (auto r = node.monitor.rejected({std::move(reason), std::move(request), std::move(message), max});
      !r)
    log::error("ssh: monitor: " + r.error().message);
}

void serve_connection(ssh_session session, Node& node) {
  Connection connection(session, node);
  connection.serve();
}

}  // namespace vigil::ssh
