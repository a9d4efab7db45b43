// The cluster state on PostgreSQL (storage.type: postgresql, conn_string).
// One table of records (kind, name, revision, expires, data), names and
// data as bytea (any byte, compared and sorted bytewise, as SQLite does).
// Every write is one statement or one transaction (put_many), so it is
// whole or not at all, and a compare-and-swap is one UPDATE ... WHERE
// revision = $n: several auth services on one database see each other's
// writes at once and never lose one. The schema is versioned (vigil_schema,
// shared with the audit store) and migrated at start under an advisory lock.
//
// Change notification: a trigger NOTIFYs channel vigil_cluster with the kind
// of every record written, in the writer's transaction (delivered when it
// commits, once per kind and transaction). A ChangeWatcher (its own
// connection, LISTEN) hands them to an auth service, which drops what it
// holds in memory of that kind, so a role, user or node removal made
// through one auth service is in force on the others within a second.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cluster/store.hpp"
#include "pg/pg.hpp"

namespace vigil::pg {

inline constexpr int kClusterSchemaVersion = 1;
inline constexpr const char* kClusterChannel = "vigil_cluster";

Result<std::unique_ptr<cluster::Backend>> open_postgres_cluster(const std::string& uri);

class ChangeWatcher {
 public:
  static Result<std::unique_ptr<ChangeWatcher>> open(const std::string& uri);
  // The kinds written since the last call (each once), waiting up to
  // timeout for the first. After a lost connection it connects again and
  // returns {"*"}: anything may have changed meanwhile.
  Result<std::vector<std::string>> wait(std::chrono::milliseconds timeout);

 private:
  explicit ChangeWatcher(std::string uri) : uri_(std::move(uri)) {}
  std::string uri_;
  std::optional<Conn> conn_;
};

}  // namespace vigil::pg
