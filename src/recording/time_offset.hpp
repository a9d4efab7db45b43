// Time differences of recorded times. A recording's times are whatever its
// file says: a damaged or forged one can hold any int64, and the plain
// difference of two of them can overflow (undefined behaviour).
#pragma once

#include <cstdint>
#include <limits>

namespace vigil::recording {

// time_ns - start_ns, saturated to the int64 range.
inline int64_t offset_ns(int64_t time_ns, int64_t start_ns) {
  int64_t d;
  if (!__builtin_sub_overflow(time_ns, start_ns, &d)) return d;
  return time_ns < start_ns ? std::numeric_limits<int64_t>::min()
                            : std::numeric_limits<int64_t>::max();
}

}  // namespace vigil::recording
