#include "auditlog/layout.hpp"

#include "audit/timefmt.hpp"
#include "auditlog/timeparse.hpp"

namespace vigil::auditlog {

namespace {
constexpr std::string_view kDayFileSuffix = ".00:00:00.log";
}

std::string log_dir(const std::string& data_dir) { return data_dir + "/log"; }

int64_t day_of(int64_t ns) {
  const int64_t q = ns / kNsPerDay;
  return (ns % kNsPerDay < 0) ? q - 1 : q;
}

std::string day_file_name(int64_t day) {
  // format_time gives "YYYY-MM-DDTHH:MM:SS.uuuuuuZ"; the date is its first 10 bytes.
  std::string name = audit::format_time(day * kNsPerDay).substr(0, 10);
  name += kDayFileSuffix;
  return name;
}

std::optional<int64_t> parse_day_file_name(std::string_view name) {
  if (name.size() != 10 + kDayFileSuffix.size() || name.substr(10) != kDayFileSuffix)
    return std::nullopt;
  auto ns = parse_date(name.substr(0, 10));
  if (!ns) return std::nullopt;
  return day_of(*ns);
}

bool is_safe_dir_name(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.size() > 255) return false;
  for (unsigned char c : name)
    if (c == '/' || c < 0x21 || c == 0x7f) return false;
  return true;
}

}  // namespace vigil::auditlog
