#include "audit/uuid.hpp"

#include <pthread.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace vigil::audit {
namespace {

// Bumped in a forked child, so a child never repeats its parent's ids from
// the copied generator state.
std::atomic<uint32_t> g_fork_generation{0};

// xoshiro256** (Blackman and Vigna): a few ns per 64 bits, one state per
// thread so encoders on many threads never contend. Ids must be unique,
// not secret, so a statistical generator with a random seed is enough.
struct Generator {
  uint64_t s[4];
  uint32_t generation = ~0u;  // never a real generation: seeds on first use

  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t next() {
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
};

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void seed(Generator& g) {
  auto* buf = reinterpret_cast<unsigned char*>(g.s);
  size_t got = 0;
  while (got < sizeof g.s) {
    const ssize_t r = getrandom(buf + got, sizeof g.s - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
    } else if (errno != EINTR) {
      break;
    }
  }
  if (got < sizeof g.s) {
    // getrandom refused (a seccomp profile that denies it): mix what tells
    // this thread and instant apart, which keeps ids unique.
    timespec real{}, mono{};
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    uint64_t x = static_cast<uint64_t>(real.tv_sec) * 1'000'000'000u + real.tv_nsec;
    x ^= (static_cast<uint64_t>(mono.tv_nsec) << 32) ^ static_cast<uint64_t>(gettid());
    x ^= reinterpret_cast<uintptr_t>(&g);
    for (uint64_t& word : g.s) word = splitmix64(x);
  }
}

Generator& thread_generator() {
  [[maybe_unused]] static const bool kForkHookInstalled =
      pthread_atfork(nullptr, nullptr, [] { g_fork_generation.fetch_add(1); }) == 0;
  thread_local Generator g;
  const uint32_t generation = g_fork_generation.load(std::memory_order_relaxed);
  if (g.generation != generation) {
    seed(g);
    g.generation = generation;
  }
  return g;
}

}  // namespace

void append_uuid(std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  Generator& g = thread_generator();
  // 128 bits; hex digits 0-15 come from hi, 16-31 from lo, most significant first.
  uint64_t hi = g.next();
  uint64_t lo = g.next();
  hi = (hi & ~0xf000ull) | 0x4000ull;                         // digit 12: version 4
  lo = (lo & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // digit 16: variant 10xx

  const size_t start = out.size();
  out.resize(start + 36);
  char* w = out.data() + start;
  for (int digit = 0; digit < 32; ++digit) {
    if (digit == 8 || digit == 12 || digit == 16 || digit == 20) *w++ = '-';
    const uint64_t word = digit < 16 ? hi : lo;
    *w++ = kHex[(word >> (60 - 4 * (digit % 16))) & 0xf];
  }
}

std::string new_uuid() {
  std::string out;
  append_uuid(out);
  return out;
}

}  // namespace vigil::audit
