// CA sets: every key is trusted, only the active one signs (a rotation in
// steps), and the sets survive a restart through their files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "../support/temp_dir.hpp"
#include "ca/authority.hpp"
#include "sshcert/authorize.hpp"

namespace vigil::ca {
namespace {

constexpr int64_t kNow = 1'800'000'000;

std::string user_cert(const CertAuthority& ca, const PrivateKey& user) {
  UserCertificateRequest r;
  r.public_key = user.ssh_public_key().blob;
  r.user = "alice";
  r.logins = {"root"};
  r.now = kNow;
  r.ttl = 3600;
  auto spec = user_certificate(r);
  auto blob = ca.sign_ssh(spec.value());
  EXPECT_TRUE(blob) << blob.error().message;
  return blob ? *blob : std::string();
}

sshcert::AuthResult accepts(const CertAuthority& ca, const std::string& blob) {
  auto trusted = ca.trusted_ssh_cas();
  EXPECT_TRUE(trusted);
  return sshcert::authorize_blob(blob, *trusted, "root", kNow, "127.0.0.1");
}

std::string signer_of(const std::string& blob) {
  return sshcert::parse_certificate(blob).value().signature_key.blob;
}

TEST(CaRotation, SshVerificationTrustsEveryKeyAndSigningUsesTheActiveOne) {
  auto ca = CertAuthority::create(CaType::ssh_user, "purple", kNow);
  auto user = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(ca && user);
  const std::string old_key = ca->active().key.ssh_public_key().blob;
  const std::string before = user_cert(*ca, *user);

  // Step 1: a new key, trusted, not signing yet.
  auto id = ca->add_key(kNow);
  ASSERT_TRUE(id);
  EXPECT_EQ(ca->keys().size(), 2u);
  EXPECT_EQ(signer_of(user_cert(*ca, *user)), old_key);
  // Step 2: the new key signs; certificates of the old one still pass.
  ASSERT_TRUE(ca->activate(*id));
  const std::string after = user_cert(*ca, *user);
  const std::string new_key = ca->active().key.ssh_public_key().blob;
  EXPECT_NE(new_key, old_key);
  EXPECT_EQ(signer_of(after), new_key);
  EXPECT_TRUE(accepts(*ca, before));
  EXPECT_TRUE(accepts(*ca, after));
  // Step 3: the old key goes; its certificates with it.
  EXPECT_FALSE(ca->remove_key(*id));  // never the active key
  ASSERT_TRUE(ca->remove_key(1));
  EXPECT_EQ(accepts(*ca, before).refusal().reason, sshcert::RefusalReason::untrusted_ca);
  EXPECT_TRUE(accepts(*ca, after));
  EXPECT_FALSE(ca->activate(1));
}

TEST(CaRotation, TlsVerificationTrustsEveryKeyAndIssuingUsesTheActiveOne) {
  auto ca = CertAuthority::create(CaType::tls, "purple", kNow);
  auto holder = PrivateKey::generate(KeyAlgorithm::ecdsa_p256);
  ASSERT_TRUE(ca && holder);
  TlsIssueRequest r;
  r.identity.cluster = "purple";
  r.identity.name = "alice";
  r.identity.roles = {"access"};
  r.subject_public_key = holder->spki_der();
  r.now = kNow;
  r.ttl = 600;
  auto before = ca->issue_tls(r);
  ASSERT_TRUE(before);
  const std::string old_pin = ca->pin();
  auto id = ca->add_key(kNow);
  ASSERT_TRUE(id);
  EXPECT_EQ(ca->pin(), old_pin);  // the pin names the active key
  ASSERT_TRUE(ca->activate(*id));
  EXPECT_NE(ca->pin(), old_pin);
  auto after = ca->issue_tls(r);
  ASSERT_TRUE(after);
  // Issued by the new key: its signature verifies with the new CA key only.
  EXPECT_EQ(X509_verify(after->get(), X509_get0_pubkey(ca->active().certificate->get())), 1);
  EXPECT_NE(X509_verify(after->get(), X509_get0_pubkey(ca->keys()[0].certificate->get())), 1);
  // Both CA certificates carry the same name: the verifier tells them apart.
  const auto trusted = ca->trusted_tls_certificates();
  ASSERT_EQ(trusted.size(), 2u);
  EXPECT_TRUE(verify_tls_peer(before->get(), trusted, "purple", TlsUsage::client, kNow));
  EXPECT_TRUE(verify_tls_peer(after->get(), trusted, "purple", TlsUsage::client, kNow));
  ASSERT_TRUE(ca->remove_key(1));
  EXPECT_EQ(verify_tls_peer(before->get(), ca->trusted_tls_certificates(), "purple", TlsUsage::client,
                            kNow)
                .refusal()
                .reason,
            TlsRefusalReason::untrusted_ca);
  EXPECT_TRUE(verify_tls_peer(after->get(), ca->trusted_tls_certificates(), "purple",
                              TlsUsage::client, kNow));
}

TEST(CaRotation, KeySetsAreBounded) {
  auto ca = CertAuthority::create(CaType::ssh_host, "purple", kNow);
  ASSERT_TRUE(ca);
  for (size_t i = 1; i < kMaxCaKeys; ++i) ASSERT_TRUE(ca->add_key(kNow));
  auto one_more = ca->add_key(kNow);
  ASSERT_FALSE(one_more);
  EXPECT_EQ(one_more.error().kind(), Errc::resource_exhausted);
}

TEST(CaStore, CreatedOnceThenLoadedWithTheSameKeys) {
  test::TempDir dir;
  const std::string ca_dir = dir.file("ca");
  auto first = ClusterCAs::load_or_create(ca_dir, "purple", kNow);
  ASSERT_TRUE(first) << first.error().message;
  auto second = ClusterCAs::load_or_create(ca_dir, "purple", kNow + 100);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->tls.pin(), first->tls.pin());
  EXPECT_EQ(second->ssh_user.trusted_keys_text(), first->ssh_user.trusted_keys_text());
  EXPECT_EQ(second->ssh_host.trusted_keys_text(), first->ssh_host.trusted_keys_text());
  EXPECT_NE(first->ssh_user.trusted_keys_text(), first->ssh_host.trusted_keys_text());
  for (const char* sub : {"ssh_user", "ssh_host", "tls"}) {
    struct stat st {};
    ASSERT_EQ(stat((ca_dir + "/" + sub).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u) << sub;
    ASSERT_EQ(stat((ca_dir + "/" + sub + "/key-1").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << sub;
  }
  // A certificate signed before the restart verifies after it.
  auto user = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(user);
  EXPECT_TRUE(accepts(second->ssh_user, user_cert(first->ssh_user, *user)));
}

TEST(CaStore, ARotationInProgressSurvivesARestart) {
  test::TempDir dir;
  auto ca = CertAuthority::create(CaType::ssh_user, "purple", kNow);
  ASSERT_TRUE(ca);
  auto id = ca->add_key(kNow);
  ASSERT_TRUE(id && ca->activate(*id));
  ASSERT_TRUE(ca->save(dir.path()));
  auto loaded = CertAuthority::load(dir.path(), CaType::ssh_user, "purple");
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->keys().size(), 2u);
  EXPECT_EQ(loaded->active().id, *id);
  EXPECT_EQ(loaded->trusted_keys_text(), ca->trusted_keys_text());
  // The old key removed and saved: its file is gone.
  ASSERT_TRUE(ca->remove_key(1));
  ASSERT_TRUE(ca->save(dir.path()));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/ssh_user/key-1"));
  loaded = CertAuthority::load(dir.path(), CaType::ssh_user, "purple");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->keys().size(), 1u);
}

TEST(CaStore, DamagedOrExposedStoresAreRefused) {
  test::TempDir dir;
  const std::string ca_dir = dir.file("ca");
  ASSERT_TRUE(ClusterCAs::load_or_create(ca_dir, "purple", kNow));
  // A key file opened to others: refused with what to do.
  chmod((ca_dir + "/tls/key-1").c_str(), 0644);
  auto exposed = ClusterCAs::load_or_create(ca_dir, "purple", kNow);
  ASSERT_FALSE(exposed);
  EXPECT_NE(exposed.error().message.find("chmod 600 " + ca_dir + "/tls/key-1"), std::string::npos)
      << exposed.error().message;
  chmod((ca_dir + "/tls/key-1").c_str(), 0600);
  // The active file names a key that is not there.
  std::ofstream(ca_dir + "/ssh_host/active") << "7\n";
  auto missing = ClusterCAs::load_or_create(ca_dir, "purple", kNow);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), Errc::data_loss);
  std::ofstream(ca_dir + "/ssh_host/active") << "1\n";
  // A TLS certificate that is not its key's.
  std::filesystem::copy_file(ca_dir + "/tls/key-1.crt", dir.file("saved.crt"));
  auto other = CertAuthority::create(CaType::tls, "purple", kNow);
  ASSERT_TRUE(other);
  std::ofstream(ca_dir + "/tls/key-1.crt") << other->active().certificate->pem();
  auto mismatched = ClusterCAs::load_or_create(ca_dir, "purple", kNow);
  ASSERT_FALSE(mismatched);
  EXPECT_NE(mismatched.error().message.find("is not the certificate of"), std::string::npos);
  std::filesystem::copy_file(dir.file("saved.crt"), ca_dir + "/tls/key-1.crt",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_TRUE(ClusterCAs::load_or_create(ca_dir, "purple", kNow));
  // The store of another cluster name.
  auto renamed = ClusterCAs::load_or_create(ca_dir, "green", kNow);
  ASSERT_FALSE(renamed);
  EXPECT_NE(renamed.error().message.find("another cluster"), std::string::npos) << renamed.error().message;
}

}  // namespace
}  // namespace vigil::ca
