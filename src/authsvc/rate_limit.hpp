// Failed logins, counted per key ("user:alice", "source:10.0.0.7") in a
// sliding window: after max_failures within window, the key is refused
// until its oldest counted failure leaves the window. Thread-safe; memory
// is bounded (max_keys: beyond it the keys with the oldest failures are
// forgotten first).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace vigil::authsvc {

class RateLimit {
 public:
  using Time = std::chrono::sys_seconds;
  struct Options {
    size_t max_failures = 5;
    std::chrono::seconds window{15 * 60};
    size_t max_keys = 100'000;
  };
  explicit RateLimit(Options options) : options_(options) {}

  // When key may try again, if it may not now.
  std::optional<Time> blocked_until(std::string_view key, Time now);
  void record_failure(std::string_view key, Time now);
  void clear(std::string_view key);
  // Forgets failures that left the window.
  void prune(Time now);
  size_t keys() const;

 private:
  void prune_locked(Time now);
  Options options_;
  mutable std::mutex mu_;
  std::map<std::string, std::deque<Time>, std::less<>> failures_;
};

}  // namespace vigil::authsvc
