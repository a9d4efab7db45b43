// Standard base64 (RFC 4648, with padding): the exact bytes of a path or
// argument that is not valid UTF-8, next to its readable JSON form.
#pragma once

#include <string>
#include <string_view>

namespace vigil::audit {

void append_base64(std::string& out, std::string_view bytes);

}  // namespace vigil::audit
