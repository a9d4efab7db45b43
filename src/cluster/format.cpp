#include "cluster/format.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <ctime>

#include "cluster/parse.hpp"

namespace vigil::cluster {

using nlohmann::json;

Result<Format> parse_format(std::string_view name) {
  if (name == "yaml") return Format::yaml;
  if (name == "json") return Format::json;
  if (name == "text") return Format::text;
  return Error::of(Errc::invalid_argument,
                   "unknown format \"" + std::string(name) + "\"; use yaml, json or text");
}

std::string rfc3339(Time t) {
  std::time_t secs = t.time_since_epoch().count();
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string expiry_time(Time t) {
  std::time_t secs = t.time_since_epoch().count();
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%d %b %y %H:%M UTC", &tm);
  return buf;
}

namespace {

json conditions(const RoleConditions& c) {
  json out = json::object();
  if (!c.logins.empty()) out["logins"] = c.logins;
  if (!c.node_labels.empty()) {
    json labels = json::object();
    for (const auto& [k, v] : c.node_labels)
      labels[k] = v.size() == 1 ? json(v[0]) : json(v);
    out["node_labels"] = labels;
  }
  if (!c.rules.empty()) {
    json rules = json::array();
    for (const Rule& r : c.rules) rules.push_back({{"resources", r.resources}, {"verbs", r.verbs}});
    out["rules"] = rules;
  }
  return out;
}

// YAML from the JSON form (same structure), keys in the JSON's order.
void emit(YAML::Emitter& out, const json& j) {
  if (j.is_object()) {
    out << YAML::BeginMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
      emit(out, it.value());
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const json& item : j) emit(out, item);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    out << YAML::DoubleQuoted << j.get<std::string>();
  } else if (j.is_boolean()) {
    out << j.get<bool>();
  } else if (j.is_number_integer()) {
    out << j.get<int64_t>();
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();
  }
}

template <typename T>
std::string as_yaml_or_json(const std::vector<T>& items, Format f) {
  if (f == Format::json) {
    json all = json::array();
    for (const T& item : items) all.push_back(to_json(item));
    return all.dump(2) + "\n";
  }
  std::string out;
  for (const T& item : items) {
    YAML::Emitter e;
    emit(e, to_json(item));
    if (!out.empty()) out += "---\n";
    out += e.c_str();
    out += "\n";
  }
  return out;
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ",") {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string selector_text(const LabelSelector& s) {
  std::vector<std::string> parts;
  for (const auto& [k, values] : s)
    for (const std::string& v : values) parts.push_back(k + "=" + v);
  return join(parts);
}

std::string labels_text(const Labels& l) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : l) parts.push_back(k + "=" + v);
  return join(parts);
}

// Strips what a terminal would act on (a name or label cannot hold it, but
// a table must stay a table whatever the store holds).
std::string cell(std::string_view s) {
  std::string out;
  for (char c : s) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

}  // namespace

json to_json(const Role& role) {
  json metadata = {{"name", role.name}};
  if (!role.description.empty()) metadata["description"] = role.description;
  if (!role.labels.empty()) metadata["labels"] = role.labels;
  json spec = json::object();
  spec["allow"] = conditions(role.allow);
  json deny = conditions(role.deny);
  if (!deny.empty()) spec["deny"] = deny;
  // Options as written, so that the YAML reads back to the same role (an
  // absent max_session_ttl is 30h, an absent or empty enhanced_recording is
  // command and network: AccessChecker applies those).
  json options = json::object();
  if (role.options.max_session_ttl)
    options["max_session_ttl"] = format_duration(*role.options.max_session_ttl);
  if (!role.options.enhanced_recording.empty()) {
    json kinds = json::array();
    for (Kind k : role.options.enhanced_recording) kinds.push_back(std::string(kind_name(k)));
    options["enhanced_recording"] = kinds;
  }
  if (!options.empty()) spec["options"] = options;
  return json{{"kind", "role"}, {"version", role.version}, {"metadata", metadata}, {"spec", spec}};
}

json to_json(const User& user) {
  json spec = {{"roles", user.roles}};
  if (!user.traits.empty()) spec["traits"] = user.traits;
  json status = {{"created", rfc3339(user.created)},
                 {"password_set", !user.password_hash.empty()},
                 {"second_factor", user.totp ? "otp" : "none"}};
  return json{{"kind", "user"},
              {"version", "v2"},
              {"metadata", {{"name", user.name}}},
              {"spec", spec},
              {"status", status}};
}

namespace {
std::string token_type(const Token& t) {
  if (t.kind == TokenKind::signup) return "signup";
  std::vector<std::string> names;
  for (SystemRole r : t.roles) {
    std::string n(system_role_name(r));
    n[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(n[0])));
    names.push_back(n);
  }
  return join(names);
}
}  // namespace

json to_json(const Token& token) {
  json roles = json::array();
  for (SystemRole r : token.roles) roles.push_back(std::string(system_role_name(r)));
  json spec = {{"kind", token.kind == TokenKind::join ? "join" : "signup"},
               {"created", rfc3339(token.created)},
               {"expires", rfc3339(token.expires)}};
  if (token.kind == TokenKind::join) spec["roles"] = roles;
  if (!token.user.empty()) spec["user"] = token.user;
  return json{{"kind", "token"}, {"version", "v2"}, {"metadata", {{"name", token.id()}}}, {"spec", spec}};
}

json to_json(const Node& node) {
  json spec = {{"hostname", node.name},
               {"addr", node.tunnel ? "" : node.address},
               {"tunnel", node.tunnel},
               {"host_key", node.host_key},
               {"last_heartbeat", rfc3339(node.last_heartbeat)},
               {"expires", rfc3339(node.expires)}};
  json metadata = {{"name", node.uuid}};
  if (!node.labels.empty()) metadata["labels"] = node.labels;
  return json{{"kind", "node"}, {"version", "v2"}, {"metadata", metadata}, {"spec", spec}};
}

json to_json(const SessionTracker& s) {
  json kinds = json::array();
  for (Kind k : {Kind::command, Kind::disk, Kind::network})
    if (s.kinds.has(k)) kinds.push_back(std::string(kind_name(k)));
  return json{{"kind", "session_tracker"},
              {"version", "v1"},
              {"metadata", {{"name", s.sid}}},
              {"spec",
               {{"user", s.user},
                {"login", s.login},
                {"node", s.node_uuid},
                {"enhanced_recording", kinds},
                {"created", rfc3339(s.created)},
                {"last_active", rfc3339(s.last_active)},
                {"expires", rfc3339(s.expires)},
                {"state", s.state}}}};
}

namespace {
// Columns a cell takes: its UTF-8 characters ("⟵ Tunnel" is 8, not 10 bytes).
size_t columns(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}
}  // namespace

std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = columns(header[i]);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], columns(row[i]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string c = i < cells.size() ? cells[i] : "";
      out += c;
      if (i + 1 < width.size()) out += std::string(width[i] - columns(c) + 1, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::vector<std::string> dashes;
  for (size_t w : width) dashes.push_back(std::string(w, '-'));
  std::string out = line(header) + line(dashes);
  for (const auto& row : rows) out += line(row);
  return out;
}

std::string format(const std::vector<Role>& roles, Format f) {
  if (f != Format::text) return as_yaml_or_json(roles, f);
  std::vector<std::vector<std::string>> rows;
  for (const Role& r : roles) {
    std::vector<std::string> rules;
    for (const Rule& rule : r.allow.rules)
      rules.push_back(join(rule.resources) + ":" + join(rule.verbs));
    rows.push_back({cell(r.name), cell(join(r.allow.logins)), cell(selector_text(r.allow.node_labels)),
                    cell(join(rules, " "))});
  }
  return table({"Role", "Allowed to login as", "Node Labels", "Access to resources"}, rows);
}

std::string format(const std::vector<User>& users, Format f) {
  if (f != Format::text) return as_yaml_or_json(users, f);
  std::vector<std::vector<std::string>> rows;
  for (const User& u : users) rows.push_back({cell(u.name), cell(join(u.roles))});
  return table({"User", "Roles"}, rows);
}

std::string format(const std::vector<Token>& tokens, Format f) {
  if (f != Format::text) return as_yaml_or_json(tokens, f);
  std::vector<std::vector<std::string>> rows;
  for (const Token& t : tokens) rows.push_back({t.id(), token_type(t), expiry_time(t.expires)});
  return table({"Token", "Type", "Expiry Time"}, rows);
}

std::string format(const std::vector<Node>& nodes, Format f) {
  if (f != Format::text) return as_yaml_or_json(nodes, f);
  std::vector<std::vector<std::string>> rows;
  for (const Node& n : nodes)
    rows.push_back({cell(n.name), cell(n.uuid), n.tunnel ? "⟵ Tunnel" : cell(n.address),
                    cell(labels_text(n.labels)), rfc3339(n.last_heartbeat)});
  return table({"Host", "UUID", "Address", "Labels", "Last Heartbeat"}, rows);
}

}  // namespace vigil::cluster
