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
#include "auditlog/session_log.hpp"
#include "recording/file_store.hpp"
#include "sshcert/rate_limit.hpp"
#include "sshcert/trusted_cas.hpp"
#include "commands.hpp"
#include "engine/engine.hpp"
#include "engine/host.hpp"
#include "privsep/drop.hpp"
#include "privsep/monitor.hpp"
#include "ssh/host_key.hpp"
#include "ssh/server.hpp"

namespace vigil::cmd {
namespace {

std::atomic<bool> g_stop{false};

void request_stop(int) { g_stop = true; }

int fail(const std::string& message) {
  std::fprintf(stderr, "vigil start: %s\n", message.c_str());
  return kVigilFailed;
}

int start(const DataDirOptions& where) {
  auto cfg = where.resolve();
  if (!cfg) return fail(cfg.error().message);
  if (!cfg->ssh.enabled)
    return fail(cfg->source + ": ssh_service.enabled is not true: this node has nothing to run "
                "(set ssh_service.enabled: true)");
  if (cfg->ssh.trusted_user_ca_keys.empty())
    return fail(cfg->source + ": ssh_service.trusted_user_ca_keys is empty: nobody could log in "
                "(list the files of the user CAs this node trusts)");
  auto cas = sshcert::TrustedCAs::load(cfg->ssh.trusted_user_ca_keys);
  if (!cas) return fail(cas.error().message);
  const auto& recording = cfg->ssh.enhanced_recording;
  if (recording.enabled) {
    if (auto r = host::require_bpf_privileges(); !r) return fail(r.error().message);
  } else if (geteuid() != 0) {
    return fail("needs root: sessions run as their login's user (run it as root)");
  }

  // The account the network-facing front ends run as.
  bool created = false;
  auto service_user = privsep::ensure_service_user(privsep::kServiceUser, &created);
  if (!service_user) return fail(service_user.error().message);
  if (created)
    std::printf("vigil: created the system user '%s' (no home, no shell): SSH connections are "
                "served as it\n", privsep::kServiceUser);

  auto server_id = audit::load_or_create_host_uuid(cfg->data_dir);
  if (!server_id) return fail(server_id.error().message);
  std::string host_key = cfg->data_dir + "/host_key";
  if (auto r = ssh::ensure_host_key(host_key); !r) return fail(r.error().message);

  auditlog::FileLogOptions log_options;
  log_options.data_dir = cfg->data_dir;
  log_options.server_uuid = *server_id;
  auto audit_log = auditlog::FileLog::open(log_options);
  if (!audit_log) return fail("audit log: " + audit_log.error().message);
  // The node's stores: the file back ends under data_dir.
  recording::FileRecordingStore recordings(cfg->data_dir);

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
  if (auto recovered = auditlog::recover_sessions(cfg->data_dir, **audit_log, recordings);
      !recovered)
    return fail(recovered.error().message);
  else if (*recovered)
    std::printf("vigil: %zu sessions of an earlier run had not ended: their end is written, "
                "marked recovered\n", *recovered);

  privsep::MonitorContext monitor{engine.get(), **audit_log, recordings, *cas, {}, cfg->data_dir,
                                  cfg->ssh.default_kinds};
  monitor.identity.cluster_name = cfg->cluster_name;
  monitor.identity.server_hostname = cfg->nodename;
  monitor.identity.server_id = *server_id;

  ssh::ServerOptions server_options;
  server_options.listen_addr = cfg->ssh.listen_addr;
  // This very binary, whatever replaced the file since.
  server_options.front_end_argv = {
      "/proc/self/exe", "ssh-frontend", "--host-key", host_key,
      "--login-grace", std::to_string(cfg->ssh.login_grace_time),
      "--user", service_user->name, "--uid", std::to_string(service_user->uid),
      "--gid", std::to_string(service_user->gid)};
  for (const auto& ca : cfg->ssh.trusted_user_ca_keys)
    server_options.front_end_argv.insert(server_options.front_end_argv.end(), {"--ca", ca});
  auto server = ssh::Server::listen(server_options, monitor);
  if (!server) return fail(server.error().message);

  // Writing to a pipe whose reader is gone must fail with EPIPE, not kill
  // the node. (Sessions' processes get the default back before exec.)
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = request_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::printf("vigil: SSH node listening on %s (port %u), server_id %s\n",
              cfg->ssh.listen_addr.c_str(), (*server)->port(), server_id->c_str());
  std::fflush(stdout);
  bool all_ended = (*server)->run(g_stop);
  if (!all_ended) {
    // A connection is stuck: its session's journal lets the next
    // start write its end, and the engine's guard kills its processes.
    (void)(*audit_log)->flush();
    std::fflush(stdout);
    _exit(kVigilFailed);
  }
  // Processes sessions left running cannot be recorded once the node is
  // gone: the engine kills them and their sessions' last events are written.
  engine.reset();
  if (auto r = (*audit_log)->flush(); !r) return fail("audit log: " + r.error().message);
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
