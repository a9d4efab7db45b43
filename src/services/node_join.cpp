#include "services/node_join.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "audit/base64.hpp"
#include "ca/key_file.hpp"
#include "authsvc/service.hpp"
#include "client/pem.hpp"
#include "cluster/parse.hpp"
#include "ssh/host_key.hpp"
#include "common/log.hpp"
#include "services/cluster_services.hpp"

namespace vigil::services {

namespace {

using nlohmann::json;

constexpr size_t kMaxIdentityFile = 256 * 1024;

std::string node_dir(const std::string& data_dir) { return data_dir + "/node"; }

Result<std::string> read_text(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Error::sys("read " + path);
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Error::sys("read " + path, e);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxIdentityFile) {
      ::close(fd);
      return Error::of(Errc::data_loss, path + " is too large to be part of a node identity");
    }
  }
  ::close(fd);
  return out;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string base64(std::string_view bytes) {
  std::string out;
  audit::append_base64(out, bytes);
  return out;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<NodeIdentity> load_node_identity(const std::string& data_dir) {
  std::string dir = node_dir(data_dir);
  auto uuid = read_text(dir + "/uuid");
  if (!uuid) {
    if (uuid.error().kind() == Errc::not_found)
      return Error::of(Errc::not_found, "this node has not joined a cluster yet");
    return uuid.error();
  }
  auto damaged = [&](const Error& e) {
    return Error::of(Errc::data_loss, "the node identity in " + dir + " is damaged (" + e.message +
                                          "): remove " + dir + " and join again with a new token");
  };
  auto cluster = read_text(dir + "/cluster");
  auto auth = read_text(dir + "/auth_server");
  auto cert = read_text(dir + "/tls.crt");
  auto cas = read_text(dir + "/cas.pem");
  auto user_cas = read_text(dir + "/user_cas.pub");
  auto host_cert = read_text(dir + "/host-cert.pub");
  for (const auto* r : {&cluster, &auth, &cert, &cas, &user_cas, &host_cert})
    if (!*r) return damaged(r->error());
  auto key = ca::load_private_key(dir + "/tls.key");
  if (!key) return damaged(key.error());
  auto tls = ca::TlsCertificate::from_pem(*cert);
  if (!tls) return damaged(tls.error());
  auto ca_list = client::split_pem_certificates(*cas);
  if (!ca_list) return damaged(ca_list.error());
  NodeIdentity id{trimmed(*uuid), trimmed(*cluster), trimmed(*auth), std::move(*key),
                  std::move(*tls), std::move(*ca_list), *user_cas, trimmed(*host_cert)};
  // A certificate that expired (the node was off for a year) needs a new join.
  auto check = ca::verify_tls_peer(id.tls_certificate.get(), id.tls_cas, id.cluster,
                                   ca::TlsUsage::client, unix_now());
  if (!check)
    return Error::of(Errc::unauthenticated,
                     "the node's cluster identity is no longer valid (" + check.refusal().message +
                         "): remove " + dir + " and join again with a new token (vigilctl nodes add)");
  return id;
}

// The server a node talks to must be the auth service, or a proxy of the
// cluster forwarding to it (a node that names only proxy_server, when the
// proxy runs on a host of its own: its certificate holds `proxy`, given only
// with a proxy token). Never a node posing as either.
static Result<void> require_cluster_service(const api::Client& client, const std::string& address) {
  if (api::require_server_role(client, address, ca::kProxyRole)) return {};
  return api::require_server_role(client, address, authsvc::kAuthServerRole);
}

Result<std::unique_ptr<api::Client>> connect_to_auth(const NodeIdentity& id) {
  api::ClientOptions o;
  o.address = id.auth_server;
  o.trusted = id.tls_cas;
  o.cluster = id.cluster;
  o.key = &id.tls_key;
  o.certificate = id.tls_certificate;
  o.connect_timeout = std::chrono::seconds(5);
  o.request_timeout = std::chrono::seconds(30);
  auto c = api::Client::connect(std::move(o));
  if (!c) return c.error();
  if (auto r = require_cluster_service(**c, id.auth_server); !r) return r.error();
  return c;
}

Result<NodeIdentity> join_cluster(const JoinParams& p) {
  if (p.token.empty())
    return Error::of(Errc::invalid_argument,
                     "this node has not joined a cluster and has no join token: set "
                     "teleport.auth_token (vigilctl nodes add prints one)");
  auto host_key = ssh::host_public_key_line(p.host_key_path);
  if (!host_key) return host_key.error();
  auto tls_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
  if (!tls_key) return tls_key.error();

  api::ClientOptions o;
  o.address = p.auth_server;
  if (!p.ca_pin.empty()) {
    o.ca_pin = p.ca_pin;
  } else if (!p.trusted.empty()) {
    o.trusted = p.trusted;
    o.cluster = p.trusted_cluster;
  } else {
    return Error::of(Errc::invalid_argument,
                     "set teleport.ca_pin to the cluster's CA pin (vigilctl status prints it): "
                     "the node must know whom it joins before it sends its token");
  }
  auto client = api::Client::connect(std::move(o));
  if (!client)
    return Error::of(client.error().kind(), "cannot reach the auth service at " + p.auth_server +
                                                ": " + client.error().message);
  // The token goes only to the auth service (or a proxy forwarding to it),
  // never to a node posing as it.
  if (auto r = require_cluster_service(**client, p.auth_server); !r) return r.error();
  json labels = json::object();
  for (const auto& [k, v] : p.labels) labels[k] = v;
  json body = {{"token", p.token},
               {"node_name", p.node_name},
               {"addresses", p.addresses},
               {"tunnel", p.tunnel},
               {"labels", labels},
               {"ssh_public_key", *host_key},
               {"tls_public_key", base64(tls_key->spki_der())}};
  if (!p.role.empty()) body["role"] = p.role;
  auto reply = (*client)->call_json("POST", "/v1/join", body);
  if (!reply) return Error::of(reply.error().kind(), "joining the cluster: " + reply.error().message);

  NodeIdentity id{reply->value("uuid", ""), reply->value("cluster_name", ""), p.auth_server,
                  std::move(*tls_key), ca::TlsCertificate{nullptr}, {},
                  reply->value("trusted_user_ca_keys", ""), reply->value("ssh_host_certificate", "")};
  std::string cas_text;
  for (const auto& pem : (*reply)["tls_ca_certificates"])
    if (pem.is_string()) cas_text += pem.get<std::string>();
  auto cert = ca::TlsCertificate::from_pem(reply->value("tls_certificate", ""));
  auto cas = client::split_pem_certificates(cas_text);
  if (!cert || !cas || id.uuid.empty())
    return Error::of(Errc::data_loss, "the auth service's answer to the join is incomplete");
  id.tls_certificate = std::move(*cert);
  id.tls_cas = std::move(*cas);

  std::string dir = node_dir(p.data_dir);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Error::sys("create " + dir);
  if (auto r = ca::save_private_key(dir + "/tls.key", id.tls_key, id.uuid); !r) return r.error();
  const std::pair<const char*, std::string> files[] = {
      {"/tls.crt", id.tls_certificate.pem()},
      {"/cas.pem", cas_text},
      {"/user_cas.pub", id.trusted_user_ca_keys},
      {"/host-cert.pub", id.host_certificate + "\n"},
      {"/cluster", id.cluster + "\n"},
      {"/auth_server", id.auth_server + "\n"},
  };
  for (const auto& [name, text] : files)
    if (auto r = ca::write_file_atomic(dir + name, text, 0644); !r) return r.error();
  // Last: a node whose uuid file exists has joined.
  if (auto r = ca::write_file_atomic(dir + "/uuid", id.uuid + "\n", 0644); !r) return r.error();
  return id;
}

Result<std::string> tunnel_address(const std::string& proxy_server,
                                   const std::string& tunnel_listen_addr) {
  auto proxy = split_listen_addr(proxy_server);
  if (!proxy)
    return Error::of(Errc::invalid_argument, "teleport.proxy_server: " + proxy.error().message);
  auto tunnel = split_listen_addr(tunnel_listen_addr);
  if (!tunnel || tunnel->second == 0)
    return Error::of(Errc::failed_precondition,
                     "the proxy at " + proxy_server + " names no tunnel port ('" +
                         tunnel_listen_addr +
                         "'): enable proxy_service and its tunnel_listen_addr there");
  std::string host = proxy->first;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(tunnel->second);
}

Result<ProxyTunnel> find_proxy_tunnel(const NodeIdentity& identity) {
  auto client = connect_to_auth(identity);
  if (!client) return client.error();
  auto find = (*client)->call_json("GET", "/v1/webapi/find");
  if (!find) return Error::of(find.error().kind(), "asking the proxy for its tunnel: " + find.error().message);
  std::string listen;
  if (find->contains("proxy") && (*find)["proxy"].is_object() && (*find)["proxy"].contains("ssh") &&
      (*find)["proxy"]["ssh"].is_object())
    listen = (*find)["proxy"]["ssh"].value("tunnel_listen_addr", "");
  auto addr = tunnel_address(identity.auth_server, listen);
  if (!addr) return addr.error();
  auto key = (*client)->call_json("GET", "/v1/proxy/host_key");
  if (!key)
    return Error::of(key.error().kind(), "asking the proxy for its host key: " + key.error().message);
  std::string line = key->value("host_key", "");
  // One public key line, bounded; TunnelAgent::create parses it.
  if (line.empty() || line.size() > 16 * 1024 || line.find('\n') != std::string::npos ||
      (line.rfind("ssh-", 0) != 0 && line.rfind("ecdsa-", 0) != 0))
    return Error::of(Errc::data_loss, "the proxy's host key is not one OpenSSH public key line");
  return ProxyTunnel{*addr, line};
}

struct NodeAgent::Conn {
  std::unique_ptr<api::Client> client;
};

NodeAgent::NodeAgent(const NodeIdentity& identity, NodeInfo info)
    : identity_(identity), info_(std::move(info)), conn_(std::make_unique<Conn>()) {}

NodeAgent::~NodeAgent() { stop(); }

Result<void> NodeAgent::beat() {
  if (!conn_->client) {
    auto c = connect_to_auth(identity_);
    if (!c) return c.error();
    conn_->client = std::move(*c);
  }
  json labels = json::object();
  for (const auto& [k, v] : info_.labels) labels[k] = v;
  json body = {{"node_name", info_.name}, {"address", info_.address},
               {"tunnel", info_.tunnel},   {"labels", labels},
               {"uuid", identity_.uuid}};
  auto reply = conn_->client->call_json("POST", "/v1/nodes/heartbeat", body);
  if (!reply) {
    conn_->client.reset();  // the next beat connects again
    return reply.error();
  }
  heartbeats_++;
  int interval = static_cast<int>(reply->value("interval_seconds", 30));
  std::string revision = reply->value("roles_revision", "");
  {
    std::lock_guard lock(mu_);
    interval_seconds_ = std::clamp(interval, 1, 300);
    if (have_roles_ && revision == roles_revision_) return {};
  }
  auto roles = conn_->client->call_json("GET", "/v1/roles");
  if (!roles) {
    conn_->client.reset();
    return roles.error();
  }
  std::vector<cluster::Role> parsed;
  for (const auto& r : (*roles)["roles"]) {
    auto role = cluster::parse_role(r.dump(), "the auth service's roles");
    if (!role) return role.error();
    parsed.push_back(std::move(*role));
  }
  std::lock_guard lock(mu_);
  roles_ = std::move(parsed);
  roles_revision_ = roles->value("revision", revision);
  have_roles_ = true;
  return {};
}

Result<void> NodeAgent::start() {
  Result<void> first;
  {
    std::lock_guard beat_lock(beat_mu_);
    first = beat();
  }
  if (!first) return first;
  thread_ = std::thread([this] { run(); });
  return {};
}

void NodeAgent::run() {
  int failures = 0;
  while (true) {
    int wait;
    {
      std::lock_guard lock(mu_);
      wait = failures ? std::min(30, 1 << std::min(failures, 5)) : interval_seconds_;
    }
    {
      std::unique_lock lock(mu_);
      if (wake_.wait_for(lock, std::chrono::seconds(wait), [&] { return stopping_; })) return;
    }
    Result<void> r;
    {
      std::lock_guard beat_lock(beat_mu_);
      r = beat();
    }
    if (!r) {
      if (failures++ == 0)
        log::warn("node: heartbeat to " + identity_.auth_server + " failed (" + r.error().message +
                  "); retrying, logins are decided with the roles already fetched");
    } else {
      if (failures) log::warn("node: heartbeats to " + identity_.auth_server + " resumed");
      failures = 0;
    }
  }
}

void NodeAgent::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool NodeAgent::knows_all(const std::vector<std::string>& roles) const {
  for (const auto& name : roles)
    if (std::none_of(roles_.begin(), roles_.end(),
                     [&](const cluster::Role& r) { return r.name == name; }))
      return false;
  return true;
}

Result<void> NodeAgent::check_login(const std::vector<std::string>& roles,
                                    const std::vector<std::string>& trait_logins,
                                    const std::string& login) {
  bool known;
  {
    std::lock_guard lock(mu_);
    known = have_roles_ && knows_all(roles);
  }
  if (!known) {
    std::lock_guard beat_lock(beat_mu_);
    // Another login may have fetched them while this one waited.
    {
      std::lock_guard lock(mu_);
      known = have_roles_ && knows_all(roles);
    }
    if (!known) {
      // At most one fetch a second: a login that comes sooner after the
      // last waits for the rest of that second rather than being refused
      // with a role created since (two roles made and used in one second).
      constexpr auto kMinGap = std::chrono::seconds(1);
      auto since = std::chrono::steady_clock::now() - last_refetch_;
      if (since < kMinGap) std::this_thread::sleep_for(kMinGap - since);
      last_refetch_ = std::chrono::steady_clock::now();
      {
        std::lock_guard lock(mu_);
        roles_revision_.clear();  // makes beat() fetch the roles
      }
      if (auto r = beat(); !r)
        log::warn("node: fetching the roles for a login failed: " + r.error().message);
    }
  }
  std::vector<cluster::Role> named;
  {
    std::lock_guard lock(mu_);
    if (!have_roles_)
      return Error::of(Errc::unavailable, "this node has not had the cluster's roles yet");
    for (const auto& name : roles) {
      auto it = std::find_if(roles_.begin(), roles_.end(),
                             [&](const cluster::Role& r) { return r.name == name; });
      // A role that no longer exists grants nothing.
      if (it != roles_.end()) named.push_back(*it);
    }
  }
  cluster::AccessChecker checker(std::move(named), cluster::Traits{{"logins", trait_logins}});
  return checker.check_login(info_.labels, login);
}

}  // namespace vigil::services
