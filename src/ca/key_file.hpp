// Key files: written whole or not at all, readable by their owner only.
//
// A write goes to a new temporary file in the same directory (O_EXCL, mode
// 0600 from its creation), is synced, and is renamed over the target, so a
// reader (or a crash) sees the old file or the new one, never a part. A read
// refuses a key file that group or others can read or write, or that another
// user owns, the way sshd refuses such a host key.
#pragma once

#include <string>
#include <string_view>

#include "ca/key.hpp"
#include "common/result.hpp"

namespace vigil::ca {

// Writes contents to path atomically with the given mode (0600 for secrets,
// 0644 for certificates and public keys). The directory must exist.
Result<void> write_file_atomic(const std::string& path, std::string_view contents, unsigned mode);

// Reads a file of at most max_bytes that only its owner (this process's
// user) can read or write. Errors say what to do (chmod 600, chown).
Result<Secret> read_private_file(const std::string& path, size_t max_bytes = kMaxKeyText);

// A key in OpenSSH's format (Ed25519) or PKCS#8 PEM (others), mode 0600.
Result<void> save_private_key(const std::string& path, const PrivateKey& key,
                              std::string_view comment);
Result<PrivateKey> load_private_key(const std::string& path);

}  // namespace vigil::ca
