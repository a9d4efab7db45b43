#include "pg/pg_cluster_store.hpp"

#include <mutex>
#include <set>

#include "pg/pg_audit_store.hpp"  // migrate()

namespace vigil::pg {
namespace {

using cluster::Record;

const std::string kWhat = "cluster state (postgresql)";

const std::vector<std::string> kClusterSteps = {
    R"(CREATE TABLE cluster_records (
         kind text NOT NULL,
         name bytea NOT NULL,
         revision bigint NOT NULL,
         expires bigint,
         data bytea NOT NULL,
         PRIMARY KEY (kind, name));
       CREATE INDEX cluster_records_expires ON cluster_records (kind, expires)
         WHERE expires IS NOT NULL;
       CREATE FUNCTION vigil_cluster_notify() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         PERFORM pg_notify('vigil_cluster', coalesce(NEW.kind, OLD.kind));
         RETURN NULL;
       END $$;
       CREATE TRIGGER cluster_records_changed AFTER INSERT OR UPDATE OR DELETE
         ON cluster_records FOR EACH ROW EXECUTE FUNCTION vigil_cluster_notify();)",
};

Param expires_param(const Record& r) {
  return r.expires ? Param::int64(*r.expires) : Param::null();
}

Error not_found(std::string_view kind, std::string_view name) {
  return Error::of(Errc::not_found, std::string(kind) + " " + std::string(name) +
                                        " does not exist; list them to see which do");
}

Error changed(std::string_view kind, std::string_view name) {
  return Error::of(Errc::failed_precondition,
                   std::string(kind) + " " + std::string(name) +
                       " was changed by someone else; read it again and retry");
}

class PgBackend final : public cluster::Backend {
 public:
  explicit PgBackend(Conn conn, std::string uri) : conn_(std::move(conn)), uri_(std::move(uri)) {}

  Result<Record> create(const Record& r) override {
    std::lock_guard lk(mu_);
    auto c = conn();
    if (!c) return c.error();
    auto rows = (*c)->exec(
        "INSERT INTO cluster_records (kind, name, revision, expires, data) "
        "VALUES ($1, $2, 1, $3, $4) ON CONFLICT (kind, name) DO NOTHING",
        {Param::text(r.kind), Param::bytes(r.name), expires_param(r), Param::bytes(r.data)});
    if (!rows) return rows.error();
    if (rows->affected() == 0)
      return Error::of(Errc::already_exists,
                       r.kind + " " + r.name + " already exists; pick another name or update it");
    Record out = r;
    out.revision = 1;
    return out;
  }

  Result<Record> get(std::string_view kind, std::string_view name) override {
    std::lock_guard lk(mu_);
    auto c = conn();
    if (!c) return c.error();
    auto rows = (*c)->exec(
        "SELECT kind, name, revision, expires, data FROM cluster_records "
        "WHERE kind = $1 AND name = $2",
        {Param::text(std::string(kind)), Param::bytes(std::string(name))});
    if (!rows) return rows.error();
    if (rows->size() == 0) return not_found(kind, name);
    return record(*rows, 0);
  }

  Result<std::vector<Record>> list(std::string_view kind) override {
    std::lock_guard lk(mu_);
    auto c = conn();
    if (!c) return c.error();
    auto rows = (*c)->exec(
        "SELECT kind, name, revision, expires, data FROM cluster_records WHERE kind = $1 "
        "ORDER BY name",
        {Param::text(std::string(kind))});
    if (!rows) return rows.error();
    std::vector<Record> out;
    out.reserve(static_cast<size_t>(rows->size()));
    for (int i = 0; i < rows->size(); ++i) out.push_back(record(*rows, i));
    return out;
  }

  Result<Record> update(const Record& r) override {
    std::lock_guard lk(mu_);
    auto c = conn();
    if (!c) return c.error();
    auto rows = (*c)->exec(
        "UPDATE cluster_records SET revision = revision + 1, expires = $3, data = $4 "
        "WHERE kind = $1 AND name = $2 AND revision = $5 RETURNING revision",
        {Param::text(r.kind), Param::bytes(r.name), expires_param(r), Param::bytes(r.data),
         Param::int64(static_cast<int64_t>(r.revision))});
    if (!rows) return rows.error();
    if (rows->size() == 0) {
      auto now = exists(**c, r.kind, r.name);
      if (!now) return now.error();
      return *now ? changed(r.kind, r.name) : not_found(r.kind, r.name);
    }
    Record out = r;
    out.revision = static_cast<uint64_t>(rows->int64(0, 0));
    return out;
  }

  Result<Record> put(const Record& r) override {
    std::lock_guard lk(mu_);
    auto c = conn();
    if (!c) return c.error();
    return put_locked(**c, r);
  }

  Result<void> put_many(const std::vector<Record>& records) override {
    std::lock_guard lk(mu_);
    auto c = conn();
    if (!c) return c.error();
    Conn& cn = **c;
    if (auto r = cn.run("BEGIN"); !r) return r;
    for (const Record& r : records)
      if (auto p = put_locked(cn, r); !p) {
        (void)cn.run("ROLLBACK");
        return p.error();
      }
    return cn.run("COMMIT");
  }

  Result<void> remove(std::string_view kind, std::string_view name,
                      std::optional<uint64_t> revision) override {
    std::lock_guard lk(mu_);
    auto c = conn();
    if (!c) return c.error();
    std::vector<Param> params = {Param::text(std::string(kind)), Param::bytes(std::string(name))};
    std::string sql = "DELETE FROM cluster_records WHERE kind = $1 AND name = $2";
    if (revision) {
      sql += " AND revision = $3";
      params.push_back(Param::int64(static_cast<int64_t>(*revision)));
    }
    auto rows = (*c)->exec(sql, params);
    if (!rows) return rows.error();
    if (rows->affected() == 0) {
      if (!revision) return not_found(kind, name);
      auto now = exists(**c, kind, name);
      if (!now) return now.error();
      return *now ? changed(kind, name) : not_found(kind, name);
    }
    return {};
  }

  Result<size_t> purge_expired(std::string_view kind, int64_t now) override {
    std::lock_guard lk(mu_);
    auto c = conn();
    if (!c) return c.error();
    auto rows = (*c)->exec(
        "DELETE FROM cluster_records WHERE kind = $1 AND expires IS NOT NULL AND expires <= $2",
        {Param::text(std::string(kind)), Param::int64(now)});
    if (!rows) return rows.error();
    return static_cast<size_t>(rows->affected());
  }

 private:
  // The connection, opened again when it was lost (the server restarted).
  Result<Conn*> conn() {
    if (!conn_ || !conn_->ok()) {
      conn_.reset();
      auto c = Conn::open(uri_, kWhat);
      if (!c) return c.error();
      conn_.emplace(std::move(*c));
    }
    return &*conn_;
  }

  static Record record(const Rows& rows, int i) {
    Record r;
    r.kind = std::string(rows.bytes(i, 0));
    r.name = std::string(rows.bytes(i, 1));
    r.revision = static_cast<uint64_t>(rows.int64(i, 2));
    if (!rows.is_null(i, 3)) r.expires = rows.int64(i, 3);
    r.data = std::string(rows.bytes(i, 4));
    return r;
  }

  static Result<bool> exists(Conn& c, std::string_view kind, std::string_view name) {
    auto rows = c.exec("SELECT 1 FROM cluster_records WHERE kind = $1 AND name = $2",
                       {Param::text(std::string(kind)), Param::bytes(std::string(name))});
    if (!rows) return rows.error();
    return rows->size() > 0;
  }

  static Result<Record> put_locked(Conn& c, const Record& r) {
    auto rows = c.exec(
        "INSERT INTO cluster_records AS t (kind, name, revision, expires, data) "
        "VALUES ($1, $2, 1, $3, $4) ON CONFLICT (kind, name) DO UPDATE SET "
        "revision = t.revision + 1, expires = EXCLUDED.expires, data = EXCLUDED.data "
        "RETURNING revision",
        {Param::text(r.kind), Param::bytes(r.name), expires_param(r), Param::bytes(r.data)});
    if (!rows) return rows.error();
    Record out = r;
    out.revision = static_cast<uint64_t>(rows->int64(0, 0));
    return out;
  }

  std::mutex mu_;
  std::optional<Conn> conn_;
  const std::string uri_;
};

}  // namespace

Result<std::unique_ptr<cluster::Backend>> open_postgres_cluster(const std::string& uri) {
  auto conn = Conn::open(uri, kWhat);
  if (!conn) return conn.error();
  if (auto r = migrate(*conn, "cluster", kClusterSteps); !r) return r.error();
  return std::unique_ptr<cluster::Backend>(new PgBackend(std::move(*conn), uri));
}

Result<std::unique_ptr<ChangeWatcher>> ChangeWatcher::open(const std::string& uri) {
  std::unique_ptr<ChangeWatcher> w(new ChangeWatcher(uri));
  auto c = Conn::open(uri, kWhat + " changes");
  if (!c) return c.error();
  if (auto r = c->listen(kClusterChannel); !r) return r.error();
  w->conn_.emplace(std::move(*c));
  return w;
}

Result<std::vector<std::string>> ChangeWatcher::wait(std::chrono::milliseconds timeout) {
  // After a lost connection: listen again, and say that anything may have
  // changed while nobody listened ("*").
  auto relisten = [&]() -> Result<std::vector<std::string>> {
    conn_.reset();
    auto c = Conn::open(uri_, kWhat + " changes");
    if (!c) return c.error();
    if (auto r = c->listen(kClusterChannel); !r) return r.error();
    conn_.emplace(std::move(*c));
    return std::vector<std::string>{"*"};
  };
  if (!conn_ || !conn_->ok()) return relisten();
  auto got = conn_->wait_notifications(timeout);
  if (!got) return relisten();
  std::set<std::string> kinds(got->begin(), got->end());
  return std::vector<std::string>(kinds.begin(), kinds.end());
}

}  // namespace vigil::pg
