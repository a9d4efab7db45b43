// What the PostgreSQL back ends promise beyond the contract suites: no
// password in a URI or a message, hostile search values are data, the
// schema is versioned, searches use the indexes, and a database that goes
// away costs no event (appends are refused, counted, and the pending ones
// are delivered once it is back). Suites named Postgres* need the server
// (tests/support/postgres_server.hpp, port 31501) and run as one ctest test.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "audit/timefmt.hpp"
#include "common/clock.hpp"
#include "pg/pg.hpp"
#include "pg/pg_audit_store.hpp"
#include "pg/pg_cluster_store.hpp"
#include "../support/postgres_server.hpp"

namespace vigil::pg {
namespace {

using auditlog::Durability;
using auditlog::Query;
using Json = nlohmann::json;

// ---- Credentials (no server) -----------------------------------------------

TEST(PgUri, APasswordInTheUriIsRefusedAndNeverRepeated) {
  for (const char* uri : {"postgresql://vigil:s3cr%65t-pw@db:5432/vigil",
                          "postgres://vigil:s3cret-pw@db/vigil?sslmode=verify-full",
                          "postgresql://vigil@db/vigil?password=s3cret-pw&sslmode=require",
                          "postgresql://vigil@db/vigil?sslmode=require&password=s3cret-pw"}) {
    auto r = check_uri(uri);
    ASSERT_FALSE(r.ok()) << uri;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
    EXPECT_EQ(r.error().message.find("s3cr"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("passfile"), std::string::npos) << r.error().message;
    // Every store refuses it the same way, before connecting.
    PgAuditOptions o;
    o.uri = uri;
    auto s = PgAuditStore::open(o);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().message.find("s3cr"), std::string::npos) << s.error().message;
  }
  EXPECT_TRUE(check_uri("postgresql://vigil@db:5432/vigil?sslmode=verify-full").ok());
  EXPECT_TRUE(check_uri("postgresql://vigil@db/vigil?passfile=/etc/vigil/pgpass").ok());
  auto bad = check_uri("mysql://vigil:pw123@db/x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message.find("pw123"), std::string::npos) << bad.error().message;
}

TEST(PgUri, RedactHidesPasswordsInAnyText) {
  EXPECT_EQ(redact("cannot connect to postgresql://u:hunter2@h:1/db: refused"),
            "cannot connect to postgresql://u:***@h:1/db: refused");
  EXPECT_EQ(redact("host=h password=hunter2 user=u"), "host=h password=*** user=u");
  EXPECT_EQ(redact("x?sslmode=require&password=hunter2&a=b"), "x?sslmode=require&password=***&a=b");
  EXPECT_EQ(redact("password = 'hunter 2'"), "password = ***");
  EXPECT_EQ(redact("postgresql://u@h/db"), "postgresql://u@h/db");
}

// ---- With a server -----------------------------------------------------------

class PostgresAuditStore : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    server_ = test::PostgresServer::shared(31501, &error);
    ASSERT_NE(server_, nullptr) << error;
    static int counter = 0;
    db_ = server_->create_database("pgtest_" + std::to_string(++counter));
    uri_ = server_->uri(db_);
  }
  std::unique_ptr<PgAuditStore> open(size_t max_pending = 64u << 20) {
    PgAuditOptions o;
    o.uri = uri_;
    o.flush_interval = std::chrono::milliseconds(20);
    o.max_pending_bytes = max_pending;
    auto s = PgAuditStore::open(o);
    EXPECT_TRUE(s.ok()) << (s ? "" : s.error().message);
    return s ? std::move(s.value()) : nullptr;
  }
  std::string sql(const std::string& q) {
    std::string out;
    EXPECT_TRUE(server_->psql(db_, q, &out)) << q << ": " << out;
    return out;
  }
  static std::string line(int64_t t, const std::string& type, const std::string& sid,
                          const std::string& user, int n) {
    return Json{{"event", type}, {"time", audit::format_time(t)}, {"sid", sid},
                {"user", user}, {"login", user}, {"n", n}}
               .dump() +
           "\n";
  }
  static std::vector<int> ns(const std::vector<std::string>& lines) {
    std::vector<int> out;
    for (const auto& l : lines) out.push_back(Json::parse(l).value("n", -1));
    return out;
  }
  test::PostgresServer* server_ = nullptr;
  std::string db_, uri_;
};

TEST_F(PostgresAuditStore, HostileSidUserAndTypeAreDataNotSql) {
  auto s = open();
  ASSERT_NE(s, nullptr);
  const int64_t t0 = clock::realtime_ns() - 60'000'000'000;
  const std::vector<std::string> hostile = {
      "'; DROP TABLE audit_events; --",
      "a\\'b\\\\c\"d",
      std::string("nul\0inside", 10),
      std::string(4096, '\''),
      "$1) OR (1=1",
  };
  int n = 0;
  for (size_t i = 0; i < hostile.size(); ++i) {
    ASSERT_TRUE(s->emit(line(t0 + n, hostile[i], hostile[i], hostile[i], n), Durability::sync).ok());
    ++n;
  }
  ASSERT_TRUE(s->emit(line(t0 + n, "session.command", "plain", "alice", n), Durability::sync).ok());
  for (size_t i = 0; i < hostile.size(); ++i) {
    for (int field = 0; field < 4; ++field) {
      Query q;
      if (field == 0) q.sid = hostile[i];
      if (field == 1) q.user = hostile[i];
      if (field == 2) q.login = hostile[i];
      if (field == 3) q.types = {hostile[i]};
      auto page = s->search(q);
      ASSERT_TRUE(page.ok()) << page.error().message;
      EXPECT_EQ(ns(page->lines), std::vector<int>{static_cast<int>(i)}) << "value " << i << " field " << field;
    }
  }
  // A prefix of a value matches nothing (exact match, no LIKE).
  Query prefix;
  prefix.sid = std::string("nul");
  auto page = s->search(prefix);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->lines.empty());
  // The table is whole.
  Query all;
  page = s->search(all);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->lines.size(), hostile.size() + 1);
}

TEST_F(PostgresAuditStore, ANewerSchemaIsRefusedAndMigrationsAreRecorded) {
  { ASSERT_NE(open(), nullptr); }
  EXPECT_NE(sql("SELECT component || '=' || version FROM vigil_schema").find("audit=1"),
            std::string::npos);
  // Two opens at once both succeed (the advisory lock orders them).
  {
    std::vector<std::thread> ts;
    std::atomic<int> ok{0};
    for (int i = 0; i < 4; ++i) ts.emplace_back([&] { ok += open() != nullptr; });
    for (auto& t : ts) t.join();
    EXPECT_EQ(ok.load(), 4);
  }
  sql("UPDATE vigil_schema SET version = 99 WHERE component = 'audit'");
  PgAuditOptions o;
  o.uri = uri_;
  auto s = PgAuditStore::open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind(), Errc::failed_precondition);
  EXPECT_NE(s.error().message.find("newer"), std::string::npos) << s.error().message;
}

TEST_F(PostgresAuditStore, SearchesBySidAndTimeReadTheIndexes) {
  auto s = open();
  ASSERT_NE(s, nullptr);
  const int64_t t0 = clock::realtime_ns() - 3'600'000'000'000;
  std::vector<std::string> lines;
  for (int i = 0; i < 20000; ++i)
    lines.push_back(line(t0 + int64_t(i) * 1000, "session.command", "sid-" + std::to_string(i % 500),
                         "alice", i));
  std::vector<std::string_view> views(lines.begin(), lines.end());
  ASSERT_TRUE(s->append(views, Durability::sync).ok());
  sql("ANALYZE audit_events");
  // The plans of the statements search() runs (the same SQL, its
  // parameters typed as search() sends them).
  const std::string by_sid = sql(
      "EXPLAIN SELECT time_ns, id, line FROM audit_events WHERE time_ns >= -9223372036854775808 "
      "AND time_ns <= 9223372036854775807 AND sid = 'sid-7'::bytea ORDER BY time_ns ASC, id ASC "
      "LIMIT 101");
  EXPECT_NE(by_sid.find("audit_events_sid"), std::string::npos) << by_sid;
  const std::string by_time = sql(
      "EXPLAIN SELECT time_ns, id, line FROM audit_events WHERE time_ns >= " +
      std::to_string(t0 + 5'000'000) + " AND time_ns <= " + std::to_string(t0 + 6'000'000) +
      " ORDER BY time_ns DESC, id DESC LIMIT 101");
  EXPECT_EQ(by_time.find("Seq Scan"), std::string::npos) << by_time;
  Query q;
  q.sid = "sid-7";
  q.limit = 1000;
  auto page = s->search(q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->lines.size(), 40u);
}

TEST_F(PostgresAuditStore, ADatabaseThatGoesAwayCostsNoEvent) {
  auto s = open(/*max_pending=*/64 * 1024);
  ASSERT_NE(s, nullptr);
  const int64_t t0 = clock::realtime_ns() - 60'000'000'000;
  ASSERT_TRUE(s->emit(line(t0, "x", "s", "u", 0), Durability::sync).ok());
  // The database refuses connections and the store's are cut.
  std::string out;
  ASSERT_TRUE(server_->psql("postgres", "ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS false", &out))
      << out;
  ASSERT_TRUE(server_->psql("postgres",
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                                db_ + "' AND pid <> pg_backend_pid()",
                            &out))
      << out;
  // A sync append fails (the caller, the relay, keeps it in its spool).
  auto sync = s->emit(line(t0 + 1, "x", "s", "u", 1), Durability::sync);
  ASSERT_FALSE(sync.ok());
  EXPECT_EQ(sync.error().kind(), Errc::unavailable) << sync.error().message;
  // Buffered appends wait, then are refused past the bound, and counted.
  int accepted = 0;
  Result<void> last;
  for (int i = 2; i < 10000; ++i) {
    last = s->emit(line(t0 + i, "x", "s", "u", i) , Durability::buffered);
    if (!last) break;
    ++accepted;
  }
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.error().kind(), Errc::resource_exhausted) << last.error().message;
  EXPECT_EQ(s->refused_events(), 1u);
  ASSERT_GT(accepted, 100);
  // Back: the flusher delivers what waited, each event once.
  server_->psql("postgres", "ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS true", &out);
  ASSERT_TRUE(s->flush().ok());
  Query q;
  q.limit = 100000;
  auto page = s->search(q);
  ASSERT_TRUE(page.ok()) << page.error().message;
  std::vector<int> want = {0};
  for (int i = 2; i < 2 + accepted; ++i) want.push_back(i);
  EXPECT_EQ(ns(page->lines), want);
}

// Group commit: sync batches of many callers share a transaction; when it
// fails, every caller in it is told, and nothing of their batches is stored
// (each sends its batch again: no event doubled, none lost).
TEST_F(PostgresAuditStore, SyncBatchesOfManyCallersAreAllOrNothingAndEachToldItsResult) {
  auto s = open();
  ASSERT_NE(s, nullptr);
  const int64_t t0 = clock::realtime_ns() - 60'000'000'000;
  constexpr int kCallers = 10, kRounds = 20;
  auto run = [&](int base, std::atomic<int>& ok, std::atomic<int>& failed) {
    std::vector<std::thread> ts;
    for (int c = 0; c < kCallers; ++c)
      ts.emplace_back([&, c] {
        for (int r = 0; r < kRounds; ++r) {
          const int n = base + c * kRounds + r;
          std::vector<std::string> lines = {line(t0 + n, "x", "s", "u", n * 2),
                                            line(t0 + n, "x", "s", "u", n * 2 + 1)};
          std::vector<std::string_view> v(lines.begin(), lines.end());
          if (s->append(v, Durability::sync))
            ++ok;
          else
            ++failed;
        }
      });
    for (auto& t : ts) t.join();
  };
  std::atomic<int> ok{0}, failed{0};
  run(0, ok, failed);
  EXPECT_EQ(ok.load(), kCallers * kRounds);
  EXPECT_EQ(failed.load(), 0);
  // The database refuses: every caller is told, nothing is stored.
  std::string out;
  ASSERT_TRUE(server_->psql("postgres", "ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS false", &out)) << out;
  ASSERT_TRUE(server_->psql("postgres",
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                                db_ + "' AND pid <> pg_backend_pid()",
                            &out))
      << out;
  std::atomic<int> ok2{0}, failed2{0};
  run(10000, ok2, failed2);
  EXPECT_EQ(ok2.load(), 0);
  EXPECT_EQ(failed2.load(), kCallers * kRounds);
  ASSERT_TRUE(server_->psql("postgres", "ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS true", &out)) << out;
  Query q;
  q.limit = 100000;
  auto page = s->search(q);
  ASSERT_TRUE(page.ok()) << page.error().message;
  auto got = ns(page->lines);
  std::sort(got.begin(), got.end());
  std::vector<int> want(2 * kCallers * kRounds);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<int>(i);
  EXPECT_EQ(got, want) << "only the batches that were acknowledged, each once";
}

TEST_F(PostgresAuditStore, RetentionDeletesOnlyOlderEvents) {
  auto s = open();
  ASSERT_NE(s, nullptr);
  const int64_t t0 = clock::realtime_ns() / 1'000'000'000 * 1'000'000'000 - 10'000'000'000;
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(s->emit(line(t0 + int64_t(i) * 1'000'000'000, "x", "s", "u", i)).ok());
  ASSERT_TRUE(s->flush().ok());
  auto d = s->delete_before(t0 + 4'000'000'000);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(*d, 4u);
  auto page = s->search(Query{});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ns(page->lines), (std::vector<int>{4, 5, 6, 7, 8, 9}));
}

// ---- Cluster state ---------------------------------------------------------------

class PostgresClusterStore : public PostgresAuditStore {
 protected:
  std::unique_ptr<cluster::Backend> backend() {
    auto b = open_postgres_cluster(uri_);
    EXPECT_TRUE(b.ok()) << (b ? "" : b.error().message);
    return b ? std::move(b.value()) : nullptr;
  }
  static cluster::Record role(const std::string& name) {
    return {"role", name, 0, std::nullopt, "{\"name\":\"" + name + "\"}"};
  }
};

TEST_F(PostgresClusterStore, AWriteThroughOneAuthServiceIsAnnouncedToTheOthers) {
  auto a = backend();  // one auth service's store
  auto b = backend();  // another's, on the same database
  ASSERT_TRUE(a && b);
  auto watch = ChangeWatcher::open(uri_);
  ASSERT_TRUE(watch.ok()) << watch.error().message;
  // Nothing written, nothing announced.
  auto none = (*watch)->wait(std::chrono::milliseconds(100));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  ASSERT_TRUE(a->create(role("auditor")).ok());
  auto got = (*watch)->wait(std::chrono::seconds(1));
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(*got, std::vector<std::string>{"role"});
  // ... and the other service reads it at once.
  auto r = b->get("role", "auditor");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->revision, 1u);

  // Many heartbeats in one transaction: one announcement of their kind.
  std::vector<cluster::Record> nodes;
  for (int i = 0; i < 50; ++i)
    nodes.push_back({"node", "n" + std::to_string(i), 0, int64_t{4102444800}, "{}"});
  ASSERT_TRUE(b->put_many(nodes).ok());
  ASSERT_TRUE(a->remove("role", "auditor").ok());
  std::vector<std::string> kinds;
  for (int i = 0; i < 10 && kinds.size() < 2; ++i) {
    auto more = (*watch)->wait(std::chrono::milliseconds(200));
    ASSERT_TRUE(more.ok());
    kinds.insert(kinds.end(), more->begin(), more->end());
  }
  std::sort(kinds.begin(), kinds.end());
  EXPECT_EQ(kinds, (std::vector<std::string>{"node", "role"}));

  // A watcher whose connection is cut says so ("*": anything may have
  // changed meanwhile) and listens again.
  std::string out;
  ASSERT_TRUE(server_->psql("postgres",
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query "
                            "LIKE 'LISTEN%' AND datname = '" + db_ + "'",
                            &out))
      << out;
  std::vector<std::string> after;
  for (int i = 0; i < 10 && std::find(after.begin(), after.end(), "*") == after.end(); ++i) {
    auto w = (*watch)->wait(std::chrono::milliseconds(200));
    ASSERT_TRUE(w.ok()) << w.error().message;
    after.insert(after.end(), w->begin(), w->end());
  }
  EXPECT_NE(std::find(after.begin(), after.end(), "*"), after.end());
  ASSERT_TRUE(a->create(role("again")).ok());
  auto again = (*watch)->wait(std::chrono::seconds(1));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, std::vector<std::string>{"role"});
}

TEST_F(PostgresClusterStore, ALostConnectionIsOpenedAgainAndANewerSchemaRefused) {
  auto a = backend();
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->create(role("r1")).ok());
  std::string out;
  ASSERT_TRUE(server_->psql("postgres",
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                                db_ + "' AND pid <> pg_backend_pid()",
                            &out))
      << out;
  // The first call after the cut may fail (unavailable); the next works.
  auto first = a->get("role", "r1");
  if (!first) EXPECT_EQ(first.error().kind(), Errc::unavailable) << first.error().message;
  auto second = a->get("role", "r1");
  ASSERT_TRUE(second.ok()) << second.error().message;

  sql("UPDATE vigil_schema SET version = 7 WHERE component = 'cluster'");
  auto b = open_postgres_cluster(uri_);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind(), Errc::failed_precondition);
}

}  // namespace
}  // namespace vigil::pg
