#include "metrics/diag_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace vigil::metrics {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string http(int status, const char* reason, const std::string& type,
                 const std::string& body) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  r += "Content-Type: " + type + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  r += body;
  return r;
}

std::string text(int status, const char* reason, const std::string& body) {
  return http(status, reason, "text/plain; charset=utf-8", body);
}

}  // namespace

struct DiagServer::Conn {
  Fd fd;
  int64_t deadline_ms = 0;
  std::string in;
  std::string out;
  size_t sent = 0;
  bool writing = false;
};

Result<std::unique_ptr<DiagServer>> DiagServer::start(const std::string& host, uint16_t port,
                                                      Registry& registry, ReadinessCheck ready) {
  std::unique_ptr<DiagServer> s(new DiagServer(registry, std::move(ready)));
  sockaddr_storage ss{};
  socklen_t len = 0;
  std::string bare = host;
  if (bare.size() >= 2 && bare.front() == '[' && bare.back() == ']')
    bare = bare.substr(1, bare.size() - 2);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, bare.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, bare.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(*v6);
  } else {
    return Error::of(Errc::invalid_argument,
                     "teleport.diag_addr: \"" + host +
                         "\" is not an IP address; give one, like 127.0.0.1:3000 or [::1]:3000");
  }
  s->listen_ = Fd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s->listen_) return Error::sys("diagnostics listener: socket");
  int one = 1;
  setsockopt(s->listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s->listen_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return Error::sys("teleport.diag_addr: cannot listen on " + host + ":" +
                      std::to_string(port) + " (is another process using the port?)");
  if (listen(s->listen_.get(), 16) != 0) return Error::sys("diagnostics listener: listen");
  if (getsockname(s->listen_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return Error::sys("diagnostics listener: getsockname");
  s->port_ = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  s->wake_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s->wake_) return Error::sys("diagnostics listener: eventfd");
  DiagServer* self = s.get();
  s->thread_ = std::thread([self] { self->run(); });
  return s;
}

DiagServer::~DiagServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_.get(), &one, sizeof one);
    thread_.join();
  }
}

std::string DiagServer::respond(const std::string& head) {
  // "GET /path HTTP/1.x"; the path's query string, if any, is ignored.
  size_t sp1 = head.find(' ');
  size_t sp2 = sp1 == std::string::npos ? sp1 : head.find(' ', sp1 + 1);
  size_t eol = head.find("\r\n");
  if (sp1 == std::string::npos || sp2 == std::string::npos || sp2 > eol ||
      head.compare(sp2 + 1, 5, "HTTP/") != 0)
    return text(400, "Bad Request", "not an HTTP request\n");
  std::string method = head.substr(0, sp1);
  std::string path = head.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  if (method != "GET")
    return text(405, "Method Not Allowed", "only GET is served here\n");
  if (path == "/metrics")
    return http(200, "OK", "text/plain; version=0.0.4; charset=utf-8", registry_.serialize());
  if (path == "/healthz") return text(200, "OK", "ok\n");
  if (path == "/readyz") {
    std::vector<std::string> unmet = ready_ ? ready_() : std::vector<std::string>{};
    if (unmet.empty()) return text(200, "OK", "ready\n");
    std::string body = "not ready:\n";
    for (const auto& u : unmet) body += "- " + u + "\n";
    return text(503, "Service Unavailable", body);
  }
  return text(404, "Not Found", "served here: /metrics, /healthz, /readyz\n");
}

void DiagServer::run() {
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_.get(), POLLIN, 0});
    fds.push_back({listen_.get(), POLLIN, 0});
    int64_t now = now_ms();
    int timeout = -1;
    for (auto& c : conns) {
      fds.push_back({c->fd.get(), static_cast<short>(c->writing ? POLLOUT : POLLIN), 0});
      int left = static_cast<int>(std::max<int64_t>(0, c->deadline_ms - now));
      timeout = timeout < 0 ? left : std::min(timeout, left);
    }
    int n = poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) return;
    if (fds[0].revents) return;
    now = now_ms();
    std::vector<bool> done(conns.size(), false);
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = *conns[i];
      short ev = fds[i + 2].revents;
      if (now >= c.deadline_ms) {
        done[i] = true;  // too slow: closed without an answer
        continue;
      }
      if (!ev) continue;
      if (!c.writing) {
        char buf[1024];
        ssize_t got = read(c.fd.get(), buf, sizeof buf);
        if (got <= 0) {
          done[i] = got == 0 || (errno != EAGAIN && errno != EINTR);
          continue;
        }
        c.in.append(buf, static_cast<size_t>(got));
        size_t end = c.in.find("\r\n\r\n");
        if (end == std::string::npos && c.in.size() < kMaxRequestBytes) continue;
        if (end == std::string::npos || end + 4 > kMaxRequestBytes)
          c.out = text(431, "Request Header Fields Too Large",
                       "a request here is at most " + std::to_string(kMaxRequestBytes) +
                           " bytes\n");
        else
          c.out = respond(c.in.substr(0, end + 2));
        c.in.clear();
        c.writing = true;
        shutdown(c.fd.get(), SHUT_RD);
      }
      ssize_t put = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (put < 0) {
        done[i] = errno != EAGAIN && errno != EINTR;
        continue;
      }
      c.sent += static_cast<size_t>(put);
      done[i] = c.sent == c.out.size();
    }
    for (size_t i = conns.size(); i-- > 0;)
      if (done[i]) conns.erase(conns.begin() + static_cast<long>(i));
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int fd = accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        if (conns.size() >= kMaxConnections) {
          // Full: told so at once (best effort), never queued.
          static const std::string busy =
              text(503, "Service Unavailable", "too many diagnostics connections\n");
          (void)!send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          close(fd);
          continue;
        }
        auto c = std::make_unique<Conn>();
        c->fd = Fd(fd);
        c->deadline_ms = now + kTimeoutMs;
        conns.push_back(std::move(c));
      }
    }
  }
}

}  // namespace vigil::metrics
