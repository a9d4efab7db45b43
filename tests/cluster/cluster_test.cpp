// End-to-end tier for the cluster (issue 10): one `vigil start` running the
// auth service, the proxy and a node on loopback, started once for the
// whole suite; vigilctl, vsh and OpenSSH's ssh driven as users drive them;
// judged by their output and by the auth service's audit log.
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "cluster_harness.hpp"

namespace {

namespace fs = std::filesystem;
using e2e::Outcome;
using e2e::Spawn;
using namespace cluster_test;

std::unique_ptr<VigilProcess> g_cluster;  // the suite's vigil start
std::string g_dir;      // its directory: config, data_dir, vsh homes
constexpr int kAuth = 23025, kWeb = 23080, kJump = 23023, kTunnel = 23024, kNode = 23022;

std::string proxy_flag() {
  return "127.0.0.1:" + std::to_string(kWeb) + "," + std::to_string(kJump);
}

Outcome ctl(std::vector<std::string> args, std::optional<std::string> in = std::nullopt) {
  return g_cluster->ctl(std::move(args), std::move(in));
}
Outcome vsh(const std::string& who, std::vector<std::string> args,
            std::optional<std::string> in = std::nullopt) {
  return g_cluster->vsh(who, std::move(args), std::move(in));
}
std::string auth_log_text() { return g_cluster->auth_log_text(); }
std::vector<nlohmann::json> auth_events(const std::string& name) {
  return g_cluster->auth_events(name);
}

// A user made with vigilctl, signed up and logged in with vsh.
void make_user(const std::string& name, const std::string& roles, const std::string& logins) {
  ASSERT_TRUE(cluster_test::make_user(g_cluster->config(), g_dir, proxy_flag(), name, roles, logins));
}

class Cluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_cluster = std::make_unique<VigilProcess>("vigil-cluster");
    g_dir = g_cluster->dir();
    std::ostringstream cfg;
    cfg << "version: v3\n"
           "teleport:\n"
           "  nodename: node1\n"
           "  data_dir: " << g_dir << "/data\n"
           "auth_service:\n"
           "  enabled: true\n"
           "  cluster_name: purple\n"
           "  listen_addr: 127.0.0.1:" << kAuth << "\n"
           "proxy_service:\n"
           "  enabled: true\n"
           "  web_listen_addr: 127.0.0.1:" << kWeb << "\n"
           "  listen_addr: 127.0.0.1:" << kJump << "\n"
           "  tunnel_listen_addr: 127.0.0.1:" << kTunnel << "\n"
           "  public_addr: 127.0.0.1:" << kWeb << "\n"
           "ssh_service:\n"
           "  enabled: true\n"
           "  listen_addr: 127.0.0.1:" << kNode << "\n"
           "  enhanced_recording:\n"
           "    enabled: true\n"
           "    root_path: /vigil-cluster-test\n";
    g_cluster->write_config(cfg.str());
    g_cluster->start();
    // Up when the node is listed and its SSH port answers.
    bool up = wait_until(
        [] {
          auto nodes = ctl({"nodes", "ls"});
          if (nodes.status != 0 || nodes.out.find("node1") == std::string::npos) return false;
          Spawn s;
          s.argv = {"/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(kNode)};
          return e2e::run(s).status == 0;
        },
        90);
    if (!up) FAIL() << "the cluster did not come up; vigil start said:\n" << g_cluster->log_text();
  }
  static void TearDownTestSuite() { g_cluster.reset(); }
  void SetUp() override {
    if (!g_cluster || !g_cluster->running()) GTEST_FAIL() << "vigil start is not running";
  }
};

TEST_F(Cluster, StatusPrintsClusterVersionAndCaPin) {
  auto st = ctl({"status"});
  ASSERT_EQ(st.status, 0) << st.err;
  EXPECT_NE(st.out.find("Cluster  purple"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("Version  "), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("CA pin   sha256:"), std::string::npos) << st.out;
  // The version the cluster reports is the binaries' own.
  Spawn v;
  v.argv = {e2e::kVigil, "--version"};
  auto version = e2e::run(v);
  ASSERT_EQ(version.status, 0) << version.err;
  std::string number = version.out.substr(0, version.out.find('\n'));
  ASSERT_FALSE(number.empty());
  EXPECT_NE(st.out.find("Version  " + number), std::string::npos) << st.out << " vs " << number;
  for (const auto& bin : {kVigilctl, kVsh}) {
    Spawn b;
    b.argv = {bin, "--version"};
    EXPECT_EQ(e2e::run(b).out.substr(0, number.size()), number) << bin;
  }
}

TEST_F(Cluster, TheNodeJoinedAndHeartbeats) {
  auto nodes = ctl({"nodes", "ls"});
  ASSERT_EQ(nodes.status, 0) << nodes.err;
  EXPECT_NE(nodes.out.find("127.0.0.1:" + std::to_string(kNode)), std::string::npos) << nodes.out;
  // Its identity is kept: a restart needs no token.
  EXPECT_TRUE(fs::exists(g_dir + "/data/node/uuid"));
  EXPECT_EQ(fs::status(g_dir + "/data/node/tls.key").permissions() & fs::perms::group_all,
            fs::perms::none);
}

TEST_F(Cluster, TheNetworkFacingServicesDoNotRunAsRoot) {
  // Whoever listens on the auth and proxy ports.
  for (int port : {kAuth, kWeb, kJump}) {
    Spawn s;
    s.argv = {"/bin/sh", "-c", "ss -Htlnp 'sport = :" + std::to_string(port) + "' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2"};
    auto pid = e2e::run(s);
    ASSERT_EQ(pid.status, 0);
    std::string p = pid.out.substr(0, pid.out.find('\n'));
    ASSERT_FALSE(p.empty()) << "nothing listens on " << port;
    std::ifstream status("/proc/" + p + "/status");
    std::string line, uid;
    while (std::getline(status, line))
      if (line.rfind("Uid:", 0) == 0) uid = line;
    EXPECT_EQ(uid.find("\t0\t"), std::string::npos) << port << ": " << uid;
  }
}

TEST_F(Cluster, AUserSignsUpLogsInAndTheObfuscatedCommandIsRecordedInTheClusterLog) {
  make_user("alice", "access", "root");
  auto st = vsh("alice", {"status"});
  EXPECT_EQ(st.status, 0) << st.err;
  EXPECT_NE(st.out.find("Logged in as:       alice"), std::string::npos) << st.out;
  auto ls = vsh("alice", {"ls"});
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_NE(ls.out.find("node1"), std::string::npos) << ls.out;

  auto run = vsh("alice", {"ssh", "root@node1", kObfuscated});
  ASSERT_EQ(run.status, 0) << run.err;
  // The curl that base64 hid, in the auth service's log, with who and where.
  bool seen = wait_until(
      [] {
        for (const auto& e : auth_events("session.command"))
          if (e.value("program", "") == "curl") return true;
        return false;
      },
      30);
  ASSERT_TRUE(seen) << auth_log_text();
  for (const auto& e : auth_events("session.command")) {
    if (e.value("program", "") != "curl") continue;
    EXPECT_EQ(e.value("user", ""), "alice");
    EXPECT_EQ(e.value("login", ""), "root");
    EXPECT_EQ(e.value("server_hostname", ""), "node1");
    EXPECT_EQ(e.value("server_id", ""), [] {
      std::ifstream in(g_dir + "/data/node/uuid");
      std::string u;
      in >> u;
      return u;
    }());
  }
  EXPECT_FALSE(auth_events("user.create").empty());
  bool login_ok = false;
  for (const auto& e : auth_events("user.login"))
    if (e.value("user", "") == "alice" && e.value("success", false)) login_ok = true;
  EXPECT_TRUE(login_ok);
}

TEST_F(Cluster, PlainOpenSshWorksWithTheLinesVshConfigPrints) {
  make_user("carol", "access", "root");
  auto cfg = vsh("carol", {"config"});
  ASSERT_EQ(cfg.status, 0) << cfg.err;
  std::string file = g_dir + "/carol-ssh-config";
  std::ofstream(file) << cfg.out;
  // The known_hosts the login wrote names the node as node1.purple too.
  Spawn s;
  s.argv = {"/usr/bin/ssh", "-F", file, "-o", "BatchMode=yes", "root@node1.purple", "echo plain-openssh-$((6*7))"};
  auto out = e2e::run(s, 60000);
  EXPECT_EQ(out.status, 0) << out.err;
  EXPECT_NE(out.out.find("plain-openssh-42"), std::string::npos) << out.out << out.err;

  // scp and sftp with the same lines: a file there and back, byte for byte.
  std::string local = g_dir + "/carol-upload.bin", back = g_dir + "/carol-back.bin";
  std::string remote = "/tmp/vigil-cluster-carol-" + std::to_string(getpid()) + ".bin";
  {
    std::ofstream f(local, std::ios::binary);
    for (int i = 0; i < 100000; ++i) f.put(static_cast<char>(i * 7));
  }
  Spawn scp;
  scp.argv = {"/usr/bin/scp", "-F", file, "-o", "BatchMode=yes", local, "root@node1.purple:" + remote};
  auto copied = e2e::run(scp, 60000);
  ASSERT_EQ(copied.status, 0) << copied.err;
  Spawn sftp;
  sftp.argv = {"/usr/bin/sftp", "-F", file, "-o", "BatchMode=yes", "-b", "-", "root@node1.purple"};
  sftp.stdin_data = "get " + remote + " " + back + "\nrm " + remote + "\n";
  auto fetched = e2e::run(sftp, 60000);
  ASSERT_EQ(fetched.status, 0) << fetched.err;
  std::ifstream a(local, std::ios::binary), b(back, std::ios::binary);
  std::string sent((std::istreambuf_iterator<char>(a)), {}), got((std::istreambuf_iterator<char>(b)), {});
  EXPECT_EQ(got.size(), 100000u);
  EXPECT_TRUE(got == sent) << "the file came back changed";
  EXPECT_FALSE(fs::exists(remote)) << "sftp's rm did not reach the node";
}

TEST_F(Cluster, AWrongPasswordIsRefusedAndAudited) {
  make_user("dave", "access", "root");
  auto bad = vsh("dave", {"login", "--proxy=" + proxy_flag(), "--user=dave", "--insecure",
                          "--password-stdin"},
                 std::string("not the password at all\n"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("invalid user name or password"), std::string::npos) << bad.err;
  bool audited = false;
  for (const auto& e : auth_events("user.login"))
    if (e.value("user", "") == "dave" && !e.value("success", true)) audited = true;
  EXPECT_TRUE(audited) << auth_log_text();
}

TEST_F(Cluster, APlainUserCannotCreateARoleAndTheRefusalIsAudited) {
  make_user("erin", "access", "root");
  std::string keys = g_dir + "/home-erin/keys/127.0.0.1_" + std::to_string(kWeb);
  Spawn s;
  s.argv = {"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", keys + "/cas.pem",
            "--cert", keys + "/erin-x509.pem", "--key", keys + "/erin-tls.key",
            "-H", "Content-Type: application/json", "--data",
            R"({"text":"kind: role\nversion: v8\nmetadata:\n  name: sneaky\nspec:\n  allow:\n    logins: [root]\n"})",
            "https://127.0.0.1:" + std::to_string(kWeb) + "/v1/resources"};
  auto out = e2e::run(s, 30000);
  EXPECT_EQ(out.out, "403") << out.err;
  auto get = ctl({"get", "role/sneaky"});
  EXPECT_NE(get.status, 0) << "the role was created";
  bool audited = false;
  for (const auto& e : auth_events("access.denied"))
    if (e.value("user", "") == "erin") audited = true;
  EXPECT_TRUE(audited) << auth_log_text();
}

TEST_F(Cluster, ARoleRecordingDiskOnlyRecordsDiskOnly) {
  std::string role = g_dir + "/disk-only.yaml";
  std::ofstream(role) << "kind: role\nversion: v8\nmetadata:\n  name: disk-only\nspec:\n"
                         "  allow:\n    logins: ['{{internal.logins}}']\n    node_labels:\n"
                         "      '*': '*'\n  options:\n    enhanced_recording:\n    - disk\n";
  auto created = ctl({"create", role});
  ASSERT_EQ(created.status, 0) << created.err;
  make_user("frank", "disk-only", "root");
  auto st = vsh("frank", {"status"});
  EXPECT_NE(st.out.find("Enhanced recording: disk"), std::string::npos) << st.out;
  auto run = vsh("frank", {"ssh", "root@node1", "cat /etc/hostname >/dev/null; echo done"});
  ASSERT_EQ(run.status, 0) << run.err;
  std::string sid;
  bool ended = wait_until(
      [&] {
        for (const auto& e : auth_events("session.end"))
          if (e.value("user", "") == "frank") {
            sid = e.value("sid", "");
            return true;
          }
        return false;
      },
      30);
  ASSERT_TRUE(ended) << auth_log_text();
  size_t disk = 0, command = 0, network = 0;
  for (const auto& e : auth_events("session.disk")) disk += e.value("sid", "") == sid;
  for (const auto& e : auth_events("session.command")) command += e.value("sid", "") == sid;
  for (const auto& e : auth_events("session.network")) network += e.value("sid", "") == sid;
  EXPECT_GT(disk, 0u);
  EXPECT_EQ(command, 0u);
  EXPECT_EQ(network, 0u);
}

TEST_F(Cluster, TwoRolesRecordTheUnionOfTheirKinds) {
  for (const char* kind : {"command", "network"}) {
    std::string role = g_dir + "/only-" + kind + ".yaml";
    std::ofstream(role) << "kind: role\nversion: v8\nmetadata:\n  name: only-" << kind
                        << "\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n"
                           "    node_labels:\n      '*': '*'\n  options:\n    enhanced_recording:\n"
                           "    - " << kind << "\n";
    auto created = ctl({"create", role});
    ASSERT_EQ(created.status, 0) << created.err;
  }
  make_user("uma", "only-command,only-network", "root");
  auto st = vsh("uma", {"status"});
  EXPECT_NE(st.out.find("Enhanced recording: command, network"), std::string::npos) << st.out;
  auto run = vsh("uma", {"ssh", "root@node1",
                         "cat /etc/hostname >/dev/null; bash -c 'exec 3<>/dev/tcp/127.0.0.1/9' 2>/dev/null; "
                         "echo done"});
  ASSERT_EQ(run.status, 0) << run.err;
  std::string sid;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& e : auth_events("session.end"))
          if (e.value("user", "") == "uma") {
            sid = e.value("sid", "");
            return true;
          }
        return false;
      },
      30))
      << auth_log_text();
  size_t disk = 0, command = 0, network = 0;
  for (const auto& e : auth_events("session.disk")) disk += e.value("sid", "") == sid;
  for (const auto& e : auth_events("session.command")) command += e.value("sid", "") == sid;
  for (const auto& e : auth_events("session.network")) network += e.value("sid", "") == sid;
  EXPECT_GT(command, 0u) << "the first role's kind";
  EXPECT_GT(network, 0u) << "the second role's kind";
  EXPECT_EQ(disk, 0u) << "neither role records disk";
}

TEST_F(Cluster, ALoginTheRolesDoNotAllowOnThisNodeIsRefusedByTheNode) {
  // The role lets grace log in as root only on nodes labelled env=prod;
  // node1 has no labels: the certificate says root, the node says no.
  std::string role = g_dir + "/prod-only.yaml";
  std::ofstream(role) << "kind: role\nversion: v8\nmetadata:\n  name: prod-only\nspec:\n"
                         "  allow:\n    logins: [root]\n    node_labels:\n      env: prod\n";
  ASSERT_EQ(ctl({"create", role}).status, 0);
  make_user("grace", "prod-only", "root");
  // vsh ls hides node1 from grace (so her known_hosts lacks it): use plain
  // ssh with a known_hosts that has it, so that only the node can say no.
  make_user("heidi", "access", "root");
  std::string keys = "/keys/127.0.0.1_" + std::to_string(kWeb);
  auto ls = vsh("grace", {"ls"});
  EXPECT_EQ(ls.out.find("node1"), std::string::npos) << ls.out;
  std::string cfg = vsh("grace", {"config"}).out;
  std::string file = g_dir + "/grace-ssh-config";
  std::ofstream(file) << cfg;
  fs::copy_file(g_dir + "/home-heidi" + keys + "/known_hosts", g_dir + "/home-grace" + keys + "/known_hosts",
                fs::copy_options::overwrite_existing);
  Spawn s;
  s.argv = {"/usr/bin/ssh", "-F", file, "-o", "BatchMode=yes", "root@node1.purple", "echo should-not-run"};
  auto run = e2e::run(s, 60000);
  EXPECT_NE(run.status, 0);
  EXPECT_EQ(run.out.find("should-not-run"), std::string::npos);
  EXPECT_NE(run.err.find("Permission denied"), std::string::npos) << run.err;
  // The node's refusal reaches the cluster log (through the node's spool).
  bool audited = wait_until(
      [] {
        for (const auto& e : auth_events("auth"))
          if (e.value("user", "") == "grace" && !e.value("success", true) &&
              e.value("reason", "") == "access_denied")
            return true;
        return false;
      },
      30);
  EXPECT_TRUE(audited) << "the node's refusal is not in the cluster log";
}

TEST_F(Cluster, AnExpiredJoinTokenIsRefusedToASecondNode) {
  auto add = ctl({"nodes", "add", "--ttl=1s"});
  ASSERT_EQ(add.status, 0) << add.err;
  std::string token, pin;
  std::istringstream lines(add.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("The invite token: ", 0) == 0) token = line.substr(18);
    if (line.rfind("  ca_pin: ", 0) == 0) pin = line.substr(10);
  }
  ASSERT_FALSE(token.empty()) << add.out;
  ASSERT_FALSE(pin.empty()) << add.out;
  std::this_thread::sleep_for(std::chrono::seconds(2));
  std::string cfg = g_dir + "/node2.yaml";
  std::ofstream(cfg) << "version: v3\nteleport:\n  nodename: node2\n  data_dir: " << g_dir
                     << "/node2\n  auth_token: " << token << "\n  auth_server: 127.0.0.1:" << kAuth
                     << "\n  ca_pin: " << pin << "\nauth_service:\n  enabled: false\n"
                     << "proxy_service:\n  enabled: false\nssh_service:\n  enabled: true\n"
                     << "  listen_addr: 127.0.0.1:23122\n";
  Spawn s;
  s.argv = {e2e::kVigil, "start", "-c", cfg};
  auto out = e2e::run(s, 60000);
  EXPECT_NE(out.status, 0);
  EXPECT_NE(out.err.find("expired"), std::string::npos) << out.err;
  EXPECT_FALSE(fs::exists(g_dir + "/node2/node/uuid"));
}

}  // namespace

namespace {

TEST_F(Cluster, VigilctlEventsSearchesTheClusterLogAndUsersSeeOnlyTheirOwn) {
  make_user("ivan", "access", "root");
  auto run = vsh("ivan", {"ssh", "root@node1", "id -un"});
  ASSERT_EQ(run.status, 0) << run.err;
  // The admin sees ivan's session (and everyone's) in the text form.
  bool listed = wait_until(
      [] {
        auto ev = ctl({"events", "--type", "session.command", "--user", "ivan", "--limit", "1000"});
        return ev.status == 0 && ev.out.find("user=ivan login=root session.command") != std::string::npos &&
               ev.out.find("/usr/bin/id -un") != std::string::npos;
      },
      30);
  EXPECT_TRUE(listed) << ctl({"events", "--user", "ivan"}).out;
  auto json = ctl({"events", "--type", "user.create", "--format", "json", "--limit", "1000"});
  ASSERT_EQ(json.status, 0) << json.err;
  EXPECT_NE(json.out.find("\"name\":\"ivan\""), std::string::npos) << json.out;

  // A plain user (role access: no event rule) sees only their own events,
  // and asking for another user's is refused.
  std::string keys = g_dir + "/home-ivan/keys/127.0.0.1_" + std::to_string(kWeb);
  auto get = [&](const std::string& query) {
    Spawn s;
    s.argv = {"/usr/bin/curl", "-sS", "-w", "\n%{http_code}", "--cacert", keys + "/cas.pem",
              "--cert", keys + "/ivan-x509.pem", "--key", keys + "/ivan-tls.key",
              "https://127.0.0.1:" + std::to_string(kWeb) + "/v1/events?limit=1000" + query};
    return e2e::run(s, 30000);
  };
  auto own = get("");
  ASSERT_EQ(own.status, 0) << own.err;
  std::string code = own.out.substr(own.out.rfind('\n') + 1);
  EXPECT_EQ(code, "200");
  auto page = nlohmann::json::parse(own.out.substr(0, own.out.rfind('\n')), nullptr, false);
  ASSERT_TRUE(page.is_object()) << own.out;
  ASSERT_FALSE(page["events"].empty());
  for (const auto& e : page["events"]) EXPECT_EQ(e.value("user", ""), "ivan") << e.dump();
  auto others = get("&user=alice");
  EXPECT_EQ(others.out.substr(others.out.rfind('\n') + 1), "403") << others.out;
  // ... and audited.
  ASSERT_TRUE(wait_until(
      [] {
        for (const auto& e : auth_events("access.denied"))
          if (e.value("user", "") == "ivan" && e.value("action", "") == "search events") return true;
        return false;
      },
      10))
      << auth_log_text();
}

}  // namespace

namespace {

// A node of a cluster holds more than a standalone one (its spool, its
// connections to the auth service): none of it reaches a user's shell.
// `vsh ssh` passes -t as ssh takes it: once asks for a terminal when stdin
// is one, twice (-tt, or -t -t) forces one (what scripts and tests need);
// -T asks for none; -t with -T is refused. stdin is a pipe here, never a
// terminal.
TEST_F(Cluster, VshSshTtForcesATerminalWhenStdinIsNotOne) {
  make_user("quinn", "access", "root");
  for (const auto& flags : std::vector<std::vector<std::string>>{{"-tt"}, {"-t", "-t"}}) {
    std::vector<std::string> args = {"ssh"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"root@node1", "tty"});
    auto forced = vsh("quinn", args, std::string());
    EXPECT_EQ(forced.status, 0) << flags[0] << ": " << forced.err;
    EXPECT_EQ(forced.out.rfind("/dev/pts/", 0), 0u) << flags.size() << ": " << forced.out;
  }
  // One -t: ssh declines, as stdin is not a terminal; -T: none asked.
  for (const std::string& flag : {"-t", "-T"}) {
    auto plain = vsh("quinn", {"ssh", flag, "root@node1", "tty"}, std::string());
    EXPECT_EQ(plain.out, "not a tty\n") << flag << ": " << plain.err;
  }
  auto both = vsh("quinn", {"ssh", "-t", "-T", "root@node1", "tty"}, std::string());
  EXPECT_NE(both.status, 0);
  EXPECT_EQ(both.out, "");
  EXPECT_NE(both.err.find("give one of them"), std::string::npos) << both.err;
}

TEST_F(Cluster, OnlyStdioReachesAUsersCommandOnAClusterNode) {
  make_user("judy", "access", "root");
  auto run = vsh("judy", {"ssh", "root@node1", "ls /proc/$$/fd; true"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "0\n1\n2\n");
}

}  // namespace

namespace {

// ---- Recordings read back: vsh recordings ls, vsh play (issue 10 §4) ----

// A shell word for `script -c`.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// `vsh ssh -t root@node1 COMMAND` as `who`, on a terminal that script(1)
// gives it: a session's output is recorded when it has a terminal.
Spawn vsh_ssh_on_a_terminal(const std::string& who, const std::string& command) {
  Spawn s;
  s.argv = {"/usr/bin/script", "-qec",
            quoted(kVsh) + " ssh -t root@node1 " + quoted(command), "/dev/null"};
  s.env.push_back("VSH_HOME=" + g_dir + "/home-" + who);
  s.env.push_back("HOME=" + g_dir);
  return s;
}

// The rows `vsh recordings ls --format json` printed.
std::vector<nlohmann::json> recording_rows(const std::string& who) {
  auto ls = vsh(who, {"recordings", "ls", "--format", "json"});
  std::vector<nlohmann::json> rows;
  if (ls.status != 0) return rows;
  std::istringstream lines(ls.out);
  std::string line;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) rows.push_back(std::move(j));
  }
  return rows;
}

// The sid of the recording `who` lists with that status and command count
// of at least one, waiting for the node's upload; "" when none came.
std::string wait_for_recording(const std::string& who, const std::string& status,
                               const std::set<std::string>& besides = {}) {
  std::string sid;
  wait_until(
      [&] {
        for (const auto& row : recording_rows(who))
          if (row.value("status", "") == status && !besides.count(row.value("sid", ""))) {
            sid = row.value("sid", "");
            return true;
          }
        return false;
      },
      40);
  return sid;
}

// kate's session (a terminal, a marker printed by /bin/echo), once for the
// tests that read it.
const std::string& kate_session() {
  static std::string sid;
  if (!sid.empty()) return sid;
  make_user("kate", "access", "root");
  auto run = e2e::run(vsh_ssh_on_a_terminal("kate", "/bin/echo recorded-by-kate-$((6*7))"), 60000);
  EXPECT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("recorded-by-kate-42"), std::string::npos) << run.out;
  sid = wait_for_recording("kate", "ended");
  return sid;
}

// curl GET path on the web port with the given identity (cert, key; both
// empty: none). Returns {HTTP status, body}.
std::pair<std::string, std::string> curl_get(const std::string& path, const std::string& cert,
                                             const std::string& key, const std::string& cacert) {
  Spawn s;
  s.argv = {"/usr/bin/curl", "-sS", "--path-as-is", "-w", "\n%{http_code}", "--cacert", cacert};
  if (!cert.empty()) s.argv.insert(s.argv.end(), {"--cert", cert, "--key", key});
  s.argv.push_back("https://127.0.0.1:" + std::to_string(kWeb) + path);
  auto out = e2e::run(s, 30000);
  auto nl = out.out.rfind('\n');
  if (nl == std::string::npos) return {"", out.out + out.err};
  return {out.out.substr(nl + 1), out.out.substr(0, nl)};
}

std::pair<std::string, std::string> curl_as(const std::string& who, const std::string& path) {
  std::string keys = g_dir + "/home-" + who + "/keys/127.0.0.1_" + std::to_string(kWeb);
  return curl_get(path, keys + "/" + who + "-x509.pem", keys + "/" + who + "-tls.key",
                  keys + "/cas.pem");
}

bool denied(const std::string& user, const std::string& action) {
  for (const auto& e : auth_events("access.denied"))
    if (e.value("user", "") == user && e.value("action", "") == action) return true;
  return false;
}

TEST_F(Cluster, VshRecordingsLsListsTheUsersSessionAndVshPlayShowsItsOutputAndEvents) {
  const std::string sid = kate_session();
  ASSERT_FALSE(sid.empty()) << "kate's recording was never listed: " << auth_log_text();
  nlohmann::json row;
  for (const auto& r : recording_rows("kate"))
    if (r.value("sid", "") == sid) row = r;
  ASSERT_TRUE(row.is_object());
  EXPECT_EQ(row.value("user", ""), "kate");
  EXPECT_EQ(row.value("login", ""), "root");
  EXPECT_EQ(row.value("server_hostname", ""), "node1");
  EXPECT_TRUE(row.value("interactive", false));
  EXPECT_GE(row["events"].value("command", 0), 1) << row.dump();
  EXPECT_GT(row.value("bytes", 0), 0) << row.dump();
  EXPECT_GT(row.value("output_bytes", 0), 0) << row.dump();

  // The table `vigil recordings` prints, with kate's session in it.
  auto table = vsh("kate", {"recordings", "ls"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_EQ(table.out.rfind("START (UTC)", 0), 0u) << table.out;
  bool in_table = false;
  for (const auto& l : e2e::split_lines(table.out))
    if (l.rfind(sid) != std::string::npos && l.find(" kate ") != std::string::npos &&
        l.find(" root ") != std::string::npos && l.find(" interactive ") != std::string::npos &&
        l.size() >= 5 && l.substr(l.size() - 5) == "ended")
      in_table = true;
  EXPECT_TRUE(in_table) << table.out;

  // The output, as the session's terminal showed it.
  auto play = vsh("kate", {"play", sid});
  ASSERT_EQ(play.status, 0) << play.err;
  EXPECT_NE(play.out.find("recorded-by-kate-42"), std::string::npos) << play.out;
  EXPECT_EQ(play.err, "");
  // Its events: the command the echo ran, with its arguments.
  auto events = vsh("kate", {"play", sid, "--format", "json"});
  ASSERT_EQ(events.status, 0) << events.err;
  bool command = false, end = false;
  std::istringstream lines(events.out);
  std::string line;
  while (std::getline(lines, line)) {
    auto e = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(e.is_object()) << line;
    EXPECT_EQ(e.value("sid", ""), sid) << line;
    if (e.value("event", "") == "session.command" && e.value("path", "") == "/bin/echo" &&
        e.dump().find("recorded-by-kate-42") != std::string::npos)
      command = true;
    if (e.value("event", "") == "session.end") end = true;
  }
  EXPECT_TRUE(command) << events.out;
  EXPECT_TRUE(end) << events.out;
  // Text with the commands marked.
  auto text = vsh("kate", {"play", sid, "--format", "text"});
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("/bin/echo"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("recorded-by-kate-42"), std::string::npos) << text.out;
}

TEST_F(Cluster, AnotherUserNeitherListsNorPlaysTheSessionAndIsAudited) {
  const std::string sid = kate_session();
  ASSERT_FALSE(sid.empty());
  make_user("leo", "access", "root");
  // leo's own session is listed to leo: the list is not empty by accident.
  auto run = e2e::run(vsh_ssh_on_a_terminal("leo", "/bin/echo leo-was-here"), 60000);
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  std::string own = wait_for_recording("leo", "ended");
  ASSERT_FALSE(own.empty());
  for (const auto& r : recording_rows("leo")) {
    EXPECT_EQ(r.value("user", ""), "leo") << r.dump();
    EXPECT_NE(r.value("sid", ""), sid);
  }
  auto table = vsh("leo", {"recordings", "ls"});
  EXPECT_EQ(table.out.find(sid), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(own), std::string::npos) << table.out;

  auto play = vsh("leo", {"play", sid, "--format", "json"});
  EXPECT_NE(play.status, 0);
  EXPECT_EQ(play.out, "");
  EXPECT_NE(play.err.find("is not one of yours"), std::string::npos) << play.err;
  EXPECT_TRUE(denied("leo", "play recording")) << auth_log_text();
  // Each window of bytes is checked, not only the first.
  auto window = curl_as("leo", "/v1/recordings/" + sid + "?offset=4096&length=16");
  EXPECT_EQ(window.first, "403") << window.second;
  // Asking for kate's list by name.
  auto others = curl_as("leo", "/v1/recordings?user=kate");
  EXPECT_EQ(others.first, "403") << others.second;
  EXPECT_TRUE(denied("leo", "list recordings")) << auth_log_text();
}

TEST_F(Cluster, AnAuditorListsAndPlaysEveryonesSessions) {
  const std::string sid = kate_session();
  ASSERT_FALSE(sid.empty());
  make_user("mia", "auditor", "root");
  bool listed = false;
  for (const auto& r : recording_rows("mia"))
    if (r.value("sid", "") == sid && r.value("user", "") == "kate") listed = true;
  EXPECT_TRUE(listed);
  auto play = vsh("mia", {"play", sid});
  ASSERT_EQ(play.status, 0) << play.err;
  EXPECT_NE(play.out.find("recorded-by-kate-42"), std::string::npos) << play.out;
  // And a page at a time: limit 1 gives one row and a continuation.
  auto page = curl_as("mia", "/v1/recordings?limit=1");
  ASSERT_EQ(page.first, "200") << page.second;
  auto j = nlohmann::json::parse(page.second, nullptr, false);
  ASSERT_TRUE(j.is_object()) << page.second;
  EXPECT_EQ(j["recordings"].size(), 1u);
  ASSERT_TRUE(j["next"].is_string());
  EXPECT_NE(j["next"].get<std::string>(), "") << "kate's and leo's (or others') are two at least";
  auto second = curl_as("mia", "/v1/recordings?limit=1&after=" + j["next"].get<std::string>());
  ASSERT_EQ(second.first, "200") << second.second;
  auto k = nlohmann::json::parse(second.second, nullptr, false);
  ASSERT_TRUE(k.is_object() && k["recordings"].size() == 1u) << second.second;
  EXPECT_NE(k["recordings"][0].value("sid", ""), j["recordings"][0].value("sid", ""));
  EXPECT_EQ(curl_as("mia", "/v1/recordings?limit=100000").first, "400");
}

// Reading a recording is audited as Teleport does (session.recording.access,
// T2012I): an auditor plays kate's session and the log has one event with
// the auditor's name, the sid and the auditor's address; a second playback
// and a read of a later window within the audit window (5 minutes) add
// none; a refused read writes none (its access.denied stays).
TEST_F(Cluster, PlayingARecordingIsAuditedOnceWithTheReadersNameAndTheSid) {
  const std::string sid = kate_session();
  ASSERT_FALSE(sid.empty());
  make_user("nina", "auditor", "root");
  auto accesses = [&](const std::string& user) {
    std::vector<nlohmann::json> out;
    for (const auto& e : auth_events("session.recording.access"))
      if (e.value("user", "") == user && e.value("sid", "") == sid) out.push_back(e);
    return out;
  };
  ASSERT_EQ(accesses("nina").size(), 0u);
  auto play = vsh("nina", {"play", sid});
  ASSERT_EQ(play.status, 0) << play.err;
  EXPECT_NE(play.out.find("recorded-by-kate-42"), std::string::npos) << play.out;
  auto once = accesses("nina");
  ASSERT_EQ(once.size(), 1u) << auth_log_text();
  EXPECT_EQ(once[0].value("code", ""), "T2012I") << once[0].dump();
  EXPECT_EQ(once[0].value("cluster_name", ""), "purple") << once[0].dump();
  EXPECT_EQ(once[0].value("addr.remote", "").rfind("127.0.0.1:", 0), 0u) << once[0].dump();
  EXPECT_FALSE(once[0].value("time", "").empty()) << once[0].dump();
  // Played again, and a later window read directly: the same reader of the
  // same session within the window, no new event.
  auto again = vsh("nina", {"play", sid, "--format", "json"});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(curl_as("nina", "/v1/recordings/" + sid + "?offset=16&length=16").first, "200");
  EXPECT_EQ(accesses("nina").size(), 1u) << auth_log_text();
  // A read that starts past offset 0 is audited too (the first read of omar).
  make_user("omar", "auditor", "root");
  EXPECT_EQ(curl_as("omar", "/v1/recordings/" + sid + "?offset=16&length=16").first, "200");
  EXPECT_EQ(accesses("omar").size(), 1u) << auth_log_text();
  // Refused: access.denied as before, and no session.recording.access.
  make_user("pete", "access", "root");
  auto refused = vsh("pete", {"play", sid});
  EXPECT_NE(refused.status, 0);
  EXPECT_TRUE(denied("pete", "play recording")) << auth_log_text();
  EXPECT_EQ(accesses("pete").size(), 0u) << auth_log_text();
}

TEST_F(Cluster, ForgedSidsNodesAndAnonymousCallersReadNoRecording) {
  const std::string sid = kate_session();
  ASSERT_FALSE(sid.empty());
  // Not a uuid, through vsh: refused with what to give.
  for (const std::string& bad : std::vector<std::string>{"not-a-uuid", "../../../etc/passwd", sid.substr(0, 8)}) {
    auto play = vsh("kate", {"play", bad});
    EXPECT_NE(play.status, 0) << bad;
    EXPECT_EQ(play.out, "") << bad;
    EXPECT_NE(play.err.find("vsh:"), std::string::npos) << play.err;
  }
  auto upper = vsh("kate", {"play", [&] {
                      std::string u = sid;
                      for (auto& c : u) c = static_cast<char>(std::toupper(c));
                      return u;
                    }()});
  EXPECT_NE(upper.err.find("is not a session id"), std::string::npos) << upper.err;
  // Paths that try to leave the recordings, as they are sent.
  for (const std::string& path : std::vector<std::string>{
           "/v1/recordings/..%2F..%2F..%2Fetc%2Fpasswd", "/v1/recordings/%2E%2E",
                           "/v1/recordings/" + sid + "%00", "/v1/recordings/" + sid + "%2F..",
                           "/v1/recordings/..%252F..%252Fetc%252Fpasswd",
                           "/v1/recordings/not-a-uuid"}) {
    auto r = curl_as("kate", path);
    EXPECT_EQ(r.first, "400") << path << ": " << r.second;
    EXPECT_EQ(r.second.find("root:"), std::string::npos);
  }
  EXPECT_NE(curl_as("kate", "/v1/recordings/not-a-uuid").second.find("is not a session id"),
            std::string::npos);
  auto dotdot = curl_as("kate", "/v1/recordings/../../etc/passwd");
  EXPECT_NE(dotdot.first, "200") << dotdot.second;
  // A uuid that names no recording.
  EXPECT_EQ(curl_as("kate", "/v1/recordings/00000000-0000-4000-8000-000000000000").first, "404");

  // The node's identity reads nothing, and is audited.
  const std::string node = g_dir + "/data/node";
  auto by_node = curl_get("/v1/recordings/" + sid, node + "/tls.crt", node + "/tls.key",
                          node + "/cas.pem");
  EXPECT_EQ(by_node.first, "403") << by_node.second;
  EXPECT_EQ(curl_get("/v1/recordings", node + "/tls.crt", node + "/tls.key", node + "/cas.pem").first,
            "403");
  bool node_audited = false;
  for (const auto& e : auth_events("access.denied"))
    if (e.value("caller", "") == "node" && e.value("action", "") == "play recording")
      node_audited = true;
  EXPECT_TRUE(node_audited) << auth_log_text();
  // No certificate: 401, audited.
  auto anonymous = curl_get("/v1/recordings/" + sid, "", "", node + "/cas.pem");
  EXPECT_EQ(anonymous.first, "401") << anonymous.second;
  EXPECT_TRUE(denied("anonymous", "play recording")) << auth_log_text();
}

TEST_F(Cluster, ASessionInProgressPlaysWhatHasArrivedAndSaysSo) {
  make_user("nora", "access", "root");
  e2e::Process session(vsh_ssh_on_a_terminal("nora", "echo started-$((6*7)); sleep 25"));
  std::string sid = wait_for_recording("nora", "in progress");
  ASSERT_FALSE(sid.empty()) << "no recording of nora's session was in progress";
  bool shown = false;
  e2e::Outcome play;
  wait_until(
      [&] {
        play = vsh("nora", {"play", sid});
        shown = play.status == 0 && play.out.find("started-42") != std::string::npos;
        return shown;
      },
      20);
  EXPECT_TRUE(shown) << play.out << play.err;
  EXPECT_NE(play.err.find("session in progress, shown up to offset"), std::string::npos) << play.err;
  auto done = session.wait(60000);
  EXPECT_EQ(done.status, 0) << done.out << done.err;
  // Then it ends, and plays whole.
  EXPECT_EQ(wait_for_recording("nora", "ended"), sid);
}

}  // namespace

namespace {

// The node records the client the proxy carried, not the proxy: the proxy
// starts each connection to a node with a header it signs
// (ca/proxy_header.hpp), and the node's monitor believes only that. Plain
// OpenSSH with vsh's ssh_config, from 127.0.0.2 (BindAddress, which the
// ProxyJump's own ssh reads from the same file): session.start's
// addr.remote is 127.0.0.2, whereas the proxy reaches the node from
// 127.0.0.1.
TEST_F(Cluster, TheNodeRecordsTheClientTheProxyCarriedNotTheProxy) {
  make_user("rosa", "access", "root");
  std::string vsh_config;
  for (const auto& entry : fs::recursive_directory_iterator(g_dir + "/home-rosa"))
    if (entry.path().filename() == "ssh_config") vsh_config = entry.path().string();
  ASSERT_FALSE(vsh_config.empty()) << "vsh wrote no ssh_config";
  std::ifstream in(vsh_config);
  std::stringstream text;
  text << in.rdbuf();
  const std::string config = g_dir + "/rosa-from-127.0.0.2";
  std::ofstream(config) << "BindAddress 127.0.0.2\n" << text.str();
  Spawn s;
  s.argv = {"/usr/bin/ssh", "-F", config, "-o", "BatchMode=yes", "root@node1",
            "echo carried-from-two"};
  s.env.push_back("HOME=" + g_dir + "/home-rosa");
  auto run = e2e::run(s);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("carried-from-two"), std::string::npos) << run.out;
  nlohmann::json start;
  bool seen = wait_until(
      [&] {
        for (const auto& e : auth_events("session.start"))
          if (e.value("user", "") == "rosa") start = e;
        return !start.is_null();
      },
      30);
  ASSERT_TRUE(seen) << auth_log_text();
  EXPECT_EQ(start.value("addr.remote", "").rfind("127.0.0.2:", 0), 0u) << start.dump();
  // And the node's login event (auth, T3007I) says the same.
  bool login_seen = false;
  for (const auto& e : auth_events("auth"))
    if (e.value("user", "") == "rosa" && e.value("login", "") == "root") {
      login_seen = true;
      EXPECT_EQ(e.value("addr.remote", "").rfind("127.0.0.2:", 0), 0u) << e.dump();
    }
  EXPECT_TRUE(login_seen) << auth_log_text();
}

// Nobody but the proxy may choose the address a connection is recorded
// with: a PROXY v2 header sent straight to the node's SSH port, as haproxy
// writes it (no Vigil signature), claiming 198.51.100.7, ends the
// connection before the node says a word, and the node says why.
TEST_F(Cluster, AProxyHeaderNotSignedByTheProxyIsRefused) {
  std::string header("\r\n\r\n\0\r\nQUIT\n", 12);
  header += "\x21\x11";
  header += std::string("\x00\x0c", 2);
  header += std::string("\xc6\x33\x64\x07\x7f\x00\x00\x01\xd4\x31\x59\xd6", 12);
  header += "SSH-2.0-OpenSSH_9.2p1\r\n";
  Spawn s;
  // What the node answers, if anything, within 10 s.
  s.argv = {"/usr/bin/timeout", "10", "/bin/bash", "-c",
            "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(kNode) + "; cat >&3; cat <&3"};
  s.stdin_data = header;
  auto r = e2e::run(s);
  EXPECT_EQ(r.out.find("SSH-2.0"), std::string::npos) << "the node spoke to a forged header: " << r.out;
  EXPECT_NE(r.status, 124) << "the node kept the connection open";
  bool said = wait_until(
      [] {
        return g_cluster->log_text().find("began with a proxy header that is refused: the proxy "
                                          "header is malformed: no Vigil origin TLV") !=
               std::string::npos;
      },
      10);
  EXPECT_TRUE(said) << g_cluster->log_text();
}

}  // namespace
