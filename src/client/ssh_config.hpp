// The OpenSSH client configuration that sends `ssh` through a cluster's
// proxy with the certificate of a vsh login: what `vsh config` prints for
// ~/.ssh/config, and the file `vsh ssh` / `vsh scp` hand to ssh with -F.
//
// The proxy's SSH port is a jump host (ProxyJump, i.e. `ssh -W`), so plain
// OpenSSH needs no helper program: ssh connects to the proxy with the user
// certificate, asks it for a channel to the node, and runs the node's SSH
// session inside it, checking the node's host certificate against the
// cluster's host CA (the "@cert-authority" line in the profile's
// known_hosts) with StrictHostKeyChecking yes.
#pragma once

#include <string>
#include <string_view>

#include "client/profile.hpp"
#include "common/result.hpp"

namespace vigil::client {

struct SshTarget {
  std::string proxy_host;      // the proxy's SSH host name or address
  uint16_t proxy_ssh_port = 3023;
  uint16_t node_port = 3022;
};

// "host:3080" or "host:3080,3023" (web port, SSH port, as tsh takes them):
// the web address ("host:3080") and the SSH target. Hosts may be IPv6 in
// brackets. invalid_argument for anything else.
Result<std::pair<std::string, SshTarget>> parse_proxy_flag(std::string_view flag);

// Where the profile's proxy takes SSH.
SshTarget ssh_target(const Profile& p);

// The Host alias the configuration gives the proxy: "vigil-proxy.<cluster>".
std::string proxy_alias(const Profile& p);

// For `vsh config` (~/.ssh/config): nodes are reached as NAME.<cluster>,
// e.g. `ssh root@web1.purple`.
std::string ssh_config_for_user(const Profile& p, const ProfilePaths& paths, const SshTarget& t);

// For `ssh -F FILE` (vsh ssh/scp): every host but the proxy's alias is a
// node of the cluster, named as vsh ls shows it.
std::string ssh_config_for_vsh(const Profile& p, const ProfilePaths& paths, const SshTarget& t);

}  // namespace vigil::client
