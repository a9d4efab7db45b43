// The diagnostics listener's bounds and pages, and the metrics' label
// bounds, without a node: a DiagServer on a loopback port of its own.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "metrics/diag_server.hpp"
#include "metrics/metrics.hpp"

using namespace vigil;
using metrics::DiagServer;

namespace {

int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

// Everything the server sends until it closes (or 10 s pass).
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) break;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string request(uint16_t port, const std::string& bytes) {
  int fd = connect_to(port);
  (void)!write(fd, bytes.data(), bytes.size());
  std::string out = read_all(fd);
  close(fd);
  return out;
}

std::string status_line(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

struct Served {
  metrics::Registry registry;
  metrics::NodeMetrics node{registry};
  std::atomic<bool> ready{false};
  std::unique_ptr<DiagServer> server;
  Served() {
    auto s = DiagServer::start("127.0.0.1", 0, registry, [this] {
      return ready ? std::vector<std::string>{} : std::vector<std::string>{"the engine is away"};
    });
    EXPECT_TRUE(s) << s.error().message;
    if (s) server = std::move(*s);
  }
  uint16_t port() const { return server->port(); }
};

TEST(DiagServer, ServesMetricsHealthAndReadiness) {
  Served s;
  s.node.session_started("exec");
  std::string m = request(s.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_line(m), "HTTP/1.1 200 OK");
  EXPECT_NE(m.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(m.find("vigil_sessions_started_total{kind=\"exec\"} 1\n"), std::string::npos) << m;
  EXPECT_EQ(status_line(request(s.port(), "GET /healthz HTTP/1.0\r\n\r\n")), "HTTP/1.1 200 OK");
  std::string not_ready = request(s.port(), "GET /readyz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status_line(not_ready), "HTTP/1.1 503 Service Unavailable");
  EXPECT_NE(not_ready.find("- the engine is away\n"), std::string::npos);
  s.ready = true;
  EXPECT_EQ(status_line(request(s.port(), "GET /readyz HTTP/1.0\r\n\r\n")), "HTTP/1.1 200 OK");
}

TEST(DiagServer, RefusesWhatItDoesNotServe) {
  Served s;
  EXPECT_EQ(status_line(request(s.port(), "GET /etc/passwd HTTP/1.0\r\n\r\n")),
            "HTTP/1.1 404 Not Found");
  EXPECT_EQ(status_line(request(s.port(), "POST /metrics HTTP/1.0\r\n\r\n")),
            "HTTP/1.1 405 Method Not Allowed");
  EXPECT_EQ(status_line(request(s.port(), "hello\r\n\r\n")), "HTTP/1.1 400 Bad Request");
}

TEST(DiagServer, ARequestLargerThanTheBoundIsRefused) {
  Served s;
  std::string big = "GET /metrics HTTP/1.0\r\nX-Pad: " +
                    std::string(DiagServer::kMaxRequestBytes, 'a') + "\r\n\r\n";
  EXPECT_EQ(status_line(request(s.port(), big)), "HTTP/1.1 431 Request Header Fields Too Large");
  // And the server still serves.
  EXPECT_EQ(status_line(request(s.port(), "GET /healthz HTTP/1.0\r\n\r\n")), "HTTP/1.1 200 OK");
}

TEST(DiagServer, ConnectionsPastTheBoundAreRefusedAndIdleOnesClosed) {
  Served s;
  std::vector<int> idle;
  for (size_t i = 0; i < DiagServer::kMaxConnections; ++i) idle.push_back(connect_to(s.port()));
  // The server has taken them once a request on a new connection is refused.
  std::string refused;
  for (int i = 0; i < 100 && refused.empty(); ++i) {
    refused = request(s.port(), "GET /healthz HTTP/1.0\r\n\r\n");
    if (status_line(refused) != "HTTP/1.1 503 Service Unavailable") refused.clear(), usleep(10000);
  }
  EXPECT_EQ(status_line(refused), "HTTP/1.1 503 Service Unavailable");
  // Idle connections are closed by the server (after kTimeoutMs), with no answer.
  for (int fd : idle) {
    EXPECT_EQ(read_all(fd), "");
    close(fd);
  }
  EXPECT_EQ(status_line(request(s.port(), "GET /healthz HTTP/1.0\r\n\r\n")), "HTTP/1.1 200 OK");
}

TEST(DiagServer, AnAddressThatIsNotAnIpIsRefused) {
  metrics::Registry registry;
  auto s = DiagServer::start("localhost", 0, registry, {});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("not an IP address"), std::string::npos);
}

TEST(NodeMetrics, RefusalReasonsAreBoundedWhateverTheFrontEndSends) {
  metrics::Registry registry;
  metrics::NodeMetrics node(registry);
  node.login_refused("Bad Reason!");
  node.login_refused(std::string(100, 'a'));
  for (int i = 0; i < 100; ++i) node.login_refused("reason_" + std::string(1, char('a' + i % 26)) +
                                                   std::string(1, char('a' + i / 26)));
  std::string text = registry.serialize();
  size_t series = 0;
  for (size_t at = 0; (at = text.find("vigil_logins_refused_total{", at)) != std::string::npos; ++at)
    ++series;
  EXPECT_EQ(series, metrics::NodeMetrics::kMaxReasons);  // "other" included
  EXPECT_NE(text.find("vigil_logins_refused_total{reason=\"other\"} 71\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("Bad Reason"), std::string::npos);
}

}  // namespace
