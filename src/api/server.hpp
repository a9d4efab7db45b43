// The cluster's HTTPS API server: HTTP/1.1 over TLS 1.3 on Boost.Beast,
// feeding an api::Router.
//
// Threads: ONE thread runs the io_context and does every socket read and
// write for every connection (no thread per connection: thousands of nodes
// keep a connection each). Handlers may block (argon2id, SQLite), so they
// run on a fixed pool of worker threads; a handler's reply is posted back
// to the I/O thread. Requests wait for a worker in a bounded queue; when it
// is full the request is answered 503 at once, on the I/O thread. Routes
// that wait on the disk (RouteOptions::waits_on_disk: a synced audit write
// takes milliseconds and no CPU) run on a second pool of their own
// (disk_workers), so they never hold the workers that answer heartbeats.
//
// What the server did is counted (ServerCounters: every reason it closes a
// connection has its own counter) and logged, one line, at most once per
// counters_log_period when something changed and once at the end of run():
// at info level, or at warning level when the server cut connections or
// refused requests (closed_by_server() or queue_full moved) since the
// line before, so that `vigil start` (warnings by default) shows it.
//
// Per connection: TLS handshake (bounded in time), then requests one after
// another (keep-alive). Each request head is read within read_timeout of
// its first byte (a slowloris client is cut), bounded in size (431); the
// route is matched before the body is read, so the route's max_body is
// enforced from Content-Length (413) and while reading. A connection that
// waits for its next request longer than idle_timeout is closed.
//
// Identity: a client certificate, when presented, is checked after the
// handshake with ca::verify_tls_peer(..., TlsUsage::client) against the
// trusted CAs and the cluster name. One that fails is never taken as
// anonymous: every request on that connection is answered 401 with the
// refusal's reason. Without a certificate, a port with
// ClientCertificates::required answers 401; one with optional passes the
// request on with no identity (the handler decides what anonymous may do).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/router.hpp"
#include "ca/key.hpp"
#include "ca/tls_ca.hpp"
#include "common/log.hpp"
#include "common/result.hpp"

namespace vigil::api {

enum class ClientCertificates : uint8_t { required, optional };

struct ServerOptions {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  uint16_t port = 0;                   // 0: any free port (see Server::port())

  // The server's identity: its certificate, the cluster CA certificate sent
  // after it (clients in pin mode check the pin on it), its key. The key is
  // read during listen() only.
  ca::TlsCertificate certificate{nullptr};
  ca::TlsCertificate ca_certificate{nullptr};
  const ca::PrivateKey* key = nullptr;

  // How clients are checked.
  ClientCertificates client_certificates = ClientCertificates::required;
  std::vector<ca::TlsCertificate> trusted;  // the cluster's TLS CA certificates (rotation: several)
  std::string cluster;
  std::function<int64_t()> clock;  // unix seconds; default: the system clock
  // The proxy's web port: read the browser session cookie and the CSRF
  // header into Peer::web_session/web_csrf. Off (the auth service's own
  // port): a cookie is never read there, so a browser session acts only
  // through the web port.
  bool browser_sessions = false;

  // Threads and queue.
  size_t workers = 2;
  size_t queue_depth = 256;  // requests waiting for a worker; beyond: 503
  // Routes that wait on the disk (RouteOptions::waits_on_disk). Their
  // threads sleep in fdatasync, not on a core: four let four batches share
  // the disk while the workers above go on; 0 runs them on the workers.
  size_t disk_workers = 4;
  size_t disk_queue_depth = 256;

  // The counters' log line: its name ("auth API 0.0.0.0:3025"; default
  // "api server ADDRESS:PORT"), how often at most (when they changed), and
  // where it goes (default: log::write).
  std::string name;
  std::chrono::milliseconds counters_log_period{60'000};
  std::function<void(log::Level, std::string_view)> log;

  // Bounds.
  size_t max_connections = 20000;  // beyond: closed at once, counted
  size_t max_head = 16 * 1024;     // request line + headers (431 beyond)
  size_t max_json_depth = 64;      // nesting of a JSON body (400 beyond)
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds read_timeout{30'000};   // a request, from its first byte to its end
  std::chrono::milliseconds write_timeout{30'000};  // a response
  std::chrono::milliseconds idle_timeout{120'000};  // keep-alive: waiting for the next request
  std::chrono::milliseconds grace{5'000};           // stop(): time left to requests in flight
};

// What the server has done, readable at any time from any thread.
struct ServerCounters {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;  // beyond max_connections
  uint64_t connections_open = 0;
  uint64_t handshake_failures = 0;   // TLS failed or timed out (both: closed without an answer)
  uint64_t handshake_timeouts = 0;   // of which: not done within handshake_timeout
  uint64_t accept_errors = 0;        // accept() failed (out of descriptors): retried after 100 ms
  uint64_t certificate_refusals = 0; // connections whose client certificate failed the check
  uint64_t read_timeouts = 0;        // connections cut for a request read too slowly
  uint64_t idle_closes = 0;          // keep-alive connections closed for idleness
  uint64_t read_errors = 0;          // connections cut for a read that failed otherwise (TLS, HTTP framing)
  uint64_t write_failures = 0;       // answers that could not be written (error or write_timeout)
  uint64_t peer_closes = 0;          // connections the client closed (or reset) between requests
  uint64_t queue_full = 0;           // requests answered 503 because every worker was busy
  uint64_t queue_waiting = 0;        // requests waiting for a worker now
  uint64_t requests_2xx = 0, requests_3xx = 0, requests_4xx = 0, requests_5xx = 0;
  uint64_t requests_other = 0;       // 1xx

  // Connections the server closed without an answer or before the client
  // was done: handshakes, certificate refusals excluded (those get a 401),
  // read timeouts and errors, idle closes, failed writes, refusals at the
  // connection limit.
  uint64_t closed_by_server() const {
    return connections_refused + handshake_failures + read_timeouts + idle_closes + read_errors + write_failures;
  }
};

class Server {
 public:
  // Binds and listens; nothing is accepted until run() or start().
  // The router must outlive the server.
  static Result<std::unique_ptr<Server>> listen(ServerOptions options, const Router& router);
  ~Server();  // stops (as stop()) and joins
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;

  // Serves on the calling thread until stop() has finished.
  void run();
  // Serves on a thread of its own.
  void start();
  // From any thread, any number of times: stop accepting, let requests in
  // flight finish within options.grace, then close every connection.
  // Returns at once; run() returns (or the start() thread ends) when done.
  void stop();
  // stop(), then waits for the thread start() made.
  void join();

  ServerCounters counters() const;
  // The counters as the server logs them: "NAME: connections accepted=..."
  std::string counters_line() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One line of counters, "name: connections accepted=N open=N ...".
std::string format_counters(std::string_view name, const ServerCounters& c);

// Request-target helpers (exposed for tests and the client).
// Percent-decodes a path segment or query part; nullopt for a bad escape
// ("%" not followed by two hex digits) or a decoded NUL.
std::optional<std::string> percent_decode(std::string_view text);
// Percent-encodes all but RFC 3986's unreserved characters.
std::string percent_encode(std::string_view text);
// "/a%20b/c?x=1&y=2" into its decoded path and query; an Error
// (invalid_argument) saying what is wrong: a bad escape, an encoded "/" in
// a segment, a query name given twice.
struct Target {
  std::string path;
  std::map<std::string, std::string> query;
};
Result<Target> parse_target(std::string_view target);
// Whether the bytes are well-formed UTF-8 (no overlongs, no surrogates).
bool valid_utf8(std::string_view text);
// The browser session's cookie (the __Host- prefix: the browser keeps it
// only when set Secure, Path=/, without Domain, so no sibling host can
// plant one) and the value of `name` in a Cookie header ("a=1; b=2");
// nullopt when absent, "" when named more than once (refused as no
// session, never one of them picked).
inline constexpr std::string_view kSessionCookie = "__Host-vigil_session";
std::optional<std::string> cookie_value(std::string_view header, std::string_view name);
// The deepest nesting of arrays and objects in JSON text (strings skipped),
// counted without recursion; stops counting at limit + 1.
size_t json_depth(std::string_view text, size_t limit);

}  // namespace vigil::api
