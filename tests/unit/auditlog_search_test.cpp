// Searching the file audit log: filters, order, paging with continuation
// keys (many events at one instant, across files and days) and corrupt
// lines that are skipped and reported with file:offset.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audit/encode.hpp"
#include "auditlog/file_log.hpp"
#include "auditlog/search.hpp"
#include "auditlog/timeparse.hpp"
#include "../support/temp_dir.hpp"

namespace vigil::auditlog {
namespace {

namespace fs = std::filesystem;

constexpr const char* kServerA = "11111111-c2c9-49bd-a0e3-4f4f3a523f5f";
constexpr const char* kServerB = "22222222-c2c9-49bd-a0e3-4f4f3a523f5f";
constexpr const char* kDay1 = "2026-11-27.00:00:00.log";
constexpr const char* kDay2 = "2026-11-28.00:00:00.log";

using test::TempDir;

int64_t at(const char* rfc3339) { return parse_rfc3339(rfc3339).value(); }

struct Who {
  std::string sid, user, login;
};

audit::SessionMeta meta_of(const Who& who) {
  audit::SessionMeta m;
  m.cluster_name = "purple";
  m.server_hostname = "node";
  m.server_id = kServerA;
  m.sid = who.sid;
  m.user = who.user;
  m.login = who.login;
  return m;
}

// One event line of the given type, as the encoders write it; `ei` tells
// results apart.
std::string line(const std::string& type, int64_t time_ns, const Who& who, uint64_t ei) {
  std::string out;
  const auto meta = meta_of(who);
  if (type == "session.start") {
    audit::encode_session_start({time_ns, {}}, meta, ei, "uid", out);
  } else if (type == "session.end") {
    audit::SessionEnd end;
    end.time_ns = end.stop_ns = time_ns;
    audit::encode_session_end(end, meta, ei, "uid", out);
  } else {
    Event ev;
    ev.time_ns = time_ns;
    ev.process.program = "sh";
    if (type == "session.command")
      ev.body = CommandEvent{"/bin/true", {}};
    else if (type == "session.disk")
      ev.body = DiskEvent{"/etc/hosts"};
    else
      ev.body = NetworkEvent{4, "10.0.0.1", "10.0.0.2", 443};
    audit::encode_event(ev, meta, ei, "uid", out);
  }
  return out;
}

void append_to(const std::string& data_dir, const char* server, const char* day,
               const std::string& text) {
  const std::string dir = data_dir + "/log/" + server;
  fs::create_directories(dir);
  std::ofstream(dir + "/" + day, std::ios::app | std::ios::binary) << text;
}

std::vector<int> eis(const Page& page) {
  std::vector<int> out;
  for (const auto& l : page.lines) out.push_back(nlohmann::json::parse(l).at("ei").get<int>());
  return out;
}

Page run(const std::string& data_dir, const Query& q) {
  auto page = search(data_dir, q);
  EXPECT_TRUE(page) << page.error().message;
  return page ? *page : Page{};
}

// Two servers, two days; event 4 happened just before midnight but was
// written after it, into the next day's file.
class AuditlogSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    const Who s1{"s1", "alice", "root"}, s2{"s2", "bob", "ec2-user"};
    const std::string& d = dir_.path();
    append_to(d, kServerA, kDay1,
              line("session.start", at("2026-11-27T10:00:00Z"), s1, 1) +
                  line("session.command", at("2026-11-27T10:00:01Z"), s1, 2));
    append_to(d, kServerB, kDay1, line("session.disk", at("2026-11-27T10:00:02Z"), s2, 3));
    append_to(d, kServerA, kDay2,
              line("session.network", at("2026-11-27T23:59:59.999Z"), s1, 4) +
                  line("session.end", at("2026-11-28T00:00:01Z"), s1, 5));
    append_to(d, kServerB, kDay2,
              line("session.command", at("2026-11-28T09:00:00Z"), s2, 6) +
                  line("session.end", at("2026-11-28T09:00:00Z"), s2, 7));
    // What else lives in the log directory is not searched.
    fs::create_directories(d + "/log/playbacks/sessions/default");
    fs::create_directories(d + "/log/" + kServerA + "/sessions/default");
    fs::create_symlink(std::string(kServerB) + "/" + kDay2, d + "/log/events.log");
  }
  TempDir dir_;
};

TEST_F(AuditlogSearch, EverythingInTimeOrder) {
  Page page = run(dir_.path(), {});
  EXPECT_EQ(eis(page), (std::vector<int>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_TRUE(page.next.empty());
  EXPECT_EQ(page.skipped, 0u);
  EXPECT_TRUE(page.warnings.empty());
  // The lines as stored, without the newline.
  EXPECT_EQ(page.lines[0] + "\n",
            line("session.start", at("2026-11-27T10:00:00Z"), {"s1", "alice", "root"}, 1));

  Query desc;
  desc.descending = true;
  EXPECT_EQ(eis(run(dir_.path(), desc)), (std::vector<int>{7, 6, 5, 4, 3, 2, 1}));
}

TEST_F(AuditlogSearch, TimeRangeIncludesBothBoundsAndLateWrites) {
  Query q;
  q.to_ns = at("2026-11-27T23:59:59.999Z");  // event 4 is in the next day's file
  EXPECT_EQ(eis(run(dir_.path(), q)), (std::vector<int>{1, 2, 3, 4}));
  q = {};
  q.from_ns = at("2026-11-28T00:00:00Z");
  EXPECT_EQ(eis(run(dir_.path(), q)), (std::vector<int>{5, 6, 7}));
  q.from_ns = at("2026-11-27T10:00:01Z");
  q.to_ns = at("2026-11-28T00:00:01Z");
  EXPECT_EQ(eis(run(dir_.path(), q)), (std::vector<int>{2, 3, 4, 5}));
  q.from_ns = at("2026-11-29T00:00:00Z");
  q.to_ns = at("2026-11-30T00:00:00Z");
  EXPECT_TRUE(run(dir_.path(), q).lines.empty());
}

TEST_F(AuditlogSearch, Filters) {
  Query q;
  q.types = {"session.command"};
  EXPECT_EQ(eis(run(dir_.path(), q)), (std::vector<int>{2, 6}));
  q.types = {"session.start", "session.end"};
  EXPECT_EQ(eis(run(dir_.path(), q)), (std::vector<int>{1, 5, 7}));
  q = {};
  q.sid = "s2";
  EXPECT_EQ(eis(run(dir_.path(), q)), (std::vector<int>{3, 6, 7}));
  q = {};
  q.user = "alice";
  EXPECT_EQ(eis(run(dir_.path(), q)), (std::vector<int>{1, 2, 4, 5}));
  q = {};
  q.login = "ec2-user";
  EXPECT_EQ(eis(run(dir_.path(), q)), (std::vector<int>{3, 6, 7}));
  q = {};
  q.user = "alice";
  q.types = {"session.command"};
  EXPECT_EQ(eis(run(dir_.path(), q)), (std::vector<int>{2}));
  q = {};
  q.user = "mallory";
  EXPECT_TRUE(run(dir_.path(), q).lines.empty());
}

TEST_F(AuditlogSearch, BadQueries) {
  Query q;
  q.limit = 0;
  EXPECT_FALSE(search(dir_.path(), q));
  q = {};
  q.after = "not a key";
  auto r = search(dir_.path(), q);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("continuation key"), std::string::npos);
  r = search(dir_.path() + "/nothing-here", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
}

// Pages through the query and returns every event's ei, in page order.
std::vector<int> all_pages(const std::string& data_dir, Query q, size_t* pages) {
  std::vector<int> out;
  *pages = 0;
  for (;;) {
    Page page = run(data_dir, q);
    ++*pages;
    EXPECT_LE(page.lines.size(), q.limit);
    for (int ei : eis(page)) out.push_back(ei);
    if (page.next.empty()) break;
    EXPECT_EQ(page.lines.size(), q.limit);
    q.after = page.next;
    if (*pages > 10'000) break;
  }
  return out;
}

TEST(AuditlogSearchPaging, EveryEventExactlyOnceAtAnyLimit) {
  TempDir dir;
  const Who who{"s", "u", "l"};
  // 300 events: 120 at one instant spread over two servers' files, the rest
  // before and after it, across two days.
  const int64_t same = at("2026-11-27T12:00:00Z");
  int ei = 0;
  std::string a1, b1, a2, b2;
  for (int i = 0; i < 60; ++i) a1 += line("session.disk", same - (60 - i) * 1'000'000, who, ei++);
  for (int i = 0; i < 120; ++i) (i % 3 ? a1 : b1) += line("session.disk", same, who, ei++);
  for (int i = 0; i < 60; ++i) b1 += line("session.disk", same + i * 1'000'000, who, ei++);
  const int64_t next_day = at("2026-11-28T08:00:00Z");
  for (int i = 0; i < 60; ++i) (i % 2 ? a2 : b2) += line("session.disk", next_day, who, ei++);
  append_to(dir.path(), kServerA, kDay1, a1);
  append_to(dir.path(), kServerB, kDay1, b1);
  append_to(dir.path(), kServerA, kDay2, a2);
  append_to(dir.path(), kServerB, kDay2, b2);

  for (bool descending : {false, true}) {
    Query q;
    q.descending = descending;
    q.limit = 1000;
    const std::vector<int> whole = eis(run(dir.path(), q));
    ASSERT_EQ(whole.size(), 300u);
    std::vector<int> sorted = whole;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 300; ++i) ASSERT_EQ(sorted[i], i);

    for (size_t limit : {size_t{1}, size_t{7}, size_t{50}, size_t{120}, size_t{300}}) {
      q.limit = limit;
      size_t pages = 0;
      EXPECT_EQ(all_pages(dir.path(), q, &pages), whole)
          << "limit " << limit << (descending ? " desc" : " asc");
      EXPECT_EQ(pages, std::max<size_t>(1, (300 + limit - 1) / limit));
    }
  }
}

TEST(AuditlogSearchPaging, TheKeyKeepsItsPlaceWhenEventsArrive) {
  TempDir dir;
  const Who who{"s", "u", "l"};
  const int64_t t = at("2026-11-27T12:00:00Z");
  append_to(dir.path(), kServerA, kDay1,
            line("session.disk", t, who, 0) + line("session.disk", t, who, 1));
  Query q;
  q.limit = 1;
  Page first = run(dir.path(), q);
  ASSERT_EQ(eis(first), std::vector<int>{0});
  append_to(dir.path(), kServerA, kDay1, line("session.disk", t, who, 2));
  q.after = first.next;
  size_t pages = 0;
  EXPECT_EQ(all_pages(dir.path(), q, &pages), (std::vector<int>{1, 2}));
}

TEST(AuditlogSearchCorrupt, SkipsAndReportsWithFileAndOffset) {
  TempDir dir;
  const Who who{"s", "u", "l"};
  const int64_t t = at("2026-11-27T12:00:00Z");
  const std::vector<std::string> parts = {
      line("session.disk", t, who, 0),
      "garbage\n",
      line("session.disk", t + 1000, who, 1),
      "{\"event\":\"session.disk\",\"time\":\"2026-11-27T12:00:00Z\"\n",  // not closed
      "{\"event\":\"session.disk\"}\n",                                   // no time
      "{\"time\":\"yesterday\"}\n",
      "{\"time\":12}\n",
      "[1,2]\n",
      line("session.disk", t + 2000, who, 2),
      line("session.disk", t + 3000, who, 3).substr(0, 40),  // a write in progress
  };
  std::string text;
  std::vector<size_t> offsets;
  for (const auto& p : parts) {
    offsets.push_back(text.size());
    text += p;
  }
  append_to(dir.path(), kServerA, kDay1, text);

  Page page = run(dir.path(), {});
  EXPECT_EQ(eis(page), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(page.skipped, 7u);
  ASSERT_EQ(page.warnings.size(), 7u);
  const std::string file = std::string("log/") + kServerA + "/" + kDay1 + ":";
  const std::vector<std::pair<size_t, std::string>> expected = {
      {1, "skipped a corrupt line (not JSON at byte 1)"},
      {3, "skipped a corrupt line (not JSON"},
      {4, "skipped a corrupt line (no \"time\" string)"},
      {5, "skipped a corrupt line (\"time\" is not RFC 3339)"},
      {6, "skipped a corrupt line (no \"time\" string)"},
      {7, "skipped a corrupt line (not a JSON object)"},
      {9, "ignored an unfinished last line"},
  };
  for (size_t i = 0; i < expected.size(); ++i) {
    const size_t part = expected[i].first;  // one line each: line part + 1
    const std::string prefix =
        file + std::to_string(part + 1) + " (byte " + std::to_string(offsets[part]) + "): ";
    EXPECT_EQ(page.warnings[i].rfind(prefix + expected[i].second, 0), 0u)
        << page.warnings[i] << "\nwanted: " << prefix << expected[i].second;
  }
}

TEST(AuditlogSearchCorrupt, TrickyLinesAreReadAsJsonReadsThem) {
  TempDir dir;
  append_to(dir.path(), kServerA, kDay1,
            // A nested "time", and a wanted value with escapes.
            R"({"nested":{"time":"2020-01-01T00:00:00Z"},"time":"2026-11-27T12:00:00Z",)"
            R"("user":"x\"}{y","event":"e","ei":0})"
            "\n"
            // A string ending in an escaped backslash, strings in an array.
            R"({"a":["time","}"],"path":"C:\\","time":"2026-11-27T12:00:01Z","ei":1})"
            "\n"
            // Blanks around the object.
            R"(  {"time" : "2026-11-27T12:00:02Z" , "ei":2}  )"
            "\n"
            // Well shaped, but not JSON: must not be returned.
            R"({"time":"2026-11-27T12:00:03Z","x":tru,"ei":3})"
            "\n"
            R"({"time":"2026-11-27T12:00:04Z","ei":4}})"
            "\n");
  Page page = run(dir.path(), {});
  EXPECT_EQ(eis(page), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(page.skipped, 2u);
  Query q;
  q.user = "x\"}{y";
  EXPECT_EQ(eis(run(dir.path(), q)), (std::vector<int>{0}));
}

TEST(AuditlogSearchCorrupt, AnOverlongLineIsSkippedNotKept) {
  TempDir dir;
  const Who who{"s", "u", "l"};
  const int64_t t = at("2026-11-27T12:00:00Z");
  const std::string before = line("session.disk", t, who, 0);
  append_to(dir.path(), kServerA, kDay1,
            before + std::string(20 << 20, 'x') + "\n" + line("session.disk", t, who, 1));
  Page page = run(dir.path(), {});
  EXPECT_EQ(eis(page), (std::vector<int>{0, 1}));
  EXPECT_EQ(page.skipped, 1u);
  ASSERT_EQ(page.warnings.size(), 1u);
  EXPECT_NE(page.warnings[0].find(":2 (byte " + std::to_string(before.size()) +
                                  "): skipped a line longer"),
            std::string::npos)
      << page.warnings[0];
}

TEST(AuditlogSearchCorrupt, ALineNestedTooDeeplyIsSkippedWithItsFileAndLine) {
  TempDir dir;
  const Who who{"s", "u", "l"};
  const int64_t t = at("2026-11-27T12:00:00Z");
  const std::string first = line("session.disk", t, who, 0);
  // What `vigil events --format text` could not print without overflowing
  // its stack; the fast scan finds "time" in it all the same.
  const std::string deep = R"({"time":"2026-11-27T12:00:00Z","ei":9,"v":)" +
                           std::string(100'000, '[') + std::string(100'000, ']') + "}\n";
  // At the limit: 64 levels, the object included.
  const std::string limit = R"({"time":"2026-11-27T12:00:01Z","ei":1,"v":)" +
                            std::string(63, '[') + std::string(63, ']') + "}\n";
  append_to(dir.path(), kServerA, kDay1,
            first + deep + limit + line("session.disk", t + 2'000'000'000, who, 2));
  Page page = run(dir.path(), {});
  EXPECT_EQ(eis(page), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(page.skipped, 1u);
  EXPECT_EQ(page.warnings,
            std::vector<std::string>{std::string("log/") + kServerA + "/" + kDay1 + ":2 (byte " +
                                     std::to_string(first.size()) +
                                     "): skipped a corrupt line (nested deeper than 64 levels)"});
}

// Named like day files but not regular files: a FIFO blocked the search in
// open() until a writer came, /dev/zero made it read forever.
TEST(AuditlogSearchCorrupt, OnlyRegularFilesAreRead) {
  TempDir dir;
  const Who who{"s", "u", "l"};
  append_to(dir.path(), kServerA, kDay1, line("session.disk", at("2026-11-27T12:00:00Z"), who, 1));
  const std::string server = dir.path() + "/log/" + kServerA + "/";
  ASSERT_EQ(mkfifo((server + "2026-11-25.00:00:00.log").c_str(), 0600), 0);
  fs::create_symlink("/dev/zero", server + "2026-11-26.00:00:00.log");
  fs::create_symlink(kDay1, server + "2026-11-28.00:00:00.log");  // a second view of a file
  fs::create_directory(server + "2026-11-29.00:00:00.log");
  Page page = run(dir.path(), {});
  EXPECT_EQ(eis(page), (std::vector<int>{1}));
  const std::string log = std::string("log/") + kServerA + "/";
  EXPECT_EQ(page.warnings,
            (std::vector<std::string>{
                log + "2026-11-25.00:00:00.log: skipped: a FIFO, not a day file (remove it)",
                log + "2026-11-26.00:00:00.log: skipped: a symbolic link, not a day file (remove it)",
                log + "2026-11-28.00:00:00.log: skipped: a symbolic link, not a day file (remove it)",
                log + "2026-11-29.00:00:00.log: skipped: a directory, not a day file (remove it)",
            }));
}

TEST(AuditlogSearchCorrupt, WarningsAreCapped) {
  TempDir dir;
  append_to(dir.path(), kServerA, kDay1, std::string(1000, '\n'));
  Page page = run(dir.path(), {});
  EXPECT_EQ(page.skipped, 1000u);
  EXPECT_EQ(page.warnings.size(), 101u);
  EXPECT_EQ(page.warnings.back(), "900 more warnings not listed");
}

TEST(AuditlogSearchFileLog, FindsWhatTheWriterWroteAcrossMidnight) {
  TempDir dir;
  std::atomic<int64_t> now{at("2026-11-27T23:59:59Z")};
  FileLogOptions o;
  o.data_dir = dir.path();
  o.server_uuid = kServerA;
  o.now_ns = [&] { return now.load(); };
  {
    auto log = FileLog::open(o);
    ASSERT_TRUE(log);
    const Who who{"s", "u", "l"};
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*log)->emit(line("session.disk", now, who, i)));
    now = at("2026-11-28T00:00:01Z");
    for (int i = 5; i < 10; ++i) ASSERT_TRUE((*log)->emit(line("session.disk", now, who, i)));
  }
  EXPECT_TRUE(fs::exists(dir.path() + "/log/" + kServerA + "/" + kDay1));
  EXPECT_TRUE(fs::exists(dir.path() + "/log/" + kServerA + "/" + kDay2));
  Query q;
  q.limit = 3;
  size_t pages = 0;
  EXPECT_EQ(all_pages(dir.path(), q, &pages), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

}  // namespace
}  // namespace vigil::auditlog
