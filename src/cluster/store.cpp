#include "cluster/store.hpp"

#include <nlohmann/json.hpp>

#include "cluster/roles.hpp"

namespace vigil::cluster {

using nlohmann::json;

namespace {

// The stored form of each kind: JSON, with the secrets (password hash, TOTP
// secret as hex) that the printed forms leave out. Decoding checks the
// shape; a row that does not decode is data_loss naming it.

std::string hex(std::string_view bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

std::optional<std::string> unhex(std::string_view text) {
  if (text.size() % 2) return std::nullopt;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < text.size(); i += 2) {
    int hi = val(text[i]), lo = val(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

int64_t secs(Time t) { return t.time_since_epoch().count(); }
Time at(int64_t s) { return Time{Seconds{s}}; }

json conditions(const RoleConditions& c) {
  json rules = json::array();
  for (const Rule& r : c.rules) rules.push_back({{"resources", r.resources}, {"verbs", r.verbs}});
  return {{"logins", c.logins}, {"node_labels", c.node_labels}, {"rules", rules}};
}

RoleConditions conditions_from(const json& j) {
  RoleConditions c;
  c.logins = j.at("logins").get<std::vector<std::string>>();
  c.node_labels = j.at("node_labels").get<LabelSelector>();
  for (const json& r : j.at("rules"))
    c.rules.push_back(Rule{r.at("resources").get<std::vector<std::string>>(),
                           r.at("verbs").get<std::vector<std::string>>()});
  return c;
}

std::string encode(const Role& r) {
  json kinds = json::array();
  for (Kind k : r.options.enhanced_recording) kinds.push_back(static_cast<int>(k));
  json j = {{"version", r.version},     {"description", r.description}, {"labels", r.labels},
            {"allow", conditions(r.allow)}, {"deny", conditions(r.deny)}, {"kinds", kinds}};
  if (r.options.max_session_ttl) j["max_session_ttl"] = r.options.max_session_ttl->count();
  return j.dump();
}

Role decode_role(const Record& rec) {
  json j = json::parse(rec.data);
  Role r;
  r.name = rec.name;
  r.revision = rec.revision;
  r.version = j.at("version").get<std::string>();
  r.description = j.at("description").get<std::string>();
  r.labels = j.at("labels").get<Labels>();
  r.allow = conditions_from(j.at("allow"));
  r.deny = conditions_from(j.at("deny"));
  for (const json& k : j.at("kinds")) {
    int v = k.get<int>();
    if (v < 0 || v >= kKindCount) throw std::out_of_range("event kind");
    r.options.enhanced_recording.push_back(static_cast<Kind>(v));
  }
  if (j.contains("max_session_ttl")) r.options.max_session_ttl = Seconds{j.at("max_session_ttl").get<int64_t>()};
  return r;
}

std::string encode(const User& u) {
  json j = {{"roles", u.roles}, {"traits", u.traits}, {"created", secs(u.created)},
            {"password_hash", u.password_hash}};
  if (u.totp) j["totp"] = {{"secret", hex(u.totp->secret)}, {"last_step", u.totp->last_step}};
  return j.dump();
}

User decode_user(const Record& rec) {
  json j = json::parse(rec.data);
  User u;
  u.name = rec.name;
  u.revision = rec.revision;
  u.roles = j.at("roles").get<std::vector<std::string>>();
  u.traits = j.at("traits").get<Traits>();
  u.created = at(j.at("created").get<int64_t>());
  u.password_hash = j.at("password_hash").get<std::string>();
  if (j.contains("totp")) {
    auto secret = unhex(j.at("totp").at("secret").get<std::string>());
    if (!secret) throw std::out_of_range("totp secret");
    u.totp = Totp{*secret, j.at("totp").at("last_step").get<int64_t>()};
  }
  return u;
}

std::string encode(const Token& t) {
  json roles = json::array();
  for (SystemRole r : t.roles) roles.push_back(std::string(system_role_name(r)));
  return json{{"kind", t.kind == TokenKind::join ? "join" : "signup"},
              {"roles", roles},
              {"user", t.user},
              {"created", secs(t.created)},
              {"expires", secs(t.expires)}}
      .dump();
}

Token decode_token(const Record& rec) {
  json j = json::parse(rec.data);
  Token t;
  t.hash = rec.name;
  t.revision = rec.revision;
  const std::string kind = j.at("kind").get<std::string>();
  if (kind != "join" && kind != "signup") throw std::out_of_range("token kind");
  t.kind = kind == "join" ? TokenKind::join : TokenKind::signup;
  for (const json& r : j.at("roles")) {
    auto role = parse_system_role(r.get<std::string>());
    if (!role) throw std::out_of_range("token role");
    t.roles.push_back(*role);
  }
  t.user = j.at("user").get<std::string>();
  t.created = at(j.at("created").get<int64_t>());
  t.expires = at(j.at("expires").get<int64_t>());
  return t;
}

std::string encode(const Node& n) {
  return json{{"name", n.name},
              {"address", n.address},
              {"tunnel", n.tunnel},
              {"labels", n.labels},
              {"host_key", n.host_key},
              {"last_heartbeat", secs(n.last_heartbeat)},
              {"expires", secs(n.expires)}}
      .dump();
}

Node decode_node(const Record& rec) {
  json j = json::parse(rec.data);
  Node n;
  n.uuid = rec.name;
  n.revision = rec.revision;
  n.name = j.at("name").get<std::string>();
  n.address = j.at("address").get<std::string>();
  n.tunnel = j.at("tunnel").get<bool>();
  n.labels = j.at("labels").get<Labels>();
  n.host_key = j.value("host_key", "");  // absent in rows of an older Vigil
  n.last_heartbeat = at(j.at("last_heartbeat").get<int64_t>());
  n.expires = at(j.at("expires").get<int64_t>());
  return n;
}

std::string encode(const SessionTracker& s) {
  return json{{"user", s.user},
              {"login", s.login},
              {"node", s.node_uuid},
              {"kinds", s.kinds.bits()},
              {"created", secs(s.created)},
              {"last_active", secs(s.last_active)},
              {"expires", secs(s.expires)},
              {"state", s.state}}
      .dump();
}

SessionTracker decode_session(const Record& rec) {
  json j = json::parse(rec.data);
  SessionTracker s;
  s.sid = rec.name;
  s.revision = rec.revision;
  s.user = j.at("user").get<std::string>();
  s.login = j.at("login").get<std::string>();
  s.node_uuid = j.at("node").get<std::string>();
  s.kinds = KindSet(j.at("kinds").get<uint32_t>());
  s.created = at(j.at("created").get<int64_t>());
  s.last_active = at(j.at("last_active").get<int64_t>());
  s.expires = at(j.at("expires").get<int64_t>());
  s.state = j.at("state").get<std::string>();
  return s;
}

template <typename T, typename Decode>
Result<T> decoded(Result<Record> rec, Decode decode) {
  if (!rec) return rec.error();
  try {
    return decode(rec.value());
  } catch (const std::exception& e) {
    return Error::of(Errc::data_loss, "stored " + rec->kind + " " + rec->name +
                                          " cannot be read (" + e.what() +
                                          "); the cluster database is damaged: restore it from "
                                          "a backup or delete that " + rec->kind);
  }
}

template <typename T, typename Decode>
Result<std::vector<T>> decoded_all(Result<std::vector<Record>> recs, Decode decode) {
  if (!recs) return recs.error();
  std::vector<T> out;
  for (Record& rec : recs.value()) {
    auto item = decoded<T>(std::move(rec), decode);
    if (!item) return item.error();
    out.push_back(std::move(item.value()));
  }
  return out;
}

Result<void> check_name(std::string_view kind, std::string_view name) {
  if (!is_valid_name(name))
    return Error::of(Errc::invalid_argument,
                     std::string(kind) + " name \"" + std::string(name.substr(0, 64)) +
                         "\" is not valid: use 1-128 letters, digits, '.', '_', '@', ':', '-'");
  return {};
}

}  // namespace

// Users.
Result<User> ClusterStore::create_user(const User& u) {
  if (auto c = check_name("user", u.name); !c) return c.error();
  return decoded<User>(backend_->create(Record{"user", u.name, 0, std::nullopt, encode(u)}), decode_user);
}
Result<User> ClusterStore::get_user(std::string_view name) {
  return decoded<User>(backend_->get("user", name), decode_user);
}
Result<std::vector<User>> ClusterStore::list_users() {
  return decoded_all<User>(backend_->list("user"), decode_user);
}
Result<User> ClusterStore::update_user(const User& u) {
  return decoded<User>(backend_->update(Record{"user", u.name, u.revision, std::nullopt, encode(u)}),
                       decode_user);
}
Result<void> ClusterStore::delete_user(std::string_view name) { return backend_->remove("user", name); }

// Roles.
Result<Role> ClusterStore::create_role(const Role& r) {
  if (auto c = check_name("role", r.name); !c) return c.error();
  return decoded<Role>(backend_->create(Record{"role", r.name, 0, std::nullopt, encode(r)}), decode_role);
}
Result<Role> ClusterStore::get_role(std::string_view name) {
  return decoded<Role>(backend_->get("role", name), decode_role);
}
Result<std::vector<Role>> ClusterStore::list_roles() {
  return decoded_all<Role>(backend_->list("role"), decode_role);
}
Result<Role> ClusterStore::update_role(const Role& r) {
  return decoded<Role>(backend_->update(Record{"role", r.name, r.revision, std::nullopt, encode(r)}),
                       decode_role);
}
Result<void> ClusterStore::delete_role(std::string_view name) { return backend_->remove("role", name); }

Result<void> ClusterStore::ensure_builtin_roles() {
  for (const Role& role : builtin_roles()) {
    auto made = create_role(role);
    if (!made && made.error().kind() != Errc::already_exists) return made.error();
  }
  return {};
}

// Tokens.
Result<Token> ClusterStore::create_token(const Token& t) {
  return decoded<Token>(backend_->create(Record{"token", t.hash, 0, secs(t.expires), encode(t)}),
                        decode_token);
}
Result<Token> ClusterStore::get_token(std::string_view hash) {
  return decoded<Token>(backend_->get("token", hash), decode_token);
}
Result<std::vector<Token>> ClusterStore::list_tokens() {
  return decoded_all<Token>(backend_->list("token"), decode_token);
}
Result<void> ClusterStore::delete_token(std::string_view hash, std::optional<uint64_t> revision) {
  return backend_->remove("token", hash, revision);
}

// Nodes.
Result<Node> ClusterStore::upsert_node(const Node& n) {
  if (n.uuid.empty() || n.uuid.size() > 128)
    return Error::of(Errc::invalid_argument, "a node needs a uuid of 1-128 bytes");
  return decoded<Node>(backend_->put(Record{"node", n.uuid, 0, secs(n.expires), encode(n)}), decode_node);
}
Result<void> ClusterStore::upsert_nodes(const std::vector<Node>& nodes) {
  std::vector<Record> records;
  records.reserve(nodes.size());
  for (const auto& n : nodes) {
    if (n.uuid.empty() || n.uuid.size() > 128)
      return Error::of(Errc::invalid_argument, "a node needs a uuid of 1-128 bytes");
    records.push_back(Record{"node", n.uuid, 0, secs(n.expires), encode(n)});
  }
  return backend_->put_many(records);
}
Result<Node> ClusterStore::get_node(std::string_view uuid) {
  return decoded<Node>(backend_->get("node", uuid), decode_node);
}
Result<std::vector<Node>> ClusterStore::list_nodes() {
  return decoded_all<Node>(backend_->list("node"), decode_node);
}
Result<void> ClusterStore::delete_node(std::string_view uuid) { return backend_->remove("node", uuid); }

Result<void> ClusterStore::put_node_removal(std::string_view uuid, int64_t at, int64_t expires) {
  if (uuid.empty() || uuid.size() > 128)
    return Error::of(Errc::invalid_argument, "a node needs a uuid of 1-128 bytes");
  auto r = backend_->put(
      Record{"node_removal", std::string(uuid), 0, expires, json{{"removed_at", at}}.dump()});
  if (!r) return r.error();
  return {};
}

Result<std::vector<std::pair<std::string, int64_t>>> ClusterStore::list_node_removals() {
  auto records = backend_->list("node_removal");
  if (!records) return records.error();
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& r : records.value()) {
    auto j = json::parse(r.data, nullptr, false);
    if (j.is_discarded() || !j.contains("removed_at") || !j["removed_at"].is_number_integer())
      return Error::of(Errc::data_loss, "the removal of node " + r.name +
                                            " in the cluster state is damaged; restore the "
                                            "state from a backup");
    out.emplace_back(r.name, j["removed_at"].get<int64_t>());
  }
  return out;
}

// Sessions in progress.
Result<SessionTracker> ClusterStore::create_session(const SessionTracker& s) {
  return decoded<SessionTracker>(
      backend_->create(Record{"session", s.sid, 0, secs(s.expires), encode(s)}), decode_session);
}
Result<SessionTracker> ClusterStore::get_session(std::string_view sid) {
  return decoded<SessionTracker>(backend_->get("session", sid), decode_session);
}
Result<std::vector<SessionTracker>> ClusterStore::list_sessions() {
  return decoded_all<SessionTracker>(backend_->list("session"), decode_session);
}
Result<SessionTracker> ClusterStore::update_session(const SessionTracker& s) {
  return decoded<SessionTracker>(
      backend_->update(Record{"session", s.sid, s.revision, secs(s.expires), encode(s)}),
      decode_session);
}
Result<void> ClusterStore::delete_session(std::string_view sid) {
  return backend_->remove("session", sid);
}

Result<size_t> ClusterStore::purge_expired(Time now) {
  size_t total = 0;
  for (const char* kind : {"token", "node", "session", "node_removal"}) {
    auto n = backend_->purge_expired(kind, secs(now));
    if (!n) return n.error();
    total += n.value();
  }
  return total;
}

}  // namespace vigil::cluster
