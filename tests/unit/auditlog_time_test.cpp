// Reading times back (event "time" fields, --from/--to), day file names and
// the base64 forms the audit log's readers decode.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "audit/timefmt.hpp"
#include "auditlog/base64url.hpp"
#include "auditlog/layout.hpp"
#include "auditlog/timeparse.hpp"

namespace vigil::auditlog {
namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kGuideTime = 1'688'488'940'540'000'000;  // 2023-07-04T16:42:20.54Z

TEST(AuditlogTime, ParsesWhatTheEncoderWrites) {
  for (int64_t ns : {int64_t{0}, kGuideTime, kGuideTime + 123'000, int64_t{-1'000},
                     int64_t{1'709'251'199'999'999'000}, int64_t{951'825'600'000'000'000}}) {
    const std::string text = audit::format_time(ns);
    ASSERT_EQ(parse_rfc3339(text), ns) << text;
  }
  // The extremes of int64 ns, cut to the microsecond as written.
  const int64_t max_us = std::numeric_limits<int64_t>::max() / 1000 * 1000;
  EXPECT_EQ(parse_rfc3339(audit::format_time(max_us)), max_us);
}

TEST(AuditlogTime, FractionsOffsetsAndSpellings) {
  EXPECT_EQ(parse_rfc3339("2023-07-04T16:42:20.54Z"), kGuideTime);  // the guide's sample
  EXPECT_EQ(parse_rfc3339("2023-07-04T16:42:20Z"), kGuideTime - 540'000'000);
  EXPECT_EQ(parse_rfc3339("2023-07-04t16:42:20.540z"), kGuideTime);
  EXPECT_EQ(parse_rfc3339("2023-07-04 16:42:20.540Z"), kGuideTime);
  EXPECT_EQ(parse_rfc3339("2023-07-04T18:42:20.540+02:00"), kGuideTime);
  EXPECT_EQ(parse_rfc3339("2023-07-04T11:12:20.540-05:30"), kGuideTime);
  EXPECT_EQ(parse_rfc3339("2023-07-04T16:42:20.540000001Z"), kGuideTime + 1);
  // Digits past the nanosecond are cut.
  EXPECT_EQ(parse_rfc3339("2023-07-04T16:42:20.5400000019Z"), kGuideTime + 1);
  // A leap second reads as the next minute's first second.
  EXPECT_EQ(parse_rfc3339("2016-12-31T23:59:60Z"), parse_rfc3339("2017-01-01T00:00:00Z"));
}

TEST(AuditlogTime, RefusesWhatIsNotRfc3339) {
  for (const char* bad :
       {"", "2023-07-04", "2023-07-04T16:42:20", "2023-07-04T16:42Z", "2023-7-04T16:42:20Z",
        "2023-07-04T16:42:20.Z", "2023-07-04T24:00:00Z", "2023-02-29T00:00:00Z",
        "2023-07-04T16:42:20Zjunk", "2023-07-04T16:42:20+0200", "1500-01-01T00:00:00Z",
        "2300-01-01T00:00:00Z", " 2023-07-04T16:42:20Z"})
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  EXPECT_TRUE(parse_rfc3339("2024-02-29T00:00:00Z"));
}

TEST(AuditlogTime, CommandLineTimes) {
  const int64_t now = kGuideTime;
  EXPECT_EQ(parse_time_arg("2026-11-27T10:00:00Z", now).value(),
            *parse_rfc3339("2026-11-27T10:00:00Z"));
  EXPECT_EQ(parse_time_arg("2026-11-27", now).value(), *parse_rfc3339("2026-11-27T00:00:00Z"));
  EXPECT_EQ(parse_time_arg("now", now).value(), now);
  EXPECT_EQ(parse_time_arg("-30s", now).value(), now - 30 * kSec);
  EXPECT_EQ(parse_time_arg("-15m", now).value(), now - 15 * 60 * kSec);
  EXPECT_EQ(parse_time_arg("-2h", now).value(), now - 2 * 3600 * kSec);
  EXPECT_EQ(parse_time_arg("-7d", now).value(), now - 7 * 86'400 * kSec);
  EXPECT_EQ(parse_time_arg("-1w", now).value(), now - 7 * 86'400 * kSec);
  for (const char* bad : {"", "yesterday", "-15", "-m", "15m", "-15x", "-15mm", "2026-11-27T10"}) {
    auto r = parse_time_arg(bad, now);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("RFC 3339"), std::string::npos) << r.error().message;
  }
  EXPECT_FALSE(parse_time_arg("-99999999999999d", now));  // before int64 ns begin
}

TEST(AuditlogLayout, DayFileNames) {
  const int64_t day = day_of(*parse_rfc3339("2026-11-27T23:59:59.999Z"));
  EXPECT_EQ(day_file_name(day), "2026-11-27.00:00:00.log");
  EXPECT_EQ(day_of(*parse_rfc3339("2026-11-28T00:00:00Z")), day + 1);
  EXPECT_EQ(parse_day_file_name("2026-11-27.00:00:00.log"), day);
  EXPECT_EQ(day_of(-1), -1);
  EXPECT_EQ(day_file_name(-1), "1969-12-31.00:00:00.log");
  for (const char* other : {"events.log", "2026-11-27.log", "2026-11-27.00:00:00.log.gz",
                            "2026-13-27.00:00:00.log", "sessions"})
    EXPECT_FALSE(parse_day_file_name(other)) << other;
}

TEST(AuditlogLayout, ServerDirectoryNames) {
  EXPECT_TRUE(is_safe_dir_name("531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f"));
  for (const char* bad : {"", ".", "..", "a/b", "a b", "a\nb"}) EXPECT_FALSE(is_safe_dir_name(bad));
}

TEST(AuditlogBase64, StandardAndUrlSafe) {
  EXPECT_EQ(decode_base64("L2V0Yy9ob3N0cw=="), "/etc/hosts");
  EXPECT_EQ(decode_base64(""), "");
  EXPECT_EQ(decode_base64("/w=="), std::string("\xff"));
  EXPECT_FALSE(decode_base64("L2V0Yw"));  // padding missing
  EXPECT_FALSE(decode_base64("L2V0Y!=="));
  EXPECT_FALSE(decode_base64("/x=="));  // bits left over
  for (std::string bytes : {std::string(""), std::string("a"), std::string("ab"),
                            std::string("abc"), std::string("\xfb\xff\xfe", 3)}) {
    const std::string key = encode_base64url(bytes);
    EXPECT_EQ(key.find_first_of("+/="), std::string::npos) << key;
    EXPECT_EQ(decode_base64url(key), bytes);
  }
  EXPECT_FALSE(decode_base64url("a+b/"));
}

}  // namespace
}  // namespace vigil::auditlog
