// CA keys: generated, written in OpenSSH's and PKCS#8's formats that the
// real ssh-keygen and openssl read (and that we read back from them), kept
// in files only their owner can read, replaced atomically.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../support/shell.hpp"
#include "../support/temp_dir.hpp"
#include "ca/key.hpp"
#include "ca/key_file.hpp"
#include "sshcert/wire.hpp"

namespace vigil::ca {
namespace {

using test::shell;
namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const std::string& path, const std::string& text, mode_t mode = 0600) {
  std::ofstream(path, std::ios::binary) << text;
  chmod(path.c_str(), mode);
}

// "ssh-ed25519 AAAA..." without the comment.
std::string key_part(const std::string& line) {
  const size_t second_space = line.find(' ', line.find(' ') + 1);
  std::string s = line.substr(0, second_space);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

TEST(CaKey, GeneratedEd25519KeyIsReadByOpensshsKeygen) {
  test::TempDir dir;
  auto key = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(key) << key.error().message;
  const std::string path = dir.file("ca");
  ASSERT_TRUE(save_private_key(path, *key, "test ca"));
  // ssh-keygen derives the public key from our private key file: the same.
  auto derived = shell("ssh-keygen -y -f " + path);
  ASSERT_EQ(derived.status, 0) << derived.output;
  EXPECT_EQ(key_part(derived.output), key->ssh_public_key_line());
  // And can sign with it: the file is a working OpenSSH CA key.
  ASSERT_EQ(shell("cd " + dir.path() + " && ssh-keygen -q -t ed25519 -N '' -f user && "
                  "ssh-keygen -q -s ca -I alice -n alice user.pub").status, 0);
  auto cert = shell("ssh-keygen -L -f " + dir.file("user-cert.pub"));
  EXPECT_NE(cert.output.find(key->ssh_public_key().fingerprint()), std::string::npos) << cert.output;
}

TEST(CaKey, KeysMadeBySshKeygenLoad) {
  test::TempDir dir;
  ASSERT_EQ(shell("ssh-keygen -q -t ed25519 -N '' -C made-by-keygen -f " + dir.file("k")).status, 0);
  auto key = load_private_key(dir.file("k"));
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(key->ssh_public_key_line(), key_part(slurp(dir.file("k.pub"))));
}

TEST(CaKey, OpensshFormatRoundTripsAndEachSaveIsFresh) {
  auto key = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(key);
  auto text = key->to_openssh("c");
  ASSERT_TRUE(text);
  auto back = PrivateKey::from_openssh(text->view());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->ssh_public_key().blob, key->ssh_public_key().blob);
  // The signatures of the copy verify with the original's public key.
  auto sig = back->sign_ssh("data");
  ASSERT_TRUE(sig);
  EXPECT_EQ(sig->algorithm, "ssh-ed25519");
  EXPECT_EQ(sig->bytes.size(), 64u);
}

TEST(CaKey, EcdsaP256KeyRoundTripsAsPemAndOpensslReadsIt) {
  test::TempDir dir;
  auto key = PrivateKey::generate(KeyAlgorithm::ecdsa_p256);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->ssh_public_key().type, sshcert::KeyType::ecdsa_p256);
  ASSERT_TRUE(save_private_key(dir.file("tls.key"), *key, ""));
  EXPECT_NE(slurp(dir.file("tls.key")).find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  auto check = shell("openssl pkey -in " + dir.file("tls.key") + " -noout -check");
  EXPECT_EQ(check.status, 0) << check.output;
  auto back = load_private_key(dir.file("tls.key"));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->spki_der(), key->spki_der());
  EXPECT_EQ(back->algorithm(), KeyAlgorithm::ecdsa_p256);
}

TEST(CaKey, PassphraseProtectedKeysAreRefusedWithWhatToDo) {
  test::TempDir dir;
  ASSERT_EQ(shell("ssh-keygen -q -t ed25519 -N secret-pass -f " + dir.file("k")).status, 0);
  auto key = load_private_key(dir.file("k"));
  ASSERT_FALSE(key);
  EXPECT_NE(key.error().message.find("passphrase"), std::string::npos) << key.error().message;
  EXPECT_NE(key.error().message.find("ssh-keygen -p"), std::string::npos);

  ASSERT_EQ(shell("openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass:x -out " +
                  dir.file("p.pem")).status, 0);
  chmod(dir.file("p.pem").c_str(), 0600);
  auto pem = load_private_key(dir.file("p.pem"));
  ASSERT_FALSE(pem);
  EXPECT_NE(pem.error().message.find("encrypted"), std::string::npos) << pem.error().message;
}

TEST(CaKey, DamagedOpensshKeysAreRefused) {
  auto key = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(key);
  auto text = key->to_openssh("comment");
  ASSERT_TRUE(text);
  const std::string pem(text->view());
  const size_t begin = pem.find('\n') + 1, end = pem.find("-----END");
  std::string b64;
  for (char c : pem.substr(begin, end - begin))
    if (c != '\n') b64 += c;
  const std::string blob = *sshcert::base64_decode(b64);
  auto rewrap = [&](const std::string& b) {
    return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + sshcert::base64_encode(b) +
           "\n-----END OPENSSH PRIVATE KEY-----\n";
  };
  // Every single-byte change either fails to parse or (where the format
  // cannot tell, e.g. in the comment) gives the same key: never another.
  for (size_t i = 0; i < blob.size(); ++i) {
    std::string damaged = blob;
    damaged[i] ^= 0x01;
    auto back = PrivateKey::from_openssh(rewrap(damaged));
    if (back) EXPECT_EQ(back->ssh_public_key().blob, key->ssh_public_key().blob) << "offset " << i;
  }
  // Cut short anywhere: refused.
  for (size_t n = 0; n < blob.size(); n += 7)
    EXPECT_FALSE(PrivateKey::from_openssh(rewrap(blob.substr(0, n)))) << "length " << n;
  EXPECT_FALSE(PrivateKey::parse("not a key"));
}

TEST(CaKey, KeyFilesAreWrittenOwnerOnlyAndAtomically) {
  test::TempDir dir;
  auto key = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(key);
  const std::string path = dir.file("ca");
  const mode_t old_umask = umask(0);  // even with a permissive umask
  ASSERT_TRUE(save_private_key(path, *key, "c"));
  umask(old_umask);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Replaced in place: the old content is gone, no temporary file is left.
  auto other = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(save_private_key(path, *other, "c"));
  auto back = load_private_key(path);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->ssh_public_key().blob, other->ssh_public_key().blob);
  size_t files = 0;
  for (auto& e : fs::directory_iterator(dir.path())) files += e.path().filename() == "ca" ? 1 : 100;
  EXPECT_EQ(files, 1u);
}

TEST(CaKey, AKeyFileOthersCanReadIsRefusedWithChmodAdviceAndNoKeyBytes) {
  test::TempDir dir;
  auto key = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(key);
  const std::string path = dir.file("ca");
  ASSERT_TRUE(save_private_key(path, *key, "c"));
  const std::string contents = slurp(path);
  for (mode_t mode : {0640, 0604, 0660, 0620}) {
    chmod(path.c_str(), mode);
    auto loaded = load_private_key(path);
    ASSERT_FALSE(loaded) << std::oct << mode;
    EXPECT_EQ(loaded.error().kind(), Errc::permission_denied);
    EXPECT_NE(loaded.error().message.find("chmod 600 " + path), std::string::npos)
        << loaded.error().message;
    // The message names the file, never what is in it.
    const std::string body = contents.substr(contents.find('\n') + 1, 40);
    EXPECT_EQ(loaded.error().message.find(body), std::string::npos);
  }
  chmod(path.c_str(), 0400);
  EXPECT_TRUE(load_private_key(path));
}

TEST(CaKey, ASymlinkedOrOddKeyFileIsRefused) {
  test::TempDir dir;
  auto key = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(key);
  ASSERT_TRUE(save_private_key(dir.file("ca"), *key, "c"));
  ASSERT_EQ(symlink(dir.file("ca").c_str(), dir.file("link").c_str()), 0);
  auto linked = load_private_key(dir.file("link"));
  ASSERT_FALSE(linked);
  EXPECT_NE(linked.error().message.find("symbolic link"), std::string::npos) << linked.error().message;
  ASSERT_EQ(mkdir(dir.file("d").c_str(), 0700), 0);
  EXPECT_FALSE(load_private_key(dir.file("d")));
  spit(dir.file("big"), std::string(kMaxKeyText + 1, 'A'));
  auto big = load_private_key(dir.file("big"));
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("more than a key can be"), std::string::npos);
  EXPECT_FALSE(load_private_key(dir.file("missing")));
}

TEST(CaKey, AFileOwnedByAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
  test::TempDir dir;
  auto key = PrivateKey::generate(KeyAlgorithm::ed25519);
  ASSERT_TRUE(key);
  ASSERT_TRUE(save_private_key(dir.file("ca"), *key, "c"));
  ASSERT_EQ(chown(dir.file("ca").c_str(), 65534, 65534), 0);
  auto loaded = load_private_key(dir.file("ca"));
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("chown"), std::string::npos) << loaded.error().message;
}

}  // namespace
}  // namespace vigil::ca
