// Privilege separation of the node, end to end (docs/architecture.md,
// "Privilege separation of the node"): the process that holds a client's
// TCP connection (key exchange, authentication, every packet) is not root,
// has no capability and cannot read root's files; killing it ends only its
// own sessions, each with its session.end, and the node serves on.
#include <fstream>
#include <sstream>

#include "../support/wait.hpp"
#include "node_fixture.hpp"

namespace e2e {
namespace {

using vigil::testing::eventually;
using vigil::testing::running;

pid_t pid_in(const std::string& file) {
  std::ifstream in(file);
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

std::string status_line(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return line.substr(field.size() + 1);
  return "";
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Inodes of the node's established TCP sockets (its side: local port = port).
std::vector<std::string> server_side_sockets(uint16_t port) {
  std::vector<std::string> inodes;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    auto w = words(line);
    if (w.size() < 10) continue;
    unsigned local_port = std::stoul(w[1].substr(w[1].find(':') + 1), nullptr, 16);
    if (local_port == port && w[3] == "01") inodes.push_back(w[9]);  // 01: ESTABLISHED
  }
  return inodes;
}

// Every process holding socket:[inode].
std::set<pid_t> holders_of(const std::string& inode) {
  std::set<pid_t> pids;
  const std::string target = "socket:[" + inode + "]";
  for (auto& p : std::filesystem::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::atol(p.path().filename().c_str()));
    if (pid <= 0) continue;
    std::error_code ec;
    for (auto& fd : std::filesystem::directory_iterator(p.path() / "fd", ec)) {
      std::error_code ec2;
      if (std::filesystem::read_symlink(fd.path(), ec2).string() == target) pids.insert(pid);
    }
  }
  return pids;
}

// The node's front ends: its children running `ssh-frontend`.
std::set<pid_t> front_ends_of(pid_t node) {
  std::set<pid_t> pids;
  for (auto& p : std::filesystem::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::atol(p.path().filename().c_str()));
    if (pid <= 0) continue;
    std::string cmdline = read_file(p.path().string() + "/cmdline");
    if (cmdline.find("ssh-frontend") == std::string::npos) continue;
    if (words(status_line(pid, "PPid")) == std::vector<std::string>{std::to_string(node)})
      pids.insert(pid);
  }
  return pids;
}

class Privsep : public SshNodeTest {
 protected:
  std::string pid_file(const std::string& name) const {
    return "/tmp/vigil-privsep-" + std::to_string(getpid()) + "-" + name;  // the login may write here
  }
  // A client whose session writes its shell's pid, then sleeps.
  std::unique_ptr<Process> sleeper(const std::string& name) {
    unlink(pid_file(name).c_str());
    auto argv = ssh("user", "user-cert.pub");
    argv.insert(argv.end(), {std::string(kLogin) + "@127.0.0.1",
                             "echo $$ > " + pid_file(name) + "; exec sleep 100"});
    auto p = std::make_unique<Process>(Spawn{argv});
    EXPECT_TRUE(eventually([&] { return pid_in(pid_file(name)) > 0; })) << name << " never started";
    return p;
  }
};

TEST_F(Privsep, TheConnectionIsHeldByAnUnprivilegedFrontEnd) {
  start_node();
  auto client = sleeper("held");
  auto sockets = server_side_sockets(port_);
  ASSERT_EQ(sockets.size(), 1u) << "one client, one connection";
  std::set<pid_t> holders = holders_of(sockets[0]);
  ASSERT_EQ(holders.size(), 1u) << "the connection is held by one process only";
  const pid_t front = *holders.begin();
  EXPECT_NE(front, node_->pid()) << "the root monitor holds the client's connection";
  EXPECT_EQ(words(status_line(front, "PPid")), std::vector<std::string>{std::to_string(node_->pid())});
  passwd* vigil = getpwnam("vigil");
  ASSERT_NE(vigil, nullptr) << "vigil start creates the system user vigil";
  const std::string uid = std::to_string(vigil->pw_uid), gid = std::to_string(vigil->pw_gid);
  EXPECT_NE(vigil->pw_uid, 0u);
  EXPECT_EQ(words(status_line(front, "Uid")), (std::vector<std::string>{uid, uid, uid, uid}));
  EXPECT_EQ(words(status_line(front, "Gid")), (std::vector<std::string>{gid, gid, gid, gid}));
  EXPECT_EQ(words(status_line(front, "Groups")), std::vector<std::string>{gid});
  EXPECT_EQ(words(status_line(front, "CapEff")), std::vector<std::string>{"0000000000000000"});
  EXPECT_EQ(words(status_line(front, "CapPrm")), std::vector<std::string>{"0000000000000000"});
  EXPECT_EQ(words(status_line(front, "NoNewPrivs")), std::vector<std::string>{"1"});
  // Its only fds: /dev/null, stderr, the connection, the monitor, and the
  // session's pipes the monitor passed (never the listener, the audit log,
  // the host key file or BPF).
  for (auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(front) + "/fd")) {
    std::error_code ec;
    std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    EXPECT_TRUE(target == "/dev/null" || target.rfind("socket:", 0) == 0 ||
                target.rfind("pipe:", 0) == 0 || fd.path().filename() == "2")
        << "fd " << fd.path().filename() << " -> " << target;
    EXPECT_EQ(target.find(dir_), std::string::npos) << target;
  }
  // What its credentials can open: not /etc/shadow, not the audit log.
  const std::string as_front = "setpriv --reuid=" + uid + " --regid=" + gid + " --clear-groups ";
  EXPECT_NE(run({{"/bin/sh", "-c", as_front + "cat /etc/shadow"}}).status, 0);
  EXPECT_NE(run({{"/bin/sh", "-c", as_front + "cat " + dir_ + "/data/log/events.log"}}).status, 0);
  EXPECT_NE(run({{"/bin/sh", "-c", as_front + "cat " + dir_ + "/data/host_key"}}).status, 0);
  // The check above can fail: root can read them.
  EXPECT_EQ(run({{"/bin/sh", "-c", "cat " + dir_ + "/data/log/events.log >/dev/null"}}).status, 0);
  kill(pid_in(pid_file("held")), SIGKILL);
  client->wait();
  unlink(pid_file("held").c_str());
}

TEST_F(Privsep, KillingAFrontEndEndsOnlyItsSessionsAndTheNodeServesOn) {
  start_node();
  auto victim = sleeper("victim");
  std::set<pid_t> first = front_ends_of(node_->pid());
  ASSERT_EQ(first.size(), 1u);
  auto other = sleeper("other");
  ASSERT_EQ(front_ends_of(node_->pid()).size(), 2u);
  const pid_t victim_sleep = pid_in(pid_file("victim")), other_sleep = pid_in(pid_file("other"));

  kill(*first.begin(), SIGKILL);  // as a crash of the front end would
  Outcome o = victim->wait();
  EXPECT_EQ(o.status, 255) << "the client of the killed front end: " << o.err;
  EXPECT_TRUE(eventually([&] { return !running(victim_sleep); }))
      << "the session of a dead front end goes on";
  ASSERT_TRUE(eventually([&] { return audit_log().count("session.end") == 1; })) << audit_log().text;
  EXPECT_TRUE(running(other_sleep)) << "another connection's session was ended";

  Outcome again = run_ssh("echo again");  // new connections are served
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, "again\n");
  EXPECT_TRUE(running(other_sleep));
  kill(other_sleep, SIGKILL);
  other->wait();
  Outcome stopped = stop_node();
  EXPECT_EQ(stopped.status, 0) << stopped.err;
  EXPECT_EQ(audit_log().count("session.end"), 3u);
  EXPECT_EQ(cgroups_left(), 0u);
  unlink(pid_file("victim").c_str());
  unlink(pid_file("other").c_str());
}

}  // namespace
}  // namespace e2e
