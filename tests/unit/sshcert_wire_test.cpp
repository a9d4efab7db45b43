// Hand-built key and certificate blobs, one wrong field at a time: each is
// a clear error naming the field. Also base64, key lines and addresses.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <limits>
#include <set>

#include "sshcert/address.hpp"
#include "sshcert/authorize.hpp"
#include "sshcert/keys.hpp"
#include "sshcert/signature.hpp"
#include "sshcert/wire.hpp"

namespace vigil::sshcert {
namespace {

// Wire encoding by hand, independent of the code under test.
struct Blob {
  std::string s;
  Blob& u32(uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) s += static_cast<char>((v >> shift) & 0xff);
    return *this;
  }
  Blob& u64(uint64_t v) {
    u32(static_cast<uint32_t>(v >> 32));
    return u32(static_cast<uint32_t>(v));
  }
  Blob& str(std::string_view v) {
    u32(static_cast<uint32_t>(v.size()));
    s += v;
    return *this;
  }
  operator std::string() const { return s; }
  operator std::string_view() const { return s; }
};

std::string ed25519_key(char fill = 'k') {
  return Blob().str("ssh-ed25519").str(std::string(32, fill));
}

std::string names(std::initializer_list<std::string_view> list) {
  Blob b;
  for (auto n : list) b.str(n);
  return b;
}

// A well-formed ed25519 user certificate; tests change one field.
struct CertFields {
  std::string type = "ssh-ed25519-cert-v01@openssh.com";
  std::string nonce = std::string(32, 'n');
  std::string key = std::string(32, 'u');
  uint64_t serial = 7;
  uint32_t cert_type = 1;
  std::string key_id = "alice";
  std::string principals = names({"alice", "root"});
  uint64_t valid_after = 100;
  uint64_t valid_before = kForever;
  std::string critical = Blob().str("force-command").str(Blob().str("true").s);
  std::string extensions = Blob().str("permit-pty").str("");
  std::string reserved;
  std::string signature_key = ed25519_key('c');
  std::string signature = Blob().str("ssh-ed25519").str(std::string(64, 's'));

  // Everything the CA signs: all but the signature.
  std::string encode_signed() const {
    return Blob()
        .str(type).str(nonce).str(key).u64(serial).u32(cert_type).str(key_id).str(principals)
        .u64(valid_after).u64(valid_before).str(critical).str(extensions).str(reserved)
        .str(signature_key);
  }
  std::string encode() const { return Blob{encode_signed()}.str(signature); }
};

// An Ed25519 CA made with OpenSSL, to sign certificates that ssh-keygen
// would refuse to make (option values it checks, odd encodings).
class TestCa {
 public:
  TestCa() : key_(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")) {
    unsigned char pub[32];
    size_t size = sizeof pub;
    EXPECT_EQ(EVP_PKEY_get_raw_public_key(key_, pub, &size), 1);
    public_blob_ = Blob().str("ssh-ed25519").str({reinterpret_cast<char*>(pub), size});
  }
  ~TestCa() { EVP_PKEY_free(key_); }

  std::string sign(CertFields f, std::string_view algorithm = "ssh-ed25519") const {
    f.signature_key = public_blob_;
    const std::string data = f.encode_signed();
    unsigned char sig[64];
    size_t size = sizeof sig;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EXPECT_EQ(EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_), 1);
    EXPECT_EQ(EVP_DigestSign(ctx, sig, &size, reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()),
              1);
    EVP_MD_CTX_free(ctx);
    f.signature = Blob().str(algorithm).str({reinterpret_cast<char*>(sig), size});
    return f.encode();
  }

  TrustedCAs trusted() const {
    auto cas = TrustedCAs::parse("ssh-ed25519 " + base64_encode(public_blob_) + " test-ca\n",
                                 "test-ca.pub");
    EXPECT_TRUE(cas) << cas.error().message;
    return cas ? *cas : TrustedCAs{};
  }

 private:
  EVP_PKEY* key_;
  std::string public_blob_;
};

std::string error_of(const CertFields& f) {
  auto cert = parse_certificate(f.encode());
  return cert ? "(parsed)" : cert.error().message;
}

TEST(AuthWire, WellFormedCertificateParses) {
  CertFields f;
  auto cert = parse_certificate(f.encode());
  ASSERT_TRUE(cert) << cert.error().message;
  EXPECT_EQ(cert->key.blob, Blob().str("ssh-ed25519").str(f.key).s);
  EXPECT_EQ(cert->key_id, "alice");
  EXPECT_EQ(cert->principals, (std::vector<std::string>{"alice", "root"}));
  EXPECT_EQ(cert->critical_options[0].data, Blob().str("true").s);
  EXPECT_EQ(cert->signature_key.blob, f.signature_key);
  EXPECT_EQ(cert->signature.algorithm, "ssh-ed25519");
  const std::string blob = f.encode();
  EXPECT_EQ(cert->signed_length, blob.size() - (4 + f.signature.size()));
}

TEST(AuthWire, EachBrokenFieldIsNamed) {
  CertFields f;
  f.type = "ssh-dss-cert-v01@openssh.com";
  EXPECT_EQ(error_of(f), "certificate: unknown certificate type 'ssh-dss-cert-v01@openssh.com'");
  f = CertFields();
  f.type = "ssh-ed25519";
  EXPECT_EQ(error_of(f), "certificate: is a plain public key, not a certificate");
  f = CertFields();
  f.key = std::string(31, 'u');
  EXPECT_EQ(error_of(f), "certificate: ed25519 key: is 31 bytes, not 32");
  f = CertFields();
  f.cert_type = 3;
  EXPECT_EQ(error_of(f), "certificate: type: 3 is neither user (1) nor host (2)");
  f = CertFields();
  f.key_id = "al\xffice";
  EXPECT_EQ(error_of(f), "certificate: key id: is not valid UTF-8 text (or holds a NUL byte)");
  f = CertFields();
  f.key_id = std::string("al\0ice", 6);
  EXPECT_EQ(error_of(f), "certificate: key id: is not valid UTF-8 text (or holds a NUL byte)");
  f = CertFields();
  f.principals = names({"alice", "\xc0\xaf"});  // an overlong '/'
  EXPECT_EQ(error_of(f),
            "certificate: valid principals: principal 2: is not valid UTF-8 text (or holds a "
            "NUL byte)");
  f = CertFields();
  f.principals = names({"alice", ""});
  EXPECT_EQ(error_of(f), "certificate: valid principals: principal 2: is empty");
  f = CertFields();
  f.principals = names({"alice"}) + std::string(3, '\0');
  EXPECT_EQ(error_of(f),
            "certificate: valid principals: principal 2: needs 4 bytes at offset 9 but only 3 "
            "are left");
  f = CertFields();
  f.extensions = Blob().str("permit-pty").str("").str("permit-pty").str("");
  EXPECT_EQ(error_of(f), "certificate: extensions: 'permit-pty': appears twice");
  f = CertFields();
  f.critical = Blob().str("force-command");
  EXPECT_EQ(error_of(f),
            "certificate: critical options: data of 'force-command': needs 4 bytes at offset 17 "
            "but only 0 are left");
  f = CertFields();
  f.signature_key = Blob().str("ssh-ed25519-cert-v01@openssh.com").str("x");
  EXPECT_EQ(error_of(f), "certificate: signature key: is a certificate, not a plain public key");
  f = CertFields();
  f.signature_key = ed25519_key() + "x";
  EXPECT_EQ(error_of(f),
            "certificate: signature key: end: 1 unexpected trailing bytes at offset 51");
  f = CertFields();
  f.signature = Blob().str("ssh-ed25519").str(std::string(64, 's')).str("");
  EXPECT_EQ(error_of(f), "certificate: signature: end: 4 unexpected trailing bytes at offset 83");
}

TEST(AuthWire, ListsAreBounded) {
  // Read before the CA is known: a client must not make the node compare
  // tens of thousands of option names (each is checked against the others).
  auto listing = [](size_t n, bool with_data) {
    Blob b;
    for (size_t i = 0; i < n; ++i) {
      b.str("name-" + std::to_string(i));
      if (with_data) b.str("");
    }
    return b.s;
  };
  CertFields f;
  f.principals = listing(kMaxPrincipals, false);
  f.extensions = listing(kMaxOptions, true);
  f.critical = listing(kMaxOptions, true);
  auto cert = parse_certificate(f.encode());
  ASSERT_TRUE(cert) << cert.error().message;
  EXPECT_EQ(cert->principals.size(), 256u);
  EXPECT_EQ(cert->extensions.size(), 64u);
  EXPECT_EQ(cert->critical_options.size(), 64u);

  CertFields more = f;
  more.principals = listing(kMaxPrincipals + 1, false);
  EXPECT_EQ(error_of(more), "certificate: valid principals: list: holds more than 256 principals");
  more = f;
  more.extensions = listing(30000, true);
  EXPECT_EQ(error_of(more), "certificate: extensions: list: holds more than 64 entries");
  more = f;
  more.critical = listing(kMaxOptions + 1, true);
  EXPECT_EQ(error_of(more), "certificate: critical options: list: holds more than 64 entries");
}

TEST(AuthWire, LengthsBeyondTheBlobAreErrors) {
  std::string blob = Blob().str("ssh-ed25519-cert-v01@openssh.com").u32(0xffffffff).s;
  auto cert = parse_certificate(blob);
  ASSERT_FALSE(cert);
  EXPECT_EQ(cert.error().message,
            "certificate: nonce: needs 4294967295 bytes at offset 40 but only 0 are left");
  EXPECT_FALSE(parse_certificate(""));
  EXPECT_FALSE(parse_public_key(""));
  EXPECT_FALSE(parse_public_key(std::string(3, '\0')));
}

TEST(AuthWire, EcdsaKeysMustMatchTheirCurve) {
  const std::string point(65, '\x04');
  EXPECT_TRUE(parse_public_key(Blob().str("ecdsa-sha2-nistp256").str("nistp256").str(point)));
  auto wrong_curve = parse_public_key(Blob().str("ecdsa-sha2-nistp256").str("nistp384").str(point));
  ASSERT_FALSE(wrong_curve);
  EXPECT_EQ(wrong_curve.error().message,
            "public key: curve: 'nistp384' does not match key type ecdsa-sha2-nistp256");
  auto compressed = parse_public_key(
      Blob().str("ecdsa-sha2-nistp256").str("nistp256").str("\x02" + std::string(32, 'x')));
  ASSERT_FALSE(compressed);
  EXPECT_EQ(compressed.error().message,
            "public key: ecdsa point: is not an uncompressed nistp256 point (65 bytes starting "
            "with 04)");
}

// A point that is not on the curve parses (the format cannot tell) but no
// signature by it verifies; OpenSSL refuses the key.
TEST(AuthWire, OffCurvePointNeverVerifies) {
  auto key = parse_public_key(
      Blob().str("ecdsa-sha2-nistp256").str("nistp256").str("\x04" + std::string(64, '\x01')));
  ASSERT_TRUE(key) << key.error().message;
  Signature sig{"ecdsa-sha2-nistp256", Blob().str("\x01").str("\x01").s};
  auto verified = verify_signature(*key, sig, "data");
  ASSERT_FALSE(verified);
  EXPECT_NE(verified.error().message.find("OpenSSL refused the signing key"), std::string::npos)
      << verified.error().message;
}

TEST(AuthWire, SignatureAlgorithmMustFitTheKey) {
  auto key = parse_public_key(ed25519_key());
  ASSERT_TRUE(key);
  auto verified = verify_signature(*key, {"rsa-sha2-256", std::string(64, 's')}, "data");
  ASSERT_FALSE(verified);
  EXPECT_EQ(verified.error().message,
            "signature algorithm 'rsa-sha2-256' does not fit a ssh-ed25519 key");
  EXPECT_FALSE(verify_signature(*key, {"ssh-ed25519", std::string(63, 's')}, "data"));
  EXPECT_FALSE(verify_signature(*key, {"ssh-ed25519", std::string(64, 's')}, "data"));
  EXPECT_TRUE(algorithm_fits_key("rsa-sha2-512", KeyType::rsa));
  EXPECT_FALSE(algorithm_fits_key("ssh-rsa", KeyType::rsa));
}

TEST(AuthWire, RsaNumbersAreStrict) {
  auto rsa = [](std::string e, std::string n) {
    auto key = parse_public_key(Blob().str("ssh-rsa").str(e).str(n));
    return key ? std::string("(parsed)") : key.error().message;
  };
  const std::string n2048 = "\x00\xc1" + std::string(255, '\x11');
  const std::string n2048_body = std::string("\xc1") + std::string(255, '\x11');
  EXPECT_EQ(rsa("\x01\x00\x01", std::string(1, '\0') + n2048_body), "(parsed)");
  EXPECT_EQ(rsa("\x01\x00\x01", n2048_body), "public key: rsa modulus: is negative");
  EXPECT_EQ(rsa("\x01\x00\x01", std::string(2, '\0') + n2048_body),
            "public key: rsa modulus: has a leading zero byte it does not need");
  EXPECT_EQ(rsa("", n2048), "public key: rsa exponent: is zero");
  EXPECT_EQ(rsa("\x01\x00\x01", std::string("\x00\xc1", 2) + std::string(127, '\x11')),
            "public key: rsa modulus: is 1024 bits: RSA keys need at least 2048 bits");
  EXPECT_EQ(rsa(std::string(9, '\x01'), std::string(1, '\0') + n2048_body),
            "public key: rsa exponent: is 72 bits long, more than the 64 allowed");
}

TEST(AuthWire, Base64IsStrict) {
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("Zg=="), "f");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_EQ(base64_decode("Zm9v"), "foo");
  EXPECT_FALSE(base64_decode("Zh=="));   // bits left in the padding
  EXPECT_FALSE(base64_decode("Zg="));    // not a multiple of 4
  EXPECT_FALSE(base64_decode("Zm 9v"));
  EXPECT_FALSE(base64_decode("Z=g="));
  EXPECT_FALSE(base64_decode("===="));
  EXPECT_FALSE(base64_decode("Zm9v!A=="));
  for (size_t n = 0; n < 40; ++n) {
    std::string bytes;
    for (size_t i = 0; i < n; ++i) bytes += static_cast<char>(i * 37 + 200);
    EXPECT_EQ(base64_decode(base64_encode(bytes)), bytes);
  }
  EXPECT_EQ(base64_encode("fo", false), "Zm8");
}

TEST(AuthWire, KeyLines) {
  const std::string b64 = base64_encode(ed25519_key());
  auto line = parse_key_line("  ssh-ed25519\t " + b64 + "  my laptop key \r\n");
  ASSERT_TRUE(line) << line.error().message;
  EXPECT_EQ(line->type, "ssh-ed25519");
  EXPECT_EQ(line->blob, ed25519_key());
  EXPECT_EQ(line->comment, "my laptop key");
  EXPECT_TRUE(parse_public_key_line("ssh-ed25519 " + b64));
  EXPECT_EQ(parse_key_line("ssh-ed25519").error().message,
            "expected '<key type> <base64 key> [comment]'");
  EXPECT_EQ(parse_key_line("").error().message, "expected '<key type> <base64 key> [comment]'");
  EXPECT_EQ(parse_key_line("ecdsa-sha2-nistp256 " + b64).error().message,
            "the line says 'ecdsa-sha2-nistp256' but its key is of type 'ssh-ed25519'");
  EXPECT_EQ(parse_certificate_line("ssh-ed25519 " + b64).error().message,
            "certificate: is a plain public key, not a certificate");
  EXPECT_EQ(parse_key_line(R"(from="10.0.0.1" ssh-ed25519 )" + b64).error().message,
            "the key after 'from=\"10.0.0.1\"' is not valid base64");
}

TEST(AuthWire, TextIsUtf8WithoutNul) {
  EXPECT_TRUE(is_text(""));
  EXPECT_TRUE(is_text("Zoë 日本"));
  EXPECT_FALSE(is_text(std::string("a\0b", 3)));
  EXPECT_FALSE(is_text("\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(is_text("\xe6\x97"));      // cut short
}

TEST(AuthAddress, PrefixLists) {
  auto list = parse_prefix_list("10.0.0.0/8,2001:db8::/32,192.0.2.7,0.0.0.0/0");
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[2].length, 32);
  EXPECT_EQ((*list)[3].length, 0);
  EXPECT_TRUE(matches_any(*parse_ip("203.0.113.1"), *list));  // via 0.0.0.0/0
  EXPECT_FALSE(matches_any(*parse_ip("2001:db9::1"), *list));

  auto error_of = [](std::string_view text) {
    auto l = parse_prefix_list(text);
    return l ? std::string("(parsed)") : l.error().message;
  };
  EXPECT_EQ(error_of("10.1.2.3/8"),
            "source-address entry '10.1.2.3/8' has bits set past its prefix length");
  EXPECT_EQ(error_of("10.0.0.0/33"),
            "source-address entry '10.0.0.0/33' has an invalid prefix length");
  EXPECT_EQ(error_of("10.0.0.0/"), "source-address entry '10.0.0.0/' has an invalid prefix length");
  EXPECT_EQ(error_of("10.0.0.0/+8"),
            "source-address entry '10.0.0.0/+8' has an invalid prefix length");
  EXPECT_EQ(error_of("10.0.0.0/8,"), "source-address entry '' is not an IP address or prefix");
  EXPECT_EQ(error_of("*.example.com"),
            "source-address entry '*.example.com' is not an IP address or prefix");
  EXPECT_EQ(error_of("2001:db8::/129"),
            "source-address entry '2001:db8::/129' has an invalid prefix length");
}

TEST(AuthAddress, MappedAddressesAreIpv4) {
  auto mapped = parse_ip("::ffff:192.0.2.1");
  ASSERT_TRUE(mapped);
  EXPECT_EQ(mapped->version, 4);
  EXPECT_EQ(*mapped, *parse_ip("192.0.2.1"));
  EXPECT_FALSE(parse_ip("192.0.2.256"));
  EXPECT_FALSE(parse_ip("fe80::1%eth0"));
  EXPECT_TRUE(same_prefix(*parse_ip("2001:db8:aa::1"), *parse_ip("2001:db8:bb::1"), 32));
  EXPECT_FALSE(same_prefix(*parse_ip("2001:db8:aa::1"), *parse_ip("2001:db8:bb::1"), 48));
  EXPECT_TRUE(same_prefix(*parse_ip("10.0.0.255"), *parse_ip("10.0.0.128"), 25));
  EXPECT_FALSE(same_prefix(*parse_ip("10.0.0.127"), *parse_ip("10.0.0.128"), 25));
}

TEST(AuthRefusal, ReasonsHaveDistinctNames) {
  std::set<std::string_view> seen;
  for (int r = 0; r <= static_cast<int>(RefusalReason::rate_limited); ++r) {
    std::string_view name = refusal_name(static_cast<RefusalReason>(r));
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(seen.insert(name).second) << name;
  }
  AuthResult refused(Refusal{RefusalReason::expired, "the certificate expired"});
  EXPECT_EQ(refused.error().message, "expired: the certificate expired");
}

TEST(AuthRefusal, MalformedBlobIsARefusal) {
  AuthResult r = authorize_blob("junk", TrustedCAs{}, "alice", 0, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.refusal().reason, RefusalReason::malformed_certificate);
}

TEST(AuthRefusal, UntrustedBeforeAnythingElse) {
  CertFields f;
  f.cert_type = 2;  // a host certificate, but nobody vouches for it
  auto cert = parse_certificate(f.encode());
  ASSERT_TRUE(cert);
  AuthResult r = authorize(*cert, TrustedCAs{}, "alice", 1000, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.refusal().reason, RefusalReason::untrusted_ca);
}

// Refusals of certificates a trusted CA signed but that say something
// unreadable or odd.
class SignedByHand : public ::testing::Test {
 protected:
  std::string outcome(const CertFields& f, std::string_view algorithm = "ssh-ed25519") {
    last_ = authorize_blob(ca_.sign(f, algorithm), cas_, "alice", 1000, "10.0.0.1");
    return last_ ? "ok" : std::string(refusal_name(last_.refusal().reason));
  }

  TestCa ca_;
  TrustedCAs cas_ = ca_.trusted();
  AuthResult last_ = Refusal{};
};

TEST_F(SignedByHand, WellFormedCertificateAuthorizes) {
  EXPECT_EQ(outcome(CertFields()), "ok") << last_.error().message;
  EXPECT_EQ(last_->force_command, "true");
  EXPECT_EQ(last_->valid_before, std::numeric_limits<int64_t>::max());  // kForever
}

TEST_F(SignedByHand, EndsPastInt64AreClamped) {
  CertFields f;
  f.valid_before = (uint64_t{1} << 63) + 5;
  EXPECT_EQ(outcome(f), "ok") << last_.error().message;
  EXPECT_EQ(last_->valid_before, std::numeric_limits<int64_t>::max());
}

TEST_F(SignedByHand, UnreadableCriticalOptionsAreRefused) {
  CertFields f;
  f.critical = Blob().str("force-command").str("true");  // value not wrapped in a string
  EXPECT_EQ(outcome(f), "bad_critical_option");
  f.critical = Blob().str("force-command").str(Blob().str("true").str(""));  // trailing bytes
  EXPECT_EQ(outcome(f), "bad_critical_option");
  f.critical = Blob().str("source-address").str(Blob().str("10.1.2.3/8"));
  EXPECT_EQ(outcome(f), "bad_critical_option");
  EXPECT_EQ(last_.refusal().message,
            "the certificate's source-address entry '10.1.2.3/8' has bits set past its prefix "
            "length");
  f.critical = Blob().str("source-address").str(Blob().str("10.0.0.0/8"));
  EXPECT_EQ(outcome(f), "ok");
}

TEST_F(SignedByHand, RecordingExtensionMustBeAWrappedKindList) {
  CertFields f;
  f.extensions = Blob().str(kRecordingExtension).str("command");  // not wrapped
  EXPECT_EQ(outcome(f), "bad_recording_extension");
  f.extensions = Blob().str(kRecordingExtension).str(Blob().str(" disk , command"));
  EXPECT_EQ(outcome(f), "ok") << last_.error().message;
  EXPECT_EQ(last_->recorded_kinds->to_string(), "command,disk");
}

TEST_F(SignedByHand, SignatureAlgorithmMustFitTheCa) {
  EXPECT_EQ(outcome(CertFields(), "ecdsa-sha2-nistp256"), "bad_signature");
  EXPECT_EQ(last_.refusal().message,
            "the CA signature on the certificate is not valid: signature algorithm "
            "'ecdsa-sha2-nistp256' does not fit a ssh-ed25519 key");
}

}  // namespace
}  // namespace vigil::sshcert
