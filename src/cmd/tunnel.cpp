#include "tunnel.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/log.hpp"
#include "proxy/tunnel_agent.hpp"
#include "services/cluster_services.hpp"

extern char** environ;

namespace vigil::cmd {

std::string local_ssh_address(const std::string& listen_addr, uint16_t port) {
  auto split = services::split_listen_addr(listen_addr);
  std::string host = split ? split->first : "";
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

TunnelAgentProcess::TunnelAgentProcess(TunnelAgentParams p) {
  // This very binary, whatever replaced the file since.
  argv_ = {"/proc/self/exe",   "tunnel-agent",      "--proxy",     p.proxy_addr,
           "--proxy-host-key", p.proxy_host_key,    "--host-key",  p.host_key_path,
           "--host-cert",      p.host_cert_path,    "--local-ssh", p.local_ssh_addr,
           "--user",           p.user.name,         "--uid",       std::to_string(p.user.uid),
           "--gid",            std::to_string(p.user.gid)};
}

TunnelAgentProcess::~TunnelAgentProcess() { stop(); }

Result<pid_t> TunnelAgentProcess::spawn() {
  // posix_spawn: the monitor is multithreaded; the child only execs, with
  // nothing of ours but 0..2 (it drops those too, but stderr, the log).
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (auto& a : argv_) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::sys("cannot start the tunnel agent", rc);
  return pid;
}

Result<void> TunnelAgentProcess::start() {
  std::lock_guard lock(mu_);
  auto pid = spawn();
  if (!pid) return pid.error();
  pid_ = *pid;
  thread_ = std::thread([this] { supervise(); });
  return {};
}

void TunnelAgentProcess::supervise() {
  int backoff_s = 1;
  while (true) {
    pid_t pid;
    {
      std::lock_guard lock(mu_);
      pid = pid_;
    }
    auto began = std::chrono::steady_clock::now();
    // Waits for its end without reaping it, so that stop() never signals a
    // pid that was reaped (and maybe reused): it is reaped under the lock.
    siginfo_t info{};
    while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    std::unique_lock lock(mu_);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = 0;
    wake_.notify_all();
    if (stopping_) return;
    // One that stood a minute starts over at 1 s.
    if (std::chrono::steady_clock::now() - began > std::chrono::minutes(1)) backoff_s = 1;
    log::warn("node: the tunnel agent ended (" +
              (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                   : "status " + std::to_string(WEXITSTATUS(status))) +
              "); starting it again in " + std::to_string(backoff_s) + " s");
    if (wake_.wait_for(lock, std::chrono::seconds(backoff_s), [&] { return stopping_; })) return;
    backoff_s = std::min(backoff_s * 2, 30);
    auto next = spawn();
    if (!next) {
      log::error("node: " + next.error().message + "; the node is unreachable through the proxy");
      return;
    }
    pid_ = *next;
  }
}

void TunnelAgentProcess::stop() {
  {
    std::unique_lock lock(mu_);
    stopping_ = true;
    wake_.notify_all();
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      // It ends within a poll round; one stuck in a connect does not hold
      // the node's shutdown up.
      if (!wake_.wait_for(lock, std::chrono::seconds(3), [&] { return pid_ == 0; }))
        kill(pid_, SIGKILL);
    }
  }
  if (thread_.joinable()) thread_.join();
}

namespace {

std::atomic<bool> g_agent_stop{false};
void stop_agent(int) { g_agent_stop = true; }

struct AgentArgs {
  std::string proxy, proxy_host_key, host_key, host_cert, local_ssh, user;
  uid_t uid = 0;
  gid_t gid = 0;
};

int run_agent(const AgentArgs& a) {
  const pid_t monitor = getppid();
  auto fail = [](const std::string& m) {
    std::fprintf(stderr, "vigil tunnel-agent: %s\n", m.c_str());
    return kVigilFailed;
  };
  if (monitor == 1) return fail("run by vigil start only");
  proxy::TunnelAgentOptions o;
  o.proxy_addr = a.proxy;
  o.proxy_host_key = a.proxy_host_key;
  o.host_key_path = a.host_key;
  o.host_cert_path = a.host_cert;
  o.local_ssh_addr = a.local_ssh;
  // Reads the host key (root's file) now; nothing connects yet.
  auto agent = proxy::TunnelAgent::create(o);
  if (!agent) return fail(agent.error().message);
  // Then root goes, for good, before the first byte from the proxy; stderr
  // stays for the log.
  if (auto r = privsep::drop_to({a.user, a.uid, a.gid}, privsep::DropOptions{{2}, ""}); !r)
    return fail(r.error().message);
  // Dies with the monitor (set after the drop: changing ids clears it).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NAME, "vigil-tunnel");
  if (getppid() != monitor) return kVigilFailed;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = stop_agent;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  // The tunnel coming and going is worth a line in the node's log.
  log::set_level(log::Level::info);
  (*agent)->run(g_agent_stop);
  return 0;
}

}  // namespace

Subcommand add_tunnel_agent(CLI::App& app) {
  auto a = std::make_shared<AgentArgs>();
  auto* sub = app.add_subcommand("tunnel-agent", "");  // started by vigil start only
  sub->add_option("--proxy", a->proxy)->required();
  sub->add_option("--proxy-host-key", a->proxy_host_key)->required();
  sub->add_option("--host-key", a->host_key)->required();
  sub->add_option("--host-cert", a->host_cert)->required();
  sub->add_option("--local-ssh", a->local_ssh)->required();
  sub->add_option("--user", a->user)->required();
  sub->add_option("--uid", a->uid)->required();
  sub->add_option("--gid", a->gid)->required();
  return {sub, [a] { return run_agent(*a); }};
}

}  // namespace vigil::cmd
