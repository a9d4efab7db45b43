// The cluster's SSH CAs against real OpenSSH: sshd on a loopback port with a
// host certificate from the host CA and TrustedUserCAKeys from the user CA,
// ssh with nothing but an @cert-authority known_hosts line and a user
// certificate. The host key and the user key are keys this library made and
// wrote, so sshd and ssh also read its key files.
//
// sshd runs as the test's user and the login is that user (root when the
// tests run as root): nothing is installed or changed on the host.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "../support/shell.hpp"
#include "../support/temp_dir.hpp"
#include "ca/authority.hpp"
#include "ca/key_file.hpp"

namespace vigil::ca {
namespace {

using test::shell;

uint16_t free_port() {
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

bool port_open(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

constexpr int64_t kTtl = 3600;

class OpensshInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access("/usr/sbin/sshd", X_OK), 0)
        << "/usr/sbin/sshd is missing: install openssh-server (scripts/deps.sh does)";
    const passwd* pw = getpwuid(geteuid());
    ASSERT_NE(pw, nullptr);
    login_ = pw->pw_name;
    now_ = time(nullptr);
    auto user_ca = CertAuthority::create(CaType::ssh_user, "interop", now_);
    auto host_ca = CertAuthority::create(CaType::ssh_host, "interop", now_);
    ASSERT_TRUE(user_ca && host_ca);
    user_ca_.emplace(std::move(*user_ca));
    host_ca_.emplace(std::move(*host_ca));
    port_ = free_port();
  }

  void TearDown() override {
    if (sshd_ > 0) {
      kill(sshd_, SIGTERM);
      waitpid(sshd_, nullptr, 0);
    }
  }

  // A key of ours at <name> (0600) and its certificate at <name>-cert.pub.
  void key_with_certificate(const std::string& name, const CertAuthority& ca,
                            const SshCertificateSpec& spec_template) {
    auto key = PrivateKey::generate(KeyAlgorithm::ed25519);
    ASSERT_TRUE(key);
    ASSERT_TRUE(save_private_key(dir_.file(name), *key, name));
    write(dir_.file(name + ".pub"), key->ssh_public_key_line(name) + "\n");
    SshCertificateSpec spec = spec_template;
    spec.public_key = key->ssh_public_key().blob;
    auto blob = ca.sign_ssh(spec);
    ASSERT_TRUE(blob) << blob.error().message;
    write(dir_.file(name + "-cert.pub"), certificate_line(*blob, name) + "\n");
  }

  SshCertificateSpec host_spec(const std::vector<std::string>& addresses) const {
    HostCertificateRequest r;
    r.public_key = "unused";
    r.node_uuid = "0b6c3e7a-1f2d-4c5b-8a9e-7d6f5e4c3b2a";
    r.node_name = "interop-node";
    r.addresses = addresses;
    r.now = now_;
    r.ttl = kTtl;
    return host_certificate(r).value();
  }

  SshCertificateSpec user_spec() const {
    UserCertificateRequest r;
    r.public_key = "unused";
    r.user = "alice";
    r.logins = {login_};
    r.now = now_;
    r.ttl = kTtl;
    r.recorded_kinds = KindSet::parse("command,network");
    return user_certificate(r).value();
  }

  // sshd with the host key/certificate "host" and the user CA trusted.
  void start_sshd() {
    write(dir_.file("user_ca.pub"), user_ca_->trusted_keys_text());
    write(dir_.file("sshd_config"),
          "Port " + std::to_string(port_) + "\nListenAddress 127.0.0.1\n"
          "HostKey " + dir_.file("host") + "\nHostCertificate " + dir_.file("host-cert.pub") +
          "\nTrustedUserCAKeys " + dir_.file("user_ca.pub") + "\n"
          "AuthorizedKeysFile none\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
          "KbdInteractiveAuthentication no\nUsePAM no\nPidFile none\nStrictModes no\n"
          "PrintMotd no\nPrintLastLog no\n");
    sshd_ = fork();
    if (sshd_ == 0) {
      int log = open(dir_.file("sshd.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(log, 2);
      execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", dir_.file("sshd_config").c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200 && !port_open(port_); ++i) {
      ASSERT_EQ(waitpid(sshd_, nullptr, WNOHANG), 0) << "sshd exited:\n" << slurp(dir_.file("sshd.log"));
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ASSERT_TRUE(port_open(port_)) << "sshd does not listen:\n" << slurp(dir_.file("sshd.log"));
  }

  // ssh with only the user key and its certificate, and only the host CA
  // line in known_hosts: any prompt or unknown host fails (BatchMode).
  test::ShellResult ssh(const std::string& key, const std::string& known_hosts) const {
    write(dir_.file("known_hosts"), known_hosts);
    return shell("ssh -F /dev/null -p " + std::to_string(port_) + " -i " + dir_.file(key) +
                 " -o CertificateFile=" + dir_.file(key + "-cert.pub") +
                 " -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes"
                 " -o StrictHostKeyChecking=yes -o CheckHostIP=no"
                 " -o UserKnownHostsFile=" + dir_.file("known_hosts") +
                 " -o GlobalKnownHostsFile=/dev/null " + login_ + "@127.0.0.1 echo vigil-ca-ok");
  }

  std::string host_ca_line() const {
    return host_ca_->known_hosts_text("[127.0.0.1]:" + std::to_string(port_));
  }

  test::TempDir dir_;
  std::string login_;
  int64_t now_ = 0;
  uint16_t port_ = 0;
  pid_t sshd_ = -1;
  std::optional<CertAuthority> user_ca_, host_ca_;
};

TEST_F(OpensshInterop, SshTrustsTheHostCertificateAndSshdTheUserCertificate) {
  ASSERT_NO_FATAL_FAILURE(key_with_certificate("host", *host_ca_, host_spec({"127.0.0.1"})));
  ASSERT_NO_FATAL_FAILURE(key_with_certificate("user", *user_ca_, user_spec()));
  ASSERT_NO_FATAL_FAILURE(start_sshd());
  auto r = ssh("user", host_ca_line());
  EXPECT_EQ(r.status, 0) << r.output << "\nsshd:\n" << slurp(dir_.file("sshd.log"));
  EXPECT_EQ(r.output, "vigil-ca-ok\n");
  // sshd logged the certificate it accepted: our key id and serial.
  EXPECT_NE(slurp(dir_.file("sshd.log")).find("ID alice (serial "), std::string::npos)
      << slurp(dir_.file("sshd.log"));
}

TEST_F(OpensshInterop, AnotherHostCaIsNotTrustedBySsh) {
  ASSERT_NO_FATAL_FAILURE(key_with_certificate("host", *host_ca_, host_spec({"127.0.0.1"})));
  ASSERT_NO_FATAL_FAILURE(key_with_certificate("user", *user_ca_, user_spec()));
  ASSERT_NO_FATAL_FAILURE(start_sshd());
  auto other = CertAuthority::create(CaType::ssh_host, "interop", now_);
  ASSERT_TRUE(other);
  auto r = ssh("user", other->known_hosts_text("[127.0.0.1]:" + std::to_string(port_)));
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Host key verification failed"), std::string::npos) << r.output;
}

TEST_F(OpensshInterop, AHostCertificateForAnotherNameIsNotTrustedBySsh) {
  ASSERT_NO_FATAL_FAILURE(key_with_certificate("host", *host_ca_, host_spec({"192.0.2.10"})));
  ASSERT_NO_FATAL_FAILURE(key_with_certificate("user", *user_ca_, user_spec()));
  ASSERT_NO_FATAL_FAILURE(start_sshd());
  auto r = ssh("user", host_ca_line());
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Host key verification failed"), std::string::npos) << r.output;
}

TEST_F(OpensshInterop, SshdRefusesAUserCertificateFromAnotherCa) {
  ASSERT_NO_FATAL_FAILURE(key_with_certificate("host", *host_ca_, host_spec({"127.0.0.1"})));
  auto other = CertAuthority::create(CaType::ssh_user, "interop", now_);
  ASSERT_TRUE(other);
  ASSERT_NO_FATAL_FAILURE(key_with_certificate("user", *other, user_spec()));
  ASSERT_NO_FATAL_FAILURE(start_sshd());
  auto r = ssh("user", host_ca_line());
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Permission denied"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vigil::ca
