// One connection to the proxy's jump or tunnel port, served on its thread.
#pragma once

#include <libssh/libssh.h>

#include "proxy/proxy_server.hpp"

namespace vigil::proxy {

void serve_jump(ssh_session session, Proxy& proxy);
void serve_tunnel(ssh_session session, Proxy& proxy);

}  // namespace vigil::proxy
