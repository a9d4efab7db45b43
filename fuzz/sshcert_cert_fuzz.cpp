// A client's certificate blob through authorize_blob(), as the SSH node
// calls it before any login, against a fixed set of trusted CAs.
//
// Input: one byte of choices, then the certificate blob.
//   bits 7,0  what happens to a blob that parses:
//             00 nothing;
//             01 re-signed: its CA key and signature become the fuzz CA's
//                (Ed25519), so the checks that follow a valid signature
//                (validity, principals, critical options, source-address,
//                the recording extension) are reached too;
//             10 / 11 its CA key becomes the trusted ECDSA P-256 / RSA key
//                (public halves only), its signature bytes are kept: the
//                ECDSA and RSA signature checks read them
//   bits 1-2  the login asked for; bits 3-4 the client's address;
//   bits 5-6  the time of the login
#include <openssl/evp.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "sshcert/authorize.hpp"
#include "sshcert/keys.hpp"
#include "sshcert/trusted_cas.hpp"
#include "sshcert/wire.hpp"
#include "check.hpp"

using namespace vigil::sshcert;
using vigil::fuzz::kMaxMessage;

namespace {

constexpr std::string_view kOtherCAs =
    "ecdsa-sha2-nistp256 "
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBIVnqWlbPwy6CYQPo1Cp2aQhNxulKsCxTrVoQtqJ"
    "VCfqrH5CRED44H4EAOqRtWyC1mh7LakWk5wZGRO3KuSsyzg= fuzz-ecdsa-ca\n"
    "ssh-rsa "
    "AAAAB3NzaC1yc2EAAAADAQABAAABAQDB4foRxLo3Aqh9C6MzdaGs3xmmAbGcwtD4RcoWAo4ei3nTixmrt3gdOjOeVSzj"
    "d626e/7kf9wlGz+XYTKs5hPOUmDZbquCGXsEvL166b8K2qpRenWQhybmRephnwDIlVr0SDiONGyqFyeYVAiT0DM6VZ/Q1n"
    "xcx+ekzmqQHEgTuSLTrtiJ1PwvdWhFIKWwdPGcbVxHd+kKsg1HYk0c22yPChADnyEVMHouz3HU34J5Q1sGR9cG1DmPGLA"
    "/S1uFKXaELHXmT6geGH9uLBxNIAKd/ZAvNq6mkR+WP3FAzwnGEdDyxfv5sEntA0wDITBfLicDPjZ3Khm0SG7kLcxCeFWN"
    " fuzz-rsa-ca\n";

// The fuzz CA's Ed25519 private key: a fixed seed, so every run (and every
// saved reproducer) signs the same way.
constexpr unsigned char kCaSeed[32] = {'v', 'i', 'g', 'i', 'l', '-', 'f', 'u', 'z', 'z', '-',
                                       'c', 'a', '-', 's', 'e', 'e', 'd', 0,   1,   2,   3,
                                       4,   5,   6,   7,   8,   9,   10,  11,  12,  13};

struct Fixture {
  EVP_PKEY* ca = nullptr;
  std::string ca_blob;  // the fuzz CA's public key, wire form
  std::string ecdsa_blob, rsa_blob;
  TrustedCAs cas;
};

std::string wire_string(std::string_view s) {
  WireWriter w;
  w.bytes(s);
  return w.data();
}

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    f.ca = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, kCaSeed, sizeof kCaSeed);
    FUZZ_CHECK(f.ca, "cannot make the fuzz CA key");
    unsigned char pub[32];
    size_t pub_len = sizeof pub;
    FUZZ_CHECK(EVP_PKEY_get_raw_public_key(f.ca, pub, &pub_len) == 1, "fuzz CA public key");
    f.ca_blob = wire_string("ssh-ed25519") +
                wire_string({reinterpret_cast<const char*>(pub), pub_len});
    const std::string text = "ssh-ed25519 " + base64_encode(f.ca_blob) + " fuzz-ed25519-ca\n" +
                             std::string(kOtherCAs);
    auto cas = TrustedCAs::parse(text, "fuzz-cas");
    FUZZ_CHECK(cas, cas ? "" : cas.error().message);
    f.cas = std::move(*cas);
    f.ecdsa_blob = f.cas.cas()[1].key.blob;
    f.rsa_blob = f.cas.cas()[2].key.blob;
    return f;
  }();
  return f;
}

// The certificate's signed part up to its CA key, which is the last signed
// field: a wire string of its (canonical) blob.
std::string before_ca_key(const Certificate& cert) {
  const size_t key_field = 4 + cert.signature_key.blob.size();
  return std::string(cert.signed_data().substr(0, cert.signed_length - key_field));
}

// The certificate claiming another CA key, its signature left as it was.
std::string with_ca_key(const Certificate& cert, const std::string& ca_blob) {
  return before_ca_key(cert) + wire_string(ca_blob) + cert.blob.substr(cert.signed_length);
}

// The certificate with its CA key and signature replaced by the fuzz CA's.
std::string resign(const Certificate& cert, const Fixture& f) {
  std::string out = before_ca_key(cert) + wire_string(f.ca_blob);
  unsigned char sig[64];
  size_t sig_len = sizeof sig;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  FUZZ_CHECK(ctx && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, f.ca) == 1 &&
                 EVP_DigestSign(ctx, sig, &sig_len, reinterpret_cast<const unsigned char*>(out.data()),
                                out.size()) == 1,
             "Ed25519 signing failed");
  EVP_MD_CTX_free(ctx);
  out += wire_string(wire_string("ssh-ed25519") +
                     wire_string({reinterpret_cast<const char*>(sig), sig_len}));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 1) return 0;
  const Fixture& f = fixture();
  const uint8_t choices = bytes[0];
  std::string blob(reinterpret_cast<const char*>(bytes + 1), size - 1);

  static const std::string kLogins[] = {"alice", "root", "bob", ""};
  static const std::string kAddresses[] = {"192.0.2.7", "2001:db8::1", "::ffff:10.1.2.3",
                                           "not an address"};
  static const int64_t kNows[] = {1'700'000'000, 0, std::numeric_limits<int64_t>::max(), -1};
  const std::string& login = kLogins[(choices >> 1) & 3];
  const std::string& address = kAddresses[(choices >> 3) & 3];
  const int64_t now = kNows[(choices >> 5) & 3];

  bool resigned = false;
  if (choices & 0x81) {
    if (auto cert = parse_certificate(blob)) {
      switch (choices & 0x81) {
        case 0x01: blob = resign(*cert, f), resigned = true; break;
        case 0x80: blob = with_ca_key(*cert, f.ecdsa_blob); break;
        case 0x81: blob = with_ca_key(*cert, f.rsa_blob); break;
      }
    }
  }
  AuthResult result = authorize_blob(blob, f.cas, login, now, address);
  if (result) {
    FUZZ_CHECK(!result->user.empty(), "an identity has a user");
    FUZZ_CHECK(result->login == login, "the identity is for the login asked");
    bool listed = false;
    for (const auto& p : result->principals) listed = listed || p == login;
    FUZZ_CHECK(listed, "the login is among the principals");
    FUZZ_CHECK(result->ca_fingerprint.starts_with("SHA256:"), "a CA fingerprint");
  } else {
    const Refusal& refusal = result.refusal();
    FUZZ_CHECK(!refusal.message.empty(), "a refusal says why");
    FUZZ_CHECK(refusal.message.size() < kMaxMessage, refusal.message.substr(0, 300));
    if (resigned)
      FUZZ_CHECK(refusal.reason != RefusalReason::untrusted_ca &&
                     refusal.reason != RefusalReason::bad_signature &&
                     refusal.reason != RefusalReason::malformed_certificate,
                 "a certificate re-signed by a trusted CA passes the CA checks: " +
                     refusal.message);
  }
  return 0;
}
