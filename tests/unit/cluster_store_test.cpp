// The cluster store's contract, run against every back end (a factory per
// back end; a PostgreSQL one joins INSTANTIATE_TEST_SUITE_P below), then what is SQLite's
// own: the file's mode, WAL, the schema version, foreign and corrupt files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "cluster/roles.hpp"
#include "cluster/secrets.hpp"
#include "cluster/sqlite_store.hpp"
#include "cluster/store.hpp"
#include "pg/pg_cluster_store.hpp"
#include "../support/postgres_server.hpp"
#include "../support/temp_dir.hpp"

namespace vigil::cluster {
namespace {

using Factory = std::function<Result<std::unique_ptr<Backend>>(const std::string& dir)>;

struct BackendCase {
  std::string name;
  Factory open;
};

const BackendCase kSqlite{"sqlite", [](const std::string& dir) {
                            return open_sqlite(dir + "/cluster.db");
                          }};

// A database per test directory on the binary's PostgreSQL server (port
// 31502; tests/CMakeLists.txt runs these cases as one ctest test, so the
// server starts once). A forked child opens the database its parent made.
const BackendCase kPostgres{"postgresql", [](const std::string& dir) -> Result<std::unique_ptr<Backend>> {
  static std::map<std::string, std::string> databases;
  std::string error;
  auto* server = test::PostgresServer::shared(31502, &error);
  if (!server) return Error::of(Errc::unavailable, error);
  auto& db = databases[dir];
  if (db.empty()) db = server->create_database("cluster_" + std::to_string(databases.size()));
  return pg::open_postgres_cluster(server->uri(db));
}};

Time T(int64_t s) { return Time{Seconds{s}}; }

class StoreContract : public ::testing::TestWithParam<BackendCase> {
 protected:
  ClusterStore open() {
    auto backend = GetParam().open(dir_.path());
    if (!backend) {
      ADD_FAILURE() << backend.error().message;
      std::abort();
    }
    return ClusterStore(std::move(backend.value()));
  }
  static User user(std::string name) {
    User u;
    u.name = std::move(name);
    u.roles = {"access"};
    u.traits = {{"logins", {"alice"}}};
    u.created = T(1700000000);
    return u;
  }
  test::TempDir dir_;
};

TEST_P(StoreContract, UsersCreateGetListUpdateDelete) {
  ClusterStore s = open();
  User u = user("alice");
  u.password_hash = "$argon2id$v=19$m=65536,t=2,p=1$x$y";
  u.totp = Totp{std::string("\0\x01\xff", 3), 7};
  auto made = s.create_user(u);
  ASSERT_TRUE(made.ok()) << made.error().message;
  EXPECT_EQ(made->revision, 1u);
  auto got = s.get_user("alice");
  ASSERT_TRUE(got.ok());
  u.revision = 1;
  EXPECT_EQ(got.value(), u);  // secrets and binary TOTP bytes come back whole
  ASSERT_TRUE(s.create_user(user("bob")).ok());
  auto all = s.list_users();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "alice");
  EXPECT_EQ((*all)[1].name, "bob");
  got->roles = {"access", "auditor"};
  auto updated = s.update_user(got.value());
  ASSERT_TRUE(updated.ok()) << updated.error().message;
  EXPECT_EQ(updated->revision, 2u);
  EXPECT_EQ(s.get_user("alice")->roles, (std::vector<std::string>{"access", "auditor"}));
  ASSERT_TRUE(s.delete_user("alice").ok());
  EXPECT_EQ(s.get_user("alice").error().kind(), Errc::not_found);
  EXPECT_EQ(s.delete_user("alice").error().kind(), Errc::not_found);
  EXPECT_EQ(s.list_users()->size(), 1u);
}

TEST_P(StoreContract, NamesAreUniquePerKind) {
  ClusterStore s = open();
  ASSERT_TRUE(s.create_user(user("alice")).ok());
  auto again = s.create_user(user("alice"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind(), Errc::already_exists);
  EXPECT_NE(again.error().message.find("user alice already exists"), std::string::npos);
  Role r;
  r.name = "alice";  // another kind may share the name
  EXPECT_TRUE(s.create_role(r).ok());
  EXPECT_EQ(s.create_role(r).error().kind(), Errc::already_exists);
  EXPECT_EQ(s.create_user(user("bad name")).error().kind(), Errc::invalid_argument);
}

TEST_P(StoreContract, AStaleRevisionIsRefused) {
  ClusterStore s = open();
  User first = s.create_user(user("alice")).value();
  User second = first;
  first.roles = {"editor"};
  ASSERT_TRUE(s.update_user(first).ok());
  second.roles = {"auditor"};
  auto lost = s.update_user(second);
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().kind(), Errc::failed_precondition);
  EXPECT_NE(lost.error().message.find("read it again and retry"), std::string::npos);
  EXPECT_EQ(s.get_user("alice")->roles, std::vector<std::string>{"editor"});
  EXPECT_EQ(s.update_user(user("nobody")).error().kind(), Errc::not_found);
}

TEST_P(StoreContract, RolesTokensNodesAndSessionsRoundTrip) {
  ClusterStore s = open();
  ASSERT_TRUE(s.ensure_builtin_roles().ok());
  ASSERT_TRUE(s.ensure_builtin_roles().ok());  // idempotent
  auto roles = s.list_roles();
  ASSERT_TRUE(roles.ok());
  EXPECT_EQ(roles->size(), 3u);
  Role edited = s.get_role("access").value();
  edited.options.max_session_ttl = Seconds{3600};
  edited.options.enhanced_recording = {Kind::disk};
  ASSERT_TRUE(s.update_role(edited).ok());
  ASSERT_TRUE(s.ensure_builtin_roles().ok());  // keeps the edit
  Role back = s.get_role("access").value();
  EXPECT_EQ(back.options.max_session_ttl, Seconds{3600});
  EXPECT_EQ(back.options.enhanced_recording, std::vector<Kind>{Kind::disk});
  EXPECT_EQ(back.allow, builtin_roles()[0].allow);

  Token t;
  t.hash = std::string(64, 'c');
  t.roles = {SystemRole::node, SystemRole::proxy};
  t.created = T(100);
  t.expires = T(400);
  ASSERT_TRUE(s.create_token(t).ok());
  Token got = s.get_token(t.hash).value();
  t.revision = 1;
  EXPECT_EQ(got, t);
  EXPECT_EQ(s.list_tokens()->size(), 1u);
  ASSERT_TRUE(s.delete_token(t.hash).ok());
  EXPECT_EQ(s.get_token(t.hash).error().kind(), Errc::not_found);

  Node n;
  n.uuid = "6f0c1c0e-0000-4000-8000-000000000001";
  n.name = "graviton-node";
  n.address = "127.0.0.1:3022";
  n.labels = {{"env", "dev"}};
  n.last_heartbeat = T(1000);
  n.expires = T(1600);
  ASSERT_EQ(s.upsert_node(n)->revision, 1u);
  n.last_heartbeat = T(1060);
  ASSERT_EQ(s.upsert_node(n)->revision, 2u);  // a heartbeat replaces
  Node gotn = s.get_node(n.uuid).value();
  n.revision = 2;
  EXPECT_EQ(gotn, n);
  ASSERT_TRUE(s.delete_node(n.uuid).ok());
  EXPECT_EQ(s.list_nodes()->size(), 0u);

  SessionTracker st;
  st.sid = "ca82b98d-1d30-11ea-8244-cafde5327a6c";
  st.user = "alice";
  st.login = "ubuntu";
  st.node_uuid = n.uuid;
  st.kinds = KindSet::all();
  st.created = T(5);
  st.last_active = T(6);
  st.expires = T(7);
  ASSERT_TRUE(s.create_session(st).ok());
  EXPECT_EQ(s.create_session(st).error().kind(), Errc::already_exists);
  SessionTracker gots = s.get_session(st.sid).value();
  gots.state = "terminated";
  ASSERT_TRUE(s.update_session(gots).ok());
  EXPECT_EQ(s.get_session(st.sid)->state, "terminated");
  EXPECT_EQ(s.list_sessions()->size(), 1u);
  ASSERT_TRUE(s.delete_session(st.sid).ok());
}

TEST_P(StoreContract, KeysAreDataNotSql) {
  ClusterStore s = open();
  Node n;
  n.uuid = "x'); DROP TABLE resources; --";
  n.name = "evil\"name";
  ASSERT_TRUE(s.upsert_node(n).ok());
  EXPECT_EQ(s.get_node(n.uuid)->name, "evil\"name");
  ASSERT_TRUE(s.create_user(user("alice")).ok());
  EXPECT_TRUE(s.get_user("alice").ok());
  EXPECT_EQ(s.get_node("x%").error().kind(), Errc::not_found);  // no pattern matching either
}

TEST_P(StoreContract, PurgeRemovesOnlyWhatExpired) {
  ClusterStore s = open();
  for (int i = 0; i < 4; ++i) {
    Token t;
    t.hash = std::string(63, 'a') + char('0' + i);
    t.roles = {SystemRole::node};
    t.expires = T(100 + i * 100);  // 100, 200, 300, 400
    ASSERT_TRUE(s.create_token(t).ok());
  }
  Node old_node;
  old_node.uuid = "old";
  old_node.expires = T(150);
  Node live_node;
  live_node.uuid = "live";
  live_node.expires = T(10000);
  ASSERT_TRUE(s.upsert_node(old_node).ok());
  ASSERT_TRUE(s.upsert_node(live_node).ok());
  SessionTracker st;
  st.sid = "s1";
  st.expires = T(200);
  ASSERT_TRUE(s.create_session(st).ok());
  ASSERT_TRUE(s.create_user(user("alice")).ok());  // users do not expire

  auto purged = s.purge_expired(T(200));  // at or before 200
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(purged.value(), 4u);  // tokens 100 and 200, the old node, the session
  auto tokens = s.list_tokens().value();
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[0].expires, T(300));
  EXPECT_EQ(s.list_nodes()->size(), 1u);
  EXPECT_EQ(s.get_node("old").error().kind(), Errc::not_found);
  EXPECT_TRUE(s.list_sessions()->empty());
  EXPECT_TRUE(s.get_user("alice").ok());
  EXPECT_EQ(s.purge_expired(T(200)).value(), 0u);
}

TEST_P(StoreContract, DataSurvivesReopening) {
  {
    ClusterStore s = open();
    ASSERT_TRUE(s.create_user(user("alice")).ok());
    ASSERT_TRUE(s.ensure_builtin_roles().ok());
  }
  ClusterStore again = open();
  EXPECT_EQ(again.get_user("alice")->traits.at("logins"), std::vector<std::string>{"alice"});
  EXPECT_EQ(again.list_roles()->size(), 3u);
}

// Adds one to the user's "n" trait with compare-and-swap, retrying when
// another writer won: no increment may be lost.
bool increment(ClusterStore& s, const std::string& name) {
  for (int attempt = 0; attempt < 10000; ++attempt) {
    auto u = s.get_user(name);
    if (!u) return false;
    int n = std::stoi(u->traits["n"].front());
    u->traits["n"] = {std::to_string(n + 1)};
    auto w = s.update_user(u.value());
    if (w) return true;
    if (w.error().kind() != Errc::failed_precondition) {
      ADD_FAILURE() << w.error().message;
      return false;
    }
  }
  return false;
}

constexpr int kIncrements = 200;

// Two processes meeting before each step (one pipe each way), so that their
// steps overlap instead of one running ahead of the other.
struct ProcessBarrier {
  int to_child[2], to_parent[2];
  bool child = false;
  void make() {
    if (pipe(to_child) != 0 || pipe(to_parent) != 0) std::abort();
  }
  void in_child() {
    child = true;
    close(to_child[1]);
    close(to_parent[0]);
  }
  void in_parent() {
    close(to_child[0]);
    close(to_parent[1]);
  }
  bool meet() {
    char c = 'm';
    int out = child ? to_parent[1] : to_child[1];
    int in = child ? to_child[0] : to_parent[0];
    return write(out, &c, 1) == 1 && read(in, &c, 1) == 1;
  }
};

TEST_P(StoreContract, TwoThreadsWritingLoseNothing) {
  ClusterStore shared = open();
  User counter = user("counter");
  counter.traits["n"] = {"0"};
  ASSERT_TRUE(shared.create_user(counter).ok());
  // One thread through the shared store, one through a connection of its own.
  // Both start each increment together, so they read the same revision
  // and one of them must retry.
  std::atomic<int> ok{0};
  std::barrier together(2);
  std::thread a([&] {
    for (int i = 0; i < kIncrements; ++i) {
      together.arrive_and_wait();
      ok += increment(shared, "counter");
    }
  });
  std::thread b([&] {
    ClusterStore own = open();
    for (int i = 0; i < kIncrements; ++i) {
      together.arrive_and_wait();
      ok += increment(own, "counter");
    }
  });
  a.join();
  b.join();
  EXPECT_EQ(ok.load(), 2 * kIncrements);
  EXPECT_EQ(shared.get_user("counter")->traits.at("n").front(), std::to_string(2 * kIncrements));
}

TEST_P(StoreContract, TwoProcessesWritingLoseNothing) {
  {
    ClusterStore s = open();
    User counter = user("counter");
    counter.traits["n"] = {"0"};
    ASSERT_TRUE(s.create_user(counter).ok());
  }
  ProcessBarrier together;
  together.make();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    together.in_child();
    auto backend = GetParam().open(dir_.path());
    if (!backend) _exit(2);
    ClusterStore own(std::move(backend.value()));
    int done = 0;
    for (int i = 0; i < kIncrements; ++i) {
      if (!together.meet()) _exit(3);
      done += increment(own, "counter");
    }
    _exit(done == kIncrements ? 0 : 1);
  }
  together.in_parent();
  ClusterStore mine = open();
  int done = 0;
  for (int i = 0; i < kIncrements; ++i) {
    ASSERT_TRUE(together.meet());
    done += increment(mine, "counter");
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(done, kIncrements);
  EXPECT_EQ(mine.get_user("counter")->traits.at("n").front(), std::to_string(2 * kIncrements));
}

TEST_P(StoreContract, ASignUpTokenRacedByTwoProcessesIsConsumedOnce) {
  constexpr int kTokens = 40;
  std::vector<std::string> secrets;
  {
    ClusterStore s = open();
    for (int i = 0; i < kTokens; ++i) {
      auto t = issue_signup_token(s, "alice", Seconds{600}, T(1000));
      ASSERT_TRUE(t.ok()) << t.error().message;
      secrets.push_back(t->secret);
    }
  }
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  ProcessBarrier together;
  together.make();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipefd[0]);
    together.in_child();
    auto backend = GetParam().open(dir_.path());
    if (!backend) _exit(2);
    ClusterStore own(std::move(backend.value()));
    for (const std::string& secret : secrets) {
      if (!together.meet()) _exit(4);
      auto r = consume_signup_token(own, secret, T(1001));
      char c = r.ok() ? 'y' : (r.error().kind() == Errc::unauthenticated ? 'n' : 'e');
      if (write(pipefd[1], &c, 1) != 1) _exit(3);
    }
    _exit(0);
  }
  close(pipefd[1]);
  together.in_parent();
  ClusterStore mine = open();
  std::string ours;
  for (const std::string& secret : secrets) {
    ASSERT_TRUE(together.meet());
    auto r = consume_signup_token(mine, secret, T(1001));
    ours += r.ok() ? 'y' : (r.error().kind() == Errc::unauthenticated ? 'n' : 'e');
    // The loser hears "already used" when it lost at the delete, or "unknown"
    // when the winner was done before it looked (a used token is gone).
    if (!r.ok()) {
      const std::string& m = r.error().message;
      EXPECT_TRUE(m.find("already used") != std::string::npos ||
                  m.find("unknown, revoked") != std::string::npos)
          << m;
    }
  }
  std::string theirs(kTokens, '?');
  size_t got = 0;
  while (got < theirs.size()) {
    ssize_t n = read(pipefd[0], theirs.data() + got, theirs.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ASSERT_EQ(got, theirs.size());
  close(pipefd[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int i = 0; i < kTokens; ++i)
    EXPECT_TRUE((ours[i] == 'y') != (theirs[i] == 'y') && ours[i] != 'e' && theirs[i] != 'e')
        << "token " << i << ": this process " << ours[i] << ", the other " << theirs[i];
  EXPECT_TRUE(mine.list_tokens()->empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::Values(kSqlite, kPostgres),
                         [](const auto& info) { return info.param.name; });

// SQLite's own promises.
class SqliteStore : public ::testing::Test {
 protected:
  std::string db() const { return dir_.file("cluster.db"); }
  test::TempDir dir_;
};

TEST_F(SqliteStore, TheFileIsCreatedOwnerOnlyAndInWalMode) {
  const mode_t old_mask = ::umask(0);  // even with a umask that would leave it open
  auto b = open_sqlite(db());
  ::umask(old_mask);
  ASSERT_TRUE(b.ok()) << b.error().message;
  ClusterStore s(std::move(b.value()));
  ASSERT_TRUE(s.create_user([] { User u; u.name = "a"; return u; }()).ok());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st {};
    ASSERT_EQ(stat((db() + suffix).c_str(), &st), 0) << suffix;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << suffix;
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db().c_str(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  ASSERT_EQ(sqlite3_prepare_v2(raw, "SELECT max(version) FROM schema_migrations", -1, &st, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), kSqliteSchemaVersion);
  sqlite3_finalize(st);
  sqlite3_close(raw);
}

TEST_F(SqliteStore, AFileOpenToOthersOrASymlinkIsRefused) {
  { auto b = open_sqlite(db()); ASSERT_TRUE(b.ok()); }
  ASSERT_EQ(chmod(db().c_str(), 0644), 0);
  auto open_wide = open_sqlite(db());
  ASSERT_FALSE(open_wide.ok());
  EXPECT_EQ(open_wide.error().kind(), Errc::permission_denied);
  EXPECT_NE(open_wide.error().message.find("chmod 600"), std::string::npos);
  ASSERT_EQ(chmod(db().c_str(), 0600), 0);
  ASSERT_EQ(symlink(db().c_str(), dir_.file("link.db").c_str()), 0);
  auto via_link = open_sqlite(dir_.file("link.db"));
  ASSERT_FALSE(via_link.ok());
  EXPECT_NE(via_link.error().message.find("symbolic link"), std::string::npos);
}

TEST_F(SqliteStore, AFileThatIsNotSqliteSaysSo) {
  {
    std::ofstream f(db());
    f << "this is the audit log, not a database\n" << std::string(8192, 'x');
  }
  ASSERT_EQ(chmod(db().c_str(), 0600), 0);
  auto b = open_sqlite(db());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind(), Errc::data_loss);
  EXPECT_NE(b.error().message.find("not a Vigil cluster database"), std::string::npos)
      << b.error().message;
}

TEST_F(SqliteStore, AnotherProgramsSqliteDatabaseIsRefusedUntouched) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "CREATE TABLE photos (id INTEGER)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  ASSERT_EQ(chmod(db().c_str(), 0600), 0);
  auto b = open_sqlite(db());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind(), Errc::data_loss);
  EXPECT_NE(b.error().message.find("SQLite database of another program"), std::string::npos)
      << b.error().message;
  // Nothing was added to it.
  ASSERT_EQ(sqlite3_open(db().c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "SELECT count(*) FROM sqlite_schema", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 1);
  sqlite3_finalize(st);
  sqlite3_close(raw);
}

TEST_F(SqliteStore, ASchemaFromANewerVigilIsRefused) {
  { auto b = open_sqlite(db()); ASSERT_TRUE(b.ok()); }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "INSERT INTO schema_migrations VALUES (99, 0)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto b = open_sqlite(db());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind(), Errc::failed_precondition);
  EXPECT_NE(b.error().message.find("schema version 99 was written by a newer Vigil"),
            std::string::npos)
      << b.error().message;
}

TEST_F(SqliteStore, ADamagedRowIsDataLossNamingIt) {
  {
    ClusterStore s(open_sqlite(db()).value());
    User u;
    u.name = "alice";
    ASSERT_TRUE(s.create_user(u).ok());
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE resources SET data = '{\"roles\": 5}'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  ClusterStore s(open_sqlite(db()).value());
  auto u = s.get_user("alice");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().kind(), Errc::data_loss);
  EXPECT_NE(u.error().message.find("stored user alice cannot be read"), std::string::npos)
      << u.error().message;
  EXPECT_EQ(s.list_users().error().kind(), Errc::data_loss);
}

TEST_F(SqliteStore, DamagedPagesAreDataLoss) {
  {
    ClusterStore s(open_sqlite(db()).value());
    for (int i = 0; i < 200; ++i) {
      User u;
      u.name = "user" + std::to_string(i);
      u.traits["pad"] = {std::string(200, 'p')};
      ASSERT_TRUE(s.create_user(u).ok());
    }
  }  // closing checkpoints the WAL into the file
  {
    // Overwrite everything after the first page (the header stays SQLite's).
    int fd = ::open(db().c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    struct stat st {};
    ASSERT_EQ(fstat(fd, &st), 0);
    ASSERT_GT(st.st_size, 8192);
    std::string junk(static_cast<size_t>(st.st_size) - 4096, '\xa5');
    ASSERT_EQ(pwrite(fd, junk.data(), junk.size(), 4096), static_cast<ssize_t>(junk.size()));
    ::close(fd);
  }
  auto b = open_sqlite(db());
  Error e = b.ok() ? ClusterStore(std::move(b.value())).list_users().error() : b.error();
  EXPECT_EQ(e.kind(), Errc::data_loss) << e.message;
  EXPECT_NE(e.message.find("restore"), std::string::npos) << e.message;
}

}  // namespace
}  // namespace vigil::cluster
