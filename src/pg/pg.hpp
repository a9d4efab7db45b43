// A small PostgreSQL client on libpq for Vigil's PostgreSQL back ends
// (pg_audit_store.hpp, pg_cluster_store.hpp): one connection, statements
// with parameters only (never SQL built from data), binary COPY, LISTEN.
// libpq, not libpqxx: libpqxx reports every failure by throwing, and
// Vigil's expected failures are values (Result); the C API maps onto them
// directly.
//
// Credentials never travel in the connection string: a password in the
// URI (user:password@ or ?password=) is refused, the password comes from
// libpq's own places (PGPASSWORD, a password file named by PGPASSFILE or
// ?passfile=, ~/.pgpass), and every message that leaves this library is
// passed through redact() first.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace vigil::pg {

// Checks a connection URI (postgresql:// or postgres://): refuses one that
// carries a password (invalid_argument, saying where to put it instead,
// and not repeating it) or that libpq cannot parse.
Result<void> check_uri(std::string_view uri);

// Text with anything that looks like a password in a connection string
// replaced by "***": "user:secret@" in a URI, password=... as a key.
std::string redact(std::string_view text);

// One statement parameter. Text parameters are sent as text (numbers,
// names); bytes are sent in binary, exactly (NUL, any byte), for bytea.
struct Param {
  enum class Kind { null, text, bytes };
  Kind kind = Kind::null;
  std::string value;
  static Param text(std::string v) { return {Kind::text, std::move(v)}; }
  static Param bytes(std::string v) { return {Kind::bytes, std::move(v)}; }
  static Param int64(int64_t v) { return {Kind::text, std::to_string(v)}; }
  static Param null() { return {}; }
};

// The rows of a statement, in binary format: int8 columns via int64(),
// bytea and text via bytes().
class Rows {
 public:
  explicit Rows(PGresult* r) : r_(r, &PQclear) {}
  int size() const { return PQntuples(r_.get()); }
  bool is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col); }
  std::string_view bytes(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col))};
  }
  int64_t int64(int row, int col) const;  // an int8 column
  int32_t int32(int row, int col) const;  // an int4 column
  uint64_t affected() const;              // rows an INSERT/UPDATE/DELETE changed
  const PGresult* raw() const { return r_.get(); }

 private:
  std::unique_ptr<PGresult, decltype(&PQclear)> r_;
};

class Conn {
 public:
  // Connects (check_uri first). `what` names the store in messages
  // ("audit log (postgresql)"). unavailable when the server cannot be
  // reached, unauthenticated when it refuses the credentials.
  static Result<Conn> open(const std::string& uri, std::string what);
  Conn(Conn&&) noexcept = default;
  Conn& operator=(Conn&&) noexcept = default;

  Result<Rows> exec(const std::string& sql, const std::vector<Param>& params = {});
  // Runs a statement that takes no parameters and returns nothing (DDL, BEGIN...).
  Result<void> run(const std::string& sql);
  // COPY ... FROM STDIN (FORMAT binary) with the rows' encoded tuples
  // (CopyWriter below), all or nothing when inside a transaction.
  Result<void> copy_in(const std::string& copy_sql, std::string_view data);

  // LISTEN on a channel, then wait up to `timeout` for notifications:
  // their payloads (empty when none came). unavailable when the connection
  // is lost.
  Result<void> listen(const std::string& channel);
  Result<std::vector<std::string>> wait_notifications(std::chrono::milliseconds timeout);

  // Whether the connection is still good (after a failure: reconnect).
  bool ok() const { return PQstatus(c_.get()) == CONNECTION_OK; }
  const std::string& what() const { return what_; }
  PGconn* raw() { return c_.get(); }

 private:
  Conn(PGconn* c, std::string what) : c_(c, &PQfinish), what_(std::move(what)) {}
  Error fail(std::string_view doing, const PGresult* r = nullptr) const;
  std::unique_ptr<PGconn, decltype(&PQfinish)> c_;
  std::string what_;
};

// The binary COPY format: a header, tuples, a trailer.
class CopyWriter {
 public:
  CopyWriter();
  void begin_tuple(int16_t fields);
  void null();
  void int64(int64_t v);
  void bytes(std::string_view v);
  // The data with its trailer; the writer is spent.
  std::string finish();

 private:
  void be16(uint16_t v);
  void be32(uint32_t v);
  std::string buf_;
};

}  // namespace vigil::pg
