// End-to-end tier for a cluster of three hosts (issue 10 §1, §5), on
// loopback: three `vigil start` processes, each with its own config and
// data_dir: the auth service alone, a proxy alone (joined with a proxy
// token: its web port forwards the API to the auth service over mutual TLS,
// its SSH port reaches the nodes the auth service lists), and a node alone
// (joined with a node token through auth_server). Users go through the
// proxy only; the events are judged in the auth service's audit log.
// Ports: 25000-25099.
#include <signal.h>
#include <fcntl.h>
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
#include "api/client.hpp"
#include "audit/base64.hpp"
#include "ca/key_file.hpp"
#include "client/pem.hpp"

namespace {

namespace fs = std::filesystem;
using e2e::Outcome;
using e2e::Spawn;
using nlohmann::json;
using namespace cluster_test;
constexpr int kAuth = 25025, kWeb = 25080, kJump = 25023, kTunnel = 25024, kNode = 25022;

std::string g_dir;
pid_t g_auth = -1, g_proxy = -1, g_node = -1;

std::string proxy_flag() { return "127.0.0.1:" + std::to_string(kWeb) + "," + std::to_string(kJump); }
std::string config_of(const std::string& who) { return g_dir + "/" + who + ".yaml"; }

bool port_answers(int port) {
  Spawn s;
  s.argv = {"/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port)};
  return e2e::run(s).status == 0;
}

pid_t start_vigil(const std::string& who) {
  pid_t pid = fork();
  if (pid == 0) {
    int log = open((g_dir + "/" + who + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(log, 1);
    dup2(log, 2);
    execl(e2e::kVigil.c_str(), e2e::kVigil.c_str(), "start", "-c", config_of(who).c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

void stop_vigil(pid_t& pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  pid = -1;
}

std::string log_of(const std::string& who) { return e2e::read_file(g_dir + "/" + who + ".log"); }

Outcome ctl(std::vector<std::string> args) { return vigilctl(config_of("auth"), std::move(args)); }

Outcome vsh(const std::string& who, std::vector<std::string> args,
            std::optional<std::string> in = std::nullopt) {
  return vsh_as(g_dir, who, std::move(args), std::move(in));
}

std::vector<json> auth_events(const std::string& name) {
  return events_in(g_dir + "/auth/log/events.log", name);
}

// The word after `label` in vigilctl's output.
std::string word_after(const std::string& out, const std::string& label) {
  auto at = out.find(label);
  if (at == std::string::npos) return "";
  std::istringstream in(out.substr(at + label.size()));
  std::string w;
  in >> w;
  return w;
}

void make_user(const std::string& name, const std::string& roles, const std::string& logins) {
  ASSERT_TRUE(cluster_test::make_user(config_of("auth"), g_dir, proxy_flag(), name, roles, logins));
}

// An mTLS client of the auth service itself (not the proxy) with the key
// and certificate in those files: what an attacker holding a user's or a
// node's identity can do.
std::unique_ptr<vigil::api::Client> direct_client(const std::string& key_file,
                                                  const std::string& cert_file,
                                                  vigil::ca::PrivateKey& key_out,
                                                  int port = kAuth) {
  auto key = vigil::ca::load_private_key(key_file);
  EXPECT_TRUE(key.ok()) << key_file;
  if (!key) return nullptr;
  key_out = std::move(*key);
  auto cert = vigil::ca::TlsCertificate::from_pem(e2e::read_file(cert_file));
  auto cas = vigil::client::split_pem_certificates(e2e::read_file(g_dir + "/auth/admin/ca.pem"));
  EXPECT_TRUE(cert.ok() && cas.ok());
  vigil::api::ClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(port);
  o.trusted = std::move(*cas);
  o.cluster = "teal";
  o.key = &key_out;
  o.certificate = std::move(*cert);
  auto c = vigil::api::Client::connect(std::move(o));
  EXPECT_TRUE(c.ok()) << (c ? "" : c.error().message);
  return c ? std::move(*c) : nullptr;
}

// Where vsh keeps a user's TLS key and certificate (keys/<proxy>/<user>-...).
std::pair<std::string, std::string> vsh_identity(const std::string& user) {
  for (const auto& d : fs::directory_iterator(g_dir + "/home-" + user + "/keys"))
    if (fs::exists(d.path() / (user + "-tls.key")))
      return {(d.path() / (user + "-tls.key")).string(), (d.path() / (user + "-x509.pem")).string()};
  return {};
}

std::string admin_certificate_b64() {
  auto cert = vigil::ca::TlsCertificate::from_pem(e2e::read_file(g_dir + "/auth/admin/cert.pem"));
  std::string out;
  if (cert) vigil::audit::append_base64(out, cert->der());
  return out;
}

class ThreeProcess : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/vigil-3p-XXXXXX";
    g_dir = mkdtemp(tmpl);
    chmod(g_dir.c_str(), 0755);  // the service user passes through to each data_dir
    std::ofstream(config_of("auth")) << "version: v3\n"
                                        "teleport:\n"
                                        "  nodename: auth1\n"
                                        "  data_dir: " << g_dir << "/auth\n"
                                        "auth_service:\n"
                                        "  enabled: true\n"
                                        "  cluster_name: teal\n"
                                        "  listen_addr: 127.0.0.1:" << kAuth << "\n"
                                        "proxy_service:\n"
                                        "  enabled: false\n"
                                        "  public_addr: proxy.teal.test:3080\n"
                                        "ssh_service:\n"
                                        "  enabled: false\n";
    g_auth = start_vigil("auth");
    if (!wait_until([] { return ctl({"status"}).status == 0; }, 60))
      FAIL() << "the auth service did not come up:\n" << log_of("auth");
    const std::string pin = word_after(ctl({"status"}).out, "CA pin");
    ASSERT_EQ(pin.rfind("sha256:", 0), 0u) << ctl({"status"}).out;

    auto proxy_token = ctl({"tokens", "add", "--type=proxy", "--ttl=5m"});
    ASSERT_EQ(proxy_token.status, 0) << proxy_token.err;
    std::ofstream(config_of("proxy")) << "version: v3\n"
                                         "teleport:\n"
                                         "  nodename: proxy1\n"
                                         "  data_dir: " << g_dir << "/proxy\n"
                                         "  auth_server: 127.0.0.1:" << kAuth << "\n"
                                         "  auth_token: " << word_after(proxy_token.out, "The invite token:") << "\n"
                                         "  ca_pin: " << pin << "\n"
                                         "auth_service:\n"
                                         "  enabled: false\n"
                                         "proxy_service:\n"
                                         "  enabled: true\n"
                                         "  web_listen_addr: 127.0.0.1:" << kWeb << "\n"
                                         "  listen_addr: 127.0.0.1:" << kJump << "\n"
                                         "  tunnel_listen_addr: 127.0.0.1:" << kTunnel << "\n"
                                         "  public_addr: 127.0.0.1:" << kWeb << "\n"
                                         "ssh_service:\n"
                                         "  enabled: false\n";
    g_proxy = start_vigil("proxy");
    if (!wait_until([] { return port_answers(kWeb) && port_answers(kJump); }, 60))
      FAIL() << "the proxy did not come up:\n" << log_of("proxy");

    auto node_token = ctl({"nodes", "add", "--roles=node", "--ttl=5m"});
    ASSERT_EQ(node_token.status, 0) << node_token.err;
    std::ofstream(config_of("node")) << "version: v3\n"
                                        "teleport:\n"
                                        "  nodename: node3p\n"
                                        "  data_dir: " << g_dir << "/node\n"
                                        "  auth_server: 127.0.0.1:" << kAuth << "\n"
                                        "  auth_token: " << word_after(node_token.out, "The invite token:") << "\n"
                                        "  ca_pin: " << pin << "\n"
                                        "auth_service:\n"
                                        "  enabled: false\n"
                                        "proxy_service:\n"
                                        "  enabled: false\n"
                                        "ssh_service:\n"
                                        "  enabled: true\n"
                                        "  listen_addr: 127.0.0.1:" << kNode << "\n"
                                        "  enhanced_recording:\n"
                                        "    enabled: true\n"
                                        "    root_path: /vigil-3p-test\n";
    g_node = start_vigil("node");
    bool up = wait_until(
        [] {
          auto nodes = ctl({"nodes", "ls"});
          return nodes.status == 0 && nodes.out.find("node3p") != std::string::npos &&
                 port_answers(kNode);
        },
        90);
    if (!up) FAIL() << "the node did not come up:\n" << log_of("node");
  }
  static void TearDownTestSuite() {
    stop_vigil(g_node);
    stop_vigil(g_proxy);
    stop_vigil(g_auth);
    if (!getenv("VIGIL_KEEP")) fs::remove_all(g_dir);
  }
  void SetUp() override {
    for (pid_t p : {g_auth, g_node})
      if (p <= 0 || waitpid(p, nullptr, WNOHANG) != 0) GTEST_FAIL() << "a vigil start is not running";
  }
};

TEST_F(ThreeProcess, TheProxysDataDirHoldsItsIdentityAndNoCaKeyNorState) {
  EXPECT_TRUE(fs::exists(g_dir + "/proxy/proxy/node/uuid")) << log_of("proxy");
  EXPECT_TRUE(fs::exists(g_dir + "/proxy/proxy/host_key"));
  for (const auto& entry : fs::recursive_directory_iterator(g_dir + "/proxy")) {
    const std::string name = entry.path().filename();
    EXPECT_NE(name, "state.db") << entry.path();
    EXPECT_NE(name, "ca") << entry.path();
    EXPECT_NE(name, "log") << entry.path();
    EXPECT_NE(name, "admin") << entry.path();
  }
  // The auth service knows it as a proxy, not as a node users may reach.
  auto nodes = ctl({"nodes", "ls"});
  EXPECT_EQ(nodes.out.find("proxy1"), std::string::npos) << nodes.out;
  // Its network-facing part (both ports) is not root.
  for (int port : {kWeb, kJump}) {
    Spawn s;
    s.argv = {"/bin/sh", "-c", "ss -Htlnp 'sport = :" + std::to_string(port) +
                                   "' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2"};
    auto pid = e2e::run(s);
    std::string p = pid.out.substr(0, pid.out.find('\n'));
    ASSERT_FALSE(p.empty()) << "nothing listens on " << port;
    std::ifstream status("/proc/" + p + "/status");
    std::string line, uid;
    while (std::getline(status, line))
      if (line.rfind("Uid:", 0) == 0) uid = line;
    EXPECT_FALSE(uid.empty());
    EXPECT_EQ(uid.find("\t0\t"), std::string::npos) << port << ": " << uid;
  }
}

TEST_F(ThreeProcess, AUserSignsUpLogsInAndRunsTheObfuscatedCommandThroughTheProxy) {
  make_user("ada", "access", "root");
  auto ls = vsh("ada", {"ls"});
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_NE(ls.out.find("node3p"), std::string::npos) << ls.out;
  auto run = vsh("ada", {"ssh", "root@node3p", kObfuscated});
  ASSERT_EQ(run.status, 0) << run.err << log_of("proxy");
  bool seen = wait_until(
      [] {
        for (const auto& e : auth_events("session.command"))
          if (e.value("program", "") == "curl") return true;
        return false;
      },
      30);
  ASSERT_TRUE(seen) << e2e::read_file(g_dir + "/auth/log/events.log");
  const std::string node_uuid = [] {
    std::ifstream in(g_dir + "/node/node/uuid");
    std::string u;
    in >> u;
    return u;
  }();
  for (const auto& e : auth_events("session.command")) {
    if (e.value("program", "") != "curl") continue;
    EXPECT_EQ(e.value("user", ""), "ada");
    EXPECT_EQ(e.value("login", ""), "root");
    EXPECT_EQ(e.value("server_hostname", ""), "node3p");
    EXPECT_EQ(e.value("server_id", ""), node_uuid);
  }
  bool login_ok = false;
  for (const auto& e : auth_events("user.login"))
    if (e.value("user", "") == "ada" && e.value("success", false)) login_ok = true;
  EXPECT_TRUE(login_ok);
  // The sign-up and login went through the proxy: the auth service saw its
  // identity forward them (no refusal of a forward).
  for (const auto& e : auth_events("access.denied")) EXPECT_NE(e.value("action", ""), "forward") << e;
}

// A fourth process: a node that names only the proxy (proxy_server, no
// auth_server) joins through the proxy on its own host, which forwards to the
// auth service, and users reach it through its reverse tunnel.
TEST_F(ThreeProcess, ANodeNamingOnlyTheProxyJoinsThroughItAndIsReachedThroughItsTunnel) {
  constexpr int kTunnelNode = 25052;
  const std::string pin = word_after(ctl({"status"}).out, "CA pin");
  auto token = ctl({"nodes", "add", "--roles=node", "--ttl=5m"});
  ASSERT_EQ(token.status, 0) << token.err;
  std::ofstream(config_of("tunnel")) << "version: v3\n"
                                        "teleport:\n"
                                        "  nodename: tunnel3p\n"
                                        "  data_dir: " << g_dir << "/tunnel\n"
                                        "  proxy_server: 127.0.0.1:" << kWeb << "\n"
                                        "  auth_token: " << word_after(token.out, "The invite token:") << "\n"
                                        "  ca_pin: " << pin << "\n"
                                        "auth_service:\n"
                                        "  enabled: false\n"
                                        "proxy_service:\n"
                                        "  enabled: false\n"
                                        "ssh_service:\n"
                                        "  enabled: true\n"
                                        "  listen_addr: 127.0.0.1:" << kTunnelNode << "\n";
  pid_t tunnel = start_vigil("tunnel");
  bool listed = wait_until(
      [] {
        auto nodes = ctl({"nodes", "ls"});
        return nodes.status == 0 && nodes.out.find("tunnel3p") != std::string::npos;
      },
      60);
  EXPECT_TRUE(listed) << log_of("tunnel");
  if (listed) {
    make_user("tess", "access", "root");
    bool ran = wait_until(
        [] {
          auto run = vsh("tess", {"ssh", "root@tunnel3p", "echo", "through-the-tunnel"});
          return run.status == 0 && run.out.find("through-the-tunnel") != std::string::npos;
        },
        30);
    EXPECT_TRUE(ran) << log_of("tunnel") << log_of("proxy");
  }
  stop_vigil(tunnel);
}

TEST_F(ThreeProcess, AUserForgingTheAdminsForwardedIdentityIsRefusedAndAudited) {
  make_user("eve", "access", "root");
  vigil::ca::PrivateKey key = vigil::ca::PrivateKey::generate(vigil::ca::KeyAlgorithm::ed25519).value();
  auto [key_file, cert_file] = vsh_identity("eve");
  auto c = direct_client(key_file, cert_file, key);
  ASSERT_TRUE(c);
  auto r = c->call("GET", "/v1/users", {}, {}, "application/json",
                   {{"X-Forwarded-For", "127.0.0.1:9"},
                    {"X-Vigil-Forwarded-Certificate", admin_certificate_b64()}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->body.find("honoured only from the cluster's proxy"), std::string::npos) << r->body;
  bool audited = false;
  for (const auto& e : auth_events("access.denied"))
    if (e.value("user", "") == "eve" && e.value("action", "") == "forward") audited = true;
  EXPECT_TRUE(audited);
  // Through the proxy the same headers are replaced by what the proxy saw:
  // the request is eve's, and eve may not list users.
  vigil::ca::PrivateKey key2 = vigil::ca::PrivateKey::generate(vigil::ca::KeyAlgorithm::ed25519).value();
  auto p = direct_client(key_file, cert_file, key2, kWeb);
  ASSERT_TRUE(p);
  auto via = p->call("GET", "/v1/users", {}, {}, "application/json",
                     {{"X-Forwarded-For", "127.0.0.1:9"},
                      {"X-Vigil-Forwarded-Certificate", admin_certificate_b64()}});
  ASSERT_TRUE(via.ok());
  EXPECT_EQ(via->status, 403) << via->body;
  EXPECT_NE(via->body.find("user eve may not list user"), std::string::npos) << via->body;
}

TEST_F(ThreeProcess, ANodeForgingTheAdminsForwardedIdentityIsRefusedAndAudited) {
  vigil::ca::PrivateKey key = vigil::ca::PrivateKey::generate(vigil::ca::KeyAlgorithm::ed25519).value();
  auto c = direct_client(g_dir + "/node/node/tls.key", g_dir + "/node/node/tls.crt", key);
  ASSERT_TRUE(c);
  auto r = c->call("POST", "/v1/tokens", {}, R"({"roles":["node"]})", "application/json",
                   {{"X-Forwarded-For", "127.0.0.1:9"},
                    {"X-Vigil-Forwarded-Certificate", admin_certificate_b64()}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->body.find("honoured only from the cluster's proxy"), std::string::npos) << r->body;
  const std::string node_uuid = [] {
    std::ifstream in(g_dir + "/node/node/uuid");
    std::string u;
    in >> u;
    return u;
  }();
  bool audited = false;
  for (const auto& e : auth_events("access.denied"))
    if (e.value("user", "") == node_uuid && e.value("action", "") == "forward") audited = true;
  EXPECT_TRUE(audited);
}

TEST_F(ThreeProcess, WhileTheAuthServiceIsDownTheProxyAnswers502SayingSo) {
  make_user("kim", "access", "root");
  stop_vigil(g_auth);
  auto ls = vsh("kim", {"ls"});
  EXPECT_NE(ls.status, 0);
  EXPECT_NE(ls.err.find("cannot reach the auth service at 127.0.0.1:" + std::to_string(kAuth)),
            std::string::npos)
      << ls.err;
  // The proxy's own answers do not need it: find was kept.
  Spawn s;
  s.argv = {"/usr/bin/curl", "-sk", "https://127.0.0.1:" + std::to_string(kWeb) + "/v1/webapi/find"};
  auto find = e2e::run(s);
  EXPECT_NE(find.out.find("\"cluster_name\":\"teal\""), std::string::npos) << find.out << find.err;
  EXPECT_NE(find.out.find("\"public_addrs\":[\"127.0.0.1:" + std::to_string(kWeb) + "\"]"),
            std::string::npos)
      << find.out;
  // Back again: the same proxy forwards again, with no restart.
  g_auth = start_vigil("auth");
  ASSERT_TRUE(wait_until([] { return ctl({"status"}).status == 0; }, 60)) << log_of("auth");
  ASSERT_TRUE(wait_until([] { return vsh("kim", {"ls"}).status == 0; }, 30));
}

// Last: the proxy stops.
TEST_F(ThreeProcess, StoppingTheProxyGivesVshAClearError) {
  make_user("zed", "access", "root");
  stop_vigil(g_proxy);
  auto ls = vsh("zed", {"ls"});
  EXPECT_NE(ls.status, 0);
  EXPECT_NE(ls.err.find("127.0.0.1:" + std::to_string(kWeb)), std::string::npos) << ls.err;
  auto run = vsh("zed", {"ssh", "root@node3p", "true"});
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find("127.0.0.1:" + std::to_string(kWeb)), std::string::npos) << run.err;
}

}  // namespace
