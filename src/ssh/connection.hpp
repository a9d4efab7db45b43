// One SSH connection, served on its own thread (internal to vigil_ssh).
#pragma once

#include <libssh/libssh.h>

#include "ssh/server.hpp"

namespace vigil::ssh {

// Key exchange, certificate authentication, then the connection's session
// channels until the client disconnects or the node stops. Takes ownership
// of `session` and frees it.
void serve_connection(ssh_session session, Node& node);

}  // namespace vigil::ssh
