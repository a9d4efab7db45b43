// Where the file audit log lives, laid out as Teleport's file log:
//
//   <data_dir>/log/<server-uuid>/2026-11-27.00:00:00.log  one JSON event a line, a file a UTC day
//   <data_dir>/log/events.log -> <server-uuid>/<today's file>  (relative; `tail -F` follows it)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vigil::auditlog {

inline constexpr int64_t kNsPerDay = 86'400'000'000'000;
inline constexpr std::string_view kCurrentLink = "events.log";

// <data_dir>/log
std::string log_dir(const std::string& data_dir);

// Days since 1970-01-01 (UTC) of an instant in ns since the epoch; floor, so
// instants before 1970 land on the right day too.
int64_t day_of(int64_t ns);

// "2026-11-27.00:00:00.log" for the day `day` (as day_of counts them).
std::string day_file_name(int64_t day);

// The day of a day file's name; nullopt for any other name.
std::optional<int64_t> parse_day_file_name(std::string_view name);

// A server uuid is used as a directory name: it must be one path component
// that is not "." or "..", and printable.
bool is_safe_dir_name(std::string_view name);

}  // namespace vigil::auditlog
