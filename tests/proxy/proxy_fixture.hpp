// The proxy's end-to-end fixture: a cluster's user and host CAs (src/ca), a
// real sshd as the node (its host certificate from the host CA, the user CA
// trusted), a SQLite cluster store listing it, and the proxy process
// (vigil-proxy-harness) running as `nobody`. OpenSSH's ssh, scp and sftp
// reach the node with `-J` through the proxy, with nothing but a config
// file: the user certificate, the proxy's pinned key and one
// @cert-authority line for the nodes, StrictHostKeyChecking yes.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <poll.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "../support/shell.hpp"
#include "../support/temp_dir.hpp"
#include "../support/wait.hpp"
#include "ca/authority.hpp"
#include "ca/key_file.hpp"
#include "cluster/sqlite_store.hpp"

namespace vigil::proxy::test {

using vigil::test::shell;
using vigil::test::ShellResult;
using vigil::testing::eventually;

inline constexpr const char* kCluster = "vigil-proxy-test";
inline constexpr const char* kNodeUuid = "5b8e3f0a-6c1d-4e2f-9a7b-1c2d3e4f5a6b";
inline constexpr const char* kNatNodeUuid = "7c9f4a1b-2d3e-4f5a-8b6c-9d0e1f2a3b4c";
inline constexpr int64_t kTtl = 3600;

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
inline void put(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

inline uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

inline bool port_open(const char* ip, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// Starts argv (PATH searched) with stdout and stderr appended to `log`, and
// stdin /dev/null when `null_stdin`.
inline pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log,
                          bool null_stdin) {
  pid_t pid = fork();
  if (pid == 0) {
    if (null_stdin) dup2(open("/dev/null", O_RDONLY), 0);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// A process started with its stderr in a file; killed (TERM) when it goes.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }
  void start(const std::vector<std::string>& argv, const std::string& log) {
    log_ = log;
    pid_ = spawn_logged(argv, log, false);
  }
  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100 && waitpid(pid_, &status, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (waitpid(pid_, &status, WNOHANG) == 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
      pid_ = -1;
    }
  }
  pid_t pid() const { return pid_; }
  bool alive() const { return pid_ > 0 && vigil::testing::running(pid_); }
  std::string log() const { return slurp(log_); }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// The system calls a process (all its threads) makes in `window`, counted by
// the kernel (perf's raw_syscalls:sys_enter tracepoint): a relay that waits
// makes a few a second, one that spins makes them by the ten thousand, on a
// loaded machine as on an idle one (a count, not a time). -1: not counted.
inline long syscalls_during(pid_t pid, std::chrono::seconds window, const std::string& out_file) {
  auto r = shell("perf stat -x, -o " + out_file + " -e raw_syscalls:sys_enter -p " +
                 std::to_string(pid) + " -- sleep " + std::to_string(window.count()));
  if (r.status != 0) {
    ADD_FAILURE() << "perf stat (linux-perf, scripts/deps.sh) failed: " << r.output;
    return -1;
  }
  std::istringstream lines(slurp(out_file));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("raw_syscalls:sys_enter") == std::string::npos || line[0] == '#') continue;
    if (line[0] < '0' || line[0] > '9') {
      ADD_FAILURE() << "perf counted nothing: " << line;
      return -1;
    }
    const long n = std::atol(line.c_str());
    std::cerr << "perf: pid " << pid << " made " << n << " system calls in " << window.count() << " s\n";
    return n;
  }
  ADD_FAILURE() << "no count in perf's output: " << slurp(out_file);
  return -1;
}

// A stand-in for a node's SSH port that misbehaves on purpose: it accepts
// every connection, says nothing and holds it open, until reset() resets
// them all (RST: the relay's socket reports POLLHUP and POLLERR from then
// on). Listens on 127.0.0.1 of the network namespace `netns` (named as `ip
// netns` names it; empty: the test's own).
class FakeNode {
 public:
  explicit FakeNode(const std::string& netns = "", uint16_t port = 0) {
    std::atomic<int> ready{0};  // 1 listening, -1 failed
    thread_ = std::thread([&, netns, port] {
      if (!netns.empty()) {
        // setns moves this thread only: the test's other threads stay.
        int ns = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
          ready = -1;
          return;
        }
        close(ns);
      }
      listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof a;
      if (bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listener_, 16) != 0 ||
          getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ready = -1;
        return;
      }
      port_ = ntohs(a.sin_port);
      ready = 1;
      serve();
    });
    while (ready == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ok_ = ready == 1;
  }
  ~FakeNode() {
    stop_ = true;
    thread_.join();
    if (listener_ >= 0) close(listener_);
    for (int fd : held_) close(fd);
  }
  bool ok() const { return ok_; }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }
  // Every connection held so far: reset (close() with SO_LINGER 0 sends RST).
  void reset() {
    std::lock_guard lock(mu_);
    for (int fd : held_) {
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      close(fd);
    }
    held_.clear();
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard lock(mu_);
      held_.push_back(fd);
      ++accepted_;
    }
  }

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  int listener_ = -1;
  uint16_t port_ = 0;
  bool ok_ = false;
  std::mutex mu_;
  std::vector<int> held_;
};

// A direct-tcpip channel through the proxy that its client keeps open:
// `ssh -N -L LOCAL:TARGET` and one TCP connection to LOCAL, held. OpenSSH
// keeps such a channel open after the node's EOF, until the local
// connection ends too (`ssh -W` would close it: it drains and exits).
class HeldForward {
 public:
  HeldForward(const std::vector<std::string>& argv, uint16_t local_port, const std::string& log) {
    pid_ = spawn_logged(argv, log, true);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(local_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Until ssh listens (a refused connect opens no channel).
    connected_ = vigil::testing::eventually([&] {
      if (socket_ >= 0) close(socket_);
      socket_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      return connect(socket_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    });
  }
  ~HeldForward() { kill_now(); }
  bool connected() const { return connected_; }
  // SIGKILL: the client's connection to the proxy ends without a word.
  void kill_now() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (socket_ >= 0) close(socket_);
    socket_ = -1;
  }
  bool alive() const { return pid_ > 0 && vigil::testing::running(pid_); }

 private:
  pid_t pid_ = -1;
  int socket_ = -1;
  bool connected_ = false;
};

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the proxy tests run as root (the proxy drops to nobody)";
    ASSERT_EQ(access("/usr/sbin/sshd", X_OK), 0) << "install openssh-server (scripts/deps.sh)";
    const passwd* pw = getpwnam("nobody");
    ASSERT_NE(pw, nullptr) << "the proxy runs as nobody: the user is missing";
    nobody_uid_ = pw->pw_uid;
    nobody_gid_ = pw->pw_gid;
    now_ = time(nullptr);
    auto user_ca = ca::CertAuthority::create(ca::CaType::ssh_user, kCluster, now_);
    auto host_ca = ca::CertAuthority::create(ca::CaType::ssh_host, kCluster, now_);
    ASSERT_TRUE(user_ca && host_ca);
    user_ca_.emplace(std::move(*user_ca));
    host_ca_.emplace(std::move(*host_ca));
    put(dir_.file("user_ca.pub"), user_ca_->trusted_keys_text());
    put(dir_.file("host_ca.pub"), host_ca_->trusted_keys_text());
    // The proxy's own key (libssh 0.10 presents no host certificate: pinned).
    auto proxy_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ed25519);
    ASSERT_TRUE(proxy_key);
    ASSERT_TRUE(ca::save_private_key(dir_.file("proxy_host"), *proxy_key, "proxy"));
    proxy_key_line_ = proxy_key->ssh_public_key_line("proxy");
    put(dir_.file("proxy_host.pub"), proxy_key_line_ + "\n");

    // The node: sshd with a host certificate for its name and uuid.
    ASSERT_NO_FATAL_FAILURE(host_key_with_certificate("node_host", kNodeUuid, "node1"));
    node_port_ = free_port();
    ASSERT_NO_FATAL_FAILURE(start_sshd(sshd_, "sshd", "127.0.0.1", node_port_, ""));

    // The cluster store the proxy reads its nodes from, owned by nobody.
    ASSERT_EQ(mkdir(dir_.file("db").c_str(), 0700), 0);
    auto backend = cluster::open_sqlite(dir_.file("db/cluster.db"), {});
    ASSERT_TRUE(backend) << backend.error().message;
    store_.emplace(std::move(*backend));
    ASSERT_NO_FATAL_FAILURE(add_node(kNodeUuid, "node1", "127.0.0.1:" + std::to_string(node_port_), false));
    give_db_to_nobody();

    // The user alice.
    ASSERT_NO_FATAL_FAILURE(user_key_with_certificate("alice", *user_ca_, now_, kTtl));
    ASSERT_NO_FATAL_FAILURE(start_proxy("127.0.0.1:0", "0.0.0.0:0"));
  }

  void TearDown() override {
    proxy_.stop();
    sshd_.stop();
    if (HasFailure()) {
      std::cerr << "--- proxy log ---\n" << proxy_.log() << "--- sshd log ---\n"
                << slurp(dir_.file("sshd.log"));
    }
  }

  void give_db_to_nobody() {
    for (const auto& entry : std::filesystem::directory_iterator(dir_.file("db")))
      ASSERT_EQ(chown(entry.path().c_str(), nobody_uid_, nobody_gid_), 0);
    ASSERT_EQ(chown(dir_.file("db").c_str(), nobody_uid_, nobody_gid_), 0);
    // nobody must reach db/ through the test's directory.
    ASSERT_EQ(chmod(dir_.path().c_str(), 0711), 0);
  }

  void add_node(const std::string& uuid, const std::string& name, const std::string& address,
                bool tunnel) {
    cluster::Node n;
    n.uuid = uuid;
    n.name = name;
    n.address = address;
    n.tunnel = tunnel;
    n.last_heartbeat = cluster::Time(std::chrono::seconds(now_));
    n.expires = cluster::Time(std::chrono::seconds(now_ + kTtl));
    auto r = store_->upsert_node(n);
    ASSERT_TRUE(r) << r.error().message;
  }

  void host_key_with_certificate(const std::string& name, const std::string& uuid,
                                 const std::string& node_name,
                                 const ca::CertAuthority* by = nullptr) {
    auto key = ca::PrivateKey::generate(ca::KeyAlgorithm::ed25519);
    ASSERT_TRUE(key);
    ASSERT_TRUE(ca::save_private_key(dir_.file(name), *key, name));
    put(dir_.file(name + ".pub"), key->ssh_public_key_line(name) + "\n");
    ca::HostCertificateRequest r;
    r.public_key = key->ssh_public_key().blob;
    r.node_uuid = uuid;
    r.node_name = node_name;
    r.addresses = {"127.0.0.1"};
    r.now = now_;
    r.ttl = kTtl;
    auto spec = ca::host_certificate(r);
    ASSERT_TRUE(spec) << spec.error().message;
    auto blob = (by ? *by : *host_ca_).sign_ssh(*spec);
    ASSERT_TRUE(blob) << blob.error().message;
    put(dir_.file(name + "-cert.pub"), ca::certificate_line(*blob, name) + "\n");
  }

  void user_key_with_certificate(const std::string& name, const ca::CertAuthority& by, int64_t now,
                                 int64_t ttl) {
    auto key = ca::PrivateKey::generate(ca::KeyAlgorithm::ed25519);
    ASSERT_TRUE(key);
    ASSERT_TRUE(ca::save_private_key(dir_.file(name), *key, name));
    put(dir_.file(name + ".pub"), key->ssh_public_key_line(name) + "\n");
    ca::UserCertificateRequest r;
    r.public_key = key->ssh_public_key().blob;
    r.user = name;
    r.logins = {"root"};
    r.now = now;
    r.ttl = ttl;
    auto spec = ca::user_certificate(r);
    ASSERT_TRUE(spec) << spec.error().message;
    auto blob = by.sign_ssh(*spec);
    ASSERT_TRUE(blob) << blob.error().message;
    put(dir_.file(name + "-cert.pub"), ca::certificate_line(*blob, name) + "\n");
  }

  // sshd as the node; `netns` non-empty: inside that namespace.
  void start_sshd(Child& child, const std::string& name, const std::string& addr, uint16_t port,
                  const std::string& netns, const std::string& host_key = "node_host") {
    put(dir_.file(name + "_config"),
        "Port " + std::to_string(port) + "\nListenAddress " + addr + "\nHostKey " +
            dir_.file(host_key) + "\nHostCertificate " + dir_.file(host_key + "-cert.pub") +
            "\nTrustedUserCAKeys " + dir_.file("user_ca.pub") +
            "\nAuthorizedKeysFile none\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPidFile none\nStrictModes no\n"
            "PrintMotd no\nPrintLastLog no\nSubsystem sftp internal-sftp\n");
    std::vector<std::string> argv;
    if (!netns.empty()) argv = {"ip", "netns", "exec", netns};
    for (const char* a : {"/usr/sbin/sshd", "-D", "-e", "-f"}) argv.push_back(a);
    argv.push_back(dir_.file(name + "_config"));
    child.start(argv, dir_.file(name + ".log"));
    if (!netns.empty()) {
      ASSERT_TRUE(eventually([&] {
        return shell("ip netns exec " + netns + " bash -c 'exec 3<>/dev/tcp/" + addr + "/" +
                     std::to_string(port) + "'").status == 0;
      }, 200, std::chrono::milliseconds(25))) << slurp(dir_.file(name + ".log"));
      return;
    }
    ASSERT_TRUE(eventually([&] { return port_open(addr.c_str(), port); }, 200,
                           std::chrono::milliseconds(25)))
        << "sshd does not listen:\n" << slurp(dir_.file(name + ".log"));
  }

  void start_proxy(const std::string& jump, const std::string& tunnel,
                   const std::vector<std::string>& extra = {}) {
    unlink(dir_.file("db/ports").c_str());
    std::vector<std::string> argv = proxy_wrapper_;
    argv.insert(argv.end(), {
        PROXY_HARNESS, "proxy", "--host-key", dir_.file("proxy_host"), "--user-ca",
        dir_.file("user_ca.pub"), "--host-ca", dir_.file("host_ca.pub"), "--db",
        dir_.file("db/cluster.db"), "--cluster", kCluster, "--jump", jump, "--tunnel",
        tunnel, "--ports-file", dir_.file("db/ports"), "--run-as", "nobody"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    proxy_.start(argv, dir_.file("proxy.log"));
    ASSERT_TRUE(eventually([&] { return access(dir_.file("db/ports").c_str(), F_OK) == 0 || !proxy_.alive(); }))
        << proxy_.log();
    ASSERT_TRUE(proxy_.alive()) << proxy_.log();
    std::istringstream(slurp(dir_.file("db/ports"))) >> jump_port_ >> tunnel_port_;
    ASSERT_GT(jump_port_, 0);
    write_client_config("alice");
  }

  // What `vsh config` would print: the jump host, the identity, the pinned
  // proxy key and one @cert-authority line for every node.
  void write_client_config(const std::string& identity) {
    put(dir_.file("known_hosts"), "[127.0.0.1]:" + std::to_string(jump_port_) + " " +
                                      proxy_key_line_ + "\n" + host_ca_->known_hosts_text("*"));
    put(dir_.file("ssh_config"),
        "Host *\n  IdentityFile " + dir_.file(identity) + "\n  CertificateFile " +
            dir_.file(identity + "-cert.pub") +
            "\n  IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n"
            "  StrictHostKeyChecking yes\n  CheckHostIP no\n  UserKnownHostsFile " +
            dir_.file("known_hosts") + "\n  GlobalKnownHostsFile /dev/null\n"
            "  ConnectTimeout 20\n  LogLevel ERROR\n");
  }

  std::string jump() const { return "alice@127.0.0.1:" + std::to_string(jump_port_); }
  // ssh -N -L 127.0.0.1:LOCAL:TARGET through the proxy's jump port, for HeldForward.
  std::vector<std::string> forward_argv(uint16_t local, const std::string& target) const {
    return {"ssh", "-F", dir_.file("ssh_config"), "-N", "-p", std::to_string(jump_port_), "-L",
            "127.0.0.1:" + std::to_string(local) + ":" + target, "alice@127.0.0.1"};
  }
  std::string ssh_base() const { return "ssh -F " + dir_.file("ssh_config"); }

  // `ssh -J proxy root@target command`.
  // Options may lead the command ("-o X=y echo hi").
  ShellResult ssh_via_proxy(const std::string& target, const std::string& command,
                            const std::string& port = "3022") const {
    return shell(ssh_base() + " -J " + jump() + " -p " + port + " root@" + target + " " + command);
  }

  // Waits until the proxy has logged a line with `text`.
  bool proxy_logged(const std::string& text) {
    return eventually([&] { return proxy_.log().find(text) != std::string::npos; }, 100,
                      std::chrono::milliseconds(50));
  }

  vigil::test::TempDir dir_;
  int64_t now_ = 0;
  uid_t nobody_uid_ = 0;
  gid_t nobody_gid_ = 0;
  std::optional<ca::CertAuthority> user_ca_, host_ca_;
  std::optional<cluster::ClusterStore> store_;
  std::string proxy_key_line_;
  Child sshd_, proxy_;
  // Put before the proxy's command line (e.g. prlimit, which execs it).
  std::vector<std::string> proxy_wrapper_;
  uint16_t node_port_ = 0;
  int jump_port_ = 0, tunnel_port_ = 0;
};

}  // namespace vigil::proxy::test
