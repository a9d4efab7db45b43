#include "authsvc/rate_limit.hpp"

namespace vigil::authsvc {

std::optional<RateLimit::Time> RateLimit::blocked_until(std::string_view key, Time now) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  if (it == failures_.end()) return std::nullopt;
  auto& times = it->second;
  while (!times.empty() && times.front() + options_.window <= now) times.pop_front();
  if (times.size() < options_.max_failures) return std::nullopt;
  // The key is free again once enough failures left the window.
  return times[times.size() - options_.max_failures] + options_.window;
}

void RateLimit::record_failure(std::string_view key, Time now) {
  std::lock_guard lock(mu_);
  if (failures_.size() >= options_.max_keys && !failures_.contains(key)) {
    prune_locked(now);
    while (failures_.size() >= options_.max_keys) {
      // Forget the key whose newest failure is the oldest.
      auto oldest = failures_.begin();
      for (auto it = failures_.begin(); it != failures_.end(); ++it)
        if (it->second.back() < oldest->second.back()) oldest = it;
      failures_.erase(oldest);
    }
  }
  auto& times = failures_[std::string(key)];
  times.push_back(now);
  // Only the last max_failures matter.
  while (times.size() > options_.max_failures) times.pop_front();
}

void RateLimit::clear(std::string_view key) {
  std::lock_guard lock(mu_);
  if (auto it = failures_.find(key); it != failures_.end()) failures_.erase(it);
}

void RateLimit::prune(Time now) {
  std::lock_guard lock(mu_);
  prune_locked(now);
}

void RateLimit::prune_locked(Time now) {
  for (auto it = failures_.begin(); it != failures_.end();) {
    auto& times = it->second;
    while (!times.empty() && times.front() + options_.window <= now) times.pop_front();
    it = times.empty() ? failures_.erase(it) : std::next(it);
  }
}

size_t RateLimit::keys() const {
  std::lock_guard lock(mu_);
  return failures_.size();
}

}  // namespace vigil::authsvc
