#include "cluster/sqlite_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cassert>
#include <functional>
#include <mutex>

namespace vigil::cluster {

namespace {

// The schema, one migration a version; each runs in the transaction that
// records it in schema_migrations.
constexpr const char* kMigrations[][3] = {
    /* 1 */ {"CREATE TABLE resources ("
             " kind TEXT NOT NULL,"
             " name TEXT NOT NULL,"
             " revision INTEGER NOT NULL,"
             " expires INTEGER,"
             " data TEXT NOT NULL,"
             " PRIMARY KEY (kind, name)) WITHOUT ROWID",
             "CREATE INDEX resources_expiry ON resources (kind, expires) WHERE expires IS NOT NULL",
             nullptr},
};
static_assert(std::size(kMigrations) == kSqliteSchemaVersion);

class Stmt {
 public:
  Stmt() = default;
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  Stmt(Stmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// Resets a statement when a call is done with it, whatever the outcome.
struct Reset {
  sqlite3_stmt* s;
  ~Reset() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

class SqliteBackend final : public Backend {
 public:
  SqliteBackend(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  ~SqliteBackend() override {
    stmts_.clear();
    sqlite3_close_v2(db_);
  }

  Result<void> init(const SqliteOptions& options);

  Result<Record> create(const Record& r) override;
  Result<Record> get(std::string_view kind, std::string_view name) override;
  Result<std::vector<Record>> list(std::string_view kind) override;
  Result<Record> update(const Record& r) override;
  Result<Record> put(const Record& r) override;
  Result<void> put_many(const std::vector<Record>& records) override;
  Result<void> remove(std::string_view kind, std::string_view name,
                      std::optional<uint64_t> revision) override;
  Result<size_t> purge_expired(std::string_view kind, int64_t now) override;

 private:
  enum Id { kInsert, kGet, kList, kUpdate, kPut, kDelete, kDeleteRev, kPurge, kBegin, kCommit,
            kRollback, kCount };

  Error fail(int rc, std::string_view doing) const;
  Result<sqlite3_stmt*> prepare(const char* sql);
  Result<void> exec(const char* sql);  // prepared, stepped to the end
  Result<void> migrate();
  Result<Record> get_locked(std::string_view kind, std::string_view name);
  Result<Record> put_locked(const Record& r);

  std::string path_;
  sqlite3* db_;
  std::mutex mu_;
  std::vector<Stmt> stmts_;
  sqlite3_stmt* s_[kCount] = {};
};

Error SqliteBackend::fail(int rc, std::string_view doing) const {
  const std::string what = "cluster database " + path_ + ": " + std::string(doing) + ": " +
                           sqlite3_errstr(rc) + " (" + sqlite3_errmsg(db_) + ")";
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
      return Error::of(Errc::data_loss, what + "; this file is not a Vigil cluster database: move "
                                               "it away, or restore the database from a backup");
    case SQLITE_CORRUPT:
      return Error::of(Errc::data_loss, what + "; the database is damaged: restore it from a "
                                               "backup");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error::of(Errc::unavailable, what + "; another process holds the database locked: "
                                                 "retry, or stop the other process");
    case SQLITE_FULL: return Error::of(Errc::resource_exhausted, what + "; free disk space");
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
      return Error::of(Errc::permission_denied,
                       what + "; check that the file and its directory are writable by this user");
    case SQLITE_CONSTRAINT: return Error::of(Errc::already_exists, what);
    default: return Error::of(Errc::internal, what);
  }
}

Result<sqlite3_stmt*> SqliteBackend::prepare(const char* sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) return fail(rc, "preparing a statement");
  stmts_.emplace_back(s);
  return s;
}

Result<void> SqliteBackend::exec(const char* sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql, -1, &s, nullptr);
  if (rc != SQLITE_OK) return fail(rc, std::string("preparing ") + sql);
  Stmt owned(s);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) return fail(rc, std::string("running ") + sql);
  return {};
}

// One integer a pragma answers.
Result<int64_t> pragma_int(sqlite3* db, const char* sql, const std::function<Error(int)>& fail) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
  if (rc != SQLITE_OK) return fail(rc);
  Stmt owned(s);
  rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) return fail(rc);
  return sqlite3_column_int64(s, 0);
}

Result<void> SqliteBackend::init(const SqliteOptions& options) {
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, options.busy_timeout_ms);
  // The header is read here first: a file that is not SQLite fails now.
  {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_, "PRAGMA journal_mode=WAL", -1, &s, nullptr);
    if (rc != SQLITE_OK) return fail(rc, "opening");
    Stmt owned(s);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) return fail(rc, "opening");
    std::string mode = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    if (mode != "wal")
      return Error::of(Errc::failed_precondition,
                       "cluster database " + path_ + ": cannot use write-ahead logging (journal "
                       "mode stays " + mode + "); put data_dir on a local file system");
  }
  if (auto r = exec("PRAGMA synchronous=FULL"); !r) return r;
  if (auto r = exec("PRAGMA secure_delete=ON"); !r) return r;  // deleted hashes do not linger
  if (auto r = migrate(); !r) return r;
  const char* sql[kCount] = {
      "INSERT INTO resources (kind, name, revision, expires, data) VALUES (?1, ?2, 1, ?3, ?4)",
      "SELECT revision, expires, data FROM resources WHERE kind = ?1 AND name = ?2",
      "SELECT name, revision, expires, data FROM resources WHERE kind = ?1 ORDER BY name",
      "UPDATE resources SET revision = revision + 1, expires = ?3, data = ?4"
      " WHERE kind = ?1 AND name = ?2 AND revision = ?5 RETURNING revision",
      "INSERT INTO resources (kind, name, revision, expires, data) VALUES (?1, ?2, 1, ?3, ?4)"
      " ON CONFLICT (kind, name) DO UPDATE SET revision = revision + 1, expires = excluded.expires,"
      " data = excluded.data RETURNING revision",
      "DELETE FROM resources WHERE kind = ?1 AND name = ?2",
      "DELETE FROM resources WHERE kind = ?1 AND name = ?2 AND revision = ?3",
      "DELETE FROM resources WHERE kind = ?1 AND expires IS NOT NULL AND expires <= ?2",
      "BEGIN IMMEDIATE",
      "COMMIT",
      "ROLLBACK",
  };
  for (int i = 0; i < kCount; ++i) {
    auto s = prepare(sql[i]);
    if (!s) return s.error();
    s_[i] = s.value();
  }
  return {};
}

Result<void> SqliteBackend::migrate() {
  auto fail_with = [&](const char* doing) { return [this, doing](int rc) { return fail(rc, doing); }; };
  // BEGIN IMMEDIATE: two processes opening a new file do not both migrate.
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
  auto rollback = [&](Error e) {
    (void)exec("ROLLBACK");
    return e;
  };
  auto app_id = pragma_int(db_, "PRAGMA application_id", fail_with("reading the application id"));
  if (!app_id) return rollback(app_id.error());
  auto tables = pragma_int(db_, "SELECT count(*) FROM sqlite_schema", fail_with("reading the schema"));
  if (!tables) return rollback(tables.error());
  if (app_id.value() != kSqliteApplicationId) {
    if (app_id.value() != 0 || tables.value() != 0)
      return rollback(Error::of(
          Errc::data_loss,
          "cluster database " + path_ + ": this is an SQLite database of another program "
          "(application id " + std::to_string(app_id.value()) + ", " +
              std::to_string(tables.value()) + " schema objects), not Vigil's; move it away or "
              "point data_dir elsewhere"));
    const std::string set_id = "PRAGMA application_id=" + std::to_string(kSqliteApplicationId);
    if (auto r = exec(set_id.c_str()); !r) return rollback(r.error());
    if (auto r = exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                      " applied_at INTEGER NOT NULL)");
        !r)
      return rollback(r.error());
  }
  auto version = pragma_int(db_, "SELECT coalesce(max(version), 0) FROM schema_migrations",
                            fail_with("reading the schema version"));
  if (!version) return rollback(version.error());
  if (version.value() > kSqliteSchemaVersion)
    return rollback(Error::of(
        Errc::failed_precondition,
        "cluster database " + path_ + ": schema version " + std::to_string(version.value()) +
            " was written by a newer Vigil (this one knows up to " +
            std::to_string(kSqliteSchemaVersion) + "); run the newer version"));
  for (int v = static_cast<int>(version.value()) + 1; v <= kSqliteSchemaVersion; ++v) {
    for (const char* sql : kMigrations[v - 1])
      if (sql)
        if (auto r = exec(sql); !r) return rollback(r.error());
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_,
                                "INSERT INTO schema_migrations (version, applied_at)"
                                " VALUES (?1, unixepoch())",
                                -1, &s, nullptr);
    if (rc != SQLITE_OK) return rollback(fail(rc, "recording a migration"));
    Stmt owned(s);
    sqlite3_bind_int(s, 1, v);
    if ((rc = sqlite3_step(s)) != SQLITE_DONE) return rollback(fail(rc, "recording a migration"));
  }
  return exec("COMMIT");
}

void bind_text(sqlite3_stmt* s, int i, std::string_view text) {
  sqlite3_bind_text(s, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

void bind_key(sqlite3_stmt* s, std::string_view kind, std::string_view name) {
  bind_text(s, 1, kind);
  bind_text(s, 2, name);
}

void bind_body(sqlite3_stmt* s, const Record& r) {
  if (r.expires)
    sqlite3_bind_int64(s, 3, *r.expires);
  else
    sqlite3_bind_null(s, 3);
  bind_text(s, 4, r.data);
}

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, i))) : std::string();
}

std::optional<int64_t> column_optional(sqlite3_stmt* s, int i) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(s, i);
}

Error not_found(std::string_view kind, std::string_view name) {
  return Error::of(Errc::not_found, std::string(kind) + " " + std::string(name) +
                                        " does not exist; list them to see which do");
}

Result<Record> SqliteBackend::create(const Record& r) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* s = s_[kInsert];
  Reset reset{s};
  bind_key(s, r.kind, r.name);
  bind_body(s, r);
  int rc = sqlite3_step(s);
  if ((rc & 0xff) == SQLITE_CONSTRAINT)
    return Error::of(Errc::already_exists,
                     r.kind + " " + r.name + " already exists; pick another name or update it");
  if (rc != SQLITE_DONE) return fail(rc, "creating " + r.kind + " " + r.name);
  Record out = r;
  out.revision = 1;
  return out;
}

Result<Record> SqliteBackend::get_locked(std::string_view kind, std::string_view name) {
  sqlite3_stmt* s = s_[kGet];
  Reset reset{s};
  bind_key(s, kind, name);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) return not_found(kind, name);
  if (rc != SQLITE_ROW) return fail(rc, "reading " + std::string(kind) + " " + std::string(name));
  return Record{std::string(kind), std::string(name),
                static_cast<uint64_t>(sqlite3_column_int64(s, 0)), column_optional(s, 1),
                column_text(s, 2)};
}

Result<Record> SqliteBackend::get(std::string_view kind, std::string_view name) {
  std::lock_guard lock(mu_);
  return get_locked(kind, name);
}

Result<std::vector<Record>> SqliteBackend::list(std::string_view kind) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* s = s_[kList];
  Reset reset{s};
  bind_text(s, 1, kind);
  std::vector<Record> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    out.push_back(Record{std::string(kind), column_text(s, 0),
                         static_cast<uint64_t>(sqlite3_column_int64(s, 1)), column_optional(s, 2),
                         column_text(s, 3)});
  if (rc != SQLITE_DONE) return fail(rc, "listing " + std::string(kind));
  return out;
}

Result<Record> SqliteBackend::update(const Record& r) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* s = s_[kUpdate];
  {
    Reset reset{s};
    bind_key(s, r.kind, r.name);
    bind_body(s, r);
    sqlite3_bind_int64(s, 5, static_cast<int64_t>(r.revision));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      Record out = r;
      out.revision = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
      return out;
    }
    if (rc != SQLITE_DONE) return fail(rc, "updating " + r.kind + " " + r.name);
  }
  // Nothing matched: gone, or changed since it was read.
  auto now = get_locked(r.kind, r.name);
  if (!now) return now.error();
  return Error::of(Errc::failed_precondition,
                   r.kind + " " + r.name + " was changed by someone else (revision " +
                       std::to_string(now->revision) + ", not " + std::to_string(r.revision) +
                       "); read it again and retry");
}

Result<Record> SqliteBackend::put(const Record& r) {
  std::lock_guard lock(mu_);
  return put_locked(r);
}

Result<void> SqliteBackend::put_many(const std::vector<Record>& records) {
  std::lock_guard lock(mu_);
  auto step = [this](Id id, const char* doing) -> Result<void> {
    Reset reset{s_[id]};
    int rc = sqlite3_step(s_[id]);
    if (rc != SQLITE_DONE) return fail(rc, doing);
    return {};
  };
  if (auto b = step(kBegin, "starting a write of many records"); !b) return b;
  for (const auto& r : records) {
    if (auto p = put_locked(r); !p) {
      (void)step(kRollback, "undoing a write of many records");
      return p.error();
    }
  }
  if (auto c = step(kCommit, "committing a write of many records"); !c) {
    (void)step(kRollback, "undoing a write of many records");
    return c;
  }
  return {};
}

Result<Record> SqliteBackend::put_locked(const Record& r) {
  sqlite3_stmt* s = s_[kPut];
  Reset reset{s};
  bind_key(s, r.kind, r.name);
  bind_body(s, r);
  int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) return fail(rc, "writing " + r.kind + " " + r.name);
  Record out = r;
  out.revision = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
  // Let the statement finish so the write commits now.
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) return fail(rc, "writing " + r.kind + " " + r.name);
  return out;
}

Result<void> SqliteBackend::remove(std::string_view kind, std::string_view name,
                                   std::optional<uint64_t> revision) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* s = s_[revision ? kDeleteRev : kDelete];
  Reset reset{s};
  bind_key(s, kind, name);
  if (revision) sqlite3_bind_int64(s, 3, static_cast<int64_t>(*revision));
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) return fail(rc, "deleting " + std::string(kind) + " " + std::string(name));
  if (sqlite3_changes(db_) == 0) {
    if (!revision) return not_found(kind, name);
    auto now = get_locked(kind, name);
    if (!now) return now.error();
    return Error::of(Errc::failed_precondition,
                     std::string(kind) + " " + std::string(name) +
                         " was changed by someone else; read it again and retry");
  }
  return {};
}

Result<size_t> SqliteBackend::purge_expired(std::string_view kind, int64_t now) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* s = s_[kPurge];
  Reset reset{s};
  bind_text(s, 1, kind);
  sqlite3_bind_int64(s, 2, now);
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) return fail(rc, "removing expired " + std::string(kind));
  return static_cast<size_t>(sqlite3_changes(db_));
}

}  // namespace

Result<std::unique_ptr<Backend>> open_sqlite(const std::string& path, SqliteOptions options) {
  // Made here, 0600, so that it never exists with wider rights; SQLite gives
  // its -wal and -shm files the database's mode.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == ELOOP)
      return Error::of(Errc::permission_denied,
                       "cluster database " + path + " is a symbolic link; point data_dir at the "
                       "real directory");
    return Error::sys("cannot open the cluster database " + path +
                      " (check that data_dir exists and is writable)");
  }
  struct stat st {};
  const int stat_rc = fstat(fd, &st);
  const int stat_errno = errno;
  ::close(fd);
  if (stat_rc != 0) return Error::sys("cannot stat the cluster database " + path, stat_errno);
  if (!S_ISREG(st.st_mode))
    return Error::of(Errc::failed_precondition,
                     "cluster database " + path + " is not a regular file; move it away");
  if (st.st_mode & 077)
    return Error::of(Errc::permission_denied,
                     "cluster database " + path + " is open to group or others (mode " +
                         std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
                         std::to_string(st.st_mode & 7) +
                         ") and holds password hashes and second-factor secrets: chmod 600 it");
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Error::of(Errc::unavailable, "cannot open the cluster database " + path + ": " + msg);
  }
  auto backend = std::make_unique<SqliteBackend>(path, db);
  if (auto r = backend->init(options); !r) return r.error();
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace vigil::cluster
