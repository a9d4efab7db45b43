// The proxy's decisions that need no sockets: which node a direct-tcpip
// target names (and that nothing else is ever a target), who a tunnel
// certificate belongs to, and the tunnel registry's hand-over.
#include <gtest/gtest.h>

#include <poll.h>
#include <unistd.h>

#include <optional>
#include <thread>

#include "ca/authority.hpp"
#include "ca/ssh_ca.hpp"
#include "proxy/host_auth.hpp"
#include "proxy/node_directory.hpp"
#include "proxy/tunnel_registry.hpp"

namespace vigil::proxy {
namespace {

constexpr int64_t kNow = 1'800'000'000;

cluster::Node node(std::string uuid, std::string name, std::string address, bool tunnel = false,
                   int64_t expires = kNow + 600) {
  cluster::Node n;
  n.uuid = std::move(uuid);
  n.name = std::move(name);
  n.address = std::move(address);
  n.tunnel = tunnel;
  n.expires = cluster::Time(std::chrono::seconds(expires));
  return n;
}

std::vector<cluster::Node> nodes() {
  return {node("11111111-aaaa", "web", "10.0.0.5:3022"),
          node("22222222-bbbb", "db", "10.0.0.6:2222"),
          node("33333333-cccc", "nat", "", true),
          node("44444444-dddd", "twin", "10.0.0.7:3022"),
          node("55555555-eeee", "twin", "10.0.0.8:3022"),
          node("66666666-ffff", "gone", "10.0.0.9:3022", false, kNow - 1)};
}

TEST(ProxyRouting, ANodeIsNamedByNameUuidOrNameDotCluster) {
  for (const char* target : {"web", "11111111-aaaa", "web.prod"}) {
    auto r = pick_node(nodes(), target, 3022, "prod", kNow);
    ASSERT_TRUE(r) << target << ": " << r.error().message;
    EXPECT_EQ(r->uuid, "11111111-aaaa");
    EXPECT_EQ(r->address, "10.0.0.5:3022");  // dialed: the listed address
    EXPECT_FALSE(r->tunnel);
  }
  auto tunnel = pick_node(nodes(), "nat", 0, "prod", kNow);
  ASSERT_TRUE(tunnel);
  EXPECT_TRUE(tunnel->tunnel);
}

TEST(ProxyRouting, OnlyTheNodesSshPortIsAllowed) {
  EXPECT_TRUE(pick_node(nodes(), "db", 0, "prod", kNow));
  EXPECT_TRUE(pick_node(nodes(), "db", 3022, "prod", kNow));
  EXPECT_TRUE(pick_node(nodes(), "db", 2222, "prod", kNow));  // its listed port
  for (uint32_t port : {22u, 80u, 3023u, 3024u, 65535u, 70000u}) {
    auto r = pick_node(nodes(), "db", port, "prod", kNow);
    ASSERT_FALSE(r) << port;
    EXPECT_EQ(r.error().code, Errc::permission_denied);
  }
}

TEST(ProxyRouting, NothingButANodeIsATarget) {
  // Addresses, even a node's own, other clusters' names, lapsed nodes.
  for (const char* target : {"10.0.0.5", "10.0.0.5:3022", "127.0.0.1", "localhost", "web.other",
                             "WEB", "gone", "66666666-ffff", "we", "web.", "*", ""}) {
    auto r = pick_node(nodes(), target, 3022, "prod", kNow);
    ASSERT_FALSE(r) << target;
  }
  auto r = pick_node(nodes(), "ghost", 3022, "prod", kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_NE(r.error().message.find("no node \"ghost\""), std::string::npos);
  EXPECT_FALSE(pick_node(nodes(), std::string(254, 'a'), 3022, "prod", kNow));
}

TEST(ProxyRouting, ANameTwoNodesShareIsAmbiguous) {
  auto r = pick_node(nodes(), "twin", 3022, "prod", kNow);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("give the node's uuid"), std::string::npos);
  auto by_uuid = pick_node(nodes(), "55555555-eeee", 3022, "prod", kNow);
  ASSERT_TRUE(by_uuid);
  EXPECT_EQ(by_uuid->address, "10.0.0.8:3022");
}

TEST(ProxyRouting, HostPortIsStrict) {
  auto v6 = split_host_port("[2001:db8::1]:3022");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_EQ(v6->port, 3022);
  for (const char* bad : {"host", "host:", ":22", "host:0", "host:65536", "host:22x", "::1:22",
                          "[::1:22", "[]:22"})
    EXPECT_FALSE(split_host_port(bad)) << bad;
  EXPECT_TRUE(split_host_port("0.0.0.0:0", true));
}

class NodeCertificate : public ::testing::Test {
 protected:
  void SetUp() override {
    auto host = ca::CertAuthority::create(ca::CaType::ssh_host, "prod", kNow);
    auto other = ca::CertAuthority::create(ca::CaType::ssh_host, "other", kNow);
    auto user = ca::CertAuthority::create(ca::CaType::ssh_user, "prod", kNow);
    ASSERT_TRUE(host && other && user);
    host_.emplace(std::move(*host));
    other_.emplace(std::move(*other));
    user_.emplace(std::move(*user));
    auto cas = host_->trusted_ssh_cas();
    ASSERT_TRUE(cas);
    cas_.emplace(std::move(*cas));
    auto key = ca::PrivateKey::generate(ca::KeyAlgorithm::ed25519);
    ASSERT_TRUE(key);
    key_blob_ = key->ssh_public_key().blob;
  }
  ca::SshCertificateSpec host_spec(int64_t now = kNow) const {
    ca::HostCertificateRequest r;
    r.public_key = key_blob_;
    r.node_uuid = "node-uuid-1";
    r.node_name = "nat";
    r.now = now;
    r.ttl = 600;
    return ca::host_certificate(r).value();
  }
  std::string message_for(const std::string& blob) {
    auto r = authorize_node_certificate(blob, *cas_, kNow);
    EXPECT_FALSE(r);
    return r ? "" : r.error().message;
  }
  std::optional<ca::CertAuthority> host_, other_, user_;
  std::optional<sshcert::TrustedCAs> cas_;
  std::string key_blob_;
};

TEST_F(NodeCertificate, TheHostCasCertificateNamesTheNode) {
  auto blob = host_->sign_ssh(host_spec());
  ASSERT_TRUE(blob);
  auto r = authorize_node_certificate(*blob, *cas_, kNow);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "node-uuid-1");
}

TEST_F(NodeCertificate, EverythingElseIsRefusedWithItsReason) {
  EXPECT_EQ(message_for(other_->sign_ssh(host_spec()).value()).rfind("untrusted_ca", 0), 0u);
  ca::UserCertificateRequest u;
  u.public_key = key_blob_;
  u.user = "node-uuid-1";
  u.logins = {"node-uuid-1"};
  u.now = kNow;
  u.ttl = 600;
  EXPECT_EQ(message_for(user_->sign_ssh(ca::user_certificate(u).value()).value()).rfind("untrusted_ca", 0), 0u);
  // A user certificate signed with the host CA's own key (CertAuthority
  // itself would not): refused for what it is.
  auto spec = ca::user_certificate(u).value();
  auto host_key = ca::PrivateKey::generate(ca::KeyAlgorithm::ed25519).value();
  auto raw_cas = sshcert::TrustedCAs::parse(host_key.ssh_public_key_line() + "\n", "test");
  ASSERT_TRUE(raw_cas);
  auto user_blob = ca::sign_ssh_certificate(host_key, spec);
  ASSERT_TRUE(user_blob);
  auto as_user = authorize_node_certificate(*user_blob, *raw_cas, kNow);
  ASSERT_FALSE(as_user);
  EXPECT_EQ(as_user.error().message.rfind("not_host_certificate", 0), 0u) << as_user.error().message;
  // Expired, not yet valid, tampered, a plain key.
  EXPECT_EQ(message_for(host_->sign_ssh(host_spec(kNow - 7200)).value()).rfind("expired", 0), 0u);
  EXPECT_EQ(message_for(host_->sign_ssh(host_spec(kNow + 7200)).value()).rfind("not_yet_valid", 0), 0u);
  std::string tampered = host_->sign_ssh(host_spec()).value();
  tampered[tampered.size() / 2] ^= 1;
  EXPECT_FALSE(authorize_node_certificate(tampered, *cas_, kNow));
  EXPECT_EQ(message_for(key_blob_).rfind("malformed_certificate", 0), 0u);
  // A key id that is not among the principals.
  auto odd = host_spec();
  odd.key_id = "someone-else";
  EXPECT_EQ(message_for(host_->sign_ssh(odd).value()).rfind("principal_mismatch", 0), 0u);
}

TEST(TunnelRegistry, ANodeWithoutATunnelIsUnavailable) {
  TunnelRegistry registry;
  auto r = registry.open("node-1", "192.0.2.1", 4000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_NE(r.error().message.find("holds none now"), std::string::npos);
}

TEST(TunnelRegistry, TheTunnelThreadAnswersWithTheOtherEnd) {
  TunnelRegistry registry;
  auto tunnel = registry.add("node-1");
  std::thread node([&] {
    pollfd p{tunnel->wake_fd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    auto requests = tunnel->take();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0]->originator, "192.0.2.1");
    EXPECT_EQ(requests[0]->originator_port, 4000u);
    ASSERT_EQ(write(requests[0]->end.get(), "hello", 5), 5);
    requests[0]->result.set_value("");
  });
  auto socket = registry.open("node-1", "192.0.2.1", 4000);
  node.join();
  ASSERT_TRUE(socket) << socket.error().message;
  char buf[8] = {};
  ASSERT_EQ(read(socket->get(), buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
}

TEST(TunnelRegistry, ANewerTunnelReplacesTheOlderAndRefusesWhatWaitedOnIt) {
  TunnelRegistry registry;
  auto first = registry.add("node-1");
  std::thread reconnect([&] {
    pollfd p{first->wake_fd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    registry.add("node-1");  // the node came back on a new connection
  });
  auto r = registry.open("node-1", "192.0.2.1", 4000);
  reconnect.join();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("reconnected"), std::string::npos) << r.error().message;
  // The older connection ending does not remove the newer tunnel.
  registry.remove("node-1", first);
  EXPECT_EQ(registry.size(), 1u);
}

}  // namespace
}  // namespace vigil::proxy
