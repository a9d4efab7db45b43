// Tier (c) for the SSH node: OpenSSH's own `ssh` client against a node this
// test starts on 127.0.0.1 (free port, temporary data_dir), judged by what
// the client sees and what the audit log holds.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>

#include "harness.hpp"

namespace e2e {
namespace {

const std::string kNode = VIGIL_NODE_BIN;
constexpr const char* kLogin = "vigiltest";
constexpr const char* kUser = "alice@example.com";

std::string sh(const std::string& command) {
  Outcome o = run({{"/bin/sh", "-c", command}});
  EXPECT_EQ(o.status, 0) << command << "\n" << o.err;
  return o.out;
}

uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool port_open(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

class SshNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the SSH node tests need root (BPF, cgroups, switching users); "
                                "run them as root";
    char tmpl[] = "/tmp/vigil-ssh-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);
    if (!getpwnam(kLogin)) sh(std::string("useradd -m -s /bin/bash ") + kLogin);
    sh("cd " + dir_ + " && ssh-keygen -q -t ed25519 -N '' -C ca -f ca && "
       "ssh-keygen -q -t ed25519 -N '' -C user -f user && "
       "ssh-keygen -q -s ca -I " + kUser + " -n " + kLogin + " -V -5m:+1h user.pub");
    port_ = free_port();
    root_path_ = "/vigil-ssh-e2e-" + std::to_string(getpid());
    write_file(dir_ + "/node.yaml", "vigil:\n  nodename: ssh-e2e-node\n  cluster_name: ssh-e2e\n"
               "  data_dir: " + dir_ + "/data\n"
               "ssh_service:\n  enabled: true\n  listen_addr: 127.0.0.1:" +
               std::to_string(port_) + "\n  trusted_user_ca_keys: [" + dir_ + "/ca.pub]\n"
               "  enhanced_recording:\n    enabled: true\n    root_path: " + root_path_ + "\n");
  }

  void TearDown() override {
    stop_node();
    std::filesystem::remove_all(dir_);
  }

  void start_node() {
    node_ = std::make_unique<Process>(Spawn{{kNode, "start", "-c", dir_ + "/node.yaml"}});
    for (int i = 0; i < 100 && !port_open(port_); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(port_open(port_)) << "the node did not start listening";
  }

  Outcome stop_node() {
    Outcome o;
    if (!node_) return o;
    kill(node_->pid(), SIGTERM);
    o = node_->wait(20000);
    node_.reset();
    return o;
  }

  std::vector<std::string> ssh(const std::string& key, const std::string& cert,
                               const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> argv = {"/usr/bin/ssh", "-p", std::to_string(port_), "-i", dir_ + "/" + key,
                                     "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                                     "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                                     "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"};
    if (!cert.empty()) argv.insert(argv.end(), {"-o", "CertificateFile=" + dir_ + "/" + cert});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  Outcome run_ssh(const std::string& command, const std::string& login = kLogin) const {
    auto argv = ssh("user", "user-cert.pub");
    argv.push_back(login + "@127.0.0.1");
    argv.push_back(command);
    return run({argv});
  }

  Log audit_log() const { return read_log(dir_ + "/data/log/events.log"); }

  // Session directories still under this node's cgroup root.
  size_t cgroups_left() const {
    size_t n = 0;
    std::string root = "/cgroup2" + root_path_;
    if (!std::filesystem::exists(root)) return 0;
    for (auto& e : std::filesystem::directory_iterator(root))
      if (e.is_directory()) ++n;
    return n;
  }

  std::string dir_;
  std::string root_path_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> node_;
};

std::vector<std::string> argv_of(const nlohmann::ordered_json& e) {
  return e["argv"].get<std::vector<std::string>>();
}

bool has_command(const Log& log, const std::string& program,
                 const std::vector<std::string>& argv) {
  for (const auto& e : log.of("session.command"))
    if (e["program"] == program && argv_of(e) == argv) return true;
  return false;
}

TEST_F(SshNodeTest, ExecRecordsObfuscatedCommandsAsTheLogin) {
  start_node();
  Outcome o = run_ssh("echo bHMgLWxh | base64 --decode | sh");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_THAT(o.out, ::testing::HasSubstr(".profile"));  // ls -la of vigiltest's home
  Outcome id = run_ssh("id -u");
  ASSERT_EQ(id.status, 0) << id.err;
  EXPECT_EQ(id.out, std::to_string(getpwnam(kLogin)->pw_uid) + "\n");

  Log log = audit_log();
  EXPECT_TRUE(has_command(log, "base64", {"--decode"})) << log.text;
  EXPECT_TRUE(has_command(log, "sh", {})) << log.text;
  EXPECT_TRUE(has_command(log, "ls", {"-la"})) << log.text;
  for (const auto& e : log.events) {
    if (e["event"] == "auth") continue;
    EXPECT_EQ(e["user"], kUser) << e.dump();
    EXPECT_EQ(e["login"], kLogin) << e.dump();
    EXPECT_EQ(e["server_hostname"], "ssh-e2e-node");
    EXPECT_THAT(e["addr.remote"].get<std::string>(), ::testing::StartsWith("127.0.0.1:"));
  }
  auto execs = log.of("exec");
  ASSERT_EQ(execs.size(), 2u);
  EXPECT_EQ(execs[0]["code"], "T3002I");
  EXPECT_EQ(execs[0]["command"], "echo bHMgLWxh | base64 --decode | sh");
  EXPECT_EQ(execs[0]["exit_code"], 0);
  auto ends = log.of("session.end");
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_EQ(ends[0]["enhanced_recording"], true);
  EXPECT_EQ(ends[0]["interactive"], false);
  EXPECT_EQ(ends[0]["participants"], nlohmann::json::array({kUser}));
  EXPECT_EQ(ends[0]["lost_events"]["command"], 0);
  EXPECT_EQ(log.count("session.start"), 2u);
  EXPECT_EQ(run_ssh("exit 7").status, 7);
  EXPECT_EQ(cgroups_left(), 0u);
}

TEST_F(SshNodeTest, RefusalsAreAuditedWithTheirReason) {
  sh("cd " + dir_ + " && ssh-keygen -q -t ed25519 -N '' -f ca2 && "
     "for k in other expired principal; do cp user $k; cp user.pub $k.pub; done && "
     "ssh-keygen -q -s ca2 -I mallory -n vigiltest -V -5m:+1h other.pub && "
     "ssh-keygen -q -s ca -I bob -n vigiltest -V 20200101:20200102 expired.pub && "
     "ssh-keygen -q -s ca -I carol -n someoneelse -V -5m:+1h principal.pub && "
     "ssh-keygen -q -t ed25519 -N '' -f plain");
  start_node();
  struct Case {
    std::string key, reason, user;
  } cases[] = {{"other", "untrusted_ca", "mallory"},
               {"expired", "expired", "bob"},
               {"principal", "principal_mismatch", "carol"},
               {"plain", "no_certificate", ""}};
  for (const auto& c : cases) {
    auto argv = ssh(c.key, c.key == "plain" ? "" : c.key + "-cert.pub");
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "id"});
    Outcome o = run({argv});
    EXPECT_EQ(o.status, 255) << c.key;
    EXPECT_THAT(o.err, ::testing::HasSubstr("Permission denied")) << c.key;
    bool found = false;
    for (const auto& e : audit_log().of("auth")) {
      if (e["reason"] != c.reason) continue;
      found = true;
      EXPECT_EQ(e["code"], "T3007W");
      EXPECT_EQ(e["success"], false);
      EXPECT_EQ(e["login"], kLogin);
      EXPECT_EQ(e["user"], c.user);
      EXPECT_THAT(e["error"].get<std::string>(), ::testing::StartsWith(c.reason + ": "));
      EXPECT_THAT(e["addr.remote"].get<std::string>(), ::testing::StartsWith("127.0.0.1:"));
    }
    EXPECT_TRUE(found) << c.key << " not audited as " << c.reason;
  }
  EXPECT_EQ(audit_log().count("session.start"), 0u);
}

TEST_F(SshNodeTest, InteractiveShellOnPtyRecordsHiddenCommands) {
  start_node();
  auto argv = ssh("user", "user-cert.pub", {"-tt"});
  argv.push_back(std::string(kLogin) + "@127.0.0.1");
  Spawn spawn{argv};
  // Typed with echo off: nothing of it shows on the terminal.
  spawn.stdin_data = "stty -echo\necho aWQgLXU= | base64 --decode | sh\nexit\n";
  Outcome o = run(spawn);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_THAT(o.out, ::testing::HasSubstr(std::to_string(getpwnam(kLogin)->pw_uid)));
  Log log = audit_log();
  EXPECT_TRUE(has_command(log, "stty", {"-echo"})) << log.text;
  EXPECT_TRUE(has_command(log, "id", {"-u"})) << log.text;
  auto ends = log.of("session.end");
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0]["interactive"], true);
  EXPECT_EQ(log.count("exec"), 0u);
  EXPECT_EQ(cgroups_left(), 0u);
}

TEST_F(SshNodeTest, TwentyConcurrentSessions) {
  start_node();
  std::vector<std::unique_ptr<Process>> clients;
  for (int i = 0; i < 20; ++i) {
    auto argv = ssh("user", "user-cert.pub");
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "echo n" + std::to_string(i)});
    clients.push_back(std::make_unique<Process>(Spawn{argv}));
  }
  for (int i = 0; i < 20; ++i) {
    Outcome o = clients[i]->wait(60000);
    EXPECT_EQ(o.status, 0) << i << ": " << o.err;
    EXPECT_EQ(o.out, "n" + std::to_string(i) + "\n");
  }
  Log log = audit_log();
  auto ends = log.of("session.end");
  EXPECT_EQ(ends.size(), 20u);
  for (const auto& e : ends)
    for (const char* kind : {"command", "disk", "network"}) EXPECT_EQ(e["lost_events"][kind], 0);
  EXPECT_EQ(log.count("exec"), 20u);
  EXPECT_EQ(cgroups_left(), 0u);
}

TEST_F(SshNodeTest, ControlMasterRunsSeveralChannelsOnOneConnection) {
  start_node();
  std::string sock = dir_ + "/cm.sock";
  auto master = ssh("user", "user-cert.pub",
                    {"-o", "ControlMaster=yes", "-o", "ControlPath=" + sock, "-N", "-f"});
  master.push_back(std::string(kLogin) + "@127.0.0.1");
  ASSERT_EQ(run({master}).status, 0);
  for (int i = 0; i < 3; ++i) {
    auto argv = ssh("user", "user-cert.pub", {"-o", "ControlPath=" + sock});
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "echo c" + std::to_string(i)});
    Outcome o = run({argv});
    EXPECT_EQ(o.out, "c" + std::to_string(i) + "\n") << o.err;
  }
  auto exit_argv = ssh("user", "user-cert.pub", {"-o", "ControlPath=" + sock, "-O", "exit"});
  exit_argv.push_back(std::string(kLogin) + "@127.0.0.1");
  (void)run({exit_argv});
  auto addrs = audit_log().of("session.start");
  ASSERT_EQ(addrs.size(), 3u);
  EXPECT_EQ(addrs[0]["addr.remote"], addrs[2]["addr.remote"]);  // one connection
}

TEST_F(SshNodeTest, DroppedConnectionEndsTheSession) {
  start_node();
  auto argv = ssh("user", "user-cert.pub");
  argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1", "sleep 100"});
  Process client{Spawn{argv}};
  for (int i = 0; i < 100 && !has_command(audit_log(), "sleep", {"100"}); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  kill(client.pid(), SIGKILL);
  (void)client.wait();
  for (int i = 0; i < 100 && audit_log().count("session.end") == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(audit_log().count("session.end"), 1u);
  EXPECT_EQ(cgroups_left(), 0u);
}

TEST_F(SshNodeTest, StalledAndGarbageClientsDoNotHoldOthersUp) {
  start_node();
  auto connect_raw = [&] {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    return fd;
  };
  int stalled = connect_raw();  // says nothing at all
  int garbage = connect_raw();
  (void)!write(garbage, "GET / HTTP/1.0\r\n\r\n\x01\x02\x03", 21);
  Outcome o = run_ssh("echo still-served");
  EXPECT_EQ(o.out, "still-served\n") << o.err;
  close(stalled);
  close(garbage);
}

TEST_F(SshNodeTest, RefusesToStartWithoutSshServiceOrCA) {
  write_file(dir_ + "/off.yaml", "vigil:\n  data_dir: " + dir_ + "/data\nssh_service:\n  enabled: false\n");
  Outcome off = run({{kNode, "start", "-c", dir_ + "/off.yaml"}});
  EXPECT_EQ(off.status, 125);
  EXPECT_THAT(off.err, ::testing::HasSubstr("ssh_service.enabled"));
  write_file(dir_ + "/noca.yaml", "vigil:\n  data_dir: " + dir_ + "/data\nssh_service:\n  enabled: true\n");
  Outcome noca = run({{kNode, "start", "-c", dir_ + "/noca.yaml"}});
  EXPECT_EQ(noca.status, 125);
  EXPECT_THAT(noca.err, ::testing::HasSubstr("trusted_user_ca_keys"));
}

TEST_F(SshNodeTest, HostKeyIsMadeOnceWithMode0600) {
  start_node();
  stop_node();
  struct stat st{};
  ASSERT_EQ(stat((dir_ + "/data/host_key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string first = read_file(dir_ + "/data/host_key");
  start_node();
  EXPECT_EQ(read_file(dir_ + "/data/host_key"), first);
}

}  // namespace
}  // namespace e2e
