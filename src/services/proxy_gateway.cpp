#include "services/proxy_gateway.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstdio>
#include <atomic>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/server.hpp"
#include "audit/base64.hpp"
#include "ca/proxy_header.hpp"
#include "cluster/parse.hpp"
#include "common/log.hpp"
#include "proxy/proxy_server.hpp"
#include "proxy/tunnel_registry.hpp"
#include "relay/wire.hpp"
#include "ssh/host_key.hpp"
#include "sshcert/trusted_cas.hpp"
#include "web/assets.hpp"

namespace vigil::services {

using nlohmann::json;

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "vigil: proxy: %s\n", message.c_str());
  std::fflush(stderr);
  return 1;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The largest body any route of the auth service takes (a recording chunk);
// the auth service applies each route's own limit again.
constexpr size_t kMaxForwardedBody = relay::kMaxChunkBytes + 4096;

api::Reply gateway_error(int status, Errc code, const std::string& message) {
  return api::Reply::json(api::error_body(Error::of(code, message)), status);
}

// "/v1/users/a b" back into a request target: each segment encoded again.
std::string encoded_path(const std::string& path) {
  std::string out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    out += "/" + api::percent_encode(std::string_view(path).substr(start, end - start));
    start = end + 1;
  }
  return out.empty() ? "/" : out;
}

}  // namespace

AuthForwarder::AuthForwarder(const NodeIdentity& identity, ForwarderOptions options)
    : identity_(identity), options_(options) {}

AuthForwarder::~AuthForwarder() = default;

Result<std::unique_ptr<api::Client>> AuthForwarder::acquire() {
  {
    std::lock_guard lock(mu_);
    if (in_flight_ >= options_.max_forwards) {
      refused_busy_++;
      return Error::of(Errc::resource_exhausted,
                       "the proxy is forwarding " + std::to_string(options_.max_forwards) +
                           " requests to the auth service already; try again in a moment");
    }
    in_flight_++;
    const auto now = std::chrono::steady_clock::now();
    while (!idle_.empty()) {
      Idle kept = std::move(idle_.back());
      idle_.pop_back();
      if (now - kept.since < options_.max_idle) return std::move(kept.client);
    }
  }
  api::ClientOptions o;
  o.address = identity_.auth_server;
  o.trusted = identity_.tls_cas;
  o.cluster = identity_.cluster;
  o.key = &identity_.tls_key;
  o.certificate = identity_.tls_certificate;
  o.connect_timeout = options_.connect_timeout;
  o.request_timeout = options_.request_timeout;
  o.max_response_body = options_.max_response_body;
  auto c = api::Client::connect(std::move(o));
  if (c) {
    // Only the auth service gets what clients send (never a node posing as it).
    if (auto r = api::require_server_role(**c, identity_.auth_server, ca::kAuthRole); !r)
      c = r.error();
  }
  if (!c) {
    std::lock_guard lock(mu_);
    in_flight_--;
    return Error::of(Errc::unavailable, "the proxy cannot reach the auth service at " +
                                            identity_.auth_server + ": " + c.error().message +
                                            "; check that it runs");
  }
  return c;
}

void AuthForwarder::release(std::unique_ptr<api::Client> c) {
  std::lock_guard lock(mu_);
  in_flight_--;
  if (c) idle_.push_back(Idle{std::move(c), std::chrono::steady_clock::now()});
}

Result<api::Reply> AuthForwarder::forward(const api::Request& q) {
  auto client = acquire();
  if (!client) {
    const bool busy = client.error().kind() == Errc::resource_exhausted;
    return gateway_error(busy ? 503 : 502, Errc::unavailable, client.error().message);
  }
  std::map<std::string, std::string> headers;
  // What the proxy saw, replacing whatever the client sent under these names.
  headers[std::string(kForwardedForHeader)] = q.peer.address;
  if (!q.peer.certificate_der.empty()) {
    std::string b64;
    audit::append_base64(b64, q.peer.certificate_der);
    headers[std::string(kForwardedCertificateHeader)] = b64;
  }
  // The client's browser session, as this port read it (the auth service
  // checks it; it believes these headers from a proxy identity only).
  if (q.peer.web_session) headers[std::string(kForwardedSessionHeader)] = *q.peer.web_session;
  if (q.peer.web_csrf) headers[std::string(kForwardedCsrfHeader)] = *q.peer.web_csrf;
  std::string type = q.content_type.empty() ? "application/json" : q.content_type;
  auto r = (*client)->call(q.method, encoded_path(q.path), q.query, q.body, type, headers);
  if (!r) {
    release(nullptr);  // a connection that failed is not reused
    if (r.error().kind() == Errc::deadline_exceeded)
      return gateway_error(504, Errc::deadline_exceeded,
                           "the auth service at " + identity_.auth_server +
                               " did not answer in time: " + r.error().message);
    return gateway_error(502, Errc::unavailable,
                         "the proxy cannot reach the auth service at " + identity_.auth_server + ": " +
                             r.error().message + "; check that it runs");
  }
  release(std::move(*client));
  forwarded_++;
  api::Reply out;
  out.status = r->status;
  out.content_type = r->content_type.empty() ? "application/json" : r->content_type;
  out.body = std::move(r->body);
  if (auto it = r->headers.find("allow"); it != r->headers.end())
    out.headers.emplace_back("Allow", it->second);
  // A browser login's (or logout's) cookie: the auth service sets one.
  if (auto it = r->headers.find("set-cookie"); it != r->headers.end())
    out.headers.emplace_back("Set-Cookie", it->second);
  return out;
}

Result<json> AuthForwarder::call_json(std::string_view method, const std::string& path) {
  auto client = acquire();
  if (!client) return client.error();
  auto r = (*client)->call_json(method, path);
  // An answer (even a refusal) leaves the connection usable; a transport
  // failure does not.
  const bool transport = !r && (r.error().kind() == Errc::unavailable ||
                                r.error().kind() == Errc::deadline_exceeded);
  release(transport ? nullptr : std::move(*client));
  return r;
}

Result<std::vector<cluster::Node>> nodes_from_json(const json& reply) {
  if (!reply.is_object() || !reply.contains("nodes") || !reply["nodes"].is_array())
    return Error::of(Errc::data_loss, "the auth service's node list is not {\"nodes\": [...]}");
  std::vector<cluster::Node> out;
  for (const auto& n : reply["nodes"]) {
    if (!n.is_object() || !n.contains("metadata") || !n.contains("spec") ||
        !n["metadata"].is_object() || !n["spec"].is_object())
      return Error::of(Errc::data_loss, "a node in the auth service's list has no metadata/spec");
    const json& m = n["metadata"];
    const json& s = n["spec"];
    cluster::Node node;
    node.uuid = m.value("name", "");
    node.name = s.value("hostname", "");
    node.address = s.value("addr", "");
    node.tunnel = s.value("tunnel", false);
    node.host_key = s.value("host_key", "");
    if (m.contains("labels") && m["labels"].is_object())
      for (const auto& [k, v] : m["labels"].items())
        if (v.is_string()) node.labels[k] = v.get<std::string>();
    if (node.uuid.empty() || node.name.empty())
      return Error::of(Errc::data_loss, "a node in the auth service's list has no uuid or name");
    out.push_back(std::move(node));
  }
  return out;
}

Result<proxy::NodeRoute> RemoteNodeDirectory::resolve(std::string_view target, uint32_t port) {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (fetched_ == std::chrono::steady_clock::time_point{} || now - fetched_ > cache_) {
    auto reply = auth_.call_json("GET", "/v1/nodes");
    if (!reply)
      return Error::of(Errc::unavailable,
                       "the proxy cannot list the nodes: " + reply.error().message);
    auto nodes = nodes_from_json(*reply);
    if (!nodes) return nodes.error();
    nodes_ = std::move(*nodes);
    fetched_ = now;
  }
  // The auth service lists live nodes only: no expiry to check here.
  return proxy::pick_node(nodes_, target, port, cluster_, unix_now());
}

int run_proxy_only(const ClusterServicesOptions& options, const std::atomic<bool>& stop) {
  const config::Config& cfg = options.config;
  const std::string dir = cfg.data_dir + "/proxy";
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return fail("create " + dir);
  const std::string host_key = dir + "/host_key";
  if (auto r = ssh::ensure_host_key(host_key); !r) return fail(r.error().message);
  auto host_key_line = ssh::host_public_key_line(host_key);
  if (!host_key_line) return fail(host_key_line.error().message);

  // The proxy's identity: kept from its join (a restart needs no token).
  auto id = load_node_identity(dir);
  if (!id && id.error().kind() == Errc::not_found) {
    if (cfg.auth_server.empty())
      return fail("proxy_service runs without auth_service here: set teleport.auth_server to the "
                  "auth service's host:port, teleport.auth_token to a proxy token (vigilctl "
                  "tokens add --type=proxy) and teleport.ca_pin");
    JoinParams j;
    j.data_dir = dir;
    j.auth_server = cfg.auth_server;
    j.token = cfg.auth_token;
    j.ca_pin = cfg.ca_pin;
    j.node_name = cfg.nodename;
    j.role = "proxy";
    j.host_key_path = host_key;
    if (!cfg.proxy.public_addr.empty()) {
      j.addresses = cfg.proxy.public_addr;
    } else {
      auto web = split_listen_addr(cfg.proxy.web_listen_addr);
      if (!web) return fail("proxy_service.web_listen_addr: " + web.error().message);
      std::string host = web->first;
      if (host == "0.0.0.0" || host == "::" || host.empty()) host = cfg.nodename;
      j.addresses = {host + ":" + std::to_string(web->second)};
    }
    id = join_cluster(j);
    if (id)
      std::printf("vigil: the proxy joined cluster \"%s\" as %s\n", id->cluster.c_str(),
                  id->uuid.c_str());
  }
  if (!id) return fail(id.error().message);
  if (!cfg.auth_server.empty() && cfg.auth_server != id->auth_server)
    log::warn("proxy: teleport.auth_server is " + cfg.auth_server + " but the proxy joined " +
              id->auth_server + " and keeps using it (remove " + dir +
              "/node and join again to change it)");

  AuthForwarder auth(*id);
  // The SSH CAs: who may use the jump port, which nodes may hold tunnels.
  auto cas = auth.call_json("GET", "/v1/cas");
  if (!cas) return fail("the cluster's SSH CAs from the auth service: " + cas.error().message);
  auto user_cas = sshcert::TrustedCAs::parse(cas->value("trusted_user_ca_keys", ""),
                                             "the cluster's user CA (from the auth service)");
  auto host_cas = sshcert::TrustedCAs::parse(cas->value("trusted_host_ca_keys", ""),
                                             "the cluster's host CA (from the auth service)");
  if (!user_cas) return fail(user_cas.error().message);
  if (!host_cas) return fail(host_cas.error().message);

  // The guide's discovery call: asked of the auth service once, kept.
  std::mutex find_mu;
  json find_cache;
  std::atomic<uint16_t> tunnel_port{0};  // the port the tunnel listener got, once it listens
  api::Router router;
  router.add("GET", "/v1/webapi/find", [&](const api::Request&) -> Result<api::Reply> {
    std::lock_guard lock(find_mu);
    if (find_cache.is_null() || !find_cache["proxy"].contains("ssh")) {
      auto f = auth.call_json("GET", "/v1/find");
      if (!f) return gateway_error(502, Errc::unavailable, f.error().message);
      // This proxy's own public_addr, when set, is where users reach it.
      json addrs = cfg.proxy.public_addr.empty()
                       ? (f->contains("proxy") && (*f)["proxy"].is_object()
                              ? (*f)["proxy"].value("public_addrs", json::array())
                              : json::array())
                       : json(cfg.proxy.public_addr);
      find_cache = {{"server_version", f->value("server_version", "")},
                    {"cluster_name", f->value("cluster_name", "")},
                    {"auth", f->contains("auth") ? (*f)["auth"] : json::object()},
                    {"proxy", {{"public_addrs", addrs}}},
                    {"ca_pin", f->value("ca_pin", "")}};
      // Where a node that names only this proxy holds its reverse tunnel.
      if (uint16_t port = tunnel_port.load(); port != 0)
        find_cache["proxy"]["ssh"] = {
            {"tunnel_listen_addr", advertised_tunnel_addr(cfg.proxy.tunnel_listen_addr, port)}};
    }
    return api::Reply::json(find_cache);
  });
  const std::string host_key_text = *host_key_line;
  router.add("GET", "/v1/proxy/host_key", [&host_key_text](const api::Request&) -> Result<api::Reply> {
    return api::Reply::json({{"host_key", host_key_text}});
  });
  // The web UI's files (web/assets.hpp): served here, not forwarded.
  auto web_assets = web::load_for_proxy(cfg.proxy.web_assets_dir);
  if (!web_assets) return fail("the web UI: " + web_assets.error().message);
  web::add_routes(router, *web_assets);
  router.set_fallback([&auth](const api::Request& q) { return auth.forward(q); },
                      api::RouteOptions{kMaxForwardedBody});

  // The web port: TLS with the proxy's identity (role proxy).
  auto where = split_listen_addr(cfg.proxy.web_listen_addr);
  if (!where) return fail("proxy_service.web_listen_addr: " + where.error().message);
  api::ServerOptions o;
  o.address = where->first;
  o.port = where->second;
  o.certificate = id->tls_certificate;
  for (const auto& ca_cert : id->tls_cas) {
    std::vector<ca::TlsCertificate> one = {ca_cert};
    if (ca::verify_tls_peer(id->tls_certificate.get(), one, id->cluster, ca::TlsUsage::server,
                            unix_now()))
      o.ca_certificate = ca_cert;
  }
  if (!o.ca_certificate.get()) return fail("the proxy's certificate is not of the cluster's CA");
  o.key = &id->tls_key;
  o.client_certificates = api::ClientCertificates::optional;
  o.browser_sessions = true;
  o.trusted = id->tls_cas;
  o.cluster = id->cluster;
  o.workers = ForwarderOptions{}.max_forwards;
  auto web = api::Server::listen(std::move(o), router);
  if (!web) return fail("proxy_service.web_listen_addr " + cfg.proxy.web_listen_addr + ": " +
                        web.error().message);
  (*web)->start();

  RemoteNodeDirectory directory(auth, id->cluster);
  proxy::TunnelRegistry tunnels;
  proxy::Proxy proxy{*user_cas, *host_cas, directory, tunnels};
  // Nodes learn each client's address from the proxy's signed header.
  proxy.sign_origin = ca::make_origin_signer(id->tls_key, id->tls_certificate);
  proxy::ProxyOptions po;
  po.jump_addr = cfg.proxy.listen_addr;
  po.tunnel_addr = cfg.proxy.tunnel_listen_addr;
  po.host_key_path = host_key;
  auto ssh = proxy::ProxyServer::listen(po, proxy);
  if (!ssh) return fail("proxy_service.listen_addr: " + ssh.error().message);
  tunnel_port = (*ssh)->tunnel_port();
  std::thread ssh_thread([&] { (*ssh)->run(stop); });

  std::printf("vigil: proxy of cluster \"%s\" (auth service %s): web API on %s, SSH on %s\n",
              id->cluster.c_str(), id->auth_server.c_str(), cfg.proxy.web_listen_addr.c_str(),
              cfg.proxy.listen_addr.c_str());
  std::fflush(stdout);
  if (options.ready_fd >= 0) {
    std::string ready = "ready 0 " + std::to_string((*web)->port()) + " " +
                        std::to_string((*ssh)->jump_port()) + " " +
                        std::to_string((*ssh)->tunnel_port()) + "\n";
    (void)!::write(options.ready_fd, ready.data(), ready.size());
    ::close(options.ready_fd);
  }
  while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ssh_thread.join();
  (*web)->join();
  return 0;
}

}  // namespace vigil::services
