// The diagnostics listener (teleport.diag_addr): GET /metrics (Prometheus
// text format), /healthz (200 while the process runs) and /readyz (200 when
// what the process needs is up, else 503 naming what is not).
//
// Our own small server rather than prometheus-cpp-pull's Exposer: the
// Exposer serves only registries (no /readyz answering 503), and its
// civetweb bounds are options of another library. This one is one thread,
// one poll loop, and bounded: at most kMaxConnections at once (more are
// answered 503 and closed), a request of at most kMaxRequestBytes (431),
// kTimeoutMs per connection from accept to the last byte sent, GET only,
// HTTP/1.0 semantics (one request, then close). It serves nothing but the
// three pages; nothing in them is a secret (metrics.hpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "metrics/metrics.hpp"

namespace vigil::metrics {

// What /readyz waits for: each unmet condition in a few words ("the engine
// has not started"); empty when ready.
using ReadinessCheck = std::function<std::vector<std::string>()>;

class DiagServer {
 public:
  static constexpr size_t kMaxConnections = 8;
  static constexpr size_t kMaxRequestBytes = 4096;
  static constexpr int kTimeoutMs = 5000;

  // Listens on host:port (an IPv4 or IPv6 literal; port 0 picks one) and
  // serves on a thread of its own until destroyed.
  static Result<std::unique_ptr<DiagServer>> start(const std::string& host, uint16_t port,
                                                   Registry& registry, ReadinessCheck ready);
  ~DiagServer();
  DiagServer(const DiagServer&) = delete;
  DiagServer& operator=(const DiagServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  DiagServer(Registry& registry, ReadinessCheck ready)
      : registry_(registry), ready_(std::move(ready)) {}
  void run();
  struct Conn;
  // The response to one complete request head.
  std::string respond(const std::string& head);

  Registry& registry_;
  ReadinessCheck ready_;
  Fd listen_;
  Fd wake_;  // eventfd: stop
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace vigil::metrics
