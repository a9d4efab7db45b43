// Reading resources from the YAML (or JSON, which YAML reads too) that a
// person writes for `vigilctl create -f`: strict, every mistake an Error
// that names the file, the line and the field and lists what is valid.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include "cluster/resources.hpp"
#include "common/result.hpp"

namespace vigil::cluster {

// Bounds on what a resource file may hold.
inline constexpr size_t kMaxResourceFileBytes = 1 << 20;  // 1 MiB
inline constexpr int kMaxResourceNesting = 8;              // role: doc, spec, allow, rules, item, list
inline constexpr size_t kMaxResourceValueBytes = 4096;
inline constexpr size_t kMaxResourceDocuments = 1000;
inline constexpr size_t kMaxListItems = 1000;

using Resource = std::variant<Role, User>;

// Every document of the text (separated by ---), each a role or a user.
// source names the text in errors ("role.yaml").
Result<std::vector<Resource>> parse_resources(std::string_view text, std::string_view source);

// One document that must be a role.
Result<Role> parse_role(std::string_view text, std::string_view source);

// Go-style durations as Teleport writes them: "8h", "1h30m", "90s",
// "30h0m0s"; whole seconds, from 1 s to 365 days.
std::optional<Seconds> parse_duration(std::string_view text);
// The shortest such form ("30h", "1h30m", "45s").
std::string format_duration(Seconds d);

}  // namespace vigil::cluster
