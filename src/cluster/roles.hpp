// What a user's roles allow, as pure functions of the roles and the user's
// traits: logins, nodes (by label), the longest session, the event kinds
// recorded, and the rules on cluster resources (who may read others'
// sessions: the auditor). Deny by default: what no role allows is refused,
// and a deny in any role wins over every allow.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/resources.hpp"
#include "common/result.hpp"

namespace vigil::cluster {

// What rules may name ("*": all of them).
inline constexpr std::array<std::string_view, 7> kRuleResources = {
    "role", "user", "token", "node", "session", "event", "*"};
inline constexpr std::array<std::string_view, 6> kRuleVerbs = {"list",   "read",   "create",
                                                               "update", "delete", "*"};

// {{internal.NAME}} or {{external.NAME}} (spaces inside the braces allowed):
// the trait NAME; nullopt when text is not such a template.
std::optional<std::string> parse_login_template(std::string_view text);

// A label selector against a node's labels: every key of the selector must
// be a label of the node whose value matches one of the key's values
// ("*" in a value matches any run of characters). {"*": ["*"]} matches every
// node; an empty selector matches none.
bool labels_match(const LabelSelector& selector, const Labels& node_labels);
// Glob with "*" only.
bool glob_match(std::string_view pattern, std::string_view text);

// The built-in roles, made on a fresh cluster: access (the user's own
// logins on every node), editor (manage users, roles, tokens, nodes),
// auditor (read every session and event).
std::vector<Role> builtin_roles();

class AccessChecker {
 public:
  AccessChecker(std::vector<Role> roles, Traits traits);

  // The logins some role allows (templates expanded with the traits, invalid
  // results dropped) minus those any role denies; sorted, unique.
  std::vector<std::string> logins() const;
  // May the user log in as login on a node with these labels? One role must
  // allow both the login and the node; no role may deny either.
  Result<void> check_login(const Labels& node_labels, std::string_view login) const;
  // May the user see the node (`vsh ls`)?
  bool can_see_node(const Labels& node_labels) const;
  // The minimum of the roles' max_session_ttl (0 with no role).
  Seconds max_session_ttl() const;
  // The union of the roles' enhanced_recording (a role with none lists
  // command and network).
  KindSet enhanced_recording() const;
  // May the user do verb on resource (rules; deny wins)?
  bool can(std::string_view resource, std::string_view verb) const;
  // The auditor's permission: read sessions that are not the user's own.
  bool can_read_others_sessions() const { return can("session", "read") && can("session", "list"); }

  const std::vector<Role>& roles() const { return roles_; }

 private:
  std::vector<std::string> expand(const std::vector<std::string>& logins) const;
  bool node_denied(const Labels& labels) const;
  bool login_denied(std::string_view login) const;

  std::vector<Role> roles_;
  Traits traits_;
};

// The roles named by a user, fetched through lookup; a role that does not
// exist is an error naming it (an admin removed it: fix the user).
template <typename Lookup>
Result<std::vector<Role>> resolve_roles(const User& user, Lookup&& lookup) {
  std::vector<Role> out;
  for (const std::string& name : user.roles) {
    Result<Role> role = lookup(name);
    if (!role) {
      if (role.error().kind() == Errc::not_found)
        return Error::of(Errc::failed_precondition,
                         "user " + user.name + " has role " + name +
                             ", which does not exist; create the role or remove it from the "
                             "user");
      return role.error();
    }
    out.push_back(std::move(role.value()));
  }
  return out;
}

}  // namespace vigil::cluster
