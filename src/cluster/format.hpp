// How `vigilctl get ... --format yaml|json|text` shows resources. The YAML
// and JSON forms of roles and users read back with parse.hpp; no form ever
// shows a password hash, a TOTP secret or a token's secret (the store keeps
// only its hash; `id()` is what is shown).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/resources.hpp"
#include "common/result.hpp"

namespace vigil::cluster {

enum class Format { yaml, json, text };
Result<Format> parse_format(std::string_view name);

nlohmann::json to_json(const Role& role);
nlohmann::json to_json(const User& user);
nlohmann::json to_json(const Token& token);
nlohmann::json to_json(const Node& node);
nlohmann::json to_json(const SessionTracker& session);

// RFC 3339 UTC ("2026-11-27T10:00:00Z").
std::string rfc3339(Time t);
// The guide's `tctl tokens ls` Expiry Time ("25 Sep 18 00:21 UTC").
std::string expiry_time(Time t);

// YAML: one document a resource, separated by ---. JSON: an array.
// text: the columns of tctl (roles: Role, Allowed to login as, Node Labels,
// Access to resources; users: User, Roles; tokens: Token, Type, Expiry
// Time; nodes: Host, UUID, Address, Labels, Last Heartbeat).
std::string format(const std::vector<Role>& roles, Format f);
std::string format(const std::vector<User>& users, Format f);
std::string format(const std::vector<Token>& tokens, Format f);
std::string format(const std::vector<Node>& nodes, Format f);

// A plain table: a header, dashes as wide as each column, then the rows,
// columns separated by a space, the last one not padded.
std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows);

}  // namespace vigil::cluster
