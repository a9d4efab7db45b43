// The auth service behind a proxy on another host: the forwarded client
// address and certificate (X-Forwarded-For, X-Vigil-Forwarded-Certificate)
// are believed from a proxy identity only, and the certificate is verified
// again; from anyone else they are refused and audited.
#include "authsvc_fixture.hpp"

#include <algorithm>

namespace vigil::authsvc::test {
namespace {

class Forward : public AuthFixture {
 protected:
  // A proxy joined with a proxy token, as the server sees its connection.
  api::Peer join_proxy() {
    auto tok = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"proxy"}}});
    auto joined = call("POST", "/v1/join", anonymous(),
                       {{"token", body(tok)["token"]}, {"role", "proxy"}, {"node_name", "proxy-1"},
                        {"addresses", {"10.0.0.9:3080"}}, {"ssh_public_key", keys_.ssh_line()},
                        {"tls_public_key", keys_.tls_b64()}});
    EXPECT_EQ(joined.status, 200) << joined.body;
    // The certificate says proxy too (clients require it of the web port).
    auto cert = ca::TlsCertificate::from_pem(body(joined)["tls_certificate"].get<std::string>());
    EXPECT_TRUE(cert.ok());
    auto id = ca::verify_tls_peer(cert->get(), cas_->tls.trusted_tls_certificates(), "alpha",
                                  ca::TlsUsage::server, kStart);
    EXPECT_TRUE(id.ok());
    if (id.ok()) {
      EXPECT_NE(std::find(id->roles.begin(), id->roles.end(), "proxy"), id->roles.end());
    }
    api::Peer p = node_peer(body(joined)["uuid"]);
    p.address = "10.0.0.9:41000";
    return p;
  }
  // A real certificate of this cluster's TLS CA, base64 DER as the proxy sends it.
  std::string certificate_b64(const std::string& name, ca::TlsIdentityKind kind = ca::TlsIdentityKind::user,
                              ca::ClusterCAs* cas = nullptr) {
    ca::TlsIssueRequest r;
    r.identity.kind = kind;
    r.identity.cluster = cas ? "other" : "alpha";
    r.identity.name = name;
    if (kind == ca::TlsIdentityKind::node) {
      r.identity.roles = {"node"};
      r.identity.node_name = "n1";
    }
    r.subject_public_key = keys_.tls.spki_der();
    r.now = kStart;
    r.ttl = 3600;
    auto cert = (cas ? cas : &*cas_)->tls.issue_tls(r);
    EXPECT_TRUE(cert.ok());
    std::string out;
    audit::append_base64(out, cert->der());
    return out;
  }
  static api::Peer forwarding(api::Peer p, std::string for_addr, std::optional<std::string> cert) {
    p.forwarded_for = std::move(for_addr);
    p.forwarded_certificate = std::move(cert);
    return p;
  }
  ClientKeys keys_;
};

TEST_F(Forward, FromAProxyTheCallerIsTheForwardedClientAtItsAddress) {
  make_user("ann", {"access"}, {"ann"});
  const api::Peer proxy = join_proxy();
  ASSERT_EQ(caller_of(proxy).kind, CallerKind::proxy);
  Caller c = caller_of(forwarding(proxy, "203.0.113.7:5555", certificate_b64("ann")));
  EXPECT_EQ(c.kind, CallerKind::user);
  EXPECT_EQ(c.name, "ann");
  EXPECT_EQ(c.address, "203.0.113.7:5555");
  EXPECT_TRUE(c.forwarded);
  // With no certificate: an anonymous client, not the proxy.
  Caller anon = caller_of(forwarding(proxy, "203.0.113.8:1", std::nullopt));
  EXPECT_EQ(anon.kind, CallerKind::anonymous);
  EXPECT_EQ(anon.address, "203.0.113.8:1");
  EXPECT_EQ(call("GET", "/v1/users", forwarding(proxy, "203.0.113.8:1", std::nullopt)).status, 401);
  // A node's certificate forwarded: that node (its uuid and host name).
  Caller node = caller_of(forwarding(proxy, "192.0.2.44:2", certificate_b64("node-uuid-1", ca::TlsIdentityKind::node)));
  EXPECT_EQ(node.kind, CallerKind::node);
  EXPECT_EQ(node.name, "node-uuid-1");
  EXPECT_EQ(node.node_name, "n1");
}

TEST_F(Forward, APlainUserForgingTheAdminsForwardedIdentityIsRefusedAndAudited) {
  make_user("bob", {"access"}, {"bob"});
  const std::string admin_cert = certificate_b64(std::string(kAdminName));
  auto r = call("GET", "/v1/users",
                forwarding(user_peer("bob", {"access"}), "127.0.0.1:1", admin_cert));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(error_code(r), "permission_denied");
  EXPECT_NE(error_message(r).find("honoured only from the cluster's proxy"), std::string::npos)
      << r.body;
  json e = audit_.last("access.denied");
  EXPECT_EQ(e["user"], "bob");
  EXPECT_EQ(e["action"], "forward");
  EXPECT_EQ(e["caller"], "user");
  // Only X-Forwarded-For (to pick its own address for the rate limit): refused too.
  auto xff = call("POST", "/v1/login", forwarding(anonymous(), "192.0.2.1", std::nullopt),
                  login_body("bob", kPassword, keys_));
  EXPECT_EQ(xff.status, 403) << xff.body;
  EXPECT_EQ(audit_.last("access.denied")["caller"], "anonymous");
}

TEST_F(Forward, ANodeForgingTheAdminsForwardedIdentityIsRefusedAndAudited) {
  auto tok = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"node"}}});
  auto joined = call("POST", "/v1/join", anonymous(),
                     {{"token", body(tok)["token"]}, {"node_name", "n2"},
                      {"addresses", {"10.0.0.2:3022"}}, {"ssh_public_key", keys_.ssh_line()},
                      {"tls_public_key", keys_.tls_b64()}});
  ASSERT_EQ(joined.status, 200) << joined.body;
  const std::string uuid = body(joined)["uuid"];
  auto r = call("POST", "/v1/tokens",
                forwarding(node_peer(uuid), "127.0.0.1:1", certificate_b64(std::string(kAdminName))),
                {{"roles", {"node"}}});
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(error_message(r).find("honoured only from the cluster's proxy"), std::string::npos);
  json e = audit_.last("access.denied");
  EXPECT_EQ(e["user"], uuid);
  EXPECT_EQ(e["caller"], "node");
  EXPECT_EQ(e["action"], "forward");
}

TEST_F(Forward, EvenAProxyCannotForwardTheAdminOrACertificateOfAnotherCA) {
  const api::Peer proxy = join_proxy();
  auto admin = call("GET", "/v1/users",
                    forwarding(proxy, "203.0.113.7:5", certificate_b64(std::string(kAdminName))));
  EXPECT_EQ(admin.status, 403) << admin.body;
  EXPECT_NE(error_message(admin).find("not taken through the proxy"), std::string::npos);
  EXPECT_EQ(audit_.last("access.denied")["action"], "forward");

  // Another cluster's CA (or a self-made one): the proxy's word is not enough.
  auto other = ca::ClusterCAs::load_or_create(dir_.file("other-ca"), "other", kStart).value();
  make_user("cat", {"editor"}, {"cat"});
  auto forged = call("GET", "/v1/users",
                     forwarding(proxy, "203.0.113.7:5", certificate_b64("cat", ca::TlsIdentityKind::user, &other)));
  EXPECT_EQ(forged.status, 401) << forged.body;
  EXPECT_NE(error_message(forged).find("forwarded client certificate is refused"), std::string::npos);
  // Bytes that are not a certificate, and a missing address.
  EXPECT_EQ(call("GET", "/v1/users", forwarding(proxy, "203.0.113.7:5", "bm90IGEgY2VydA==")).status, 401);
  EXPECT_EQ(call("GET", "/v1/users", forwarding(proxy, "", certificate_b64("cat"))).status, 400);
  EXPECT_EQ(call("GET", "/v1/users", forwarding(proxy, "1.2.3.4, 5.6.7.8", certificate_b64("cat"))).status, 400);
  // The genuine certificate of that user passes.
  EXPECT_EQ(call("GET", "/v1/users", forwarding(proxy, "203.0.113.7:5", certificate_b64("cat"))).status, 200);
}

}  // namespace
}  // namespace vigil::authsvc::test
