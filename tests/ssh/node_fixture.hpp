// The SSH node tier's fixture: a node started by the test on 127.0.0.1 (free
// port, temporary data_dir, its own cgroup root), OpenSSH clients with a
// test CA's certificates, and the audit log read back. Shared by every
// tests/ssh/*_test.cpp.
#pragma once

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <thread>

#include <libssh/libssh.h>

#include "harness.hpp"
#include "terminal.hpp"


namespace e2e {


inline const std::string kNode = VIGIL_NODE_BIN;
constexpr const char* kLogin = "vigiltest";
constexpr const char* kUser = "alice@example.com";

inline std::string sh(const std::string& command) {
  Outcome o = run({{"/bin/sh", "-c", command}});
  EXPECT_EQ(o.status, 0) << command << "\n" << o.err;
  return o.out;
}

inline uint16_t free_port() {
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

inline bool port_open(uint16_t port) {
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

  // An OpenSSH client (ssh, scp or sftp: `port_flag` is -p or -P) that
  // offers only `key` and its certificate and trusts any host key.
  std::vector<std::string> client(const std::string& program, const char* port_flag,
                                  const std::string& key, const std::string& cert,
                                  const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> argv = {program, port_flag, std::to_string(port_), "-i", dir_ + "/" + key,
                                     "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                                     "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                                     "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"};
    if (!cert.empty()) argv.insert(argv.end(), {"-o", "CertificateFile=" + dir_ + "/" + cert});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  std::vector<std::string> ssh(const std::string& key, const std::string& cert,
                               const std::vector<std::string>& extra = {}) const {
    return client("/usr/bin/ssh", "-p", key, cert, extra);
  }

  // A copy of the user's key with a certificate signed by the test CA with
  // ssh-keygen's `options` (e.g. "-O no-pty -V -5m:+1h").
  void sign_copy(const std::string& name, const std::string& options) {
    sh("cd " + dir_ + " && cp user " + name + " && cp user.pub " + name + ".pub && "
       "ssh-keygen -q -s ca -I " + kUser + " -n " + kLogin + " " + options + " " + name + ".pub");
  }

  Outcome run_ssh(const std::string& command, const std::string& login = kLogin) const {
    auto argv = ssh("user", "user-cert.pub");
    argv.push_back(login + "@127.0.0.1");
    argv.push_back(command);
    return run({argv});
  }

  Log audit_log() const { return read_log(dir_ + "/data/log/events.log"); }

  // The node's processes: the monitor and its connections' front ends
  // (what a client's bytes can make grow).
  std::vector<pid_t> node_processes() const {
    std::vector<pid_t> pids;
    if (!node_) return pids;
    pids.push_back(node_->pid());
    const std::string ppid = "PPid:\t" + std::to_string(node_->pid()) + "\n";
    for (auto& p : std::filesystem::directory_iterator("/proc")) {
      pid_t pid = static_cast<pid_t>(std::atol(p.path().filename().c_str()));
      if (pid <= 0) continue;
      if (read_file(p.path().string() + "/cmdline").find("ssh-frontend") == std::string::npos)
        continue;
      if (read_file(p.path().string() + "/status").find(ppid) != std::string::npos)
        pids.push_back(pid);
    }
    return pids;
  }

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

inline std::vector<std::string> argv_of(const nlohmann::ordered_json& e) {
  return e["argv"].get<std::vector<std::string>>();
}

inline bool has_command(const Log& log, const std::string& program,
                 const std::vector<std::string>& argv) {
  for (const auto& e : log.of("session.command"))
    if (e["program"] == program && argv_of(e) == argv) return true;
  return false;
}

struct LibsshClient {
  ssh_session s = ssh_new();
  LibsshClient(uint16_t port, const char* login) {
    unsigned p = port;
    int no = 0;
    ssh_options_set(s, SSH_OPTIONS_HOST, "127.0.0.1");
    ssh_options_set(s, SSH_OPTIONS_PORT, &p);
    ssh_options_set(s, SSH_OPTIONS_USER, login);
    ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no);
  }
  ~LibsshClient() {
    ssh_disconnect(s);
    ssh_free(s);
  }
  // Logs in with `key` and its certificate `key`-cert.pub.
  bool login_with_certificate(const std::string& key) {
    ssh_key priv = nullptr, cert = nullptr;
    bool ok = ssh_pki_import_privkey_file(key.c_str(), nullptr, nullptr, nullptr, &priv) == SSH_OK &&
              ssh_pki_import_cert_file((key + "-cert.pub").c_str(), &cert) == SSH_OK &&
              ssh_pki_copy_cert_to_privkey(cert, priv) == SSH_OK &&
              ssh_userauth_publickey(s, nullptr, priv) == SSH_AUTH_SUCCESS;
    ssh_key_free(priv);
    ssh_key_free(cert);
    return ok;
  }
};

}  // namespace e2e
