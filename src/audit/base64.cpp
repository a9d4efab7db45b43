#include "audit/base64.hpp"

namespace vigil::audit {

void append_base64(std::string& out, std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  const size_t start = out.size();
  out.resize(start + (n + 2) / 3 * 4);
  char* w = out.data() + start;
  for (; n >= 3; n -= 3, p += 3) {
    const unsigned v = (p[0] << 16) | (p[1] << 8) | p[2];
    *w++ = kAlphabet[v >> 18];
    *w++ = kAlphabet[(v >> 12) & 63];
    *w++ = kAlphabet[(v >> 6) & 63];
    *w++ = kAlphabet[v & 63];
  }
  if (n > 0) {
    const unsigned v = (p[0] << 16) | (n == 2 ? p[1] << 8 : 0);
    *w++ = kAlphabet[v >> 18];
    *w++ = kAlphabet[(v >> 12) & 63];
    *w++ = n == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    *w++ = '=';
  }
}

}  // namespace vigil::audit
