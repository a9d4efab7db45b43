#include "services/cluster_services.hpp"
#include "services/recording_routes.hpp"
#include "services/proxy_gateway.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "api/router.hpp"
#include "api/server.hpp"
#include "auditlog/file_log.hpp"
#include "auditlog/retention.hpp"
#include "auditlog/search.hpp"
#include "auditlog/timeparse.hpp"
#include <sstream>
#include "authsvc/routes.hpp"
#include "authsvc/service.hpp"
#include "ca/authority.hpp"
#include "ca/key_file.hpp"
#include "ca/proxy_header.hpp"
#include "cluster/sqlite_store.hpp"
#include "pg/open_stores.hpp"
#include "pg/pg_cluster_store.hpp"
#include "cluster/store.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "proxy/node_directory.hpp"
#include "proxy/proxy_server.hpp"
#include "proxy/tunnel_registry.hpp"
#include "recording/file_store.hpp"
#include "relay/inbox.hpp"
#include "relay/recording_inbox.hpp"
#include "relay/wire.hpp"
#include "ssh/host_key.hpp"
#include "web/assets.hpp"
#include "web/event_filter.hpp"

namespace vigil::services {

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "vigil: cluster services: %s\n", message.c_str());
  std::fflush(stderr);
  return 1;
}

Result<void> private_dir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Error::sys("create " + path);
  return {};
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string host_of(const std::string& host_port) {
  auto split = split_listen_addr(host_port);
  return split ? split->first : std::string();
}

}  // namespace

Result<std::pair<std::string, uint16_t>> split_listen_addr(const std::string& addr) {
  std::string host, port;
  if (!addr.empty() && addr.front() == '[') {
    auto close = addr.find(']');
    if (close == std::string::npos || close + 1 >= addr.size() || addr[close + 1] != ':')
      return Error::of(Errc::invalid_argument, "'" + addr + "' is not [ADDR]:PORT");
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    auto colon = addr.rfind(':');
    if (colon == std::string::npos)
      return Error::of(Errc::invalid_argument, "'" + addr + "' is not HOST:PORT");
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
  }
  char* end = nullptr;
  unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end || p > 65535)
    return Error::of(Errc::invalid_argument, "'" + addr + "': the port is not 0 to 65535");
  return std::make_pair(host, static_cast<uint16_t>(p));
}

std::string advertised_tunnel_addr(const std::string& tunnel_listen_addr, uint16_t port) {
  std::string host = host_of(tunnel_listen_addr);
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

int run_cluster_services(const ClusterServicesOptions& options, const std::atomic<bool>& stop) {
  const config::Config& cfg = options.config;
  // A proxy on a host of its own: everything it needs comes from the auth
  // service's API (proxy_gateway.hpp).
  if (cfg.proxy_enabled && !cfg.auth_enabled) return run_proxy_only(options, stop);
  const std::string& dir = cfg.data_dir;
  for (const char* sub : {"/cluster", "/ca", "/admin", "/relay", "/proxy"})
    if (auto r = private_dir(dir + sub); !r) return fail(r.error().message);

  // teleport.storage: SQLite in data_dir, or PostgreSQL (pg/open_stores.hpp).
  auto backend = pg::open_cluster_backend(cfg);
  if (!backend) return fail(backend.error().message);
  cluster::ClusterStore store(std::move(*backend));
  if (auto r = store.ensure_builtin_roles(); !r) return fail(r.error().message);

  auto cas = ca::ClusterCAs::load_or_create(dir + "/ca", cfg.cluster_name, unix_now());
  if (!cas) return fail("certificate authorities: " + cas.error().message);

  auto audit_log = pg::open_audit_store(cfg, options.server_uuid);
  if (!audit_log) return fail("audit log: " + audit_log.error().message);
  // audit.retention, audit.recording_retention: the cluster's log and recordings.
  auditlog::RetentionRunner retention(
      dir, auditlog::Retention{cfg.audit.retention_ns, cfg.audit.recording_retention_ns},
      **audit_log, options.server_uuid);

  // Nodes' events and recordings (exactly once, in order per node).
  recording::FileRecordingStore recordings(dir);
  auto inbox = relay::Inbox::open(**audit_log, relay::InboxOptions{dir + "/relay/events", {}, {}});
  if (!inbox) return fail("event inbox: " + inbox.error().message);
  auto recording_inbox =
      relay::RecordingInbox::open(recordings, relay::RecordingInboxOptions{dir + "/relay/recordings"});
  if (!recording_inbox) return fail("recording inbox: " + recording_inbox.error().message);

  authsvc::Options service_options;
  service_options.cluster_name = cfg.cluster_name;
  service_options.second_factor = cfg.auth.second_factor == "otp" ? authsvc::SecondFactor::otp
                                                                    : authsvc::SecondFactor::off;
  service_options.proxy_public_addrs = cfg.proxy.public_addr;
  if (service_options.proxy_public_addrs.empty()) {
    // What users reach: the web port on this host's name.
    auto web = split_listen_addr(cfg.proxy.web_listen_addr);
    if (web) service_options.proxy_public_addrs.push_back(cfg.nodename + ":" + std::to_string(web->second));
  }
  // Heartbeats: one transaction a second for all nodes, not one synced
  // write each (docs/benchmarks-scale.md: 10,000 nodes).
  service_options.heartbeat_write_behind = true;
  authsvc::AuthService service(store, *cas, **audit_log, service_options);
  // Several auth services on one PostgreSQL database: what another one
  // writes is announced (LISTEN/NOTIFY), and this one drops what it holds
  // of it in memory.
  std::unique_ptr<pg::ChangeWatcher> watcher;
  if (cfg.storage.type == "postgresql") {
    auto w = pg::ChangeWatcher::open(cfg.storage.conn_string);
    if (!w) return fail(w.error().message);
    watcher = std::move(*w);
  }
  std::jthread watching([&](std::stop_token st) {
    while (watcher && !st.stop_requested()) {
      auto kinds = watcher->wait(std::chrono::milliseconds(250));
      if (!kinds) {
        log::warn(kinds.error().message + " (changes made by other auth services are seen "
                  "within the heartbeat flush until it is back)");
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      for (const std::string& k : *kinds) service.store_changed(k);
    }
  });

  // The service's own TLS identity: a fresh key at every start.
  auto server_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ecdsa_p256);
  if (!server_key) return fail(server_key.error().message);
  std::vector<std::string> addresses = {"127.0.0.1", "::1", "localhost", cfg.nodename};
  for (const auto& a : {cfg.auth.listen_addr, cfg.proxy.web_listen_addr}) {
    std::string h = host_of(a);
    if (!h.empty() && h != "0.0.0.0" && h != "::") addresses.push_back(h);
  }
  for (const auto& a : cfg.proxy.public_addr) {
    std::string h = host_of(a);
    if (!h.empty()) addresses.push_back(h);
  }
  auto server_cert = service.issue_server_certificate(options.server_uuid, cfg.nodename, addresses,
                                                      server_key->spki_der());
  if (!server_cert) return fail("the service's TLS certificate: " + server_cert.error().message);
  if (auto r = service.write_admin_identity(dir); !r)
    return fail("vigilctl's identity: " + r.error().message);

  // The port the proxy's tunnel listener got (0 until it listens, or none).
  std::atomic<uint16_t> tunnel_port{0};
  api::Router router;
  authsvc::add_routes(router, service);
  // The guide's discovery call, on the proxy's web port (and here: one router).
  // proxy.ssh.tunnel_listen_addr tells a node that names only proxy_server
  // which port its reverse tunnel goes to (it keeps the host it reached).
  router.add("GET", "/v1/webapi/find", [&service, &cfg, &tunnel_port](const api::Request&) -> Result<api::Reply> {
    auto f = service.find();
    nlohmann::json proxy = {{"public_addrs", f.proxy_public_addrs}};
    if (uint16_t port = tunnel_port.load(); port != 0)
      proxy["ssh"] = {{"tunnel_listen_addr", advertised_tunnel_addr(cfg.proxy.tunnel_listen_addr, port)}};
    return api::Reply::json({{"server_version", f.server_version},
                             {"cluster_name", f.cluster_name},
                             {"auth", {{"second_factor", authsvc::second_factor_name(f.second_factor)},
                                       {"type", "local"}}},
                             {"proxy", proxy},
                             {"ca_pin", f.ca_pin}});
  });

  // A node's caller identity for the relay: its uuid and name from its
  // certificate (the one the proxy forwarded, when it came through the
  // proxy), nothing from the body.
  auto node_caller = [&service](const api::Request& q) -> Result<relay::Caller> {
    auto c = service.caller(q.peer);
    if (!c) return c.error();
    if (c->kind != authsvc::CallerKind::node)
      return Error::of(Errc::permission_denied,
                       "only a node of the cluster sends events and recordings");
    return relay::Caller{c->name, c->node_name};
  };
  router.add(
      "POST", "/v1/events",
      [&, node_caller](const api::Request& q) -> Result<api::Reply> {
        auto caller = node_caller(q);
        if (!caller) return caller.error();
        auto batch = q.content_type == relay::kBatchLinesType ? relay::batch_from_lines(q.body)
                     : q.json.is_null()                        ? relay::batch_from_json(q.body)
                                                               : relay::batch_from_value(q.json);
        if (!batch) return batch.error();
        auto acked = (*inbox)->accept(*caller, *batch);
        if (!acked) return acked.error();
        return api::Reply::bytes(relay::to_json(relay::Ack{*acked}), "application/json");
      },
      // Waits for the audit log's sync: on the server's disk pool.
      api::RouteOptions{relay::kMaxBatchJsonBytes, /*waits_on_disk=*/true});
  router.add("GET", "/v1/recordings/:sid/upload",
             [&, node_caller](const api::Request& q) -> Result<api::Reply> {
               auto caller = node_caller(q);
               if (!caller) return caller.error();
               auto state = (*recording_inbox)->state(*caller, q.param("sid"));
               if (!state) return state.error();
               return api::Reply::bytes(relay::to_json(*state), "application/json");
             });
  router.add(
      "PUT", "/v1/recordings/:sid",
      [&, node_caller](const api::Request& q) -> Result<api::Reply> {
        auto caller = node_caller(q);
        if (!caller) return caller.error();
        auto meta = relay::chunk_meta_from(q.param("sid"), q.query_value("offset").value_or(""),
                                           q.query_value("final").value_or(""));
        if (!meta) return meta.error();
        auto state = (*recording_inbox)->put(*caller, *meta, q.body);
        if (!state) return state.error();
        return api::Reply::bytes(relay::to_json(*state), "application/json");
      },
      api::RouteOptions{relay::kMaxChunkBytes + 4096, /*waits_on_disk=*/true});

  // The recordings, read back (vsh recordings ls, vsh play); each playback
  // audited as session.recording.access.
  PlaybackAudit playback_audit(**audit_log, cfg.cluster_name, [] { return clock::realtime_ns(); },
                               [] { return clock::monotonic_ns(); });
  add_recording_routes(router, service, recordings, **recording_inbox, playback_audit);

  // The cluster's audit log, searched (vigilctl events): an admin or an
  // auditor (rules: event list) sees every event, any other user only
  // their own.
  router.add("GET", "/v1/events", [&](const api::Request& q) -> Result<api::Reply> {
    auto c = service.caller(q.peer);
    if (!c) return c.error();
    auditlog::Query query;
    if (auto v = q.query_value("from")) {
      auto t = auditlog::parse_rfc3339(*v);
      if (!t) return Error::of(Errc::invalid_argument, "from: give an RFC 3339 time");
      query.from_ns = *t;
    }
    if (auto v = q.query_value("to")) {
      auto t = auditlog::parse_rfc3339(*v);
      if (!t) return Error::of(Errc::invalid_argument, "to: give an RFC 3339 time");
      query.to_ns = *t;
    }
    if (auto v = q.query_value("type")) {
      std::string item;
      std::istringstream in(*v);
      while (std::getline(in, item, ','))
        if (!item.empty()) query.types.insert(item);
    }
    query.sid = q.query_value("sid").value_or("");
    query.user = q.query_value("user").value_or("");
    query.login = q.query_value("login").value_or("");
    query.after = q.query_value("after").value_or("");
    query.descending = q.query_value("order").value_or("asc") == "desc";
    if (auto v = q.query_value("limit")) {
      char* end = nullptr;
      unsigned long n = std::strtoul(v->c_str(), &end, 10);
      if (v->empty() || *end || n < 1 || n > 1000)
        return Error::of(Errc::invalid_argument, "limit: give a number from 1 to 1000");
      query.limit = n;
    }
    const bool everyone =
        c->kind == authsvc::CallerKind::admin ||
        (c->kind == authsvc::CallerKind::user && c->access && c->checker().can("event", "list"));
    if (!everyone) {
      // Refusals are audited (access.denied), as every refusal of the service is.
      if (c->kind != authsvc::CallerKind::user)
        return service.refuse(*c, "search events",
                              Error::of(Errc::permission_denied,
                                        "only users and admins search the audit log"));
      if (!query.user.empty() && query.user != c->name)
        return service.refuse(
            *c, "search events",
            Error::of(Errc::permission_denied,
                      "you may search only your own events (user=" + c->name +
                          "); others' need a role that allows event list, like auditor"));
      query.user = c->name;
    }
    // The page's filters (web/event_filter.hpp): text and node, over at
    // most kMaxScannedPages pages a call.
    web::EventFilter filter;
    filter.text = q.query_value("text").value_or("");
    filter.node = q.query_value("node").value_or("");
    if (filter.text.size() > web::kMaxFilterBytes || filter.node.size() > web::kMaxFilterBytes)
      return Error::of(Errc::invalid_argument, "text and node: give at most 1024 bytes each");
    nlohmann::json events = nlohmann::json::array();
    std::string next;
    size_t skipped = 0;
    for (size_t scanned = 0; scanned < web::kMaxScannedPages; ++scanned) {
      auto page = (*audit_log)->search(query);
      if (!page) return page.error();
      skipped += page->skipped;
      for (const auto& line : page->lines) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && filter.matches(j)) events.push_back(std::move(j));
      }
      next = page->next;
      if (filter.empty() || next.empty() || events.size() >= query.limit) break;
      query.after = next;
    }
    return api::Reply::json({{"events", events}, {"next", next}, {"skipped", skipped}});
  });

  // The web UI's files, on the web port only (web/assets.hpp).
  auto web_assets = web::load_for_proxy(cfg.proxy.web_assets_dir);
  if (!web_assets) return fail("the web UI: " + web_assets.error().message);
  web::add_routes(router, *web_assets);

  // The proxy's SSH side: the jump port for users, the tunnel port for nodes.
  std::string proxy_host_key = dir + "/proxy/host_key";
  std::string proxy_host_key_line;
  if (cfg.proxy_enabled) {
    if (auto r = ssh::ensure_host_key(proxy_host_key); !r) return fail(r.error().message);
    auto line = ssh::host_public_key_line(proxy_host_key);
    if (!line) return fail(line.error().message);
    proxy_host_key_line = *line;
  }
  // How a client checks the proxy's SSH host key (libssh servers present no
  // host certificate): the line, over the TLS connection it already trusts.
  router.add("GET", "/v1/proxy/host_key",
             [&proxy_host_key_line](const api::Request&) -> Result<api::Reply> {
               if (proxy_host_key_line.empty())
                 return Error::of(Errc::not_found, "this host runs no proxy");
               return api::Reply::json({{"host_key", proxy_host_key_line}});
             });

  auto listen = [&](const std::string& addr, const char* what,
                    bool browser_sessions = false) -> Result<std::unique_ptr<api::Server>> {
    auto where = split_listen_addr(addr);
    if (!where) return where.error();
    api::ServerOptions o;
    o.name = std::string(what) + " " + addr;  // its counters' log line
    o.address = where->first;
    o.port = where->second;
    o.certificate = *server_cert;
    o.ca_certificate = *cas->tls.active().certificate;
    o.key = &*server_key;
    o.client_certificates = api::ClientCertificates::optional;
    o.browser_sessions = browser_sessions;  // the web port only
    o.trusted = cas->tls.trusted_tls_certificates();
    o.cluster = cfg.cluster_name;
    return api::Server::listen(std::move(o), router);
  };
  std::unique_ptr<api::Server> auth_server, web_server;
  if (cfg.auth_enabled) {
    auto s = listen(cfg.auth.listen_addr, "auth API");
    if (!s) return fail("auth_service.listen_addr " + cfg.auth.listen_addr + ": " + s.error().message);
    auth_server = std::move(*s);
    auth_server->start();
  }
  if (cfg.proxy_enabled) {
    auto s = listen(cfg.proxy.web_listen_addr, "web API", /*browser_sessions=*/true);
    if (!s)
      return fail("proxy_service.web_listen_addr " + cfg.proxy.web_listen_addr + ": " +
                  s.error().message);
    web_server = std::move(*s);
    web_server->start();
  }

  auto user_cas = cas->ssh_user.trusted_ssh_cas();
  auto host_cas = cas->ssh_host.trusted_ssh_cas();
  if (!user_cas || !host_cas) return fail("the cluster's SSH CAs do not read back");
  proxy::ClusterNodeDirectory directory(store, cfg.cluster_name);
  proxy::TunnelRegistry tunnels;
  proxy::Proxy proxy{*user_cas, *host_cas, directory, tunnels};
  // Nodes learn each client's address from the proxy's signed header
  // (signed with the service's own identity, role auth).
  proxy.sign_origin = ca::make_origin_signer(*server_key, *server_cert);
  std::unique_ptr<proxy::ProxyServer> proxy_server;
  std::thread proxy_thread;
  if (cfg.proxy_enabled) {
    proxy::ProxyOptions o;
    o.jump_addr = cfg.proxy.listen_addr;
    o.tunnel_addr = cfg.proxy.tunnel_listen_addr;
    o.host_key_path = proxy_host_key;
    auto s = proxy::ProxyServer::listen(o, proxy);
    if (!s) return fail("proxy_service.listen_addr: " + s.error().message);
    proxy_server = std::move(*s);
    tunnel_port = proxy_server->tunnel_port();
    proxy_thread = std::thread([&] { proxy_server->run(stop); });
  }

  if (!options.local_node_token_path.empty()) {
    authsvc::Caller admin;
    admin.kind = authsvc::CallerKind::admin;
    admin.name = std::string(authsvc::kAdminName);
    authsvc::CreateTokenRequest request;
    request.roles = {cluster::SystemRole::node};
    request.ttl = cluster::Seconds{options.local_token_ttl};
    auto token = service.create_token(admin, request);
    if (!token) return fail("the local node's join token: " + token.error().message);
    if (auto r = ca::write_file_atomic(options.local_node_token_path, token->secret + "\n", 0600); !r)
      return fail(r.error().message);
  }

  std::printf("vigil: cluster \"%s\": auth service on %s (port %u)%s%s, CA pin %s\n",
              cfg.cluster_name.c_str(), cfg.auth.listen_addr.c_str(),
              auth_server ? auth_server->port() : 0, web_server ? ", proxy web API on " : "",
              web_server ? cfg.proxy.web_listen_addr.c_str() : "", cas->tls.pin().c_str());
  std::fflush(stdout);
  if (options.ready_fd >= 0) {
    std::string ready = "ready " + std::to_string(auth_server ? auth_server->port() : 0) + " " +
                        std::to_string(web_server ? web_server->port() : 0) + " " +
                        std::to_string(proxy_server ? proxy_server->jump_port() : 0) + " " +
                        std::to_string(proxy_server ? proxy_server->tunnel_port() : 0) + "\n";
    (void)!::write(options.ready_fd, ready.data(), ready.size());
    ::close(options.ready_fd);
  }

  // Expired tokens, nodes and sessions go once a minute; the heartbeats
  // held in memory are written once a second.
  auto last_purge = std::chrono::steady_clock::now();
  auto last_flush = last_purge;
  while (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (std::chrono::steady_clock::now() - last_flush >= std::chrono::seconds(1)) {
      last_flush = std::chrono::steady_clock::now();
      if (auto r = service.flush_heartbeats(); !r)
        log::warn("cluster services: writing heartbeats: " + r.error().message);
    }
    if (std::chrono::steady_clock::now() - last_purge > std::chrono::minutes(1)) {
      last_purge = std::chrono::steady_clock::now();
      if (auto r = service.purge_expired(); !r)
        log::warn("cluster services: purging expired records: " + r.error().message);
    }
  }
  if (proxy_thread.joinable()) proxy_thread.join();
  if (web_server) web_server->join();
  if (auth_server) auth_server->join();
  if (auto r = service.flush_heartbeats(); !r)
    log::warn("cluster services: writing heartbeats: " + r.error().message);
  if (auto r = (*audit_log)->flush(); !r) return fail("audit log: " + r.error().message);
  return 0;
}

}  // namespace vigil::services
