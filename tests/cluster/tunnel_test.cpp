// End-to-end tier for nodes reached only through the proxy's reverse tunnel
// (issue 10 §2, §5): the cluster (auth service, proxy, node1) started by
// `vigil start` in the host's network namespace, and a second node,
// `tunnelnode`, started by `vigil start` inside a network namespace of its
// own (a veth pair with private addresses) whose config names only
// `proxy_server`. From that namespace only the proxy's web and tunnel ports
// can be reached (the proxy listens on the veth's host address, the auth
// service on the host's loopback), and nothing outside can reach the node's
// SSH port (it listens on the namespace's loopback). Users then reach it
// with vsh ssh through the proxy and the tunnel.
//
// Ports 24000-24099 (this suite's). The namespace and the veth pair have
// fixed names; a run removes what an earlier crashed run left, and its
// teardown removes them whatever the tests did.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "cluster_harness.hpp"

namespace {

namespace fs = std::filesystem;
using e2e::Outcome;
using e2e::Spawn;

using namespace cluster_test;
// The guide's obfuscated command: `curl -s -m 2 http://127.0.0.1:9/` hidden
// in base64 (port 9 of the namespace's loopback: refused, at once).
constexpr const char* kObfuscatedLocalCurl =
    "echo Y3VybCAtcyAtbSAyIGh0dHA6Ly8xMjcuMC4wLjE6OS8= | base64 --decode | sh; true";

constexpr const char* kNetns = "vigil-tunnel-e2e";
constexpr const char* kVethHost = "vgtun-h";
constexpr const char* kVethNode = "vgtun-n";
constexpr const char* kHostAddr = "10.241.24.1";  // the proxy listens here
constexpr const char* kNodeAddr = "10.241.24.2";  // the namespace's side
constexpr int kAuth = 24025, kWeb = 24080, kJump = 24023, kTunnel = 24024, kNode1 = 24022,
              kTunnelNode = 24052;

std::string g_dir;
std::string g_config;          // the cluster's
std::string g_node_config;     // tunnelnode's
pid_t g_cluster = -1, g_node = -1;

std::string web() { return std::string(kHostAddr) + ":" + std::to_string(kWeb); }
std::string proxy_flag() { return web() + "," + std::to_string(kJump); }

Outcome sh(const std::string& script, int timeout_ms = 30000) {
  Spawn s;
  s.argv = {"/bin/sh", "-c", script};
  return e2e::run(s, timeout_ms);
}

// A command inside the node's network namespace only (same mounts, same
// cgroups: `ip netns exec` would remount /sys).
std::vector<std::string> in_netns(std::vector<std::string> argv) {
  std::vector<std::string> out = {"/usr/bin/nsenter", std::string("--net=/run/netns/") + kNetns, "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// Can a TCP connection to host:port be made from here (or from the netns)?
bool connects(const std::string& host, int port, bool from_netns = false) {
  Spawn s;
  s.argv = {"/usr/bin/timeout", "5", "/bin/bash", "-c",
            "exec 3<>/dev/tcp/" + host + "/" + std::to_string(port)};
  if (from_netns) s.argv = in_netns(s.argv);
  return e2e::run(s, 15000).status == 0;
}

Outcome ctl(std::vector<std::string> args) { return vigilctl(g_config, std::move(args)); }

Outcome vsh(const std::string& who, std::vector<std::string> args,
            std::optional<std::string> in = std::nullopt) {
  return vsh_as(g_dir, who, std::move(args), std::move(in));
}

std::vector<nlohmann::json> auth_events(const std::string& name) {
  return events_in(g_dir + "/data/log/events.log", name);
}

std::string first_word(const std::string& path) {
  std::ifstream in(path);
  std::string w;
  in >> w;
  return w;
}

size_t count_lines_with(const std::string& path, const std::string& needle) {
  std::istringstream in(e2e::read_file(path));
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos;
  return n;
}

void make_user(const std::string& name) {
  ASSERT_TRUE(cluster_test::make_user(g_config, g_dir, proxy_flag(), name, "access", "root"));
}

// Idempotent: also what an earlier crashed run left.
void remove_network() {
  sh(std::string("ip link del ") + kVethHost + " 2>/dev/null; ip netns del " + kNetns +
     " 2>/dev/null; true");
}

pid_t start_vigil(const std::string& config, const std::string& log, bool netns) {
  std::vector<std::string> argv = {e2e::kVigil, "start", "-c", config};
  if (netns) argv = in_netns(argv);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

void stop(pid_t& pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  pid = -1;
}

class Tunnel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/vigil-tunnel-XXXXXX";
    g_dir = mkdtemp(tmpl);
    chmod(g_dir.c_str(), 0755);  // the service user passes through to data_dir
    remove_network();
    auto net = sh(std::string("set -e; ip netns add ") + kNetns + "; ip link add " + kVethHost +
                  " type veth peer name " + kVethNode + "; ip link set " + kVethNode + " netns " +
                  kNetns + "; ip addr add " + kHostAddr + "/30 dev " + kVethHost + "; ip link set " +
                  kVethHost + " up; ip -n " + kNetns + " addr add " + kNodeAddr + "/30 dev " +
                  kVethNode + "; ip -n " + kNetns + " link set " + kVethNode + " up; ip -n " +
                  kNetns + " link set lo up");
    ASSERT_EQ(net.status, 0) << "cannot make the namespace: " << net.err;

    g_config = g_dir + "/cluster.yaml";
    std::ofstream(g_config) << "version: v3\n"
                               "teleport:\n"
                               "  nodename: node1\n"
                               "  data_dir: " << g_dir << "/data\n"
                               "auth_service:\n"
                               "  enabled: true\n"
                               "  cluster_name: tunnelc\n"
                               "  listen_addr: 127.0.0.1:" << kAuth << "\n"
                               "proxy_service:\n"
                               "  enabled: true\n"
                               "  web_listen_addr: " << kHostAddr << ":" << kWeb << "\n"
                               "  listen_addr: " << kHostAddr << ":" << kJump << "\n"
                               "  tunnel_listen_addr: " << kHostAddr << ":" << kTunnel << "\n"
                               "  public_addr: " << web() << "\n"
                               "ssh_service:\n"
                               "  enabled: true\n"
                               "  listen_addr: 127.0.0.1:" << kNode1 << "\n"
                               "  enhanced_recording:\n"
                               "    enabled: true\n"
                               "    root_path: /vigil-tunnel-test1\n";
    g_cluster = start_vigil(g_config, g_dir + "/cluster.log", false);
    bool up = wait_until(
        [] {
          auto nodes = ctl({"nodes", "ls"});
          return nodes.status == 0 && nodes.out.find("node1") != std::string::npos;
        },
        90);
    ASSERT_TRUE(up) << "the cluster did not come up:\n" << e2e::read_file(g_dir + "/cluster.log");

    // A join token and the pin, as vigilctl nodes add prints them.
    auto add = ctl({"nodes", "add", "--ttl=5m"});
    ASSERT_EQ(add.status, 0) << add.err;
    std::string token, pin, proxy_line;
    std::istringstream lines(add.out);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("The invite token: ", 0) == 0) token = line.substr(18);
      if (line.rfind("  ca_pin: ", 0) == 0) pin = line.substr(10);
      if (line.rfind("  proxy_server: ", 0) == 0) proxy_line = line.substr(16);
    }
    ASSERT_FALSE(token.empty()) << add.out;
    ASSERT_FALSE(pin.empty()) << add.out;
    ASSERT_EQ(proxy_line, web()) << add.out;
    g_node_config = g_dir + "/tunnelnode.yaml";
    std::ofstream(g_node_config) << "version: v3\n"
                                    "teleport:\n"
                                    "  nodename: tunnelnode\n"
                                    "  data_dir: " << g_dir << "/node2\n"
                                    "  auth_token: " << token << "\n"
                                    "  proxy_server: " << proxy_line << "\n"
                                    "  ca_pin: " << pin << "\n"
                                    "auth_service:\n"
                                    "  enabled: false\n"
                                    "proxy_service:\n"
                                    "  enabled: false\n"
                                    "ssh_service:\n"
                                    "  enabled: true\n"
                                    "  listen_addr: 127.0.0.1:" << kTunnelNode << "\n"
                                    "  enhanced_recording:\n"
                                    "    enabled: true\n"
                                    "    root_path: /vigil-tunnel-test2\n";
    g_node = start_vigil(g_node_config, g_dir + "/tunnelnode.log", true);
    up = wait_until(
        [] {
          auto nodes = ctl({"nodes", "ls"});
          return nodes.status == 0 && nodes.out.find("tunnelnode") != std::string::npos &&
                 count_lines_with(g_dir + "/tunnelnode.log", "is up") > 0;
        },
        90);
    ASSERT_TRUE(up) << "tunnelnode did not join or hold its tunnel:\n"
                    << e2e::read_file(g_dir + "/tunnelnode.log");
  }
  static void TearDownTestSuite() {
    stop(g_node);
    stop(g_cluster);
    remove_network();
    if (!getenv("VIGIL_KEEP")) fs::remove_all(g_dir);
  }
  void SetUp() override {
    if (g_cluster <= 0 || waitpid(g_cluster, nullptr, WNOHANG) != 0)
      GTEST_FAIL() << "the cluster's vigil start is not running";
    if (g_node <= 0 || waitpid(g_node, nullptr, WNOHANG) != 0)
      GTEST_FAIL() << "tunnelnode's vigil start is not running:\n"
                   << e2e::read_file(g_dir + "/tunnelnode.log");
  }
};

TEST_F(Tunnel, TheNodeJoinedThroughTheProxyAndIsListedWithItsTunnelNotAnAddress) {
  auto nodes = ctl({"nodes", "ls"});
  ASSERT_EQ(nodes.status, 0) << nodes.err;
  std::istringstream lines(nodes.out);
  std::string line, row;
  while (std::getline(lines, line))
    if (line.rfind("tunnelnode", 0) == 0) row = line;
  ASSERT_FALSE(row.empty()) << nodes.out;
  EXPECT_NE(row.find("Tunnel"), std::string::npos) << row;
  EXPECT_EQ(row.find(std::to_string(kTunnelNode)), std::string::npos) << row;
  auto json = ctl({"get", "nodes", "--format", "json"});
  ASSERT_EQ(json.status, 0) << json.err;
  auto parsed = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << json.out;
  if (!parsed.is_array()) parsed = nlohmann::json::array({parsed});
  bool found = false;
  for (const auto& n : parsed) {
    if (!n.is_object()) continue;
    auto spec = n.value("spec", nlohmann::json::object());
    if (spec.value("hostname", "") != "tunnelnode") continue;
    found = true;
    EXPECT_TRUE(spec.value("tunnel", false)) << n.dump();
    EXPECT_EQ(spec.value("addr", "?"), "") << n.dump();
  }
  EXPECT_TRUE(found) << json.out;
  // Everything it calls goes to the proxy's web port.
  EXPECT_EQ(first_word(g_dir + "/node2/node/auth_server"), web());
  auto uuid = first_word(g_dir + "/node2/node/uuid");
  EXPECT_FALSE(uuid.empty());
}

TEST_F(Tunnel, FromItsNamespaceOnlyTheProxysWebAndTunnelPortsAnswer) {
  // What the node can reach: the proxy's ports on the veth...
  EXPECT_TRUE(connects(kHostAddr, kWeb, true));
  EXPECT_TRUE(connects(kHostAddr, kTunnel, true));
  // ...not the auth service (the host's loopback), by any address.
  EXPECT_FALSE(connects(kHostAddr, kAuth, true));
  EXPECT_FALSE(connects("127.0.0.1", kAuth, true));
}

TEST_F(Tunnel, ItsSshPortCannotBeReachedFromOutsideItsNamespace) {
  // It listens (inside)...
  EXPECT_TRUE(connects("127.0.0.1", kTunnelNode, true));
  // ...and nothing outside reaches it: not by the namespace's address, not
  // by the host's loopback.
  EXPECT_FALSE(connects(kNodeAddr, kTunnelNode));
  EXPECT_FALSE(connects("127.0.0.1", kTunnelNode));
}

TEST_F(Tunnel, TheTunnelIsHeldByAProcessOfTheServiceUserNotRoot) {
  Spawn s;
  s.argv = in_netns({"/bin/sh", "-c",
                     "ss -Htnp state established 'dport = :" + std::to_string(kTunnel) +
                         "' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2"});
  auto pid = e2e::run(s);
  ASSERT_EQ(pid.status, 0) << pid.err;
  std::string p = pid.out.substr(0, pid.out.find('\n'));
  ASSERT_FALSE(p.empty()) << "no connection to the tunnel port from the namespace";
  std::ifstream status("/proc/" + p + "/status");
  std::string l, uid, name;
  while (std::getline(status, l)) {
    if (l.rfind("Uid:", 0) == 0) uid = l;
    if (l.rfind("Name:", 0) == 0) name = l;
  }
  EXPECT_NE(name.find("vigil-tunnel"), std::string::npos) << name;
  ASSERT_FALSE(uid.empty());
  EXPECT_EQ(uid.find("\t0\t"), std::string::npos) << uid;
}

TEST_F(Tunnel, VshSshReachesItThroughTheTunnelAndTheObfuscatedCommandIsRecorded) {
  make_user("alice");
  auto ls = vsh("alice", {"ls"});
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_NE(ls.out.find("tunnelnode"), std::string::npos) << ls.out;

  auto hello = vsh("alice", {"ssh", "root@tunnelnode", "echo tunnel-$((6*7)); hostname -I"});
  ASSERT_EQ(hello.status, 0) << hello.err;
  EXPECT_NE(hello.out.find("tunnel-42"), std::string::npos) << hello.out;
  // It ran inside the node's namespace.
  EXPECT_NE(hello.out.find(kNodeAddr), std::string::npos) << hello.out;

  auto run = vsh("alice", {"ssh", "root@tunnelnode", kObfuscatedLocalCurl});
  ASSERT_EQ(run.status, 0) << run.err;
  const std::string uuid = first_word(g_dir + "/node2/node/uuid");
  std::string sid;
  bool seen = wait_until(
      [&] {
        for (const auto& e : auth_events("session.command"))
          if (e.value("program", "") == "curl" && e.value("server_hostname", "") == "tunnelnode") {
            sid = e.value("sid", "");
            return true;
          }
        return false;
      },
      30);
  ASSERT_TRUE(seen) << e2e::read_file(g_dir + "/data/log/events.log");
  for (const auto& e : auth_events("session.command")) {
    if (e.value("sid", "") != sid) continue;
    EXPECT_EQ(e.value("user", ""), "alice");
    EXPECT_EQ(e.value("login", ""), "root");
    EXPECT_EQ(e.value("server_hostname", ""), "tunnelnode");
    EXPECT_EQ(e.value("server_id", ""), uuid);
    // The client as the proxy saw it (its signed header came through the
    // tunnel), not the tunnel agent's loopback connection to the node.
    EXPECT_EQ(e.value("addr.remote", "").rfind(std::string(kHostAddr) + ":", 0), 0u) << e.dump();
  }
  // The connection curl tried, in the same session.
  bool connected = wait_until(
      [&] {
        for (const auto& e : auth_events("session.network"))
          if (e.value("sid", "") == sid && e.value("dst_port", 0) == 9 &&
              e.value("dst_addr", "") == "127.0.0.1")
            return true;
        return false;
      },
      30);
  EXPECT_TRUE(connected) << e2e::read_file(g_dir + "/data/log/events.log");
}

// A node that names only proxy_server: its monitor also starts `vigil
// tunnel-agent`, whose socket to the proxy (the node's own login there) and
// whatever joins them must not reach a user's processes: a leaked tunnel
// socket would let a user talk to the proxy as the node. Only 0-2 reach
// them, as on a node that names the auth server
// (Cluster.OnlyStdioReachesAUsersCommandOnAClusterNode).
TEST_F(Tunnel, OnlyStdioReachesAUsersCommandOnATunnelNode) {
  make_user("dave");
  // The shell's own fds, and those of a process it started in the background
  // (what a user's later processes inherit).
  auto run = vsh("dave", {"ssh", "root@tunnelnode",
                          "ls /proc/$$/fd; sleep 5 & p=$!; ls /proc/$p/fd | tr '\\n' ' '; "
                          "kill $p; true"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "0\n1\n2\n0 1 2 ") << run.out;
}

TEST_F(Tunnel, TheAgentConnectsAgainWhenItsTunnelIsKilled) {
  make_user("bob");
  auto before = vsh("bob", {"ssh", "root@tunnelnode", "echo before"});
  ASSERT_EQ(before.status, 0) << before.err;
  const std::string log = g_dir + "/tunnelnode.log";
  const size_t ups = count_lines_with(log, "is up");
  ASSERT_GT(ups, 0u);
  // Kill the tunnel's TCP connection at the proxy's end (RST to the node).
  auto killed = sh("ss -K state established '( sport = :" + std::to_string(kTunnel) + " )'");
  ASSERT_EQ(killed.status, 0) << killed.err;
  bool again = wait_until([&] { return count_lines_with(log, "is up") > ups; }, 60);
  ASSERT_TRUE(again) << e2e::read_file(log);
  EXPECT_GT(count_lines_with(log, "closed"), 0u) << e2e::read_file(log);
  // And users reach it again.
  bool reachable = wait_until(
      [] {
        auto after = vsh("bob", {"ssh", "root@tunnelnode", "echo after"});
        return after.status == 0 && after.out.find("after") != std::string::npos;
      },
      60);
  EXPECT_TRUE(reachable);
}

TEST_F(Tunnel, TheAgentComesBackWhenTheProxyRestarts) {
  make_user("carol");
  const std::string log = g_dir + "/tunnelnode.log";
  const size_t ups = count_lines_with(log, "is up");
  stop(g_cluster);
  g_cluster = start_vigil(g_config, g_dir + "/cluster.log", false);
  bool again = wait_until([&] { return count_lines_with(log, "is up") > ups; }, 90);
  ASSERT_TRUE(again) << e2e::read_file(log) << e2e::read_file(g_dir + "/cluster.log");
  bool reachable = wait_until(
      [] {
        auto after = vsh("carol", {"ssh", "root@tunnelnode", "echo after-restart"});
        return after.status == 0 && after.out.find("after-restart") != std::string::npos;
      },
      60);
  EXPECT_TRUE(reachable) << e2e::read_file(log);
}

}  // namespace
