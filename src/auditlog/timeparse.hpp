// Reading times back: the "time" of logged events (RFC 3339) and the times
// people give `vigil events` (--from/--to). Integer calendar arithmetic, in
// UTC, as timefmt.hpp writes them; no locale, no time zone database.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/result.hpp"

namespace vigil::auditlog {

// "2026-11-27": ns since the epoch of its midnight UTC.
std::optional<int64_t> parse_date(std::string_view s);

// RFC 3339: "2026-11-27T10:00:00Z", with any number of fractional digits
// (digits past the nanosecond are cut) and 'Z' or a "+02:00" offset; 't',
// 'z' and a space between date and time are accepted too (RFC 3339 5.6).
// nullopt when s is not such a time or lies outside int64 nanoseconds
// (1677-09-21 to 2262-04-11).
std::optional<int64_t> parse_rfc3339(std::string_view s);

// A time given on the command line: RFC 3339, a date (its midnight UTC),
// "now", or a duration before now_ns: "-30s", "-15m", "-2h", "-7d", "-1w".
// The error says which forms are accepted.
Result<int64_t> parse_time_arg(std::string_view s, int64_t now_ns);

}  // namespace vigil::auditlog
