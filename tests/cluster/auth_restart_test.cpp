// End-to-end, issue 10 §5: "the auth service is stopped during a session and
// restarted: no event lost, none doubled". Two `vigil start` processes on
// loopback: the auth service with the proxy, and a node joined to it with a
// join token (auth_server). A user logged in with vsh opens a session
// straight to the node with plain OpenSSH (its certificate from vsh login),
// running a loop of numbered execs. While it runs the auth process is
// stopped (SIGTERM, and SIGKILL in the second test), stays down a while and
// is started again on the same data_dir. Judged by the auth service's log
// and recording store: each numbered exec exactly once and in order, one
// session.start and one session.end for the sid, the recording complete
// and equal to the node's copy.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cluster_harness.hpp"

namespace {

namespace fs = std::filesystem;
using e2e::Outcome;
using e2e::Spawn;
using namespace cluster_test;

constexpr int kCommands = 300;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One cluster of two `vigil start` processes, each with its own directory,
// on the ports given: the auth service (with the proxy), and a node.
class TwoProcesses {
 public:
  TwoProcesses(const std::string& name, int base)
      : base_(base), auth_("vigil-auth-restart"), node_("vigil-auth-restart-node") {
    std::ostringstream cfg;
    cfg << "version: v3\n"
           "teleport:\n"
           "  nodename: authhost\n"
           "  data_dir: " << auth_.data_dir() << "\n"
           "auth_service:\n"
           "  enabled: true\n"
           "  cluster_name: " << name << "\n"
           "  listen_addr: 127.0.0.1:" << auth_port() << "\n"
           "proxy_service:\n"
           "  enabled: true\n"
           "  web_listen_addr: 127.0.0.1:" << web_port() << "\n"
           "  listen_addr: 127.0.0.1:" << base_ + 3 << "\n"
           "  tunnel_listen_addr: 127.0.0.1:" << base_ + 4 << "\n"
           "  public_addr: 127.0.0.1:" << web_port() << "\n"
           "ssh_service:\n"
           "  enabled: false\n";
    auth_.write_config(cfg.str());
  }
  int auth_port() const { return base_ + 25; }
  int web_port() const { return base_ + 80; }
  int node_port() const { return base_ + 22; }
  const VigilProcess& auth() const { return auth_; }
  const VigilProcess& node() const { return node_; }
  VigilProcess& auth() { return auth_; }
  std::string proxy_flag() const {
    return "127.0.0.1:" + std::to_string(web_port()) + "," + std::to_string(base_ + 3);
  }

  // The auth service (and proxy) up: vigilctl answers. In a process group of
  // its own, so that SIGKILL reaches the cluster-services child too.
  ::testing::AssertionResult start_auth() {
    auth_.start(/*own_group=*/true);
    if (wait_until([&] { return auth_.ctl({"status"}).status == 0; }, 90))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the auth service did not come up:\n" << auth_.log_text();
  }
  // SIGTERM to `vigil start`, which stops what it started; SIGKILL to its
  // whole group, the auth service (its cluster-services child) included.
  void stop_auth(int sig) { auth_.stop(sig, sig == SIGKILL); }

  // A node joined with a token from `vigilctl nodes add`, up when listed and listening.
  ::testing::AssertionResult start_node() {
    auto add = auth_.ctl({"nodes", "add", "--ttl=5m"});
    if (add.status != 0) return ::testing::AssertionFailure() << add.err;
    std::string token, pin, line;
    std::istringstream lines(add.out);
    while (std::getline(lines, line)) {
      if (line.rfind("The invite token: ", 0) == 0) token = line.substr(18);
      if (line.rfind("  ca_pin: ", 0) == 0) pin = line.substr(10);
    }
    if (token.empty() || pin.empty()) return ::testing::AssertionFailure() << add.out;
    std::ostringstream cfg;
    cfg << "version: v3\nteleport:\n  nodename: node1\n  data_dir: " << node_.data_dir()
        << "\n  auth_token: " << token << "\n  auth_server: 127.0.0.1:" << auth_port()
        << "\n  ca_pin: " << pin
        << "\nauth_service:\n  enabled: false\nproxy_service:\n  enabled: false\n"
        << "ssh_service:\n  enabled: true\n  listen_addr: 127.0.0.1:" << node_port()
        << "\n  enhanced_recording:\n    enabled: true\n    root_path: /vigil-auth-restart-" << base_
        << "\n";
    node_.write_config(cfg.str());
    node_.start();
    const bool up = wait_until(
        [&] {
          auto nodes = auth_.ctl({"nodes", "ls"});
          if (nodes.status != 0 || nodes.out.find("node1") == std::string::npos) return false;
          Spawn s;
          s.argv = {"/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(node_port())};
          return e2e::run(s).status == 0;
        },
        90);
    if (up) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the node did not come up:\n" << node_.log_text();
  }

  // A user signed up and logged in; the path of the private key vsh keeps
  // (its certificate is <key>-cert.pub).
  std::string login(const std::string& user) {
    EXPECT_TRUE(make_user(auth_.config(), auth_.dir(), proxy_flag(), user, "access", "root"));
    for (const auto& e : fs::recursive_directory_iterator(auth_.dir() + "/home-" + user + "/keys"))
      if (e.path().filename() == user) return e.path().string();
    ADD_FAILURE() << "vsh login kept no key for " << user;
    return {};
  }

  // The auth service's events, parsed, in file order.
  std::vector<nlohmann::json> auth_events() const { return auth_.auth_events(""); }

 private:
  int base_;
  VigilProcess auth_, node_;  // destroyed node first: it stops before its auth service
};

// The numbers of the loop's `/bin/true N` execs in the log, in order.
std::vector<int> numbered_execs(const std::vector<nlohmann::json>& events, const std::string& sid) {
  std::vector<int> out;
  for (const auto& e : events) {
    if (e.value("event", "") != "session.command" || e.value("sid", "") != sid) continue;
    // Teleport's form: path, and argv without argv[0].
    if (e.value("path", "") != "/bin/true" || !e.contains("argv") || !e["argv"].is_array() ||
        e["argv"].size() != 1)
      continue;
    out.push_back(std::stoi(e["argv"][0].get<std::string>()));
  }
  return out;
}

size_t count_of(const std::vector<nlohmann::json>& events, const std::string& name,
                const std::string& sid) {
  size_t n = 0;
  for (const auto& e : events) n += e.value("event", "") == name && e.value("sid", "") == sid;
  return n;
}

void stop_and_restart_during_a_session(int base, int sig) {
  TwoProcesses c("restart" + std::to_string(base), base);
  ASSERT_TRUE(c.start_auth());
  ASSERT_TRUE(c.start_node());
  const std::string key = c.login("alice");
  ASSERT_FALSE(key.empty());

  Spawn s;
  s.argv = {"/usr/bin/ssh", "-i", key, "-o", "CertificateFile=" + key + "-cert.pub",
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-p", std::to_string(c.node_port()),
            "root@127.0.0.1",
            "for i in $(seq 1 " + std::to_string(kCommands) +
                "); do /bin/true $i; sleep 0.01; done; echo loop-finished"};
  e2e::Process session(s);

  // Mid-session: some of the loop's execs have reached the auth service.
  std::string sid;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& e : c.auth_events())
          if (e.value("event", "") == "session.command" && e.value("path", "") == "/bin/true") {
            sid = e.value("sid", "");
            return true;
          }
        return false;
      },
      60))
      << "no exec of the loop reached the auth service";
  const size_t before = numbered_execs(c.auth_events(), sid).size();
  c.stop_auth(sig);
  std::printf("the auth service stopped (signal %d) with %zu of the %d numbered execs in its log\n",
              sig, before, kCommands);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // the session goes on, the node spools
  ASSERT_TRUE(c.start_auth());

  auto done = session.wait(180000);
  ASSERT_EQ(done.status, 0) << done.err;
  EXPECT_NE(done.out.find("loop-finished"), std::string::npos) << done.out;

  // Everything delivered: session.end, and the recording complete.
  const std::string records = c.auth().data_dir() + "/log/records/";
  ASSERT_TRUE(wait_until(
      [&] {
        auto ev = c.auth_events();
        return count_of(ev, "session.end", sid) >= 1 &&
               slurp(records + sid + ".vrec.status").find("\"complete\"") != std::string::npos;
      },
      120))
      << "the node did not deliver the session's end and recording; node log:\n"
      << c.node().log_text();
  std::this_thread::sleep_for(std::chrono::seconds(3));  // anything doubled would arrive by now
  const auto events = c.auth_events();
  std::vector<int> expected;
  for (int i = 1; i <= kCommands; ++i) expected.push_back(i);
  const auto got = numbered_execs(events, sid);
  EXPECT_LT(before, static_cast<size_t>(kCommands)) << "the auth service was stopped after the loop";
  EXPECT_EQ(got, expected) << "each numbered exec exactly once, in order";
  EXPECT_EQ(count_of(events, "session.start", sid), 1u);
  EXPECT_EQ(count_of(events, "session.end", sid), 1u);
  // Every event of this node once: its relay_seq values have no repeat and no gap.
  std::vector<uint64_t> seqs;
  for (const auto& e : events)
    if (e.contains("relay_seq")) seqs.push_back(e["relay_seq"].get<uint64_t>());
  ASSERT_FALSE(seqs.empty());
  for (size_t i = 0; i < seqs.size(); ++i)
    ASSERT_EQ(seqs[i], seqs[0] + i) << "relay_seq " << seqs[i] << " at position " << i;
  // The recording: complete, the same bytes as the node's.
  const std::string node_copy = c.node().data_dir() + "/node/log/records/" + sid + ".vrec";
  ASSERT_TRUE(fs::exists(node_copy)) << node_copy;
  const std::string theirs = slurp(records + sid + ".vrec");
  EXPECT_FALSE(theirs.empty());
  EXPECT_TRUE(theirs == slurp(node_copy)) << "the auth service's recording differs from the node's ("
                                          << theirs.size() << " bytes, the node's "
                                          << fs::file_size(node_copy) << ")";
}

// Fixed ports of this suite, 26000-26099: base + 3, 4, 22, 25, 80 with bases 26000, 26005 and 26010.

// `vigil start` SIGKILLed alone (not its group): the cluster-services child
// it forked must not outlive it holding the ports and the data_dir, or the
// next start fails on them.
TEST(AuthRestart, AKilledVigilStartTakesItsServicesWithItAndStartsAgain) {
  TwoProcesses c("orphan", 26005);
  ASSERT_TRUE(c.start_auth());
  pid_t start = c.auth().pid();
  kill(start, SIGKILL);  // this process only
  int status = 0;
  waitpid(start, &status, 0);
  c.auth().forget();
  auto port_free = [&] {
    Spawn probe;
    probe.argv = {"/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(c.auth_port())};
    return e2e::run(probe).status != 0;
  };
  EXPECT_TRUE(wait_until(port_free, 20)) << "the auth service outlived vigil start";
  ASSERT_TRUE(c.start_auth()) << "a second start on the same data_dir";
}

TEST(AuthRestart, StoppedWithSigtermDuringASessionAndRestartedNothingLostNothingDoubled) {
  stop_and_restart_during_a_session(26000, SIGTERM);
}

TEST(AuthRestart, KilledWithSigkillDuringASessionAndRestartedNothingLostNothingDoubled) {
  stop_and_restart_during_a_session(26010, SIGKILL);
}

}  // namespace
