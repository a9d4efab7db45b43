// The SSH node attacked by a user who holds a valid certificate: what a
// session's processes can reach of the node (only fds 0-2), what runs on
// after logout (recorded, under the session), what a kill -9 of the node
// leaves (nothing running, ends written at restart), a client that stops
// reading (nothing lost), a stop with stalled clients (bounded). Each test
// performs the attack with OpenSSH's client and asserts that it fails.
#include <sys/stat.h>

#include <fstream>

#include "../support/wait.hpp"
#include "node_fixture.hpp"

namespace e2e {
namespace {

using json = nlohmann::ordered_json;
using vigil::testing::eventually;
using vigil::testing::running;

std::string comm_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

std::set<std::string> fds_of(pid_t pid) {
  std::set<std::string> fds;
  for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    fds.insert(e.path().filename().string());
  return fds;
}

pid_t read_pid(const std::string& file) {
  std::ifstream in(file);
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

class NodeSecurity : public SshNodeTest {
 protected:
  // A line for the ssh_service section (two spaces) or its
  // enhanced_recording (four), after what the fixture wrote.
  void add_config(const std::string& line) {
    write_file(dir_ + "/node.yaml", read_file(dir_ + "/node.yaml") + line + "\n");
  }

  // Every process in this node's session cgroups.
  std::vector<pid_t> session_pids() const {
    std::vector<pid_t> pids;
    std::string root = "/cgroup2" + root_path_;
    if (!std::filesystem::exists(root)) return pids;
    for (auto& dir : std::filesystem::directory_iterator(root)) {
      if (!dir.is_directory()) continue;
      std::ifstream procs(dir.path() / "cgroup.procs");
      pid_t pid;
      while (procs >> pid) pids.push_back(pid);
    }
    return pids;
  }

  pid_t session_process_named(const std::string& name) const {
    for (pid_t pid : session_pids())
      if (comm_of(pid) == name) return pid;
    return 0;
  }

  std::string pid_file(const std::string& name) const {
    // Writable by the login (the test directory is root's).
    return "/tmp/vigil-ssh-" + std::to_string(getpid()) + "-" + name;
  }
};

// Another client's connection and the listening socket are in the node
// while these sessions run: none of them, nor any other fd of the node's
// (pty master, pipes, BPF, audit log, host key), may reach the user.
TEST_F(NodeSecurity, OnlyStdioReachesExecPtyAndSftpSessions) {
  start_node();
  auto other_argv = ssh("user", "user-cert.pub");
  other_argv.insert(other_argv.end(), {std::string(kLogin) + "@127.0.0.1", "exec sleep 30"});
  Process other({other_argv});
  ASSERT_TRUE(eventually([&] { return session_process_named("sleep") != 0; }));

  Outcome exec = run_ssh("ls /proc/$$/fd; true");
  ASSERT_EQ(exec.status, 0) << exec.err;
  EXPECT_EQ(exec.out, "0\n1\n2\n");

  auto pty_argv = ssh("user", "user-cert.pub", {"-tt"});
  pty_argv.insert(pty_argv.end(), {std::string(kLogin) + "@127.0.0.1", "ls -1 /proc/$$/fd; true"});
  Outcome pty = run({pty_argv});
  ASSERT_EQ(pty.status, 0) << pty.err;
  EXPECT_EQ(pty.out, "0\r\n1\r\n2\r\n");

  // sftp-server: its fds seen from outside while the subsystem runs.
  LibsshClient client(port_, kLogin);
  ASSERT_EQ(ssh_connect(client.s), SSH_OK) << ssh_get_error(client.s);
  ASSERT_TRUE(client.login_with_certificate(dir_ + "/user"));
  ssh_channel channel = ssh_channel_new(client.s);
  ASSERT_EQ(ssh_channel_open_session(channel), SSH_OK);
  ASSERT_EQ(ssh_channel_request_subsystem(channel, "sftp"), SSH_OK);
  pid_t sftp = 0;
  ASSERT_TRUE(eventually([&] { return (sftp = session_process_named("sftp-server")) != 0; }));
  // sftp-server opens /dev/null for a moment at start-up (OpenSSH's
  // sanitise_stdfd) and closes it: wait for that, so that only an fd that
  // stays (a leak) fails the test.
  std::set<std::string> seen;
  EXPECT_TRUE(eventually([&] { return (seen = fds_of(sftp)) == std::set<std::string>{"0", "1", "2"}; }, 100))
      << "sftp-server keeps fds beyond stdio: " << ::testing::PrintToString(seen);
  ssh_channel_close(channel);
  ssh_channel_free(channel);
  kill(other.pid(), SIGTERM);
  other.wait();
}

// `setsid -f` and `nohup ... &` outlive the login: what they do afterwards
// is the session's, recorded under its sid after session.end, and
// session.leftovers_end says when the last of them exited.
TEST_F(NodeSecurity, ProcessesLeftAfterLogoutStayRecordedUnderTheSession) {
  start_node();
  Outcome o = run_ssh(
      "setsid -f sh -c 'sleep 0.5; exec cat /etc/hostname' >/dev/null 2>&1; "
      "nohup sh -c 'sleep 0.7; exec id -u' >/dev/null 2>&1 & echo bye");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "bye\n");
  std::string sid;
  ASSERT_TRUE(eventually([&] {
    Log log = audit_log();
    if (log.count("session.leftovers_end") == 0) return false;
    sid = log.of("session.leftovers_end")[0]["sid"];
    return true;
  })) << audit_log().text;
  Log log = audit_log();
  size_t end = SIZE_MAX;
  for (size_t i = 0; i < log.events.size(); ++i)
    if (log.events[i]["event"] == "session.end" && log.events[i]["sid"] == sid) end = i;
  ASSERT_NE(end, SIZE_MAX);
  EXPECT_GE(log.events[end]["leftover_processes"].get<int>(), 2);
  EXPECT_EQ(log.events[end]["leftover_action"], "recorded");
  std::set<std::string> after;
  for (size_t i = end + 1; i < log.events.size(); ++i)
    if (log.events[i]["event"] == "session.command" && log.events[i]["sid"] == sid)
      after.insert(log.events[i]["program"].get<std::string>());
  EXPECT_TRUE(after.count("cat")) << log.text;
  EXPECT_TRUE(after.count("id")) << log.text;
  json last = log.of("session.leftovers_end")[0];
  EXPECT_EQ(last["killed"], false);
  EXPECT_EQ(last["user"], kUser);
  EXPECT_EQ(last["login"], kLogin);
  EXPECT_TRUE(last.contains("addr.remote"));
}

// kill -9 of the node: nothing its sessions ran goes on unrecorded, the port
// is free for the restart, and the restarted node writes each missing end.
TEST_F(NodeSecurity, KillNineOfTheNodeEndsItsSessionsAndTheRestartRecoversThem) {
  start_node();
  std::string exec_pid = pid_file("exec"), pty_pid = pid_file("pty");
  unlink(exec_pid.c_str());
  unlink(pty_pid.c_str());
  auto exec_argv = ssh("user", "user-cert.pub");
  exec_argv.insert(exec_argv.end(),
                   {std::string(kLogin) + "@127.0.0.1", "echo $$ > " + exec_pid + "; exec sleep 300"});
  auto pty_argv = ssh("user", "user-cert.pub", {"-tt"});
  pty_argv.insert(pty_argv.end(),
                  {std::string(kLogin) + "@127.0.0.1", "echo $$ > " + pty_pid + "; exec sleep 300"});
  Process exec_client({exec_argv}), pty_client({pty_argv});
  ASSERT_TRUE(eventually([&] { return read_pid(exec_pid) > 0 && read_pid(pty_pid) > 0; }));
  pid_t a = read_pid(exec_pid), b = read_pid(pty_pid);
  unlink(exec_pid.c_str());
  unlink(pty_pid.c_str());
  ASSERT_TRUE(eventually([&] { return audit_log().count("session.start") == 2; }));

  kill(node_->pid(), SIGKILL);
  node_->wait();
  node_.reset();
  EXPECT_TRUE(eventually([&] { return !running(a) && !running(b); }))
      << "a session's process outlived the node";
  EXPECT_EQ(exec_client.wait().status, 255);
  EXPECT_EQ(pty_client.wait().status, 255);

  start_node();  // the port is free: no orphan holds it
  Outcome o = run_ssh("true");
  EXPECT_EQ(o.status, 0) << o.err;
  stop_node();
  Log log = audit_log();
  size_t recovered = 0;
  for (const auto& e : log.of("session.end"))
    if (e.value("recovered", false)) {
      ++recovered;
      EXPECT_EQ(e["user"], kUser);
      EXPECT_FALSE(e.contains("lost_events"));
    }
  EXPECT_EQ(recovered, 2u) << log.text;
  EXPECT_EQ(log.count("session.end"), 3u);
  EXPECT_EQ(cgroups_left(), 0u);
}

// A client that stops reading for longer than libssh's timeout used to lose
// what was in flight (and exit 0): output must wait for it, however long.
TEST_F(NodeSecurity, OutputWaitsForAClientThatStopsReading) {
  add_config("  login_grace_time: 2");
  start_node();
  auto argv = ssh("user", "user-cert.pub");
  std::string command;
  for (const auto& a : argv) command += "'" + a + "' ";
  command += std::string(kLogin) + "@127.0.0.1 'seq 1 2000000' | (sleep 5; wc -c)";
  Outcome o = run({{"/bin/bash", "-c", "set -o pipefail; " + command}}, 60000);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "14888896\n");  // seq 1 2000000 | wc -c
}

// SIGTERM with a client stalled in the key exchange and a session whose
// client stopped reading: the node still stops, and writes the session's end.
TEST_F(NodeSecurity, StopIsBoundedWithStalledClients) {
  start_node();
  int stalled = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port_);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(stalled, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  auto argv = ssh("user", "user-cert.pub");
  std::string command;
  for (const auto& arg : argv) command += "'" + arg + "' ";
  std::string stall = "vigil-stall-" + std::to_string(getpid());
  command += std::string(kLogin) + "@127.0.0.1 'seq 1 20000000' | (exec -a " + stall +
             " sleep 60; wc -c)";
  Process reader({{"/bin/bash", "-c", command}});
  ASSERT_TRUE(eventually([&] { return session_process_named("seq") != 0; }));
  Outcome stopped = stop_node();
  EXPECT_FALSE(stopped.timed_out) << "the node did not stop:\n" << stopped.err;
  EXPECT_EQ(stopped.status, 0) << stopped.err;
  EXPECT_EQ(audit_log().count("session.end"), 1u);
  EXPECT_EQ(cgroups_left(), 0u);
  close(stalled);
  sh("pkill -f '[v]" + stall.substr(1) + "' || true");  // [v]: not this shell itself
  reader.wait();
}

// A node started with signals ignored (as by a careless supervisor) must not
// hand that to its users: their programs start with default dispositions
// and nothing blocked.
TEST_F(NodeSecurity, SessionsStartWithDefaultSignals) {
  node_ = std::make_unique<Process>(Spawn{{"/bin/sh", "-c", "trap '' QUIT USR1; exec \"$0\" start -c \"$1\"",
                                           kNode, dir_ + "/node.yaml"}});
  ASSERT_TRUE(eventually([&] { return port_open(port_); }));
  Outcome o = run_ssh("grep -E '^Sig(Ign|Blk)' /proc/self/status");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

TEST_F(NodeSecurity, ListensWithSshdsBacklog) {
  start_node();
  std::string line = sh("ss -Hltn 'sport = :" + std::to_string(port_) + "'");
  std::istringstream in(line);
  std::string state, recv_q, send_q;
  in >> state >> recv_q >> send_q;
  EXPECT_EQ(send_q, "128") << line;  // a listener's Send-Q is its backlog
}

}  // namespace
}  // namespace e2e

namespace e2e {
namespace {

// enhanced_recording.enabled is obeyed, as in the guide: off (or not set in
// a file) means terminal recording and audit events only, no BPF loaded.
class EnhancedRecordingSwitch : public NodeSecurity {
 protected:
  void set_enabled(const std::string& line) {
    std::string yaml = read_file(dir_ + "/node.yaml");
    size_t at = yaml.find("\n    enabled: true\n");
    ASSERT_NE(at, std::string::npos) << yaml;
    yaml.replace(at, std::string("\n    enabled: true\n").size(), "\n" + line);
    write_file(dir_ + "/node.yaml", yaml);
  }

  // BPF programs or maps the node holds.
  size_t bpf_fds() const {
    size_t n = 0;
    for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(node_->pid()) + "/fd")) {
      std::error_code ec;
      auto target = std::filesystem::read_symlink(e.path(), ec).string();
      if (target.find("bpf") != std::string::npos) ++n;
    }
    return n;
  }

  void expect_terminal_only(const std::string& why) {
    Outcome o = run_ssh("echo bHMgLWxh | base64 --decode | sh >/dev/null; echo done");
    ASSERT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "done\n");
    EXPECT_EQ(bpf_fds(), 0u);
    EXPECT_FALSE(std::filesystem::exists("/cgroup2" + root_path_));
    Outcome stopped = stop_node();
    EXPECT_THAT(stopped.out, ::testing::HasSubstr("enhanced recording is off (" + why));
    Log log = audit_log();
    EXPECT_EQ(log.count("session.command"), 0u);
    ASSERT_EQ(log.count("session.end"), 1u);
    EXPECT_EQ(log.of("session.end")[0]["enhanced_recording"], false);
    EXPECT_EQ(log.of("session.end")[0]["enhanced_recording_kinds"], json::array());
    EXPECT_EQ(log.count("exec"), 1u);
  }
};

TEST_F(EnhancedRecordingSwitch, FalseMeansTerminalRecordingOnlyAndNoBpf) {
  set_enabled("    enabled: false\n");
  start_node();
  expect_terminal_only("ssh_service.enhanced_recording.enabled: false");
}

TEST_F(EnhancedRecordingSwitch, AFileThatOmitsItGetsTheGuidesDefaultAndIsToldSo) {
  set_enabled("");
  start_node();
  expect_terminal_only("ssh_service.enhanced_recording.enabled is not set");
}

TEST_F(EnhancedRecordingSwitch, TrueLoadsBpfAndRecords) {
  start_node();
  Outcome o = run_ssh("echo bHMgLWxh | base64 --decode | sh >/dev/null; echo done");
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_GT(bpf_fds(), 0u);
  stop_node();
  EXPECT_GT(audit_log().count("session.command"), 0u);
  EXPECT_EQ(audit_log().of("session.end")[0]["enhanced_recording"], true);
}

TEST_F(EnhancedRecordingSwitch, CheckAndRecordSayWhichItIs) {
  set_enabled("    enabled: false\n");
  Outcome check = run({{kNode, "check", "-c", dir_ + "/node.yaml"}});
  EXPECT_THAT(check.out, ::testing::HasSubstr(
                             "configuration: enhanced recording off (" + dir_ +
                             "/node.yaml: ssh_service.enhanced_recording.enabled is false)"));
  Outcome defaults = run({{kNode, "check"}});
  EXPECT_THAT(defaults.out, ::testing::HasSubstr("configuration: enhanced recording on (<embedded "
                                                 "defaults>: Vigil records when no file is given)"));
  Outcome record = run({{kNode, "record", "-c", dir_ + "/node.yaml", "--", "true"}});
  EXPECT_EQ(record.status, 125);
  EXPECT_THAT(record.err, ::testing::HasSubstr("ssh_service.enhanced_recording.enabled is false: "
                                               "vigil record records with BPF; set it to true"));
}

}  // namespace
}  // namespace e2e
