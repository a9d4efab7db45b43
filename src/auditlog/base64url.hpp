// Base64 decoding for the audit log's readers: the exact bytes of a path or
// argument ("path_base64", standard alphabet with padding, as
// audit/base64.hpp writes it) and the search continuation keys (URL-safe
// alphabet, no padding: one shell word, nothing to quote).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vigil::auditlog {

// Standard base64 with padding; nullopt when s is not valid base64.
std::optional<std::string> decode_base64(std::string_view s);

// URL-safe base64 without padding ('-' and '_' for '+' and '/').
std::string encode_base64url(std::string_view bytes);
std::optional<std::string> decode_base64url(std::string_view s);

}  // namespace vigil::auditlog
