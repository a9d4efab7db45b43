// A peer's certificate (DER) through verify_tls_peer_der(), as the auth
// service and the nodes will call it on whatever a TLS peer sends, against a
// fixed TLS CA of cluster "fuzz".
//
// Input: one byte of choices, then the certificate's DER.
//   bit 0     a certificate that parses is re-signed by the fuzz CA (issuer,
//             validity around the check's time and authority key id made to
//             fit), so the identity reading that follows a valid chain (URIs,
//             percent-decoding, subject cross-checks, roles) is reached
//   bit 1     the usage checked: client or server
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "ca/key.hpp"
#include "ca/tls_ca.hpp"
#include "check.hpp"
#include "fixed_key.hpp"

using namespace vigil::ca;
using vigil::fuzz::kMaxMessage;

namespace {

constexpr int64_t kNow = 1'800'000'000;
// The fuzz CA's Ed25519 key: a fixed seed, so every run signs the same way.
constexpr unsigned char kCaSeed[32] = {'v', 'i', 'g', 'i', 'l', '-', 't', 'l', 's', '-', 'f',
                                       'u', 'z', 'z', '-', 'c', 'a', 0,   1,   2,   3,   4,
                                       5,   6,   7,   8,   9,   10,  11,  12,  13,  14};

struct Fixture {
  std::optional<PrivateKey> key;
  std::optional<TlsCertificate> cert;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    PrivateKey key = vigil::fuzz::fixed_ed25519_key(kCaSeed);
    auto cert = make_tls_ca_certificate(key, "fuzz", kNow - 86400, 10 * 86400);
    FUZZ_CHECK(cert, cert ? "" : cert.error().message);
    f.key.emplace(std::move(key));
    f.cert.emplace(std::move(*cert));
    return f;
  }();
  return f;
}

// The certificate as the fuzz CA would have signed it; empty if OpenSSL
// cannot re-sign it.
std::string resign(std::string_view der, const Fixture& f) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (!x) return {};
  std::string out;
  for (int i; (i = X509_get_ext_by_NID(x, NID_authority_key_identifier, -1)) >= 0;)
    X509_EXTENSION_free(X509_delete_ext(x, i));
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, f.cert->get(), x, nullptr, nullptr, 0);
  X509_EXTENSION* aki = X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always");
  if (aki && X509_add_ext(x, aki, -1) == 1 &&
      X509_set_issuer_name(x, X509_get_subject_name(f.cert->get())) == 1 &&
      ASN1_TIME_set(X509_getm_notBefore(x), kNow - 100) && ASN1_TIME_set(X509_getm_notAfter(x), kNow + 100) &&
      X509_sign(x, f.key->get(), nullptr) > 0) {
    unsigned char* buf = nullptr;
    const int len = i2d_X509(x, &buf);
    if (len > 0) out.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
    OPENSSL_free(buf);
  }
  X509_EXTENSION_free(aki);
  X509_free(x);
  ERR_clear_error();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 1) return 0;
  const Fixture& f = fixture();
  const uint8_t choices = bytes[0];
  std::string der(reinterpret_cast<const char*>(bytes + 1), size - 1);
  if (choices & 1) {
    std::string resigned = resign(der, f);
    if (!resigned.empty()) der = std::move(resigned);
  }
  const TlsUsage usage = choices & 2 ? TlsUsage::server : TlsUsage::client;
  TlsVerification result = verify_tls_peer_der(der, {*f.cert}, "fuzz", usage, kNow);
  if (!result) {
    FUZZ_CHECK(result.refusal().message.size() <= kMaxMessage, "refusal message too long");
    return 0;
  }
  const TlsIdentity& id = result.value();
  FUZZ_CHECK(id.cluster == "fuzz", "accepted an identity of cluster " + id.cluster);
  FUZZ_CHECK(!id.name.empty(), "accepted an identity without a name");
  const bool node_role = std::find(id.roles.begin(), id.roles.end(), kNodeRole) != id.roles.end();
  if (id.kind == TlsIdentityKind::node) {
    // "node" first, then only the service roles a node may hold.
    bool service_roles = !id.roles.empty() && id.roles.front() == kNodeRole;
    for (size_t i = 1; service_roles && i < id.roles.size(); ++i)
      service_roles = id.roles[i] == kAuthRole || id.roles[i] == kProxyRole;
    FUZZ_CHECK(service_roles && id.logins.empty(), "a node identity with user roles or logins");
  }
  else
    FUZZ_CHECK(!node_role, "a user identity holding the node role");
  return 0;
}
