#include "proxy/net.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "proxy/node_directory.hpp"

namespace vigil::proxy {

Result<Fd> dial(std::string_view address, int timeout_ms) {
  auto hp = split_host_port(address);
  if (!hp) return hp.error();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp->port);
  if (int rc = getaddrinfo(hp->host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return Error::of(Errc::unavailable, "cannot resolve " + hp->host + ": " + gai_strerror(rc));
  std::string last = "no address";
  Errc last_code = Errc::unavailable;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    Fd fd(socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) continue;
    int rc = connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
      last = strerror(errno);
      continue;
    }
    if (rc != 0) {
      pollfd p{fd.get(), POLLOUT, 0};
      int n = poll(&p, 1, timeout_ms);
      if (n == 0) {
        last = "no answer within " + std::to_string(timeout_ms) + " ms";
        last_code = Errc::deadline_exceeded;
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (n < 0 || err != 0) {
        last = strerror(n < 0 ? errno : err);
        continue;
      }
    }
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    freeaddrinfo(res);
    return fd;
  }
  freeaddrinfo(res);
  return Error::of(last_code, "cannot connect to " + std::string(address) + ": " + last);
}

std::string PeerAddress::text() const {
  return ip.find(':') != std::string::npos ? "[" + ip + "]:" + std::to_string(port)
                                           : ip + ":" + std::to_string(port);
}

PeerAddress peer_address(int fd) {
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  char ip[INET6_ADDRSTRLEN] = "?";
  uint32_t port = 0;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
    if (sa.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&sa);
      inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
      port = ntohs(in->sin_port);
    } else if (sa.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
      inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
      port = ntohs(in6->sin6_port);
    }
  }
  std::string text = ip;
  if (text.rfind("::ffff:", 0) == 0 && text.find('.') != std::string::npos) text = text.substr(7);
  return {text, port};
}

Result<void> send_all(int fd, std::string_view bytes, int timeout_ms) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      int ready = poll(&p, 1, timeout_ms);
      if (ready > 0) continue;
      if (ready == 0) return Error::of(Errc::deadline_exceeded, "the node takes no bytes");
    }
    return Error::sys("sending to the node");
  }
  return {};
}

}  // namespace vigil::proxy
