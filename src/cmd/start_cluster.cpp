// vigil start's cluster parts: the child that runs the auth service and the
// proxy as the service user, and what a node of a cluster needs (its
// identity, heartbeats, the spool that delivers its events and recordings).
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "api/server.hpp"
#include "ca/authority.hpp"
#include "commands.hpp"
#include "common/log.hpp"
#include "privsep/drop.hpp"
#include "authsvc/service.hpp"
#include "relay/wire.hpp"
#include "services/cluster_services.hpp"
#include "sshcert/authorize.hpp"
#include "start_cluster.hpp"

namespace vigil::cmd {

namespace {

std::atomic<bool> g_services_stop{false};
void stop_services(int) { g_services_stop = true; }

uid_t g_chown_uid = 0;
gid_t g_chown_gid = 0;
int chown_entry(const char* path, const struct stat* st, int, struct FTW*) {
  if (st->st_uid != g_chown_uid || st->st_gid != g_chown_gid)
    (void)!lchown(path, g_chown_uid, g_chown_gid);
  return 0;
}

}  // namespace

Result<void> prepare_service_dirs(const std::string& data_dir, const privsep::ServiceUser& who,
                                  bool auth) {
  if (mkdir(data_dir.c_str(), 0711) != 0 && errno != EEXIST) return Error::sys("create " + data_dir);
  struct stat st{};
  if (stat(data_dir.c_str(), &st) != 0) return Error::sys("stat " + data_dir);
  // The service user must pass through data_dir to its own directories;
  // it lists nothing (no read bit).
  if ((st.st_mode & 0001) == 0 && chmod(data_dir.c_str(), (st.st_mode & 0777) | 0001) != 0)
    return Error::sys("chmod " + data_dir);
  g_chown_uid = who.uid;
  g_chown_gid = who.gid;
  // A proxy alone keeps only its identity and host key (proxy/).
  const std::vector<std::string> subs =
      auth ? std::vector<std::string>{"/cluster", "/ca", "/admin", "/log", "/relay", "/proxy"}
           : std::vector<std::string>{"/proxy"};
  for (const auto& sub : subs) {
    std::string path = data_dir + sub;
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Error::sys("create " + path);
    if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Error::of(Errc::failed_precondition, path + " is not a directory: move it away");
    // What an earlier run as root left there becomes the service's.
    if (nftw(path.c_str(), chown_entry, 16, FTW_PHYS) != 0) return Error::sys("chown " + path);
  }
  return {};
}

Result<ServicesChild> spawn_cluster_services(const DataDirOptions& where, const config::Config& cfg,
                                             const privsep::ServiceUser& who,
                                             const std::string& server_id,
                                             const std::string& local_token_path) {
  if (auto r = prepare_service_dirs(cfg.data_dir, who, cfg.auth_enabled); !r) return r.error();
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return Error::sys("pipe");
  std::vector<std::string> args = {"/proc/self/exe", "cluster-services",  "--server-id", server_id,
                                   "--ready-fd",     "3",                 "--user",      who.name,
                                   "--uid",          std::to_string(who.uid), "--gid",   std::to_string(who.gid),
                                   "--data-dir",     cfg.data_dir};
  if (!where.config_file.empty()) args.insert(args.end(), {"-c", where.config_file});
  if (!local_token_path.empty()) args.insert(args.end(), {"--local-token", local_token_path});
  // vigil -v start: the services log at info level too (the API servers' counters).
  if (log::level() <= log::Level::info) args.insert(args.begin() + 1, "-v");
  pid_t pid = fork();
  if (pid < 0) return Error::sys("fork");
  if (pid == 0) {
    // The ready pipe as fd 3, nothing else of ours (every other fd is CLOEXEC).
    if (ready[1] == 3) {
      if (fcntl(3, F_SETFD, 0) != 0) _exit(127);
    } else if (dup2(ready[1], 3) < 0) {
      _exit(127);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(ready[1]);
  // Wait for "ready ..." (the child prints why when it fails).
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (line.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{ready[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n <= 0) continue;
    char buf[256];
    ssize_t got = read(ready[0], buf, sizeof buf);
    if (got <= 0) break;
    line.append(buf, static_cast<size_t>(got));
  }
  close(ready[0]);
  ServicesChild child;
  child.pid = pid;
  std::istringstream in(line);
  std::string word;
  if (!(in >> word) || word != "ready" ||
      !(in >> child.auth_port >> child.web_port >> child.jump_port >> child.tunnel_port)) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    return Error::of(Errc::unavailable,
                     "the auth service did not start (its error is above); nothing was started");
  }
  return child;
}

void stop_cluster_services(ServicesChild& child) {
  if (child.pid <= 0) return;
  kill(child.pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (waitpid(child.pid, nullptr, WNOHANG) == child.pid) {
      child.pid = 0;
      return;
    }
    usleep(50'000);
  }
  kill(child.pid, SIGKILL);
  waitpid(child.pid, nullptr, 0);
  child.pid = 0;
}

namespace {

struct ServicesArgs {
  DataDirOptions where;
  std::string server_id, local_token, user;
  int ready_fd = -1;
  uid_t uid = 0;
  gid_t gid = 0;
};

int run_services(const ServicesArgs& a) {
  const pid_t monitor = getppid();
  // Root until here: drop before anything reads from the network.
  privsep::ServiceUser who{a.user, a.uid, a.gid};
  if (auto r = privsep::drop_to(who, privsep::DropOptions{{1, 2, a.ready_fd}, ""}); !r) {
    std::fprintf(stderr, "vigil: cluster services: %s\n", r.error().message.c_str());
    return kVigilFailed;
  }
  // Ends with vigil start, even a SIGKILLed one: an orphan would keep the
  // ports and the data_dir, and the next start would fail on them. SIGTERM,
  // so the audit log is flushed; set after the drop (changing ids clears it).
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != monitor) {
    std::fprintf(stderr, "vigil: cluster services: vigil start is gone; stopping\n");
    return kVigilFailed;
  }
  auto cfg = a.where.resolve();
  if (!cfg) {
    std::fprintf(stderr, "vigil: cluster services: %s\n", cfg.error().message.c_str());
    return kVigilFailed;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = stop_services;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  services::ClusterServicesOptions o;
  o.config = *cfg;
  o.server_uuid = a.server_id;
  o.local_node_token_path = a.local_token;
  o.ready_fd = a.ready_fd;
  return services::run_cluster_services(o, g_services_stop);
}

}  // namespace

Subcommand add_cluster_services(CLI::App& app) {
  auto a = std::make_shared<ServicesArgs>();
  auto* sub = app.add_subcommand("cluster-services", "");  // started by vigil start only
  a->where.add_to(sub);
  sub->add_option("--server-id", a->server_id)->required();
  sub->add_option("--ready-fd", a->ready_fd)->required();
  sub->add_option("--user", a->user)->required();
  sub->add_option("--uid", a->uid)->required();
  sub->add_option("--gid", a->gid)->required();
  sub->add_option("--local-token", a->local_token);
  return {sub, [a] {
            if (getppid() == 1 || fcntl(a->ready_fd, F_GETFD) < 0) {
              std::fprintf(stderr, "vigil cluster-services: run by vigil start only\n");
              return kVigilFailed;
            }
            return run_services(*a);
          }};
}

namespace {

// One HTTPS connection to the auth service with the node's identity, made
// again after a failure; each user (the forwarder's thread, the
// uploader's) has its own.
class NodeCaller {
 public:
  explicit NodeCaller(const services::NodeIdentity& id) : id_(id) {}
  Result<api::Response> call(std::string_view method, const std::string& path,
                             const std::map<std::string, std::string>& query, std::string_view body,
                             std::string_view type) {
    std::lock_guard lock(mu_);
    if (!client_) {
      auto c = services::connect_to_auth(id_);
      if (!c) return c.error();
      client_ = std::move(*c);
    }
    auto r = client_->call(method, path, query, body, type);
    if (!r) {
      client_.reset();
      return r.error();
    }
    if (r->status / 100 != 2) return api::error_from_response(r->status, r->body);
    return r;
  }

 private:
  const services::NodeIdentity& id_;
  std::mutex mu_;
  std::unique_ptr<api::Client> client_;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string advertised_address(const config::Config& cfg, uint16_t port) {
  std::string listen = cfg.ssh.listen_addr;
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host == "0.0.0.0" || host == "[::]" || host.empty()) host = cfg.nodename;
  return host + ":" + std::to_string(port);
}

}  // namespace

ClusterNode::~ClusterNode() {
  // Heartbeats and uploads stop first; the forwarder then gets a moment to
  // deliver what the last sessions wrote (the spool keeps the rest).
  agent.reset();
  uploader.reset();
  if (forwarder)
    (void)forwarder->flush_wait(std::chrono::steady_clock::now() + std::chrono::seconds(3));
  forwarder.reset();
  sink.reset();
  outbox.reset();
}

Result<void> authorize_cluster_login(services::NodeAgent& agent,
                                     const sshcert::Certificate& cert, const std::string& login) {
  auto roles = sshcert::extension_text(cert, authsvc::kRolesExtension);
  if (!roles)
    return Error::of(Errc::permission_denied,
                     "the certificate names no roles of this cluster: log in again (vsh login)");
  auto logins = sshcert::extension_text(cert, authsvc::kLoginsExtension);
  // No logins extension: no trait to expand (never the principals, which
  // are every role's logins together).
  return agent.check_login(split_commas(*roles), logins ? split_commas(*logins) : std::vector<std::string>{},
                           login);
}

Result<std::unique_ptr<ClusterNode>> start_cluster_node(const config::Config& cfg,
                                                        const ClusterNodeParams& p) {
  auto id = services::load_node_identity(cfg.data_dir);
  if (!id && id.error().kind() == Errc::not_found) {
    services::JoinParams j;
    j.data_dir = cfg.data_dir;
    j.auth_server = p.auth_server;
    j.token = p.token;
    j.ca_pin = p.ca_pin;
    j.trusted = p.trusted;
    j.trusted_cluster = cfg.cluster_name;
    j.node_name = cfg.nodename;
    if (p.tunnel)
      j.tunnel = true;
    else
      j.addresses = {advertised_address(cfg, p.ssh_port)};
    j.host_key_path = p.host_key_path;
    id = services::join_cluster(j);
    if (id)
      std::printf("vigil: joined cluster \"%s\" as node %s\n", id->cluster.c_str(), id->uuid.c_str());
  }
  if (!id) return id.error();
  auto node = std::unique_ptr<ClusterNode>(new ClusterNode{std::move(*id)});
  node->user_cas_path = cfg.data_dir + "/node/user_cas.pub";
  if (p.tunnel) {
    auto tunnel = services::find_proxy_tunnel(node->identity);
    if (!tunnel)
      return Error::of(tunnel.error().kind(), "the proxy at " + node->identity.auth_server + ": " +
                                                  tunnel.error().message);
    node->tunnel = std::move(*tunnel);
  }

  relay::OutboxOptions out;
  out.data_dir = cfg.data_dir;
  out.server_id = node->identity.uuid;  // what the auth service knows this node by
  out.server_hostname = cfg.nodename;
  auto outbox = relay::Outbox::open(out);
  if (!outbox) return Error::of(outbox.error().kind(), "the event spool: " + outbox.error().message);
  node->outbox = std::move(*outbox);
  node->sink = std::make_unique<relay::SpoolingStore>(*node->outbox);
  auto events = std::make_shared<NodeCaller>(node->identity);
  node->forwarder = std::make_unique<relay::Forwarder>(
      *node->outbox, [events](const relay::Batch& batch) -> Result<uint64_t> {
        auto r = events->call("POST", "/v1/events", {}, relay::to_lines(batch), relay::kBatchLinesType);
        if (!r) return r.error();
        auto ack = relay::ack_from_json(r->body);
        if (!ack) return ack.error();
        return ack->acked_seq;
      });

  node->recordings = std::make_unique<recording::FileRecordingStore>(cfg.data_dir + "/node");
  auto uploads = std::make_shared<NodeCaller>(node->identity);
  relay::UploadFns fns;
  fns.state = [uploads](const std::string& sid) -> Result<relay::RecordingState> {
    auto r = uploads->call("GET", "/v1/recordings/" + api::percent_encode(sid) + "/upload", {}, {},
                           "application/json");
    if (!r) return r.error();
    return relay::recording_state_from_json(r->body);
  };
  fns.upload = [uploads](const std::string& sid, uint64_t offset, std::string_view bytes,
                         bool final) -> Result<relay::RecordingState> {
    auto r = uploads->call("PUT", "/v1/recordings/" + api::percent_encode(sid),
                           {{"offset", std::to_string(offset)}, {"final", final ? "true" : "false"}},
                           bytes, "application/octet-stream");
    if (!r) return r.error();
    return relay::recording_state_from_json(r->body);
  };
  node->uploader = std::make_unique<relay::RecordingUploader>(*node->recordings, fns);
  node->uploader->run_every(std::chrono::seconds(2));

  services::NodeInfo info;
  info.name = cfg.nodename;
  info.tunnel = p.tunnel;
  if (!p.tunnel) info.address = advertised_address(cfg, p.ssh_port);
  // Started by the caller once the node listens: a node is not listed
  // before users can reach it.
  node->agent = std::make_unique<services::NodeAgent>(node->identity, info);
  return node;
}

}  // namespace vigil::cmd
