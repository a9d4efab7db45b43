#include "auditlog/base64url.hpp"

#include "audit/base64.hpp"

namespace vigil::auditlog {

std::optional<std::string> decode_base64(std::string_view s) { return audit::decode_base64(s); }

std::string encode_base64url(std::string_view bytes) {
  std::string out;
  audit::append_base64(out, bytes, /*pad=*/false);
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
  return audit::decode_base64(standard, /*padded=*/false);
}

}  // namespace vigil::auditlog
