// One SSH connection, served by its front end process (internal to vigil_ssh).
#pragma once

#include <libssh/libssh.h>

#include "ssh/channel.hpp"
#include "ssh/server.hpp"

namespace vigil::ssh {

// Key exchange, certificate authentication, then the connection's session
// channels until the client disconnects or the node stops. Takes ownership
// of `session` and frees it.
void serve_connection(ssh_session session, Node& node);

// The address of a connected socket's peer.
privsep::Peer peer_of(int fd);

// A request refused after login: audited by the monitor as session.rejected
// (synced; the first of its reason from the source and user in a window at
// once, the rest counted into one event) and logged with it. `request` says what was
// asked, `message` why not; `max` is the cap that was reached, if any.
void reject(Node& node, const LoginContext& login, std::string reason, std::string request,
            std::string message, uint64_t max = 0);

}  // namespace vigil::ssh
