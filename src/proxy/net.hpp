// Small socket helpers of the proxy and the tunnel agent.
#pragma once

#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace vigil::proxy {

// A TCP connection to "host:port" (a name is looked up), within timeout_ms.
// unavailable when refused or unreachable, deadline_exceeded when slow.
Result<Fd> dial(std::string_view address, int timeout_ms);

// All of bytes onto a socket (blocking or not) within timeout_ms.
Result<void> send_all(int fd, std::string_view bytes, int timeout_ms);

struct PeerAddress {
  std::string ip;    // "192.0.2.7", "2001:db8::1" (a v4-mapped address as v4)
  uint32_t port = 0;
  std::string text() const;  // "ip:port", "[ip]:port"
};
PeerAddress peer_address(int fd);

}  // namespace vigil::proxy
