// Terminal output is a byte stream cut into records wherever a read() of the
// pty ended, so a UTF-8 character can straddle two records. Exports that
// must emit valid UTF-8 per record carry such a tail over to the next one.
#pragma once

#include <cstddef>
#include <string_view>

namespace vigil::recording {

// Length (0..3) of the bytes at the end of s that start a UTF-8 sequence
// without finishing it, and could still be finished by what follows.
inline size_t incomplete_utf8_tail(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    const unsigned char lead = p[n - k];
    if ((lead & 0xc0) == 0x80) continue;  // a continuation byte: the lead is further back
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed second byte (Unicode table 3-7)
    if (lead >= 0xc2 && lead <= 0xdf) {
      len = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      len = 3;
      if (lead == 0xe0) lo = 0xa0;
      if (lead == 0xed) hi = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      len = 4;
      if (lead == 0xf0) lo = 0x90;
      if (lead == 0xf4) hi = 0x8f;
    } else {
      return 0;  // ASCII or a byte that starts nothing
    }
    if (len <= k) return 0;  // complete (or too many continuation bytes)
    if (k >= 2 && (p[n - k + 1] < lo || p[n - k + 1] > hi)) return 0;
    return k;
  }
  return 0;
}

}  // namespace vigil::recording
