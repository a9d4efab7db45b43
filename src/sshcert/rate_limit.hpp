// Per-source limits on what failed logins can cost.
//
// AuthRateLimiter slows down guessing: a source address that fails to
// authenticate too often is refused for a while. Only attempts that could
// have succeeded count (see Proof), so that a probe costing nothing cannot
// lock out the holder of a good certificate.
//
// RefusalAggregator bounds the audit volume one source can cause: the first
// refusal of a kind in a window is written at once, the rest are counted and
// written as one event with the count (docs/sshcert.md).
//
// Both use a sliding window per source, keep only recently active sources
// and take the clock as an argument (any clock that does not go backwards,
// e.g. CLOCK_MONOTONIC; tests pass their own).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iterator>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace vigil::sshcert {

// The key a source counts under: the IPv4 address, or the IPv6 address cut
// to its first ipv6_prefix bits (one host usually holds a whole /64 and
// would otherwise get a fresh budget per address). An IPv4-mapped IPv6
// address is its IPv4 address; what is not an address counts as given.
std::string source_key(const std::string& addr, int ipv6_prefix);

// What a failed attempt proved.
enum class Proof : uint8_t {
  // No signature: the client only asked whether a certificate would do
  // ("publickey" without a signature). Counts only when a certificate was
  // presented and refused for a reason about the certificate.
  probe,
  // The client's signature with the offered key verified: it holds the key.
  signature,
};

struct RateLimits {
  int max_failures = 10;                      // per window and source
  int64_t window_ns = 60'000'000'000;         // one minute
  int64_t block_ns = 300'000'000'000;         // five minutes
  size_t max_sources = 10'000;                // memory bound: least recently failing go first
  int ipv6_prefix = 64;
};

// Two budgets per source. max_failures failures of any proof within the
// window refuse further *probes that fail* ("rate_limited" instead of
// their reason) for block_ns; a certificate that would be accepted is
// still answered yes, so its holder can go on and sign. max_failures
// failures with a verified signature refuse everything from the source for
// block_ns: only someone who holds keys can cause that.
class AuthRateLimiter {
 public:
  AuthRateLimiter() = default;
  explicit AuthRateLimiter(RateLimits limits) : limits_(limits) {}

  // Whether an attempt with this proof may go ahead (Proof::probe: may be
  // refused with its own reason rather than as rate_limited).
  bool allow(const std::string& addr, int64_t now_ns, Proof proof = Proof::signature);
  void failed(const std::string& addr, int64_t now_ns, Proof proof);
  // Forgets the source's failures: the person there holds a valid certificate.
  void succeeded(const std::string& addr, int64_t now_ns);

  size_t tracked_sources() const;

 private:
  struct Window {
    std::vector<int64_t> failures;  // times within the window, oldest first
    int64_t blocked_until = 0;
    // Records a failure at now; true when it starts a block.
    bool add(int64_t now_ns, const RateLimits& limits);
  };
  struct Source {
    Window any;     // every counted failure: blocks failing probes
    Window signed_; // failures with a verified signature: blocks everything
    std::list<std::string>::iterator in_recency;
  };

  bool is_idle(const Source& s, int64_t now_ns) const;

  RateLimits limits_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Source> sources_;
  std::list<std::string> recency_;  // keys, most recently failing first
};

struct AggregateLimits {
  int64_t window_ns = 60'000'000'000;  // one minute
  size_t max_keys = 10'000;            // (source, kind) pairs remembered
  int ipv6_prefix = 64;
};

// Sample: what a refusal's event says. It must have
//   void absorb(const Sample& later);
// which folds a later refusal of the same kind and source into the one the
// summary is written from (fields that differ are made general).
//
// Per (source, kind): the first refusal opens a window and is written at
// once (note() says so); later ones in the window are counted. The count
// is handed back, with the sample, when the window has closed (take_due),
// when the source's connection ends (take_source, the window stays open) or
// when the key is pushed out by max_keys (note's `evicted`). Nothing is
// dropped: every refusal is either written at once or in a summary's count.
template <class Sample>
class RefusalAggregator {
 public:
  struct Summary {
    Sample sample;        // the first counted refusal, with the later ones absorbed
    uint64_t count = 0;   // refusals this summary stands for (>= 1)
    int64_t first_ns = 0; // when the first and last of them happened
    int64_t last_ns = 0;
  };

  RefusalAggregator() = default;
  explicit RefusalAggregator(AggregateLimits limits) : limits_(limits) {}

  // True: write this refusal now. False: it is counted and will be in a
  // Summary. Summaries of keys pushed out by the memory bound are appended
  // to *evicted: write them.
  bool note(const std::string& addr, const std::string& kind, const Sample& sample,
            int64_t now_ns, std::vector<Summary>* evicted) {
    std::lock_guard lock(mutex_);
    std::string key = source_key(addr, limits_.ipv6_prefix);
    key += '\0';
    key += kind;
    auto it = entries_.find(key);
    if (it != entries_.end() && now_ns >= it->second.window_end) {
      take_pending(it->second, evicted);
      order_.erase(it->second.in_order);
      entries_.erase(it);
      it = entries_.end();
    }
    if (it == entries_.end()) {
      while (entries_.size() >= std::max<size_t>(limits_.max_keys, 1)) {
        auto oldest = entries_.find(order_.front());
        take_pending(oldest->second, evicted);
        entries_.erase(oldest);
        order_.pop_front();
      }
      order_.push_back(key);
      Entry e;
      e.window_end = now_ns + limits_.window_ns;
      e.in_order = std::prev(order_.end());
      e.source = source_key(addr, limits_.ipv6_prefix);
      entries_.emplace(key, std::move(e));
      update_next_due();
      return true;
    }
    Entry& e = it->second;
    if (e.pending.count == 0) {
      e.pending.sample = sample;
      e.pending.first_ns = now_ns;
    } else {
      e.pending.sample.absorb(sample);
    }
    ++e.pending.count;
    e.pending.last_ns = now_ns;
    return false;
  }

  // Summaries of the windows that have closed by now_ns. Cheap when none
  // has: callers may ask on every poll round.
  std::vector<Summary> take_due(int64_t now_ns) {
    std::vector<Summary> out;
    if (now_ns < next_due_.load(std::memory_order_relaxed)) return out;
    std::lock_guard lock(mutex_);
    // order_ is in window order: every window ends window_ns after it opened.
    while (!order_.empty()) {
      auto it = entries_.find(order_.front());
      if (now_ns < it->second.window_end) break;
      take_pending(it->second, &out);
      entries_.erase(it);
      order_.pop_front();
    }
    update_next_due();
    return out;
  }

  // The counts so far of every kind from addr's source (its connection is
  // ending). The windows stay open: what follows is still counted.
  std::vector<Summary> take_source(const std::string& addr) {
    std::vector<Summary> out;
    const std::string source = source_key(addr, limits_.ipv6_prefix);
    std::lock_guard lock(mutex_);
    for (auto& [key, e] : entries_)
      if (e.source == source) take_pending(e, &out);
    return out;
  }

  size_t tracked_keys() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

 private:
  struct Entry {
    int64_t window_end = 0;
    Summary pending;  // count 0: nothing counted since the last summary
    std::string source;
    std::list<std::string>::iterator in_order;
  };

  static void take_pending(Entry& e, std::vector<Summary>* out) {
    if (e.pending.count == 0) return;
    out->push_back(std::move(e.pending));
    e.pending = Summary{};
  }

  void update_next_due() {
    next_due_.store(order_.empty() ? INT64_MAX : entries_.find(order_.front())->second.window_end,
                    std::memory_order_relaxed);
  }

  AggregateLimits limits_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> order_;  // keys, oldest window first
  std::atomic<int64_t> next_due_{INT64_MAX};
};

}  // namespace vigil::sshcert
