// What vsh keeps after a login (~/.vsh) and how it reads secrets.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "client/password.hpp"
#include "client/profile.hpp"

namespace vigil::client {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/vigil-profile-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Profile alice() {
  Profile p;
  p.proxy = "proxy.example.com:3080";
  p.user = "alice@example.com";
  p.cluster = "purple";
  p.logins = {"alice", "ec2-user"};
  p.roles = {"access"};
  p.kinds = {"command", "network"};
  p.valid_until = 1900000000;
  p.ca_pin = "sha256:00ff";
  return p;
}

Credentials creds() {
  Credentials c;
  c.ssh_private_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----";
  c.ssh_public_key = "ssh-ed25519 AAAA alice";
  c.ssh_certificate = "ssh-ed25519-cert-v01@openssh.com AAAA alice";
  c.tls_private_key = "-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----";
  c.tls_certificate = "-----BEGIN CERTIFICATE-----\nz\n-----END CERTIFICATE-----";
  c.tls_cas = c.tls_certificate;
  c.known_hosts = "@cert-authority * ssh-ed25519 AAAA purple";
  return c;
}

unsigned mode_of(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST(ClientProfile, SavedProfileIsCurrentAndKeysAreOwnerOnly) {
  TempDir home;
  auto store = ProfileStore::open(home.path() + "/.vsh");
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE(store->save(alice(), creds()));
  auto current = store->current();
  ASSERT_TRUE(current) << current.error().message;
  EXPECT_EQ(*current, alice());
  auto where = store->paths(alice());
  EXPECT_EQ(mode_of(home.path() + "/.vsh"), 0700u);
  EXPECT_EQ(mode_of(where.dir), 0700u);
  EXPECT_EQ(mode_of(where.ssh_key), 0600u);
  EXPECT_EQ(mode_of(where.tls_key), 0600u);
  EXPECT_EQ(mode_of(where.ssh_certificate), 0644u);
  EXPECT_EQ(where.ssh_certificate, where.ssh_key + "-cert.pub");  // where ssh looks for it
  std::ifstream cert(where.ssh_certificate);
  std::string line;
  std::getline(cert, line);
  EXPECT_EQ(line, creds().ssh_certificate);
}

TEST(ClientProfile, NoProfileSaysToLogIn) {
  TempDir home;
  auto store = ProfileStore::open(home.path() + "/.vsh");
  ASSERT_TRUE(store);
  auto current = store->current();
  ASSERT_FALSE(current);
  EXPECT_EQ(current.error().kind(), Errc::not_found);
  EXPECT_NE(current.error().message.find("vsh login"), std::string::npos);
}

TEST(ClientProfile, LogoutRemovesKeysAndTheCurrentProfile) {
  TempDir home;
  auto store = ProfileStore::open(home.path() + "/.vsh");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->save(alice(), creds()));
  Profile other = alice();
  other.proxy = "other:3080";
  ASSERT_TRUE(store->save(other, creds()));  // now current
  auto removed = store->remove();
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(removed->proxy, "other:3080");
  EXPECT_FALSE(fs::exists(store->paths(other).ssh_key));
  EXPECT_FALSE(store->current());
  auto left = store->list();
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].proxy, alice().proxy);
  EXPECT_TRUE(fs::exists(store->paths(alice()).ssh_key));
}

TEST(ClientProfile, NamesThatWouldLeaveTheDirectoryAreRefused) {
  TempDir home;
  auto store = ProfileStore::open(home.path() + "/.vsh");
  ASSERT_TRUE(store);
  for (const char* user : {"../../evil", "a/b", ".hidden", ""}) {
    Profile p = alice();
    p.user = user;
    auto r = store->save(p, creds());
    ASSERT_FALSE(r) << user;
    EXPECT_EQ(r.error().kind(), Errc::invalid_argument);
  }
  Profile p = alice();
  p.proxy = "../x";
  EXPECT_FALSE(store->save(p, creds()));
  EXPECT_FALSE(fs::exists(home.path() + "/evil"));
}

TEST(ClientProfile, ADirectoryOthersCanWriteIsRefused) {
  TempDir home;
  std::string dir = home.path() + "/.vsh";
  ASSERT_EQ(mkdir(dir.c_str(), 0777), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
  auto store = ProfileStore::open(dir);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().kind(), Errc::permission_denied);
  EXPECT_NE(store.error().message.find("chmod 700"), std::string::npos);
}

TEST(ClientProfile, AProfileOthersCanReadIsRefused) {
  TempDir home;
  auto store = ProfileStore::open(home.path() + "/.vsh");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->save(alice(), creds()));
  std::string file = home.path() + "/.vsh/profiles/" + profile_file_name(alice().proxy) + ".json";
  ASSERT_EQ(chmod(file.c_str(), 0644), 0);
  auto current = store->current();
  ASSERT_FALSE(current);
  EXPECT_NE(current.error().message.find("chmod 600"), std::string::npos);
}

TEST(ClientProfile, ADamagedProfileSaysToLogInAgain) {
  TempDir home;
  auto store = ProfileStore::open(home.path() + "/.vsh");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->save(alice(), creds()));
  std::string file = home.path() + "/.vsh/profiles/" + profile_file_name(alice().proxy) + ".json";
  {
    std::ofstream f(file, std::ios::trunc);
    f << R"({"proxy": 7})";
  }
  auto current = store->current();
  ASSERT_FALSE(current);
  EXPECT_EQ(current.error().kind(), Errc::data_loss);
  EXPECT_NE(current.error().message.find("log in again"), std::string::npos);
}

int pipe_with(const std::string& text) {
  int p[2];
  EXPECT_EQ(pipe(p), 0);
  EXPECT_EQ(write(p[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(p[1]);
  return p[0];
}

TEST(ClientSecret, ReadsOneLineAndLeavesTheNextForTheNextRead) {
  int fd = pipe_with("correct horse battery\r\n123456\n");
  auto password = read_secret_line(fd, "password");
  ASSERT_TRUE(password);
  EXPECT_EQ(password->view(), "correct horse battery");
  auto code = read_secret_line(fd, "code");
  ASSERT_TRUE(code);
  EXPECT_EQ(code->view(), "123456");
  EXPECT_FALSE(read_secret_line(fd, "code"));
  close(fd);
}

TEST(ClientSecret, ALastLineWithoutNewlineCountsAndAnOverlongOneIsRefused) {
  int fd = pipe_with("no-newline");
  auto s = read_secret_line(fd, "password");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->view(), "no-newline");
  close(fd);
  fd = pipe_with(std::string(kMaxSecretLine, 'x') + "\n");
  EXPECT_TRUE(read_secret_line(fd, "password"));
  close(fd);
  fd = pipe_with(std::string(kMaxSecretLine + 1, 'x') + "\n");
  auto long_one = read_secret_line(fd, "password");
  ASSERT_FALSE(long_one);
  EXPECT_EQ(long_one.error().kind(), Errc::invalid_argument);
  close(fd);
}

TEST(ClientSecret, NoTerminalSaysToUseStdin) {
  // setsid() in a child: no controlling terminal, so /dev/tty cannot open.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setsid();
    auto r = read_secret_from_terminal("Password: ");
    _exit(!r && r.error().message.find("--password-stdin") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace vigil::client

#include "ca/authority.hpp"
#include "client/pem.hpp"

namespace vigil::client {
namespace {

TEST(ClientPem, SplitsEveryCertificateAndRefusesGarbage) {
  auto a = ca::CertAuthority::create(ca::CaType::tls, "purple", 1800000000);
  auto b = ca::CertAuthority::create(ca::CaType::tls, "purple", 1800000000);
  ASSERT_TRUE(a && b);
  std::string text = "junk before\n" + a->active().certificate->pem() + "between\n" +
                     b->active().certificate->pem();
  auto certs = split_pem_certificates(text);
  ASSERT_TRUE(certs) << certs.error().message;
  ASSERT_EQ(certs->size(), 2u);
  EXPECT_EQ((*certs)[0].der(), a->active().certificate->der());
  EXPECT_EQ((*certs)[1].der(), b->active().certificate->der());
  EXPECT_FALSE(split_pem_certificates("nothing here"));
  EXPECT_FALSE(split_pem_certificates("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
  std::string cut = a->active().certificate->pem();
  cut.resize(cut.size() / 2);
  EXPECT_FALSE(split_pem_certificates(cut));
}

}  // namespace
}  // namespace vigil::client
