// The HTTPS transport of the cluster's API over loopback: who the handler
// sees (mutual TLS, anonymous, refused certificates never anonymous), how
// the client trusts the server (CA, pin, insecure), the bounds (head, body,
// slow clients, JSON nesting, the worker queue, connections), the one I/O
// thread, errors keeping their kind across the wire, and stop().
// Certificates are made with src/ca; no timing assertions (bounds only
// keep a broken build from hanging).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <dirent.h>
#include <future>
#include <mutex>
#include <thread>

#include "../support/wait.hpp"
#include "api/client.hpp"
#include "api/server.hpp"
#include "ca/authority.hpp"

namespace vigil::api {
namespace {

using namespace std::chrono_literals;
using vigil::testing::eventually;

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

size_t thread_count() {
  size_t n = 0;
  DIR* d = opendir("/proc/self/task");
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

// A gate a handler waits on until the test opens it.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int entered = 0;
  void wait() {
    std::unique_lock lock(mu);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  bool wait_entered(int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 20s, [&] { return entered >= n; });
  }
};

// A bare TLS client, for requests api::Client would never send.
class RawTls {
 public:
  RawTls(uint16_t port, const ca::PrivateKey* key = nullptr, const ca::TlsCertificate* cert = nullptr) {
    // OpenSSL writes to the raw socket (an alert after the server closed it,
    // e.g. a connection a stop found waiting for its request): EPIPE, not
    // the death of the test process.
    signal(SIGPIPE, SIG_IGN);
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    if (key && cert) {
      SSL_CTX_use_certificate(ctx_, cert->get());
      SSL_CTX_use_PrivateKey(ctx_, key->get());
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    ok_ = SSL_connect(ssl_) == 1;
  }
  ~RawTls() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return ok_; }
  bool send(std::string_view data) {
    while (!data.empty()) {
      int n = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // One response (head + Content-Length body), or what came before the
  // connection ended.
  std::string response() {
    std::string out;
    char buf[4096];
    while (true) {
      size_t head_end = out.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t cl = out.find("Content-Length: ");
        size_t len = cl == std::string::npos ? 0 : std::stoul(out.substr(cl + 16));
        if (out.size() >= head_end + 4 + len) return out;
      }
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  // Whether bytes (or the end) can be read within ms.
  bool readable(int ms) {
    if (SSL_pending(ssl_) > 0) return true;
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
  }
  // True when the server closed the connection (bounded by SO_RCVTIMEO).
  bool closed_by_server() {
    char c;
    int n = SSL_read(ssl_, &c, 1);
    if (n > 0) return false;
    int err = SSL_get_error(ssl_, n);
    return err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL;
  }

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
};

int status_of(const std::string& response) {
  if (response.size() < 12 || response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = ca::CertAuthority::create(ca::CaType::tls, "purple", now());
    auto forger = ca::CertAuthority::create(ca::CaType::tls, "purple", now());  // same name, own key
    auto green = ca::CertAuthority::create(ca::CaType::tls, "green", now());
    auto server_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
    auto user_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
    ASSERT_TRUE(ca && forger && green && server_key && user_key);
    ca_.emplace(std::move(*ca));
    forger_.emplace(std::move(*forger));
    green_.emplace(std::move(*green));
    server_key_.emplace(std::move(*server_key));
    user_key_.emplace(std::move(*user_key));

    ca::TlsIssueRequest node;
    node.identity.kind = ca::TlsIdentityKind::node;
    node.identity.cluster = "purple";
    node.identity.name = "5e0c4b2a-8d7e-4f0e-9b1a-3c2d1e0f9a8b";
    node.identity.node_name = "auth";
    node.identity.addresses = {"127.0.0.1"};
    node.subject_public_key = server_key_->spki_der();
    node.now = now();
    node.ttl = 3600;
    auto server_cert = ca_->issue_tls(node);
    ASSERT_TRUE(server_cert) << server_cert.error().message;
    server_cert_ = *server_cert;
    alice_ = user_cert(*ca_, "purple", now(), 600);

    router_.add("GET", "/v1/whoami", [this](const Request& q) -> Result<Reply> {
      ++whoami_calls_;
      if (!q.peer.identity) return Reply::json({{"anonymous", true}});
      return Reply::json({{"name", q.peer.identity->name},
                          {"roles", q.peer.identity->roles},
                          {"der", q.peer.certificate_der.size()}});
    });
    RouteOptions echo;
    echo.max_body = 1 << 20;
    router_.add("POST", "/v1/echo", [](const Request& q) -> Result<Reply> {
      return Reply::json({{"json", q.json}, {"type", q.content_type}, {"size", q.body.size()}});
    }, echo);
    RouteOptions small;
    small.max_body = 1024;
    router_.add("POST", "/v1/small", [](const Request& q) -> Result<Reply> {
      return Reply::json({{"size", q.body.size()}});
    }, small);
    router_.add("GET", "/v1/users/:name", [](const Request& q) -> Result<Reply> {
      return Reply::json({{"user", q.param("name")}});
    });
    router_.add("GET", "/v1/users/me/roles", [](const Request&) -> Result<Reply> {
      return Reply::json({{"roles", "mine"}});
    });
    router_.add("GET", "/v1/query", [](const Request& q) -> Result<Reply> {
      return Reply::json(q.query);
    });
    router_.add("GET", "/v1/denied", [](const Request&) -> Result<Reply> {
      return Error::of(Errc::permission_denied, "the role 'auditor' may not do this; ask an admin");
    });
    router_.add("GET", "/v1/precondition", [](const Request&) -> Result<Reply> {
      return Error::of(Errc::failed_precondition, "the cluster is not initialized yet");
    });
    router_.add("GET", "/v1/block", [this](const Request&) -> Result<Reply> {
      gate_.wait();
      return Reply::json({{"done", true}});
    });
  }

  void TearDown() override {
    gate_.release();
    if (server_) server_->join();
  }

  ca::TlsCertificate user_cert(const ca::CertAuthority& authority, const std::string& cluster, int64_t at,
                               int64_t ttl) {
    ca::TlsIssueRequest r;
    r.identity.kind = ca::TlsIdentityKind::user;
    r.identity.cluster = cluster;
    r.identity.name = "alice@example.com";
    r.identity.roles = {"access"};
    r.identity.logins = {"root"};
    r.subject_public_key = user_key_->spki_der();
    r.now = at;
    r.ttl = ttl;
    auto c = authority.issue_tls(r);
    EXPECT_TRUE(c) << c.error().message;
    return c ? *c : ca::TlsCertificate(nullptr);
  }

  ServerOptions server_options(ClientCertificates mode = ClientCertificates::optional) {
    ServerOptions o;
    o.certificate = server_cert_;
    o.ca_certificate = ca_->trusted_tls_certificates().front();
    o.key = &*server_key_;
    o.client_certificates = mode;
    o.trusted = ca_->trusted_tls_certificates();
    o.cluster = "purple";
    return o;
  }

  void serve(ServerOptions o) {
    auto s = Server::listen(std::move(o), router_);
    ASSERT_TRUE(s) << s.error().message;
    server_ = std::move(*s);
    server_->start();
  }

  ClientOptions trusting() {
    ClientOptions o;
    o.address = "127.0.0.1:" + std::to_string(server_->port());
    o.trusted = ca_->trusted_tls_certificates();
    o.cluster = "purple";
    return o;
  }
  ClientOptions as_alice(const ca::TlsCertificate& cert) {
    ClientOptions o = trusting();
    o.key = &*user_key_;
    o.certificate = cert;
    return o;
  }

  std::unique_ptr<Client> connect(ClientOptions o) {
    auto c = Client::connect(std::move(o));
    EXPECT_TRUE(c) << c.error().message;
    return c ? std::move(*c) : nullptr;
  }

  std::optional<ca::CertAuthority> ca_, forger_, green_;
  std::optional<ca::PrivateKey> server_key_, user_key_;
  ca::TlsCertificate server_cert_{nullptr};
  ca::TlsCertificate alice_{nullptr};
  Router router_;
  std::atomic<int> whoami_calls_{0};
  // One worker, blocked on the gate by `first`, and `second` waiting in a
  // queue of one: the next request finds the pool full.
  void fill_the_pool(std::future<Result<nlohmann::json>>& first,
                     std::future<Result<nlohmann::json>>& second) {
    ServerOptions o = server_options();
    o.workers = 1;
    o.queue_depth = 1;
    serve(o);
    auto blocked = [this] {
      auto c = connect(trusting());
      return c ? c->call_json("GET", "/v1/block") : Result<nlohmann::json>(Error{"no connection"});
    };
    first = std::async(std::launch::async, blocked);
    ASSERT_TRUE(gate_.wait_entered(1));  // the one worker is blocked
    second = std::async(std::launch::async, blocked);
    ASSERT_TRUE(eventually([&] { return server_->counters().queue_waiting == 1; }));
  }

  Gate gate_;
  std::unique_ptr<Server> server_;
};

// ---- identity ----

TEST_F(HttpsTest, MutualTlsIdentityReachesTheHandler) {
  serve(server_options(ClientCertificates::required));
  auto c = connect(as_alice(alice_));
  ASSERT_TRUE(c);
  auto r = c->call_json("GET", "/v1/whoami");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)["name"], "alice@example.com");
  EXPECT_EQ((*r)["roles"], nlohmann::json({"access"}));
  EXPECT_EQ((*r)["der"], alice_.der().size());
  // The client saw the server's verified identity and its chain.
  ASSERT_TRUE(c->server_identity());
  EXPECT_EQ(c->server_identity()->node_name, "auth");
  EXPECT_EQ(c->chain().size(), 2u);
}

TEST_F(HttpsTest, NoCertificateIsAnonymousWhereOptional) {
  serve(server_options(ClientCertificates::optional));
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  auto r = c->call_json("GET", "/v1/whoami");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)["anonymous"], true);
}

TEST_F(HttpsTest, NoCertificateIsRefusedWhereRequired) {
  serve(server_options(ClientCertificates::required));
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  auto r = c->call_json("GET", "/v1/whoami");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), Errc::unauthenticated);
  EXPECT_NE(r.error().message.find("requires a client certificate"), std::string::npos) << r.error().message;
  EXPECT_EQ(whoami_calls_, 0);
}

// A certificate that fails is never taken as anonymous, even where
// anonymous calls are allowed.
TEST_F(HttpsTest, BadClientCertificatesAreRefusedNeverAnonymous) {
  serve(server_options(ClientCertificates::optional));
  std::string der = alice_.der();
  der[der.size() - 3] ^= 0x5a;  // in the signature
  auto tampered = ca::TlsCertificate::from_der(der);
  ASSERT_TRUE(tampered) << tampered.error().message;
  struct Case {
    const char* what;
    ca::TlsCertificate cert;
    const char* reason;
  } cases[] = {
      {"expired", user_cert(*ca_, "purple", now() - 7200, 600), "expired"},
      {"other cluster", user_cert(*green_, "green", now(), 600), "untrusted_ca"},
      {"self-made (a CA of the same name)", user_cert(*forger_, "purple", now(), 600), "untrusted_ca"},
      {"tampered", *tampered, "bad_signature"},
  };
  for (auto& k : cases) {
    SCOPED_TRACE(k.what);
    auto c = connect(as_alice(k.cert));
    ASSERT_TRUE(c);
    for (int i = 0; i < 2; ++i) {  // every request, a new connection each time
      auto r = c->call_json("GET", "/v1/whoami");
      ASSERT_FALSE(r) << r->dump();
      EXPECT_EQ(r.error().kind(), Errc::unauthenticated);
      EXPECT_NE(r.error().message.find(k.reason), std::string::npos) << r.error().message;
      EXPECT_NE(r.error().message.find("log in again"), std::string::npos) << r.error().message;
    }
  }
  EXPECT_EQ(whoami_calls_, 0);
  EXPECT_GE(server_->counters().certificate_refusals, 4u);
}

// ---- the client's trust in the server ----

TEST_F(HttpsTest, PinnedCaRightWrongAndInsecure) {
  serve(server_options());
  std::string address = "127.0.0.1:" + std::to_string(server_->port());
  std::string pin = ca::ca_pin(ca_->trusted_tls_certificates().front());

  ClientOptions right;
  right.address = address;
  right.ca_pin = pin;
  auto c = connect(right);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->ca());
  EXPECT_EQ(ca::ca_pin(*c->ca()), pin);  // the CA to store
  ASSERT_TRUE(c->server_identity());
  EXPECT_EQ(c->server_identity()->cluster, "purple");
  EXPECT_TRUE(c->call_json("GET", "/v1/whoami"));

  ClientOptions wrong = right;
  wrong.ca_pin = ca::ca_pin(forger_->trusted_tls_certificates().front());
  auto refused = Client::connect(wrong);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), Errc::unauthenticated);
  EXPECT_NE(refused.error().message.find("--ca-pin"), std::string::npos) << refused.error().message;

  ClientOptions insecure;
  insecure.address = address;
  insecure.insecure = true;
  auto any = connect(insecure);
  ASSERT_TRUE(any);
  EXPECT_FALSE(any->server_identity());
  EXPECT_TRUE(any->call_json("GET", "/v1/whoami"));
}

TEST_F(HttpsTest, ServerOfAnotherCaIsRefused) {
  serve(server_options());
  ClientOptions o = trusting();
  o.trusted = forger_->trusted_tls_certificates();
  auto c = Client::connect(o);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind(), Errc::unauthenticated);
  EXPECT_NE(c.error().message.find("untrusted_ca"), std::string::npos) << c.error().message;
  // An expected server name the certificate does not hold.
  o = trusting();
  o.server_name = "proxy";
  auto named = Client::connect(o);
  ASSERT_FALSE(named);
  EXPECT_EQ(named.error().kind(), Errc::unauthenticated);
  o.server_name = "auth";
  EXPECT_TRUE(Client::connect(o));
}

TEST_F(HttpsTest, ConnectionRefusedIsUnavailableNamingTheAddress) {
  serve(server_options());
  uint16_t port = server_->port();
  server_->join();
  ClientOptions o = trusting();
  o.address = "127.0.0.1:" + std::to_string(port);
  auto c = Client::connect(o);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind(), Errc::unavailable);
  EXPECT_NE(c.error().message.find(o.address), std::string::npos) << c.error().message;
}

// ---- errors and headers across the wire ----

TEST_F(HttpsTest, ErrorsKeepTheirKindAcrossTheWire) {
  serve(server_options());
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  auto denied = c->call_json("GET", "/v1/denied");
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().kind(), Errc::permission_denied);
  EXPECT_EQ(denied.error().message, "the role 'auditor' may not do this; ask an admin");
  auto pre = c->call_json("GET", "/v1/precondition");
  ASSERT_FALSE(pre);
  EXPECT_EQ(pre.error().kind(), Errc::failed_precondition);
  auto missing = c->call_json("GET", "/v1/nothing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), Errc::not_found);
  auto r = c->call("DELETE", "/v1/whoami");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->headers["allow"], "GET");
}

TEST_F(HttpsTest, EveryResponseHasTypeNoStoreAndNoVersion) {
  serve(server_options());
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  for (const char* path : {"/v1/whoami", "/v1/nothing", "/v1/denied"}) {
    auto r = c->call("GET", path);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->content_type, "application/json") << path;
    EXPECT_EQ(r->headers["cache-control"], "no-store") << path;
    EXPECT_EQ(r->headers["server"], "vigil") << path;
  }
}

// ---- bounds ----

TEST_F(HttpsTest, OversizeHeadIs431AndTheServerGoesOn) {
  serve(server_options());
  RawTls raw(server_->port());
  ASSERT_TRUE(raw.ok());
  std::string req = "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  ASSERT_TRUE(raw.send(req));
  std::string resp = raw.response();
  EXPECT_EQ(status_of(resp), 431) << resp.substr(0, 200);
  EXPECT_NE(resp.find("\"invalid_argument\""), std::string::npos);
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->call_json("GET", "/v1/whoami"));
}

TEST_F(HttpsTest, OversizeBodyIs413AndTheServerGoesOn) {
  ServerOptions o = server_options();
  o.read_timeout = 60s;  // a body waited for would outlast the test client's 10 s
  serve(o);
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  auto r = c->call("POST", "/v1/small", {}, std::string(2000, 'x'), "text/plain");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(error_from_response(r->status, r->body).kind(), Errc::resource_exhausted);
  // A chunked body has no Content-Length: cut while reading.
  RawTls raw(server_->port());
  ASSERT_TRUE(raw.ok());
  std::string chunked = "POST /v1/small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) chunked += "200\r\n" + std::string(512, 'y') + "\r\n";
  chunked += "0\r\n\r\n";
  ASSERT_TRUE(raw.send(chunked));
  EXPECT_EQ(status_of(raw.response()), 413);
  // Refused from the head: a body announced too large is never waited for.
  RawTls announced(server_->port());
  ASSERT_TRUE(announced.ok());
  ASSERT_TRUE(announced.send("POST /v1/small HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n"));
  EXPECT_EQ(status_of(announced.response()), 413);
  // Nor a chunk announced too large.
  RawTls big_chunk(server_->port());
  ASSERT_TRUE(big_chunk.ok());
  ASSERT_TRUE(big_chunk.send("POST /v1/small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "40000000\r\nzz"));
  EXPECT_EQ(status_of(big_chunk.response()), 413);
  // The server goes on: a body within the bound, then another client.
  auto ok = c->call("POST", "/v1/small", {}, std::string(1000, 'x'), "text/plain");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
  auto other = connect(trusting());
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->call_json("GET", "/v1/whoami"));
}

TEST_F(HttpsTest, SlowlorisIsCutAndDoesNotDelayOthers) {
  ServerOptions o = server_options();
  o.read_timeout = 3s;  // test-short; the request below would take 20 s to drip
  o.handshake_timeout = o.idle_timeout = 60s;  // only the read timeout may cut it
  serve(o);
  RawTls slow(server_->port());
  ASSERT_TRUE(slow.ok());
  std::atomic<bool> dripping{true};
  bool cut = false;
  std::thread dripper([&] {
    std::string req = "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(400, 'p') + "\r\n\r\n";
    for (char ch : req) {
      if (!slow.send(std::string_view(&ch, 1)) || slow.readable(50)) break;
    }
    cut = slow.closed_by_server();
    dripping = false;
  });
  // While it drips, another client is answered.
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->call_json("GET", "/v1/whoami"));
  EXPECT_TRUE(dripping);
  dripper.join();
  EXPECT_TRUE(cut);
  EXPECT_EQ(server_->counters().read_timeouts, 1u);
  EXPECT_EQ(whoami_calls_, 1);  // the dripped request never reached the handler
  EXPECT_TRUE(c->call_json("GET", "/v1/whoami"));
}

TEST_F(HttpsTest, AClientThatNeverHandshakesIsCut) {
  ServerOptions o = server_options();
  o.handshake_timeout = 300ms;
  serve(o);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server_->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  char c;
  EXPECT_EQ(recv(fd, &c, 1, 0), 0);  // closed by the server (-1 would be the 10 s bound)
  close(fd);
  EXPECT_TRUE(eventually([&] { return server_->counters().handshake_failures == 1; }));
}

TEST_F(HttpsTest, HundredsOfKeepAliveConnectionsOnOneIoThread) {
  ServerOptions o = server_options();
  serve(o);
  size_t threads_before = thread_count();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 300; ++i) {
    auto c = connect(trusting());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->call_json("GET", "/v1/whoami"));
    clients.push_back(std::move(c));
  }
  // All 300 open at once, and no thread was made for them.
  EXPECT_EQ(server_->counters().connections_open, 300u);
  EXPECT_EQ(thread_count(), threads_before);
  for (auto& c : clients) ASSERT_TRUE(c->call_json("GET", "/v1/whoami"));
  auto n = server_->counters();
  EXPECT_EQ(n.connections_accepted, 300u);  // the second round reused every connection
  EXPECT_EQ(n.requests_2xx, 600u);
}

TEST_F(HttpsTest, QueueFullIs503AndTheIoThreadStillAnswers) {
  std::future<Result<nlohmann::json>> first, second;
  ASSERT_NO_FATAL_FAILURE(fill_the_pool(first, second));
  // The queue is full: answered 503 at once.
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  auto busy = c->call_json("GET", "/v1/whoami");
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().kind(), Errc::unavailable);
  EXPECT_EQ(server_->counters().queue_full, 1u);
  // The I/O thread still accepts and answers what needs no worker.
  auto other = connect(trusting());
  ASSERT_TRUE(other);
  auto missing = other->call_json("GET", "/v1/nothing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), Errc::not_found);
  gate_.release();
  auto r1 = first.get();
  auto r2 = second.get();
  ASSERT_TRUE(r1) << r1.error().message;
  ASSERT_TRUE(r2) << r2.error().message;
  EXPECT_TRUE(c->call_json("GET", "/v1/whoami"));
}

TEST_F(HttpsTest, MaxConnectionsClosesTheNextAtOnce) {
  ServerOptions o = server_options();
  o.max_connections = 2;
  serve(o);
  auto a = connect(trusting());
  auto b = connect(trusting());
  ASSERT_TRUE(a && b);
  auto c = Client::connect(trusting());
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind(), Errc::unavailable);
  EXPECT_EQ(server_->counters().connections_refused, 1u);
  EXPECT_TRUE(a->call_json("GET", "/v1/whoami"));
}

// ---- JSON and the request target ----

TEST_F(HttpsTest, JsonBodiesAreBoundedAndChecked) {
  serve(server_options());
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  auto nested = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  auto at_bound = c->call("POST", "/v1/echo", {}, nested(64));
  ASSERT_TRUE(at_bound);
  EXPECT_EQ(at_bound->status, 200) << at_bound->body;
  for (size_t depth : {65ul, 200'000ul}) {
    auto deep = c->call("POST", "/v1/echo", {}, nested(depth));
    ASSERT_TRUE(deep) << deep.error().message;
    EXPECT_EQ(deep->status, 400);
    EXPECT_NE(deep->body.find("nests deeper than 64"), std::string::npos) << deep->body;
  }
  // Brackets inside strings are not nesting.
  auto in_string = c->call("POST", "/v1/echo", {}, "{\"a\":\"" + std::string(500, '[') + "\"}");
  ASSERT_TRUE(in_string);
  EXPECT_EQ(in_string->status, 200);
  auto invalid = c->call("POST", "/v1/echo", {}, "{\"a\":");
  ASSERT_TRUE(invalid);
  EXPECT_EQ(invalid->status, 400);
  auto latin1 = c->call("POST", "/v1/echo", {}, "{\"a\":\"caf\xe9\"}");
  ASSERT_TRUE(latin1);
  EXPECT_EQ(latin1->status, 400);
  EXPECT_NE(latin1->body.find("UTF-8"), std::string::npos);
  // Not JSON by its type: not parsed, passed as bytes.
  auto text = c->call("POST", "/v1/echo", {}, "{\"a\":", "text/plain");
  ASSERT_TRUE(text);
  EXPECT_EQ(text->status, 200);
  EXPECT_TRUE(nlohmann::json::parse(text->body)["json"].is_null());
  auto typed = c->call("POST", "/v1/echo", {}, "{\"a\":1}", "Application/JSON; charset=utf-8");
  ASSERT_TRUE(typed);
  EXPECT_EQ(nlohmann::json::parse(typed->body)["json"]["a"], 1);
}

// A JSON body is judged by a worker, not by the one I/O thread every
// connection shares (a route may take megabytes of it): with the worker
// busy and the queue full, even a body that is not JSON gets the 503 of a
// full queue, never a 400 the I/O thread would have given by parsing it.
TEST_F(HttpsTest, JsonBodiesAreParsedByWorkersNotTheIoThread) {
  std::future<Result<nlohmann::json>> first, second;
  ASSERT_NO_FATAL_FAILURE(fill_the_pool(first, second));
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  auto not_json = c->call("POST", "/v1/echo", {}, "{\"a\":");
  ASSERT_TRUE(not_json) << not_json.error().message;
  EXPECT_EQ(not_json->status, 503) << not_json->body;
  gate_.release();
  ASSERT_TRUE(first.get());
  ASSERT_TRUE(second.get());
  // With a worker free, the same body is judged: 400.
  auto judged = c->call("POST", "/v1/echo", {}, "{\"a\":");
  ASSERT_TRUE(judged);
  EXPECT_EQ(judged->status, 400);
}

TEST_F(HttpsTest, RequestTargetTricksAreRefused) {
  serve(server_options());
  auto status = [&](const std::string& request_line) {
    RawTls raw(server_->port());
    EXPECT_TRUE(raw.ok());
    raw.send(request_line + "\r\nHost: x\r\n\r\n");
    return status_of(raw.response());
  };
  EXPECT_EQ(status("GET /v1/query?a=1&b=%41 HTTP/1.1"), 200);
  EXPECT_EQ(status("GET /v1/query?a=%zz HTTP/1.1"), 400);
  EXPECT_EQ(status("GET /v1/query?a=%4 HTTP/1.1"), 400);
  EXPECT_EQ(status("GET /v1/query?a=1&a=2 HTTP/1.1"), 400);
  EXPECT_EQ(status("GET /v1/query?a=%00 HTTP/1.1"), 400);
  // An encoded "/" does not make a new segment (that would reach /v1/users/me/roles).
  EXPECT_EQ(status("GET /v1/users/me%2Froles HTTP/1.1"), 400);
  EXPECT_EQ(status("GET /v1/users/me/roles HTTP/1.1"), 200);
  EXPECT_EQ(status("GET /v1/users/%2e%2e HTTP/1.1"), 400);
  EXPECT_EQ(status("GET /v1/users/../whoami HTTP/1.1"), 400);
  EXPECT_EQ(status("GET /v1//whoami HTTP/1.1"), 404);
  EXPECT_EQ(status("GET http://x/v1/whoami HTTP/1.1"), 400);
  EXPECT_EQ(status("PATCH /v1/whoami HTTP/1.1"), 501);
  EXPECT_EQ(status("BREW /v1/whoami HTTP/1.1"), 501);
  EXPECT_EQ(status("GET /v1/whoami HTTP/1.0"), 505);
  // Framing a proxy in front could read otherwise (request smuggling): refused.
  EXPECT_EQ(status("POST /v1/echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked"), 400);
  EXPECT_EQ(status("POST /v1/echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4"), 400);

  // Through the client: names and values are encoded, and come back decoded.
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  auto q = c->call_json("GET", "/v1/query", nullptr, {{"a b", "x&y=z"}, {"caf\xc3\xa9", "%"}});
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_EQ((*q)["a b"], "x&y=z");
  EXPECT_EQ((*q)["caf\xc3\xa9"], "%");
  auto u = c->call_json("GET", "/v1/users/" + percent_encode("al ice"));
  ASSERT_TRUE(u);
  EXPECT_EQ((*u)["user"], "al ice");
}

TEST(ApiTarget, ParsesAndRefuses) {
  auto t = parse_target("/v1/a%20b/c?x=1&y=%2F&z");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->path, "/v1/a b/c");
  EXPECT_EQ(t->query, (std::map<std::string, std::string>{{"x", "1"}, {"y", "/"}, {"z", ""}}));
  EXPECT_FALSE(parse_target("/a%2fb"));
  EXPECT_FALSE(parse_target("/a/%2E"));
  EXPECT_FALSE(parse_target("/a?x=1&x=1"));
  EXPECT_FALSE(parse_target("/a?=1"));
  EXPECT_FALSE(parse_target("/a%"));
  EXPECT_EQ(parse_target("/a?x=1&x=1").error().kind(), Errc::invalid_argument);
  EXPECT_EQ(percent_decode(percent_encode("a/b c%\xff")), "a/b c%\xff");
  EXPECT_TRUE(valid_utf8("caf\xc3\xa9 \xf0\x9f\x94\x92"));
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong "/"
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(valid_utf8("\xe2\x82"));          // cut
  EXPECT_EQ(json_depth("[[{\"a\":\"]]]]\"}]]", 64), 3u);
  EXPECT_EQ(json_depth(std::string(1000, '['), 10), 11u);  // stops counting past the limit
}

// ---- keep-alive and stop ----

// At 10,000 nodes (docs/benchmarks-scale.md) 6,870 nodes' connections were
// cut as read timeouts: a new connection's first request was waited for
// with read_timeout (30 s) from the end of the handshake instead of
// idle_timeout, so a node that connected and sent its first heartbeat more
// than 30 s later found its connection closed ("stream truncated"). The
// wait for any request is idle_timeout; read_timeout runs from its first
// byte (the slowloris test above: a fresh connection that drips is cut).
TEST_F(HttpsTest, ANewConnectionWaitsForItsFirstRequestAsLongAsAKeptOne) {
  ServerOptions o = server_options();
  o.read_timeout = 200ms;
  o.idle_timeout = 60s;
  serve(o);
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  std::this_thread::sleep_for(1500ms);  // silent past the read timeout, well within the idle one
  auto r = c->call_json("POST", "/v1/echo", {{"a", 1}});  // a POST: not retried on a new connection
  ASSERT_TRUE(r) << r.error().message;
  auto n = server_->counters();
  EXPECT_EQ(n.read_timeouts, 0u);
  EXPECT_EQ(n.closed_by_server(), 0u);
  EXPECT_EQ(n.connections_accepted, 1u);
}

// The counters say why the server closed each connection, and the server
// logs them: once at its stop, at warning level when it cut connections.
TEST_F(HttpsTest, CountersAreLoggedWithTheReasonsConnectionsWereClosed) {
  ServerOptions o = server_options();
  o.idle_timeout = 300ms;
  o.name = "test API";
  std::mutex mu;
  std::vector<std::pair<log::Level, std::string>> lines;
  o.log = [&](log::Level level, std::string_view line) {
    std::lock_guard lock(mu);
    lines.emplace_back(level, std::string(line));
  };
  serve(o);
  {
    auto c = connect(trusting());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->call_json("GET", "/v1/whoami"));
  }  // closed by the client
  auto idle = connect(trusting());
  ASSERT_TRUE(idle);
  ASSERT_TRUE(eventually([&] { return server_->counters().idle_closes == 1; }));
  EXPECT_EQ(server_->counters().peer_closes, 1u);
  server_->join();
  std::lock_guard lock(mu);
  ASSERT_EQ(lines.size(), 1u);  // the periodic line is once a minute: only the one at stop
  EXPECT_EQ(lines[0].first, log::Level::warn);
  EXPECT_EQ(lines[0].second,
            "test API: connections accepted=2 open=0 refused=0 accept_errors=0; closed by the server: "
            "handshake_failures=0 handshake_timeouts=0 certificate_refusals=0 read_timeouts=0 idle_closes=1 "
            "read_errors=0 write_failures=0; closed by clients: peer_closes=1; requests queue_full=0 waiting=0 "
            "2xx=1 3xx=0 4xx=0 5xx=0 1xx=0");
}

TEST_F(HttpsTest, IdleConnectionClosedByServerIsReopenedForIdempotentCallsOnly) {
  ServerOptions o = server_options();
  o.idle_timeout = 300ms;
  serve(o);
  auto c = connect(trusting());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->call_json("GET", "/v1/whoami"));
  ASSERT_TRUE(eventually([&] { return server_->counters().idle_closes == 1; }));
  auto again = c->call_json("GET", "/v1/whoami");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(server_->counters().connections_accepted, 2u);
  ASSERT_TRUE(eventually([&] { return server_->counters().idle_closes == 2; }));
  auto post = c->call_json("POST", "/v1/echo", {{"a", 1}});
  ASSERT_FALSE(post);  // not replayed: it might have been done
  EXPECT_EQ(post.error().kind(), Errc::unavailable);
  EXPECT_TRUE(c->call_json("POST", "/v1/echo", {{"a", 1}}));  // a new connection now
}

TEST_F(HttpsTest, StopFinishesRequestsInFlight) {
  serve(server_options());
  uint16_t port = server_->port();
  auto idle = connect(trusting());
  ASSERT_TRUE(idle);
  ASSERT_TRUE(idle->call_json("GET", "/v1/whoami"));
  auto in_flight = std::async(std::launch::async, [&] {
    auto c = connect(trusting());
    return c ? c->call_json("GET", "/v1/block") : Result<nlohmann::json>(Error{"no connection"});
  });
  ASSERT_TRUE(gate_.wait_entered(1));
  server_->stop();
  // Stopped accepting, and the idle connection was closed...
  ClientOptions o = trusting();
  o.address = "127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(eventually([&] { return !Client::connect(o); }));
  // ...but the request in flight gets its answer.
  gate_.release();
  auto r = in_flight.get();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)["done"], true);
  server_->join();
  EXPECT_EQ(server_->counters().connections_open, 0u);
}

TEST_F(HttpsTest, StopClosesWhatOutlastsTheGrace) {
  ServerOptions o = server_options();
  o.grace = 200ms;
  serve(o);
  RawTls hanging(server_->port());
  ASSERT_TRUE(hanging.ok());
  ASSERT_TRUE(hanging.send("GET /v1/whoami HTTP/1.1\r\n"));  // a head never finished
  ASSERT_TRUE(eventually([&] { return server_->counters().connections_open == 1; }));
  server_->stop();
  EXPECT_TRUE(hanging.closed_by_server());
  server_->join();
}

}  // namespace
}  // namespace vigil::api

namespace vigil::api {
namespace {

// A joined node's certificate is valid for servers too: a client of the auth
// service requires the "auth" role, which only the service's own identity has.
TEST_F(HttpsTest, ANodeCertificateCannotPassForTheAuthService) {
  serve(server_options());  // server_cert_ is a plain node identity
  auto as_node = connect(trusting());
  ASSERT_TRUE(as_node);
  auto refused = require_server_role(*as_node, "127.0.0.1", ca::kAuthRole);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), Errc::unauthenticated);
  EXPECT_NE(refused.error().message.find("not the cluster's auth service"), std::string::npos);
  server_->join();
  server_.reset();

  ca::TlsIssueRequest auth;
  auth.identity.kind = ca::TlsIdentityKind::node;
  auth.identity.cluster = "purple";
  auth.identity.name = "5e0c4b2a-8d7e-4f0e-9b1a-3c2d1e0f9a8b";
  auth.identity.node_name = "auth";
  auth.identity.roles = {std::string(ca::kNodeRole), std::string(ca::kAuthRole)};
  auth.subject_public_key = server_key_->spki_der();
  auth.now = now();
  auth.ttl = 3600;
  auto auth_cert = ca_->issue_tls(auth);
  ASSERT_TRUE(auth_cert) << auth_cert.error().message;
  ServerOptions o = server_options();
  o.certificate = *auth_cert;
  serve(std::move(o));
  auto as_auth = connect(trusting());
  ASSERT_TRUE(as_auth);
  EXPECT_TRUE(require_server_role(*as_auth, "127.0.0.1", ca::kAuthRole));
  // An insecure connection has no verified identity: refused too.
  ClientOptions insecure;
  insecure.address = "127.0.0.1:" + std::to_string(server_->port());
  insecure.insecure = true;
  auto unchecked = connect(std::move(insecure));
  ASSERT_TRUE(unchecked);
  EXPECT_FALSE(require_server_role(*unchecked, "127.0.0.1", ca::kAuthRole));
  // A node identity cannot be issued other roles.
  auth.identity.roles = {std::string(ca::kNodeRole), "root"};
  EXPECT_FALSE(ca_->issue_tls(auth));
}

}  // namespace
}  // namespace vigil::api
