// The per-source limit on failed logins, with a clock the test moves.
#include "auth/rate_limit.hpp"

#include <gtest/gtest.h>

namespace vigil::auth {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(AuthRateLimit, TenFailuresInAMinuteBlockForFiveMinutes) {
  AuthRateLimiter limiter;  // 10 per minute, blocked for 5 minutes
  int64_t now = 1000 * kSecond;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(limiter.allow("192.0.2.1", now)) << "attempt " << i + 1;
    limiter.failed("192.0.2.1", now);
    now += kSecond;
  }
  EXPECT_FALSE(limiter.allow("192.0.2.1", now));
  EXPECT_TRUE(limiter.allow("192.0.2.2", now));  // others are not affected
  EXPECT_FALSE(limiter.allow("192.0.2.1", now + 290 * kSecond));
  EXPECT_TRUE(limiter.allow("192.0.2.1", now + 300 * kSecond));
}

TEST(AuthRateLimit, FailuresSpreadOverMoreThanAMinuteNeverBlock) {
  AuthRateLimiter limiter;
  int64_t now = 0;
  // One failure every 6.7 s: ten of them span more than a minute.
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(limiter.allow("192.0.2.1", now)) << "attempt " << i + 1;
    limiter.failed("192.0.2.1", now);
    now += 6'700'000'000;
  }
}

TEST(AuthRateLimit, OldFailuresAgeOut) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 9; ++i) limiter.failed("a", 0);
  EXPECT_TRUE(limiter.allow("a", 0));
  // A minute later those nine no longer count: nine more are allowed.
  for (int i = 0; i < 9; ++i) limiter.failed("a", 60 * kSecond);
  EXPECT_TRUE(limiter.allow("a", 60 * kSecond));
  limiter.failed("a", 61 * kSecond);
  EXPECT_FALSE(limiter.allow("a", 61 * kSecond));
}

TEST(AuthRateLimit, AfterTheBlockTheCountStartsAfresh) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 10; ++i) limiter.failed("a", 0);
  const int64_t after = 300 * kSecond;
  ASSERT_TRUE(limiter.allow("a", after));
  limiter.failed("a", after);
  EXPECT_TRUE(limiter.allow("a", after));
}

TEST(AuthRateLimit, SuccessForgetsFailures) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 9; ++i) limiter.failed("192.0.2.1", 0);
  limiter.succeeded("192.0.2.1", 0);
  EXPECT_EQ(limiter.tracked_sources(), 0u);
  for (int i = 0; i < 9; ++i) limiter.failed("192.0.2.1", 0);
  EXPECT_TRUE(limiter.allow("192.0.2.1", 0));
}

TEST(AuthRateLimit, Ipv6CountsPerSlash64) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 10; ++i) limiter.failed("2001:db8:0:1::" + std::to_string(i + 1), 0);
  EXPECT_FALSE(limiter.allow("2001:db8:0:1::ffff", 0));
  EXPECT_TRUE(limiter.allow("2001:db8:0:2::1", 0));
  // A mapped IPv4 address is the IPv4 address.
  for (int i = 0; i < 10; ++i) limiter.failed("::ffff:198.51.100.9", 0);
  EXPECT_FALSE(limiter.allow("198.51.100.9", 0));
}

TEST(AuthRateLimit, MemoryIsBounded) {
  RateLimits limits;
  limits.max_sources = 100;
  AuthRateLimiter limiter(limits);
  for (int i = 0; i < 1000; ++i) limiter.failed("10.0." + std::to_string(i / 256) + "." +
                                                    std::to_string(i % 256), 0);
  EXPECT_EQ(limiter.tracked_sources(), 100u);

  // Sources that have paid back their debt are forgotten as new ones fail.
  const int64_t later = 61 * kSecond;
  limiter.failed("192.0.2.1", later);
  EXPECT_EQ(limiter.tracked_sources(), 1u);
}

TEST(AuthRateLimit, BlockedSourceStaysBlockedUnderChurnItCannotOutlast) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 10; ++i) limiter.failed("192.0.2.1", 0);
  // Idle sources are dropped, blocked ones are kept.
  for (int i = 0; i < 50; ++i) limiter.failed("198.51.100." + std::to_string(i), 120 * kSecond);
  EXPECT_FALSE(limiter.allow("192.0.2.1", 120 * kSecond));
}

}  // namespace
}  // namespace vigil::auth
