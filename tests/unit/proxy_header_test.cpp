// The proxy's signed PROXY v2 header (ca/proxy_header.hpp): what a node
// believes about where a proxied connection came from. Made by the
// proxy's identity and read back; every forgery an attacker on the network
// or on another node could try is refused with its reason; every cut of a
// header is an error, never a crash; replays are caught by the nonce cache.
#include <gtest/gtest.h>

#include <optional>

#include "ca/authority.hpp"
#include "ca/proxy_header.hpp"
#include "ca/tls_ca.hpp"

namespace vigil::ca {
namespace {

constexpr int64_t kNow = 1'800'000'000;
constexpr const char* kNode = "5e0c4b2a-8d7e-4f0e-9b1a-3c2d1e0f9a8b";
constexpr const char* kOtherNode = "0b9a8f7e-1d2c-4b3a-9e8d-7c6b5a4f3e2d";

Nonce fresh() {
  auto n = random_nonce();
  EXPECT_TRUE(n);
  return n ? n.value() : Nonce{};
}

class ProxyHeaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = CertAuthority::create(CaType::tls, "purple", kNow - 100);
    auto other = CertAuthority::create(CaType::tls, "purple", kNow - 100);  // same name, not ours
    ASSERT_TRUE(ca && other);
    ca_.emplace(std::move(*ca));
    other_.emplace(std::move(*other));
    for (auto* k : {&proxy_key_, &node_key_, &auth_key_}) {
      auto key = PrivateKey::generate(KeyAlgorithm::ecdsa_p256);
      ASSERT_TRUE(key);
      k->emplace(std::move(*key));
    }
    proxy_cert_ = issue(*ca_, "proxy-uuid", {"proxy"}, *proxy_key_);
    auth_cert_ = issue(*ca_, "auth-uuid", {"auth"}, *auth_key_);
    node_cert_ = issue(*ca_, kOtherNode, {}, *node_key_);
    stranger_cert_ = issue(*other_, "proxy-uuid", {"proxy"}, *proxy_key_);
  }

  TlsCertificate issue(const CertAuthority& ca, const std::string& name,
                       std::vector<std::string> roles, const PrivateKey& key) const {
    TlsIssueRequest r;
    r.identity.kind = TlsIdentityKind::node;
    r.identity.cluster = "purple";
    r.identity.name = name;
    r.identity.node_name = "host-" + name.substr(0, 4);
    r.identity.roles = std::move(roles);
    r.subject_public_key = key.spki_der();
    r.now = kNow - 60;
    r.ttl = 3600;
    auto cert = ca.issue_tls(r);
    EXPECT_TRUE(cert) << cert.error().message;
    return cert ? *cert : TlsCertificate(nullptr);
  }

  ProxyOrigin origin(std::string ip = "203.0.113.9", uint16_t port = 51234) const {
    ProxyOrigin o;
    o.client_ip = std::move(ip);
    o.client_port = port;
    o.node_uuid = kNode;
    o.issued_at = kNow;
    o.nonce = fresh();
    return o;
  }

  std::string header(const ProxyOrigin& o, const PrivateKey& key, const TlsCertificate& cert) const {
    auto h = sign_proxy_header(o, key, cert);
    EXPECT_TRUE(h) << h.error().message;
    return h ? *h : std::string();
  }
  std::string good(const ProxyOrigin& o) const { return header(o, *proxy_key_, proxy_cert_); }

  Result<VerifiedOrigin> verify(std::string_view h, int64_t now = kNow + 5,
                                std::string_view node = kNode) const {
    trusted_ = ca_->trusted_tls_certificates();
    return verify_proxy_header(h, HeaderCheck{trusted_, "purple", node, now});
  }

  std::optional<CertAuthority> ca_, other_;
  std::optional<PrivateKey> proxy_key_, node_key_, auth_key_;
  TlsCertificate proxy_cert_{nullptr}, auth_cert_{nullptr}, node_cert_{nullptr},
      stranger_cert_{nullptr};
  mutable std::vector<TlsCertificate> trusted_;
};

TEST_F(ProxyHeaderTest, TheProxysHeaderIsBelievedWithItsClientsAddress) {
  auto o = origin();
  std::string h = good(o);
  // A PROXY v2 header any reader of the format recognises.
  ASSERT_GE(h.size(), 16u);
  EXPECT_EQ(h.substr(0, 12), std::string(kProxyV2Signature));
  EXPECT_EQ(static_cast<uint8_t>(h[12]), 0x21);  // version 2, PROXY
  EXPECT_EQ(static_cast<uint8_t>(h[13]), 0x11);  // TCP over IPv4
  EXPECT_LE(h.size(), kMaxProxyHeader);
  auto v = verify(h);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->origin.client_ip, "203.0.113.9");
  EXPECT_EQ(v->origin.client_port, 51234);
  EXPECT_EQ(v->origin.client_addr(), "203.0.113.9:51234");
  EXPECT_EQ(v->origin.nonce, o.nonce);
  EXPECT_EQ(v->proxy.name, "proxy-uuid");
  // The front end's reading (no checks) says the same.
  auto read = read_proxy_origin(h);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->client_addr(), "203.0.113.9:51234");

  // IPv6 clients, and the auth service's own identity (the proxy in its
  // process) too.
  auto v6 = verify(header(origin("2001:db8::7", 443), *auth_key_, auth_cert_));
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(v6->origin.client_addr(), "[2001:db8::7]:443");
  EXPECT_EQ(v6->proxy.name, "auth-uuid");
}

TEST_F(ProxyHeaderTest, AChangedAddressPortOrNodeBreaksTheSignature) {
  std::string h = good(origin());
  // The client's address is the 4 bytes after the 16 fixed ones; its port
  // after both addresses.
  for (size_t at : {16u, 19u, 24u, 25u}) {
    std::string forged = h;
    forged[at] = static_cast<char>(forged[at] ^ 0x01);
    auto v = verify(forged);
    ASSERT_FALSE(v) << "byte " << at << " changed and still believed";
    EXPECT_EQ(v.error().kind(), Errc::unauthenticated);
    EXPECT_NE(v.error().message.find("signature does not verify"), std::string::npos)
        << v.error().message;
  }
  // Any byte of the signed fields (time, nonce, uuid, certificate) or of the
  // signature itself: never believed.
  for (size_t at = 31; at < h.size(); at += 7) {
    std::string forged = h;
    forged[at] = static_cast<char>(forged[at] ^ 0x40);
    EXPECT_FALSE(verify(forged)) << "byte " << at << " changed and still believed";
  }
}

TEST_F(ProxyHeaderTest, OnlyTheClustersProxyMaySignIt) {
  // Another node of the cluster (a host an attacker may own) cannot speak
  // for the proxy.
  auto by_node = verify(header(origin(), *node_key_, node_cert_));
  ASSERT_FALSE(by_node);
  EXPECT_EQ(by_node.error().kind(), Errc::unauthenticated);
  EXPECT_NE(by_node.error().message.find("not the cluster's proxy"), std::string::npos)
      << by_node.error().message;
  // A CA of the same name that is not this cluster's.
  auto stranger = verify(header(origin(), *proxy_key_, stranger_cert_));
  ASSERT_FALSE(stranger);
  EXPECT_NE(stranger.error().message.find("untrusted_ca"), std::string::npos)
      << stranger.error().message;
  // The proxy's certificate with another key's signature.
  auto wrong_key = verify(header(origin(), *node_key_, proxy_cert_));
  ASSERT_FALSE(wrong_key);
  EXPECT_NE(wrong_key.error().message.find("signature does not verify"), std::string::npos);
  // An expired proxy certificate.
  auto late = verify(good(origin()), kNow + 7200);
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().message.find("expired"), std::string::npos) << late.error().message;
}

TEST_F(ProxyHeaderTest, AHeaderIsForOneNodeAndAShortTime) {
  auto o = origin();
  std::string h = good(o);
  auto elsewhere = verify(h, kNow + 5, kOtherNode);
  ASSERT_FALSE(elsewhere);
  EXPECT_NE(elsewhere.error().message.find("made for node " + std::string(kNode)),
            std::string::npos)
      << elsewhere.error().message;
  EXPECT_TRUE(verify(h, kNow + kProxyHeaderMaxAge));
  auto stale = verify(h, kNow + kProxyHeaderMaxAge + 1);
  ASSERT_FALSE(stale);
  EXPECT_NE(stale.error().message.find("check the clocks"), std::string::npos);
  EXPECT_FALSE(verify(h, kNow - kProxyHeaderMaxAge - 1));
}

TEST_F(ProxyHeaderTest, TheNonceCacheRefusesAReplayAndForgetsOnlyWhatAgeRefuses) {
  NonceCache cache(3);
  Nonce a = fresh(), b = fresh(), c = fresh(), d = fresh();
  EXPECT_EQ(cache.use(a, kNow, kNow), NonceCache::Use::first);
  EXPECT_EQ(cache.use(a, kNow, kNow + 1), NonceCache::Use::replay);
  // Still a replay up to the last second its header is believed.
  EXPECT_EQ(cache.use(a, kNow, kNow + kProxyHeaderMaxAge), NonceCache::Use::replay);
  EXPECT_EQ(cache.use(b, kNow, kNow), NonceCache::Use::first);
  EXPECT_EQ(cache.use(c, kNow, kNow), NonceCache::Use::first);
  // Full of live nonces: refused, not forgotten.
  EXPECT_EQ(cache.use(d, kNow, kNow + 1), NonceCache::Use::full);
  EXPECT_EQ(cache.size(), 3u);
  // Once no header of that age can be believed, the room is freed.
  EXPECT_EQ(cache.use(d, kNow + 200, kNow + 200), NonceCache::Use::first);
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(ProxyHeaderTest, TheFirstBytesTellAHeaderFromAnSshBanner) {
  auto none = probe_proxy_header("SSH-2.0-OpenSSH_9.2p1\r\n");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->start, HeaderStart::none);
  std::string h = good(origin());
  for (size_t n = 1; n < kProxyHeaderFixed; ++n) {
    auto p = probe_proxy_header(std::string_view(h).substr(0, n));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->start, HeaderStart::need_more) << n;
  }
  auto whole = probe_proxy_header(h);
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->start, HeaderStart::header);
  EXPECT_EQ(whole->length, h.size());
  // A length over what a node reads is refused before it is read.
  std::string big = h.substr(0, 16);
  big[14] = '\xff';
  big[15] = '\xff';
  auto over = probe_proxy_header(big);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().kind(), Errc::invalid_argument);
}

TEST_F(ProxyHeaderTest, EveryCutAndEveryMalformedHeaderIsAnErrorNotACrash) {
  std::string h = good(origin());
  for (size_t n = 0; n < h.size(); ++n) {
    std::string cut = h.substr(0, n);
    if (n >= 16) {  // keep the length field honest so the cut is inside the body
      cut[14] = static_cast<char>((n - 16) >> 8);
      cut[15] = static_cast<char>((n - 16) & 0xff);
    }
    auto v = verify(cut);
    ASSERT_FALSE(v) << "a header cut at " << n << " was believed";
    EXPECT_TRUE(v.error().kind() == Errc::invalid_argument ||
                v.error().kind() == Errc::unauthenticated)
        << v.error().message;
    EXPECT_FALSE(read_proxy_origin(cut)) << n;
  }
  // A plain PROXY header, as haproxy sends it: no Vigil TLV, not believed.
  std::string plain = h.substr(0, 16 + 12);
  plain[14] = 0;
  plain[15] = 12;
  auto v = verify(plain);
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().message.find("no Vigil origin TLV"), std::string::npos) << v.error().message;
  // Other version/command, family, TLV type, trailing bytes.
  auto with = [&](size_t at, char byte) {
    std::string m = h;
    m[at] = byte;
    return verify(m);
  };
  EXPECT_NE(with(12, 0x20).error().message.find("version/command"), std::string::npos);
  EXPECT_NE(with(13, 0x31).error().message.find("address family"), std::string::npos);
  EXPECT_NE(with(28, '\xe1').error().message.find("TLV of type 225"), std::string::npos);
  std::string longer = h + "x";
  size_t body = longer.size() - 16;
  longer[14] = static_cast<char>(body >> 8);
  longer[15] = static_cast<char>(body & 0xff);
  EXPECT_FALSE(verify(longer));
  // Not an IP address, or no node: nothing is signed.
  auto bad = origin("proxy.example.com");
  EXPECT_FALSE(sign_proxy_header(bad, *proxy_key_, proxy_cert_));
  auto no_node = origin();
  no_node.node_uuid.clear();
  EXPECT_FALSE(sign_proxy_header(no_node, *proxy_key_, proxy_cert_));
}

}  // namespace
}  // namespace vigil::ca
