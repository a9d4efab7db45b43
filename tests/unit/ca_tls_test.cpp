// The TLS CA: identities issued to nodes and users, read back by the
// verifier and by the openssl tool; the CA pin; refusals of certificates that
// are expired, not yet valid, from another CA, tampered with, or used for the
// wrong purpose; and a real mutual-TLS handshake over loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "../support/shell.hpp"
#include "../support/temp_dir.hpp"
#include "ca/authority.hpp"
#include "ca/tls_ca.hpp"

namespace vigil::ca {
namespace {

using test::shell;
constexpr int64_t kNow = 1'800'000'000;
constexpr const char* kNodeUuid = "5e0c4b2a-8d7e-4f0e-9b1a-3c2d1e0f9a8b";

class TlsCaTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(make_cas(kNow)); }

  void make_cas(int64_t now) {
    auto ca = CertAuthority::create(CaType::tls, "purple", now);
    auto other = CertAuthority::create(CaType::tls, "purple", now);  // an attacker's, same name
    auto node_key = PrivateKey::generate(KeyAlgorithm::ecdsa_p256);
    auto user_key = PrivateKey::generate(KeyAlgorithm::ecdsa_p256);
    ASSERT_TRUE(ca && other && node_key && user_key);
    ca_.emplace(std::move(*ca));
    other_.emplace(std::move(*other));
    node_key_.emplace(std::move(*node_key));
    user_key_.emplace(std::move(*user_key));
  }

  TlsIssueRequest node_request(int64_t now) const {
    TlsIssueRequest r;
    r.identity.kind = TlsIdentityKind::node;
    r.identity.cluster = "purple";
    r.identity.name = kNodeUuid;
    r.identity.node_name = "node-1";
    r.identity.addresses = {"127.0.0.1", "node-1.example.com", "::1"};
    r.subject_public_key = node_key_->spki_der();
    r.now = now;
    r.ttl = 3600;
    return r;
  }

  TlsIssueRequest user_request(int64_t now) const {
    TlsIssueRequest r;
    r.identity.kind = TlsIdentityKind::user;
    r.identity.cluster = "purple";
    r.identity.name = "alice@example.com";
    r.identity.roles = {"access", "auditor"};
    r.identity.logins = {"root", "ec2-user"};
    r.subject_public_key = user_key_->spki_der();
    r.now = now;
    r.ttl = 600;
    return r;
  }

  TlsCertificate issue(const CertAuthority& ca, const TlsIssueRequest& r) const {
    auto cert = ca.issue_tls(r);
    EXPECT_TRUE(cert) << cert.error().message;
    return cert ? *cert : TlsCertificate(nullptr);
  }

  TlsVerification check(const TlsCertificate& cert, TlsUsage usage = TlsUsage::client,
                        int64_t now = kNow + 10) const {
    return verify_tls_peer(cert.get(), ca_->trusted_tls_certificates(), "purple", usage, now);
  }

  std::optional<CertAuthority> ca_, other_;
  std::optional<PrivateKey> node_key_, user_key_;
};

TEST_F(TlsCaTest, UserIdentityReadsBack) {
  auto cert = issue(*ca_, user_request(kNow));
  auto id = check(cert);
  ASSERT_TRUE(id) << id.refusal().error().message;
  EXPECT_EQ(id->kind, TlsIdentityKind::user);
  EXPECT_EQ(id->cluster, "purple");
  EXPECT_EQ(id->name, "alice@example.com");
  EXPECT_EQ(id->roles, (std::vector<std::string>{"access", "auditor"}));
  EXPECT_EQ(id->logins, (std::vector<std::string>{"root", "ec2-user"}));
  EXPECT_EQ(id->not_before, kNow - kClockSkew);
  EXPECT_EQ(id->not_after, kNow + 600);
  EXPECT_EQ(id->serial.size(), 32u);
}

TEST_F(TlsCaTest, NodeIdentityReadsBackForBothUsages) {
  auto cert = issue(*ca_, node_request(kNow));
  for (TlsUsage usage : {TlsUsage::server, TlsUsage::client}) {
    auto id = check(cert, usage);
    ASSERT_TRUE(id) << id.refusal().error().message;
    EXPECT_EQ(id->kind, TlsIdentityKind::node);
    EXPECT_EQ(id->name, kNodeUuid);
    EXPECT_EQ(id->node_name, "node-1");
    EXPECT_EQ(id->roles, (std::vector<std::string>{"node"}));
    EXPECT_TRUE(id->logins.empty());
    EXPECT_EQ(id->addresses, (std::vector<std::string>{"node-1", kNodeUuid, "127.0.0.1",
                                                       "node-1.example.com", "::1"}));
  }
}

TEST_F(TlsCaTest, OpensslReadsTheCertificatesAsDocumented) {
  ASSERT_NO_FATAL_FAILURE(make_cas(time(nullptr)));  // openssl verify checks against the clock
  test::TempDir dir;
  std::ofstream(dir.file("ca.pem")) << ca_->active().certificate->pem();
  std::ofstream(dir.file("user.pem")) << issue(*ca_, user_request(time(nullptr))).pem();
  std::ofstream(dir.file("node.pem")) << issue(*ca_, node_request(time(nullptr))).pem();
  auto user = shell("openssl x509 -in " + dir.file("user.pem") +
                    " -noout -subject -ext subjectAltName,extendedKeyUsage,keyUsage,basicConstraints"
                    " -nameopt RFC2253");
  ASSERT_EQ(user.status, 0) << user.output;
  for (const char* expected :
       {"subject=UID=ec2-user,UID=root,CN=alice@example.com,OU=auditor,OU=access,O=purple",
        "URI:vigil://purple/user/alice%40example.com", "TLS Web Client Authentication",
        "Digital Signature", "CA:FALSE"})
    EXPECT_NE(user.output.find(expected), std::string::npos) << expected << "\n" << user.output;
  EXPECT_EQ(user.output.find("Server Authentication"), std::string::npos) << user.output;
  auto node = shell("openssl x509 -in " + dir.file("node.pem") + " -noout -ext subjectAltName");
  EXPECT_NE(node.output.find(std::string("URI:vigil://purple/node/") + kNodeUuid + ", DNS:node-1, DNS:" +
                             kNodeUuid + ", IP Address:127.0.0.1, DNS:node-1.example.com, "
                             "IP Address:0:0:0:0:0:0:0:1"),
            std::string::npos)
      << node.output;
  // openssl's own chain check agrees with ours.
  auto verify = shell("openssl verify -x509_strict -purpose sslclient -CAfile " + dir.file("ca.pem") +
                      " " + dir.file("user.pem") + " " + dir.file("node.pem"));
  EXPECT_EQ(verify.status, 0) << verify.output;
  auto server = shell("openssl verify -purpose sslserver -CAfile " + dir.file("ca.pem") + " " +
                      dir.file("user.pem"));
  EXPECT_NE(server.status, 0) << server.output;  // a user certificate serves no TLS server
}

TEST_F(TlsCaTest, CaPinIsSha256OfTheSubjectPublicKeyInfo) {
  test::TempDir dir;
  std::ofstream(dir.file("ca.pem")) << ca_->active().certificate->pem();
  auto digest = shell("openssl x509 -in " + dir.file("ca.pem") +
                      " -noout -pubkey | openssl pkey -pubin -outform der | sha256sum");
  ASSERT_EQ(digest.status, 0) << digest.output;
  EXPECT_EQ(ca_->pin(), "sha256:" + digest.output.substr(0, 64));
  EXPECT_NE(ca_->pin(), other_->pin());
}

TEST_F(TlsCaTest, ExpiredAndNotYetValidAreRefused) {
  auto cert = issue(*ca_, user_request(kNow));
  EXPECT_EQ(check(cert, TlsUsage::client, kNow + 601).refusal().reason, TlsRefusalReason::expired);
  EXPECT_TRUE(check(cert, TlsUsage::client, kNow + 599));
  EXPECT_EQ(check(cert, TlsUsage::client, kNow - kClockSkew - 1).refusal().reason,
            TlsRefusalReason::not_yet_valid);
}

TEST_F(TlsCaTest, ACertificateFromAnotherCaWithTheSameNameIsRefused) {
  auto forged = issue(*other_, user_request(kNow));
  EXPECT_EQ(check(forged).refusal().reason, TlsRefusalReason::untrusted_ca);
  // A CA certificate presented as a peer is no identity, even a trusted one.
  EXPECT_EQ(check(*ca_->active().certificate).refusal().reason, TlsRefusalReason::wrong_usage);
  EXPECT_EQ(check(*other_->active().certificate).refusal().reason, TlsRefusalReason::wrong_usage);
}

TEST_F(TlsCaTest, ATamperedCertificateIsRefused) {
  const std::string der = issue(*ca_, user_request(kNow)).der();
  // "alice" -> "blice" in the subject's CN: the CA's signature breaks.
  std::string renamed = der;
  renamed[renamed.find("alice@example.com")] ^= 0x03;
  auto r = verify_tls_peer_der(renamed, ca_->trusted_tls_certificates(), "purple", TlsUsage::client,
                               kNow);
  EXPECT_EQ(r.refusal().reason, TlsRefusalReason::bad_signature) << r.refusal().message;
  // Any single flipped bit anywhere: never accepted.
  for (size_t i = 0; i < der.size(); ++i) {
    std::string t = der;
    t[i] ^= 0x01;
    EXPECT_FALSE(verify_tls_peer_der(t, ca_->trusted_tls_certificates(), "purple", TlsUsage::client,
                                     kNow))
        << "offset " << i;
  }
}

TEST_F(TlsCaTest, WrongUsageAndWrongClusterAreRefused) {
  auto user = issue(*ca_, user_request(kNow));
  EXPECT_EQ(check(user, TlsUsage::server).refusal().reason, TlsRefusalReason::wrong_usage);
  auto r = verify_tls_peer(user.get(), ca_->trusted_tls_certificates(), "green", TlsUsage::client, kNow);
  EXPECT_EQ(r.refusal().reason, TlsRefusalReason::wrong_cluster);
  EXPECT_EQ(r.refusal().error().kind(), Errc::unauthenticated);
  EXPECT_EQ(verify_tls_peer(nullptr, ca_->trusted_tls_certificates(), "purple", TlsUsage::client, kNow)
                .refusal()
                .reason,
            TlsRefusalReason::malformed_certificate);
}

TEST_F(TlsCaTest, BadRequestsAreRefusedAtIssue) {
  auto r = user_request(kNow);
  r.identity.roles = {"access", "node"};  // a user posing as a node
  auto cert = ca_->issue_tls(r);
  ASSERT_FALSE(cert);
  EXPECT_NE(cert.error().message.find("reserved for nodes"), std::string::npos);
  r = node_request(kNow);
  r.identity.addresses = {"node-2,DNS:auth.purple"};  // no injection through a name
  EXPECT_FALSE(ca_->issue_tls(r));
  r = user_request(kNow);
  r.identity.cluster = "green";
  EXPECT_FALSE(ca_->issue_tls(r));
  r = user_request(kNow);
  r.subject_public_key = "not a key";
  EXPECT_FALSE(ca_->issue_tls(r));
  r = user_request(kNow);
  r.identity.name = std::string(65, 'a');  // CN is at most 64 characters
  EXPECT_FALSE(ca_->issue_tls(r));
}

// Certificates our CA's key signed by hand (openssl x509 -req), not through
// issue_tls_certificate: what the verifier makes of identities that do not
// hold together.
TEST_F(TlsCaTest, HandMadeCertificatesWithoutAConsistentIdentityAreRefused) {
  ASSERT_NO_FATAL_FAILURE(make_cas(time(nullptr)));
  test::TempDir dir;
  std::ofstream(dir.file("ca.pem")) << ca_->active().certificate->pem();
  {
    std::ofstream key(dir.file("ca.key"));
    key << ca_->active().key.to_pem().value().view();
  }
  struct Case {
    const char* subject;
    const char* san;
    const char* why;
  };
  for (const Case& c : {
           Case{"/O=purple/CN=alice", "URI:vigil://purple/user/admin", "CN differs from the URI"},
           Case{"/O=green/CN=alice", "URI:vigil://purple/user/alice", "O differs from the URI"},
           Case{"/O=purple/CN=alice", "DNS:alice", "no identity URI"},
           Case{"/O=purple/CN=alice", "URI:vigil://purple/user/alice,URI:vigil://purple/user/bob",
                "two identity URIs"},
           Case{"/O=purple/OU=node/CN=alice", "URI:vigil://purple/user/alice", "a user with role node"},
           Case{"/O=purple/OU=access/CN=n1", "URI:vigil://purple/node/n1", "a node with a user role"},
           Case{"/O=purple/CN=a%41", "URI:vigil://purple/user/a%41", "a name spelled two ways"},
           Case{"/O=purple/CN=alice", "URI:vigil://purple/admin/alice", "an unknown kind"},
       }) {
    std::ofstream(dir.file("ext.cnf"))
        << "[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
           "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\n"
           "authorityKeyIdentifier=keyid:always\nsubjectAltName="
        << c.san << "\n";
    auto made = shell("cd " + dir.path() + " && openssl genpkey -algorithm ec -pkeyopt "
                      "ec_paramgen_curve:P-256 -out leaf.key && openssl req -new -key leaf.key "
                      "-subj '" + std::string(c.subject) + "' -out leaf.csr && openssl x509 -req "
                      "-in leaf.csr -CA ca.pem -CAkey ca.key -days 1 -extfile ext.cnf -extensions v3 "
                      "-out leaf.pem");
    ASSERT_EQ(made.status, 0) << made.output;
    std::ifstream in(dir.file("leaf.pem"));
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto cert = TlsCertificate::from_pem(pem);
    ASSERT_TRUE(cert);
    auto r = verify_tls_peer(cert->get(), ca_->trusted_tls_certificates(), "purple", TlsUsage::client,
                             time(nullptr));
    ASSERT_FALSE(r) << c.why;
    EXPECT_EQ(r.refusal().reason, TlsRefusalReason::bad_identity) << c.why << ": " << r.refusal().message;
  }
}

// One TLS connection over loopback: the server requires a client
// certificate; both sides check the other with verify_tls_peer.
struct Handshake {
  int accept_result = 0;
  long server_verify = 0;
  std::optional<TlsVerification> client_seen_by_server;
  int connect_result = 0;
  std::optional<TlsVerification> server_seen_by_client;
  std::string client_read;
};

Handshake handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx, const CertAuthority& ca) {
  Handshake h;
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(listen(listener, 1), 0);
  getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  const auto trusted = ca.trusted_tls_certificates();
  std::thread server([&] {
    int c = accept(listener, nullptr, nullptr);
    SSL* ssl = SSL_new(server_ctx);
    SSL_set_fd(ssl, c);
    h.accept_result = SSL_accept(ssl);
    h.server_verify = SSL_get_verify_result(ssl);
    if (X509* peer = SSL_get0_peer_certificate(ssl))
      h.client_seen_by_server = verify_tls_peer(peer, trusted, "purple", TlsUsage::client, time(nullptr));
    if (h.accept_result == 1 && h.client_seen_by_server && h.client_seen_by_server->ok()) {
      const std::string hello = "hello " + h.client_seen_by_server->value().name;
      SSL_write(ssl, hello.data(), static_cast<int>(hello.size()));
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(c);
  });
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  SSL* ssl = SSL_new(client_ctx);
  SSL_set_fd(ssl, fd);
  SSL_set1_host(ssl, "node-1");  // the node's name, a DNS name in its certificate
  h.connect_result = SSL_connect(ssl);
  if (h.connect_result == 1) {
    h.server_seen_by_client = verify_tls_peer(SSL_get0_peer_certificate(ssl), trusted, "purple",
                                              TlsUsage::server, time(nullptr));
    char buf[256];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) h.client_read.append(buf, static_cast<size_t>(n));
  }
  SSL_free(ssl);
  close(fd);
  server.join();
  close(listener);
  ERR_clear_error();
  return h;
}

class MutualTls : public TlsCaTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(make_cas(time(nullptr)));
    node_cert_.emplace(issue(*ca_, node_request(time(nullptr))));
    auto server = make_mutual_tls_context(TlsUsage::server, *node_key_, *node_cert_,
                                          ca_->trusted_tls_certificates());
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
  }
  SslCtxPtr client_with(const CertAuthority& ca) {
    auto cert = issue(ca, user_request(time(nullptr)));
    client_cert_.emplace(cert);
    auto client = make_mutual_tls_context(TlsUsage::client, *user_key_, cert,
                                          ca_->trusted_tls_certificates());
    EXPECT_TRUE(client) << client.error().message;
    return client ? std::move(*client) : nullptr;
  }
  std::optional<TlsCertificate> node_cert_, client_cert_;
  SslCtxPtr server_;
};

TEST_F(MutualTls, NodeAndUserKnowEachOther) {
  SslCtxPtr client = client_with(*ca_);
  Handshake h = handshake(server_.get(), client.get(), *ca_);
  ASSERT_EQ(h.accept_result, 1);
  ASSERT_EQ(h.connect_result, 1);
  ASSERT_TRUE(h.client_seen_by_server && h.client_seen_by_server->ok());
  EXPECT_EQ(h.client_seen_by_server->value().name, "alice@example.com");
  EXPECT_EQ(h.client_seen_by_server->value().logins, (std::vector<std::string>{"root", "ec2-user"}));
  ASSERT_TRUE(h.server_seen_by_client && h.server_seen_by_client->ok());
  EXPECT_EQ(h.server_seen_by_client->value().kind, TlsIdentityKind::node);
  EXPECT_EQ(h.server_seen_by_client->value().name, kNodeUuid);
  EXPECT_EQ(h.client_read, "hello alice@example.com");
}

TEST_F(MutualTls, AClientCertificateFromAnotherCaIsRefusedByTheServer) {
  SslCtxPtr client = client_with(*other_);
  Handshake h = handshake(server_.get(), client.get(), *ca_);
  EXPECT_NE(h.accept_result, 1);
  EXPECT_EQ(h.server_verify, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_FALSE(h.client_seen_by_server);  // OpenSSL keeps no refused peer certificate
  EXPECT_EQ(h.client_read, "");
  // The certificate the client offered, checked by hand: another CA's.
  EXPECT_EQ(check(*client_cert_, TlsUsage::client, time(nullptr)).refusal().reason,
            TlsRefusalReason::untrusted_ca);
}

TEST_F(MutualTls, AClientWithoutACertificateIsRefused) {
  SslCtxPtr client(SSL_CTX_new(TLS_client_method()));
  X509_STORE_add_cert(SSL_CTX_get_cert_store(client.get()), ca_->active().certificate->get());
  Handshake h = handshake(server_.get(), client.get(), *ca_);
  EXPECT_NE(h.accept_result, 1);
  EXPECT_FALSE(h.client_seen_by_server);
  EXPECT_EQ(h.client_read, "");
}

}  // namespace
}  // namespace vigil::ca
