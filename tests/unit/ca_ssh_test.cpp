// OpenSSH certificates signed by the cluster's CAs: read by OpenSSH's own
// ssh-keygen with the fields we meant, accepted by the node's verifier
// (src/sshcert), and refused by it, with the right reason, when tampered
// with, signed by another CA, out of their validity or for another login.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "../support/shell.hpp"
#include "../support/temp_dir.hpp"
#include "ca/authority.hpp"
#include "ca/ssh_ca.hpp"
#include "sshcert/authorize.hpp"
#include "sshcert/wire.hpp"

namespace vigil::ca {
namespace {

using sshcert::RefusalReason;
using test::shell;

constexpr int64_t kNow = 1'800'000'000;  // 2027-01-15T08:00:00Z

std::string utc(int64_t t) {
  const auto seconds = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&seconds, &tm);
  char text[32];
  strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  return text;
}

class SshCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto user_ca = CertAuthority::create(CaType::ssh_user, "purple", kNow);
    auto host_ca = CertAuthority::create(CaType::ssh_host, "purple", kNow);
    auto user_key = PrivateKey::generate(KeyAlgorithm::ed25519);
    ASSERT_TRUE(user_ca && host_ca && user_key);
    user_ca_.emplace(std::move(*user_ca));
    host_ca_.emplace(std::move(*host_ca));
    user_key_.emplace(std::move(*user_key));
    auto trusted = user_ca_->trusted_ssh_cas();
    ASSERT_TRUE(trusted) << trusted.error().message;
    trusted_ = std::move(*trusted);
  }

  UserCertificateRequest alice() const {
    UserCertificateRequest r;
    r.public_key = user_key_->ssh_public_key().blob;
    r.user = "alice";
    r.logins = {"root", "ec2-user"};
    r.now = kNow;
    r.ttl = 3600;
    r.serial = 4242;
    r.recorded_kinds = KindSet::parse("command,disk");
    return r;
  }

  std::string sign_user(const UserCertificateRequest& r) const {
    auto spec = user_certificate(r);
    EXPECT_TRUE(spec) << spec.error().message;
    auto blob = user_ca_->sign_ssh(*spec);
    EXPECT_TRUE(blob) << blob.error().message;
    return blob ? *blob : std::string();
  }

  sshcert::AuthResult check(const std::string& blob, const std::string& login = "root",
                            int64_t now = kNow + 10) const {
    return sshcert::authorize_blob(blob, trusted_, login, now, "127.0.0.1");
  }

  std::optional<CertAuthority> user_ca_, host_ca_;
  std::optional<PrivateKey> user_key_;
  sshcert::TrustedCAs trusted_;
};

TEST_F(SshCaTest, UserCertificateIsAcceptedByTheNodesVerifierWithItsIdentity) {
  const std::string blob = sign_user(alice());
  auto result = check(blob, "ec2-user");
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->user, "alice");
  EXPECT_EQ(result->login, "ec2-user");
  EXPECT_EQ(result->principals, (std::vector<std::string>{"root", "ec2-user"}));
  EXPECT_EQ(result->serial, 4242u);
  EXPECT_EQ(result->valid_before, kNow + 3600);
  ASSERT_TRUE(result->recorded_kinds);
  EXPECT_EQ(result->recorded_kinds->to_string(), "command,disk");
  EXPECT_EQ(result->ca_fingerprint, user_ca_->active().key.ssh_public_key().fingerprint());
  EXPECT_EQ(result->extensions,
            (std::vector<std::string>{"permit-X11-forwarding", "permit-agent-forwarding",
                                      "permit-port-forwarding", "permit-pty", "permit-user-rc",
                                      "vigil-recording@vigil.dev"}));
  // Backdated for clock skew: a node a little behind the client accepts it.
  auto cert = sshcert::parse_certificate(blob);
  ASSERT_TRUE(cert);
  EXPECT_EQ(cert->valid_after, static_cast<uint64_t>(kNow - kClockSkew));
  EXPECT_TRUE(check(blob, "root", kNow - kClockSkew));
  EXPECT_EQ(cert->key.blob, user_key_->ssh_public_key().blob);
}

TEST_F(SshCaTest, SshKeygenReadsTheUserCertificateWithTheExpectedFields) {
  test::TempDir dir;
  std::ofstream(dir.file("alice-cert.pub")) << certificate_line(sign_user(alice()), "alice") << "\n";
  auto listed = shell("TZ=UTC0 ssh-keygen -L -f " + dir.file("alice-cert.pub"));
  ASSERT_EQ(listed.status, 0) << listed.output;
  const std::string& out = listed.output;
  for (const std::string& expected :
       {std::string("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "Public key: ED25519-CERT " + user_key_->ssh_public_key().fingerprint(),
        "Signing CA: ED25519 " + user_ca_->active().key.ssh_public_key().fingerprint() +
            " (using ssh-ed25519)",
        std::string("Key ID: \"alice\""), std::string("Serial: 4242"),
        "Valid: from " + utc(kNow - kClockSkew) + " to " + utc(kNow + 3600),
        std::string("Principals: \n                root\n                ec2-user\n"),
        std::string("Critical Options: (none)"),
        std::string("Extensions: \n                permit-X11-forwarding\n"
                    "                permit-agent-forwarding\n"
                    "                permit-port-forwarding\n                permit-pty\n"
                    "                permit-user-rc\n"
                    "                vigil-recording@vigil.dev UNKNOWN OPTION: "
                    "0000000c636f6d6d616e642c6469736b (len 16)\n")})
    EXPECT_NE(out.find(expected), std::string::npos) << "missing: " << expected << "\nin:\n" << out;
}

TEST_F(SshCaTest, SshKeygenReadsTheHostCertificate) {
  test::TempDir dir;
  auto host_key = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(host_key);
  HostCertificateRequest r;
  r.public_key = host_key->ssh_public_key().blob;
  r.node_uuid = "5e0c4b2a-8d7e-4f0e-9b1a-3c2d1e0f9a8b";
  r.node_name = "node-1";
  r.addresses = {"127.0.0.1", "node-1"};  // a duplicate counts once
  r.now = kNow;
  r.ttl = 86400;
  auto spec = host_certificate(r);
  ASSERT_TRUE(spec);
  auto blob = host_ca_->sign_ssh(*spec);
  ASSERT_TRUE(blob) << blob.error().message;
  std::ofstream(dir.file("host-cert.pub")) << certificate_line(*blob) << "\n";
  auto listed = shell("TZ=UTC0 ssh-keygen -L -f " + dir.file("host-cert.pub"));
  ASSERT_EQ(listed.status, 0) << listed.output;
  for (const std::string& expected :
       {std::string("Type: ssh-ed25519-cert-v01@openssh.com host certificate"),
        "Key ID: \"" + r.node_uuid + "\"",
        "Principals: \n                " + r.node_uuid + "\n                node-1\n"
        "                127.0.0.1\n        Critical Options: (none)\n        Extensions: (none)"})
    EXPECT_NE(listed.output.find(expected), std::string::npos) << expected << "\n" << listed.output;
  // A host certificate is no login: its CA is not trusted for users, and
  // even one the user CA's key signed is refused as a host certificate.
  EXPECT_EQ(check(*blob, r.node_uuid).refusal().reason, RefusalReason::untrusted_ca);
  auto by_user_key = sign_ssh_certificate(user_ca_->active().key, *spec);
  ASSERT_TRUE(by_user_key);
  EXPECT_EQ(check(*by_user_key, r.node_uuid).refusal().reason, RefusalReason::not_user_certificate);
}

TEST_F(SshCaTest, EachCaSignsOnlyItsKindOfCertificate) {
  auto user_spec = user_certificate(alice());
  ASSERT_TRUE(user_spec);
  auto wrong = host_ca_->sign_ssh(*user_spec);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("does not sign user"), std::string::npos);
}

TEST_F(SshCaTest, EveryFlippedByteIsRefused) {
  const std::string blob = sign_user(alice());
  ASSERT_TRUE(check(blob));
  // Flip each byte in turn: never accepted; a change in what the CA signed
  // is a bad signature (or the blob no longer parses, or names another CA).
  size_t bad_signature = 0;
  for (size_t i = 0; i < blob.size(); ++i) {
    std::string tampered = blob;
    tampered[i] ^= 0x01;
    auto result = check(tampered);
    ASSERT_FALSE(result) << "offset " << i << " accepted";
    const auto reason = result.refusal().reason;
    EXPECT_TRUE(reason == RefusalReason::bad_signature || reason == RefusalReason::malformed_certificate ||
                reason == RefusalReason::untrusted_ca)
        << "offset " << i << ": " << sshcert::refusal_name(reason);
    bad_signature += reason == RefusalReason::bad_signature;
  }
  EXPECT_GT(bad_signature, blob.size() / 2);
  // One flipped byte in the key id ("alice" -> "blice"): bad signature.
  std::string renamed = blob;
  renamed[renamed.find("alice")] ^= 0x03;
  EXPECT_EQ(check(renamed).refusal().reason, RefusalReason::bad_signature);
}

TEST_F(SshCaTest, ACertificateFromAnotherCaIsRefused) {
  // Same cluster name, same code, another key: an attacker's own CA.
  auto other = CertAuthority::create(CaType::ssh_user, "purple", kNow);
  ASSERT_TRUE(other);
  auto spec = user_certificate(alice());
  auto blob = other->sign_ssh(*spec);
  ASSERT_TRUE(blob);
  EXPECT_EQ(check(*blob).refusal().reason, RefusalReason::untrusted_ca);
  // Re-pointing its signature key at our CA's key does not help.
  std::string forged = *blob;
  const std::string theirs = other->active().key.ssh_public_key().blob;
  const std::string ours = user_ca_->active().key.ssh_public_key().blob;
  forged.replace(forged.find(theirs), theirs.size(), ours);
  EXPECT_EQ(check(forged).refusal().reason, RefusalReason::bad_signature);
}

TEST_F(SshCaTest, ExpiredAndNotYetValidAreRefused) {
  const std::string blob = sign_user(alice());
  EXPECT_EQ(check(blob, "root", kNow + 3600).refusal().reason, RefusalReason::expired);
  EXPECT_TRUE(check(blob, "root", kNow + 3599));
  EXPECT_EQ(check(blob, "root", kNow - kClockSkew - 1).refusal().reason, RefusalReason::not_yet_valid);
}

TEST_F(SshCaTest, ALoginOutsideThePrincipalsIsRefused) {
  const std::string blob = sign_user(alice());
  EXPECT_EQ(check(blob, "admin").refusal().reason, RefusalReason::principal_mismatch);
  EXPECT_EQ(check(blob, "Root").refusal().reason, RefusalReason::principal_mismatch);
}

TEST_F(SshCaTest, BadRequestsAreRefusedBeforeSigning) {
  auto r = alice();
  r.logins = {};
  EXPECT_FALSE(user_certificate(r));
  r = alice();
  r.ttl = 0;
  EXPECT_FALSE(user_certificate(r));
  r = alice();
  r.user = "";
  auto spec = user_certificate(r);
  ASSERT_TRUE(spec);
  EXPECT_FALSE(user_ca_->sign_ssh(*spec));  // empty key id
  r = alice();
  r.logins = {"root", ""};
  spec = user_certificate(r);
  ASSERT_TRUE(spec);
  EXPECT_FALSE(user_ca_->sign_ssh(*spec));  // empty principal
  r = alice();
  r.public_key = "garbage";
  spec = user_certificate(r);
  ASSERT_TRUE(spec);
  auto signed_garbage = user_ca_->sign_ssh(*spec);
  ASSERT_FALSE(signed_garbage);
  EXPECT_EQ(signed_garbage.error().kind(), Errc::invalid_argument);
  // A certificate as the key to certify (certificates do not chain).
  spec = user_certificate(alice());
  spec->public_key = sign_user(alice());
  EXPECT_FALSE(user_ca_->sign_ssh(*spec));
  // Twice the same extension.
  spec = user_certificate(alice());
  spec->extensions.push_back({"permit-pty", ""});
  EXPECT_FALSE(user_ca_->sign_ssh(*spec));
}

TEST_F(SshCaTest, OptionsAreSortedAndCriticalOptionsReachTheVerifier) {
  auto spec = user_certificate(alice());
  ASSERT_TRUE(spec);
  spec->critical_options = {{"source-address", option_value("10.0.0.0/8")},
                            {"force-command", option_value("/bin/true")}};
  auto blob = user_ca_->sign_ssh(*spec);
  ASSERT_TRUE(blob);
  auto cert = sshcert::parse_certificate(*blob);
  ASSERT_TRUE(cert);
  EXPECT_EQ(cert->critical_options[0].name, "force-command");
  EXPECT_EQ(sshcert::authorize_blob(*blob, trusted_, "root", kNow, "192.0.2.1").refusal().reason,
            RefusalReason::source_address_mismatch);
  auto inside = sshcert::authorize_blob(*blob, trusted_, "root", kNow, "10.1.2.3");
  ASSERT_TRUE(inside) << inside.error().message;
  EXPECT_EQ(inside->force_command, "/bin/true");
}

TEST_F(SshCaTest, AnEcdsaP256CaSignsCertificatesOpensshAndTheNodeAccept) {
  auto ca = PrivateKey::generate(KeyAlgorithm::ecdsa_p256);
  ASSERT_TRUE(ca);
  auto spec = user_certificate(alice());
  ASSERT_TRUE(spec);
  auto blob = sign_ssh_certificate(*ca, *spec);
  ASSERT_TRUE(blob) << blob.error().message;
  auto trusted = sshcert::TrustedCAs::parse(ca->ssh_public_key_line("p256") + "\n", "test");
  ASSERT_TRUE(trusted);
  auto result = sshcert::authorize_blob(*blob, *trusted, "root", kNow, "127.0.0.1");
  ASSERT_TRUE(result) << result.error().message;
  test::TempDir dir;
  std::ofstream(dir.file("c-cert.pub")) << certificate_line(*blob) << "\n";
  auto listed = shell("ssh-keygen -L -f " + dir.file("c-cert.pub"));
  EXPECT_NE(listed.output.find("Signing CA: ECDSA " + ca->ssh_public_key().fingerprint() +
                               " (using ecdsa-sha2-nistp256)"),
            std::string::npos)
      << listed.output;
}

TEST_F(SshCaTest, SerialsAreRandomWhenNotGiven) {
  auto r = alice();
  r.serial = 0;
  auto a = user_certificate(r), b = user_certificate(r);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->serial, 0u);
  EXPECT_NE(a->serial, b->serial);
}

}  // namespace
}  // namespace vigil::ca
