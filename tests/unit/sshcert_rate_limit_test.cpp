// The per-source limit on failed logins and the aggregation of refusals,
// with a clock the test moves.
#include "sshcert/rate_limit.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vigil::sshcert {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(AuthRateLimit, TenFailuresInAMinuteBlockForFiveMinutes) {
  AuthRateLimiter limiter;  // 10 per minute, blocked for 5 minutes
  int64_t now = 1000 * kSecond;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(limiter.allow("192.0.2.1", now)) << "attempt " << i + 1;
    limiter.failed("192.0.2.1", now, Proof::signature);
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
    limiter.failed("192.0.2.1", now, Proof::signature);
    now += 6'700'000'000;
  }
}

TEST(AuthRateLimit, OldFailuresAgeOut) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 9; ++i) limiter.failed("a", 0, Proof::signature);
  EXPECT_TRUE(limiter.allow("a", 0));
  // A minute later those nine no longer count: nine more are allowed.
  for (int i = 0; i < 9; ++i) limiter.failed("a", 60 * kSecond, Proof::signature);
  EXPECT_TRUE(limiter.allow("a", 60 * kSecond));
  limiter.failed("a", 61 * kSecond, Proof::signature);
  EXPECT_FALSE(limiter.allow("a", 61 * kSecond));
}

TEST(AuthRateLimit, AfterTheBlockTheCountStartsAfresh) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 10; ++i) limiter.failed("a", 0, Proof::signature);
  const int64_t after = 300 * kSecond;
  ASSERT_TRUE(limiter.allow("a", after));
  limiter.failed("a", after, Proof::signature);
  EXPECT_TRUE(limiter.allow("a", after));
}

TEST(AuthRateLimit, SuccessForgetsFailures) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 9; ++i) limiter.failed("192.0.2.1", 0, Proof::signature);
  limiter.succeeded("192.0.2.1", 0);
  EXPECT_EQ(limiter.tracked_sources(), 0u);
  for (int i = 0; i < 9; ++i) limiter.failed("192.0.2.1", 0, Proof::signature);
  EXPECT_TRUE(limiter.allow("192.0.2.1", 0));
}

TEST(AuthRateLimit, Ipv6CountsPerSlash64) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 10; ++i) limiter.failed("2001:db8:0:1::" + std::to_string(i + 1), 0, Proof::signature);
  EXPECT_FALSE(limiter.allow("2001:db8:0:1::ffff", 0));
  EXPECT_TRUE(limiter.allow("2001:db8:0:2::1", 0));
  // A mapped IPv4 address is the IPv4 address.
  for (int i = 0; i < 10; ++i) limiter.failed("::ffff:198.51.100.9", 0, Proof::signature);
  EXPECT_FALSE(limiter.allow("198.51.100.9", 0));
}

TEST(AuthRateLimit, MemoryIsBounded) {
  RateLimits limits;
  limits.max_sources = 100;
  AuthRateLimiter limiter(limits);
  for (int i = 0; i < 1000; ++i) limiter.failed("10.0." + std::to_string(i / 256) + "." +
                                                    std::to_string(i % 256), 0, Proof::signature);
  EXPECT_EQ(limiter.tracked_sources(), 100u);

  // Sources that have paid back their debt are forgotten as new ones fail.
  const int64_t later = 61 * kSecond;
  limiter.failed("192.0.2.1", later, Proof::signature);
  EXPECT_EQ(limiter.tracked_sources(), 1u);
}

TEST(AuthRateLimit, BlockedSourceStaysBlockedUnderChurnItCannotOutlast) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 10; ++i) limiter.failed("192.0.2.1", 0, Proof::signature);
  // Idle sources are dropped, blocked ones are kept.
  for (int i = 0; i < 50; ++i) limiter.failed("198.51.100." + std::to_string(i), 120 * kSecond, Proof::signature);
  EXPECT_FALSE(limiter.allow("192.0.2.1", 120 * kSecond));
}

// Issue 7, item 9: "would this key do?" queries need no private key. However
// many of them fail, a client that signs with a good certificate gets in.
TEST(AuthRateLimit, ProbesNeverLockOutASignedLogin) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 50; ++i) limiter.failed("192.0.2.1", 0, Proof::probe);
  EXPECT_FALSE(limiter.allow("192.0.2.1", 0, Proof::probe));     // failing probes: rate_limited
  EXPECT_TRUE(limiter.allow("192.0.2.1", 0, Proof::signature));  // a key holder: still in
  EXPECT_TRUE(limiter.allow("192.0.2.1", 300 * kSecond, Proof::probe));
}

TEST(AuthRateLimit, SignedFailuresBlockEverything) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 9; ++i) limiter.failed("192.0.2.1", 0, Proof::signature);
  EXPECT_TRUE(limiter.allow("192.0.2.1", 0, Proof::signature));
  limiter.failed("192.0.2.1", 0, Proof::signature);
  EXPECT_FALSE(limiter.allow("192.0.2.1", 0, Proof::signature));
  EXPECT_FALSE(limiter.allow("192.0.2.1", 0, Proof::probe));
  EXPECT_TRUE(limiter.allow("192.0.2.1", 300 * kSecond, Proof::signature));
}

TEST(AuthRateLimit, SignedFailuresCountTowardTheProbeBudgetToo) {
  AuthRateLimiter limiter;
  for (int i = 0; i < 5; ++i) limiter.failed("a", 0, Proof::signature);
  for (int i = 0; i < 5; ++i) limiter.failed("a", 0, Proof::probe);
  EXPECT_FALSE(limiter.allow("a", 0, Proof::probe));
  EXPECT_TRUE(limiter.allow("a", 0, Proof::signature));
}

// A sample that remembers what it absorbed.
struct Sample {
  std::string what;
  int absorbed = 0;
  void absorb(const Sample& later) {
    if (later.what != what) what = "mixed";
    ++absorbed;
  }
};
using Aggregator = RefusalAggregator<Sample>;

TEST(RefusalAggregator, FirstIsWrittenTheRestCountedUntilTheWindowCloses) {
  Aggregator agg;  // one minute
  std::vector<Aggregator::Summary> evicted;
  EXPECT_TRUE(agg.note("192.0.2.1", "sshcert/no_certificate", {"a"}, 0, &evicted));
  for (int i = 1; i <= 999; ++i)
    EXPECT_FALSE(agg.note("192.0.2.1", "sshcert/no_certificate", {"a"}, i * 1'000'000, &evicted));
  EXPECT_TRUE(agg.take_due(59 * kSecond).empty());
  auto due = agg.take_due(60 * kSecond);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].count, 999u);
  EXPECT_EQ(due[0].sample.what, "a");
  EXPECT_EQ(due[0].sample.absorbed, 998);
  EXPECT_EQ(due[0].first_ns, 1'000'000);
  EXPECT_EQ(due[0].last_ns, 999'000'000);
  EXPECT_TRUE(evicted.empty());
  EXPECT_EQ(agg.tracked_keys(), 0u);
  // The next window starts with a refusal written at once.
  EXPECT_TRUE(agg.note("192.0.2.1", "sshcert/no_certificate", {"a"}, 61 * kSecond, &evicted));
}

TEST(RefusalAggregator, AWindowWithNothingCountedSummarisesNothing) {
  Aggregator agg;
  std::vector<Aggregator::Summary> evicted;
  EXPECT_TRUE(agg.note("192.0.2.1", "k", {"a"}, 0, &evicted));
  EXPECT_TRUE(agg.take_due(600 * kSecond).empty());
  EXPECT_EQ(agg.tracked_keys(), 0u);
}

TEST(RefusalAggregator, KindsAndSourcesAreApart) {
  Aggregator agg;
  std::vector<Aggregator::Summary> evicted;
  EXPECT_TRUE(agg.note("192.0.2.1", "sshcert/expired", {"a"}, 0, &evicted));
  EXPECT_TRUE(agg.note("192.0.2.1", "sshcert/untrusted_ca", {"a"}, 0, &evicted));
  EXPECT_TRUE(agg.note("192.0.2.2", "sshcert/expired", {"a"}, 0, &evicted));
  // IPv6 sources are one source per /64, as in the limiter.
  EXPECT_TRUE(agg.note("2001:db8:0:1::1", "sshcert/expired", {"a"}, 0, &evicted));
  EXPECT_FALSE(agg.note("2001:db8:0:1::2", "sshcert/expired", {"b"}, 0, &evicted));
  auto due = agg.take_due(60 * kSecond);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].count, 1u);
  EXPECT_EQ(due[0].sample.what, "b");
}

TEST(RefusalAggregator, ConnectionEndTakesTheSourcesCountsAndKeepsTheWindow) {
  Aggregator agg;
  std::vector<Aggregator::Summary> evicted;
  EXPECT_TRUE(agg.note("192.0.2.1", "k", {"a"}, 0, &evicted));
  EXPECT_FALSE(agg.note("192.0.2.1", "k", {"b"}, 1, &evicted));
  EXPECT_FALSE(agg.note("192.0.2.1", "k", {"a"}, 2, &evicted));
  EXPECT_TRUE(agg.note("192.0.2.2", "k", {"a"}, 3, &evicted));
  EXPECT_FALSE(agg.note("192.0.2.2", "k", {"a"}, 4, &evicted));
  auto taken = agg.take_source("192.0.2.1");
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].count, 2u);
  EXPECT_EQ(taken[0].sample.what, "mixed");
  EXPECT_TRUE(agg.take_source("192.0.2.1").empty());
  // Still the same window: counted again, not written at once.
  EXPECT_FALSE(agg.note("192.0.2.1", "k", {"a"}, 5, &evicted));
  auto due = agg.take_due(60 * kSecond + 3);  // both windows (opened at 0 and 3) have closed
  ASSERT_EQ(due.size(), 2u);
  uint64_t total = 0;
  for (const auto& s : due) total += s.count;
  EXPECT_EQ(total, 2u);  // one of each source
}

TEST(RefusalAggregator, KeysPushedOutByTheBoundHandTheirCountsBack) {
  AggregateLimits limits;
  limits.max_keys = 10;
  Aggregator agg(limits);
  std::vector<Aggregator::Summary> evicted;
  uint64_t written = 0, counted = 0;
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 50; ++i) {
      std::string addr = "198.51.100." + std::to_string(i);
      for (int twice = 0; twice < 2; ++twice) {
        if (agg.note(addr, "k", {"a"}, round, &evicted)) ++written;
        else ++counted;
      }
    }
  EXPECT_LE(agg.tracked_keys(), 10u);
  for (auto& s : agg.take_due(600 * kSecond)) evicted.push_back(s);
  uint64_t summarised = 0;
  for (const auto& s : evicted) summarised += s.count;
  EXPECT_EQ(written + counted, 300u);
  EXPECT_EQ(counted, 150u);
  EXPECT_EQ(summarised, counted);  // every counted refusal is in a summary
}

}  // namespace
}  // namespace vigil::sshcert
