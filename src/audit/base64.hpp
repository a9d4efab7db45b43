// Base64, standard alphabet (RFC 4648): the exact bytes of a path or
// argument that is not valid UTF-8 (next to its readable JSON form), the
// blobs of OpenSSH keys, and (URL-safe, unpadded) search continuation keys.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vigil::audit {

// Appends the encoding of `bytes`, with '=' padding when `pad`.
void append_base64(std::string& out, std::string_view bytes, bool pad = true);

// Decodes strictly: the standard alphabet only, no whitespace, no bits left
// over in the last character (one text per blob). With `padded` the length
// is a multiple of 4 and '=' pads the end; without, there is no '=' and the
// length is not 1 more than a multiple of 4. nullopt when `text` is not that.
std::optional<std::string> decode_base64(std::string_view text, bool padded = true);

}  // namespace vigil::audit
