#include "sshcert/rate_limit.hpp"

#include <algorithm>

#include "sshcert/address.hpp"

namespace vigil::sshcert {

std::string source_key(const std::string& addr, int ipv6_prefix) {
  // Tagged by family, so that no key of one kind can equal one of another.
  auto ip = parse_ip(addr);
  if (!ip) return "?" + addr;  // not an address (a test name, a Unix socket): count as given
  const auto* bytes = reinterpret_cast<const char*>(ip->bytes.data());
  if (ip->version == 4) return "4" + std::string(bytes, 4);
  IpAddress network;
  network.version = 6;
  for (int bit = 0; bit < std::clamp(ipv6_prefix, 0, 128); ++bit)
    network.bytes[bit / 8] |= ip->bytes[bit / 8] & (0x80 >> (bit % 8));
  return "6" + std::string(reinterpret_cast<const char*>(network.bytes.data()), 16);
}

bool AuthRateLimiter::Window::add(int64_t now_ns, const RateLimits& limits) {
  failures.erase(failures.begin(), std::find_if(failures.begin(), failures.end(), [&](int64_t t) {
                   return t > now_ns - limits.window_ns;
                 }));
  failures.push_back(now_ns);
  if (failures.size() < static_cast<size_t>(std::max(limits.max_failures, 1))) return false;
  blocked_until = std::max(blocked_until, now_ns + limits.block_ns);
  failures.clear();  // the block is the penalty; afterwards a fresh start
  return true;
}

bool AuthRateLimiter::is_idle(const Source& s, int64_t now_ns) const {
  for (const Window* w : {&s.any, &s.signed_})
    if (now_ns < w->blocked_until ||
        (!w->failures.empty() && w->failures.back() > now_ns - limits_.window_ns))
      return false;
  return true;
}

bool AuthRateLimiter::allow(const std::string& addr, int64_t now_ns, Proof proof) {
  std::lock_guard lock(mutex_);
  auto it = sources_.find(source_key(addr, limits_.ipv6_prefix));
  if (it == sources_.end()) return true;
  if (now_ns < it->second.signed_.blocked_until) return false;
  return proof == Proof::signature || now_ns >= it->second.any.blocked_until;
}

void AuthRateLimiter::failed(const std::string& addr, int64_t now_ns, Proof proof) {
  std::lock_guard lock(mutex_);
  const std::string key = source_key(addr, limits_.ipv6_prefix);
  auto it = sources_.find(key);
  if (it == sources_.end()) {
    recency_.push_front(key);
    it = sources_.emplace(key, Source{{}, {}, recency_.begin()}).first;
  } else {
    recency_.splice(recency_.begin(), recency_, it->second.in_recency);
  }
  Source& s = it->second;
  s.any.add(now_ns, limits_);
  if (proof == Proof::signature) s.signed_.add(now_ns, limits_);

  // Forget sources with no recent failure and no block, oldest first, and the
  // least recently failing ones when there are still too many.
  while (!recency_.empty()) {
    auto oldest = sources_.find(recency_.back());
    if (sources_.size() <= limits_.max_sources && !is_idle(oldest->second, now_ns)) break;
    sources_.erase(oldest);
    recency_.pop_back();
  }
}

void AuthRateLimiter::succeeded(const std::string& addr, int64_t /*now_ns*/) {
  std::lock_guard lock(mutex_);
  auto it = sources_.find(source_key(addr, limits_.ipv6_prefix));
  if (it == sources_.end()) return;
  recency_.erase(it->second.in_recency);
  sources_.erase(it);
}

size_t AuthRateLimiter::tracked_sources() const {
  std::lock_guard lock(mutex_);
  return sources_.size();
}

}  // namespace vigil::sshcert
