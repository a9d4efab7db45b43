#include "authsvc/service.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <set>

#include <nlohmann/json.hpp>

#include "audit/base64.hpp"
#include "audit/timefmt.hpp"
#include "audit/uuid.hpp"
#include "common/log.hpp"
#include "ca/key_file.hpp"
#include "ca/ssh_ca.hpp"
#include "cluster/parse.hpp"
#include "cluster/secrets.hpp"
#include "sshcert/keys.hpp"

namespace vigil::authsvc {

using nlohmann::json;
using namespace cluster;

namespace {

int64_t secs(Time t) { return t.time_since_epoch().count(); }

std::string joined(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

// The IP of "ip:port" ("[v6]:port" too): what failed logins are counted by.
std::string source_of(std::string_view address) {
  if (address.empty()) return "unknown";
  if (address.front() == '[') {
    auto end = address.find(']');
    return std::string(address.substr(1, end == std::string_view::npos ? address.size() : end - 1));
  }
  auto colon = address.rfind(':');
  if (colon != std::string_view::npos && address.find(':') == colon)
    return std::string(address.substr(0, colon));
  return std::string(address);
}

bool reserved_user_name(std::string_view name) { return !name.empty() && name.front() == '@'; }

Result<void> check_user_name(std::string_view name) {
  if (reserved_user_name(name))
    return Error::of(Errc::invalid_argument,
                     "user names starting with '@' are reserved for Vigil's own identities; "
                     "choose another name");
  if (!is_valid_name(name))
    return Error::of(Errc::invalid_argument,
                     "'" + std::string(name.substr(0, 130)) +
                         "' is not a valid user name: use 1-128 letters, digits and ._@-: "
                         "(not starting with '-')");
  return {};
}

Result<void> check_logins(const std::vector<std::string>& logins) {
  if (logins.size() > 256)
    return Error::of(Errc::invalid_argument, "a user may have at most 256 logins");
  for (const auto& l : logins)
    if (!is_valid_login(l))
      return Error::of(Errc::invalid_argument,
                       "'" + l.substr(0, 40) +
                           "' is not a valid login: use 1-32 letters, digits and ._- "
                           "(not starting with '-')");
  return {};
}

}  // namespace

std::string_view second_factor_name(SecondFactor f) {
  return f == SecondFactor::otp ? "otp" : "off";
}

std::string_view caller_kind_name(CallerKind k) {
  switch (k) {
    case CallerKind::anonymous: return "anonymous";
    case CallerKind::user: return "user";
    case CallerKind::node: return "node";
    case CallerKind::proxy: return "proxy";
    case CallerKind::admin: return "admin";
  }
  return "anonymous";
}

// ---- Audit ---------------------------------------------------------------

namespace {

// One audit event: the fields given plus cluster_name, time and uid; keys
// in alphabetical order (nlohmann's object is sorted), one line.
struct AuditEvent {
  json fields = json::object();
  AuditEvent(std::string_view event, std::string_view code) {
    fields["event"] = event;
    fields["code"] = code;
  }
  AuditEvent& set(const std::string& key, json value) {
    fields[key] = std::move(value);
    return *this;
  }
};

}  // namespace

namespace {
// Writes one event, durable before the answer goes out. A failure is logged
// (every time: each is an event missing from the log) and counted; the
// caller decides what it means for the request.
Result<void> emit_line(auditlog::Emitter& audit, std::atomic<uint64_t>& failures,
                       const std::string& cluster, Time now, AuditEvent e) {
  e.fields["cluster_name"] = cluster;
  e.fields["time"] = audit::format_time(secs(now) * 1'000'000'000);
  e.fields["uid"] = audit::new_uuid();
  std::string line = e.fields.dump(-1, ' ', false, json::error_handler_t::replace);
  line += '\n';
  auto r = audit.emit(line, auditlog::Durability::sync);
  if (!r) {
    failures.fetch_add(1, std::memory_order_relaxed);
    log::error("auth service: the audit log could not record " + line.substr(0, line.size() - 1) +
               ": " + r.error().message);
  }
  return r;
}

// An event after the fact (a refusal, a change already made): the request's
// answer stands; the missing event is logged and counted (audit_failures()).
void emit(auditlog::Emitter& audit, std::atomic<uint64_t>& failures, const std::string& cluster,
          Time now, AuditEvent e) {
  (void)emit_line(audit, failures, cluster, now, std::move(e));
}

// An event that guards what the request hands out (a certificate, a
// token's secret): not recorded, the request fails and nothing is handed out.
[[nodiscard]] Result<void> emit_or_refuse(auditlog::Emitter& audit,
                                          std::atomic<uint64_t>& failures,
                                          const std::string& cluster, Time now, AuditEvent e) {
  const std::string event = e.fields["event"].get<std::string>();
  if (auto r = emit_line(audit, failures, cluster, now, std::move(e)); !r)
    return Error::of(Errc::unavailable,
                     "the auth service cannot write its audit log (" + r.error().message +
                         "), so it hands out nothing it could not record as " + event +
                         "; an administrator must repair the audit log's storage, then retry");
  return {};
}
}  // namespace

// ---- The service ---------------------------------------------------------

AuthService::AuthService(ClusterStore& store, ca::ClusterCAs& cas, auditlog::Emitter& audit,
                         Options options)
    : store_(store), cas_(cas), audit_(audit), options_(std::move(options)),
      limiter_(options_.login_limit) {}

Error AuthService::deny(const Caller& c, std::string_view action, Error why) {
  AuditEvent e("access.denied", "V1000W");
  e.set("user", c.name.empty() ? std::string(caller_kind_name(c.kind)) : c.name)
      .set("caller", caller_kind_name(c.kind))
      .set("action", action)
      .set("error", why.message)
      .set("addr.remote", c.address);
  emit(audit_, audit_failures_, options_.cluster_name, now(), std::move(e));
  return why;
}

Result<void> AuthService::require(const Caller& c, std::string_view resource,
                                  std::string_view verb, std::string_view action) {
  switch (c.kind) {
    case CallerKind::admin: return {};
    case CallerKind::user:
      if (c.checker().can(resource, verb)) return {};
      return deny(c, action,
                  Error::of(Errc::permission_denied,
                            "user " + c.name + " may not " + std::string(verb) + " " +
                                std::string(resource) + " (roles: " +
                                joined([&] {
                                  std::vector<std::string> n;
                                  for (const auto& r : c.checker().roles()) n.push_back(r.name);
                                  return n;
                                }(),
                                     ",") +
                                "); ask an administrator for a role that allows it"));
    case CallerKind::anonymous:
      return deny(c, action,
                  Error::of(Errc::unauthenticated,
                            "this call needs a login: run vsh login (or vigilctl on the auth "
                            "host) first"));
    case CallerKind::node:
    case CallerKind::proxy:
      return deny(c, action,
                  Error::of(Errc::permission_denied,
                            "a " + std::string(caller_kind_name(c.kind)) +
                                " identity may not " + std::string(verb) + " " +
                                std::string(resource) +
                                "; use vigilctl on the auth host or a user's login"));
  }
  return Error::of(Errc::internal, "unknown caller");
}

namespace {
// Bounds of the heartbeat's in-memory answers (far above any cluster).
constexpr size_t kMaxKnownNodes = 1'000'000;
}  // namespace

Result<bool> AuthService::is_proxy(std::string_view uuid) {
  {
    std::lock_guard lock(cache_mu_);
    if (not_proxies_.count(uuid)) return false;
  }
  auto r = store_.backend().get("proxy", uuid);
  if (r) return true;
  if (r.error().kind() != Errc::not_found) return r.error();
  // Held as "not a proxy": uuids come from verified node certificates only;
  // bounded all the same.
  std::lock_guard lock(cache_mu_);
  if (not_proxies_.size() >= kMaxKnownNodes) not_proxies_.clear();
  not_proxies_.emplace(uuid);
  return false;
}

Result<Caller> AuthService::caller(const api::Peer& peer) {
  Caller direct;
  direct.address = peer.address;
  if (peer.identity) {
    auto c = identify(*peer.identity, peer.address);
    if (!c) return c.error();
    direct = std::move(c.value());
  }
  if (!peer.forwarded_for && !peer.forwarded_certificate && !peer.forwarded_session &&
      !peer.forwarded_csrf) {
    // A browser session on the web port; a certificate, when both come, is
    // the caller (the cookie is then not read).
    if (!peer.identity && peer.web_session) return web_caller(*peer.web_session, peer.web_csrf, peer.address);
    return direct;
  }
  // Forwarded headers: believed from a proxy of this cluster only.
  if (direct.kind != CallerKind::proxy)
    return deny(direct, "forward",
                Error::of(Errc::permission_denied,
                          "X-Forwarded-For and X-Vigil-Forwarded-Certificate are honoured only from "
                          "the cluster's proxy; send the request without them, or through the "
                          "proxy (its web port)"));
  auto refuse = [&](Errc code, std::string why) -> Error {
    return deny(direct, "forward", Error::of(code, std::move(why)));
  };
  // One client address, "ip" or "ip:port", as the proxy saw it.
  const std::string& for_addr = peer.forwarded_for.value_or("");
  if (for_addr.empty() || for_addr.size() > 64 ||
      for_addr.find_first_not_of("0123456789abcdefABCDEF.:[]") != std::string::npos)
    return refuse(Errc::invalid_argument,
                  "the proxy forwarded no single client address in X-Forwarded-For (\"" +
                      for_addr.substr(0, 64) + "\"); it must send the client's ip:port");
  Caller c;
  c.address = for_addr;
  c.forwarded = true;
  if ((!peer.forwarded_certificate || peer.forwarded_certificate->empty()) && peer.forwarded_session) {
    // The client's browser session, as the proxy's web port read it.
    auto web = web_caller(*peer.forwarded_session, peer.forwarded_csrf, for_addr);
    if (web) web->forwarded = true;
    return web;
  }
  if (!peer.forwarded_certificate || peer.forwarded_certificate->empty()) return c;  // anonymous
  if (peer.forwarded_certificate->size() > 16 * 1024)
    return refuse(Errc::invalid_argument, "the forwarded certificate is larger than 16 KiB");
  auto der = audit::decode_base64(*peer.forwarded_certificate);
  if (!der)
    return refuse(Errc::invalid_argument,
                  "X-Vigil-Forwarded-Certificate is not a certificate's DER in standard base64");
  auto cert = ca::TlsCertificate::from_der(*der);
  if (!cert) return refuse(Errc::unauthenticated, "the forwarded certificate does not parse");
  // Verified here again: the proxy's word is not enough.
  auto checked = ca::verify_tls_peer(cert->get(), cas_.tls.trusted_tls_certificates(),
                                     options_.cluster_name, ca::TlsUsage::client, secs(now()));
  if (!checked)
    return refuse(Errc::unauthenticated,
                  "the forwarded client certificate is refused: " + checked.refusal().message);
  if (checked.value().kind == ca::TlsIdentityKind::user && checked.value().name == kAdminName)
    return refuse(Errc::permission_denied,
                  "the local admin identity is not taken through the proxy: run vigilctl on the "
                  "auth host");
  auto forwarded = identify(checked.value(), for_addr);
  if (forwarded) forwarded->forwarded = true;
  return forwarded;
}

// ---- Browser sessions ------------------------------------------------------

namespace {
constexpr std::string_view kWebSessionKind = "web_session";
constexpr size_t kWebTokenBytes = 32;  // 256 bits: 64 hex digits

bool is_token_hex(std::string_view s) {
  return s.size() == 2 * kWebTokenBytes && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}
}  // namespace

Result<Caller> AuthService::web_caller(const std::string& token,
                                       const std::optional<std::string>& csrf,
                                       const std::string& address) {
  Caller anon;
  anon.address = address;
  auto refuse = [&](const Caller& who, Errc code, std::string why) -> Error {
    return deny(who, "authenticate", Error::of(code, std::move(why)));
  };
  const std::string again = "; log in again on the web page (or call POST /v1/webapi/sessions)";
  if (!is_token_hex(token))
    return refuse(anon, Errc::unauthenticated, "the browser session cookie is not one Vigil gave" + again);
  const std::string id = hash_token(token);
  auto record = store_.backend().get(kWebSessionKind, id);
  if (!record) {
    if (record.error().kind() != Errc::not_found) return record.error();
    return refuse(anon, Errc::unauthenticated,
                  "the browser session is unknown, logged out or expired" + again);
  }
  auto j = json::parse(record->data, nullptr, false);
  if (j.is_discarded() || !j.contains("user") || !j["user"].is_string() || !j.contains("csrf") ||
      !j["csrf"].is_string())
    return Error::of(Errc::data_loss, "a browser session in the cluster state is damaged; log in again");
  Caller owner = anon;
  owner.kind = CallerKind::user;
  owner.name = j["user"].get<std::string>();
  if (!record->expires || *record->expires <= secs(now()))
    return refuse(owner, Errc::unauthenticated, "the browser session expired" + again);
  // Every call made with the cookie echoes the session's CSRF token: a page
  // of another site can make the browser send the cookie, never the header.
  if (!csrf || csrf->empty())
    return refuse(owner, Errc::permission_denied,
                  "a call with the browser session cookie must send the session's CSRF token in "
                  "the X-Vigil-CSRF header (the login's csrf_token)");
  if (hash_token(*csrf) != j["csrf"].get<std::string>())
    return refuse(owner, Errc::permission_denied,
                  "the X-Vigil-CSRF header is not the CSRF token of this browser session; reload "
                  "the page or log in again");
  // The user's current roles, as for a certificate.
  ca::TlsIdentity id_;
  id_.kind = ca::TlsIdentityKind::user;
  id_.cluster = options_.cluster_name;
  id_.name = owner.name;
  if (id_.name.empty() || id_.name.front() == '@')
    return refuse(owner, Errc::unauthenticated, "the browser session names no user" + again);
  auto c = identify(id_, address);
  if (!c) return c.error();
  c->web_session = id;
  return c;
}

Result<WebSession> AuthService::web_login(const Caller& c, const WebLoginRequest& r) {
  const Time t = now();
  const std::string source = source_of(c.address);
  LoginRequest lr;
  lr.user = r.user;
  lr.password = r.password;
  lr.totp_code = r.totp_code;
  auto a = authenticate(lr, source, t);
  if (!a) return a.error();
  AccessChecker ac(a->roles, a->user.traits);
  const Seconds ttl = std::min(options_.default_login_ttl, ac.max_session_ttl());
  WebSession out;
  out.token = random_hex(kWebTokenBytes);
  out.csrf = random_hex(kWebTokenBytes);
  out.user = r.user;
  for (const auto& role : a->roles) out.roles.push_back(role.name);
  out.ttl = ttl;
  out.expires = t + ttl;

  // At most kMaxWebSessionsPerUser live sessions a user: the oldest go.
  auto all = store_.backend().list(kWebSessionKind);
  if (!all) return all.error();
  std::vector<std::pair<int64_t, std::string>> mine;  // (created, id)
  for (const auto& rec : all.value()) {
    auto j = json::parse(rec.data, nullptr, false);
    if (j.is_discarded() || j.value("user", "") != r.user) continue;
    mine.emplace_back(j.value("created", int64_t{0}), rec.name);
  }
  std::sort(mine.begin(), mine.end());
  for (size_t i = 0; i + kMaxWebSessionsPerUser <= mine.size(); ++i) {
    auto removed = store_.backend().remove(kWebSessionKind, mine[i].second);
    if (!removed && removed.error().kind() != Errc::not_found) return removed.error();
  }

  limiter_.clear("user:" + r.user);
  AuditEvent ok("user.login", "T1000I");
  ok.set("user", r.user).set("method", "local").set("success", true).set("addr.remote", source)
      .set("web_session", true);
  if (auto e = emit_or_refuse(audit_, audit_failures_, options_.cluster_name, t, std::move(ok)); !e)
    return e.error();
  json data = {{"user", r.user},
               {"csrf", hash_token(out.csrf)},
               {"created", secs(t)},
               {"addr", source}};
  auto created = store_.backend().create(
      Record{std::string(kWebSessionKind), hash_token(out.token), 0, secs(out.expires), data.dump()});
  if (!created) return created.error();
  return out;
}

Result<void> AuthService::end_web_session(const Caller& c) {
  if (c.web_session.empty())
    return deny(c, "logout",
                Error::of(Errc::unauthenticated,
                          "this call ends a browser session: send its cookie and X-Vigil-CSRF"));
  auto r = store_.backend().remove(kWebSessionKind, c.web_session);
  if (!r && r.error().kind() != Errc::not_found) return r.error();
  return {};
}

Result<std::optional<int64_t>> AuthService::node_removed_at(std::string_view uuid) {
  std::lock_guard lock(cache_mu_);
  if (!removals_) {
    auto all = store_.list_node_removals();
    if (!all) return all.error();
    removals_.emplace();
    for (auto& [id, at] : all.value()) (*removals_)[id] = at;
  }
  auto it = removals_->find(uuid);
  if (it == removals_->end()) return std::optional<int64_t>{};
  return std::optional<int64_t>{it->second};
}

Result<Caller> AuthService::identify(const ca::TlsIdentity& id, std::string address) {
  Caller c;
  c.address = std::move(address);
  c.name = id.name;
  auto refuse = [&](std::string why) -> Error {
    return deny(c, "authenticate", Error::of(Errc::unauthenticated, std::move(why)));
  };
  if (id.cluster != options_.cluster_name) {
    c.kind = id.kind == ca::TlsIdentityKind::node ? CallerKind::node : CallerKind::user;
    return refuse("the certificate is of cluster '" + id.cluster + "', this is '" +
                  options_.cluster_name + "'; log in to this cluster (vsh login --proxy=...)");
  }
  if (id.kind == ca::TlsIdentityKind::node) {
    // `vigilctl rm node/UUID` is a revocation: without it a removed node
    // (decommissioned, or taken over) heartbeat itself back into the list,
    // and users were routed to it, until its certificate expired (a year).
    auto removed = node_removed_at(id.name);
    if (!removed) return removed.error();
    if (removed.value() && id.not_before + ca::kClockSkew <= *removed.value()) {
      c.kind = CallerKind::node;
      c.node_name = id.node_name;
      return refuse("node " + id.name + " (" + id.node_name +
                    ") was removed from the cluster (vigilctl rm node/" + id.name +
                    "): certificates issued to it before are not honoured; join it again with a "
                    "new token (vigilctl nodes add)");
    }
    auto proxy = is_proxy(id.name);
    if (!proxy) return proxy.error();
    c.kind = proxy.value() ? CallerKind::proxy : CallerKind::node;
    c.node_name = id.node_name;
    return c;
  }
  if (id.name == kAdminName) {
    c.kind = CallerKind::admin;
    return c;
  }
  c.kind = CallerKind::user;
  // The user's CURRENT roles: a deleted user, or a role taken away, counts
  // at once, whatever the certificate says.
  auto user = store_.get_user(id.name);
  if (!user) {
    if (user.error().kind() == Errc::not_found)
      return refuse("user " + id.name +
                    " no longer exists; the certificate is not honoured. Ask an administrator");
    return user.error();
  }
  auto roles = resolve_roles(user.value(), [&](const std::string& n) { return store_.get_role(n); });
  if (!roles) return refuse(roles.error().message);
  c.access.emplace(std::move(roles.value()), user->traits);
  return c;
}

FindReply AuthService::find() const {
  return FindReply{options_.server_version, options_.cluster_name, options_.second_factor,
                   options_.proxy_public_addrs, cas_.tls.pin()};
}

Result<StatusReply> AuthService::status(const Caller& c) {
  if (auto ok = require(c, "role", "read", "status"); !ok) return ok.error();
  return StatusReply{options_.cluster_name, options_.server_version, cas_.tls.pin()};
}

// ---- Tokens --------------------------------------------------------------

Result<CreatedToken> AuthService::create_token(const Caller& c, const CreateTokenRequest& r) {
  if (auto ok = require(c, "token", "create", "tokens.create"); !ok) return ok.error();
  if (r.roles.empty())
    return Error::of(Errc::invalid_argument, "a join token needs roles: --roles=node or proxy");
  auto t = issue_join_token(store_, r.roles, r.ttl, now());
  if (!t) return t.error();
  std::vector<std::string> roles;
  for (auto role : r.roles) roles.emplace_back(system_role_name(role));
  AuditEvent e("join_token.create", "T9003I");
  e.set("user", c.name).set("name", t->token.id()).set("roles", roles)
      .set("join_method", "token").set("expires", rfc3339(t->token.expires));
  if (auto ok = emit_or_refuse(audit_, audit_failures_, options_.cluster_name, now(), std::move(e)); !ok)
    return ok.error();
  return CreatedToken{t->secret, t->token.id(), r.roles, t->token.expires};
}

Result<std::vector<Token>> AuthService::list_tokens(const Caller& c) {
  if (auto ok = require(c, "token", "list", "tokens.list"); !ok) return ok.error();
  auto all = store_.list_tokens();
  if (!all) return all.error();
  std::vector<Token> out;
  for (auto& t : all.value())
    if (t.expires > now()) out.push_back(std::move(t));
  return out;
}

Result<void> AuthService::remove_token(const Caller& c, std::string_view id) {
  if (auto ok = require(c, "token", "delete", "tokens.remove"); !ok) return ok.error();
  if (id.size() < 16)
    return Error::of(Errc::invalid_argument,
                     "give the token's id as vigilctl tokens ls shows it (16 hex digits)");
  auto all = store_.list_tokens();
  if (!all) return all.error();
  const Token* found = nullptr;
  for (const auto& t : all.value())
    if (t.id() == id || t.hash == id) found = &t;
  if (!found)
    return Error::of(Errc::not_found, "no token with id " + std::string(id.substr(0, 64)) +
                                          "; vigilctl tokens ls lists them");
  if (auto gone = store_.delete_token(found->hash); !gone) return gone.error();
  AuditEvent e("join_token.delete", "V9004I");
  e.set("user", c.name).set("name", found->id())
      .set("kind", found->kind == TokenKind::join ? "join" : "signup");
  emit(audit_, audit_failures_, options_.cluster_name, now(), std::move(e));
  return {};
}

// ---- Nodes ---------------------------------------------------------------

Result<JoinReply> AuthService::join(const Caller& c, const JoinRequest& r) {
  const Time t = now();
  auto audit_join = [&](bool ok, const std::string& uuid, const std::string& token_id,
                        const std::string& error) {
    AuditEvent e("instance.join", ok ? "TJ002I" : "TJ002W");
    e.set("success", ok).set("node_name", r.node_name).set("host_id", uuid)
        .set("role", system_role_name(r.role)).set("method", "token")
        .set("token_name", token_id).set("addr.remote", c.address);
    if (!error.empty()) e.set("error", error);
    if (ok) return emit_or_refuse(audit_, audit_failures_, options_.cluster_name, t, std::move(e));
    emit(audit_, audit_failures_, options_.cluster_name, t, std::move(e));  // a refusal: it stands
    return Result<void>{};
  };
  auto refuse = [&](Error err) -> Error {
    (void)audit_join(false, "", "", err.message);
    return err;
  };
  auto token = check_join_token(store_, r.token, r.role, t);
  if (!token) return refuse(token.error());
  if (!is_valid_name(r.node_name))
    return refuse(Error::of(Errc::invalid_argument,
                            "the node name must be 1-128 letters, digits and ._@-: (set "
                            "teleport.nodename)"));
  if (r.addresses.empty() && !r.tunnel)
    return refuse(Error::of(Errc::invalid_argument,
                            "a node needs an address clients reach it at, or a tunnel"));
  auto host_key = sshcert::parse_public_key_line(r.ssh_public_key);
  if (!host_key)
    return refuse(Error::of(Errc::invalid_argument,
                            "the SSH host public key does not parse: " + host_key.error().message));
  // A join always makes a new identity (Teleport's way): a node that keeps
  // its data_dir keeps its uuid and does not join again. An older record
  // with the same name expires with its last heartbeat.
  const std::string uuid = audit::new_uuid();
  std::vector<std::string> hosts;  // addresses without their ports
  for (const auto& a : r.addresses) {
    std::string h = a;
    if (!h.empty() && h.front() == '[') h = h.substr(1, h.find(']') - 1);
    else if (auto colon = h.rfind(':'); colon != std::string::npos && h.find(':') == colon)
      h = h.substr(0, colon);
    if (!h.empty() && std::find(hosts.begin(), hosts.end(), h) == hosts.end()) hosts.push_back(h);
  }
  ca::HostCertificateRequest hr;
  hr.public_key = host_key->blob;
  hr.node_uuid = uuid;
  hr.node_name = r.node_name;
  hr.addresses = hosts;
  hr.now = secs(t);
  hr.ttl = options_.node_certificate_ttl.count();
  auto spec = ca::host_certificate(hr);
  if (!spec) return refuse(spec.error());
  auto ssh_cert = cas_.ssh_host.sign_ssh(spec.value());
  if (!ssh_cert) return refuse(ssh_cert.error());

  ca::TlsIssueRequest tr;
  tr.identity.kind = ca::TlsIdentityKind::node;
  tr.identity.cluster = options_.cluster_name;
  tr.identity.name = uuid;
  tr.identity.roles = {std::string(ca::kNodeRole)};
  // A proxy's certificate says so: clients require "proxy" (or "auth") of
  // the web port they log in through, so a plain node cannot pose as it.
  if (r.role == SystemRole::proxy) tr.identity.roles.emplace_back(ca::kProxyRole);
  tr.identity.node_name = r.node_name;
  tr.identity.addresses = hosts;
  tr.subject_public_key = r.tls_public_key;
  tr.now = secs(t);
  tr.ttl = options_.node_certificate_ttl.count();
  auto tls = cas_.tls.issue_tls(tr);
  if (!tls) return refuse(tls.error());

  if (r.role == SystemRole::proxy) {
    json data = {{"name", r.node_name}, {"joined", secs(t)}};
    {
      std::lock_guard lock(cache_mu_);
      not_proxies_.erase(uuid);
    }
    if (auto p = store_.backend().put(Record{"proxy", uuid, 0, std::nullopt, data.dump()}); !p)
      return p.error();
  } else {
    Node n;
    n.uuid = uuid;
    n.name = r.node_name;
    n.address = r.tunnel || r.addresses.empty() ? "" : r.addresses.front();
    n.tunnel = r.tunnel;
    n.labels = r.labels;
    n.host_key = r.ssh_public_key;
    n.last_heartbeat = t;
    n.expires = t + options_.heartbeat_ttl;
    if (auto up = store_.upsert_node(n); !up) return up.error();
    std::lock_guard lock(cache_mu_);
    if (known_nodes_.size() < kMaxKnownNodes) known_nodes_[uuid] = KnownNode{n.host_key, n.expires};
  }
  if (auto ok = audit_join(true, uuid, token->id(), ""); !ok) return ok.error();
  AuditEvent cert("cert.create", "TC000I");
  cert.set("cert_type", "host").set("serial", std::to_string(spec->serial))
      .set("identity", {{"user", uuid}, {"principals", spec->principals},
                        {"expires", rfc3339(t + options_.node_certificate_ttl)}})
      .set("ttl", options_.node_certificate_ttl.count());
  if (auto ok = emit_or_refuse(audit_, audit_failures_, options_.cluster_name, t, std::move(cert)); !ok)
    return ok.error();

  JoinReply out;
  out.uuid = uuid;
  out.ssh_host_certificate = ca::certificate_line(ssh_cert.value(), r.node_name);
  out.tls_certificate_pem = tls->pem();
  for (const auto& ca_cert : cas_.tls.trusted_tls_certificates())
    out.tls_ca_pems.push_back(ca_cert.pem());
  out.trusted_user_ca_keys = cas_.ssh_user.trusted_keys_text();
  out.cluster_name = options_.cluster_name;
  return out;
}

Result<std::string> AuthService::read_roles_revision() {
  auto roles = store_.list_roles();
  if (!roles) return roles.error();
  std::string text;
  for (const auto& r : roles.value()) text += r.name + ":" + std::to_string(r.revision) + "\n";
  return hash_token(text).substr(0, 16);
}

Result<std::string> AuthService::roles_revision() {
  uint64_t generation;
  {
    std::lock_guard lock(cache_mu_);
    if (roles_revision_) return *roles_revision_;
    generation = roles_generation_;
  }
  auto rev = read_roles_revision();
  if (!rev) return rev.error();
  std::lock_guard lock(cache_mu_);
  // Kept unless a role changed while it was read (then the next call reads).
  if (generation == roles_generation_) roles_revision_ = rev.value();
  return rev;
}

Result<void> AuthService::refresh_roles_revision() {
  uint64_t generation;
  {
    std::lock_guard lock(cache_mu_);
    generation = roles_generation_;
  }
  auto rev = read_roles_revision();
  if (!rev) return rev.error();
  std::lock_guard lock(cache_mu_);
  if (generation == roles_generation_) roles_revision_ = rev.value();
  return {};
}

void AuthService::store_changed(std::string_view kind) {
  const bool any = kind == "*";
  if (any || kind == "role") invalidate_roles_revision();
  std::lock_guard lock(cache_mu_);
  if (any || kind == "node_removal") removals_.reset();
  if (any || kind == "proxy") not_proxies_.clear();
}

void AuthService::invalidate_roles_revision() {
  std::lock_guard lock(cache_mu_);
  ++roles_generation_;
  roles_revision_.reset();
}

Result<HeartbeatReply> AuthService::heartbeat(const Caller& c, const HeartbeatRequest& r) {
  if (c.kind != CallerKind::node && c.kind != CallerKind::proxy)
    return deny(c, "heartbeat",
                Error::of(c.kind == CallerKind::anonymous ? Errc::unauthenticated
                                                          : Errc::permission_denied,
                          "only a joined node sends heartbeats, with its own certificate"));
  if (r.uuid && *r.uuid != c.name)
    return deny(c, "heartbeat",
                Error::of(Errc::permission_denied,
                          "a node heartbeats only as itself: the certificate is for " + c.name +
                              ", the heartbeat names " + r.uuid->substr(0, 64)));
  if (!is_valid_name(r.node_name))
    return Error::of(Errc::invalid_argument,
                     "the node name must be 1-128 letters, digits and ._@-: (teleport.nodename)");
  if (r.address.empty() && !r.tunnel)
    return Error::of(Errc::invalid_argument, "a heartbeat needs the node's address or tunnel");
  if (r.labels.size() > 64) return Error::of(Errc::invalid_argument, "at most 64 labels");
  const Time t = now();
  Node n;
  n.uuid = c.name;
  n.name = r.node_name;
  n.address = r.tunnel ? "" : r.address;
  n.tunnel = r.tunnel;
  n.labels = r.labels;
  n.last_heartbeat = t;
  n.expires = t + options_.heartbeat_ttl;
  if (c.kind == CallerKind::node) {
    // The host key certified at the join (a heartbeat does not change it):
    // from memory when this service knows the node, else from the store.
    std::unique_lock lock(heartbeats_mu_);
    bool found = false;
    if (auto held = pending_heartbeats_.find(c.name); held != pending_heartbeats_.end()) {
      n.host_key = held->second.host_key;
      found = true;
    } else {
      std::lock_guard cache(cache_mu_);
      if (auto known = known_nodes_.find(c.name); known != known_nodes_.end()) {
        n.host_key = known->second.host_key;
        found = true;
      }
    }
    if (!found) {
      lock.unlock();
      ++heartbeat_store_reads_;
      if (auto known = store_.get_node(c.name)) n.host_key = known->host_key;
      lock.lock();
    }
    {
      std::lock_guard cache(cache_mu_);
      if (known_nodes_.size() < kMaxKnownNodes || known_nodes_.count(c.name))
        known_nodes_[c.name] = KnownNode{n.host_key, n.expires};
    }
    if (options_.heartbeat_write_behind) {
      pending_heartbeats_[c.name] = n;
    } else {
      lock.unlock();
      if (auto up = store_.upsert_node(n); !up) return up.error();
    }
  }
  auto rev = roles_revision();
  if (!rev) return rev.error();
  return HeartbeatReply{options_.heartbeat_interval, n.expires, rev.value()};
}

Result<RolesReply> AuthService::roles(const Caller& c) {
  if (c.kind != CallerKind::node && c.kind != CallerKind::proxy) {
    if (auto ok = require(c, "role", "list", "roles.list"); !ok) return ok.error();
  }
  auto roles = store_.list_roles();
  if (!roles) return roles.error();
  auto rev = roles_revision();
  if (!rev) return rev.error();
  return RolesReply{std::move(roles.value()), rev.value()};
}

Result<CasReply> AuthService::cas(const Caller& c) {
  if (c.kind == CallerKind::anonymous)
    return deny(c, "cas", Error::of(Errc::unauthenticated,
                                    "the CAs are for joined nodes and logged-in users; GET "
                                    "/v1/find gives the CA pin"));
  CasReply out;
  for (const auto& ca_cert : cas_.tls.trusted_tls_certificates())
    out.tls_ca_pems.push_back(ca_cert.pem());
  out.trusted_user_ca_keys = cas_.ssh_user.trusted_keys_text();
  out.host_ca_known_hosts = cas_.ssh_host.known_hosts_text("*");
  out.trusted_host_ca_keys = cas_.ssh_host.trusted_keys_text();
  return out;
}

Result<std::vector<Node>> AuthService::list_nodes(const Caller& c) {
  if (c.kind == CallerKind::anonymous || c.kind == CallerKind::node)
    return deny(c, "nodes.list",
                Error::of(c.kind == CallerKind::anonymous ? Errc::unauthenticated
                                                          : Errc::permission_denied,
                          std::string(c.kind == CallerKind::node ? "a node identity may not list "
                                                                   "nodes; "
                                                                 : "") +
                              "listing nodes needs a user's login (vsh login) or vigilctl"));
  if (auto f = flush_heartbeats(); !f) return f.error();
  auto all = store_.list_nodes();
  if (!all) return all.error();
  const Time t = now();
  std::vector<Node> out;
  for (auto& n : all.value()) {
    if (n.expires <= t) continue;
    if (c.kind == CallerKind::user) {
      // What `vsh ls` shows: nodes some role lets the user reach with some login.
      const auto& ac = c.checker();
      if (!ac.can_see_node(n.labels)) continue;
      bool reachable = false;
      for (const auto& login : ac.logins())
        if (ac.check_login(n.labels, login)) reachable = true;
      if (!reachable) continue;
    }
    out.push_back(std::move(n));
  }
  return out;
}

// ---- Users ---------------------------------------------------------------

Result<void> AuthService::check_user_roles(const std::vector<std::string>& roles) {
  if (roles.empty())
    return Error::of(Errc::invalid_argument,
                     "a user needs at least one role (--roles=access, editor, auditor or yours)");
  for (const auto& name : roles) {
    auto r = store_.get_role(name);
    if (!r) {
      if (r.error().kind() == Errc::not_found)
        return Error::of(Errc::invalid_argument,
                         "role " + name.substr(0, 130) +
                             " does not exist; create it first (vigilctl create role.yaml) or "
                             "pick one of vigilctl get roles");
      return r.error();
    }
  }
  return {};
}

std::string AuthService::signup_url(std::string_view secret) const {
  std::string host = options_.proxy_public_addrs.empty() ? options_.cluster_name + ":3080"
                                                         : options_.proxy_public_addrs.front();
  return "https://" + host + "/web/invite/" + std::string(secret);
}

Result<NewToken> AuthService::new_signup_token(const User& u, Seconds ttl) {
  // Older sign-up links of this user stop working.
  auto all = store_.list_tokens();
  if (!all) return all.error();
  for (const auto& t : all.value())
    if (t.kind == TokenKind::signup && t.user == u.name) (void)store_.delete_token(t.hash);
  return issue_signup_token(store_, u.name, ttl, now());
}

Result<SignupLink> AuthService::add_user(const Caller& c, const AddUserRequest& r) {
  if (auto ok = require(c, "user", "create", "users.add"); !ok) return ok.error();
  if (auto ok = check_user_name(r.name); !ok) return ok.error();
  if (auto ok = check_user_roles(r.roles); !ok) return ok.error();
  if (auto ok = check_logins(r.logins); !ok) return ok.error();
  const Seconds ttl = r.ttl.value_or(options_.signup_ttl);
  if (ttl < Seconds{1} || ttl > kMaxTokenTtl)
    return Error::of(Errc::invalid_argument, "the sign-up link's ttl must be 1s to 48h");
  User u;
  u.name = r.name;
  u.roles = r.roles;
  if (!r.logins.empty()) u.traits["logins"] = r.logins;
  u.created = now();
  auto created = store_.create_user(u);
  if (!created) {
    if (created.error().kind() == Errc::already_exists)
      return Error::of(Errc::already_exists,
                       "user " + r.name + " exists; vigilctl users reset " + r.name +
                           " gives a new sign-up link");
    return created.error();
  }
  auto token = new_signup_token(created.value(), ttl);
  if (!token) return token.error();
  AuditEvent e("user.create", "T1002I");
  e.set("user", c.name).set("name", r.name).set("roles", r.roles).set("connector", "local")
      .set("expires", rfc3339(token->token.expires));
  if (auto ok = emit_or_refuse(audit_, audit_failures_, options_.cluster_name, now(), std::move(e)); !ok)
    return ok.error();
  return SignupLink{created.value(), token->secret, signup_url(token->secret),
                    token->token.expires};
}

Result<std::vector<User>> AuthService::list_users(const Caller& c) {
  if (auto ok = require(c, "user", "list", "users.list"); !ok) return ok.error();
  return store_.list_users();
}

Result<User> AuthService::get_user(const Caller& c, std::string_view name) {
  // A user may read their own record.
  if (!(c.kind == CallerKind::user && c.name == name))
    if (auto ok = require(c, "user", "read", "users.get"); !ok) return ok.error();
  return store_.get_user(name);
}

Result<void> AuthService::remove_user(const Caller& c, std::string_view name) {
  if (auto ok = require(c, "user", "delete", "users.remove"); !ok) return ok.error();
  if (auto gone = store_.delete_user(name); !gone) {
    if (gone.error().kind() == Errc::not_found)
      return Error::of(Errc::not_found,
                       "no user " + std::string(name.substr(0, 130)) + "; vigilctl users ls lists them");
    return gone.error();
  }
  // Their sign-up links go with them.
  if (auto all = store_.list_tokens(); all)
    for (const auto& t : all.value())
      if (t.kind == TokenKind::signup && t.user == name) (void)store_.delete_token(t.hash);
  AuditEvent e("user.delete", "T1004I");
  e.set("user", c.name).set("name", name);
  emit(audit_, audit_failures_, options_.cluster_name, now(), std::move(e));
  return {};
}

Result<SignupLink> AuthService::reset_user(const Caller& c, std::string_view name) {
  if (auto ok = require(c, "user", "update", "users.reset"); !ok) return ok.error();
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto u = store_.get_user(name);
    if (!u) return u.error();
    u->password_hash.clear();
    u->totp.reset();
    auto updated = store_.update_user(u.value());
    if (!updated) {
      if (updated.error().kind() == Errc::failed_precondition) continue;
      return updated.error();
    }
    auto token = new_signup_token(updated.value(), options_.signup_ttl);
    if (!token) return token.error();
    AuditEvent e("user.update", "T1003I");
    e.set("user", c.name).set("name", name).set("reset", true)
        .set("expires", rfc3339(token->token.expires));
    if (auto ok = emit_or_refuse(audit_, audit_failures_, options_.cluster_name, now(), std::move(e)); !ok)
      return ok.error();
    return SignupLink{updated.value(), token->secret, signup_url(token->secret),
                      token->token.expires};
  }
  return Error::of(Errc::unavailable, "the user changed too often meanwhile; try again");
}

// ---- Sign-up and login ---------------------------------------------------

Result<SignupReply> AuthService::signup(const Caller& c, const SignupRequest& r) {
  (void)c;
  // The password first: a bad one must not burn the token.
  if (r.password.size() < kMinPasswordBytes || r.password.size() > kMaxPasswordBytes)
    return Error::of(Errc::invalid_argument,
                     "the password must be 12 to 1024 bytes long; choose another");
  auto hash = hash_password(r.password);
  if (!hash) return hash.error();
  std::optional<std::string> totp_secret;
  if (options_.second_factor == SecondFactor::otp) {
    auto s = new_totp_secret();
    if (!s) return s.error();
    totp_secret = std::move(s.value());
  }
  auto token = consume_signup_token(store_, r.token, now());
  if (!token) return token.error();
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto u = store_.get_user(token->user);
    if (!u) return u.error();
    u->password_hash = hash.value();
    if (totp_secret) u->totp = Totp{*totp_secret, -1};
    auto updated = store_.update_user(u.value());
    if (!updated) {
      if (updated.error().kind() == Errc::failed_precondition) continue;
      return updated.error();
    }
    AuditEvent e("user.update", "T1003I");
    e.set("user", token->user).set("name", token->user).set("signup", true)
        .set("second_factor", second_factor_name(options_.second_factor));
    emit(audit_, audit_failures_, options_.cluster_name, now(), std::move(e));
    SignupReply out;
    out.user = token->user;
    if (totp_secret) {
      out.totp_secret_base32 = totp_base32(*totp_secret);
      out.totp_uri = totp_uri(options_.cluster_name, token->user, *totp_secret);
    }
    return out;
  }
  return Error::of(Errc::unavailable, "the user changed too often meanwhile; ask for a new link");
}

Error AuthService::login_failure(const LoginRequest& r, const std::string& source,
                                 std::string reason, Error shown) {
  const Time t = now();
  if (shown.kind() != Errc::resource_exhausted) {
    limiter_.record_failure("user:" + r.user, t);
    limiter_.record_failure("source:" + source, t);
  }
  AuditEvent e("user.login", "T1000W");
  e.set("user", r.user).set("method", "local").set("success", false).set("error", reason)
      .set("addr.remote", source);
  emit(audit_, audit_failures_, options_.cluster_name, t, std::move(e));
  return shown;
}

Result<AuthService::Authenticated> AuthService::authenticate(const LoginRequest& r,
                                                             const std::string& source, Time t) {
  const Error invalid = Error::of(
      Errc::unauthenticated, options_.second_factor == SecondFactor::otp
                                 ? "invalid user name, password or second-factor code"
                                 : "invalid user name or password");
  if (r.user.empty() || r.user.size() > 128)
    return Error::of(Errc::invalid_argument, "give a user name (1-128 bytes)");
  if (r.password.size() > kMaxPasswordBytes)
    return login_failure(r, source, "password longer than 1024 bytes", invalid);
  for (const std::string& key : {"user:" + r.user, "source:" + source}) {
    if (auto until = limiter_.blocked_until(key, t)) {
      return login_failure(
          r, source, "rate limited (" + key + ")",
          Error::of(Errc::resource_exhausted,
                    "too many failed logins " +
                        std::string(key.starts_with("user:") ? "for this user"
                                                              : "from this address") +
                        "; try again after " + rfc3339(*until)));
    }
  }
  auto user = store_.get_user(r.user);
  if (!user) {
    if (user.error().kind() != Errc::not_found) return user.error();
    burn_password_time(r.password);
    return login_failure(r, source, "unknown user", invalid);
  }
  if (user->password_hash.empty()) {
    burn_password_time(r.password);
    return login_failure(r, source, "no password set yet (sign-up not completed)", invalid);
  }
  if (auto ok = verify_password(user->password_hash, r.password); !ok)
    return login_failure(r, source, "wrong password", invalid);
  if (options_.second_factor == SecondFactor::otp) {
    if (!user->totp)
      return login_failure(r, source, "no second factor enrolled", invalid);
    if (auto ok = use_totp(store_, r.user, r.totp_code, t); !ok)
      return login_failure(r, source, "second factor: " + ok.error().message, invalid);
  }
  // Authenticated: what the user's roles allow.
  auto roles = resolve_roles(user.value(), [&](const std::string& n) { return store_.get_role(n); });
  if (!roles) return login_failure(r, source, roles.error().message, roles.error());
  AccessChecker ac(roles.value(), user->traits);
  if (ac.max_session_ttl() <= Seconds{0})
    return login_failure(r, source, "the user has no role",
                         Error::of(Errc::permission_denied,
                                   "user " + r.user + " has no role; ask an administrator"));
  return Authenticated{std::move(user.value()), std::move(roles.value())};
}

Result<LoginReply> AuthService::login(const Caller& c, const LoginRequest& r) {
  const Time t = now();
  // Behind the proxy the caller's address is the client's (caller()
  // believes X-Forwarded-For from a proxy only).
  const std::string source = source_of(c.address);
  auto authenticated = authenticate(r, source, t);
  if (!authenticated) return authenticated.error();
  const User* user = &authenticated->user;
  const std::vector<Role>* roles = &authenticated->roles;
  AccessChecker ac(*roles, user->traits);
  const Seconds max_ttl = ac.max_session_ttl();
  Seconds ttl = r.ttl.value_or(options_.default_login_ttl);
  if (ttl <= Seconds{0}) return Error::of(Errc::invalid_argument, "the ttl must be positive");
  ttl = std::min(ttl, max_ttl);

  auto ssh_key = sshcert::parse_public_key_line(r.ssh_public_key);
  if (!ssh_key)
    return Error::of(Errc::invalid_argument,
                     "the SSH public key does not parse (give the text of a .pub file): " +
                         ssh_key.error().message);
  std::vector<std::string> logins = ac.logins();
  std::vector<std::string> principals = logins;
  if (principals.empty()) principals.push_back(std::string(kNoLoginPrincipal));
  std::vector<std::string> role_names;
  for (const auto& role : *roles) role_names.push_back(role.name);

  ca::UserCertificateRequest ur;
  ur.public_key = ssh_key->blob;
  ur.user = r.user;
  ur.logins = principals;
  ur.now = secs(t);
  ur.ttl = ttl.count();
  ur.recorded_kinds = ac.enhanced_recording();
  auto spec = ca::user_certificate(ur);
  if (!spec) return spec.error();
  spec->extensions.push_back(
      sshcert::CertOption{std::string(kRolesExtension), ca::option_value(joined(role_names, ","))});
  // The user's own logins trait: what {{internal.logins}} expands to when a
  // node evaluates a role (the principals are every role's logins together,
  // which would let one role's template take another role's login).
  std::vector<std::string> trait_logins;
  if (auto it = user->traits.find("logins"); it != user->traits.end()) trait_logins = it->second;
  spec->extensions.push_back(sshcert::CertOption{std::string(kLoginsExtension),
                                                 ca::option_value(joined(trait_logins, ","))});
  auto ssh_cert = cas_.ssh_user.sign_ssh(spec.value());
  if (!ssh_cert) return ssh_cert.error();

  ca::TlsIssueRequest tr;
  tr.identity.kind = ca::TlsIdentityKind::user;
  tr.identity.cluster = options_.cluster_name;
  tr.identity.name = r.user;
  tr.identity.roles = role_names;
  tr.identity.logins = logins;
  tr.subject_public_key = r.tls_public_key;
  tr.now = secs(t);
  tr.ttl = ttl.count();
  auto tls = cas_.tls.issue_tls(tr);
  if (!tls)
    return Error::of(Errc::invalid_argument,
                     "cannot issue the TLS certificate: " + tls.error().message);

  limiter_.clear("user:" + r.user);
  AuditEvent ok("user.login", "T1000I");
  ok.set("user", r.user).set("method", "local").set("success", true).set("addr.remote", source);
  if (auto r = emit_or_refuse(audit_, audit_failures_, options_.cluster_name, t, std::move(ok)); !r)
    return r.error();
  const std::string expires = rfc3339(t + ttl);
  AuditEvent ce("cert.create", "TC000I");
  ce.set("cert_type", "user").set("serial", std::to_string(spec->serial)).set("ttl", ttl.count())
      .set("identity", {{"user", r.user}, {"roles", role_names}, {"logins", principals},
                        {"expires", expires}});
  if (auto r = emit_or_refuse(audit_, audit_failures_, options_.cluster_name, t, std::move(ce)); !r)
    return r.error();
  AuditEvent te("cert.create", "TC000I");
  te.set("cert_type", "tls_user").set("serial", tls->der().empty() ? "" : [&] {
      // The serial as verify_tls_peer reads it back.
      auto id = ca::verify_tls_peer(tls->get(), cas_.tls.trusted_tls_certificates(),
                                    options_.cluster_name, ca::TlsUsage::client, secs(t));
      return id ? id->serial : std::string();
    }())
      .set("ttl", ttl.count())
      .set("identity", {{"user", r.user}, {"roles", role_names}, {"logins", logins},
                        {"expires", expires}});
  if (auto r = emit_or_refuse(audit_, audit_failures_, options_.cluster_name, t, std::move(te)); !r)
    return r.error();

  LoginReply out;
  out.ssh_certificate = ca::certificate_line(ssh_cert.value(), r.user);
  out.tls_certificate_pem = tls->pem();
  for (const auto& ca_cert : cas_.tls.trusted_tls_certificates())
    out.tls_ca_pems.push_back(ca_cert.pem());
  out.host_ca_known_hosts = cas_.ssh_host.known_hosts_text("*");
  out.principals = principals;
  out.recorded_kinds = ac.enhanced_recording();
  out.ttl = ttl;
  out.expires = t + ttl;
  return out;
}

// ---- Resources -----------------------------------------------------------

Result<std::vector<CreatedResource>> AuthService::create_resources(
    const Caller& c, const CreateResourcesRequest& r) {
  // Only users and the admin write resources: others are refused before
  // their text is even read.
  if (c.kind != CallerKind::admin && c.kind != CallerKind::user)
    if (auto ok = require(c, "role", "create", "resources.create"); !ok) return ok.error();
  auto parsed = parse_resources(r.text, "the request");
  if (!parsed) return parsed.error();
  // Permissions and checks for every document first: all or nothing is
  // refused up front (the writes themselves are one by one).
  for (const auto& res : parsed.value()) {
    const bool is_role = std::holds_alternative<Role>(res);
    const std::string kind = is_role ? "role" : "user";
    if (auto ok = require(c, kind, "create", kind + ".create"); !ok) return ok.error();
    if (r.force)
      if (auto ok = require(c, kind, "update", kind + ".update"); !ok) return ok.error();
    if (is_role) {
      const Role& role = std::get<Role>(res);
      if (role.name == ca::kNodeRole)
        return Error::of(Errc::invalid_argument,
                         "the role name 'node' is reserved for nodes' identities; choose another");
    } else {
      const User& u = std::get<User>(res);
      if (auto ok = check_user_name(u.name); !ok) return ok.error();
    }
  }
  std::vector<CreatedResource> out;
  for (const auto& res : parsed.value()) {
    if (std::holds_alternative<Role>(res)) {
      Role role = std::get<Role>(res);
      auto existing = store_.get_role(role.name);
      bool replaced = false;
      if (existing) {
        if (!r.force)
          return Error::of(Errc::already_exists,
                           "role " + role.name + " exists; use vigilctl create -f to replace it");
        role.revision = existing->revision;
        auto up = store_.update_role(role);
        invalidate_roles_revision();  // after the write: a reader under way does not keep the old one
        if (!up) return up.error();
        replaced = true;
      } else {
        if (existing.error().kind() != Errc::not_found) return existing.error();
        auto cr = store_.create_role(role);
        invalidate_roles_revision();
        if (!cr) return cr.error();
      }
      AuditEvent e(replaced ? "role.updated" : "role.created", replaced ? "T9002I" : "T9000I");
      e.set("user", c.name).set("name", role.name);
      emit(audit_, audit_failures_, options_.cluster_name, now(), std::move(e));
      out.push_back({"role", role.name, replaced});
    } else {
      User u = std::get<User>(res);
      if (auto ok = check_user_roles(u.roles); !ok) return ok.error();
      auto existing = store_.get_user(u.name);
      bool replaced = false;
      if (existing) {
        if (!r.force)
          return Error::of(Errc::already_exists,
                           "user " + u.name + " exists; use vigilctl create -f to replace it");
        // The secrets stay: a resource file never carries them.
        u.password_hash = existing->password_hash;
        u.totp = existing->totp;
        u.created = existing->created;
        u.revision = existing->revision;
        auto up = store_.update_user(u);
        if (!up) return up.error();
        replaced = true;
      } else {
        if (existing.error().kind() != Errc::not_found) return existing.error();
        u.created = now();
        auto cr = store_.create_user(u);
        if (!cr) return cr.error();
      }
      AuditEvent e(replaced ? "user.update" : "user.create", replaced ? "T1003I" : "T1002I");
      e.set("user", c.name).set("name", u.name).set("roles", u.roles).set("connector", "local");
      emit(audit_, audit_failures_, options_.cluster_name, now(), std::move(e));
      out.push_back({"user", u.name, replaced});
    }
  }
  return out;
}

Result<std::string> AuthService::get_resources(const Caller& c, std::string_view kind,
                                               std::string_view name, Format format) {
  const std::string k(kind);
  const std::string verb = name.empty() ? "list" : "read";
  if (k != "role" && k != "user" && k != "token" && k != "node")
    return Error::of(Errc::invalid_argument,
                     "unknown kind '" + k.substr(0, 32) + "'; use role, user, token or node");
  if (auto ok = require(c, k, verb, k + ".get"); !ok) return ok.error();
  auto pick = [&](auto all, auto key) {
    if (name.empty()) return all;
    decltype(all) one;
    for (auto& x : all)
      if (key(x) == name) one.push_back(std::move(x));
    return one;
  };
  auto not_found = [&] {
    return Error::of(Errc::not_found, k + " " + std::string(name.substr(0, 130)) +
                                          " does not exist; vigilctl get " + k +
                                          "s lists them");
  };
  if (k == "role") {
    auto all = store_.list_roles();
    if (!all) return all.error();
    auto v = pick(all.value(), [](const Role& r) { return r.name; });
    if (!name.empty() && v.empty()) return not_found();
    return cluster::format(v, format);
  }
  if (k == "user") {
    auto all = store_.list_users();
    if (!all) return all.error();
    auto v = pick(all.value(), [](const User& u) { return u.name; });
    if (!name.empty() && v.empty()) return not_found();
    return cluster::format(v, format);
  }
  if (k == "token") {
    auto all = store_.list_tokens();
    if (!all) return all.error();
    auto v = pick(all.value(), [](const Token& t) { return t.id(); });
    if (!name.empty() && v.empty()) return not_found();
    return cluster::format(v, format);
  }
  if (auto f = flush_heartbeats(); !f) return f.error();
  auto all = store_.list_nodes();
  if (!all) return all.error();
  auto v = pick(all.value(), [](const Node& n) { return n.uuid; });
  if (!name.empty() && v.empty()) return not_found();
  return cluster::format(v, format);
}

Result<void> AuthService::remove_resource(const Caller& c, std::string_view kind,
                                          std::string_view name) {
  const std::string k(kind);
  if (k == "user") return remove_user(c, name);
  if (k == "token") return remove_token(c, name);
  if (k != "role" && k != "node")
    return Error::of(Errc::invalid_argument,
                     "unknown kind '" + k.substr(0, 32) + "'; use role, user, token or node");
  if (auto ok = require(c, k, "delete", k + ".delete"); !ok) return ok.error();
  if (k == "node") {
    // Not brought back by a heartbeat held before the removal (a flush
    // under way finishes first).
    std::lock_guard flushing(flush_mu_);
    {
      std::lock_guard lock(heartbeats_mu_);
      pending_heartbeats_.erase(std::string(name));
      std::lock_guard cache(cache_mu_);
      known_nodes_.erase(std::string(name));
    }
    // Recorded before the node goes: its certificates are refused from now
    // on, whatever it sends next.
    const int64_t at = secs(now());
    if (auto r = store_.put_node_removal(
            name, at, at + options_.node_certificate_ttl.count() + ca::kClockSkew);
        !r)
      return r.error();
    {
      std::lock_guard cache(cache_mu_);
      if (removals_) (*removals_)[std::string(name)] = at;
    }
    if (auto gone = store_.delete_node(name); !gone) return gone.error();
    AuditEvent e("node.delete", "V9005I");
    e.set("user", c.name).set("name", name);
    emit(audit_, audit_failures_, options_.cluster_name, now(), std::move(e));
    return {};
  }
  for (const auto& b : builtin_roles())
    if (b.name == name)
      return Error::of(Errc::failed_precondition,
                       "role " + b.name +
                           " is built in: the cluster's set-up and `users add --roles` rely on "
                           "it; edit it with vigilctl create -f instead of deleting it");
  auto users = store_.list_users();
  if (!users) return users.error();
  for (const auto& u : users.value())
    if (std::find(u.roles.begin(), u.roles.end(), name) != u.roles.end())
      return Error::of(Errc::failed_precondition,
                       "role " + std::string(name) + " is held by user " + u.name +
                           "; take it from the users first");
  auto gone = store_.delete_role(name);
  invalidate_roles_revision();
  if (!gone) {
    if (gone.error().kind() == Errc::not_found)
      return Error::of(Errc::not_found, "role " + std::string(name.substr(0, 130)) +
                                            " does not exist; vigilctl get roles lists them");
    return gone.error();
  }
  AuditEvent e("role.deleted", "T9001I");
  e.set("user", c.name).set("name", name);
  emit(audit_, audit_failures_, options_.cluster_name, now(), std::move(e));
  return {};
}

// ---- At start ------------------------------------------------------------

Result<ca::TlsCertificate> AuthService::issue_server_certificate(
    std::string_view host_uuid, std::string_view host_name,
    const std::vector<std::string>& addresses, std::string_view spki_der) {
  ca::TlsIssueRequest tr;
  tr.identity.kind = ca::TlsIdentityKind::node;
  tr.identity.cluster = options_.cluster_name;
  tr.identity.name = std::string(host_uuid);
  // "auth" tells the service from a node: clients require it of the server
  // they call (a joined node's certificate, also valid for servers, has
  // only "node": it cannot pass for the auth service).
  tr.identity.roles = {std::string(ca::kNodeRole), std::string(kAuthServerRole)};
  tr.identity.node_name = std::string(host_name);
  tr.identity.addresses = addresses;
  tr.subject_public_key = std::string(spki_der);
  tr.now = secs(now());
  tr.ttl = options_.node_certificate_ttl.count();
  return cas_.tls.issue_tls(tr);
}

Result<void> AuthService::write_admin_identity(const std::string& data_dir) {
  const std::string dir = data_dir + "/admin";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Error::sys("cannot create " + dir + " (is data_dir writable?)");
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0) return Error::sys("cannot stat " + dir);
  if (!S_ISDIR(st.st_mode))
    return Error::of(Errc::failed_precondition, dir + " is not a directory; remove it");
  if (st.st_uid != ::geteuid())
    return Error::of(Errc::failed_precondition, dir + " belongs to another user; remove it");
  if (::chmod(dir.c_str(), 0700) != 0) return Error::sys("cannot chmod 0700 " + dir);
  auto key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
  if (!key) return key.error();
  ca::TlsIssueRequest tr;
  tr.identity.kind = ca::TlsIdentityKind::user;
  tr.identity.cluster = options_.cluster_name;
  tr.identity.name = std::string(kAdminName);
  tr.subject_public_key = key->spki_der();
  tr.now = secs(now());
  tr.ttl = options_.admin_identity_ttl.count();
  auto cert = cas_.tls.issue_tls(tr);
  if (!cert) return cert.error();
  auto pem = key->to_pem();
  if (!pem) return pem.error();
  if (auto ok = ca::write_file_atomic(dir + "/key.pem", pem->view(), 0600); !ok) return ok;
  if (auto ok = ca::write_file_atomic(dir + "/cert.pem", cert->pem(), 0600); !ok) return ok;
  std::string cas;
  for (const auto& c : cas_.tls.trusted_tls_certificates()) cas += c.pem();
  if (auto ok = ca::write_file_atomic(dir + "/ca.pem", cas, 0644); !ok) return ok;
  AuditEvent e("cert.create", "TC000I");
  e.set("cert_type", "tls_user").set("ttl", options_.admin_identity_ttl.count())
      .set("identity", {{"user", kAdminName}, {"expires", rfc3339(now() + options_.admin_identity_ttl)}});
  return emit_or_refuse(audit_, audit_failures_, options_.cluster_name, now(), std::move(e));
}

Result<size_t> AuthService::purge_expired() {
  const Time t = now();
  limiter_.prune(t);
  if (auto f = flush_heartbeats(); !f) return f.error();
  {
    // The store purges the nodes expired at t; the memory forgets them too
    // (a flushed heartbeat's expiry is the one held here).
    std::lock_guard cache(cache_mu_);
    for (auto it = known_nodes_.begin(); it != known_nodes_.end();)
      it = it->second.expires <= t ? known_nodes_.erase(it) : std::next(it);
  }
  auto web = store_.backend().purge_expired(kWebSessionKind, secs(t));
  if (!web) return web.error();
  auto rest = store_.purge_expired(t);
  if (!rest) return rest.error();
  return web.value() + rest.value();
}

Result<size_t> AuthService::flush_heartbeats() {
  // The roles' revision, read again: a role written by another process
  // than this service shows within the flush period.
  if (auto r = refresh_roles_revision(); !r) return r.error();
  std::lock_guard flushing(flush_mu_);
  std::map<std::string, Node, std::less<>> batch;
  {
    std::lock_guard lock(heartbeats_mu_);
    batch.swap(pending_heartbeats_);
  }
  if (batch.empty()) return size_t{0};
  std::vector<Node> nodes;
  nodes.reserve(batch.size());
  for (auto& [uuid, n] : batch) nodes.push_back(n);
  if (auto w = store_.upsert_nodes(nodes); !w) {
    std::lock_guard lock(heartbeats_mu_);
    // Held again for the next flush, unless a newer heartbeat came.
    for (auto& [uuid, n] : batch) pending_heartbeats_.try_emplace(uuid, std::move(n));
    return w.error();
  }
  return nodes.size();
}

size_t AuthService::pending_heartbeats() const {
  std::lock_guard lock(heartbeats_mu_);
  return pending_heartbeats_.size();
}

}  // namespace vigil::authsvc
