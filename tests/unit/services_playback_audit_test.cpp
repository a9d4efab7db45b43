// session.recording.access (services/recording_routes.hpp, PlaybackAudit):
// one event per reader, session and address per window, durable before the
// bytes go out, refused when the log cannot take it, bounded in memory.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "../support/memory_log.hpp"
#include "services/recording_routes.hpp"

namespace vigil::services {
namespace {

constexpr const char* kSid = "9b825e22-744d-4130-94c5-dea49198ae3d";
constexpr const char* kOtherSid = "0b825e22-744d-4130-94c5-dea49198ae3e";
constexpr int64_t kMinute = 60'000'000'000;

// An audit log that refuses while `broken`.
class BreakableLog : public test::MemoryLog {
 public:
  bool broken = false;
  Result<void> emit(std::string_view line, auditlog::Durability d) override {
    if (broken) return Error::of(Errc::unavailable, "disk full");
    return MemoryLog::emit(line, d);
  }
};

struct Fixture {
  BreakableLog log;
  int64_t mono = 1'000 * kMinute;
  PlaybackAudit audit{log, "purple", [] { return int64_t{1'700'000'000} * 1'000'000'000; },
                      [this] { return mono; }};
};

TEST(PlaybackAudit, TheFirstReadWritesOneDurableEventWithTheReaderTheSidAndTheAddress) {
  Fixture f;
  ASSERT_TRUE(f.audit.played("mia", kSid, "10.0.0.7:51234"));
  auto lines = f.log.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].durability, auditlog::Durability::sync);
  const auto& e = lines[0].event;
  EXPECT_EQ(e.value("event", ""), "session.recording.access");
  EXPECT_EQ(e.value("code", ""), "T2012I");
  EXPECT_EQ(e.value("user", ""), "mia");
  EXPECT_EQ(e.value("sid", ""), kSid);
  EXPECT_EQ(e.value("addr.remote", ""), "10.0.0.7:51234");
  EXPECT_EQ(e.value("cluster_name", ""), "purple");
  EXPECT_EQ(e.value("time", ""), "2023-11-14T22:13:20.000000Z");
  EXPECT_EQ(e.value("uid", "").size(), 36u);
}

TEST(PlaybackAudit, FurtherWindowsOfTheSamePlaybackWriteNoneUntilTheWindowHasPassed) {
  Fixture f;
  ASSERT_TRUE(f.audit.played("mia", kSid, "10.0.0.7:51234"));
  // The player's next windows, on new connections (other ports).
  f.mono += kMinute;
  ASSERT_TRUE(f.audit.played("mia", kSid, "10.0.0.7:51300"));
  ASSERT_TRUE(f.audit.played("mia", kSid, "10.0.0.7:51301"));
  EXPECT_EQ(f.log.lines().size(), 1u);
  // Another session, another reader, another address: each an event.
  ASSERT_TRUE(f.audit.played("mia", kOtherSid, "10.0.0.7:51302"));
  ASSERT_TRUE(f.audit.played("leo", kSid, "10.0.0.7:51303"));
  ASSERT_TRUE(f.audit.played("mia", kSid, "10.0.0.8:40000"));
  EXPECT_EQ(f.log.lines().size(), 4u);
  // The window counts from the event, not from the last read.
  f.mono += std::chrono::nanoseconds(kPlaybackAuditWindow).count() - kMinute;
  ASSERT_TRUE(f.audit.played("mia", kSid, "10.0.0.7:51304"));
  EXPECT_EQ(f.log.lines().size(), 5u);
  EXPECT_EQ(f.audit.written(), 5u);
}

TEST(PlaybackAudit, AReadTheLogCannotRecordIsRefusedAndTriedAgainNextTime) {
  Fixture f;
  f.log.broken = true;
  auto r = f.audit.played("mia", kSid, "10.0.0.7:51234");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), Errc::unavailable);
  EXPECT_NE(r.error().message.find("session.recording.access"), std::string::npos);
  f.log.broken = false;
  ASSERT_TRUE(f.audit.played("mia", kSid, "10.0.0.7:51234"));
  EXPECT_EQ(f.log.lines().size(), 1u);
}

TEST(PlaybackAudit, ItRemembersABoundedNumberOfReadersAndForgetsTheOldestFirst) {
  Fixture f;
  ASSERT_TRUE(f.audit.played("first", kSid, "10.0.0.7:1"));
  for (size_t i = 0; i < kPlaybackAuditMemory + 10; ++i) {
    f.mono += 1;
    ASSERT_TRUE(f.audit.played("reader" + std::to_string(i), kSid, "10.0.0.7:1"));
  }
  const size_t written = f.log.lines().size();
  EXPECT_EQ(written, kPlaybackAuditMemory + 11);
  // The oldest was forgotten: its next read writes again (an extra event,
  // never a missing one); the newest is still remembered.
  ASSERT_TRUE(f.audit.played("first", kSid, "10.0.0.7:1"));
  ASSERT_TRUE(f.audit.played("reader" + std::to_string(kPlaybackAuditMemory + 9), kSid, "10.0.0.7:1"));
  EXPECT_EQ(f.log.lines().size(), written + 1);
}

}  // namespace
}  // namespace vigil::services
