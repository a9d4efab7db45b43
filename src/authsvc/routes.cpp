#include "authsvc/routes.hpp"

#include <set>

#include <nlohmann/json.hpp>

#include "api/server.hpp"
#include "audit/base64.hpp"
#include "cluster/format.hpp"
#include "cluster/parse.hpp"

namespace vigil::authsvc {

using nlohmann::json;
using api::Reply;
using api::Request;

namespace {

constexpr size_t kMaxField = 4096;      // a name, a key line, a token
constexpr size_t kMaxListItems = 256;   // roles, logins, addresses, labels

Error bad(std::string message) { return Error::of(Errc::invalid_argument, std::move(message)); }

// A request's JSON object, read strictly: every field named in `allowed`,
// nothing else; each value of the type and size asked for.
class Body {
 public:
  static Result<Body> of(const Request& q, std::set<std::string> allowed) {
    const json* j = &q.json;
    static const json empty = json::object();
    if (q.body.empty()) j = &empty;
    else if (q.json.is_discarded() || q.json.is_null()) {
      auto parsed = json::parse(q.body, nullptr, false);
      if (parsed.is_discarded())
        return bad("the request body is not JSON; send a JSON object (Content-Type: "
                   "application/json)");
      return of_json(std::move(parsed), std::move(allowed));
    }
    return of_json(*j, std::move(allowed));
  }
  static Result<Body> of_json(json j, std::set<std::string> allowed) {
    if (!j.is_object()) return bad("the request body must be a JSON object");
    for (const auto& [k, v] : j.items()) {
      (void)v;
      if (!allowed.contains(k)) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return bad("unknown field '" + k.substr(0, 64) + "'; this call takes: " + list);
      }
    }
    return Body(std::move(j));
  }

  Result<std::string> str(const std::string& key, bool required, size_t max = kMaxField) const {
    if (!j_.contains(key)) {
      if (required) return bad("the field '" + key + "' is required");
      return std::string();
    }
    const json& v = j_[key];
    if (!v.is_string()) return bad("the field '" + key + "' must be a string");
    std::string s = v.get<std::string>();
    if (s.size() > max)
      return bad("the field '" + key + "' is longer than " + std::to_string(max) + " bytes");
    return s;
  }
  Result<std::vector<std::string>> list(const std::string& key, bool required) const {
    std::vector<std::string> out;
    if (!j_.contains(key)) {
      if (required) return bad("the field '" + key + "' is required (a list of strings)");
      return out;
    }
    const json& v = j_[key];
    if (!v.is_array()) return bad("the field '" + key + "' must be a list of strings");
    if (v.size() > kMaxListItems)
      return bad("the field '" + key + "' has more than " + std::to_string(kMaxListItems) +
                 " items");
    for (const auto& e : v) {
      if (!e.is_string() || e.get_ref<const std::string&>().size() > kMaxField)
        return bad("every item of '" + key + "' must be a string of at most 4096 bytes");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  Result<bool> boolean(const std::string& key) const {
    if (!j_.contains(key)) return false;
    if (!j_[key].is_boolean()) return bad("the field '" + key + "' must be true or false");
    return j_[key].get<bool>();
  }
  Result<cluster::Labels> labels(const std::string& key) const {
    cluster::Labels out;
    if (!j_.contains(key)) return out;
    const json& v = j_[key];
    if (!v.is_object() || v.size() > kMaxListItems)
      return bad("the field '" + key + "' must be an object of at most 256 string labels");
    for (const auto& [k, val] : v.items()) {
      if (!val.is_string() || !cluster::is_valid_name(k) ||
          val.get_ref<const std::string&>().size() > 256)
        return bad("label '" + k.substr(0, 64) +
                   "': keys are names (letters, digits, ._@-:), values strings of at most 256 "
                   "bytes");
      out[k] = val.get<std::string>();
    }
    return out;
  }
  // "30m", "1h30m" or a number of seconds.
  Result<std::optional<Seconds>> duration(const std::string& key) const {
    if (!j_.contains(key)) return std::optional<Seconds>();
    const json& v = j_[key];
    if (v.is_number_integer()) {
      const int64_t s = v.get<int64_t>();
      if (s < 1 || s > 365LL * 24 * 3600)
        return bad("the field '" + key + "' must be 1 s to 365 days");
      return std::optional<Seconds>(Seconds{s});
    }
    if (v.is_string()) {
      if (auto d = cluster::parse_duration(v.get<std::string>()))
        return std::optional<Seconds>(*d);
    }
    return bad("the field '" + key + "' must be a duration such as \"30m\" or \"12h\"");
  }

 private:
  explicit Body(json j) : j_(std::move(j)) {}
  json j_;
};

json times(Time t) { return cluster::rfc3339(t); }

json kinds_json(KindSet k) {
  json out = json::array();
  for (Kind kind : {Kind::command, Kind::disk, Kind::network})
    if (k.has(kind)) out.push_back(kind_name(kind));
  return out;
}

json system_roles_json(const std::vector<cluster::SystemRole>& roles) {
  json out = json::array();
  for (auto r : roles) out.push_back(cluster::system_role_name(r));
  return out;
}

json token_json(const cluster::Token& t) {
  json j = cluster::to_json(t);
  return j;
}

json user_json(const cluster::User& u) { return cluster::to_json(u); }

json signup_json(const SignupLink& s) {
  return {{"user", user_json(s.user)},
          {"token", s.token},
          {"url", s.url},
          {"expires", times(s.expires)}};
}

Result<Caller> who(AuthService& s, const Request& q) { return s.caller(q.peer); }

#define VIGIL_TRY(var, expr)              \
  auto var = (expr);                      \
  if (!var) return var.error();

}  // namespace

void add_routes(api::Router& r, AuthService& s) {
  r.add("GET", "/v1/find", [&s](const Request&) -> Result<Reply> {
    FindReply f = s.find();
    return Reply::json({{"server_version", f.server_version},
                        {"cluster_name", f.cluster_name},
                        {"auth", {{"second_factor", second_factor_name(f.second_factor)},
                                  {"local", {{"name", ""}}},
                                  {"type", "local"}}},
                        {"proxy", {{"public_addrs", f.proxy_public_addrs}}},
                        {"ca_pin", f.ca_pin}});
  });

  r.add("GET", "/v1/status", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(st, s.status(c.value()));
    return Reply::json({{"cluster", st->cluster_name},
                        {"version", st->server_version},
                        {"ca_pin", st->ca_pin}});
  });

  // Tokens.
  auto create_token = [&s](const Request& q, bool node_only) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(b, Body::of(q, node_only ? std::set<std::string>{"ttl"}
                                       : std::set<std::string>{"roles", "ttl"}));
    CreateTokenRequest req;
    if (node_only) {
      req.roles = {cluster::SystemRole::node};
    } else {
      VIGIL_TRY(names, b->list("roles", true));
      for (const auto& n : names.value()) {
        auto role = cluster::parse_system_role(n);
        if (!role) return bad("unknown token role '" + n.substr(0, 32) + "'; use node or proxy");
        req.roles.push_back(*role);
      }
    }
    VIGIL_TRY(ttl, b->duration("ttl"));
    if (ttl.value()) req.ttl = *ttl.value();
    VIGIL_TRY(t, s.create_token(c.value(), req));
    return Reply::json({{"token", t->secret},
                        {"id", t->id},
                        {"roles", system_roles_json(t->roles)},
                        {"expires", times(t->expires)}},
                       201);
  };
  r.add("POST", "/v1/tokens", [create_token](const Request& q) { return create_token(q, false); });
  r.add("POST", "/v1/nodes/token",
        [create_token](const Request& q) { return create_token(q, true); });
  r.add("GET", "/v1/tokens", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(all, s.list_tokens(c.value()));
    json out = json::array();
    for (const auto& t : all.value()) out.push_back(token_json(t));
    return Reply::json({{"tokens", out}});
  });
  r.add("DELETE", "/v1/tokens/:id", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(ok, s.remove_token(c.value(), q.param("id")));
    return Reply::no_content();
  });

  // Nodes.
  r.add("POST", "/v1/join", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(b, Body::of(q, {"token", "role", "node_name", "addresses", "tunnel", "labels",
                              "ssh_public_key", "tls_public_key"}));
    JoinRequest req;
    VIGIL_TRY(token, b->str("token", true));
    VIGIL_TRY(role, b->str("role", false));
    VIGIL_TRY(name, b->str("node_name", true));
    VIGIL_TRY(addrs, b->list("addresses", false));
    VIGIL_TRY(tunnel, b->boolean("tunnel"));
    VIGIL_TRY(labels, b->labels("labels"));
    VIGIL_TRY(ssh, b->str("ssh_public_key", true));
    VIGIL_TRY(tls, b->str("tls_public_key", true));
    req.token = token.value();
    if (!role->empty()) {
      auto sr = cluster::parse_system_role(role.value());
      if (!sr) return bad("unknown role '" + role->substr(0, 32) + "'; use node or proxy");
      req.role = *sr;
    }
    req.node_name = name.value();
    req.addresses = addrs.value();
    req.tunnel = tunnel.value();
    req.labels = labels.value();
    req.ssh_public_key = ssh.value();
    auto der = audit::decode_base64(tls.value());
    if (!der)
      return bad("tls_public_key must be the SubjectPublicKeyInfo DER in standard base64");
    req.tls_public_key = *der;
    VIGIL_TRY(j, s.join(c.value(), req));
    return Reply::json({{"uuid", j->uuid},
                        {"ssh_host_certificate", j->ssh_host_certificate},
                        {"tls_certificate", j->tls_certificate_pem},
                        {"tls_ca_certificates", j->tls_ca_pems},
                        {"trusted_user_ca_keys", j->trusted_user_ca_keys},
                        {"cluster_name", j->cluster_name}});
  });
  r.add("POST", "/v1/nodes/heartbeat", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(b, Body::of(q, {"node_name", "address", "tunnel", "labels", "uuid"}));
    HeartbeatRequest req;
    VIGIL_TRY(name, b->str("node_name", true));
    VIGIL_TRY(addr, b->str("address", false));
    VIGIL_TRY(tunnel, b->boolean("tunnel"));
    VIGIL_TRY(labels, b->labels("labels"));
    VIGIL_TRY(uuid, b->str("uuid", false));
    req.node_name = name.value();
    req.address = addr.value();
    req.tunnel = tunnel.value();
    req.labels = labels.value();
    if (!uuid->empty()) req.uuid = uuid.value();
    VIGIL_TRY(h, s.heartbeat(c.value(), req));
    return Reply::json({{"interval_seconds", h->interval.count()},
                        {"expires", times(h->expires)},
                        {"roles_revision", h->roles_revision}});
  });
  r.add("GET", "/v1/roles", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(roles, s.roles(c.value()));
    json out = json::array();
    for (const auto& role : roles->roles) out.push_back(cluster::to_json(role));
    return Reply::json({{"roles", out}, {"revision", roles->revision}});
  });
  r.add("GET", "/v1/cas", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(cas, s.cas(c.value()));
    return Reply::json({{"tls_ca_certificates", cas->tls_ca_pems},
                        {"trusted_user_ca_keys", cas->trusted_user_ca_keys},
                        {"host_ca_known_hosts", cas->host_ca_known_hosts},
                        {"trusted_host_ca_keys", cas->trusted_host_ca_keys}});
  });
  r.add("GET", "/v1/nodes", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(nodes, s.list_nodes(c.value()));
    json out = json::array();
    for (const auto& n : nodes.value()) out.push_back(cluster::to_json(n));
    return Reply::json({{"nodes", out}});
  });

  // Users.
  r.add("POST", "/v1/users", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(b, Body::of(q, {"name", "roles", "logins", "ttl"}));
    AddUserRequest req;
    VIGIL_TRY(name, b->str("name", true, 256));
    VIGIL_TRY(roles, b->list("roles", true));
    VIGIL_TRY(logins, b->list("logins", false));
    VIGIL_TRY(ttl, b->duration("ttl"));
    req.name = name.value();
    req.roles = roles.value();
    req.logins = logins.value();
    req.ttl = ttl.value();
    VIGIL_TRY(link, s.add_user(c.value(), req));
    return Reply::json(signup_json(link.value()), 201);
  });
  r.add("GET", "/v1/users", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(users, s.list_users(c.value()));
    json out = json::array();
    for (const auto& u : users.value()) out.push_back(user_json(u));
    return Reply::json({{"users", out}});
  });
  r.add("GET", "/v1/users/:name", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(u, s.get_user(c.value(), q.param("name")));
    return Reply::json(user_json(u.value()));
  });
  r.add("DELETE", "/v1/users/:name", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(ok, s.remove_user(c.value(), q.param("name")));
    return Reply::no_content();
  });
  r.add("POST", "/v1/users/:name/reset", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(link, s.reset_user(c.value(), q.param("name")));
    return Reply::json(signup_json(link.value()));
  });

  // Sign-up and login.
  r.add("POST", "/v1/signup", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(b, Body::of(q, {"token", "password"}));
    VIGIL_TRY(token, b->str("token", true));
    VIGIL_TRY(password, b->str("password", true, 1024));
    VIGIL_TRY(out, s.signup(c.value(), SignupRequest{token.value(), password.value()}));
    json j = {{"user", out->user}};
    if (out->totp_secret_base32) {
      j["totp_secret"] = *out->totp_secret_base32;
      j["totp_uri"] = *out->totp_uri;
    }
    return Reply::json(j);
  });
  r.add("POST", "/v1/login", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(b, Body::of(q, {"user", "password", "totp_code", "ssh_public_key",
                              "tls_public_key", "ttl"}));
    LoginRequest req;
    VIGIL_TRY(user, b->str("user", true, 256));
    VIGIL_TRY(password, b->str("password", true, 1024));
    VIGIL_TRY(code, b->str("totp_code", false, 16));
    VIGIL_TRY(ssh, b->str("ssh_public_key", true));
    VIGIL_TRY(tls, b->str("tls_public_key", true));
    VIGIL_TRY(ttl, b->duration("ttl"));
    req.user = user.value();
    req.password = password.value();
    req.totp_code = code.value();
    req.ssh_public_key = ssh.value();
    auto der = audit::decode_base64(tls.value());
    if (!der)
      return bad("tls_public_key must be the SubjectPublicKeyInfo DER in standard base64");
    req.tls_public_key = *der;
    req.ttl = ttl.value();
    VIGIL_TRY(out, s.login(c.value(), req));
    return Reply::json({{"ssh_certificate", out->ssh_certificate},
                        {"tls_certificate", out->tls_certificate_pem},
                        {"tls_ca_certificates", out->tls_ca_pems},
                        {"host_ca_known_hosts", out->host_ca_known_hosts},
                        {"principals", out->principals},
                        {"enhanced_recording", kinds_json(out->recorded_kinds)},
                        {"ttl_seconds", out->ttl.count()},
                        {"expires", times(out->expires)}});
  });

  // Browser sessions (docs/api.md, "Browser sessions"): the web page's
  // login, who it is, logout.
  r.add("POST", "/v1/webapi/sessions", [&s](const Request& q) -> Result<Reply> {
    // A stale cookie must not stand in the way of a new login: the caller
    // is taken without it.
    api::Peer peer = q.peer;
    peer.web_session.reset();
    peer.web_csrf.reset();
    peer.forwarded_session.reset();
    peer.forwarded_csrf.reset();
    VIGIL_TRY(c, s.caller(peer));
    VIGIL_TRY(b, Body::of(q, {"user", "password", "totp_code"}));
    VIGIL_TRY(user, b->str("user", true, 256));
    VIGIL_TRY(password, b->str("password", true, 1024));
    VIGIL_TRY(code, b->str("totp_code", false, 16));
    VIGIL_TRY(out, s.web_login(c.value(), WebLoginRequest{user.value(), password.value(), code.value()}));
    Reply reply = Reply::json({{"user", out->user},
                               {"roles", out->roles},
                               {"csrf_token", out->csrf},
                               {"ttl_seconds", out->ttl.count()},
                               {"expires", times(out->expires)}},
                              201);
    reply.headers.emplace_back("Set-Cookie", std::string(api::kSessionCookie) + "=" + out->token +
                                                 "; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=" +
                                                 std::to_string(out->ttl.count()));
    return reply;
  });
  r.add("GET", "/v1/webapi/sessions/current", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    if (c->kind != CallerKind::user)
      return s.refuse(c.value(), "who am I",
                      Error::of(c->kind == CallerKind::anonymous ? Errc::unauthenticated
                                                                 : Errc::permission_denied,
                                "this call names the logged-in user; log in first"));
    json roles = json::array();
    for (const auto& role : c->checker().roles()) roles.push_back(role.name);
    return Reply::json({{"user", c->name},
                        {"roles", roles},
                        {"web_session", !c->web_session.empty()},
                        {"sees_all_events", c->checker().can("event", "list")},
                        {"sees_all_sessions", c->checker().can("session", "list")}});
  });
  r.add("DELETE", "/v1/webapi/sessions/current", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(ok, s.end_web_session(c.value()));
    Reply reply = Reply::no_content();
    reply.headers.emplace_back("Set-Cookie", std::string(api::kSessionCookie) +
                                                 "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
    return reply;
  });

  // Resources (`vigilctl create/get/rm`).
  r.add(
      "POST", "/v1/resources",
      [&s](const Request& q) -> Result<Reply> {
        VIGIL_TRY(c, who(s, q));
        VIGIL_TRY(b, Body::of(q, {"text", "force"}));
        VIGIL_TRY(text, b->str("text", true, cluster::kMaxResourceFileBytes));
        VIGIL_TRY(force, b->boolean("force"));
        VIGIL_TRY(out, s.create_resources(c.value(),
                                          CreateResourcesRequest{text.value(), force.value()}));
        json j = json::array();
        for (const auto& res : out.value())
          j.push_back({{"kind", res.kind}, {"name", res.name}, {"replaced", res.replaced}});
        return Reply::json({{"resources", j}});
      },
      api::RouteOptions{cluster::kMaxResourceFileBytes + 4096});
  auto get = [&s](const Request& q, std::string_view name) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    auto f = cluster::parse_format(q.query_value("format").value_or("yaml"));
    if (!f) return f.error();
    VIGIL_TRY(text, s.get_resources(c.value(), q.param("kind"), name, f.value()));
    const char* type = f.value() == cluster::Format::json   ? "application/json"
                       : f.value() == cluster::Format::yaml ? "application/yaml"
                                                            : "text/plain; charset=utf-8";
    return Reply::bytes(std::move(text.value()), type);
  };
  r.add("GET", "/v1/resources/:kind", [get](const Request& q) { return get(q, ""); });
  r.add("GET", "/v1/resources/:kind/:name",
        [get](const Request& q) { return get(q, q.param("name")); });
  r.add("DELETE", "/v1/resources/:kind/:name", [&s](const Request& q) -> Result<Reply> {
    VIGIL_TRY(c, who(s, q));
    VIGIL_TRY(ok, s.remove_resource(c.value(), q.param("kind"), q.param("name")));
    return Reply::no_content();
  });
}

}  // namespace vigil::authsvc
