// The times the audit log reads back (src/auditlog/timeparse.cpp): an
// event's RFC 3339 "time", a day file's date, and what people give
// `vigil events --from/--to`.
//
// Property: whatever time parses, the audit log's own writer
// (audit::format_time, microseconds) writes it as a time that parses back
// to it, cut to the microsecond.
#include <cstdint>
#include <string>
#include <string_view>

#include "audit/timefmt.hpp"
#include "auditlog/layout.hpp"
#include "auditlog/timeparse.hpp"
#include "check.hpp"

using namespace vigil::auditlog;

namespace {

void round_trip(int64_t ns, std::string_view from) {
  const std::string text = vigil::audit::format_time(ns);
  auto back = parse_rfc3339(text);
  FUZZ_CHECK(back, "the writer's time does not parse: " + text + " (from " + std::string(from) + ")");
  FUZZ_CHECK(*back <= ns && ns - *back < 1000,
             "written and read back, " + std::string(from) + " moved to " + text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(bytes), size);
  if (auto t = parse_rfc3339(s)) round_trip(*t, s);
  if (auto d = parse_date(s)) {
    FUZZ_CHECK(*d % kNsPerDay == 0, "a date is a midnight");
    round_trip(*d, s);
  }
  if (auto day = parse_day_file_name(s)) FUZZ_CHECK(day_file_name(*day) == s, "day file names");
  constexpr int64_t kNow = 1'795'000'000'000'000'000;  // 2026-11-18
  auto arg = parse_time_arg(s, kNow);
  if (!arg) FUZZ_CHECK(!arg.error().message.empty(), "errors say which forms are accepted");
  return 0;
}
