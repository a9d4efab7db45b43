// Reading untrusted JSON (audit log lines, a recording's events) for the
// text renderers, with a bound on nesting.
//
// nlohmann's parser keeps its own stack, but much of what is done with a
// value afterwards recurses once per level (dump(), copies, comparisons): a
// line of 100,000 '[' parses fine and then overflows the stack of whoever
// renders it. So a value nested deeper than kMaxJsonDepth is refused while
// it is parsed, before anything is built for it, and a caller can then
// recurse on what it got.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace vigil::audit {

// Objects and arrays inside each other, the top level counting as 1. An
// audit event nests 3 deep; Teleport's richest events about 5.
inline constexpr int kMaxJsonDepth = 64;

// The JSON value of `text`, or std::nullopt with `why` (when given) saying
// what is wrong: "not JSON at byte N" or "nested deeper than 64 levels".
// Stops at the first level too deep: the time and memory it takes are
// linear in the bytes it read.
std::optional<nlohmann::json> parse_json_bounded(std::string_view text, std::string* why = nullptr);

}  // namespace vigil::audit
