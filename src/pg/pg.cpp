#include "pg/pg.hpp"

#include "common/log.hpp"

#include <arpa/inet.h>
#include <poll.h>

#include <algorithm>
#include <cstring>
#include <regex>

namespace vigil::pg {
namespace {

// What kind of failure a SQLSTATE is (PostgreSQL's appendix A classes).
Errc errc_of_sqlstate(std::string_view state) {
  if (state == "23505") return Errc::already_exists;
  if (state == "40001" || state == "40P01") return Errc::unavailable;  // retry the transaction
  if (state.substr(0, 2) == "08" || state.substr(0, 3) == "57P") return Errc::unavailable;
  if (state.substr(0, 2) == "28") return Errc::unauthenticated;
  if (state.substr(0, 2) == "53") return Errc::resource_exhausted;
  if (state.substr(0, 2) == "22") return Errc::invalid_argument;
  if (state.substr(0, 2) == "42") return Errc::failed_precondition;  // schema not as expected
  return Errc::internal;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string redact(std::string_view text) {
  // user:password@ in a URI (the password ends at the last '@' before the
  // host), and password=value as a key of a URI's query or a key/value
  // connection string.
  static const std::regex userinfo(R"(([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@)",
                                   std::regex::icase);
  static const std::regex key(R"((password\s*=\s*)('[^']*'|[^&\s]*))", std::regex::icase);
  std::string s = std::regex_replace(std::string(text), userinfo, "$1:***@");
  return std::regex_replace(s, key, "$1***");
}

Result<void> check_uri(std::string_view uri) {
  const std::string u(uri);
  if (u.rfind("postgresql://", 0) != 0 && u.rfind("postgres://", 0) != 0)
    return Error::of(Errc::invalid_argument,
                     "\"" + redact(u) + "\" is not a PostgreSQL URI (postgresql://user@host:port/db)");
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(u.c_str(), &err);
  if (!opts) {
    std::string why = err ? trim(err) : "cannot parse it";
    PQfreemem(err);
    return Error::of(Errc::invalid_argument,
                     "PostgreSQL URI \"" + redact(u) + "\": " + redact(why));
  }
  bool has_password = false;
  for (PQconninfoOption* o = opts; o->keyword; ++o)
    if (std::strcmp(o->keyword, "password") == 0 && o->val && *o->val) has_password = true;
  PQconninfoFree(opts);
  if (has_password)
    return Error::of(Errc::invalid_argument,
                     "PostgreSQL URI \"" + redact(u) +
                         "\" carries a password: remove it and put it in a password file "
                         "(?passfile=/path, or PGPASSFILE; lines host:port:db:user:password, "
                         "mode 0600) or PGPASSWORD, so it never appears in a config or a log");
  return {};
}

int64_t Rows::int64(int row, int col) const {
  uint64_t v = 0;
  std::memcpy(&v, PQgetvalue(r_.get(), row, col), sizeof v);
  return static_cast<int64_t>(be64toh(v));
}

int32_t Rows::int32(int row, int col) const {
  uint32_t v = 0;
  std::memcpy(&v, PQgetvalue(r_.get(), row, col), sizeof v);
  return static_cast<int32_t>(ntohl(v));
}

uint64_t Rows::affected() const {
  const char* n = PQcmdTuples(r_.get());
  return n && *n ? std::strtoull(n, nullptr, 10) : 0;
}

Result<Conn> Conn::open(const std::string& uri, std::string what) {
  if (auto r = check_uri(uri); !r) return r.error();
  // A server that does not answer (a dropped packet, a dead host) is given
  // 10 s unless the URI says otherwise: the URI is expanded in place of
  // dbname, after connect_timeout, so its own connect_timeout wins.
  const char* keys[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {"10", uri.c_str(), nullptr};
  PGconn* c = PQconnectdbParams(keys, values, 1);
  if (!c) return Error::of(Errc::resource_exhausted, what + ": out of memory connecting");
  Conn conn(c, std::move(what));
  // The server's notices (a connection terminated by an administrator...)
  // go to the log, redacted, not straight to stderr.
  PQsetNoticeProcessor(
      c, [](void*, const char* message) { log::warn("postgresql: " + redact(trim(message))); },
      nullptr);
  if (PQstatus(c) != CONNECTION_OK) {
    const std::string msg = trim(PQerrorMessage(c));
    const bool auth = msg.find("authentication") != std::string::npos ||
                      msg.find("password") != std::string::npos;
    return Error::of(auth ? Errc::unauthenticated : Errc::unavailable,
                     conn.what_ + ": cannot connect to " + redact(uri) + ": " + redact(msg) +
                         (auth ? " (the password comes from PGPASSWORD, PGPASSFILE or "
                                 "?passfile=; check it and pg_hba.conf)"
                               : " (is the server running and reachable?)"));
  }
  // Every statement's time is bounded: a stuck lock or server cannot hold
  // an auth service's thread forever.
  if (auto r = conn.run("SET statement_timeout = '30s'; SET lock_timeout = '10s'; "
                        "SET client_min_messages = warning");
      !r)
    return r.error();
  return conn;
}

Error Conn::fail(std::string_view doing, const PGresult* r) const {
  std::string state;
  std::string msg;
  if (r) {
    if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) state = s;
    if (const char* m = PQresultErrorMessage(r)) msg = trim(m);
  }
  if (msg.empty()) msg = trim(PQerrorMessage(c_.get()));
  Errc code = state.empty() ? Errc::unavailable : errc_of_sqlstate(state);
  if (PQstatus(c_.get()) != CONNECTION_OK) code = Errc::unavailable;
  return Error::of(code, what_ + ": " + std::string(doing) + ": " + redact(msg) +
                             (state.empty() ? "" : " (SQLSTATE " + state + ")"));
}

Result<Rows> Conn::exec(const std::string& sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  values.reserve(params.size());
  for (const Param& p : params) {
    values.push_back(p.kind == Param::Kind::null ? nullptr : p.value.data());
    lengths.push_back(static_cast<int>(p.value.size()));
    formats.push_back(p.kind == Param::Kind::bytes ? 1 : 0);
  }
  // Text parameters go as C strings: one holding a NUL would be cut there,
  // so it is refused (names and numbers never hold one; bytes go binary).
  for (const Param& p : params)
    if (p.kind == Param::Kind::text && p.value.find('\0') != std::string::npos)
      return Error::of(Errc::invalid_argument, what_ + ": a text parameter holds a NUL byte");
  PGresult* r = PQexecParams(c_.get(), sql.c_str(), static_cast<int>(params.size()), nullptr,
                             values.data(), lengths.data(), formats.data(), 1);
  Rows rows(r);
  const auto st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return fail("statement failed", r);
  return rows;
}

Result<void> Conn::run(const std::string& sql) {
  // Several statements in one string run in order; the first that fails
  // ends it, and its result is the one returned.
  Rows r(PQexec(c_.get(), sql.c_str()));
  const auto st = PQresultStatus(r.raw());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return fail("statement failed", r.raw());
  return {};
}

Result<void> Conn::copy_in(const std::string& copy_sql, std::string_view data) {
  {
    Rows start(PQexec(c_.get(), copy_sql.c_str()));
    if (PQresultStatus(start.raw()) != PGRES_COPY_IN) return fail("COPY", start.raw());
  }
  constexpr size_t kChunk = 1 << 20;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    const size_t n = std::min(kChunk, data.size() - off);
    if (PQputCopyData(c_.get(), data.data() + off, static_cast<int>(n)) != 1) {
      Error e = fail("COPY");
      while (PGresult* r = PQgetResult(c_.get())) PQclear(r);
      return e;
    }
  }
  if (PQputCopyEnd(c_.get(), nullptr) != 1) return fail("COPY");
  std::optional<Error> error;
  while (PGresult* r = PQgetResult(c_.get())) {
    Rows rows(r);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && !error) error = fail("COPY", r);
  }
  if (error) return *error;
  return {};
}

Result<void> Conn::listen(const std::string& channel) {
  char* quoted = PQescapeIdentifier(c_.get(), channel.data(), channel.size());
  if (!quoted) return fail("LISTEN");
  const std::string sql = std::string("LISTEN ") + quoted;
  PQfreemem(quoted);
  return run(sql);
}

Result<std::vector<std::string>> Conn::wait_notifications(std::chrono::milliseconds timeout) {
  std::vector<std::string> out;
  auto drain = [&] {
    while (PGnotify* n = PQnotifies(c_.get())) {
      out.emplace_back(n->extra ? n->extra : "");
      PQfreemem(n);
    }
  };
  if (!PQconsumeInput(c_.get())) return fail("waiting for notifications");
  drain();
  if (!out.empty()) return out;
  pollfd p{PQsocket(c_.get()), POLLIN, 0};
  if (p.fd < 0) return fail("waiting for notifications");
  int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (n < 0 && errno != EINTR) return Error::sys(what_ + ": poll");
  if (n > 0) {
    if (!PQconsumeInput(c_.get())) return fail("waiting for notifications");
    drain();
  }
  return out;
}

CopyWriter::CopyWriter() {
  static constexpr char kSignature[] = "PGCOPY\n\377\r\n";  // 11 bytes with its NUL
  buf_.append(kSignature, 11);
  be32(0);  // flags
  be32(0);  // header extension length
}

void CopyWriter::be16(uint16_t v) {
  v = htons(v);
  buf_.append(reinterpret_cast<const char*>(&v), 2);
}
void CopyWriter::be32(uint32_t v) {
  v = htonl(v);
  buf_.append(reinterpret_cast<const char*>(&v), 4);
}
void CopyWriter::begin_tuple(int16_t fields) { be16(static_cast<uint16_t>(fields)); }
void CopyWriter::null() { be32(0xffffffffu); }
void CopyWriter::int64(int64_t v) {
  be32(8);
  uint64_t b = htobe64(static_cast<uint64_t>(v));
  buf_.append(reinterpret_cast<const char*>(&b), 8);
}
void CopyWriter::bytes(std::string_view v) {
  be32(static_cast<uint32_t>(v.size()));
  buf_.append(v);
}
std::string CopyWriter::finish() {
  be16(0xffff);
  return std::move(buf_);
}

}  // namespace vigil::pg
