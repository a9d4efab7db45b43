// Runs the proxy or a tunnel agent as a process of its own, for the proxy's
// end-to-end tests and bench/proxy_bench.sh, until SIGTERM/SIGINT. (The
// integrator wires the proxy into `vigil start`; this is not that.)
//
//   vigil-proxy-harness proxy --host-key K --user-ca F --host-ca F --db DB --cluster NAME
//        --jump ADDR --tunnel ADDR --ports-file F [--run-as USER] [--max-channels N]
//        [--add-node UUID,NAME,HOST:PORT]
//     binds both ports, drops to USER (no supplementary groups), only then
//     opens the cluster store, writes "<jump port> <tunnel port>" to the
//     ports file (as USER: its directory must let USER write) and serves.
//   vigil-proxy-harness agent --proxy ADDR --proxy-key-file F --key K --cert C
//        --local ADDR [--min-backoff MS --max-backoff MS]
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "cluster/sqlite_store.hpp"
#include "common/log.hpp"
#include "proxy/proxy_server.hpp"
#include "proxy/tunnel_agent.hpp"

using namespace vigil;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

int fail(const std::string& m) {
  fprintf(stderr, "vigil-proxy-harness: %s\n", m.c_str());
  return 2;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int run_proxy(std::map<std::string, std::string>& a) {
  auto user_cas = sshcert::TrustedCAs::load({a["--user-ca"]});
  if (!user_cas) return fail(user_cas.error().message);
  auto host_cas = sshcert::TrustedCAs::load({a["--host-ca"]});
  if (!host_cas) return fail(host_cas.error().message);
  proxy::ProxyOptions options;
  options.jump_addr = a["--jump"];
  options.tunnel_addr = a["--tunnel"];
  options.host_key_path = a["--host-key"];
  // The directory is opened only after the privilege drop; the server is
  // handed a reference that is bound then.
  struct LateDirectory : proxy::NodeDirectory {
    proxy::NodeDirectory* inner = nullptr;
    Result<proxy::NodeRoute> resolve(std::string_view t, uint32_t p) override {
      return inner->resolve(t, p);
    }
  } nodes;
  proxy::TunnelRegistry tunnels;
  proxy::Proxy proxy{*user_cas, *host_cas, nodes, tunnels};
  if (!a["--max-channels"].empty()) proxy.max_channels_per_connection = std::stoul(a["--max-channels"]);
  auto server = proxy::ProxyServer::listen(options, proxy);
  if (!server) return fail(server.error().message);
  if (!a["--run-as"].empty()) {
    const passwd* pw = getpwnam(a["--run-as"].c_str());
    if (!pw) return fail("no user " + a["--run-as"]);
    if (setgroups(0, nullptr) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
      return fail("cannot drop privileges to " + a["--run-as"]);
    if (setuid(0) == 0) return fail("the privilege drop did not hold");
  }
  auto backend = cluster::open_sqlite(a["--db"]);
  if (!backend) return fail(backend.error().message);
  cluster::ClusterStore store(std::move(*backend));
  // --add-node uuid,name,host:port (for the benchmark, which has no other
  // way to write the store): listed for an hour.
  if (!a["--add-node"].empty()) {
    std::istringstream spec(a["--add-node"]);
    cluster::Node n;
    std::getline(spec, n.uuid, ',');
    std::getline(spec, n.name, ',');
    std::getline(spec, n.address);
    const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    n.last_heartbeat = now;
    n.expires = now + std::chrono::hours(1);
    if (auto r = store.upsert_node(n); !r) return fail(r.error().message);
  }
  proxy::ClusterNodeDirectory directory(store, a["--cluster"]);
  nodes.inner = &directory;
  {
    std::ofstream ports(a["--ports-file"] + ".tmp");
    ports << (*server)->jump_port() << " " << (*server)->tunnel_port() << "\n";
  }
  if (rename((a["--ports-file"] + ".tmp").c_str(), a["--ports-file"].c_str()) != 0)
    return fail("cannot write the ports file");
  log::info("proxy: serving as uid " + std::to_string(getuid()));
  (*server)->run(g_stop);
  const auto& s = proxy.stats;
  fprintf(stderr,
          "stats: connections=%lu logins=%lu auth_refused=%lu channels_opened=%lu "
          "channels_refused=%lu requests_refused=%lu tunnels_registered=%lu bytes_relayed=%lu\n",
          (unsigned long)s.connections, (unsigned long)s.logins, (unsigned long)s.auth_refused,
          (unsigned long)s.channels_opened, (unsigned long)s.channels_refused,
          (unsigned long)s.requests_refused, (unsigned long)s.tunnels_registered,
          (unsigned long)s.bytes_relayed);
  return 0;
}

int run_agent(std::map<std::string, std::string>& a) {
  proxy::TunnelAgentOptions o;
  o.proxy_addr = a["--proxy"];
  o.proxy_host_key = slurp(a["--proxy-key-file"]);
  o.host_key_path = a["--key"];
  o.host_cert_path = a["--cert"];
  o.local_ssh_addr = a["--local"];
  if (!a["--min-backoff"].empty()) o.min_backoff_ms = std::stoi(a["--min-backoff"]);
  if (!a["--max-backoff"].empty()) o.max_backoff_ms = std::stoi(a["--max-backoff"]);
  auto agent = proxy::TunnelAgent::create(o);
  if (!agent) return fail(agent.error().message);
  (*agent)->run(g_stop);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return fail("usage: vigil-proxy-harness proxy|agent --option value...");
  std::map<std::string, std::string> a;
  for (int i = 2; i + 1 < argc; i += 2) a[argv[i]] = argv[i + 1];
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  log::set_level(log::Level::info);
  std::string mode = argv[1];
  if (mode == "proxy") return run_proxy(a);
  if (mode == "agent") return run_agent(a);
  return fail("unknown mode " + mode + ": give proxy or agent");
}
