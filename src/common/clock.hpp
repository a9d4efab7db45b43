// Clocks as nanosecond counts: the audit log and recordings use wall time
// (realtime), timers use monotonic time, the kernel's events boot time.
#pragma once

#include <time.h>

#include <cstdint>

namespace vigil::clock {

inline int64_t ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
inline int64_t realtime_ns() { return ns(CLOCK_REALTIME); }
inline int64_t monotonic_ns() { return ns(CLOCK_MONOTONIC); }
inline int64_t boottime_ns() { return ns(CLOCK_BOOTTIME); }

}  // namespace vigil::clock
