// The node's SSH host key: ed25519, made on first start and kept, so that
// clients that pinned it keep trusting the node across restarts.
#pragma once

#include <string>

#include "common/result.hpp"

namespace vigil::ssh {

// Loads <path>, or creates it (mode 0600, OpenSSH private key format) when
// missing. A key file readable by others is refused: anyone who can read it
// can impersonate the node.
Result<void> ensure_host_key(const std::string& path);

// "ssh-ed25519 AAAA..." of the host key at path (what known_hosts lists).
Result<std::string> host_public_key_line(const std::string& path);

}  // namespace vigil::ssh
