#include "cluster/roles.hpp"

#include <algorithm>
#include <set>

namespace vigil::cluster {

std::string_view system_role_name(SystemRole r) {
  switch (r) {
    case SystemRole::node: return "node";
    case SystemRole::proxy: return "proxy";
  }
  return "?";
}

std::optional<SystemRole> parse_system_role(std::string_view name) {
  if (name == "node") return SystemRole::node;
  if (name == "proxy") return SystemRole::proxy;
  return std::nullopt;
}

namespace {
bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}
}  // namespace

bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '-') return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_name_char(c) || c == '@' || c == ':'; });
}

bool is_valid_login(std::string_view login) {
  if (login.empty() || login.size() > 32 || login.front() == '-') return false;
  if (login == "." || login == "..") return false;
  return std::all_of(login.begin(), login.end(), is_name_char);
}

std::optional<std::string> parse_login_template(std::string_view text) {
  if (!text.starts_with("{{") || !text.ends_with("}}")) return std::nullopt;
  std::string_view inner = text.substr(2, text.size() - 4);
  while (!inner.empty() && inner.front() == ' ') inner.remove_prefix(1);
  while (!inner.empty() && inner.back() == ' ') inner.remove_suffix(1);
  std::string_view name;
  if (inner.starts_with("internal."))
    name = inner.substr(9);
  else if (inner.starts_with("external."))
    name = inner.substr(9);
  else
    return std::nullopt;
  if (name.empty() || name.size() > 64 ||
      !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
      }))
    return std::nullopt;
  return std::string(name);
}

bool glob_match(std::string_view pattern, std::string_view text) {
  // Iterative match with one backtrack point: linear-ish, no recursion.
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool labels_match(const LabelSelector& selector, const Labels& node_labels) {
  if (selector.empty()) return false;
  for (const auto& [key, values] : selector) {
    if (key == "*") {
      if (std::find(values.begin(), values.end(), "*") == values.end()) return false;
      continue;
    }
    auto label = node_labels.find(key);
    if (label == node_labels.end()) return false;
    if (std::none_of(values.begin(), values.end(),
                     [&](const std::string& v) { return glob_match(v, label->second); }))
      return false;
  }
  return true;
}

std::vector<Role> builtin_roles() {
  Role access;
  access.name = "access";
  access.description = "Log in to every node as the user's own logins";
  access.allow.logins = {"{{internal.logins}}"};
  access.allow.node_labels = {{"*", {"*"}}};

  Role editor;
  editor.name = "editor";
  editor.description = "Manage users, roles, join tokens and nodes";
  editor.allow.rules = {Rule{{"user", "role", "token", "node"}, {"*"}}};

  Role auditor;
  auditor.name = "auditor";
  auditor.description = "Read every session and the audit log";
  auditor.allow.rules = {Rule{{"session", "event"}, {"list", "read"}}};
  return {access, editor, auditor};
}

AccessChecker::AccessChecker(std::vector<Role> roles, Traits traits)
    : roles_(std::move(roles)), traits_(std::move(traits)) {}

std::vector<std::string> AccessChecker::expand(const std::vector<std::string>& logins) const {
  std::vector<std::string> out;
  for (const std::string& login : logins) {
    if (auto trait = parse_login_template(login)) {
      auto values = traits_.find(*trait);
      if (values == traits_.end()) continue;
      for (const std::string& v : values->second)
        if (is_valid_login(v)) out.push_back(v);
    } else if (is_valid_login(login)) {
      out.push_back(login);
    }
  }
  return out;
}

bool AccessChecker::login_denied(std::string_view login) const {
  for (const Role& role : roles_) {
    for (const std::string& denied : expand(role.deny.logins))
      if (denied == login) return true;
  }
  return false;
}

bool AccessChecker::node_denied(const Labels& labels) const {
  return std::any_of(roles_.begin(), roles_.end(),
                     [&](const Role& r) { return labels_match(r.deny.node_labels, labels); });
}

std::vector<std::string> AccessChecker::logins() const {
  std::set<std::string> out;
  for (const Role& role : roles_)
    for (std::string& login : expand(role.allow.logins))
      if (!login_denied(login)) out.insert(std::move(login));
  return {out.begin(), out.end()};
}

Result<void> AccessChecker::check_login(const Labels& node_labels, std::string_view login) const {
  auto refuse = [&](std::string why) {
    return Error::of(Errc::permission_denied,
                     "login " + std::string(login) + " refused: " + why +
                         "; ask an administrator for a role that allows it");
  };
  if (roles_.empty()) return refuse("the user has no role");
  if (node_denied(node_labels)) return refuse("a role denies this node");
  if (login_denied(login)) return refuse("a role denies this login");
  for (const Role& role : roles_) {
    if (!labels_match(role.allow.node_labels, node_labels)) continue;
    auto allowed = expand(role.allow.logins);
    if (std::find(allowed.begin(), allowed.end(), login) != allowed.end()) return {};
  }
  return refuse("no role allows this login on a node with these labels");
}

bool AccessChecker::can_see_node(const Labels& node_labels) const {
  if (node_denied(node_labels)) return false;
  return std::any_of(roles_.begin(), roles_.end(), [&](const Role& r) {
    return labels_match(r.allow.node_labels, node_labels);
  });
}

Seconds AccessChecker::max_session_ttl() const {
  if (roles_.empty()) return Seconds{0};
  Seconds ttl = Seconds::max();
  for (const Role& role : roles_)
    ttl = std::min(ttl, role.options.max_session_ttl.value_or(kDefaultMaxSessionTtl));
  return ttl;
}

KindSet AccessChecker::enhanced_recording() const {
  KindSet out;
  for (const Role& role : roles_) {
    if (role.options.enhanced_recording.empty()) {
      out.add(Kind::command);
      out.add(Kind::network);
    }
    for (Kind k : role.options.enhanced_recording) out.add(k);
  }
  return out;
}

namespace {
bool names(const std::vector<std::string>& list, std::string_view item) {
  return std::any_of(list.begin(), list.end(),
                     [&](const std::string& s) { return s == "*" || s == item; });
}
bool rule_covers(const std::vector<Rule>& rules, std::string_view resource, std::string_view verb) {
  return std::any_of(rules.begin(), rules.end(), [&](const Rule& r) {
    return names(r.resources, resource) && names(r.verbs, verb);
  });
}
}  // namespace

bool AccessChecker::can(std::string_view resource, std::string_view verb) const {
  for (const Role& role : roles_)
    if (rule_covers(role.deny.rules, resource, verb)) return false;
  return std::any_of(roles_.begin(), roles_.end(),
                     [&](const Role& r) { return rule_covers(r.allow.rules, resource, verb); });
}

}  // namespace vigil::cluster
