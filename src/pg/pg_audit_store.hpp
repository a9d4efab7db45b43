// The audit store on PostgreSQL (audit_events_uri: ['postgresql://...']).
//
// One row per event in audit_events: the event's time (ns) and a bigserial
// position as the primary key (the order of results and what a
// continuation key holds), the fields searches filter on as columns read
// from the line exactly as search reads them (auditlog::index_fields), and
// the line itself, byte for byte, as bytea: the contract returns each line
// as appended, which jsonb does not keep (it reorders keys, drops
// whitespace and refuses \u0000). Ad hoc JSON queries use
// convert_from(line, 'UTF8')::jsonb. Indexes: the key (time ranges and
// paging, forward and backward), sid (one session's events) and a BRIN on
// time (retention deletes, range scans of a very large table).
//
// Writes: a buffered append waits in memory for the flusher (every
// flush_interval) or a sync append; each flush is one transaction with one
// binary COPY of every pending row, so a batch is stored whole or not at
// all and thousands of events cost one commit. Sync appends that arrive
// while a transaction is under way are written together in the next one
// (group commit: one fsync for many nodes' batches). Past max_pending_bytes,
// appends are refused (resource_exhausted) and counted: the relay then
// keeps the node's events in its spool and sends them again (back-pressure
// never blocks a session). A lost connection is opened again on the next
// write or search.
//
// Search: the query's time range, key, types, sid, user and login become
// an indexed WHERE with parameters (never SQL built from them), read in
// key order a batch at a time and handed to auditlog::LineSearch, which
// checks each line and makes the page and its continuation key as every
// other back end does.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "auditlog/store.hpp"
#include "pg/pg.hpp"

namespace vigil::pg {

inline constexpr int kAuditSchemaVersion = 1;

struct PgAuditOptions {
  std::string uri;  // postgresql://user@host:port/db?sslmode=...; no password (check_uri)
  std::chrono::milliseconds flush_interval{50};
  size_t max_pending_bytes = 64u << 20;
};

class PgAuditStore final : public auditlog::AuditStore {
 public:
  // Connects, applies the schema migrations this build knows (under an
  // advisory lock: several auth services may start at once), and refuses
  // a schema newer than this build (failed_precondition).
  static Result<std::unique_ptr<PgAuditStore>> open(PgAuditOptions options);
  ~PgAuditStore() override;

  Result<void> emit(std::string_view json_line,
                    auditlog::Durability durability = auditlog::Durability::buffered) override;
  Result<void> flush() override;
  Result<void> append(std::span<const std::string_view> lines,
                      auditlog::Durability durability = auditlog::Durability::buffered) override;
  Result<auditlog::Page> search(const auditlog::Query& query) override;

  // Retention: removes the events older than before_ns; how many.
  Result<uint64_t> delete_before(int64_t before_ns);
  // Events refused because too much was pending (the database unreachable
  // or slower than the ingest).
  uint64_t refused_events() const;

 private:
  struct Row {
    int64_t time_ns;
    auditlog::IndexFields fields;
    std::string line;  // without its '\n'
  };
  // A sync append waiting to be written (group commit, append()).
  struct SyncBatch {
    std::vector<Row> rows;
    bool done = false;  // mu_
    Result<void> result;
  };
  explicit PgAuditStore(PgAuditOptions options);
  Result<void> write_locked(std::vector<Row>& rows);  // write_mu_ held
  Result<Conn*> writer();
  Result<Conn*> reader();
  void flusher();

  const PgAuditOptions options_;
  std::mutex write_mu_;  // the writer connection; the order of flushes
  std::optional<Conn> write_conn_;
  std::mutex read_mu_;
  std::optional<Conn> read_conn_;

  mutable std::mutex mu_;  // what follows
  std::condition_variable cv_;
  std::vector<Row> pending_;
  size_t pending_bytes_ = 0;
  std::vector<std::shared_ptr<SyncBatch>> sync_batches_;
  uint64_t refused_ = 0;
  bool stopping_ = false;
  std::thread flusher_;
};

// The migrations, shared by the audit and cluster stores: applies
// `steps[v-1]` for every version v above the stored one for `component`,
// in one transaction under an advisory lock.
Result<void> migrate(Conn& conn, const std::string& component,
                     const std::vector<std::string>& steps);

}  // namespace vigil::pg
