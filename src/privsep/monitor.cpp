#include "privsep/monitor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <utility>

#include "audit/encode.hpp"
#include "audit/uuid.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/ssh_signals.hpp"
#include "engine/account.hpp"
#include "privsep/wire.hpp"
#include "session/recorded_session.hpp"
#include "sshcert/authorize.hpp"

namespace vigil::privsep {
namespace {

// PATH as Debian's login.defs gives it (ENV_SUPATH / ENV_PATH).
std::string login_path(uid_t uid) {
  return uid == 0 ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                  : "/usr/local/bin:/usr/bin:/bin:/usr/games";
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

constexpr size_t kRelayBuffer = 64 * 1024;   // per direction of a pty relay
constexpr size_t kDrainAtExit = 4u << 20;     // output read after the process exited

// One session a front end opened.
struct Opened {
  std::unique_ptr<session::RecordedSession> recorded;
  Fd pidfd;
  bool interactive = false;
  bool exited = false;   // session.end written, `exited` sent
  Fd relay;              // pty: the monitor's end of the front end's stream
  std::string to_front;  // pty output not yet taken by the front end
  std::string to_pty;    // front end input the pty has not taken yet
  bool front_eof = false;
  bool master_hup = false;  // the terminal's other side is gone: nothing more to read
};

class Service {
 public:
  Service(MonitorContext& ctx, Fd channel, const Peer& peer)
      : ctx_(ctx), channel_(std::move(channel)), peer_(peer) {}
  ~Service() {
    // Whatever still runs is ended: killed, waited for, session.end written.
    for (auto& [id, s] : sessions_)
      if (!s.exited && s.recorded) s.recorded->kill_all();
    sessions_.clear();
    write_summaries(ctx_.auth_refusals.take_source(peer_.ip), ctx_.rejections.take_source(peer_.ip));
  }

  Served run(const std::atomic<bool>& stop);

 private:
  // A protocol violation: `why` ends the front end.
  Served violation(std::string why) { return {true, std::move(why)}; }
  Result<void> reply(const Reply& r, const std::vector<int>& fds = {}) {
    return send_packet(channel_.get(), encode(r), fds);
  }
  std::optional<std::string> handle(Request request);
  std::optional<std::string> on_login(const Login& m);
  std::optional<std::string> on_proxied(const Proxied& m);
  Result<void> role_decision(const Login& m);
  std::optional<std::string> on_open(const OpenSession& m);
  void refuse_auth(const std::string& login, const std::string& user, std::string reason,
                   std::string message, const std::string& method);
  void reject(std::string reason, std::string request, std::string message, uint64_t max = 0);
  void emit_synced(const std::string& line);
  void write_summaries(
      const std::vector<sshcert::RefusalAggregator<audit::AuthAttempt>::Summary>& auths,
      const std::vector<sshcert::RefusalAggregator<audit::SessionRejection>::Summary>& rejections);
  Result<void> session_exited(uint32_t id, Opened& s);
  void pump_relay(Opened& s, short master_events, short relay_events);

  MonitorContext& ctx_;
  Fd channel_;
  Peer peer_;
  // Set by a login the monitor verified: who the front end's sessions are for.
  std::optional<sshcert::Identity> identity_;
  std::optional<Credentials> account_;
  int login_refusals_ = 0;
  bool first_request_ = true;
  bool proxy_refused_ = false;  // the connection's header was refused: nothing more is served
  uint32_t last_channel_ = 0;  // channel ids only grow: an old one is an ended session
  std::map<uint32_t, Opened> sessions_;
};

void Service::emit_synced(const std::string& line) {
  if (auto r = ctx_.log.emit(line, auditlog::Durability::sync); !r)
    log::error("monitor: audit log: " + r.error().message);
}

template <class Event, class Summary>
Event summarised(const Summary& s) {
  Event e = s.sample;
  if (e.first_time_ns == 0) e.first_time_ns = e.time_ns;
  e.count = s.count;
  return e;
}

void Service::write_summaries(
    const std::vector<sshcert::RefusalAggregator<audit::AuthAttempt>::Summary>& auths,
    const std::vector<sshcert::RefusalAggregator<audit::SessionRejection>::Summary>& rejections) {
  std::string line;
  for (const auto& s : auths) {
    line.clear();
    audit::encode_auth(summarised<audit::AuthAttempt>(s), ctx_.identity, audit::new_uuid(), line);
    emit_synced(line);
  }
  for (const auto& s : rejections) {
    line.clear();
    audit::encode_session_rejected(summarised<audit::SessionRejection>(s), ctx_.identity,
                                   audit::new_uuid(), line);
    emit_synced(line);
  }
}

void Service::refuse_auth(const std::string& login, const std::string& user, std::string reason,
                          std::string message, const std::string& method) {
  audit::AuthAttempt a;
  a.time_ns = clock::realtime_ns();
  a.user = user;
  a.login = login;
  a.remote_addr = peer_.addr;  // the monitor's, whatever the front end says
  a.reason = std::move(reason);
  a.message = std::move(message);
  a.method = method;
  if (ctx_.metrics) ctx_.metrics->login_refused(a.reason);
  std::vector<sshcert::RefusalAggregator<audit::AuthAttempt>::Summary> evicted;
  if (ctx_.auth_refusals.note(peer_.ip, a.reason + '\0' + a.method, a, clock::monotonic_ns(),
                              &evicted)) {
    log::info("monitor: refused " + a.login + " from " + a.remote_addr + ": " + a.reason);
    std::string line;
    audit::encode_auth(a, ctx_.identity, audit::new_uuid(), line);
    emit_synced(line);
  }
  write_summaries(evicted, {});
}

void Service::reject(std::string reason, std::string request, std::string message, uint64_t max) {
  audit::SessionRejection r;
  r.time_ns = clock::realtime_ns();
  r.user = identity_->user;
  r.login = account_->name;
  r.remote_addr = peer_.addr;
  r.reason = std::move(reason);
  r.request = std::move(request);
  r.message = std::move(message);
  r.max = max;
  std::vector<sshcert::RefusalAggregator<audit::SessionRejection>::Summary> evicted;
  if (ctx_.rejections.note(peer_.ip, r.reason + '\0' + r.user + '\0' + r.login, r,
                           clock::monotonic_ns(), &evicted)) {
    log::warn("monitor: " + r.remote_addr + ": " + r.user + ": " + r.request + " refused: " +
              r.message);
    std::string line;
    audit::encode_session_rejected(r, ctx_.identity, audit::new_uuid(), line);
    emit_synced(line);
  }
  write_summaries({}, evicted);
}

// The certificate is checked again here, from its blob: nothing the front
// end concluded is taken on trust. What the monitor cannot check is the
// client's signature over the session id (libssh keeps it): see
// docs/architecture.md, "Privilege separation".
// The cluster's roles on a login the certificate allows (a node of a
// cluster; a standalone node has no roles to ask).
Result<void> Service::role_decision(const Login& m) {
  if (!ctx_.authorize_login) return {};
  auto cert = sshcert::parse_certificate(m.cert_blob);
  if (!cert) return cert.error();
  return ctx_.authorize_login(*cert, m.login);
}

std::optional<std::string> Service::on_login(const Login& m) {
  if (identity_) return "login after a login";
  auto result = sshcert::authorize_blob(m.cert_blob, ctx_.cas, m.login,
                                        clock::realtime_ns() / 1'000'000'000, peer_.ip);
  std::string key_id;
  if (auto cert = sshcert::parse_certificate(m.cert_blob)) key_id = cert->key_id;
  std::optional<std::pair<std::string, std::string>> refusal;
  std::string user;
  if (!result) {
    auto reason = result.refusal().reason;
    bool ca_verified = reason != sshcert::RefusalReason::malformed_certificate &&
                       reason != sshcert::RefusalReason::untrusted_ca &&
                       reason != sshcert::RefusalReason::weak_signature &&
                       reason != sshcert::RefusalReason::bad_signature;
    // A key id counts as a user only under a trusted CA's signature.
    if (ca_verified) user = key_id;
    refusal.emplace(std::string(sshcert::refusal_name(reason)),
                    "the monitor refused the front end's login: " + result.refusal().message);
  } else if (auto account = credentials_for(m.login); !account) {
    user = key_id;
    refusal.emplace("unknown_login", "no local account " + m.login + " on this node");
  } else if (auto denied = role_decision(m); !denied) {
    user = key_id;
    refusal.emplace("access_denied", denied.error().message);
  } else {
    account_ = std::move(account.value());
  }
  if (refusal) {
    // The front end verified the client's signature before asking.
    ctx_.limiter.failed(peer_.ip, clock::monotonic_ns(), sshcert::Proof::signature);
    refuse_auth(m.login, user, refusal->first, refusal->second, "publickey");
    if (auto r = reply(Refused{refusal->first, refusal->second}); !r) return r.error().message;
    if (++login_refusals_ >= ctx_.max_login_refusals)
      return std::to_string(login_refusals_) + " logins refused";
    return std::nullopt;
  }
  identity_ = result.value();
  ctx_.limiter.succeeded(peer_.ip, clock::monotonic_ns());
  audit::AuthAttempt a;
  a.time_ns = clock::realtime_ns();
  a.success = true;
  a.user = identity_->user;
  a.login = m.login;
  a.remote_addr = peer_.addr;
  a.method = "publickey";
  a.key_id = identity_->user;
  a.cert_serial = identity_->serial;
  a.ca_fingerprint = identity_->ca_fingerprint;
  std::string line;
  audit::encode_auth(a, ctx_.identity, audit::new_uuid(), line);
  emit_synced(line);  // on stable storage before the front end hears yes
  if (ctx_.metrics) ctx_.metrics->login_succeeded();
  LoginOk ok;
  ok.user = identity_->user;
  ok.kinds = static_cast<uint8_t>(identity_->recorded_kinds.value_or(ctx_.default_kinds).bits());
  for (const auto& ext : identity_->extensions)
    if (ext == "permit-pty") ok.permit_pty = true;
  ok.force_command = identity_->force_command;
  ok.valid_before = identity_->valid_before;
  if (auto r = reply(ok); !r) return r.error().message;
  return std::nullopt;
}

std::optional<std::string> Service::on_open(const OpenSession& m) {
  if (m.channel <= last_channel_)
    return "open_session for channel " + std::to_string(m.channel) + ", not above " +
           std::to_string(last_channel_);
  last_channel_ = m.channel;
  auto refuse = [&](const char* reason, std::string request, std::string why,
                    uint64_t max = 0) -> std::optional<std::string> {
    reject(reason, std::move(request), why, max);
    if (auto r = reply(Refused{reason, std::move(why)}); !r) return r.error().message;
    return std::nullopt;
  };
  // A session never starts after the certificate that let the user in.
  if (clock::realtime_ns() / 1'000'000'000 >= identity_->valid_before) {
    if (auto r = reply(Refused{"expired", "the certificate has expired"}); !r)
      return r.error().message;
    return std::nullopt;
  }
  size_t running = 0;
  for (const auto& [id, s] : sessions_) running += s.exited ? 0 : 1;
  if (running >= ctx_.max_sessions)
    return refuse("channel_limit", "session channel",
                  "already " + std::to_string(running) + " sessions on this connection",
                  ctx_.max_sessions);
  // The certificate's word, from the monitor's own copy of it.
  bool permit_pty = false;
  for (const auto& ext : identity_->extensions)
    if (ext == "permit-pty") permit_pty = true;
  if (m.pty && !permit_pty)
    return refuse("pty_not_permitted", "pty-req", "the certificate has no permit-pty");
  // Only the locale: anything else could change what the login's programs do.
  size_t env_bytes = 0;
  for (const auto& e : m.env) {
    size_t eq = e.find('=');
    std::string_view name = std::string_view(e).substr(0, eq);
    if (eq == std::string::npos || !(name == "LANG" || name.rfind("LC_", 0) == 0))
      return refuse("env_not_allowed", "env " + std::string(name.substr(0, 64)),
                    "only LANG and LC_* may be set");
    env_bytes += e.size();
  }
  if (env_bytes > ctx_.max_env_bytes)
    return refuse("env_limit", "env", std::to_string(env_bytes) + " bytes of variables: at most " +
                  std::to_string(ctx_.max_env_bytes), ctx_.max_env_bytes);
  std::optional<std::string> command;
  if (m.program == Program::exec) command = m.command;
  if (m.program == Program::sftp) {
    if (access(ctx_.sftp_server.c_str(), X_OK) != 0)
      return refuse("subsystem_refused", "subsystem sftp",
                    ctx_.sftp_server + " is missing (install openssh-sftp-server)");
    command = ctx_.sftp_server;
  }
  std::optional<std::string> original;
  if (identity_->force_command) {
    original = command;
    command = identity_->force_command;
  }
  const Credentials& account = *account_;
  term::WindowSize size{m.cols ? m.cols : static_cast<unsigned short>(80),
                        m.rows ? m.rows : static_cast<unsigned short>(24)};
  std::optional<term::Pty> pty;
  if (m.pty) {
    auto opened = term::Pty::open(size, account.uid);
    if (!opened) return refuse("pty_refused", "pty-req", opened.error().message);
    pty.emplace(std::move(opened.value()));
  }

  session::Options options;
  options.meta = ctx_.identity;
  options.meta.login = account.name;
  options.meta.user = identity_->user;
  options.meta.remote_addr = peer_.addr;
  options.data_dir = ctx_.data_dir;
  options.recordings = &ctx_.recordings;
  options.engine = ctx_.engine;
  options.kinds = identity_->recorded_kinds.value_or(ctx_.default_kinds);
  if (command) options.command = {*command};
  options.exec_command = command;
  options.size = size;
  options.pty = std::move(pty);
  // Counted from the session's own events, so the metrics add up to
  // what session.end and session.leftovers_end say.
  struct Counted {
    std::atomic<bool> started{false};
    KindCounts lost_at_end;
  };
  auto counted = std::make_shared<Counted>();
  const char* session_kind = m.pty ? "interactive" : m.program == Program::sftp ? "sftp" : "exec";
  if (auto* metrics = ctx_.metrics) {
    options.hooks.event = [metrics](const Event& ev, const audit::SessionMeta&) {
      metrics->event_recorded(ev.kind());
    };
    options.hooks.ended = [metrics, counted, session_kind](const audit::SessionEnd& end,
                                                           const audit::SessionMeta&) {
      metrics->events_lost(end.lost);
      counted->lost_at_end = end.lost;
      if (counted->started) metrics->session_ended(session_kind);
    };
    options.hooks.leftovers_ended = [metrics, counted](const audit::LeftoversEnd& end,
                                                       const audit::SessionMeta&) {
      KindCounts more;  // lost after session.end (its totals include the earlier)
      for (int k = 0; k < kKindCount; ++k)
        more.v[k] = end.lost.v[k] > counted->lost_at_end.v[k]
                        ? end.lost.v[k] - counted->lost_at_end.v[k] : 0;
      metrics->events_lost(more);
    };
  }
  auto recorded = session::RecordedSession::open(ctx_.log, std::move(options));
  if (recorded && ctx_.metrics) {
    ctx_.metrics->session_started(session_kind);
    counted->started = true;
  }
  if (!recorded) {
    log::error("monitor: " + recorded.error().message);
    if (auto r = reply(Refused{"session_failed", recorded.error().message}); !r)
      return r.error().message;
    return std::nullopt;
  }
  Opened s;
  s.recorded = std::move(recorded.value());
  s.interactive = m.pty;

  LaunchSpec spec;
  spec.argv = {account.shell};
  if (command) spec.argv.insert(spec.argv.end(), {"-c", *command});
  else spec.argv.push_back("-l");
  std::vector<std::string> env = {"HOME=" + account.home, "USER=" + account.name,
                                  "LOGNAME=" + account.name, "SHELL=" + account.shell,
                                  "PATH=" + login_path(account.uid)};
  if (m.pty && !m.term.empty()) env.push_back("TERM=" + m.term);
  if (original) env.push_back("SSH_ORIGINAL_COMMAND=" + *original);
  env.insert(env.end(), m.env.begin(), m.env.end());
  spec.env = std::move(env);
  spec.credentials = account;
  struct stat st{};
  spec.cwd = stat(account.home.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? account.home : "/";

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {in, out, err})
      for (int i : {0, 1})
        if (p[i] >= 0) close(p[i]), p[i] = -1;
  };
  if (m.pty) {
    spec.child_setup = [] { signal(SIGPIPE, SIG_DFL); };
  } else {
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
      int e = errno;
      close_all();
      (void)s.recorded->finish(127 << 8);  // session.end: nothing ran
      if (auto r = reply(Refused{"session_failed", std::string("pipe: ") + std::strerror(e)}); !r)
        return r.error().message;
      return std::nullopt;
    }
    fcntl(out[0], F_SETPIPE_SZ, 1 << 20);
    int child_in = in[0], child_out = out[1], child_err = err[1];
    spec.child_setup = [child_in, child_out, child_err] {
      signal(SIGPIPE, SIG_DFL);
      setsid();
      dup2(child_in, 0);
      dup2(child_out, 1);
      dup2(child_err, 2);
    };
  }
  auto launched = s.recorded->launch(spec);
  for (int* fd : {&in[0], &out[1], &err[1]})
    if (*fd >= 0) close(*fd), *fd = -1;
  std::vector<int> pass;
  Fd front;  // pty: the front end's end of the relay
  if (launched) {
    s.pidfd = Fd(static_cast<int>(syscall(SYS_pidfd_open, *launched, 0)));
    if (m.pty) {
      int pair[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) {
        s.relay = Fd(pair[0]);
        front = Fd(pair[1]);
        set_nonblocking(s.relay.get());
        set_nonblocking(s.recorded->pty()->master());
        pass = {front.get()};
      }
    } else {
      pass = {in[1], out[0], err[0]};
    }
  }
  if (!launched || !s.pidfd || pass.empty()) {
    // session.end says why; the front end tells its client.
    std::string why = !launched ? launched.error().message : "cannot watch the session's process";
    if (launched) s.recorded->kill_all();
    int status = s.recorded->wait();  // after a failed launch: 127 not found, 126 otherwise
    (void)s.recorded->finish(status);
    close_all();
    // A launch that failed is told as a shell tells it (the session ran and
    // ended); anything else fails the request.
    const char* reason = launched ? "session_failed"
                         : WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "launch_not_found"
                                                                          : "launch_failed";
    if (auto r = reply(Refused{reason, why}); !r) return r.error().message;
    return std::nullopt;
  }
  std::string sid = s.recorded->meta().sid;
  auto sent = reply(privsep::Opened{m.channel, sid}, pass);
  close_all();  // the front end has its copies (or the socket failed: ended below)
  sessions_.emplace(m.channel, std::move(s));
  if (!sent) return sent.error().message;
  return std::nullopt;
}

std::optional<std::string> Service::on_proxied(const Proxied& m) {
  const auto& trust = ctx_.proxy_trust;
  const int64_t now = clock::realtime_ns() / 1'000'000'000;
  std::string why;
  if (trust.trusted.empty()) {
    why = "this node is in no cluster, so no proxy may say where its connections come from";
  } else if (auto v = ca::verify_proxy_header(m.header, {trust.trusted, trust.cluster, trust.node_uuid, now});
             !v) {
    why = v.error().message;
  } else {
    switch (ctx_.proxy_trust.nonces.use(v->origin.nonce, v->origin.issued_at, now)) {
      case ca::NonceCache::Use::replay:
        why = "its nonce was seen before (a copy of another connection's header)";
        break;
      case ca::NonceCache::Use::full:
        why = "over " + std::to_string(trust.nonces.size()) +
              " proxied connections in the last minutes: try again shortly";
        break;
      case ca::NonceCache::Use::first: {
        Peer client{v->origin.client_ip, v->origin.client_addr()};
        log::info("ssh: " + peer_.addr + " is the cluster's proxy (" + v->proxy.name +
                  ") carrying a connection from " + client.addr);
        peer_ = std::move(client);
        if (auto r = reply(Allowed{true}); !r) return r.error().message;
        return std::nullopt;
      }
    }
  }
  log::warn("ssh: a connection from " + peer_.addr + " began with a proxy header that is refused: " +
            why);
  proxy_refused_ = true;
  if (auto r = reply(Refused{"proxy_header", why}); !r) return r.error().message;
  return std::nullopt;
}

std::optional<std::string> Service::handle(Request request) {
  if (proxy_refused_) return "a request after its proxy header was refused";
  const bool first = std::exchange(first_request_, false);
  if (auto* m = std::get_if<Proxied>(&request)) {
    if (!first) return "a proxy header after other requests";
    return on_proxied(*m);
  }
  if (auto* m = std::get_if<Login>(&request)) return on_login(*m);
  if (auto* m = std::get_if<AuthRefused>(&request)) {
    if (identity_) return "auth_refused after the login";
    if (m->counted != Counted::no)
      ctx_.limiter.failed(peer_.ip, clock::monotonic_ns(),
                          m->counted == Counted::probe ? sshcert::Proof::probe
                                                       : sshcert::Proof::signature);
    refuse_auth(m->login, m->claimed_user, m->reason, m->message, m->method);
    if (auto r = reply(Audited{}); !r) return r.error().message;
    return std::nullopt;
  }
  if (auto* m = std::get_if<RateCheck>(&request)) {
    if (identity_) return "rate_check after the login";
    bool yes = ctx_.limiter.allow(peer_.ip, clock::monotonic_ns(),
                                  m->proof == Counted::probe ? sshcert::Proof::probe
                                                             : sshcert::Proof::signature);
    if (auto r = reply(Allowed{yes}); !r) return r.error().message;
    return std::nullopt;
  }
  if (!identity_)
    return std::string(type_name(static_cast<Type>(encode(request)[0]))) + " before a login";
  if (auto* m = std::get_if<Rejected>(&request)) {
    reject(m->reason, m->request, m->message, m->max);
    if (auto r = reply(Audited{}); !r) return r.error().message;
    return std::nullopt;
  }
  if (auto* m = std::get_if<OpenSession>(&request)) return on_open(*m);
  // resize, signal, end_session: a channel above the last opened one never
  // existed (a violation); an ended one is ignored (it may have ended while
  // the request was on its way).
  uint32_t channel = std::visit(
      [](const auto& r) -> uint32_t {
        if constexpr (requires { r.channel; }) return r.channel;
        else return 0;
      },
      request);
  if (channel == 0 || channel > last_channel_)
    return "a request for channel " + std::to_string(channel) + ", which was never opened";
  auto it = sessions_.find(channel);
  if (it == sessions_.end() || it->second.exited) return std::nullopt;
  Opened& s = it->second;
  if (auto* m = std::get_if<Resize>(&request)) {
    if (!s.interactive) return "resize of a session without a pty";
    if (m->cols == 0 || m->rows == 0) return "resize to 0 columns or rows";
    (void)s.recorded->resize({m->cols, m->rows});
  } else if (auto* m = std::get_if<Signal>(&request)) {
    int sig = ssh_signal_number(m->name);
    if (!sig) return "signal " + m->name.substr(0, 16) + " is not one of RFC 4254's";
    s.recorded->signal(sig);
  } else if (std::holds_alternative<EndSession>(request)) {
    s.recorded->kill_all();
  }
  return std::nullopt;
}

// The process exited: what it printed is read (bounded), the session ended
// and logged, and only then the front end told.
Result<void> Service::session_exited(uint32_t id, Opened& s) {
  if (s.interactive) {
    char buf[65536];
    for (size_t total = 0; total < kDrainAtExit;) {
      ssize_t n = read(s.recorded->pty()->master(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      total += static_cast<size_t>(n);
      s.recorded->output(std::string_view(buf, n));
      s.to_front.append(buf, static_cast<size_t>(n));
    }
  }
  int status = s.recorded->wait();
  if (s.interactive) s.recorded->close_pty();
  auto ending = s.recorded->finish(status);
  if (!ending) log::error("monitor: session " + s.recorded->meta().sid + ": " + ending.error().message);
  s.exited = true;
  s.pidfd.reset();
  s.recorded.reset();  // its leftovers stay recorded
  return reply(Exited{id, status});
}

// Copies between a pty master and the front end's stream, both ways, never
// holding more than kRelayBuffer per direction: a front end that stops
// reading stops the session's output, not the monitor.
void Service::pump_relay(Opened& s, short master_events, short relay_events) {
  char buf[16384];
  int master = s.recorded ? s.recorded->pty()->master() : -1;
  if (master >= 0 && (master_events & (POLLIN | POLLHUP | POLLERR)) && s.to_front.size() < kRelayBuffer) {
    ssize_t n = read(master, buf, sizeof buf);
    if (n > 0) {
      s.recorded->output(std::string_view(buf, n));  // the recording, by the monitor
      s.to_front.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      s.master_hup = true;  // EIO: no slave left open; not polled again (it would not block)
    }
  }
  if (relay_events & (POLLIN | POLLHUP)) {
    if (s.to_pty.size() < kRelayBuffer) {
      ssize_t n = read(s.relay.get(), buf, sizeof buf);
      if (n > 0) s.to_pty.append(buf, static_cast<size_t>(n));
      else if (n == 0 || (errno != EAGAIN && errno != EINTR)) s.front_eof = true;
    }
  }
  if (!s.to_front.empty()) {
    ssize_t n = send(s.relay.get(), s.to_front.data(), s.to_front.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) s.to_front.erase(0, static_cast<size_t>(n));
    else if (n < 0 && errno != EAGAIN && errno != EINTR) s.to_front.clear(), s.front_eof = true;
  }
  if (master >= 0 && !s.to_pty.empty()) {
    ssize_t n = write(master, s.to_pty.data(), s.to_pty.size());
    if (n > 0) s.to_pty.erase(0, static_cast<size_t>(n));
    else if (n < 0 && errno != EAGAIN && errno != EINTR) s.to_pty.clear();
  }
}

Served Service::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    // The channel, then per session: its pidfd, and for a pty its master and relay.
    std::vector<pollfd> fds;
    std::vector<std::pair<uint32_t, int>> owner;  // (session, 0 pidfd / 1 master / 2 relay)
    fds.push_back({channel_.get(), POLLIN, 0});
    owner.emplace_back(0, -1);
    for (auto& [id, s] : sessions_) {
      if (!s.exited) {
        fds.push_back({s.pidfd.get(), POLLIN, 0});
        owner.emplace_back(id, 0);
      }
      if (!s.interactive) continue;
      if (s.recorded && !s.master_hup) {
        short ev = 0;
        if (s.to_front.size() < kRelayBuffer) ev |= POLLIN;
        if (!s.to_pty.empty()) ev |= POLLOUT;
        // Nothing awaited (both buffers full): not polled at all, or a
        // POLLHUP, reported whatever is asked, would end every round at once.
        fds.push_back({ev ? s.recorded->pty()->master() : -1, ev, 0});
        owner.emplace_back(id, 1);
      }
      // A closed stream reports POLLHUP at every poll: it is left out then.
      if (s.relay && !(s.front_eof && s.to_front.empty())) {
        short ev = 0;
        if (!s.front_eof && s.to_pty.size() < kRelayBuffer) ev |= POLLIN;
        if (!s.to_front.empty()) ev |= POLLOUT;
        fds.push_back({ev ? s.relay.get() : -1, ev, 0});
        owner.emplace_back(id, 2);
      }
    }
    // The timeout only serves the stop and the refusal summaries that fall
    // due: once a second (not five times: 1,000 idle connections).
    int n = poll(fds.data(), fds.size(), 1000);
    if (n < 0 && errno != EINTR) return violation(std::string("poll: ") + std::strerror(errno));
    write_summaries(ctx_.auth_refusals.take_due(clock::monotonic_ns()),
                    ctx_.rejections.take_due(clock::monotonic_ns()));
    if (n <= 0) continue;
    // Data first, then exits: output printed just before the exit is relayed.
    std::map<uint32_t, std::pair<short, short>> relay_events;
    std::vector<uint32_t> exited;
    for (size_t i = 1; i < fds.size(); ++i) {
      auto [id, what] = owner[i];
      if (what == 0 && fds[i].revents) exited.push_back(id);
      if (what == 1) relay_events[id].first = fds[i].revents;
      if (what == 2) relay_events[id].second = fds[i].revents;
    }
    for (auto& [id, ev] : relay_events) {
      Opened& s = sessions_.at(id);
      if (ev.first || ev.second) pump_relay(s, ev.first, ev.second);
    }
    for (uint32_t id : exited)
      if (auto r = session_exited(id, sessions_.at(id)); !r) return violation(r.error().message);
    // Sessions whose output the front end has taken (or never will) are gone.
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      Opened& s = it->second;
      bool drained = !s.interactive || s.to_front.empty() || s.front_eof;
      it = s.exited && drained ? sessions_.erase(it) : std::next(it);
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      auto packet = recv_packet(channel_.get(), 0);
      if (!packet) return violation(packet.error().message);
      if (packet->closed) return {};
      auto request = decode_request(packet->bytes);
      if (!request) return violation(request.error().message);
      if (auto bad = handle(std::move(request.value())); bad) return violation(*bad);
    }
  }
  return {};
}

}  // namespace

Served serve_front_end(MonitorContext& ctx, Fd channel, const Peer& peer,
                       const std::atomic<bool>& stop) {
  Served served;
  {
    Service service(ctx, std::move(channel), peer);
    served = service.run(stop);
  }  // its sessions are ended here, before the caller hears how it ended
  if (served.violation)
    log::warn("monitor: front end of " + peer.addr + " ended: " + served.why);
  return served;
}

}  // namespace vigil::privsep
