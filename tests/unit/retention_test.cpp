// audit.retention and audit.recording_retention (auditlog/retention.hpp):
// planted day files and recordings, a clock the test sets.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "auditlog/layout.hpp"
#include "auditlog/retention.hpp"
#include "config/config.hpp"
#include "recording/file_store.hpp"
#include "recording/store.hpp"

using namespace vigil;
using namespace vigil::auditlog;
namespace fs = std::filesystem;

namespace {

class Lines : public Emitter {
 public:
  Result<void> emit(std::string_view line, Durability d) override {
    if (fail) return Error::of(Errc::unavailable, "the log refuses");
    lines.emplace_back(line);
    synced.push_back(d == Durability::sync);
    return {};
  }
  Result<void> flush() override { return {}; }
  std::vector<std::string> lines;
  std::vector<bool> synced;
  bool fail = false;
};

void plant(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vigil-retention-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string day_path(const std::string& server, int64_t day) {
    return log_dir(dir_) + "/" + server + "/" + day_file_name(day);
  }
  std::string dir_;
};

constexpr int64_t kDay = kNsPerDay;

TEST_F(RetentionTest, RemovesExactlyTheExpiredDaysAndWritesAnEventForEach) {
  // now: day 20000 at 10:00; retention 3 days. Day D is due once
  // (D + 1) * kDay + 3 days <= now, i.e. D <= 19996.
  const int64_t today = 20000;
  const int64_t now = today * kDay + 10 * 3'600'000'000'000;
  for (int64_t d = 19990; d <= today; ++d) plant(day_path("node-a", d), "{}\n");
  plant(day_path("node-b", 19995), "{\"x\":1}\n");
  plant(log_dir(dir_) + "/node-a/notes.txt", "not a day file\n");
  Lines log;
  Retention policy{3 * kDay, 0};
  auto report = apply_retention(dir_, policy, now, log, "server-1");
  ASSERT_TRUE(report) << report.error().message;
  std::set<std::string> removed;
  for (size_t i = 0; i < log.lines.size(); ++i) {
    auto e = nlohmann::json::parse(log.lines[i]);
    EXPECT_EQ(e["event"], "audit.retention");
    EXPECT_EQ(e["removed"], "audit_log_day");
    EXPECT_EQ(e["retention_hours"], 72);
    EXPECT_EQ(e["server_id"], "server-1");
    EXPECT_TRUE(log.synced[i]) << "a removal's event is synced before the file goes";
    removed.insert(e["path"].get<std::string>());
  }
  std::set<std::string> expected;
  for (int64_t d = 19990; d <= 19996; ++d) expected.insert(day_path("node-a", d));
  expected.insert(day_path("node-b", 19995));
  EXPECT_EQ(removed, expected);
  EXPECT_EQ(report->day_files_removed, expected.size());
  for (int64_t d = 19990; d <= today; ++d)
    EXPECT_EQ(fs::exists(day_path("node-a", d)), d > 19996) << d;
  EXPECT_TRUE(fs::exists(log_dir(dir_) + "/node-a/notes.txt"));
  // Applied again: nothing more is due, nothing is written.
  log.lines.clear();
  ASSERT_TRUE(apply_retention(dir_, policy, now, log));
  EXPECT_TRUE(log.lines.empty());
}

TEST_F(RetentionTest, NeverRemovesTodaysFileNorTheOneEventsLogPointsAt) {
  const int64_t today = 20000;
  const int64_t now = today * kDay + 23 * 3'600'000'000'000;
  plant(day_path("node-a", today), "{}\n");
  plant(day_path("node-a", today - 1), "{}\n");
  plant(day_path("node-a", today - 2), "{}\n");
  // A writer whose clock is behind still writes to yesterday's file.
  fs::create_symlink("node-a/" + day_file_name(today - 1), log_dir(dir_) + "/events.log");
  Lines log;
  auto report = apply_retention(dir_, Retention{1 * 3'600'000'000'000, 0}, now, log);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(fs::exists(day_path("node-a", today)));
  EXPECT_TRUE(fs::exists(day_path("node-a", today - 1)));
  EXPECT_FALSE(fs::exists(day_path("node-a", today - 2)));
  EXPECT_EQ(report->day_files_removed, 1u);
}

TEST_F(RetentionTest, NothingIsRemovedWhenTheEventCannotBeWritten) {
  const int64_t today = 20000;
  plant(day_path("node-a", 19000), "{}\n");
  Lines log;
  log.fail = true;
  auto report = apply_retention(dir_, Retention{kDay, 0}, today * kDay, log);
  EXPECT_FALSE(report);
  EXPECT_TRUE(fs::exists(day_path("node-a", 19000)));
}

TEST_F(RetentionTest, RecordingsGoByTheirOwnSettingAndLiveOnesStay) {
  const std::string records = recording::records_dir(dir_);
  plant(records + "/old.vrec", "old");
  plant(records + "/old.vrec.status", "{\"version\":1,\"status\":\"complete\"}");
  plant(records + "/new.vrec", "new");
  // A recording being written (its writer, this process, is alive).
  recording::FileRecordingStore store(dir_);
  auto live = store.create("live", "live");
  ASSERT_TRUE(live) << live.error().message;
  // old and live: last written 10 days ago; new: now.
  const int64_t now = 20000 * kDay;
  auto set_mtime = [](const std::string& path, int64_t ns) {
    timespec t[2] = {{ns / 1'000'000'000, ns % 1'000'000'000}, {ns / 1'000'000'000, ns % 1'000'000'000}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), t, 0), 0);
  };
  set_mtime(records + "/old.vrec", now - 10 * kDay);
  set_mtime(records + "/live.vrec", now - 10 * kDay);
  set_mtime(records + "/new.vrec", now);
  plant(day_path("node-a", 19000), "{}\n");
  Lines log;
  auto report = apply_retention(dir_, Retention{0, 7 * kDay}, now, log);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_FALSE(fs::exists(records + "/old.vrec"));
  EXPECT_FALSE(fs::exists(records + "/old.vrec.status"));
  EXPECT_TRUE(fs::exists(records + "/new.vrec"));
  EXPECT_TRUE(fs::exists(records + "/live.vrec")) << "a recording in progress is kept";
  EXPECT_TRUE(fs::exists(day_path("node-a", 19000))) << "audit.retention is not set";
  ASSERT_EQ(log.lines.size(), 1u);
  auto e = nlohmann::json::parse(log.lines[0]);
  EXPECT_EQ(e["removed"], "recording");
  EXPECT_EQ(e["path"], records + "/old.vrec");
  EXPECT_EQ(e["bytes"], 3);
}

TEST(RetentionConfig, ParsesDaysAndHoursAndRefusesTheRest) {
  auto c = config::parse("audit:\n  retention: 90d\n  recording_retention: 12h\n", "node.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->audit.retention_ns, 90 * kDay);
  EXPECT_EQ(c->audit.recording_retention_ns, 12 * 3'600'000'000'000);
  EXPECT_EQ(config::parse("", "node.yaml")->audit.retention_ns, 0);
  for (const char* bad : {"90", "0d", "-1d", "1.5d", "90 days", "36501d", "99999999999d", "d"}) {
    auto r = config::parse(std::string("audit:\n  retention: \"") + bad + "\"\n", "node.yaml");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("node.yaml:2"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("like 90d or 12h"), std::string::npos) << r.error().message;
  }
}

}  // namespace
