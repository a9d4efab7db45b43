#include "client/ssh_config.hpp"

#include <cctype>
#include <charconv>

namespace vigil::client {

namespace {

Result<uint16_t> port_of(std::string_view s, std::string_view flag) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535)
    return Error::of(Errc::invalid_argument,
                     "--proxy=" + std::string(flag) +
                         ": a port must be a number from 1 to 65535 (e.g. proxy.example.com:3080)");
  return static_cast<uint16_t>(v);
}

// A value ssh_config takes as one token: quoted, with no quote inside.
std::string quoted(const std::string& path) { return "\"" + path + "\""; }

std::string identity_lines(const ProfilePaths& paths) {
  return "    IdentityFile " + quoted(paths.ssh_key) + "\n" +
         "    CertificateFile " + quoted(paths.ssh_certificate) + "\n" +
         "    IdentitiesOnly yes\n" +
         "    UserKnownHostsFile " + quoted(paths.known_hosts) + "\n" +
         "    GlobalKnownHostsFile /dev/null\n" +
         "    StrictHostKeyChecking yes\n" +
         "    ForwardAgent no\n";
}

std::string proxy_block(const Profile& p, const SshTarget& t) {
  return "Host " + proxy_alias(p) + "\n" + "    HostName " + t.proxy_host + "\n" +
         "    Port " + std::to_string(t.proxy_ssh_port) + "\n" +
         // The proxy takes any login name: who connects is the certificate's.
         "    User vsh\n";
}

}  // namespace

Result<std::pair<std::string, SshTarget>> parse_proxy_flag(std::string_view flag) {
  SshTarget t;
  std::string_view web = flag, ssh_port;
  const bool two_ports = flag.find(',') != std::string_view::npos;
  if (auto comma = flag.find(','); comma != std::string_view::npos) {
    web = flag.substr(0, comma);
    ssh_port = flag.substr(comma + 1);
  }
  std::string_view host, web_port;
  if (!web.empty() && web.front() == '[') {
    auto close = web.find(']');
    if (close == std::string_view::npos || close + 1 >= web.size() || web[close + 1] != ':')
      return Error::of(Errc::invalid_argument, "--proxy=" + std::string(flag) +
                                                   ": write an IPv6 proxy as [ADDR]:3080");
    host = web.substr(1, close - 1);
    web_port = web.substr(close + 2);
  } else {
    auto colon = web.rfind(':');
    if (colon == std::string_view::npos) {
      host = web;
      web_port = "3080";
    } else {
      host = web.substr(0, colon);
      web_port = web.substr(colon + 1);
    }
  }
  if (host.empty() || host.size() > 253)
    return Error::of(Errc::invalid_argument,
                     "--proxy=" + std::string(flag) + ": name the proxy, e.g. proxy.example.com:3080");
  for (char c : host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
          c == '_'))
      return Error::of(Errc::invalid_argument, "--proxy=" + std::string(flag) +
                                                   ": '" + std::string(host) +
                                                   "' is not a host name or address");
  }
  auto wp = port_of(web_port, flag);
  if (!wp) return wp.error();
  if (two_ports) {
    auto sp = port_of(ssh_port, flag);
    if (!sp) return sp.error();
    t.proxy_ssh_port = *sp;
  }
  t.proxy_host = std::string(host);
  bool v6 = t.proxy_host.find(':') != std::string::npos;
  std::string address = (v6 ? "[" + t.proxy_host + "]" : t.proxy_host) + ":" + std::to_string(*wp);
  return std::make_pair(address, t);
}

SshTarget ssh_target(const Profile& p) {
  SshTarget t;
  std::string_view web = p.proxy;
  if (!web.empty() && web.front() == '[') {
    t.proxy_host = std::string(web.substr(1, web.find(']') - 1));
  } else {
    t.proxy_host = std::string(web.substr(0, web.rfind(':')));
  }
  t.proxy_ssh_port = p.proxy_ssh_port;
  return t;
}

std::string proxy_alias(const Profile& p) { return "vigil-proxy." + p.cluster; }

std::string ssh_config_for_user(const Profile& p, const ProfilePaths& paths, const SshTarget& t) {
  std::string alias = proxy_alias(p);
  return "# Vigil cluster \"" + p.cluster + "\" through the proxy " + p.proxy + " (vsh config)\n" +
         "# Nodes are reached as NAME." + p.cluster + ", e.g. ssh LOGIN@NODE." + p.cluster + "\n" +
         "Host *." + p.cluster + " " + alias + "\n" + identity_lines(paths) +
         "Host *." + p.cluster + " !" + alias + "\n" +
         "    Port " + std::to_string(t.node_port) + "\n" +
         "    ProxyJump " + alias + "\n" + proxy_block(p, t) +
         "# End of the Vigil cluster \"" + p.cluster + "\"\n";
}

std::string ssh_config_for_vsh(const Profile& p, const ProfilePaths& paths, const SshTarget& t) {
  std::string alias = proxy_alias(p);
  return "# Written by vsh for cluster \"" + p.cluster + "\"; read by ssh -F\n" + "Host *\n" +
         identity_lines(paths) + proxy_block(p, t) + "Host * !" + alias + "\n" +
         "    Port " + std::to_string(t.node_port) + "\n" + "    ProxyJump " + alias + "\n";
}

}  // namespace vigil::client
