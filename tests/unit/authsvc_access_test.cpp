// Who may call what on the auth service, through Router::dispatch: each
// attack asserts the exact refusal and its audit event. Also the calls of
// nodes (join, heartbeat, roles) and the node list a user sees.
#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include "authsvc_fixture.hpp"
#include "ca/tls_ca.hpp"

namespace vigil::authsvc::test {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class Access : public AuthFixture {};

TEST_F(Access, FindIsAnonymousAndNamesTheClusterItsPinAndSecondFactor) {
  auto r = call("GET", "/v1/find", anonymous());
  ASSERT_EQ(r.status, 200) << r.body;
  json j = body(r);
  EXPECT_EQ(j["cluster_name"], "alpha");
  EXPECT_EQ(j["ca_pin"], cas_->tls.pin());
  EXPECT_EQ(j["auth"]["second_factor"], "off");
  EXPECT_EQ(j["proxy"]["public_addrs"], json::array({"proxy.alpha.test:3080"}));
  EXPECT_FALSE(j["server_version"].get<std::string>().empty());
}

TEST_F(Access, StatusIsForAdminsAndEditorsOnly) {
  auto r = call("GET", "/v1/status", admin_peer());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["cluster"], "alpha");
  EXPECT_EQ(body(r)["ca_pin"], cas_->tls.pin());

  auto anon = call("GET", "/v1/status", anonymous());
  EXPECT_EQ(anon.status, 401);
  EXPECT_NE(error_message(anon).find("vsh login"), std::string::npos) << anon.body;
  json denied = audit_.last("access.denied");
  EXPECT_EQ(denied["caller"], "anonymous");
  EXPECT_EQ(denied["action"], "status");
  EXPECT_EQ(denied["code"], "V1000W");
  EXPECT_EQ(denied["addr.remote"], "198.51.100.7:40000");
}

TEST_F(Access, ANodeIdentityCallingAdminApisIsRefusedAndAudited) {
  const api::Peer node = node_peer("6b1d0a0e-0000-4000-8000-000000000001");
  struct Attempt { std::string method, path, action; json body; };
  const std::vector<Attempt> attempts = {
      {"POST", "/v1/users", "users.add", {{"name", "mallory"}, {"roles", {"editor"}}}},
      {"GET", "/v1/tokens", "tokens.list", nullptr},
      {"POST", "/v1/tokens", "tokens.create", {{"roles", {"node"}}}},
      {"POST", "/v1/resources", "resources.create", {{"text", "kind: role\nversion: v8\nmetadata:\n  name: x\n"}}},
      {"GET", "/v1/users", "users.list", nullptr},
      {"DELETE", "/v1/resources/role/access", "role.delete", nullptr},
      {"GET", "/v1/nodes", "nodes.list", nullptr},
  };
  for (const auto& a : attempts) {
    const size_t before = audit_.events("access.denied").size();
    auto r = call(a.method, a.path, node, a.body);
    EXPECT_EQ(r.status, 403) << a.path << " " << r.body;
    EXPECT_EQ(error_code(r), "permission_denied");
    EXPECT_NE(error_message(r).find("node identity may not"), std::string::npos) << r.body;
    auto denied = audit_.events("access.denied");
    ASSERT_EQ(denied.size(), before + 1) << a.path;
    EXPECT_EQ(denied.back()["caller"], "node");
    EXPECT_EQ(denied.back()["user"], "6b1d0a0e-0000-4000-8000-000000000001");
    EXPECT_EQ(denied.back()["action"], a.action);
  }
  // Nothing was done.
  EXPECT_FALSE(store_->get_user("mallory").ok());
  EXPECT_TRUE(store_->get_role("access").ok());
}

TEST_F(Access, APlainUserMayNotCreateARoleAddAUserOrListTokens) {
  make_user("bob", {"access"}, {"bob"});
  const api::Peer bob = user_peer("bob", {"access"});
  auto role = call("POST", "/v1/resources", bob,
                   {{"text", "kind: role\nversion: v8\nmetadata:\n  name: root-all\nspec:\n  allow:\n    "
                             "logins: [root]\n    node_labels: {'*': '*'}\n"}});
  EXPECT_EQ(role.status, 403) << role.body;
  EXPECT_NE(error_message(role).find("user bob may not create role (roles: access)"),
            std::string::npos)
      << role.body;
  EXPECT_EQ(audit_.last("access.denied")["action"], "role.create");
  EXPECT_FALSE(store_->get_role("root-all").ok());

  auto user = call("POST", "/v1/users", bob, {{"name", "eve"}, {"roles", {"editor"}}});
  EXPECT_EQ(user.status, 403);
  EXPECT_EQ(audit_.last("access.denied")["action"], "users.add");
  EXPECT_FALSE(store_->get_user("eve").ok());

  auto tokens = call("GET", "/v1/tokens", bob);
  EXPECT_EQ(tokens.status, 403);
  json d = audit_.last("access.denied");
  EXPECT_EQ(d["action"], "tokens.list");
  EXPECT_EQ(d["user"], "bob");
  EXPECT_EQ(d["caller"], "user");
  EXPECT_NE(d["error"].get<std::string>().find("may not list token"), std::string::npos);
}

TEST_F(Access, TheRolesThatCountAreTheStoresNotTheCertificates) {
  // The certificate claims editor; the store says access: access wins.
  make_user("carol", {"access"}, {"carol"});
  auto r = call("GET", "/v1/tokens", user_peer("carol", {"editor"}));
  EXPECT_EQ(r.status, 403) << r.body;
}

TEST_F(Access, AUserOfAnotherClusterIsRefused) {
  make_user("dave", {"editor"});
  auto r = call("GET", "/v1/tokens", user_peer("dave", {"editor"}, "beta"));
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(error_code(r), "unauthenticated");
  EXPECT_NE(error_message(r).find("cluster 'beta', this is 'alpha'"), std::string::npos);
  json d = audit_.last("access.denied");
  EXPECT_EQ(d["action"], "authenticate");
  EXPECT_EQ(d["user"], "dave");
  // A node of another cluster too.
  auto n = call("POST", "/v1/nodes/heartbeat", node_peer("u-1", "beta"),
                {{"node_name", "n"}, {"address", "10.0.0.1:3022"}});
  EXPECT_EQ(n.status, 401) << n.body;
}

TEST_F(Access, ADeletedUsersStillValidCertificateLosesItsRightsAtOnce) {
  make_user("erin", {"editor"});
  const api::Peer erin = user_peer("erin", {"editor"});
  ASSERT_EQ(call("GET", "/v1/tokens", erin).status, 200);

  // The editor role taken away: refused at once.
  auto u = store_->get_user("erin").value();
  u.roles = {"auditor"};
  ASSERT_TRUE(store_->update_user(u).ok());
  auto r = call("GET", "/v1/tokens", erin);
  EXPECT_EQ(r.status, 403) << r.body;

  // Deleted: the certificate (still valid) is not honoured.
  ASSERT_EQ(call("DELETE", "/v1/users/erin", admin_peer()).status, 204);
  EXPECT_EQ(audit_.last("user.delete")["name"], "erin");
  auto gone = call("GET", "/v1/tokens", erin);
  EXPECT_EQ(gone.status, 401) << gone.body;
  EXPECT_NE(error_message(gone).find("user erin no longer exists"), std::string::npos);
  json d = audit_.last("access.denied");
  EXPECT_EQ(d["user"], "erin");
  EXPECT_EQ(d["action"], "authenticate");
}

TEST_F(Access, JoinTokensAreMadeListedAndRemovedByAdminsWithAudit) {
  auto r = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"node"}}, {"ttl", "5m"}});
  ASSERT_EQ(r.status, 201) << r.body;
  json t = body(r);
  EXPECT_EQ(t["token"].get<std::string>().size(), 32u);
  EXPECT_EQ(t["expires"], cluster::rfc3339(cluster::Time{cluster::Seconds{kStart + 300}}));
  json e = audit_.last("join_token.create");
  EXPECT_EQ(e["code"], "T9003I");
  EXPECT_EQ(e["name"], t["id"]);
  EXPECT_EQ(e["roles"], json::array({"node"}));
  EXPECT_EQ(e["user"], "@admin");
  // The secret is in no audit event.
  EXPECT_EQ(e.dump().find(t["token"].get<std::string>()), std::string::npos);

  auto list = call("GET", "/v1/tokens", admin_peer());
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(body(list)["tokens"].size(), 1u) << list.body;
  EXPECT_EQ(list.body.find(t["token"].get<std::string>()), std::string::npos);

  auto text = call("GET", "/v1/resources/token", admin_peer(), nullptr, {{"format", "text"}});
  ASSERT_EQ(text.status, 200) << text.body;
  EXPECT_NE(text.body.find("Expiry Time"), std::string::npos) << text.body;

  for (const char* ttl : {"0s", "49h"}) {
    auto bad = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"node"}}, {"ttl", ttl}});
    EXPECT_EQ(bad.status, 400) << ttl << bad.body;
  }
  EXPECT_EQ(call("POST", "/v1/tokens", admin_peer(), {{"roles", {"root"}}}).status, 400);

  auto rm = call("DELETE", "/v1/tokens/" + t["id"].get<std::string>(), admin_peer());
  EXPECT_EQ(rm.status, 204) << rm.body;
  EXPECT_EQ(audit_.last("join_token.delete")["name"], t["id"]);
  EXPECT_EQ(body(call("GET", "/v1/tokens", admin_peer()))["tokens"].size(), 0u);
}

class Join : public AuthFixture {
 protected:
  json join_body(const std::string& token, const ClientKeys& k, std::string role = "node") {
    return {{"token", token},
            {"role", role},
            {"node_name", "web-1"},
            {"addresses", {"10.1.2.3:3022"}},
            {"labels", {{"env", "prod"}}},
            {"ssh_public_key", k.ssh_line()},
            {"tls_public_key", k.tls_b64()}};
  }
  std::string token(std::string roles = "node", std::string ttl = "5m") {
    auto r = call("POST", "/v1/tokens", admin_peer(), {{"roles", {roles}}, {"ttl", ttl}});
    EXPECT_EQ(r.status, 201) << r.body;
    return body(r)["token"];
  }
  ClientKeys keys_;
};

TEST_F(Join, ANodeJoinsWithATokenAndGetsItsCertificates) {
  auto r = call("POST", "/v1/join", anonymous(), join_body(token(), keys_));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = body(r);
  const std::string uuid = j["uuid"];
  EXPECT_EQ(uuid.size(), 36u);
  EXPECT_EQ(j["cluster_name"], "alpha");
  EXPECT_EQ(j["trusted_user_ca_keys"], cas_->ssh_user.trusted_keys_text());

  auto cert = sshcert::parse_certificate_line(j["ssh_host_certificate"].get<std::string>());
  ASSERT_TRUE(cert.ok()) << cert.error().message;
  EXPECT_EQ(cert->type, sshcert::CertType::host);
  EXPECT_EQ(cert->key_id, uuid);
  EXPECT_EQ(cert->key.blob, keys_.ssh.ssh_public_key().blob);
  EXPECT_NE(std::find(cert->principals.begin(), cert->principals.end(), uuid), cert->principals.end());
  EXPECT_NE(std::find(cert->principals.begin(), cert->principals.end(), "web-1"), cert->principals.end());
  EXPECT_NE(std::find(cert->principals.begin(), cert->principals.end(), "10.1.2.3"), cert->principals.end());
  EXPECT_EQ(cert->signature_key.blob, cas_->ssh_host.active().key.ssh_public_key().blob);

  auto tls = ca::TlsCertificate::from_pem(j["tls_certificate"].get<std::string>()).value();
  auto id = ca::verify_tls_peer(tls.get(), cas_->tls.trusted_tls_certificates(), "alpha",
                                ca::TlsUsage::server, kStart);
  ASSERT_TRUE(id.ok()) << id.refusal().message;
  EXPECT_EQ(id->kind, ca::TlsIdentityKind::node);
  EXPECT_EQ(id->name, uuid);
  EXPECT_EQ(id->node_name, "web-1");

  auto node = store_->get_node(uuid);
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->labels.at("env"), "prod");
  json e = audit_.last("instance.join");
  EXPECT_EQ(e["success"], true);
  EXPECT_EQ(e["host_id"], uuid);
  EXPECT_EQ(e["code"], "TJ002I");
  EXPECT_EQ(audit_.last("cert.create")["cert_type"], "host");

  // A rejoin with the same name is a new node (a new uuid).
  auto again = call("POST", "/v1/join", anonymous(), join_body(token(), keys_));
  ASSERT_EQ(again.status, 200);
  EXPECT_NE(body(again)["uuid"], uuid);
}

TEST_F(Join, ExpiredUnknownWrongRoleAndSignupTokensAreRefusedAndAudited) {
  const std::string expired = token("node", "1m");
  const std::string proxy_only = token("proxy");
  auto signup = call("POST", "/v1/users", admin_peer(), {{"name", "fay"}, {"roles", {"access"}}});
  const std::string signup_token = body(signup)["token"];
  now_ += 61;
  struct Case { std::string token; int status; std::string words; };
  const std::vector<Case> cases = {
      {expired, 401, "the token expired at"},
      {std::string(32, 'a'), 401, "unknown, revoked or long expired"},
      {proxy_only, 403, "does not let its holder join as node"},
      {signup_token, 403, "this is a sign-up token, not a join token"},
  };
  for (const auto& c : cases) {
    const size_t before = audit_.events("instance.join").size();
    auto r = call("POST", "/v1/join", anonymous(), join_body(c.token, keys_));
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_NE(error_message(r).find(c.words), std::string::npos) << r.body;
    auto events = audit_.events("instance.join");
    ASSERT_EQ(events.size(), before + 1);
    EXPECT_EQ(events.back()["success"], false);
    EXPECT_EQ(events.back()["code"], "TJ002W");
    EXPECT_NE(events.back()["error"].get<std::string>().find(c.words), std::string::npos);
  }
  EXPECT_EQ(store_->list_nodes().value().size(), 0u);
  // The sign-up token was not consumed by the attempt.
  EXPECT_EQ(call("POST", "/v1/signup", anonymous(),
                 {{"token", signup_token}, {"password", kPassword}})
                .status,
            200);
}

TEST_F(Join, ANodeHeartbeatsOnlyAsItselfAndLearnsTheRolesRevision) {
  auto j = body(call("POST", "/v1/join", anonymous(), join_body(token(), keys_)));
  const std::string uuid = j["uuid"];
  const api::Peer node = node_peer(uuid);
  now_ += 30;
  auto hb = call("POST", "/v1/nodes/heartbeat", node,
                 {{"node_name", "web-1"}, {"address", "10.1.2.3:3022"}, {"labels", {{"env", "dev"}}}});
  ASSERT_EQ(hb.status, 200) << hb.body;
  EXPECT_EQ(body(hb)["interval_seconds"], 30);
  const std::string rev = body(hb)["roles_revision"];
  EXPECT_EQ(store_->get_node(uuid)->labels.at("env"), "dev");
  EXPECT_EQ(store_->get_node(uuid)->expires, cluster::Time{cluster::Seconds{kStart + 30 + 90}});

  // Naming another node: refused, audited, the other untouched.
  auto other = call("POST", "/v1/nodes/heartbeat", node,
                    {{"node_name", "db-1"}, {"address", "10.9.9.9:3022"}, {"uuid", "someone-else"}});
  EXPECT_EQ(other.status, 403) << other.body;
  EXPECT_NE(error_message(other).find("heartbeats only as itself"), std::string::npos);
  EXPECT_EQ(audit_.last("access.denied")["action"], "heartbeat");
  EXPECT_FALSE(store_->get_node("someone-else").ok());

  // A user is not a node.
  make_user("gus", {"editor"});
  auto u = call("POST", "/v1/nodes/heartbeat", user_peer("gus"),
                {{"node_name", "fake"}, {"address", "10.0.0.1:22"}});
  EXPECT_EQ(u.status, 403);

  // Nodes read the roles; the revision changes when a role does.
  auto roles = call("GET", "/v1/roles", node);
  ASSERT_EQ(roles.status, 200);
  EXPECT_EQ(body(roles)["revision"], rev);
  EXPECT_EQ(roles.body.find("password"), std::string::npos);
  create_role("kind: role\nversion: v8\nmetadata:\n  name: web\nspec:\n  allow:\n    logins: [www]\n");
  auto hb2 = call("POST", "/v1/nodes/heartbeat", node, {{"node_name", "web-1"}, {"address", "10.1.2.3:3022"}});
  EXPECT_NE(body(hb2)["roles_revision"], rev);
  // An edit of a role (same names, a new revision) changes it too.
  create_role("kind: role\nversion: v8\nmetadata:\n  name: web\nspec:\n  allow:\n    logins: [www, deploy]\n");
  auto hb3 = call("POST", "/v1/nodes/heartbeat", node, {{"node_name", "web-1"}, {"address", "10.1.2.3:3022"}});
  EXPECT_NE(body(hb3)["roles_revision"], body(hb2)["roles_revision"]);
  EXPECT_EQ(call("GET", "/v1/roles", anonymous()).status, 401);
}

TEST_F(Join, AUserSeesOnlyTheNodesTheirRolesLetThemReach) {
  create_role(
      "kind: role\nversion: v8\nmetadata:\n  name: prod-ops\nspec:\n  allow:\n    logins: [ops]\n    "
      "node_labels:\n      env: prod\n");
  for (auto [name, env] : {std::pair{"p1", "prod"}, {"d1", "dev"}}) {
    cluster::Node n;
    n.uuid = std::string("uuid-") + name;
    n.name = name;
    n.address = "10.0.0.1:3022";
    n.labels = {{"env", env}};
    n.last_heartbeat = cluster::Time{cluster::Seconds{kStart}};
    n.expires = cluster::Time{cluster::Seconds{kStart + 90}};
    ASSERT_TRUE(store_->upsert_node(n).ok());
  }
  // A role that lets hal see dev nodes but gives no login there: not reachable.
  create_role(
      "kind: role\nversion: v8\nmetadata:\n  name: dev-viewer\nspec:\n  allow:\n    "
      "node_labels:\n      env: dev\n");
  make_user("hal", {"prod-ops", "dev-viewer"});
  auto r = call("GET", "/v1/nodes", user_peer("hal"));
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(body(r)["nodes"].size(), 1u) << r.body;
  EXPECT_NE(r.body.find("uuid-p1"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("d1"), std::string::npos);
  // The admin sees both; nodes past their heartbeat TTL are gone from lists.
  EXPECT_EQ(body(call("GET", "/v1/nodes", admin_peer()))["nodes"].size(), 2u);
  now_ += 90;
  EXPECT_EQ(body(call("GET", "/v1/nodes", admin_peer()))["nodes"].size(), 0u);
}

TEST_F(Access, TheLocalAdminIdentityIsWrittenPrivateAndItsNameIsReserved) {
  ASSERT_TRUE(service_->write_admin_identity(dir_.path()).ok());
  struct stat st{};
  ASSERT_EQ(::stat(dir_.file("admin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(dir_.file("admin/key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto cert = ca::TlsCertificate::from_pem(read_file(dir_.file("admin/cert.pem"))).value();
  auto id = ca::verify_tls_peer(cert.get(), cas_->tls.trusted_tls_certificates(), "alpha",
                                ca::TlsUsage::client, kStart);
  ASSERT_TRUE(id.ok()) << id.refusal().message;
  EXPECT_EQ(id->name, "@admin");
  EXPECT_EQ(caller_of(api::Peer{"127.0.0.1:1", id.value(), "der"}).kind, CallerKind::admin);
  auto key = ca::PrivateKey::parse(read_file(dir_.file("admin/key.pem")));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->spki_der(), [&] {
    // The certificate is for that key.
    X509_PUBKEY* pk = X509_get_X509_PUBKEY(cert.get());
    unsigned char* der = nullptr;
    int n = i2d_X509_PUBKEY(pk, &der);
    std::string out(reinterpret_cast<char*>(der), n);
    OPENSSL_free(der);
    return out;
  }());

  // No user may take the name, nor any '@' name.
  for (const char* name : {"@admin", "@root"}) {
    auto r = call("POST", "/v1/users", admin_peer(), {{"name", name}, {"roles", {"editor"}}});
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(error_message(r).find("reserved"), std::string::npos);
    auto res = call("POST", "/v1/resources", admin_peer(),
                    {{"text", std::string("kind: user\nversion: v2\nmetadata:\n  name: '") + name +
                                  "'\nspec:\n  roles: [editor]\n"}});
    EXPECT_EQ(res.status, 400) << res.body;
  }
}

}  // namespace
}  // namespace vigil::authsvc::test
