// UTF-8 well-formedness, byte by byte. Paths and argv are raw bytes from the
// kernel; both the JSON and the text form must tell valid text from bytes
// that are not.
#pragma once

#include <cstddef>

namespace vigil::audit {

// Length (1..4) of the well-formed UTF-8 sequence at p[0..n), or 0 when p[0]
// does not start one (stray continuation byte, overlong form, surrogate,
// beyond U+10FFFF, or cut short). Stores the code point in *cp when valid.
// Ranges from Unicode's table 3-7 of well-formed byte sequences.
inline size_t utf8_decode(const unsigned char* p, size_t n, char32_t* cp) {
  const unsigned char b0 = p[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  char32_t value;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
    value = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    value = b0 & 0x0f;
    if (b0 == 0xe0) lo = 0xa0;  // overlong below U+0800
    if (b0 == 0xed) hi = 0x9f;  // surrogates U+D800..U+DFFF
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    value = b0 & 0x07;
    if (b0 == 0xf0) lo = 0x90;  // overlong below U+10000
    if (b0 == 0xf4) hi = 0x8f;  // beyond U+10FFFF
  } else {
    return 0;
  }
  if (n < len || p[1] < lo || p[1] > hi) return 0;
  value = (value << 6) | (p[1] & 0x3f);
  for (size_t i = 2; i < len; ++i) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    value = (value << 6) | (p[i] & 0x3f);
  }
  *cp = value;
  return len;
}

// U+FFFD, written in place of each byte that is not valid UTF-8.
inline constexpr char kReplacementChar[] = "\xef\xbf\xbd";

}  // namespace vigil::audit
