// How vigilctl reaches the auth service on its own host: the config says
// where it listens and where its data_dir is; the service wrote the local
// admin identity (a TLS user identity with full rights) into
// <data_dir>/admin at its start.
#pragma once

#include <memory>
#include <string>

#include "api/client.hpp"
#include "common/result.hpp"

namespace vigil::client {

struct AdminTarget {
  std::string auth_address;   // host:port to call (a wildcard listen address becomes loopback)
  std::string proxy_address;  // what users reach the proxy at (join lines, sign-up)
  std::string admin_dir;      // <data_dir>/admin
  std::string cluster;
};

// From the config file (given: it must exist; not given: /etc/vigil.yaml if
// it exists, else the embedded defaults, as vigil start reads them).
Result<AdminTarget> admin_target(const std::string& config_file, bool given);

// Connects with the admin identity, trusting the CA beside it. The key file
// must be 0600 and owned by the caller or the caller must be root.
Result<std::unique_ptr<api::Client>> connect_as_admin(const AdminTarget& target);

// "2026-11-28T03:00:00Z" -> "28 Nov 26 03:00 UTC" (tctl's form); the text
// itself when it does not read.
std::string format_api_time(const std::string& rfc3339);

// "https://proxy.example.com:3080/web/invite/..." -> "proxy.example.com:3080".
std::string proxy_of_url(const std::string& url);

}  // namespace vigil::client
