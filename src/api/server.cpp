#include "api/server.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <cassert>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace vigil::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

// ---- request-target helpers ----

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string printable(std::string_view s, size_t max = 128) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return std::nullopt;
    out += c;
  }
  return out;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    bool unreserved = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
                      u == '-' || u == '.' || u == '_' || u == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

Result<Target> parse_target(std::string_view target) {
  if (target.empty() || target.front() != '/')
    return Error::of(Errc::invalid_argument,
                     "the request target must be a path starting with '/' (origin form), not '" +
                         printable(target) + "'");
  size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  std::string_view raw_query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  if (raw_path.find('#') != std::string_view::npos || raw_query.find('#') != std::string_view::npos)
    return Error::of(Errc::invalid_argument, "the request target may not hold a fragment ('#')");

  Target out;
  // Decode each segment on its own: an encoded "/" must not make new
  // segments (and so reach another route), an encoded "." or ".." must not
  // walk the path. Router::match refuses empty, "." and ".." segments.
  size_t start = 1;
  out.path = "/";
  if (raw_path.size() > 1) {
    out.path.clear();
    while (true) {
      size_t end = raw_path.find('/', start);
      std::string_view seg = raw_path.substr(start, end == std::string_view::npos ? std::string_view::npos
                                                                                   : end - start);
      auto decoded = percent_decode(seg);
      if (!decoded)
        return Error::of(Errc::invalid_argument,
                         "the path segment '" + printable(seg) +
                             "' has a bad percent-escape (use %XX with two hex digits; no %00)");
      if (decoded->find('/') != std::string::npos)
        return Error::of(Errc::invalid_argument,
                         "the path segment '" + printable(seg) + "' holds an encoded '/'; names may not contain '/'");
      if (*decoded == "." || *decoded == "..")
        return Error::of(Errc::invalid_argument, "the path may not hold '.' or '..' segments");
      out.path += '/';
      out.path += *decoded;
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
  }
  if (raw_query.empty()) return out;
  size_t pos = 0;
  while (pos <= raw_query.size()) {
    size_t amp = raw_query.find('&', pos);
    std::string_view part = raw_query.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    if (!part.empty()) {
      size_t eq = part.find('=');
      auto name = percent_decode(part.substr(0, eq));
      auto value = percent_decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
      if (!name || !value)
        return Error::of(Errc::invalid_argument,
                         "the query part '" + printable(part) +
                             "' has a bad percent-escape (use %XX with two hex digits; no %00)");
      if (name->empty())
        return Error::of(Errc::invalid_argument, "the query part '" + printable(part) + "' has no name");
      if (!out.query.emplace(*name, *value).second)
        return Error::of(Errc::invalid_argument,
                         "the query names '" + printable(*name) + "' twice; give each name once");
    }
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  return out;
}

bool valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size(), i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

std::optional<std::string> cookie_value(std::string_view header, std::string_view name) {
  std::optional<std::string> found;
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t end = header.find_first_of(";,", pos);
    std::string_view part = header.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
    while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
    size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) {
      if (found) return std::string();  // twice: neither is taken
      found = std::string(part.substr(eq + 1));
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return found;
}

size_t json_depth(std::string_view text, size_t limit) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// ---- the worker pool ----

namespace {

class WorkerPool {
 public:
  WorkerPool(size_t threads, size_t depth) : depth_(depth) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~WorkerPool() { stop(); }

  // False when depth jobs already wait.
  bool submit(std::function<void()> job) {
    std::lock_guard lock(mu_);
    if (stopped_ || queue_.size() >= depth_) return false;
    queue_.push_back(std::move(job));
    cv_.notify_one();
    return true;
  }

  size_t waiting() {
    std::lock_guard lock(mu_);
    return queue_.size();
  }

  // Jobs not yet started are dropped; running ones finish; threads joined.
  void stop() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      dropped.swap(queue_);
      cv_.notify_all();
    }
    dropped.clear();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  void loop() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopped_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }

  size_t depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

int verify_accept_any(X509_STORE_CTX*, void*) {
  // The client certificate is checked after the handshake by
  // ca::verify_tls_peer, so that a bad one is answered 401 with its
  // reason instead of a bare TLS alert.
  return 1;
}

}  // namespace

// ---- the server ----

class Connection;

struct Server::Impl {
  bool destroying = false;  // set first in ~Impl: connections dropped by the io_context must not touch the timer
  ServerOptions options;
  const Router& router;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;  // I/O thread only
  asio::ssl::context ssl{asio::ssl::context::tls_server};
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer grace_timer{io};
  asio::steady_timer accept_retry{io};
  asio::steady_timer counters_timer{io};
  ServerCounters logged;  // what the last counters line said (I/O thread)
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  WorkerPool pool;
  std::optional<WorkerPool> disk_pool;  // RouteOptions::waits_on_disk (none: on `pool`)
  std::atomic<bool> stopping{false};
  bool stop_begun = false;  // I/O thread
  uint16_t bound_port = 0;
  std::thread thread;
  std::mutex run_mu;

  std::atomic<uint64_t> accepted{0}, refused{0}, open{0}, handshake_failures{0}, cert_refusals{0},
      read_timeouts{0}, idle_closes{0}, accept_errors{0}, queue_full{0}, s2{0}, s3{0}, s4{0}, s5{0}, s_other{0},
      handshake_timeouts{0}, read_errors{0}, write_failures{0}, peer_closes{0};

  Impl(ServerOptions o, const Router& r)
      : options(std::move(o)), router(r), pool(options.workers, options.queue_depth) {
    if (options.disk_workers > 0) disk_pool.emplace(options.disk_workers, options.disk_queue_depth);
  }
  ~Impl() {
    destroying = true;
    pool.stop();
    if (disk_pool) disk_pool->stop();
  }
  void stop_pools() {
    pool.stop();
    if (disk_pool) disk_pool->stop();
  }
  bool submit(bool waits_on_disk, std::function<void()> job) {
    if (waits_on_disk && disk_pool) return disk_pool->submit(std::move(job));
    return pool.submit(std::move(job));
  }
  ServerCounters snapshot();
  std::string name() const {
    return options.name.empty() ? "api server " + options.address + ":" + std::to_string(bound_port)
                                : options.name;
  }
  void log_counters(const ServerCounters& c) {
    std::string line = format_counters(name(), c);
    bool cut = c.closed_by_server() > logged.closed_by_server() || c.queue_full > logged.queue_full ||
               c.accept_errors > logged.accept_errors;
    log::Level level = cut ? log::Level::warn : log::Level::info;
    if (options.log) options.log(level, line);
    else log::write(level, line);
    logged = c;
  }
  // Every counters_log_period: one line when a counter moved since the last.
  void schedule_counters_log();

  int64_t now() const {
    return options.clock ? options.clock() : static_cast<int64_t>(std::time(nullptr));
  }
  void count_status(int status) {
    if (status >= 500) ++s5;
    else if (status >= 400) ++s4;
    else if (status >= 300) ++s3;
    else if (status >= 200) ++s2;
    else ++s_other;
  }
  void do_accept();
  void begin_stop();
  void forget(Connection* c);
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server::Impl& server, tcp::socket socket)
      : server_(server), stream_(std::move(socket), server.ssl) {}
  ~Connection() { server_.forget(this); }

  void start() {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    if (!ec) peer_.address = ep.address().to_string() + ":" + std::to_string(ep.port());
    beast::get_lowest_layer(stream_).expires_after(server_.options.handshake_timeout);
    stream_.async_handshake(asio::ssl::stream_base::server,
                            [self = shared_from_this()](beast::error_code e) { self->on_handshake(e); });
  }

  // stop(): an idle connection closes now, a busy one after its answer.
  void on_stop() {
    if (state_ == State::idle) close_now();
  }
  void close_now() {
    beast::error_code ec;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(stream_).close();
  }

 private:
  enum class State { handshake, idle, reading, busy, writing, closing };

  void on_handshake(beast::error_code ec) {
    if (ec) {
      ++server_.handshake_failures;
      if (ec == beast::error::timeout) ++server_.handshake_timeouts;
      return close_now();
    }
    beast::get_lowest_layer(stream_).expires_never();
    check_client_certificate();
    // The first request is waited for as every later one is: idle_timeout
    // until its first byte, read_timeout from there. (read_head() here cut
    // every new connection whose first request came read_timeout after the
    // handshake: 6,870 nodes at 10,000, docs/benchmarks-scale.md.)
    wait_next();
  }

  void check_client_certificate() {
    const auto& o = server_.options;
    X509* cert = SSL_get0_peer_certificate(stream_.native_handle());
    if (!cert) {
      if (o.client_certificates == ClientCertificates::required)
        refusal_ = Error::of(Errc::unauthenticated,
                             "this API port requires a client certificate of the cluster '" + o.cluster +
                                 "'; log in (or join the node) to get one and call again with it");
      return;
    }
    auto checked = ca::verify_tls_peer(cert, o.trusted, o.cluster, ca::TlsUsage::client, server_.now());
    if (!checked) {
      ++server_.cert_refusals;
      Error e = checked.refusal().error();
      e.message += "; the certificate was not accepted and the call is not taken as anonymous: "
                   "log in again to get a certificate of the cluster '" + o.cluster + "'";
      refusal_ = std::move(e);
      return;
    }
    peer_.identity = checked.value();
    unsigned char* der = nullptr;
    int len = i2d_X509(cert, &der);
    if (len > 0) peer_.certificate_der.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }

  // Waits (idle_timeout) for the first byte of the next request.
  void wait_next() {
    if (server_.stopping) return close_gracefully();
    if (buffer_.size() == 0) buffer_.shrink_to_fit();
    if (buffer_.size() > 0) {  // pipelined: already here
      state_ = State::reading;
      return read_head();
    }
    state_ = State::idle;
    beast::get_lowest_layer(stream_).expires_after(server_.options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->buffer_.commit(n);
      if (ec) {
        if (ec == beast::error::timeout) ++self->server_.idle_closes;
        else self->count_read_end(ec);
        return self->close_now();
      }
      self->state_ = State::reading;
      self->read_head();
    });
  }

  void read_head() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.options.max_head));
    parser_->body_limit(std::numeric_limits<uint64_t>::max());  // set per route after the head
    beast::get_lowest_layer(stream_).expires_after(server_.options.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_head(ec); });
  }

  static Reply error_reply(int status, Errc code, std::string message) {
    Reply r = Reply::json(error_body(Error::of(code, std::move(message))), status);
    return r;
  }

  // A JSON body checked (UTF-8, nesting) and parsed into q.json; the 400 to
  // answer when it is not acceptable. On a worker thread.
  std::optional<Reply> parse_json_body(Request& q) const {
    if (q.content_type != "application/json" || q.body.empty()) return std::nullopt;
    if (!valid_utf8(q.body))
      return error_reply(400, Errc::invalid_argument, "the JSON body is not valid UTF-8");
    size_t limit = server_.options.max_json_depth;
    if (json_depth(q.body, limit) > limit)
      return error_reply(400, Errc::invalid_argument,
                         "the JSON body nests deeper than " + std::to_string(limit) + " levels");
    q.json = nlohmann::json::parse(q.body, nullptr, /*allow_exceptions=*/false);
    if (q.json.is_discarded()) return error_reply(400, Errc::invalid_argument, "the body is not valid JSON");
    return std::nullopt;
  }

  // A read that ended otherwise than by a timeout: the client's doing
  // (it closed or reset), the server's stop, or a failure of the stream.
  void count_read_end(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
        ec == asio::error::connection_reset)
      ++server_.peer_closes;
    else if (ec != asio::error::operation_aborted)
      ++server_.read_errors;
  }

  bool read_error(beast::error_code ec) {
    if (ec == beast::error::timeout) {
      ++server_.read_timeouts;
      close_now();
      return true;
    }
    if (ec == http::error::header_limit) {
      send(error_reply(431, Errc::invalid_argument,
                       "the request head is larger than " + std::to_string(server_.options.max_head) +
                           " bytes; send fewer or shorter headers"),
           true);
      return true;
    }
    if (ec == http::error::body_limit) {
      send(error_reply(413, Errc::resource_exhausted,
                       "the request body is larger than this call takes (" + std::to_string(max_body_) +
                           " bytes)"),
           true);
      return true;
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
      count_read_end(ec);
      close_now();
      return true;
    }
    if (&ec.category() == &http::make_error_code(http::error::bad_target).category()) {
      send(error_reply(400, Errc::invalid_argument, "the request is not valid HTTP/1.1: " + ec.message()), true);
      return true;
    }
    ++server_.read_errors;
    close_now();
    return true;
  }

  void on_head(beast::error_code ec) {
    if (ec) {
      read_error(ec);
      return;
    }
    auto& head = parser_->get();
    std::string method(head.method_string());
    if (method != "GET" && method != "POST" && method != "PUT" && method != "DELETE")
      return send(error_reply(501, Errc::invalid_argument,
                              "the method '" + printable(method, 32) +
                                  "' is not implemented; Vigil's API takes GET, POST, PUT and DELETE"),
                  true);
    if (head.version() != 11)
      return send(error_reply(505, Errc::invalid_argument, "Vigil's API speaks HTTP/1.1 only"), true);
    if (refusal_) return send(Reply::json(error_body(*refusal_), 401), true);

    auto target = parse_target(head.target());
    if (!target) return send(Reply::json(error_body(target.error()), 400), true);
    auto m = server_.router.match(method, target->path);
    if (auto* reply = std::get_if<Reply>(&m)) return send(std::move(*reply), true);
    match_ = std::move(std::get<Router::Match>(m));
    max_body_ = match_.options.max_body;
    if (auto len = parser_->content_length(); len && *len > max_body_)
      return send(error_reply(413, Errc::resource_exhausted,
                              "the request body is " + std::to_string(*len) + " bytes; this call takes at most " +
                                  std::to_string(max_body_)),
                  true);
    parser_->body_limit(max_body_);
    request_.emplace();
    request_->method = std::move(method);
    request_->path = std::move(target->path);
    request_->query = std::move(target->query);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code e, size_t) { self->on_body(e); });
  }

  void on_body(beast::error_code ec) {
    if (ec) {
      read_error(ec);
      return;
    }
    beast::get_lowest_layer(stream_).expires_never();
    auto& msg = parser_->get();
    Request& q = *request_;
    for (const auto& field : msg) {
      std::string name = ascii_lower(field.name_string());
      auto [it, fresh] = q.headers.emplace(name, std::string(field.value()));
      if (!fresh) it->second += ", " + std::string(field.value());
    }
    std::string_view ct = msg[http::field::content_type];
    q.content_type = ascii_lower(ct.substr(0, ct.find(';')));
    while (!q.content_type.empty() && (q.content_type.back() == ' ' || q.content_type.back() == '\t'))
      q.content_type.pop_back();
    q.body = std::move(msg.body());
    keep_alive_ = msg.keep_alive();
    q.peer = peer_;
    if (auto it = q.headers.find("x-forwarded-for"); it != q.headers.end())
      q.peer.forwarded_for = it->second;
    if (auto it = q.headers.find("x-vigil-forwarded-certificate"); it != q.headers.end())
      q.peer.forwarded_certificate = it->second;
    if (auto it = q.headers.find("x-vigil-forwarded-session"); it != q.headers.end())
      q.peer.forwarded_session = it->second;
    if (auto it = q.headers.find("x-vigil-forwarded-csrf"); it != q.headers.end())
      q.peer.forwarded_csrf = it->second;
    if (server_.options.browser_sessions) {
      q.peer.web_port = true;
      if (auto it = q.headers.find("cookie"); it != q.headers.end())
        q.peer.web_session = cookie_value(it->second, kSessionCookie);
      if (auto it = q.headers.find("x-vigil-csrf"); it != q.headers.end())
        q.peer.web_csrf = it->second;
    }
    q.params = std::move(match_.params);
    parser_.reset();  // its header fields are copied out; an idle connection keeps none

    state_ = State::busy;
    auto work = asio::make_work_guard(server_.io);
    // The body is checked and parsed by the worker, not here: a large JSON
    // body (a route may take megabytes) must not hold the one I/O thread
    // every other connection is served by.
    bool queued = server_.submit(match_.options.waits_on_disk,
        [self = shared_from_this(), request = std::move(*request_), work = std::move(work)]() mutable {
          std::optional<Reply> bad = self->parse_json_body(request);
          Reply reply = bad ? std::move(*bad) : self->server_.router.dispatch(std::move(request));
          auto& io = self->server_.io;
          // The last reference is dropped on the I/O thread, never here.
          asio::post(io, [self = std::move(self), reply = std::move(reply)]() mutable {
            self->send(std::move(reply), false);
          });
          work.reset();
        });
    request_.reset();
    if (!queued) {
      ++server_.queue_full;
      send(error_reply(503, Errc::unavailable, "the server is busy; retry in a moment"), false);
    }
  }

  void send(Reply reply, bool close) {
    state_ = State::writing;
    bool keep = !close && keep_alive_ && !server_.stopping;
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(reply.status));
    res->set(http::field::server, "vigil");
    res->set(http::field::content_type, reply.content_type.empty() ? "application/json" : reply.content_type);
    res->set(http::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    for (auto& [name, value] : reply.headers) res->set(name, value);
    res->body() = std::move(reply.body);
    res->keep_alive(keep);
    res->prepare_payload();
    server_.count_status(reply.status);
    beast::get_lowest_layer(stream_).expires_after(server_.options.write_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep](beast::error_code ec, size_t) {
      if (ec) {
        ++self->server_.write_failures;
        return self->close_now();
      }
      if (!keep) return self->close_gracefully();
      self->wait_next();
    });
  }

  // Stops sending, then reads and drops what the client still sends (for a
  // short while), so that closing does not reset the connection before the
  // client has read the answer.
  void close_gracefully() {
    state_ = State::closing;
    auto& tcp_stream = beast::get_lowest_layer(stream_);
    beast::error_code ec;
    tcp_stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close_now();
    tcp_stream.expires_after(std::chrono::seconds(2));
    drain();
  }
  void drain() {
    beast::get_lowest_layer(stream_).async_read_some(
        asio::buffer(drain_buf_), [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->drained_ += n;
          if (ec || self->drained_ > (1u << 20)) return self->close_now();
          self->drain();
        });
  }

  Server::Impl& server_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<Request> request_;
  Router::Match match_;
  size_t max_body_ = 0;
  Peer peer_;
  std::optional<Error> refusal_;  // a certificate that failed, or none where one is required
  bool keep_alive_ = true;
  State state_ = State::handshake;
  char drain_buf_[4096];
  size_t drained_ = 0;

};

void Server::Impl::forget(Connection* c) {
  connections.erase(c);
  --open;
  if (!destroying && stop_begun && connections.empty()) grace_timer.cancel();
}

void Server::Impl::do_accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      if (connections.size() >= options.max_connections) {
        ++refused;
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        ++accepted;
        ++open;
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);  // small answers go out now, not after a delayed ACK
        auto c = std::make_shared<Connection>(*this, std::move(socket));
        connections.emplace(c.get(), c);
        c->start();
      }
    }
    if (ec) {
      // Out of descriptors (or another failure of accept): wait a moment
      // instead of spinning on the same error; the pending connection waits
      // in the backlog until a descriptor is freed.
      ++accept_errors;
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](beast::error_code e) {
        if (!e && acceptor.is_open()) do_accept();
      });
      return;
    }
    do_accept();
  });
}

void Server::Impl::begin_stop() {
  if (stop_begun) return;
  stop_begun = true;
  beast::error_code ec;
  acceptor.close(ec);
  accept_retry.cancel();
  std::vector<std::shared_ptr<Connection>> live;
  for (auto& [ptr, weak] : connections)
    if (auto c = weak.lock()) live.push_back(std::move(c));
  for (auto& c : live) c->on_stop();
  keep_running.reset();
  counters_timer.cancel();
  if (connections.empty()) return;
  grace_timer.expires_after(options.grace);
  grace_timer.async_wait([this](beast::error_code e) {
    if (e) return;  // every connection ended in time
    std::vector<std::shared_ptr<Connection>> rest;
    for (auto& [ptr, weak] : connections)
      if (auto c = weak.lock()) rest.push_back(std::move(c));
    for (auto& c : rest) c->close_now();
  });
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  stop();
  join();
}

Result<std::unique_ptr<Server>> Server::listen(ServerOptions options, const Router& router) {
  if (!options.key || !options.certificate.get() || !options.ca_certificate.get())
    return Error::of(Errc::invalid_argument, "the API server needs its certificate, the CA certificate and its key");
  if (options.trusted.empty() || options.cluster.empty())
    return Error::of(Errc::invalid_argument, "the API server needs the trusted CA certificates and the cluster name");
  if (options.workers == 0) return Error::of(Errc::invalid_argument, "the API server needs at least one worker");
  const ca::PrivateKey* key = options.key;
  auto impl = std::make_unique<Impl>(std::move(options), router);
  SSL_CTX* ctx = impl->ssl.native_handle();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_use_certificate(ctx, impl->options.certificate.get()) != 1 ||
      SSL_CTX_add1_chain_cert(ctx, impl->options.ca_certificate.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, key->get()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
    return Error::of(Errc::invalid_argument, "the API server's certificate and key do not go together");
  impl->options.key = nullptr;  // SSL_CTX holds its own reference
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx, verify_accept_any, nullptr);
  SSL_CTX_set_num_tickets(ctx, 0);
  // An idle keep-alive connection holds no TLS record buffers (thousands of
  // nodes keep one open each).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

  beast::error_code ec;
  auto address = asio::ip::make_address(impl->options.address, ec);
  if (ec)
    return Error::of(Errc::invalid_argument,
                     "the API listen address '" + impl->options.address + "' is not an IP address");
  tcp::endpoint ep(address, impl->options.port);
  std::string where = impl->options.address + ":" + std::to_string(impl->options.port);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Error{"cannot listen on " + where + ": " + ec.message() + " (is another server on that port?)",
                 ec.value(), Errc::unspecified};
  impl->bound_port = impl->acceptor.local_endpoint().port();
  impl->keep_running.emplace(impl->io.get_executor());
  impl->do_accept();
  impl->schedule_counters_log();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const { return impl_->bound_port; }

void Server::run() {
  std::lock_guard lock(impl_->run_mu);
  impl_->io.run();
  impl_->stop_pools();
  // Handlers the pool ran after the loop ended posted their replies;
  // dropping them here ends their connections.
  impl_->io.restart();
  impl_->io.poll();
  impl_->log_counters(impl_->snapshot());  // the last word, changed or not
}

void Server::start() {
  assert(!impl_->thread.joinable() && "start() called twice");
  impl_->thread = std::thread([this] { run(); });
}

void Server::stop() {
  if (impl_->stopping.exchange(true)) return;
  asio::post(impl_->io, [impl = impl_.get()] { impl->begin_stop(); });
}

void Server::join() {
  stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void Server::Impl::schedule_counters_log() {
  if (options.counters_log_period.count() <= 0) return;
  counters_timer.expires_after(options.counters_log_period);
  counters_timer.async_wait([this](beast::error_code e) {
    if (e || stop_begun) return;
    ServerCounters now = snapshot();
    // The gauges (open, waiting) move with the cumulative counters; a line
    // is written when one of those moved.
    ServerCounters a = now, b = logged;
    a.connections_open = b.connections_open = 0;
    a.queue_waiting = b.queue_waiting = 0;
    if (format_counters("", a) != format_counters("", b)) log_counters(now);
    schedule_counters_log();
  });
}

std::string format_counters(std::string_view name, const ServerCounters& c) {
  std::string out(name);
  auto add = [&](const char* key, uint64_t v) {
    out += ' ';
    out += key;
    out += '=';
    out += std::to_string(v);
  };
  out += ": connections";
  add("accepted", c.connections_accepted);
  add("open", c.connections_open);
  add("refused", c.connections_refused);
  add("accept_errors", c.accept_errors);
  out += "; closed by the server:";
  add("handshake_failures", c.handshake_failures);
  add("handshake_timeouts", c.handshake_timeouts);
  add("certificate_refusals", c.certificate_refusals);
  add("read_timeouts", c.read_timeouts);
  add("idle_closes", c.idle_closes);
  add("read_errors", c.read_errors);
  add("write_failures", c.write_failures);
  out += "; closed by clients:";
  add("peer_closes", c.peer_closes);
  out += "; requests";
  add("queue_full", c.queue_full);
  add("waiting", c.queue_waiting);
  add("2xx", c.requests_2xx);
  add("3xx", c.requests_3xx);
  add("4xx", c.requests_4xx);
  add("5xx", c.requests_5xx);
  add("1xx", c.requests_other);
  return out;
}

std::string Server::counters_line() const { return format_counters(impl_->name(), counters()); }

ServerCounters Server::counters() const { return impl_->snapshot(); }

ServerCounters Server::Impl::snapshot() {
  const Impl& i = *this;
  ServerCounters c;
  c.connections_accepted = i.accepted;
  c.connections_refused = i.refused;
  c.connections_open = i.open;
  c.handshake_failures = i.handshake_failures;
  c.certificate_refusals = i.cert_refusals;
  c.read_timeouts = i.read_timeouts;
  c.idle_closes = i.idle_closes;
  c.queue_full = i.queue_full;
  c.accept_errors = i.accept_errors;
  c.queue_waiting = pool.waiting() + (disk_pool ? disk_pool->waiting() : 0);
  c.handshake_timeouts = i.handshake_timeouts;
  c.read_errors = i.read_errors;
  c.write_failures = i.write_failures;
  c.peer_closes = i.peer_closes;
  c.requests_2xx = i.s2;
  c.requests_3xx = i.s3;
  c.requests_4xx = i.s4;
  c.requests_5xx = i.s5;
  c.requests_other = i.s_other;
  return c;
}

}  // namespace vigil::api
