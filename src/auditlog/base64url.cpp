#include "auditlog/base64url.hpp"

#include "audit/base64.hpp"

namespace vigil::auditlog {
namespace {

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Decodes standard-alphabet base64 without padding (any length but 1 mod 4).
std::optional<std::string> decode_unpadded(std::string_view s) {
  if (s.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(s.size() / 4 * 3 + 2);
  unsigned acc = 0;
  int bits = 0;
  for (char c : s) {
    const int v = sextet(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // The bits left over must be zero, or the text is not what an encoder wrote.
  if (acc & ((1u << bits) - 1)) return std::nullopt;
  return out;
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view s) {
  if (s.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && pad < s.size() && s[s.size() - 1 - pad] == '=') ++pad;
  return decode_unpadded(s.substr(0, s.size() - pad));
}

std::string encode_base64url(std::string_view bytes) {
  std::string out;
  audit::append_base64(out, bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
  }
  return out;
}

std::optional<std::string> decode_base64url(std::string_view s) {
  std::string standard(s);
  for (char& c : standard) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (c == '+' || c == '/')
      return std::nullopt;
  }
  return decode_unpadded(standard);
}

}  // namespace vigil::auditlog
