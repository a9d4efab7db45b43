// The file back end of the audit log: day files and the events.log link
// across a UTC midnight (injected clock), whole lines from many threads,
// sync durability, and disk faults injected through FileLogOptions::io.
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "audit/encode.hpp"
#include "auditlog/file_log.hpp"
#include "auditlog/layout.hpp"
#include "auditlog/timeparse.hpp"
#include "common/log.hpp"
#include "../support/temp_dir.hpp"

namespace vigil::auditlog {
namespace {

namespace fs = std::filesystem;

constexpr const char* kServer = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";

using test::TempDir;

int64_t at(const char* rfc3339) { return parse_rfc3339(rfc3339).value(); }

// A realistic line: a session.disk event as the encoder writes it.
std::string disk_line(uint64_t ei, int64_t time_ns, const std::string& program = "cat") {
  Event ev;
  ev.time_ns = time_ns;
  ev.process.pid = 4242;
  ev.process.ppid = 4200;
  ev.process.cgroup_id = 2360;
  ev.process.program = program;
  DiskEvent disk;
  disk.path = "/etc/hosts";
  disk.flags = 0x80000;
  ev.body = disk;
  audit::SessionMeta meta;
  meta.cluster_name = "purple";
  meta.server_hostname = "node-1";
  meta.server_id = kServer;
  meta.sid = "86aca627-971d-4883-854d-d309ba04c658";
  meta.login = "ec2-user";
  meta.user = "alice";
  std::string out;
  audit::encode_event(ev, meta, ei, "9b825e22-744d-4130-94c5-dea49198ae3d", out);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string day_path(const std::string& data_dir, const char* date) {
  return data_dir + "/log/" + kServer + "/" + date + ".00:00:00.log";
}

// A clock tests move by hand (the flusher reads it from its own thread).
struct FakeClock {
  std::atomic<int64_t> now{0};
  std::function<int64_t()> fn() {
    return [this] { return now.load(); };
  }
};

FileLogOptions options(const std::string& data_dir, FakeClock* clock = nullptr) {
  FileLogOptions o;
  o.data_dir = data_dir;
  o.server_uuid = kServer;
  if (clock) o.now_ns = clock->fn();
  return o;
}

// Keeps fault messages out of the test output.
class QuietLog {
 public:
  QuietLog() : saved_(log::level()) { log::set_level(log::Level::error); }
  ~QuietLog() { log::set_level(saved_); }

 private:
  log::Level saved_;
};

TEST(AuditlogFileLog, RotatesAtUtcMidnightAndMovesTheLink) {
  TempDir dir;
  FakeClock clock;
  clock.now = at("2026-11-27T23:59:59.900Z");
  auto log = FileLog::open(options(dir.path(), &clock));
  ASSERT_TRUE(log) << log.error().message;
  const std::string link = dir.path() + "/log/events.log";

  ASSERT_TRUE((*log)->emit(disk_line(1, clock.now)));
  ASSERT_TRUE((*log)->emit(disk_line(2, clock.now)));
  ASSERT_TRUE((*log)->flush());
  char target[PATH_MAX] = {};
  ASSERT_GT(readlink(link.c_str(), target, sizeof target - 1), 0);
  EXPECT_EQ(std::string(target), std::string(kServer) + "/2026-11-27.00:00:00.log");

  clock.now = at("2026-11-28T00:00:00.100Z");
  ASSERT_TRUE((*log)->emit(disk_line(3, clock.now)));
  ASSERT_TRUE((*log)->flush());

  EXPECT_EQ(split_lines(read_file(day_path(dir.path(), "2026-11-27"))).size(), 2u);
  const std::string new_day = read_file(day_path(dir.path(), "2026-11-28"));
  EXPECT_EQ(new_day, disk_line(3, at("2026-11-28T00:00:00.100Z")));
  // Relative, so the log directory can be moved or mounted elsewhere.
  std::fill(std::begin(target), std::end(target), 0);
  ASSERT_GT(readlink(link.c_str(), target, sizeof target - 1), 0);
  EXPECT_EQ(std::string(target), std::string(kServer) + "/2026-11-28.00:00:00.log");
  EXPECT_EQ(read_file(link), new_day);
  // Only the link and the server directory: no temporary link left behind.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path() + "/log"))
    names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{kServer, "events.log"}));
}

TEST(AuditlogFileLog, TheFlusherMovesTheLinkOnAQuietMidnight) {
  TempDir dir;
  FakeClock clock;
  clock.now = at("2026-11-27T23:59:59Z");
  auto o = options(dir.path(), &clock);
  o.flush_interval = std::chrono::milliseconds(5);
  auto log = FileLog::open(o);
  ASSERT_TRUE(log) << log.error().message;
  clock.now = at("2026-11-28T00:00:01Z");
  const std::string link = dir.path() + "/log/events.log";
  const std::string want = std::string(kServer) + "/2026-11-28.00:00:00.log";
  std::string got;
  for (int i = 0; i < 400 && got != want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    char target[PATH_MAX] = {};
    if (readlink(link.c_str(), target, sizeof target - 1) > 0) got = target;
  }
  EXPECT_EQ(got, want);
}

TEST(AuditlogFileLog, ResumesAppendingToTodaysFile) {
  TempDir dir;
  FakeClock clock;
  clock.now = at("2026-11-27T10:00:00Z");
  {
    auto log = FileLog::open(options(dir.path(), &clock));
    ASSERT_TRUE(log);
    ASSERT_TRUE((*log)->emit(disk_line(1, clock.now)));
  }  // closing writes what is pending
  {
    auto log = FileLog::open(options(dir.path(), &clock));
    ASSERT_TRUE(log);
    ASSERT_TRUE((*log)->emit(disk_line(2, clock.now)));
  }
  EXPECT_EQ(read_file(day_path(dir.path(), "2026-11-27")),
            disk_line(1, clock.now) + disk_line(2, clock.now));
}

TEST(AuditlogFileLog, RefusesWhatIsNotOneJsonLine) {
  TempDir dir;
  auto log = FileLog::open(options(dir.path()));
  ASSERT_TRUE(log);
  for (const char* bad :
       {"", "{\"a\":1}", "{\"a\":1}\n{\"b\":2}\n", "{\"a\":\n1}\n", "[1]\n", "\n", "x\n"}) {
    auto r = (*log)->emit(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().err, EINVAL);
    EXPECT_NE(r.error().message.find("refused"), std::string::npos);
  }
  ASSERT_TRUE((*log)->flush());
  EXPECT_EQ((*log)->stats().events_written, 0u);
}

TEST(AuditlogFileLog, ManyThreadsWriteWholeLines) {
  TempDir dir;
  FakeClock clock;
  clock.now = at("2026-11-27T10:00:00Z");
  auto o = options(dir.path(), &clock);
  o.group_bytes = 4096;  // many writes, so that writers overlap
  constexpr int kThreads = 8;
  constexpr int kPerThread = 4000;
  {
    auto log = FileLog::open(o);
    ASSERT_TRUE(log);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const std::string program = "t" + std::to_string(t);
        for (int i = 0; i < kPerThread; ++i) {
          const auto d = i % 500 == 0 ? Durability::sync : Durability::buffered;
          ASSERT_TRUE((*log)->emit(disk_line(i, 1'700'000'000'000'000'000 + i, program), d));
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  // One day file, every line an event, each thread's
  // events complete and in the order it emitted them.
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir.path() + "/log/" + kServer))
    files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  std::vector<int> next(kThreads, 0);
  const auto lines = split_lines(read_file(files[0]));
  ASSERT_EQ(lines.size(), size_t{kThreads} * kPerThread);
  for (const auto& line : lines) {
    const auto ev = nlohmann::json::parse(line);
    const int t = std::stoi(ev.at("program").get<std::string>().substr(1));
    ASSERT_EQ(ev.at("ei").get<int>(), next[t]++);
  }
}

TEST(AuditlogFileLog, SyncEmitIsOnDiskWhenItReturns) {
  TempDir dir;
  FakeClock clock;
  clock.now = at("2026-11-27T10:00:00Z");
  auto o = options(dir.path(), &clock);
  o.flush_interval = std::chrono::hours(1);  // the flusher stays out of the way
  std::atomic<int> fsyncs{0};
  o.io.fsync = [&](int fd) {
    ++fsyncs;
    return ::fsync(fd);
  };
  auto log = FileLog::open(o);
  ASSERT_TRUE(log);
  const std::string path = day_path(dir.path(), "2026-11-27");
  const int at_open = fsyncs;  // the directory, for the new file's name

  ASSERT_TRUE((*log)->emit(disk_line(1, clock.now)));
  EXPECT_EQ(read_file(path), "");  // buffered: not yet
  EXPECT_EQ(fsyncs, at_open);
  ASSERT_TRUE((*log)->emit(disk_line(2, clock.now), Durability::sync));
  // Written in order with what was buffered before it, and fsync'ed.
  EXPECT_EQ(read_file(path), disk_line(1, clock.now) + disk_line(2, clock.now));
  EXPECT_EQ(fsyncs, at_open + 1);
  EXPECT_EQ((*log)->stats().events_written, 2u);
}

TEST(AuditlogFileLog, BufferedLinesReachTheFileWithinTheInterval) {
  TempDir dir;
  FakeClock clock;
  clock.now = at("2026-11-27T10:00:00Z");
  auto o = options(dir.path(), &clock);
  o.flush_interval = std::chrono::milliseconds(20);
  auto log = FileLog::open(o);
  ASSERT_TRUE(log);
  ASSERT_TRUE((*log)->emit(disk_line(1, clock.now)));
  const std::string path = day_path(dir.path(), "2026-11-27");
  for (int i = 0; i < 200 && read_file(path).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(read_file(path), disk_line(1, clock.now));
}

// Disk faults, injected: the write hook fails while `fault` is set, either
// with ENOSPC before writing or after writing half of the group.
struct FaultyDisk {
  enum Mode { healthy, enospc, short_write };
  std::atomic<Mode> mode{healthy};
  std::atomic<int> fsync_errno{0};

  void install(FileLogOptions& o) {
    o.io.write = [this](int fd, const char* data, size_t len) -> ssize_t {
      switch (mode.load()) {
        case healthy:
          return ::write(fd, data, len);
        case enospc:
          errno = ENOSPC;
          return -1;
        case short_write:
          return ::write(fd, data, len / 2);  // the disk filled up mid-group
      }
      return -1;
    };
    o.io.fsync = [this](int fd) {
      if (int e = fsync_errno.load()) {
        errno = e;
        return -1;
      }
      return ::fsync(fd);
    };
  }
};

TEST(AuditlogFileLog, DiskFullKeepsLinesWholeAndWritesThemLater) {
  QuietLog quiet;
  TempDir dir;
  FakeClock clock;
  clock.now = at("2026-11-27T10:00:00Z");
  auto o = options(dir.path(), &clock);
  o.flush_interval = std::chrono::hours(1);
  FaultyDisk disk;
  disk.install(o);
  auto log = FileLog::open(o);
  ASSERT_TRUE(log);
  const std::string path = day_path(dir.path(), "2026-11-27");
  std::string expected = disk_line(0, clock.now);
  ASSERT_TRUE((*log)->emit(disk_line(0, clock.now), Durability::sync));

  // Half a group reaches the disk: it is cut back, no partial line stays.
  disk.mode = FaultyDisk::short_write;
  for (int ei = 1; ei <= 3; ++ei) ASSERT_TRUE((*log)->emit(disk_line(ei, clock.now)));
  EXPECT_FALSE((*log)->flush());
  EXPECT_EQ(read_file(path), expected);

  // A sync emit that cannot be written is not acknowledged.
  disk.mode = FaultyDisk::enospc;
  auto r = (*log)->emit(disk_line(4, clock.now), Durability::sync);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOSPC);
  EXPECT_EQ(read_file(path), expected);
  auto s = (*log)->stats();
  EXPECT_TRUE(s.failing);
  EXPECT_EQ(s.write_errors, 2u);
  EXPECT_EQ(s.events_pending, 4u);
  EXPECT_EQ(s.lost_events, 0u);

  // The disk has room again: everything kept is written, in order.
  disk.mode = FaultyDisk::healthy;
  ASSERT_TRUE((*log)->flush());
  for (int ei = 1; ei <= 4; ++ei) expected += disk_line(ei, clock.now);
  EXPECT_EQ(read_file(path), expected);
  s = (*log)->stats();
  EXPECT_FALSE(s.failing);
  EXPECT_EQ(s.events_pending, 0u);
  EXPECT_EQ(s.events_written, 5u);
}

TEST(AuditlogFileLog, LinesPastTheMemoryBoundAreCountedLost) {
  QuietLog quiet;
  TempDir dir;
  FakeClock clock;
  clock.now = at("2026-11-27T10:00:00Z");
  auto o = options(dir.path(), &clock);
  o.flush_interval = std::chrono::hours(1);
  const size_t line_size = disk_line(0, clock.now).size();
  o.max_pending_bytes = 3 * line_size;
  FaultyDisk disk;
  disk.install(o);
  auto log = FileLog::open(o);
  ASSERT_TRUE(log);

  disk.mode = FaultyDisk::enospc;
  for (int ei = 0; ei < 3; ++ei) ASSERT_TRUE((*log)->emit(disk_line(ei, clock.now)));
  EXPECT_FALSE((*log)->flush());
  for (int ei = 3; ei < 5; ++ei) {
    auto r = (*log)->emit(disk_line(ei, clock.now));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("dropped"), std::string::npos);
  }
  EXPECT_EQ((*log)->stats().lost_events, 2u);

  disk.mode = FaultyDisk::healthy;
  ASSERT_TRUE((*log)->flush());
  const auto lines = split_lines(read_file(day_path(dir.path(), "2026-11-27")));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2] + "\n", disk_line(2, clock.now));
  // Room again: accepted again.
  EXPECT_TRUE((*log)->emit(disk_line(5, clock.now)));
}

TEST(AuditlogFileLog, SyncEmitFailsWhenFsyncFails) {
  QuietLog quiet;
  TempDir dir;
  auto o = options(dir.path());
  o.flush_interval = std::chrono::hours(1);
  FaultyDisk disk;
  disk.install(o);
  auto log = FileLog::open(o);
  ASSERT_TRUE(log);
  disk.fsync_errno = EIO;
  auto r = (*log)->emit(disk_line(1, 0), Durability::sync);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EIO);
  EXPECT_EQ((*log)->stats().fsync_errors, 1u);
  disk.fsync_errno = 0;
  EXPECT_TRUE((*log)->emit(disk_line(2, 0), Durability::sync));
}

TEST(AuditlogFileLog, CutsALineTornByAWriterKilledMidWrite) {
  QuietLog quiet;
  TempDir dir;
  FakeClock clock;
  clock.now = at("2026-11-28T10:00:00Z");
  const std::string server_dir = dir.path() + "/log/" + kServer;
  fs::create_directories(server_dir);
  const std::string whole = disk_line(1, clock.now);
  const std::string torn = disk_line(2, clock.now).substr(0, 50);
  // Yesterday's file, which no one appends to any more, and today's.
  std::ofstream(day_path(dir.path(), "2026-11-27")) << whole << torn;
  std::ofstream(day_path(dir.path(), "2026-11-28")) << whole << torn;

  auto log = FileLog::open(options(dir.path(), &clock));
  ASSERT_TRUE(log);
  EXPECT_EQ(read_file(day_path(dir.path(), "2026-11-27")), whole);
  ASSERT_TRUE((*log)->emit(disk_line(3, clock.now)));
  ASSERT_TRUE((*log)->flush());
  EXPECT_EQ(read_file(day_path(dir.path(), "2026-11-28")), whole + disk_line(3, clock.now));
  EXPECT_EQ((*log)->stats().torn_repairs, 2u);
}

TEST(AuditlogFileLog, TwoLogsAppendToOneFile) {
  // As two processes would: each its own open file, lines never mixed.
  TempDir dir;
  auto o = options(dir.path());
  o.group_bytes = 1024;
  {
    auto a = FileLog::open(o);
    auto b = FileLog::open(o);
    ASSERT_TRUE(a && b);
    std::thread ta([&] {
      for (int i = 0; i < 3000; ++i) ASSERT_TRUE((*a)->emit(disk_line(i, 0, "a")));
    });
    std::thread tb([&] {
      for (int i = 0; i < 3000; ++i) ASSERT_TRUE((*b)->emit(disk_line(i, 0, "b")));
    });
    ta.join();
    tb.join();
  }
  size_t count = 0;
  for (const auto& e : fs::directory_iterator(dir.path() + "/log/" + kServer))
    for (const auto& line : split_lines(read_file(e.path()))) {
      ASSERT_NO_THROW(nlohmann::json::parse(line)) << line;
      ++count;
    }
  EXPECT_EQ(count, 6000u);
}

TEST(AuditlogFileLog, RefusesAServerUuidThatIsNotADirectoryName) {
  TempDir dir;
  auto o = options(dir.path());
  o.server_uuid = "../x";
  EXPECT_FALSE(FileLog::open(o));
}

}  // namespace
}  // namespace vigil::auditlog
