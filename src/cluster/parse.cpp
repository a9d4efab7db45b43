#include "cluster/parse.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include "audit/utf8.hpp"
#include "cluster/roles.hpp"
#include "config/values.hpp"
#include "config/yaml_reader.hpp"

namespace vigil::cluster {

namespace {

using yaml::child_path;
using yaml::comma_list;
using yaml::Field;
using yaml::FieldReader;
using yaml::line_of;
using yaml::Place;
using yaml::Reader;

constexpr size_t kShown = 60;  // bytes of a value quoted in a message
std::string quoted(std::string_view text) { return yaml::quoted(text, kShown); }
std::string describe(const YAML::Node& node) { return yaml::describe(node, kShown); }

Reader resource_reader(std::string_view source) {
  return Reader(source, yaml::ReaderStyle{kShown, kMaxListItems, /*always_list_fields=*/true});
}

bool is_trait_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool is_label_key(std::string_view s) { return s == "*" || is_valid_name(s); }

bool is_label_value(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  });
}

Result<void> read_logins(const Reader& r, const YAML::Node& node, const Place& at,
                         std::vector<std::string>& out) {
  return r.list(node, at, "a list of logins", [&](const YAML::Node& item, const Place& p) -> Result<void> {
    std::string login;
    if (auto t = r.text(item, p, "a login or {{internal.logins}}", login); !t) return t;
    if (login.starts_with("{{")) {
      if (!parse_login_template(login))
        return r.fail(p, "expected a login or a trait template such as {{internal.logins}} or "
                         "{{external.NAME}}, got " + quoted(login));
    } else if (!is_valid_login(login)) {
      return r.fail(p, "expected a login (1-32 letters, digits, '.', '_', '-', not starting "
                       "with '-') or {{internal.logins}}, got " + quoted(login));
    }
    out.push_back(login);
    return Result<void>{};
  });
}

Result<void> read_label_value(const Reader& r, const YAML::Node& item, const Place& p,
                              std::vector<std::string>& out) {
  std::string v;
  if (auto t = r.text(item, p, "a label value (text, * as a wildcard)", v, is_label_value); !t)
    return t;
  if (v.size() >= 2 && v.front() == '^' && v.back() == '$')
    return r.fail(p, "regular expressions are not supported in node_labels; use * as a "
                     "wildcard (\"prod-*\"), got " + quoted(v));
  out.push_back(v);
  return {};
}

Result<void> read_node_labels(const Reader& r, const YAML::Node& node, const Place& at,
                              LabelSelector& out) {
  if (node.IsNull()) return {};
  if (!node.IsMap())
    return r.fail(at, "expected a map of label: value (or list of values), got " + describe(node));
  for (const auto& entry : node) {
    Place key_at{at.path, line_of(entry.first)};
    std::string key;
    if (auto t = r.text(entry.first, key_at, "a label name or *", key, is_label_key); !t) return t;
    key_at.path = child_path(at.path, key);
    if (out.contains(key)) return r.fail(key_at, "given twice; keep one");
    std::vector<std::string> values;
    if (entry.second.IsSequence()) {
      if (auto l = r.list(entry.second, key_at, "label values",
                          [&](const YAML::Node& item, const Place& p) -> Result<void> {
                            return read_label_value(r, item, p, values);
                          });
          !l)
        return l;
      if (values.empty()) return r.fail(key_at, "an empty list of values matches nothing; give at least one");
    } else if (auto v = read_label_value(r, entry.second, key_at, values); !v) {
      return v;
    }
    if (key == "*" && (values.size() != 1 || values[0] != "*"))
      return r.fail(key_at, "the label name * can only take the value * ('*': '*' matches every "
                            "node); name the label to match other values");
    out.emplace(key, std::move(values));
  }
  return {};
}

Result<void> read_rules(const Reader& r, const YAML::Node& node, const Place& at,
                        std::vector<Rule>& out) {
  return r.list(node, at, "a list of rules", [&](const YAML::Node& item, const Place& p) -> Result<void> {
    Rule rule;
    std::vector<std::string_view> resources(kRuleResources.begin(), kRuleResources.end());
    std::vector<std::string_view> verbs(kRuleVerbs.begin(), kRuleVerbs.end());
    auto read = r.section(
        item, p,
        {{"resources",
          [&](auto& v, auto& q) -> Result<void> {
            return r.list(v, q, "a list of resources", [&](const YAML::Node& i, const Place& s) -> Result<void> {
              std::string name;
              if (auto c = r.choice(i, s, "resource", resources, name); !c) return c;
              rule.resources.push_back(name);
              return Result<void>{};
            });
          },
          true},
         {"verbs",
          [&](auto& v, auto& q) -> Result<void> {
            return r.list(v, q, "a list of verbs", [&](const YAML::Node& i, const Place& s) -> Result<void> {
              std::string name;
              if (auto c = r.choice(i, s, "verb", verbs, name); !c) return c;
              rule.verbs.push_back(name);
              return Result<void>{};
            });
          },
          true}});
    if (!read) return read;
    out.push_back(std::move(rule));
    return Result<void>{};
  });
}

Result<void> read_conditions(const Reader& r, const YAML::Node& node, const Place& at,
                             RoleConditions& out) {
  return r.section(node, at,
                   {{"logins", [&](auto& v, auto& p) -> Result<void> { return read_logins(r, v, p, out.logins); }},
                    {"node_labels",
                     [&](auto& v, auto& p) -> Result<void> { return read_node_labels(r, v, p, out.node_labels); }},
                    {"rules", [&](auto& v, auto& p) -> Result<void> { return read_rules(r, v, p, out.rules); }}});
}

Result<void> read_options(const Reader& r, const YAML::Node& node, const Place& at,
                          RoleOptions& out) {
  return r.section(
      node, at,
      {{"max_session_ttl",
        [&](auto& v, auto& p) -> Result<void> {
          auto d = v.IsScalar() ? parse_duration(v.Scalar()) : std::nullopt;
          if (!d)
            return r.fail(p, "expected a duration such as 8h, 1h30m or 90m (1s to 8760h), got " +
                                 describe(v));
          out.max_session_ttl = *d;
          return Result<void>{};
        }},
       {"enhanced_recording", [&](auto& v, auto& p) -> Result<void> {
          return r.list(v, p, "a list of event kinds", [&](const YAML::Node& i, const Place& s) -> Result<void> {
            std::string name;
            if (auto c = r.choice(i, s, "event kind", {"command", "disk", "network"}, name); !c)
              return c;
            Kind k = *parse_kind(name);
            if (std::find(out.enhanced_recording.begin(), out.enhanced_recording.end(), k) !=
                out.enhanced_recording.end())
              return r.fail(s, "listed twice; keep one");
            out.enhanced_recording.push_back(k);
            return Result<void>{};
          });
        }}});
}

Result<void> read_metadata(const Reader& r, const YAML::Node& node, const Place& at,
                           std::string& name, std::string* description, Labels* labels) {
  std::vector<Field> fields = {
      {"name",
       [&](auto& v, auto& p) -> Result<void> {
         return r.text(v, p, "a name (1-128 letters, digits, '.', '_', '@', ':', '-')", name,
                       is_valid_name);
       },
       true}};
  if (description)
    fields.push_back({"description", [&, description](auto& v, auto& p) -> Result<void> {
                        if (!v.IsScalar()) return r.fail(p, "expected text, got " + describe(v));
                        *description = v.Scalar();
                        return Result<void>{};
                      }});
  if (labels)
    fields.push_back({"labels", [&, labels](auto& v, auto& p) -> Result<void> {
                        if (v.IsNull()) return Result<void>{};
                        if (!v.IsMap()) return r.fail(p, "expected a map of label: value, got " + describe(v));
                        for (const auto& e : v) {
                          Place q{p.path, line_of(e.first)};
                          std::string k, val;
                          if (auto t = r.text(e.first, q, "a label name", k, is_valid_name); !t) return t;
                          q.path = child_path(p.path, k);
                          if (auto t = r.text(e.second, q, "a label value", val, is_label_value); !t) return t;
                          if (!labels->emplace(k, val).second) return r.fail(q, "given twice; keep one");
                        }
                        return Result<void>{};
                      }});
  return r.section(node, at, fields);
}

std::string kind_of(const YAML::Node& doc) {
  if (!doc.IsMap()) return {};
  for (const auto& e : doc)
    if (e.first.IsScalar() && e.first.Scalar() == "kind" && e.second.IsScalar())
      return e.second.Scalar();
  return {};
}

Result<Role> read_role(const Reader& r, const YAML::Node& doc, const Place& at) {
  Role role;
  std::string kind;
  auto read = r.section(
      doc, at,
      {{"kind", [&](auto& v, auto& p) -> Result<void> { return r.choice(v, p, "kind", {"role"}, kind); }, true},
       {"version",
        [&](auto& v, auto& p) -> Result<void> {
          return r.choice(v, p, "role version", {"v3", "v4", "v5", "v6", "v7", "v8"},
                          role.version);
        },
        true},
       {"metadata",
        [&](auto& v, auto& p) -> Result<void> {
          return read_metadata(r, v, p, role.name, &role.description, &role.labels);
        },
        true},
       {"spec", [&](auto& v, auto& p) -> Result<void> {
          return r.section(
              v, p,
              {{"allow", [&](auto& c, auto& q) -> Result<void> { return read_conditions(r, c, q, role.allow); }},
               {"deny", [&](auto& c, auto& q) -> Result<void> { return read_conditions(r, c, q, role.deny); }},
               {"options", [&](auto& c, auto& q) -> Result<void> { return read_options(r, c, q, role.options); }}});
        }}});
  if (!read) return read.error();
  return role;
}

Result<User> read_user(const Reader& r, const YAML::Node& doc, const Place& at) {
  User user;
  std::string kind, version;
  auto read = r.section(
      doc, at,
      {{"kind", [&](auto& v, auto& p) -> Result<void> { return r.choice(v, p, "kind", {"user"}, kind); }, true},
       {"version",
        [&](auto& v, auto& p) -> Result<void> { return r.choice(v, p, "user version", {"v2"}, version); }, true},
       {"metadata",
        [&](auto& v, auto& p) -> Result<void> { return read_metadata(r, v, p, user.name, nullptr, nullptr); },
        true},
       {"spec",
        [&](auto& v, auto& p) -> Result<void> {
          return r.section(
              v, p,
              {{"roles",
                [&](auto& l, auto& q) -> Result<void> {
                  return r.list(l, q, "a list of role names", [&](const YAML::Node& i, const Place& s) -> Result<void> {
                    std::string name;
                    if (auto t = r.text(i, s, "a role name", name, is_valid_name); !t) return t;
                    user.roles.push_back(name);
                    return Result<void>{};
                  });
                }},
               {"traits", [&](auto& t, auto& q) -> Result<void> {
                  if (t.IsNull()) return Result<void>{};
                  if (!t.IsMap()) return r.fail(q, "expected a map of trait: [values], got " + describe(t));
                  for (const auto& e : t) {
                    Place k{q.path, line_of(e.first)};
                    std::string name;
                    if (auto n = r.text(e.first, k, "a trait name (letters, digits, _)", name,
                                        is_trait_name);
                        !n)
                      return n;
                    k.path = child_path(q.path, name);
                    if (user.traits.contains(name)) return r.fail(k, "given twice; keep one");
                    std::vector<std::string>& values = user.traits[name];
                    bool logins = name == "logins";
                    if (auto l = r.list(e.second, k, "a list of values",
                                        [&](const YAML::Node& i, const Place& s) -> Result<void> {
                                          std::string val;
                                          if (auto tx = r.text(i, s, logins ? "a login" : "a value", val,
                                                               logins ? is_valid_login : is_label_value);
                                              !tx)
                                            return tx;
                                          values.push_back(val);
                                          return Result<void>{};
                                        });
                        !l)
                      return l;
                  }
                  return Result<void>{};
                }}});
        }},
       // Printed by `get users` (created, password set, second factor); read-only,
       // so what a file says here is not taken.
       {"status", [&](auto&, auto&) -> Result<void> { return Result<void>{}; }}});
  if (!read) return read.error();
  return user;
}

// The bounds of parse.hpp, as a resource file's reader words them.
const yaml::Limits& resource_file_limits() {
  static const yaml::Limits limits = [] {
    yaml::Limits l;
    l.max_file_bytes = kMaxResourceFileBytes;
    l.file_hint = "; resource files are a few kilobytes: is this the right file?";
    l.max_nesting = kMaxResourceNesting;
    l.nesting_hint = "; a role needs 6: check the indentation and brackets";
    l.max_value_bytes = kMaxResourceValueBytes;
    l.value_hint = ": is a quote missing its end?";
    l.max_documents = kMaxResourceDocuments;
    l.refuse_aliases = true;
    l.alias_hint = "YAML aliases (*name) are not accepted in resources; write the value out";
    // Resources are UTF-8 text: a byte that is not would not print back the
    // same (JSON and YAML output replace or escape it), so it is refused.
    l.bad_byte = [](std::string_view value) -> std::optional<size_t> {
      const auto* bytes = reinterpret_cast<const unsigned char*>(value.data());
      for (size_t i = 0; i < value.size();) {
        char32_t cp;
        size_t len = audit::utf8_decode(bytes + i, value.size() - i, &cp);
        if (len == 0) return i;
        i += len;
      }
      return std::nullopt;
    };
    l.bad_byte_hint = "; resource files are UTF-8 text: save the file as UTF-8";
    return l;
  }();
  return limits;
}

Result<Resource> read_document(const Reader& r, const YAML::Node& doc) {
  Place at{"", line_of(doc)};
  if (!doc.IsMap()) return r.fail(at, "expected a resource (kind, version, metadata, spec), got " + describe(doc));
  const std::string kind = kind_of(doc);
  if (kind == "role") {
    auto role = read_role(r, doc, at);
    if (!role) return role.error();
    return Resource{std::move(role.value())};
  }
  if (kind == "user") {
    auto user = read_user(r, doc, at);
    if (!user) return user.error();
    return Resource{std::move(user.value())};
  }
  for (const auto& e : doc)
    if (e.first.IsScalar() && e.first.Scalar() == "kind") {
      Place p{"kind", line_of(e.first)};
      std::string msg = "unknown kind " + describe(e.second);
      if (e.second.IsScalar())
        if (auto s = config::closest(e.second.Scalar(), {"role", "user"}))
          msg += "; did you mean " + std::string(*s) + "?";
      if (kind == "token") msg += " (join tokens are made by `vigilctl nodes add`, not from a file)";
      if (kind == "node") msg += " (nodes register themselves when they join, not from a file)";
      return r.fail(p, msg + " (valid kinds: role, user)");
    }
  return r.fail(at, "missing field kind (valid kinds: role, user)");
}

}  // namespace

Result<std::vector<Resource>> parse_resources(std::string_view text, std::string_view source) {
  auto documents = yaml::load_bounded(text, source, resource_file_limits());
  if (!documents) return documents.error();
  Reader reader = resource_reader(source);
  if (documents->empty())
    return Error::of(Errc::invalid_argument,
                     std::string(source) + ": holds no resource; write one with kind, version, "
                                           "metadata and spec");
  std::vector<Resource> out;
  for (const YAML::Node& doc : *documents) {
    auto res = read_document(reader, doc);
    if (!res) return res.error();
    out.push_back(std::move(res.value()));
  }
  return out;
}

Result<Role> parse_role(std::string_view text, std::string_view source) {
  auto all = parse_resources(text, source);
  if (!all) return all.error();
  if (all->size() != 1 || !std::holds_alternative<Role>(all->front()))
    return Error::of(Errc::invalid_argument,
                     std::string(source) + ": expected exactly one role (kind: role)");
  return std::get<Role>(std::move(all->front()));
}

std::optional<Seconds> parse_duration(std::string_view text) {
  if (text.empty() || text.size() > 32) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  // Units must come in decreasing order, each at most once.
  int last_rank = 4;
  while (i < text.size()) {
    int64_t n = 0;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i++] - '0');
      if (++digits > 10) return std::nullopt;
    }
    if (digits == 0 || i >= text.size()) return std::nullopt;
    int rank;
    int64_t unit;
    switch (text[i++]) {
      case 'h': rank = 3; unit = 3600; break;
      case 'm': rank = 2; unit = 60; break;
      case 's': rank = 1; unit = 1; break;
      default: return std::nullopt;
    }
    if (rank >= last_rank) return std::nullopt;
    last_rank = rank;
    total += n * unit;
    if (total > 365LL * 24 * 3600) return std::nullopt;
  }
  if (total < 1) return std::nullopt;
  return Seconds{total};
}

std::string format_duration(Seconds d) {
  int64_t s = d.count();
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h";
  if (s % 3600 >= 60) out += std::to_string(s % 3600 / 60) + "m";
  if (s % 60 || out.empty()) out += std::to_string(s % 60) + "s";
  return out;
}

}  // namespace vigil::cluster
