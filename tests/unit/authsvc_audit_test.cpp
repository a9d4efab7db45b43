// The auth service when its audit log refuses writes (disk full, I/O
// error): a request whose event guards what it hands out (a certificate, a
// token's secret) fails and hands out nothing; a refusal or a change
// already made keeps its answer, and the missing event is counted
// (audit_failures()) and logged. Never a silent drop.
#include "authsvc_fixture.hpp"

namespace vigil::authsvc::test {
namespace {

class AuditFailure : public AuthFixture {};

TEST_F(AuditFailure, ALoginThatCannotBeAuditedGivesNoCertificate) {
  make_user("alice", {"access"}, {"alice"});
  ClientKeys k;
  audit_.failing = true;
  auto r = call("POST", "/v1/login", anonymous(), login_body("alice", kPassword, k));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(error_code(r), "unavailable") << r.body;
  EXPECT_EQ(r.body.find("ssh_certificate"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("BEGIN CERTIFICATE"), std::string::npos) << r.body;
  EXPECT_NE(error_message(r).find("audit log"), std::string::npos) << r.body;
  EXPECT_GE(service_->audit_failures(), 1u);
  // The disk recovers: the login works and is audited.
  audit_.failing = false;
  r = call("POST", "/v1/login", anonymous(), login_body("alice", kPassword, k));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(audit_.last("user.login")["success"], true);
}

TEST_F(AuditFailure, TokensJoinsAndSignUpLinksThatCannotBeAuditedAreNotHandedOut) {
  audit_.failing = true;
  auto t = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"node"}}});
  EXPECT_EQ(t.status, 503) << t.body;
  EXPECT_FALSE(body(t).contains("token")) << t.body;
  auto u = call("POST", "/v1/users", admin_peer(), {{"name", "bob"}, {"roles", {"access"}}});
  EXPECT_EQ(u.status, 503) << u.body;
  EXPECT_FALSE(body(u).contains("token")) << u.body;
  EXPECT_EQ(service_->audit_failures(), 2u);

  // A join whose instance.join and cert.create cannot be written gets no certificate.
  audit_.failing = false;
  t = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"node"}}});
  ASSERT_EQ(t.status, 201) << t.body;
  ClientKeys k;
  audit_.failing = true;
  auto j = call("POST", "/v1/join", anonymous(),
                {{"token", body(t)["token"]}, {"node_name", "node-1"}, {"addresses", {"127.0.0.1:3022"}},
                 {"ssh_public_key", k.ssh_line()}, {"tls_public_key", k.tls_b64()}});
  EXPECT_EQ(j.status, 503) << j.body;
  EXPECT_FALSE(body(j).contains("tls_certificate")) << j.body;
  EXPECT_EQ(service_->audit_failures(), 3u);
}

TEST_F(AuditFailure, RefusalsAndDoneChangesKeepTheirAnswerAndAreCounted) {
  make_user("alice", {"access"}, {"alice"});
  make_user("carol", {"access"}, {"carol"});
  ClientKeys k;
  audit_.failing = true;
  const size_t stored = audit_.count();
  // A wrong password is still refused (the refusal is the answer).
  auto r = call("POST", "/v1/login", anonymous(), login_body("alice", "wrong", k));
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(service_->audit_failures(), 1u);
  // A plain user creating a role is still refused.
  r = call("POST", "/v1/resources", user_peer("alice", {"access"}),
           {{"text", "kind: role\nversion: v7\nmetadata:\n  name: x\nspec: {}\n"}});
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(service_->audit_failures(), 2u);
  // A deletion is done; its event is missing, counted.
  r = call("DELETE", "/v1/users/carol", admin_peer());
  EXPECT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(service_->audit_failures(), 3u);
  EXPECT_EQ(audit_.count(), stored);
}

}  // namespace
}  // namespace vigil::authsvc::test
