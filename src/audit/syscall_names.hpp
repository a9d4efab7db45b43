// Names people know for the numbers the kernel reports: errno values and
// open(2) flags, as this host's C library defines them (the flags differ
// between amd64 and arm64; the encoder runs on the host that recorded).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vigil::audit {

// "ENOENT" for errno values commonly met by exec, open and connect; empty
// for others.
std::string_view errno_name(int err);

// "O_WRONLY|O_CREAT|O_TRUNC": the access mode, then each flag set; bits
// without a name follow as one hexadecimal number.
void append_open_flags(std::string& out, int32_t flags);

}  // namespace vigil::audit
