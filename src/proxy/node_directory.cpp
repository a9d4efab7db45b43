#include "proxy/node_directory.hpp"

#include <charconv>
#include <ctime>

namespace vigil::proxy {

Result<HostPort> split_host_port(std::string_view address, bool listener) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == address.size())
    return Error::of(Errc::invalid_argument,
                     "address \"" + std::string(address) + "\": give host:port");
  std::string_view host = address.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']')
      return Error::of(Errc::invalid_argument,
                       "address \"" + std::string(address) + "\": write IPv6 as [addr]:port");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return Error::of(Errc::invalid_argument,
                     "address \"" + std::string(address) + "\": write IPv6 as [addr]:port");
  }
  std::string_view digits = address.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc{} || end != digits.data() + digits.size() || (port == 0 && !listener) ||
      port > 65535)
    return Error::of(Errc::invalid_argument,
                     "address \"" + std::string(address) + "\": the port must be 1-65535");
  return HostPort{std::string(host), static_cast<uint16_t>(port)};
}

Result<NodeRoute> pick_node(const std::vector<cluster::Node>& nodes, std::string_view target,
                            uint32_t port, std::string_view cluster_name, int64_t now_unix) {
  if (target.empty() || target.size() > kMaxTargetBytes)
    return Error::of(Errc::invalid_argument,
                     "the target must be a node's name or uuid (1-253 bytes)");
  std::string_view name = target;
  const std::string suffix = "." + std::string(cluster_name);
  if (!cluster_name.empty() && name.size() > suffix.size() &&
      name.substr(name.size() - suffix.size()) == suffix)
    name = name.substr(0, name.size() - suffix.size());
  const cluster::Node* found = nullptr;
  size_t by_name = 0;
  for (const auto& n : nodes) {
    // A node whose heartbeat has lapsed is not there any more.
    if (n.expires != cluster::Time{} && n.expires.time_since_epoch().count() <= now_unix) continue;
    if (n.uuid == target) {
      found = &n;
      by_name = 1;
      break;
    }
    if (n.name == name || n.name == target) {
      found = &n;
      ++by_name;
    }
  }
  if (!found)
    return Error::of(Errc::not_found, "no node \"" + std::string(target) +
                                          "\" in this cluster: `vsh ls` lists the nodes");
  if (by_name > 1)
    return Error::of(Errc::invalid_argument, "several nodes are named \"" + std::string(target) +
                                                 "\": give the node's uuid instead");
  NodeRoute route{found->uuid, found->name, found->address, found->tunnel};
  uint16_t listed_port = 0;
  if (!route.tunnel) {
    auto hp = split_host_port(route.address);
    if (!hp)
      return Error::of(Errc::failed_precondition, "node " + route.name + " lists no usable address (" +
                                                      hp.error().message + ")");
    listed_port = hp->port;
  }
  if (port != 0 && port != kNodePort && port != listed_port)
    return Error::of(Errc::permission_denied,
                     "port " + std::to_string(port) + " of node " + route.name +
                         " is not its SSH port: ask for port " + std::to_string(kNodePort));
  return route;
}

Result<NodeRoute> ClusterNodeDirectory::resolve(std::string_view target, uint32_t port) {
  auto nodes = store_.list_nodes();
  if (!nodes) return nodes.error();
  return pick_node(*nodes, target, port, cluster_, static_cast<int64_t>(time(nullptr)));
}

}  // namespace vigil::proxy
