// The SQLite back end of the cluster store: one file in the auth service's
// data_dir, created 0600 (it holds password hashes and TOTP secrets), WAL,
// synchronous=FULL, a versioned schema (schema_migrations) and an
// application_id that tells Vigil's database from any other file. Every
// statement is prepared; each connection is used under a mutex, and several
// processes may open the same file (SQLite's locks, a busy timeout).
#pragma once

#include <memory>
#include <string>

#include "cluster/store.hpp"

namespace vigil::cluster {

inline constexpr int kSqliteSchemaVersion = 1;
inline constexpr int32_t kSqliteApplicationId = 0x5647434c;  // "VGCL"

struct SqliteOptions {
  int busy_timeout_ms = 10'000;  // how long a writer waits for another's lock
};

// Opens (or creates) the database at path. Refuses a symlink, a file open
// to group or others, a file that is not SQLite, an SQLite database of
// another program, and a schema newer than this build knows.
Result<std::unique_ptr<Backend>> open_sqlite(const std::string& path, SqliteOptions options = {});

}  // namespace vigil::cluster
