// The cluster's state as plain values: roles, users, join and sign-up
// tokens, nodes and sessions in progress. No I/O here; parse.hpp reads the
// YAML/JSON form a person writes, format.hpp prints them, store.hpp keeps
// them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "event/event.hpp"

namespace vigil::cluster {

using Time = std::chrono::sys_seconds;
using Seconds = std::chrono::seconds;

// Teleport's default and ceiling for a role's max_session_ttl (30h).
inline constexpr Seconds kDefaultMaxSessionTtl{30 * 3600};

// key -> accepted values ("*" in a value is a glob; {"*": ["*"]} matches
// every node, labelled or not).
using LabelSelector = std::map<std::string, std::vector<std::string>>;
using Labels = std::map<std::string, std::string>;
// Trait name -> values ("logins" are the user's logins).
using Traits = std::map<std::string, std::vector<std::string>>;

// What a rule grants: resources and verbs, each possibly "*".
struct Rule {
  std::vector<std::string> resources;
  std::vector<std::string> verbs;
  bool operator==(const Rule&) const = default;
};

struct RoleConditions {
  std::vector<std::string> logins;  // may hold {{internal.TRAIT}} templates
  LabelSelector node_labels;
  std::vector<Rule> rules;
  bool operator==(const RoleConditions&) const = default;
};

struct RoleOptions {
  std::optional<Seconds> max_session_ttl;  // absent: kDefaultMaxSessionTtl
  // As written; absent or empty means command and network (the guide).
  std::vector<Kind> enhanced_recording;
  bool operator==(const RoleOptions&) const = default;
};

struct Role {
  std::string name;
  std::string version = "v8";
  std::string description;
  Labels labels;  // metadata.labels
  RoleConditions allow;
  RoleConditions deny;
  RoleOptions options;
  uint64_t revision = 0;  // set by the store; 0 before it is stored
  bool operator==(const Role&) const = default;
};

// The second factor of a user, once enrolled.
struct Totp {
  std::string secret;      // raw bytes (20), never printed by format.hpp
  int64_t last_step = -1;  // the last 30 s step a code was accepted for
  bool operator==(const Totp&) const = default;
};

struct User {
  std::string name;
  std::vector<std::string> roles;
  Traits traits;                // traits["logins"]: the logins {{internal.logins}} expands to
  Time created{};
  std::string password_hash;    // argon2id string (crypto_pwhash_str); empty until sign-up
  std::optional<Totp> totp;
  uint64_t revision = 0;
  bool operator==(const User&) const = default;
};

// What a join token lets its holder become.
enum class SystemRole { node, proxy };
std::string_view system_role_name(SystemRole r);
std::optional<SystemRole> parse_system_role(std::string_view name);

enum class TokenKind { join, signup };

// A token as stored: its SHA-256 only. The secret is shown once, when made.
struct Token {
  std::string hash;                // 64 lowercase hex digits, SHA-256 of the secret
  TokenKind kind = TokenKind::join;
  std::vector<SystemRole> roles;   // join tokens
  std::string user;                // sign-up tokens: whose password it sets
  Time created{};
  Time expires{};
  uint64_t revision = 0;
  // What lists and `rm` show: the first 16 hex digits of the hash (the
  // secret is not kept, so it cannot be shown again).
  std::string id() const { return hash.substr(0, 16); }
  bool operator==(const Token&) const = default;
};

struct Node {
  std::string uuid;
  std::string name;     // host name
  std::string address;  // host:port it listens on; empty when it is reached through a tunnel
  bool tunnel = false;
  Labels labels;
  std::string host_key;  // its SSH host public key line: clients' known_hosts
  Time last_heartbeat{};
  Time expires{};       // last_heartbeat + the heartbeat TTL: gone from lists after
  uint64_t revision = 0;
  bool operator==(const Node&) const = default;
};

// A session in progress (the auth service's tracker of live sessions).
struct SessionTracker {
  std::string sid;
  std::string user;
  std::string login;
  std::string node_uuid;
  KindSet kinds;
  Time created{};
  Time last_active{};
  Time expires{};
  std::string state = "active";  // active | terminated
  uint64_t revision = 0;
  bool operator==(const SessionTracker&) const = default;
};

// Names of roles, users and labels: 1-128 bytes of letters, digits and
// "._@-:" (users are often e-mail addresses), not starting with "-".
bool is_valid_name(std::string_view name);
// A login (an account on a node): 1-32 bytes of letters, digits and "._-",
// not starting with "-".
bool is_valid_login(std::string_view login);

}  // namespace vigil::cluster
