// The audit store contract (src/auditlog/store.hpp): one suite that every
// back end runs. A back end joins by adding a Fixture below (how to open a
// handle on fresh storage, what a writer killed mid-append leaves, how
// stored bytes get damaged) to INSTANTIATE_TEST_SUITE_P at the end; nothing
// else in the suite knows which back end it tests.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "audit/timefmt.hpp"
#include "auditlog/file_log.hpp"
#include "auditlog/layout.hpp"
#include "auditlog/memory_store.hpp"
#include "auditlog/store.hpp"
#include "common/clock.hpp"
#include "pg/pg_audit_store.hpp"
#include "../support/postgres_server.hpp"
#include "../support/temp_dir.hpp"

namespace vigil::auditlog {
namespace {

using Json = nlohmann::json;

// ---- Back ends -----------------------------------------------------------

class Fixture {
 public:
  virtual ~Fixture() = default;
  // A new handle on this fixture's storage, as another process would open it.
  virtual std::unique_ptr<AuditStore> open() = 0;
  // Leaves the storage as a writer killed in the middle of appending `line`
  // leaves it: the first `keep` bytes of it stored, no more.
  virtual void crash_mid_append(std::string_view line, size_t keep) = 0;
  // Stores bytes that are not an event (damage), as one more entry.
  virtual void corrupt(const std::string& bytes) = 0;
};

constexpr const char* kServer = "0e7e1fd3-5b3f-4c59-9a57-3f1a6a1f3a10";

class FileFixture final : public Fixture {
 public:
  std::unique_ptr<AuditStore> open() override {
    auto log = FileLog::open(options());
    EXPECT_TRUE(log.ok()) << (log ? "" : log.error().message);
    return log ? std::move(log.value()) : nullptr;
  }

  // A real crash: a child process whose write() stores `keep` bytes of the
  // group and is then killed with SIGKILL, mid-append.
  void crash_mid_append(std::string_view line, size_t keep) override {
    const std::string copy(line);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      FileLogOptions o = options();
      o.io.write = [keep](int fd, const char* data, size_t len) -> ssize_t {
        (void)!::write(fd, data, std::min(keep, len));
        raise(SIGKILL);
        return -1;
      };
      auto log = FileLog::open(o);
      if (!log) _exit(3);
      (void)(*log)->emit(copy, Durability::sync);
      _exit(4);  // not reached: killed in write()
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  }

  void corrupt(const std::string& bytes) override {
    const std::string path = dir_.path() + "/log/" + kServer + "/" +
                             day_file_name(day_of(clock::realtime_ns()));
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0640);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }

 private:
  FileLogOptions options() const {
    FileLogOptions o;
    o.data_dir = dir_.path();
    o.server_uuid = kServer;
    o.flush_interval = std::chrono::milliseconds(20);
    return o;
  }
  test::TempDir dir_;
};

class MemoryFixture final : public Fixture {
 public:
  std::unique_ptr<AuditStore> open() override { return MemoryAuditStore::open(storage_); }
  void crash_mid_append(std::string_view line, size_t keep) override {
    storage_->put_raw(std::string(line.substr(0, keep)));
  }
  void corrupt(const std::string& bytes) override { storage_->put_raw(bytes); }

 private:
  std::shared_ptr<MemoryAuditStorage> storage_ = std::make_shared<MemoryAuditStorage>();
};

int64_t base_ns();

// A database of its own on the binary's PostgreSQL server (port 31500;
// tests/CMakeLists.txt runs these cases as one ctest test, so the server
// starts once).
class PostgresFixture final : public Fixture {
 public:
  PostgresFixture() {
    std::string error;
    server_ = test::PostgresServer::shared(31500, &error);
    if (!server_) {
      ADD_FAILURE() << error;
      return;
    }
    static int counter = 0;
    uri_ = server_->uri(server_->create_database("audit_" + std::to_string(++counter)));
  }

  std::unique_ptr<AuditStore> open() override {
    if (!server_) return nullptr;
    pg::PgAuditOptions o;
    o.uri = uri_;
    o.flush_interval = std::chrono::milliseconds(20);
    auto s = pg::PgAuditStore::open(o);
    EXPECT_TRUE(s.ok()) << (s ? "" : s.error().message);
    return s ? std::move(s.value()) : nullptr;
  }

  // A real crash: a child process connects, starts the COPY of one event,
  // sends `keep` bytes of its line and is killed with SIGKILL mid-COPY.
  void crash_mid_append(std::string_view line, size_t keep) override {
    auto s = open();  // the schema exists before the child writes
    ASSERT_NE(s, nullptr);
    const std::string copy(line);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto c = pg::Conn::open(uri_, "crash");
      if (!c || !c->run("BEGIN")) _exit(3);
      PGresult* r = PQexec(c->raw(),
                           "COPY audit_events (time_ns, event_type, sid, user_name, login, line) "
                           "FROM STDIN (FORMAT binary)");
      if (PQresultStatus(r) != PGRES_COPY_IN) _exit(4);
      pg::CopyWriter w;
      w.begin_tuple(6);
      w.int64(base_ns());
      w.null();
      w.null();
      w.null();
      w.null();
      std::string data = w.finish();
      data.resize(data.size() - 2);  // no trailer: the COPY is unfinished
      data += std::string("\0\0\0\0", 4);  // a length, then part of the bytes
      const uint32_t len = htonl(static_cast<uint32_t>(copy.size()));
      std::memcpy(data.data() + data.size() - 4, &len, 4);
      data += copy.substr(0, keep);
      PQputCopyData(c->raw(), data.data(), static_cast<int>(data.size()));
      PQflush(c->raw());
      raise(SIGKILL);
      _exit(5);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  }

  // A damaged row: bytes that are not an event, stored after the others.
  void corrupt(const std::string& bytes) override {
    auto s = open();
    ASSERT_NE(s, nullptr);
    auto c = pg::Conn::open(uri_, "corrupt");
    ASSERT_TRUE(c.ok()) << c.error().message;
    std::string stored = bytes;
    if (!stored.empty() && stored.back() == '\n') stored.pop_back();
    auto r = c->exec("INSERT INTO audit_events (time_ns, line) VALUES ($1, $2)",
                     {pg::Param::int64(clock::realtime_ns()), pg::Param::bytes(stored)});
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

 private:
  test::PostgresServer* server_ = nullptr;
  std::string uri_;
};

struct Backend {
  std::string name;
  std::function<std::unique_ptr<Fixture>()> make;
};
void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

// ---- Events --------------------------------------------------------------

// Events of the last few minutes: every back end keeps them where a search
// of their time finds them (the file back end files them by the day they
// are written).
int64_t base_ns() {
  static const int64_t base = clock::realtime_ns() / 1'000'000 * 1'000'000 - 600'000'000'000;
  return base;
}

struct Ev {
  int64_t time_ns;
  std::string sid = "s";
  std::string type = "session.command";
  uint64_t n = 0;  // unique in a test
  std::string pad;
};

std::string line_of(const Ev& e) {
  Json j = {{"event", e.type}, {"time", audit::format_time(e.time_ns)}, {"sid", e.sid},
            {"user", "alice"}, {"login", "root"}, {"n", e.n}};
  if (!e.pad.empty()) j["pad"] = e.pad;
  return j.dump() + "\n";
}

uint64_t n_of(const std::string& line) {
  Json j = Json::parse(line, nullptr, false);
  EXPECT_TRUE(j.is_object()) << "not a whole event: " << line.substr(0, 200);
  return j.is_object() ? j.value("n", uint64_t{0}) : ~uint64_t{0};
}

// Follows the continuation keys to the end; every page's lines in order.
std::vector<std::string> search_all(AuditStore& store, Query q, size_t* pages = nullptr) {
  std::vector<std::string> all;
  size_t count = 0;
  for (;;) {
    auto page = store.search(q);
    EXPECT_TRUE(page.ok()) << (page ? "" : page.error().message);
    if (!page) break;
    ++count;
    EXPECT_LE(page->lines.size(), q.limit);
    all.insert(all.end(), page->lines.begin(), page->lines.end());
    if (page->next.empty()) break;
    EXPECT_EQ(page->lines.size(), q.limit) << "a page short of the limit has a next key";
    q.after = page->next;
    if (count > 100000) {
      ADD_FAILURE() << "paging does not end";
      break;
    }
  }
  if (pages) *pages = count;
  return all;
}

std::vector<uint64_t> ns_of(const std::vector<std::string>& lines) {
  std::vector<uint64_t> out;
  for (const auto& l : lines) out.push_back(n_of(l));
  return out;
}

class AuditStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    fixture_ = GetParam().make();
    store_ = fixture_->open();
    ASSERT_NE(store_, nullptr);
  }
  void append_all(AuditStore& store, const std::vector<Ev>& evs,
                  Durability d = Durability::buffered) {
    for (const Ev& e : evs) ASSERT_TRUE(store.emit(line_of(e), d).ok());
  }
  std::unique_ptr<Fixture> fixture_;
  std::unique_ptr<AuditStore> store_;
};

// ---- The contract --------------------------------------------------------

TEST_P(AuditStoreContract, EventsComeBackInTimeOrderAndEqualTimesInAppendOrder) {
  std::vector<Ev> evs;
  std::mt19937 rng(7);
  for (uint64_t i = 0; i < 60; ++i)
    evs.push_back({base_ns() + static_cast<int64_t>(rng() % 20) * 1'000'000, "s", "session.command", i});
  append_all(*store_, evs);
  ASSERT_TRUE(store_->flush().ok());

  std::vector<Ev> expected = evs;
  std::stable_sort(expected.begin(), expected.end(),
                   [](const Ev& a, const Ev& b) { return a.time_ns < b.time_ns; });
  Query q;
  q.limit = 1000;
  auto page = store_->search(q);
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_TRUE(page->next.empty());
  std::vector<uint64_t> want;
  for (const Ev& e : expected) want.push_back(e.n);
  EXPECT_EQ(ns_of(page->lines), want);
  // Each line exactly as appended, without its '\n'.
  for (size_t i = 0; i < expected.size() && i < page->lines.size(); ++i)
    EXPECT_EQ(page->lines[i] + "\n", line_of(expected[i]));

  q.descending = true;
  page = store_->search(q);
  ASSERT_TRUE(page.ok());
  std::reverse(want.begin(), want.end());
  EXPECT_EQ(ns_of(page->lines), want);
}

TEST_P(AuditStoreContract, PagingReturnsEveryEventExactlyOnceEitherWay) {
  std::vector<Ev> evs;
  for (uint64_t i = 0; i < 250; ++i)  // runs of equal times across page edges
    evs.push_back({base_ns() + static_cast<int64_t>(i / 4) * 1'000'000, "s", "session.command", i});
  append_all(*store_, evs);
  ASSERT_TRUE(store_->flush().ok());
  for (bool desc : {false, true}) {
    for (size_t limit : {1u, 7u, 100u, 249u, 250u, 251u}) {
      Query q;
      q.limit = limit;
      q.descending = desc;
      size_t pages = 0;
      auto got = ns_of(search_all(*store_, q, &pages));
      std::vector<uint64_t> want(250);
      for (uint64_t i = 0; i < 250; ++i) want[i] = desc ? 249 - i : i;
      EXPECT_EQ(got, want) << "limit " << limit << (desc ? " desc" : " asc");
      EXPECT_EQ(pages, (250 + limit - 1) / limit) << "limit " << limit;
    }
  }
}

TEST_P(AuditStoreContract, EventsAppendedBetweenPagesAtLaterTimesAreFound) {
  std::vector<Ev> first;
  for (uint64_t i = 0; i < 10; ++i) first.push_back({base_ns() + int64_t(i) * 1'000'000, "s", "x", i});
  append_all(*store_, first, Durability::sync);
  Query q;
  q.limit = 4;
  auto page = store_->search(q);
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->next.empty());
  std::vector<std::string> seen = page->lines;
  // Another writer appends meanwhile, at later times and at the same time
  // as the last event of the page.
  auto other = fixture_->open();
  ASSERT_NE(other, nullptr);
  std::vector<Ev> later = {{base_ns() + 3 * 1'000'000, "s", "x", 100},
                           {base_ns() + 50 * 1'000'000, "s", "x", 101}};
  append_all(*other, later, Durability::sync);
  q.after = page->next;
  auto rest = search_all(*store_, q);
  seen.insert(seen.end(), rest.begin(), rest.end());
  EXPECT_EQ(ns_of(seen), (std::vector<uint64_t>{0, 1, 2, 3, 100, 4, 5, 6, 7, 8, 9, 101}));
}

TEST_P(AuditStoreContract, TimeRangeIsInclusiveAtBothEnds) {
  std::vector<Ev> evs;
  for (uint64_t i = 0; i < 20; ++i) evs.push_back({base_ns() + int64_t(i) * 1'000'000'000, "s", "x", i});
  append_all(*store_, evs);
  ASSERT_TRUE(store_->flush().ok());
  Query q;
  q.limit = 100;
  q.from_ns = base_ns() + 5'000'000'000;
  q.to_ns = base_ns() + 9'000'000'000;
  EXPECT_EQ(ns_of(search_all(*store_, q)), (std::vector<uint64_t>{5, 6, 7, 8, 9}));
  q.from_ns += 1;  // just after event 5
  q.to_ns -= 1;    // just before event 9
  EXPECT_EQ(ns_of(search_all(*store_, q)), (std::vector<uint64_t>{6, 7, 8}));
  q.from_ns = base_ns() + 30'000'000'000;  // after everything
  q.to_ns = INT64_MAX;
  EXPECT_TRUE(search_all(*store_, q).empty());
  // Paging inside a range stays inside it.
  q = {};
  q.limit = 2;
  q.from_ns = base_ns() + 3'000'000'000;
  q.to_ns = base_ns() + 12'000'000'000;
  q.descending = true;
  EXPECT_EQ(ns_of(search_all(*store_, q)),
            (std::vector<uint64_t>{12, 11, 10, 9, 8, 7, 6, 5, 4, 3}));
}

TEST_P(AuditStoreContract, ManySessionsEachFoundBySidAndType) {
  constexpr int kSessions = 300;
  std::vector<std::string> batch_lines;
  uint64_t n = 0;
  for (int s = 0; s < kSessions; ++s)
    for (const char* type : {"session.start", "session.command", "session.end"})
      batch_lines.push_back(
          line_of({base_ns() + int64_t(n) * 1000, "sid-" + std::to_string(s), type, n++}));
  std::vector<std::string_view> views(batch_lines.begin(), batch_lines.end());
  ASSERT_TRUE(store_->append(views, Durability::sync).ok());

  for (int s : {0, 1, 150, kSessions - 1}) {
    Query q;
    q.sid = "sid-" + std::to_string(s);
    q.limit = 2;
    const uint64_t first = uint64_t(s) * 3;
    EXPECT_EQ(ns_of(search_all(*store_, q)), (std::vector<uint64_t>{first, first + 1, first + 2}));
    q.types = {"session.end", "session.start"};
    EXPECT_EQ(ns_of(search_all(*store_, q)), (std::vector<uint64_t>{first, first + 2}));
  }
  Query all;
  all.limit = 500;
  EXPECT_EQ(search_all(*store_, all).size(), size_t(kSessions) * 3);
  Query none;
  none.sid = "sid-";  // exact match, not a prefix
  EXPECT_TRUE(search_all(*store_, none).empty());
}

TEST_P(AuditStoreContract, ConcurrentAppendersThroughTwoHandlesLoseAndTearNothing) {
  auto second = fixture_->open();
  ASSERT_NE(second, nullptr);
  constexpr int kThreads = 8, kPerThread = 200;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      AuditStore& s = t % 2 ? *second : *store_;
      for (int i = 0; i < kPerThread; i += 4) {
        // Batches of 3 and single events, sync now and then; big enough
        // lines that a group spans pages.
        std::vector<std::string> lines;
        for (int k = 0; k < 3; ++k) {
          const uint64_t n = uint64_t(t) * kPerThread + i + k;
          lines.push_back(line_of({base_ns() + int64_t(n % 50) * 1'000'000, "c", "x", n,
                                   std::string(100 + (n * 37) % 3000, 'a' + t)}));
        }
        std::vector<std::string_view> views(lines.begin(), lines.end());
        if (!s.append(views, i % 40 == 0 ? Durability::sync : Durability::buffered)) ++failures;
        const uint64_t n = uint64_t(t) * kPerThread + i + 3;
        if (!s.emit(line_of({base_ns() + int64_t(n % 50) * 1'000'000, "c", "x", n}))) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(store_->flush().ok());
  ASSERT_TRUE(second->flush().ok());

  Query q;
  q.limit = 333;
  for (AuditStore* reader : {store_.get(), second.get()}) {
    auto got = ns_of(search_all(*reader, q));
    std::multiset<uint64_t> seen(got.begin(), got.end());
    ASSERT_EQ(got.size(), size_t(kThreads) * kPerThread);
    for (uint64_t n = 0; n < uint64_t(kThreads) * kPerThread; ++n)
      ASSERT_EQ(seen.count(n), 1u) << "event " << n;
  }
}

TEST_P(AuditStoreContract, SyncAppendIsSeenByAnotherHandleAtOnce) {
  auto reader = fixture_->open();
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(store_->emit(line_of({base_ns(), "s", "session.end", 1}), Durability::sync).ok());
  Query q;
  EXPECT_EQ(ns_of(search_all(*reader, q)), (std::vector<uint64_t>{1}));
  // And a buffered one once flushed.
  ASSERT_TRUE(store_->emit(line_of({base_ns() + 1, "s", "x", 2})).ok());
  ASSERT_TRUE(store_->flush().ok());
  EXPECT_EQ(ns_of(search_all(*reader, q)), (std::vector<uint64_t>{1, 2}));
}

TEST_P(AuditStoreContract, AWriterKilledMidAppendLeavesNoTornEvent) {
  ASSERT_TRUE(store_->emit(line_of({base_ns(), "s", "x", 1}), Durability::sync).ok());
  const std::string torn = line_of({base_ns() + 1, "s", "x", 2, std::string(5000, 't')});
  fixture_->crash_mid_append(torn, torn.size() / 2);
  // The next writer's event is whole and separate, not glued to the rest of
  // the torn one.
  auto next = fixture_->open();
  ASSERT_NE(next, nullptr);
  ASSERT_TRUE(next->emit(line_of({base_ns() + 2, "s", "x", 3}), Durability::sync).ok());
  Query q;
  q.limit = 1;  // the torn event would sit between the pages
  for (AuditStore* s : {store_.get(), next.get()})
    EXPECT_EQ(ns_of(search_all(*s, q)), (std::vector<uint64_t>{1, 3}));
  // Cut at the very end (all but its '\n') and at its first byte too.
  fixture_->crash_mid_append(torn, torn.size() - 1);
  fixture_->crash_mid_append(torn, 1);
  auto last = fixture_->open();
  ASSERT_NE(last, nullptr);
  ASSERT_TRUE(last->emit(line_of({base_ns() + 3, "s", "x", 4}), Durability::sync).ok());
  EXPECT_EQ(ns_of(search_all(*last, q)), (std::vector<uint64_t>{1, 3, 4}));
}

TEST_P(AuditStoreContract, CorruptStoredEventIsSkippedAndNamedNeverReturned) {
  ASSERT_TRUE(store_->emit(line_of({base_ns(), "s", "x", 1}), Durability::sync).ok());
  fixture_->corrupt("{\"time\": \"not a time\", \"n\": 66}\n");
  fixture_->corrupt("\x01\x02 not json at all\n");
  ASSERT_TRUE(store_->emit(line_of({base_ns() + 1, "s", "x", 2}), Durability::sync).ok());
  Query q;
  auto page = store_->search(q);
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_EQ(ns_of(page->lines), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(page->skipped, 2u);
  ASSERT_EQ(page->warnings.size(), 2u);
  EXPECT_NE(page->warnings[0].find("RFC 3339"), std::string::npos) << page->warnings[0];
  EXPECT_NE(page->warnings[1].find("not JSON"), std::string::npos) << page->warnings[1];
}

TEST_P(AuditStoreContract, BadQueriesAndKeysAreInvalidArgument) {
  ASSERT_TRUE(store_->emit(line_of({base_ns(), "s", "x", 1}), Durability::sync).ok());
  Query q;
  q.limit = 0;
  auto r = store_->search(q);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
  // Not base64url; "1:x:0:f" (time not a number); "2:1" (another version).
  for (const char* key : {"garbage!", "MTp4OjA6Zg", "Mjox"}) {
    q = {};
    q.after = key;
    r = store_->search(q);
    ASSERT_FALSE(r.ok()) << key;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument) << key;
    EXPECT_NE(r.error().message.find("continuation key"), std::string::npos);
  }
}

TEST_P(AuditStoreContract, RefusedLinesAndBatchesAreStoredNowhere) {
  for (std::string bad : {std::string(""), std::string("{\"a\":1}"), std::string("not json\n"),
                          std::string("{\"a\":\n1}\n")}) {
    auto r = store_->emit(bad, Durability::sync);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument) << bad;
  }
  // One bad line refuses the whole batch.
  const std::string good = line_of({base_ns(), "s", "x", 1});
  std::vector<std::string_view> batch = {good, "{\"a\":1}"};
  auto r = store_->append(batch, Durability::sync);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
  ASSERT_TRUE(store_->flush().ok());
  Query q;
  auto page = store_->search(q);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->lines.empty());
  EXPECT_EQ(page->skipped, 0u);
}

TEST_P(AuditStoreContract, AnEventUpToTheBoundRoundTripsAndOneByteMoreIsRefused) {
  Ev big{base_ns(), "s", "session.command", 1};
  const size_t overhead = line_of(big).size();
  big.pad.assign(kMaxEventBytes - overhead - std::string(",\"pad\":\"\"").size(), 'p');
  const std::string line = line_of(big);
  ASSERT_EQ(line.size(), kMaxEventBytes);
  ASSERT_TRUE(store_->emit(line, Durability::sync).ok());
  Ev over = big;
  over.n = 2;
  over.pad += 'p';  // "n" is one digit either way: one byte more
  const std::string too_big = line_of(over);
  ASSERT_EQ(too_big.size(), kMaxEventBytes + 1);
  auto r = store_->emit(too_big, Durability::sync);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
  ASSERT_TRUE(store_->emit(line_of({base_ns() + 1, "s", "x", 3}), Durability::sync).ok());

  Query q;
  q.limit = 1;
  auto got = search_all(*store_, q);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0] + "\n", line);
  EXPECT_EQ(n_of(got[1]), 3u);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, AuditStoreContract,
    ::testing::Values(Backend{"file", [] { return std::make_unique<FileFixture>(); }},
                      Backend{"memory", [] { return std::make_unique<MemoryFixture>(); }},
                      Backend{"postgresql", [] { return std::make_unique<PostgresFixture>(); }}),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

}  // namespace
}  // namespace vigil::auditlog
