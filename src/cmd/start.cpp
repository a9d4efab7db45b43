// vigil start: run the node's SSH service. Every session channel's process
// runs in its own recorded session (docs/ssh-node.md). This process is the
// root monitor; each connection is served by a `vigil ssh-frontend` that
// has dropped to the `vigil` user (docs/architecture.md, "Privilege
// separation of the node").
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "audit/host_id.hpp"
#include "auditlog/file_log.hpp"
#include "auditlog/retention.hpp"
#include "auditlog/session_log.hpp"
#include "recording/file_store.hpp"
#include "sshcert/rate_limit.hpp"
#include "sshcert/trusted_cas.hpp"
#include "commands.hpp"
#include "diag.hpp"
#include "engine/engine.hpp"
#include "engine/host.hpp"
#include "privsep/drop.hpp"
#include "privsep/monitor.hpp"
#include "ssh/host_key.hpp"
#include "ssh/server.hpp"
#include "client/pem.hpp"
#include "services/cluster_services.hpp"
#include "start_cluster.hpp"
#include "tunnel.hpp"
#include <sys/wait.h>

namespace vigil::cmd {
namespace {

std::atomic<bool> g_stop{false};

void request_stop(int) { g_stop = true; }

int fail(const std::string& message) {
  std::fprintf(stderr, "vigil start: %s\n", message.c_str());
  return kVigilFailed;
}

// A token file the auth service of this host wrote (one line).
Result<std::string> read_small_file(const std::string& path, size_t max = 256) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return Error::sys("read " + path);
  std::string s(max, '\0');
  size_t n = std::fread(s.data(), 1, max, f);
  std::fclose(f);
  s.resize(n);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Runs until SIGTERM/SIGINT with nothing of its own to serve (a host that
// runs only the auth service or the proxy).
int wait_for_stop(ServicesChild& child) {
  while (!g_stop) {
    int status = 0;
    if (waitpid(child.pid, &status, WNOHANG) == child.pid) {
      child.pid = 0;
      return fail("the cluster services ended (their error is above)");
    }
    usleep(100'000);
  }
  stop_cluster_services(child);
  return 0;
}

int start(const DataDirOptions& where) {
  auto cfg = where.resolve();
  if (!cfg) return fail(cfg.error().message);
  const bool services = cfg->auth_enabled || cfg->proxy_enabled;
  // A node of a cluster: it joins an auth service (here or elsewhere)
  // rather than trusting CA files of its own.
  const bool cluster_node =
      cfg->ssh.enabled && (cfg->auth_enabled || !cfg->auth_server.empty() || !cfg->proxy_server.empty());
  if (!cfg->ssh.enabled && !services)
    return fail(cfg->source + ": no service is enabled: this host has nothing to run (set "
                "ssh_service.enabled, auth_service.enabled or proxy_service.enabled to true)");
  if (cfg->ssh.enabled && !cluster_node && cfg->ssh.trusted_user_ca_keys.empty())
    return fail(cfg->source + ": ssh_service.trusted_user_ca_keys is empty and no auth_server is "
                "set: nobody could log in (list the files of the user CAs this node trusts, or "
                "join a cluster with teleport.auth_server and teleport.auth_token)");
  if (geteuid() != 0)
    return fail("needs root: it drops the network-facing services to the 'vigil' user and runs "
                "sessions as their login's user (run it as root)");
  const auto& recording = cfg->ssh.enhanced_recording;
  if (cfg->ssh.enabled && recording.enabled) {
    if (auto r = host::require_bpf_privileges(); !r) return fail(r.error().message);
  }

  // The account the network-facing processes run as.
  bool created = false;
  auto service_user = privsep::ensure_service_user(privsep::kServiceUser, &created);
  if (!service_user) return fail(service_user.error().message);
  if (created)
    std::printf("vigil: created the system user '%s' (no home, no shell): the network-facing "
                "services run as it\n", privsep::kServiceUser);

  // The diagnostics listener first: /healthz answers while the rest starts.
  auto diag = start_node_diag(*cfg);
  if (!diag) return fail(diag.error().message);
  if (*diag)
    std::printf("vigil: diagnostics (/metrics, /healthz, /readyz) on %s (port %u)\n",
                cfg->diag_addr.c_str(), (*diag)->server->port());

  auto server_id = audit::load_or_create_host_uuid(cfg->data_dir);
  if (!server_id) return fail(server_id.error().message);

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = request_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  // The auth service and the proxy: a child as the service user.
  ServicesChild child;
  const bool local_node_joins = cluster_node && cfg->auth_enabled;
  std::string local_token = cfg->data_dir + "/cluster/local-node-token";
  if (services) {
    auto spawned = spawn_cluster_services(
        where, *cfg, *service_user, *server_id,
        local_node_joins && !services::load_node_identity(cfg->data_dir) ? local_token : "");
    if (!spawned) return fail(spawned.error().message);
    child = *spawned;
  }
  struct ChildGuard {
    ServicesChild& c;
    ~ChildGuard() { stop_cluster_services(c); }
  } child_guard{child};
  if (!cfg->ssh.enabled) return wait_for_stop(child);

  std::string host_key = cfg->data_dir + "/host_key";
  if (auto r = ssh::ensure_host_key(host_key); !r) return fail(r.error().message);
  auto listen = services::split_listen_addr(cfg->ssh.listen_addr);
  if (!listen) return fail("ssh_service.listen_addr: " + listen.error().message);

  // Where events and recordings go: the cluster's auth service through the
  // spool, or (standalone) this node's own audit log and recordings.
  std::unique_ptr<ClusterNode> node;
  std::unique_ptr<auditlog::FileLog> own_log;
  std::unique_ptr<recording::FileRecordingStore> own_recordings;
  std::unique_ptr<auditlog::RetentionRunner> own_retention;  // before own_log goes
  auditlog::AuditStore* sink = nullptr;
  recording::RecordingStore* recordings = nullptr;
  std::vector<std::string> user_ca_files = cfg->ssh.trusted_user_ca_keys;
  if (cluster_node) {
    ClusterNodeParams params;
    params.server_id = *server_id;
    params.host_key_path = host_key;
    params.ssh_port = listen->second;
    if (cfg->auth_enabled) {
      // The auth service of this host: its CA is at hand, its token too.
      params.auth_server = "127.0.0.1:" + std::to_string(child.auth_port);
      // The CA certificates the service put beside vigilctl's identity
      // (never its keys: those are the service user's alone).
      auto pem = read_small_file(cfg->data_dir + "/admin/ca.pem", 256 * 1024);
      if (!pem) return fail("the cluster's TLS CA: " + pem.error().message);
      auto trusted = client::split_pem_certificates(*pem);
      if (!trusted) return fail("the cluster's TLS CA: " + trusted.error().message);
      params.trusted = std::move(*trusted);
      if (auto token = read_small_file(local_token)) params.token = *token;
    } else {
      params.auth_server = !cfg->auth_server.empty() ? cfg->auth_server : cfg->proxy_server;
      // Only proxy_server: everything goes to the proxy's web port, and
      // users reach the node through its reverse tunnel.
      params.tunnel = cfg->auth_server.empty();
      params.token = cfg->auth_token;
      params.ca_pin = cfg->ca_pin;
    }
    auto joined = start_cluster_node(*cfg, params);
    if (!joined) return fail(joined.error().message);
    node = std::move(*joined);
    if (*diag) (*diag)->joined = false;  // until the first heartbeat below
    sink = node->sink.get();
    recordings = node->recordings.get();
    user_ca_files = {node->user_cas_path};
  } else {
    auditlog::FileLogOptions log_options;
    log_options.data_dir = cfg->data_dir;
    log_options.server_uuid = *server_id;
    auto audit_log = auditlog::FileLog::open(log_options);
    if (!audit_log) return fail("audit log: " + audit_log.error().message);
    own_log = std::move(*audit_log);
    own_recordings = std::make_unique<recording::FileRecordingStore>(cfg->data_dir);
    // audit.retention, audit.recording_retention: this node keeps its own
    // log (a node of a cluster: the auth service keeps it).
    own_retention = std::make_unique<auditlog::RetentionRunner>(
        cfg->data_dir,
        auditlog::Retention{cfg->audit.retention_ns, cfg->audit.recording_retention_ns},
        *own_log, *server_id);
    sink = own_log.get();
    recordings = own_recordings.get();
  }
  auto cas = sshcert::TrustedCAs::load(user_ca_files);
  if (!cas) return fail(cas.error().message);

  // Before anything new runs: the engine kills what sessions of a dead run
  // left (its guard normally did), and their missing ends are written.
  std::unique_ptr<Engine> engine;
  if (recording.enabled) {
    auto started = Engine::start(engine_options(recording));
    if (!started) return fail("cannot record: " + started.error().message);
    engine = std::move(started.value());
  } else {
    std::printf("vigil: enhanced recording is off (%s): sessions are recorded as terminal "
                "output and audit events only, no BPF is loaded; set "
                "ssh_service.enhanced_recording.enabled: true to record commands, files and "
                "connections\n",
                recording.enabled_given
                    ? "ssh_service.enhanced_recording.enabled: false"
                    : "ssh_service.enhanced_recording.enabled is not set, and the guide's "
                      "default is false");
  }
  // Whatever way this returns, scrapes stop reading the engine and the
  // spool before they are gone (they are destroyed before this guard is).
  struct DiagGuard {
    NodeDiag* d;
    ~DiagGuard() {
      if (d) d->forget_sources();
    }
  } diag_guard{diag->get()};
  if (*diag && node) (*diag)->outbox = node->outbox.get();
  if (auto recovered = auditlog::recover_sessions(cfg->data_dir, *sink, *recordings); !recovered)
    return fail(recovered.error().message);
  else if (*recovered)
    std::printf("vigil: %zu sessions of an earlier run had not ended: their end is written, "
                "marked recovered\n", *recovered);

  // Counted on their way when diagnostics are on.
  std::unique_ptr<MeteredEmitter> metered_log;
  std::unique_ptr<MeteredRecordings> metered_recordings;
  auditlog::Emitter* monitor_log = sink;
  recording::RecordingStore* monitor_recordings = recordings;
  if (*diag) {
    metered_log = std::make_unique<MeteredEmitter>(*sink, (*diag)->node);
    metered_recordings = std::make_unique<MeteredRecordings>(*recordings, (*diag)->node);
    monitor_log = metered_log.get();
    monitor_recordings = metered_recordings.get();
    (*diag)->engine = engine.get();
  }
  privsep::MonitorContext monitor{engine.get(), *monitor_log, *monitor_recordings, *cas, {},
                                  cfg->data_dir, cfg->ssh.default_kinds};
  if (*diag) monitor.metrics = &(*diag)->node;
  monitor.identity.cluster_name = node ? node->identity.cluster : cfg->cluster_name;
  monitor.identity.server_hostname = cfg->nodename;
  // A node of a cluster is known by the uuid it joined with.
  monitor.identity.server_id = node ? node->identity.uuid : *server_id;
  if (node) {
    // Who may say where a connection came from: the cluster's proxy, with
    // a header signed by its identity (ca/proxy_header.hpp).
    monitor.proxy_trust.trusted = node->identity.tls_cas;
    monitor.proxy_trust.cluster = node->identity.cluster;
    monitor.proxy_trust.node_uuid = node->identity.uuid;
    services::NodeAgent* agent = node->agent.get();
    monitor.authorize_login = [agent](const sshcert::Certificate& cert, const std::string& login) {
      return authorize_cluster_login(*agent, cert, login);
    };
  }

  ssh::ServerOptions server_options;
  server_options.listen_addr = cfg->ssh.listen_addr;
  // This very binary, whatever replaced the file since.
  server_options.front_end_argv = {
      "/proc/self/exe", "ssh-frontend", "--host-key", host_key,
      "--login-grace", std::to_string(cfg->ssh.login_grace_time),
      "--user", service_user->name, "--uid", std::to_string(service_user->uid),
      "--gid", std::to_string(service_user->gid)};
  for (const auto& ca : user_ca_files)
    server_options.front_end_argv.insert(server_options.front_end_argv.end(), {"--ca", ca});
  auto server = ssh::Server::listen(server_options, monitor);
  if (!server) return fail(server.error().message);
  // The reverse tunnel, held by a helper process as the service user (it
  // parses what the proxy sends); its channels come to the port above.
  std::unique_ptr<TunnelAgentProcess> tunnel_agent;
  if (node && node->tunnel) {
    TunnelAgentParams t;
    t.proxy_addr = node->tunnel->tunnel_addr;
    t.proxy_host_key = node->tunnel->proxy_host_key;
    t.host_key_path = host_key;
    t.host_cert_path = cfg->data_dir + "/node/host-cert.pub";
    t.local_ssh_addr = local_ssh_address(cfg->ssh.listen_addr, (*server)->port());
    t.user = *service_user;
    tunnel_agent = std::make_unique<TunnelAgentProcess>(std::move(t));
    if (auto r = tunnel_agent->start(); !r) return fail(r.error().message);
  }
  if (node) {
    // Listed (and the roles fetched) only now that users can reach it.
    if (auto r = node->agent->start(); !r)
      return fail("the first heartbeat to the auth service at " + node->identity.auth_server +
                  ": " + r.error().message);
  }
  if (*diag) {
    (*diag)->joined = true;
    (*diag)->listening = true;
  }

  std::printf("vigil: SSH node listening on %s (port %u), server_id %s%s%s\n",
              cfg->ssh.listen_addr.c_str(), (*server)->port(),
              (node ? node->identity.uuid : *server_id).c_str(),
              node ? (", node of cluster \"" + node->identity.cluster + "\"").c_str() : "",
              tunnel_agent ? (", reached through the proxy's tunnel at " + node->tunnel->tunnel_addr).c_str() : "");
  std::fflush(stdout);
  bool all_ended = (*server)->run(g_stop);
  if (!all_ended) {
    // A connection is stuck: its session's journal lets the next
    // start write its end, and the engine's guard kills its processes.
    (void)sink->flush();
    std::fflush(stdout);
    _exit(kVigilFailed);
  }
  // Processes sessions left running cannot be recorded once the node is
  // gone: the engine kills them and their sessions' last events are written.
  if (*diag) (*diag)->forget_sources();
  engine.reset();
  if (auto r = sink->flush(); !r) return fail("audit log: " + r.error().message);
  node.reset();
  return 0;
}

}  // namespace

// Not for people: the monitor starts one per connection (fd 3 the
// connection, fd 4 the monitor), as root; it drops to the service user
// before it reads from the network.
static int ssh_frontend(const ssh::FrontEndOptions& options) {
  if (fcntl(3, F_GETFD) < 0 || fcntl(4, F_GETFD) < 0) {
    std::fprintf(stderr, "vigil ssh-frontend: run by vigil start only (fds 3 and 4 are its "
                 "connection and monitor)\n");
    return kVigilFailed;
  }
  return ssh::run_front_end(options);
}

Subcommand add_ssh_frontend(CLI::App& app) {
  auto options = std::make_shared<ssh::FrontEndOptions>();
  auto* sub = app.add_subcommand("ssh-frontend", "");  // no description: hidden from --help
  sub->add_option("--host-key", options->host_key_path)->required();
  sub->add_option("--ca", options->trusted_user_ca_keys)->required();
  sub->add_option("--login-grace", options->login_grace_seconds)->required();
  sub->add_option("--user", options->user)->required();
  sub->add_option("--uid", options->uid)->required();
  sub->add_option("--gid", options->gid)->required();
  return {sub, [options] { return ssh_frontend(*options); }};
}

Subcommand add_start(CLI::App& app) {
  auto where = std::make_shared<DataDirOptions>();
  auto* sub = app.add_subcommand("start", "run the SSH node: certificate logins, every session recorded");
  where->add_to(sub);
  return {sub, [where] { return start(*where); }};
}

}  // namespace vigil::cmd
