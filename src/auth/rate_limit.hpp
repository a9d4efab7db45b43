// Slows down guessing: a source address that fails to authenticate too
// often is refused for a while before any certificate is looked at.
//
// A sliding window: a source with max_failures failures within window_ns
// is refused for block_ns. Each source keeps the times of its recent
// failures (at most max_failures of them), and only sources that failed
// recently are kept at all.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace vigil::auth {

struct RateLimits {
  int max_failures = 10;                      // per window and source
  int64_t window_ns = 60'000'000'000;         // one minute
  int64_t block_ns = 300'000'000'000;         // five minutes
  size_t max_sources = 10'000;                // memory bound: least recently failing go first
  // IPv6 sources are counted per prefix of this length: one host usually
  // holds a whole /64, and would otherwise get a fresh budget per address.
  int ipv6_prefix = 64;
};

class AuthRateLimiter {
 public:
  explicit AuthRateLimiter(RateLimits limits = {}) : limits_(limits) {}

  // Whether an attempt from addr may go ahead at now_ns (any clock that
  // does not go backwards, e.g. CLOCK_MONOTONIC; tests pass their own).
  bool allow(const std::string& addr, int64_t now_ns);
  void failed(const std::string& addr, int64_t now_ns);
  // Forgets the source's failures: the person there holds a valid certificate.
  void succeeded(const std::string& addr, int64_t now_ns);

  size_t tracked_sources() const;

 private:
  struct Source {
    std::vector<int64_t> failures;  // times within the window, oldest first
    int64_t blocked_until = 0;
    std::list<std::string>::iterator in_recency;
  };

  std::string source_key(const std::string& addr) const;
  bool is_idle(const Source& s, int64_t now_ns) const;

  RateLimits limits_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Source> sources_;
  std::list<std::string> recency_;  // keys, most recently failing first
};

}  // namespace vigil::auth
