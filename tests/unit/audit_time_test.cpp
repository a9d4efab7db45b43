// RFC 3339 timestamps of audit events and the clock of the text form.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "audit/timefmt.hpp"

namespace vigil::audit {
namespace {

TEST(AuditTime, Epoch) { EXPECT_EQ(format_time(0), "1970-01-01T00:00:00.000000Z"); }

TEST(AuditTime, GuideSampleInstant) {
  EXPECT_EQ(format_time(1'688'488'940'540'000'000), "2023-07-04T16:42:20.540000Z");
  EXPECT_EQ(format_time(1'688'488'940'540'123'000), "2023-07-04T16:42:20.540123Z");
}

TEST(AuditTime, LeapDays) {
  EXPECT_EQ(format_time(1'709'251'199'000'000'000), "2024-02-29T23:59:59.000000Z");
  EXPECT_EQ(format_time(1'709'251'200'000'000'000), "2024-03-01T00:00:00.000000Z");
  EXPECT_EQ(format_time(951'825'600'000'000'000), "2000-02-29T12:00:00.000000Z");  // 400-year rule
  EXPECT_EQ(format_time(4'107'542'399'999'999'999), "2100-02-28T23:59:59.999999Z");  // 100-year rule
  EXPECT_EQ(format_time(4'107'542'400'000'000'000), "2100-03-01T00:00:00.000000Z");
  EXPECT_EQ(format_time(-2'203'891'200'000'000'000), "1900-03-01T00:00:00.000000Z");
}

TEST(AuditTime, YearAndMonthBoundaries) {
  EXPECT_EQ(format_time(1'704'067'199'999'999'999), "2023-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_time(1'704'067'200'000'000'000), "2024-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_time(1'714'521'600'000'000'000), "2024-05-01T00:00:00.000000Z");
}

TEST(AuditTime, SubMicrosecondDigitsAreCutNotRounded) {
  EXPECT_EQ(format_time(1'709'251'199'999'999'999), "2024-02-29T23:59:59.999999Z");
  EXPECT_EQ(format_time(999), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_time(1'999), "1970-01-01T00:00:00.000001Z");
}

TEST(AuditTime, BeforeTheEpoch) {
  EXPECT_EQ(format_time(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_time(-1'000'000'000), "1969-12-31T23:59:59.000000Z");
  EXPECT_EQ(format_time(-86'400'000'000'001), "1969-12-30T23:59:59.999999Z");
}

TEST(AuditTime, WholeInt64Range) {
  EXPECT_EQ(format_time(std::numeric_limits<int64_t>::max()), "2262-04-11T23:47:16.854775Z");
  EXPECT_EQ(format_time(std::numeric_limits<int64_t>::min()), "1677-09-21T00:12:43.145224Z");
}

TEST(AuditTime, AppendsToTheBuffer) {
  std::string out = "t=";
  append_time(out, 0);
  EXPECT_EQ(out, "t=1970-01-01T00:00:00.000000Z");
}

TEST(AuditTime, ClockMillisTruncates) {
  std::string out;
  append_clock_millis(out, 1'688'488'940'540'999'999);
  EXPECT_EQ(out, "16:42:20.540");
  out.clear();
  append_clock_millis(out, -1);
  EXPECT_EQ(out, "23:59:59.999");
}

}  // namespace
}  // namespace vigil::audit
