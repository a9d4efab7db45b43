#include "pg/pg_audit_store.hpp"

#include <algorithm>

#include "common/log.hpp"

namespace vigil::pg {
namespace {

using auditlog::Durability;

const std::string kWhat = "audit log (postgresql)";
const std::string kSource = "audit_events";
constexpr int64_t kMigrationLock = 0x5647'4d49'4752;  // "VGMIGR"

// Version v of the audit schema is kAuditSteps[v - 1].
const std::vector<std::string> kAuditSteps = {
    R"(CREATE TABLE audit_events (
         time_ns bigint NOT NULL,
         id bigserial NOT NULL,
         event_type bytea,
         sid bytea,
         user_name bytea,
         login bytea,
         line bytea NOT NULL,
         PRIMARY KEY (time_ns, id));
       CREATE INDEX audit_events_sid ON audit_events (sid, time_ns, id);
       CREATE INDEX audit_events_time_brin ON audit_events USING brin (time_ns);)",
};

const char* kCopy =
    "COPY audit_events (time_ns, event_type, sid, user_name, login, line) FROM STDIN "
    "(FORMAT binary)";

void put_field(CopyWriter& w, const std::optional<std::string>& v) {
  if (v)
    w.bytes(*v);
  else
    w.null();
}

}  // namespace

Result<void> migrate(Conn& conn, const std::string& component,
                     const std::vector<std::string>& steps) {
  auto body = [&]() -> Result<void> {
    if (auto r = conn.exec("SELECT pg_advisory_xact_lock($1)", {Param::int64(kMigrationLock)}); !r)
      return r.error();
    if (auto r = conn.run("CREATE TABLE IF NOT EXISTS vigil_schema ("
                          "component text PRIMARY KEY, version integer NOT NULL)");
        !r)
      return r.error();
    auto cur = conn.exec("SELECT version FROM vigil_schema WHERE component = $1",
                         {Param::text(component)});
    if (!cur) return cur.error();
    const int have = cur->size() ? cur->int32(0, 0) : 0;
    const int known = static_cast<int>(steps.size());
    if (have > known)
      return Error::of(Errc::failed_precondition,
                       conn.what() + ": the database's " + component + " schema is version " +
                           std::to_string(have) + ", newer than this Vigil knows (" +
                           std::to_string(known) + "): run the newer Vigil, or another database");
    for (int v = have + 1; v <= known; ++v)
      if (auto r = conn.run(steps[static_cast<size_t>(v - 1)]); !r) return r.error();
    if (have < known)
      if (auto r = conn.exec(
              "INSERT INTO vigil_schema (component, version) VALUES ($1, $2) "
              "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
              {Param::text(component), Param::int64(known)});
          !r)
        return r.error();
    return {};
  };
  if (auto r = conn.run("BEGIN"); !r) return r.error();
  auto r = body();
  if (!r) {
    (void)conn.run("ROLLBACK");
    return r.error();
  }
  return conn.run("COMMIT");
}

PgAuditStore::PgAuditStore(PgAuditOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<PgAuditStore>> PgAuditStore::open(PgAuditOptions options) {
  std::unique_ptr<PgAuditStore> s(new PgAuditStore(std::move(options)));
  auto conn = Conn::open(s->options_.uri, kWhat);
  if (!conn) return conn.error();
  if (auto r = migrate(*conn, "audit", kAuditSteps); !r) return r.error();
  s->write_conn_.emplace(std::move(*conn));
  s->flusher_ = std::thread([p = s.get()] { p->flusher(); });
  return s;
}

PgAuditStore::~PgAuditStore() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  if (auto r = flush(); !r)
    log::warn(kWhat + ": events not stored at close: " + r.error().message);
}

Result<Conn*> PgAuditStore::writer() {
  if (!write_conn_ || !write_conn_->ok()) {
    write_conn_.reset();
    auto c = Conn::open(options_.uri, kWhat);
    if (!c) return c.error();
    write_conn_.emplace(std::move(*c));
  }
  return &*write_conn_;
}

Result<Conn*> PgAuditStore::reader() {
  if (!read_conn_ || !read_conn_->ok()) {
    read_conn_.reset();
    auto c = Conn::open(options_.uri, kWhat);
    if (!c) return c.error();
    read_conn_.emplace(std::move(*c));
  }
  return &*read_conn_;
}

Result<void> PgAuditStore::write_locked(std::vector<Row>& rows) {
  if (rows.empty()) return {};
  CopyWriter w;
  for (const Row& r : rows) {
    w.begin_tuple(6);
    w.int64(r.time_ns);
    put_field(w, r.fields.event);
    put_field(w, r.fields.sid);
    put_field(w, r.fields.user);
    put_field(w, r.fields.login);
    w.bytes(r.line);
  }
  const std::string data = w.finish();
  auto conn = writer();
  if (!conn) return conn.error();
  Conn& c = **conn;
  if (auto r = c.run("BEGIN"); !r) return r.error();
  if (auto r = c.copy_in(kCopy, data); !r) {
    (void)c.run("ROLLBACK");
    return r.error();
  }
  // COMMIT waits for the WAL to be flushed (synchronous_commit as the
  // server sets it): once it returns, the rows survive a crash.
  return c.run("COMMIT");
}

Result<void> PgAuditStore::emit(std::string_view json_line, Durability durability) {
  return append(std::span<const std::string_view>(&json_line, 1), durability);
}

Result<void> PgAuditStore::append(std::span<const std::string_view> lines,
                                  Durability durability) {
  std::vector<Row> rows;
  rows.reserve(lines.size());
  size_t bytes = 0;
  for (std::string_view line : lines) {
    if (auto r = auditlog::check_event_line(line); !r) return r;
    line.remove_suffix(1);  // its '\n'
    auto f = auditlog::index_fields(line);
    if (!f)
      return Error::of(Errc::invalid_argument,
                       kWhat + ": refused an event that search could not read: " +
                           f.error().message);
    const int64_t t = f->time_ns;
    rows.push_back(Row{t, std::move(*f), std::string(line)});
    bytes += line.size();
  }
  if (durability == Durability::sync) {
    // Group commit: the sync batches that arrive while a transaction is
    // under way go together in the next one, written by whichever of their
    // callers gets the writer first; the others find theirs done. One
    // commit (one fsync) for many nodes' batches.
    auto mine = std::make_shared<SyncBatch>();
    mine->rows = std::move(rows);
    {
      std::lock_guard lk(mu_);
      sync_batches_.push_back(mine);
    }
    std::lock_guard w(write_mu_);
    std::vector<Row> buffered;
    std::vector<std::shared_ptr<SyncBatch>> group;
    {
      std::lock_guard lk(mu_);
      if (mine->done) return mine->result;
      buffered.swap(pending_);
      pending_bytes_ = 0;
      group.swap(sync_batches_);
    }
    std::vector<Row> all = std::move(buffered);
    const size_t earlier = all.size();
    for (auto& g : group)
      all.insert(all.end(), std::make_move_iterator(g->rows.begin()),
                 std::make_move_iterator(g->rows.end()));
    auto r = write_locked(all);
    std::lock_guard lk(mu_);
    if (!r) {
      // The buffered events wait for the next flush; each sync batch's
      // caller has the error and sends it again (nothing of it stored).
      all.resize(earlier);
      for (const Row& row : all) pending_bytes_ += row.line.size();
      pending_.insert(pending_.begin(), std::make_move_iterator(all.begin()),
                      std::make_move_iterator(all.end()));
    }
    for (auto& g : group) {
      g->done = true;
      g->result = r;
      g->rows.clear();
    }
    return r;
  }
  std::lock_guard lk(mu_);
  if (pending_bytes_ + bytes > options_.max_pending_bytes) {
    refused_ += rows.size();
    return Error::of(Errc::resource_exhausted,
                     kWhat + ": " + std::to_string(pending_bytes_) +
                         " bytes of events wait for the database (is it reachable? is it "
                         "keeping up?): events refused, send them again later");
  }
  pending_bytes_ += bytes;
  pending_.insert(pending_.end(), std::make_move_iterator(rows.begin()),
                  std::make_move_iterator(rows.end()));
  cv_.notify_one();
  return {};
}

Result<void> PgAuditStore::flush() {
  std::lock_guard w(write_mu_);
  std::vector<Row> rows;
  {
    std::lock_guard lk(mu_);
    rows.swap(pending_);
    pending_bytes_ = 0;
  }
  auto r = write_locked(rows);
  if (!r) {
    std::lock_guard lk(mu_);
    for (const Row& row : rows) pending_bytes_ += row.line.size();
    pending_.insert(pending_.begin(), std::make_move_iterator(rows.begin()),
                    std::make_move_iterator(rows.end()));
  }
  return r;
}

void PgAuditStore::flusher() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    cv_.wait_for(lk, options_.flush_interval);
    if (stopping_ || pending_.empty()) continue;
    lk.unlock();
    if (auto r = flush(); !r) {
      log::warn(r.error().message + " (the events are kept and written again shortly)");
      lk.lock();
      cv_.wait_for(lk, options_.flush_interval * 10, [&] { return stopping_; });
      continue;
    }
    lk.lock();
  }
}

uint64_t PgAuditStore::refused_events() const {
  std::lock_guard lk(mu_);
  return refused_;
}

Result<uint64_t> PgAuditStore::delete_before(int64_t before_ns) {
  std::lock_guard lk(read_mu_);
  auto conn = reader();
  if (!conn) return conn.error();
  auto r = (*conn)->exec("DELETE FROM audit_events WHERE time_ns < $1", {Param::int64(before_ns)});
  if (!r) return r.error();
  return r->affected();
}

Result<auditlog::Page> PgAuditStore::search(const auditlog::Query& query) {
  auto key = auditlog::continuation_position(query);
  if (!key) return key.error();
  auto ls = auditlog::LineSearch::begin(query, "postgresql:");
  if (!ls) return ls.error();

  // Where the next batch starts: past (time, id), or (from a key of
  // another source) past or at a time.
  enum class Past { nothing, row, time_inclusive, time_exclusive };
  Past past = Past::nothing;
  int64_t past_time = 0, past_id = 0;
  if (*key) {
    past_time = (*key)->time_ns;
    if ((*key)->source == kSource) {
      past = Past::row;
      past_id = static_cast<int64_t>(std::min<uint64_t>((*key)->position, INT64_MAX));
    } else {
      // Every row here is (time, kSource, id): in ascending order it comes
      // after the key's (time, source, position) at the same time only when
      // kSource sorts after the key's source.
      const bool after_at_same_time = query.descending ? kSource < (*key)->source
                                                       : kSource > (*key)->source;
      past = after_at_same_time ? Past::time_inclusive : Past::time_exclusive;
    }
  }

  std::lock_guard lk(read_mu_);
  auto conn = reader();
  if (!conn) return conn.error();
  const char* cmp = query.descending ? "<" : ">";
  const size_t want = query.limit + 1;
  for (;;) {
    std::vector<Param> params = {Param::int64(query.from_ns), Param::int64(query.to_ns)};
    auto next = [&](Param p) {
      params.push_back(std::move(p));
      return "$" + std::to_string(params.size());
    };
    std::string sql = "SELECT time_ns, id, line FROM audit_events WHERE time_ns >= $1 AND time_ns <= $2";
    if (past == Past::row)
      sql += std::string(" AND (time_ns, id) ") + cmp + " (" + next(Param::int64(past_time)) +
             ", " + next(Param::int64(past_id)) + ")";
    else if (past == Past::time_inclusive)
      sql += std::string(" AND time_ns ") + cmp + "= " + next(Param::int64(past_time));
    else if (past == Past::time_exclusive)
      sql += std::string(" AND time_ns ") + cmp + " " + next(Param::int64(past_time));
    if (!query.types.empty()) {
      sql += " AND event_type IN (";
      bool first = true;
      for (const std::string& t : query.types) {
        sql += (first ? "" : ", ") + next(Param::bytes(t));
        first = false;
      }
      sql += ")";
    }
    if (!query.sid.empty()) sql += " AND sid = " + next(Param::bytes(query.sid));
    if (!query.user.empty()) sql += " AND user_name = " + next(Param::bytes(query.user));
    if (!query.login.empty()) sql += " AND login = " + next(Param::bytes(query.login));
    const size_t batch = std::max<size_t>(want - ls->matched(), 1);
    const char* dir = query.descending ? " DESC" : " ASC";
    sql += std::string(" ORDER BY time_ns") + dir + ", id" + dir + " LIMIT " +
           next(Param::int64(static_cast<int64_t>(std::min<size_t>(batch, 100000))));
    auto rows = (*conn)->exec(sql, params);
    if (!rows) return rows.error();
    for (int i = 0; i < rows->size(); ++i) {
      const int64_t id = rows->int64(i, 1);
      ls->add(rows->bytes(i, 2), kSource, static_cast<uint64_t>(id), static_cast<uint64_t>(id));
      past = Past::row;
      past_time = rows->int64(i, 0);
      past_id = id;
    }
    // Done when the page is full or the table has no more matching rows
    // (a corrupt row, skipped by the search, leaves room for another batch).
    if (static_cast<size_t>(rows->size()) < batch || ls->matched() >= want) break;
  }
  return ls->finish();
}

}  // namespace vigil::pg
