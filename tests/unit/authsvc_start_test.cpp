// What the integrator calls when the auth service starts and then every
// minute: its own TLS server certificate, the purge of expired state.
#include "authsvc_fixture.hpp"
#include "ca/tls_ca.hpp"

namespace vigil::authsvc::test {
namespace {

class Start : public AuthFixture {};

TEST_F(Start, TheServiceCertificateIsANodeIdentityForItsAddresses) {
  ClientKeys k;
  auto cert = service_->issue_server_certificate("5e0b6e1c-1111-4222-8333-444455556666", "auth-1",
                                                 {"10.0.0.1", "auth.alpha.test"},
                                                 k.tls.spki_der());
  ASSERT_TRUE(cert.ok()) << cert.error().message;
  auto id = ca::verify_tls_peer(cert->get(), cas_->tls.trusted_tls_certificates(), "alpha",
                                ca::TlsUsage::server, kStart);
  ASSERT_TRUE(id.ok()) << id.refusal().message;
  EXPECT_EQ(id->kind, ca::TlsIdentityKind::node);
  EXPECT_EQ(id->name, "5e0b6e1c-1111-4222-8333-444455556666");
  EXPECT_EQ(id->node_name, "auth-1");
  EXPECT_NE(std::find(id->addresses.begin(), id->addresses.end(), "10.0.0.1"), id->addresses.end());
  EXPECT_NE(std::find(id->addresses.begin(), id->addresses.end(), "auth.alpha.test"),
            id->addresses.end());
}

TEST_F(Start, PurgeRemovesExpiredTokensAndNodesAndForgetsOldFailures) {
  auto t = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"node"}}, {"ttl", "1m"}});
  ASSERT_EQ(t.status, 201);
  cluster::Node n;
  n.uuid = "u1";
  n.name = "n1";
  n.address = "10.0.0.2:3022";
  n.last_heartbeat = cluster::Time{cluster::Seconds{kStart}};
  n.expires = cluster::Time{cluster::Seconds{kStart + 90}};
  ASSERT_TRUE(store_->upsert_node(n).ok());
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(call("POST", "/v1/login", anonymous(),
                   {{"user", "ghost"}, {"password", "whatever-password"},
                    {"ssh_public_key", "x"}, {"tls_public_key", ""}})
                  .status,
              401);
  EXPECT_EQ(service_->purge_expired().value(), 0u);
  EXPECT_EQ(service_->login_failure_keys(), 2u);  // user:ghost, source:198.51.100.7
  now_ += 90;
  EXPECT_EQ(service_->purge_expired().value(), 2u);  // the token and the node
  EXPECT_TRUE(store_->list_tokens().value().empty());
  EXPECT_FALSE(store_->get_node("u1").ok());
  // Still limited within the 15 minutes, free after.
  EXPECT_EQ(call("POST", "/v1/login", anonymous(),
                 {{"user", "ghost"}, {"password", "whatever-password"}, {"ssh_public_key", "x"},
                  {"tls_public_key", ""}})
                .status,
            429);
  now_ += 900;
  ASSERT_TRUE(service_->purge_expired().ok());
  EXPECT_EQ(service_->login_failure_keys(), 0u);  // forgotten, memory back
  EXPECT_EQ(call("POST", "/v1/login", anonymous(),
                 {{"user", "ghost"}, {"password", "whatever-password"}, {"ssh_public_key", "x"},
                  {"tls_public_key", ""}})
                .status,
            401);
}

TEST(RateLimit, MemoryIsBoundedByForgettingTheOldestKeys) {
  RateLimit limit(RateLimit::Options{2, std::chrono::seconds{60}, 3});
  const RateLimit::Time t0{std::chrono::seconds{1000}};
  for (int i = 0; i < 10; ++i)
    limit.record_failure("k" + std::to_string(i), t0 + std::chrono::seconds{i});
  EXPECT_EQ(limit.keys(), 3u);
  limit.record_failure("k9", t0 + std::chrono::seconds{10});
  auto until = limit.blocked_until("k9", t0 + std::chrono::seconds{11});
  ASSERT_TRUE(until.has_value());
  EXPECT_EQ(*until, t0 + std::chrono::seconds{9 + 60});
  EXPECT_FALSE(limit.blocked_until("k0", t0 + std::chrono::seconds{11}).has_value());
  limit.prune(t0 + std::chrono::seconds{100});
  EXPECT_EQ(limit.keys(), 0u);
}

}  // namespace
}  // namespace vigil::authsvc::test
