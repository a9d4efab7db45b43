// User certificates made by the real ssh-keygen, read and authorized: every
// refusal reason a person can run into, and blobs cut or damaged anywhere.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include "sshcert/authorize.hpp"
#include "sshcert/keys.hpp"
#include "sshcert/trusted_cas.hpp"
#include "sshcert/wire.hpp"

namespace vigil::sshcert {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& path, std::string_view text) {
  std::ofstream(path, std::ios::binary) << text;
}

bool have_ssh_keygen() { return std::system("command -v ssh-keygen >/dev/null 2>&1") == 0; }

// ssh-keygen in a temporary directory. Keys are made once per name.
class Keygen {
 public:
  Keygen() {
    char tmpl[] = "/tmp/vigil-auth-test-XXXXXX";
    dir_ = mkdtemp(tmpl) ? tmpl : "";
  }
  ~Keygen() {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  const fs::path& dir() const { return dir_; }

  // Runs ssh-keygen with args; its output goes to a log shown on failure.
  void run(std::vector<std::string> args) {
    args.insert(args.begin(), "ssh-keygen");
    const fs::path log = dir_ / "ssh-keygen.log";
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 1);
      dup2(fd, 2);
      setenv("TZ", "UTC0", 1);  // -V dates are local time: make them UTC
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("ssh-keygen", argv.data());
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    std::string command;
    for (const auto& a : args) command += a + " ";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << command << "failed:\n" << read_file(log);
  }

  // A key pair <dir>/<name>{,.pub}: type "ed25519", "ecdsa-256", "rsa-3072"...
  fs::path key(const std::string& name, const std::string& type) {
    fs::path path = dir_ / name;
    if (fs::exists(path)) return path;
    std::vector<std::string> args = {"-q", "-N", "", "-C", name + "@test", "-f", path};
    const size_t dash = type.find('-');
    args.push_back("-t");
    args.push_back(type.substr(0, dash));
    if (dash != std::string::npos) {
      args.push_back("-b");
      args.push_back(type.substr(dash + 1));
    }
    run(args);
    return path;
  }

  // Signs a copy of user's public key with ca; returns the certificate's
  // text line. options are ssh-keygen's own (-I, -n, -V, -O, -h, -z, -t).
  std::string sign(const fs::path& ca, const fs::path& user, std::vector<std::string> options) {
    const fs::path copy = dir_ / ("cert" + std::to_string(++certs_) + ".pub");
    fs::copy_file(user.string() + ".pub", copy);
    std::vector<std::string> args = {"-q", "-s", ca};
    args.insert(args.end(), options.begin(), options.end());
    args.push_back(copy);
    run(args);
    return read_file(dir_ / ("cert" + std::to_string(certs_) + "-cert.pub"));
  }

 private:
  fs::path dir_;
  int certs_ = 0;
};

class CertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_ssh_keygen())
      FAIL() << "ssh-keygen not found: these tests make real keys and certificates with it; "
                "install openssh-client (scripts/deps.sh does)";
    ASSERT_FALSE(keygen_.dir().empty()) << "cannot create a temporary directory";
    ca_ = keygen_.key("ca", "ed25519");
    user_ = keygen_.key("user", "ed25519");
    auto cas = TrustedCAs::load({ca_.string() + ".pub"});
    ASSERT_TRUE(cas) << cas.error().message;
    cas_ = std::move(*cas);
  }

  Certificate cert(std::vector<std::string> options, const fs::path& ca = {}) {
    const std::string line = keygen_.sign(ca.empty() ? ca_ : ca, user_, std::move(options));
    auto cert = parse_certificate_line(line);
    EXPECT_TRUE(cert) << cert.error().message;
    return cert ? *cert : Certificate{};
  }

  AuthResult check(const Certificate& c, const std::string& login = "alice",
                   const std::string& from = "192.0.2.10") {
    return authorize(c, cas_, login, now_, from);
  }

  // The reason a certificate is refused, or "ok".
  std::string outcome(const AuthResult& r) {
    return r ? "ok" : std::string(refusal_name(r.refusal().reason));
  }

  Keygen keygen_;
  fs::path ca_, user_;
  TrustedCAs cas_;
  int64_t now_ = time(nullptr);
};

TEST_F(CertTest, ValidCertificateAuthorizes) {
  Certificate c = cert({"-I", "alice@corp", "-n", "alice,root", "-V", "-5m:+1h", "-O",
                        "extension:vigil-recording@vigil.dev=command,disk"});
  AuthResult r = check(c, "root");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->user, "alice@corp");
  EXPECT_EQ(r->login, "root");
  EXPECT_EQ(r->principals, (std::vector<std::string>{"alice", "root"}));
  EXPECT_EQ(r->valid_before, static_cast<int64_t>(c.valid_before));
  ASSERT_TRUE(r->recorded_kinds);
  EXPECT_EQ(r->recorded_kinds->to_string(), "command,disk");
  EXPECT_FALSE(r->force_command);
  EXPECT_EQ(r->ca_fingerprint, cas_.cas()[0].key.fingerprint());
  // ssh-keygen's default extensions are passed on for the server to honour.
  EXPECT_NE(std::find(r->extensions.begin(), r->extensions.end(), "permit-pty"),
            r->extensions.end());
}

TEST_F(CertTest, WithoutRecordingExtensionKindsAreUnset) {
  AuthResult r = check(cert({"-I", "alice", "-n", "alice"}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->recorded_kinds);  // the node's default_recording_kinds apply
}

TEST_F(CertTest, EveryFieldIsRead) {
  Certificate c = cert({"-I", "bob", "-n", "bob,deploy", "-z", "4242", "-V",
                        "20300101000000:20300201000000", "-O", "clear", "-O", "permit-pty",
                        "-O", "force-command=/usr/bin/backup --now", "-O",
                        "source-address=192.0.2.0/24"});
  EXPECT_EQ(c.key.type, KeyType::ed25519);
  EXPECT_EQ(c.nonce.size(), 32u);  // ssh-keygen's random nonce
  auto user_key = parse_public_key_line(read_file(user_.string() + ".pub"));
  ASSERT_TRUE(user_key) << user_key.error().message;
  EXPECT_EQ(c.key.blob, user_key->blob);
  EXPECT_EQ(c.serial, 4242u);
  EXPECT_EQ(c.type, CertType::user);
  EXPECT_EQ(c.key_id, "bob");
  EXPECT_EQ(c.principals, (std::vector<std::string>{"bob", "deploy"}));
  EXPECT_LT(c.valid_after, c.valid_before);
  EXPECT_EQ(c.valid_before - c.valid_after, 31u * 24 * 3600);
  ASSERT_EQ(c.critical_options.size(), 2u);
  EXPECT_EQ(c.critical_options[0].name, "force-command");
  EXPECT_EQ(c.critical_options[1].name, "source-address");
  ASSERT_EQ(c.extensions.size(), 1u);
  EXPECT_EQ(c.extensions[0].name, "permit-pty");
  EXPECT_EQ(c.extensions[0].data, "");
  EXPECT_EQ(c.reserved, "");
  EXPECT_EQ(c.signature_key.blob, cas_.cas()[0].key.blob);
  EXPECT_EQ(c.signature.algorithm, "ssh-ed25519");
  EXPECT_EQ(c.signature.bytes.size(), 64u);
  EXPECT_EQ(c.signed_data(), std::string_view(c.blob).substr(0, c.signed_length));

  AuthResult r = authorize(c, cas_, "deploy", c.valid_after, "192.0.2.99");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->force_command, "/usr/bin/backup --now");
  EXPECT_EQ(r->serial, 4242u);
}

TEST_F(CertTest, FingerprintMatchesSshKeygen) {
  keygen_.run({"-l", "-E", "sha256", "-f", ca_.string() + ".pub"});
  const std::string listed = read_file(keygen_.dir() / "ssh-keygen.log");
  EXPECT_NE(listed.find(cas_.cas()[0].key.fingerprint() + " "), std::string::npos) << listed;
}

TEST_F(CertTest, ValidityWindowIsHalfOpen) {
  Certificate c = cert({"-I", "alice", "-n", "alice", "-V", "20300101000000:20300102000000"});
  EXPECT_EQ(outcome(authorize(c, cas_, "alice", c.valid_after - 1, "")), "not_yet_valid");
  EXPECT_EQ(outcome(authorize(c, cas_, "alice", c.valid_after, "")), "ok");
  EXPECT_EQ(outcome(authorize(c, cas_, "alice", c.valid_before - 1, "")), "ok");
  EXPECT_EQ(outcome(authorize(c, cas_, "alice", c.valid_before, "")), "expired");
  EXPECT_EQ(outcome(authorize(c, cas_, "alice", -5, "")), "not_yet_valid");
}

TEST_F(CertTest, ExpiredAndNotYetValidAreRefused) {
  AuthResult expired = check(cert({"-I", "alice", "-n", "alice", "-V", "20000101:20000102"}));
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.refusal().reason, RefusalReason::expired);
  EXPECT_NE(expired.refusal().message.find("expired at 2000-01-0"), std::string::npos)
      << expired.refusal().message;

  AuthResult early = check(cert({"-I", "alice", "-n", "alice", "-V", "+1d:+2d"}));
  ASSERT_FALSE(early);
  EXPECT_EQ(early.refusal().reason, RefusalReason::not_yet_valid);
}

TEST_F(CertTest, ForeverNeverExpires) {
  Certificate c = cert({"-I", "alice", "-n", "alice", "-V", "always:forever"});
  EXPECT_EQ(c.valid_after, 0u);
  EXPECT_EQ(c.valid_before, kForever);
  AuthResult r = authorize(c, cas_, "alice", std::numeric_limits<int64_t>::max(), "");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->valid_before, std::numeric_limits<int64_t>::max());
}

TEST_F(CertTest, AnotherCaIsRefused) {
  fs::path other = keygen_.key("other-ca", "ed25519");
  AuthResult r = check(cert({"-I", "alice", "-n", "alice"}, other));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.refusal().reason, RefusalReason::untrusted_ca);
  EXPECT_NE(r.refusal().message.find("SHA256:"), std::string::npos) << r.refusal().message;
}

TEST_F(CertTest, LoginMustBeAPrincipal) {
  AuthResult r = check(cert({"-I", "alice", "-n", "alice,deploy"}), "root");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.refusal().reason, RefusalReason::principal_mismatch);
  EXPECT_EQ(r.refusal().message,
            "login 'root' is not among the certificate's principals (alice, deploy)");
  EXPECT_EQ(outcome(check(cert({"-I", "alice", "-n", "alice"}), "Alice")), "principal_mismatch");
}

TEST_F(CertTest, EmptyPrincipalListIsRefused) {
  EXPECT_EQ(outcome(check(cert({"-I", "alice"}))), "no_principals");
}

TEST_F(CertTest, EmptyKeyIdIsRefused) {
  EXPECT_EQ(outcome(check(cert({"-I", "", "-n", "alice"}))), "empty_key_id");
}

TEST_F(CertTest, HostCertificateIsRefused) {
  Certificate c = cert({"-h", "-I", "alice", "-n", "alice"});
  EXPECT_EQ(c.type, CertType::host);
  EXPECT_EQ(outcome(check(c)), "not_user_certificate");
}

TEST_F(CertTest, TamperedCertificateFailsTheSignature) {
  Certificate good = cert({"-I", "alice", "-n", "alice,root"});
  ASSERT_TRUE(check(good));

  // The key id "alice" becomes "blice": a different certificate, same CA.
  std::string blob = good.blob;
  const size_t at = blob.find("alice");
  ASSERT_LT(at, good.signed_length);
  blob[at] = 'b';
  AuthResult r = authorize_blob(blob, cas_, "alice", now_, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.refusal().reason, RefusalReason::bad_signature);
  EXPECT_NE(r.error().message.find("signature"), std::string::npos);

  // Now damage the signature itself.
  blob = good.blob;
  blob.back() ^= 0x01;
  EXPECT_EQ(outcome(authorize_blob(blob, cas_, "alice", now_, "")), "bad_signature");
}

TEST_F(CertTest, UnknownCriticalOptionIsRefused) {
  AuthResult r =
      check(cert({"-I", "alice", "-n", "alice", "-O", "critical:verify-required@example.com"}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.refusal().reason, RefusalReason::unknown_critical_option);
  EXPECT_NE(r.refusal().message.find("verify-required@example.com"), std::string::npos);
  // Unknown extensions are ignored, as the format says.
  EXPECT_TRUE(check(cert({"-I", "alice", "-n", "alice", "-O", "extension:foo@example.com=1"})));
}

TEST_F(CertTest, SourceAddressIsHonoured) {
  Certificate c = cert({"-I", "alice", "-n", "alice", "-O",
                        "source-address=10.0.0.0/8,2001:db8::/32,192.0.2.7"});
  EXPECT_EQ(outcome(check(c, "alice", "10.20.30.40")), "ok");
  EXPECT_EQ(outcome(check(c, "alice", "::ffff:10.20.30.40")), "ok");  // dual-stack listener
  EXPECT_EQ(outcome(check(c, "alice", "192.0.2.7")), "ok");
  EXPECT_EQ(outcome(check(c, "alice", "2001:db8:1::5")), "ok");
  EXPECT_EQ(outcome(check(c, "alice", "192.0.2.8")), "source_address_mismatch");
  EXPECT_EQ(outcome(check(c, "alice", "11.0.0.1")), "source_address_mismatch");
  EXPECT_EQ(outcome(check(c, "alice", "2001:db9::1")), "source_address_mismatch");
  EXPECT_EQ(outcome(check(c, "alice", "")), "source_address_mismatch");
  EXPECT_EQ(outcome(check(c, "alice", "not-an-address")), "source_address_mismatch");
}

TEST_F(CertTest, ForceCommandIsReturned) {
  AuthResult r = check(cert({"-I", "alice", "-n", "alice", "-O", "force-command=uptime"}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->force_command, "uptime");
}

TEST_F(CertTest, RecordingExtensionMustRead) {
  auto with = [&](const std::string& option) {
    return check(cert({"-I", "alice", "-n", "alice", "-O", option}));
  };
  AuthResult all = with("extension:vigil-recording@vigil.dev=network,command,disk");
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(*all->recorded_kinds, KindSet::all());

  AuthResult bad = with("extension:vigil-recording@vigil.dev=command,keys");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.refusal().reason, RefusalReason::bad_recording_extension);
  EXPECT_NE(bad.refusal().message.find("unknown event kind 'keys'"), std::string::npos)
      << bad.refusal().message;
  EXPECT_EQ(outcome(with("extension:vigil-recording@vigil.dev=")), "bad_recording_extension");
  EXPECT_EQ(outcome(with("extension:vigil-recording@vigil.dev=disk,disk")),
            "bad_recording_extension");
  // As a flag, without a value.
  EXPECT_EQ(outcome(with("extension:vigil-recording@vigil.dev")), "bad_recording_extension");
}

TEST_F(CertTest, Sha1RsaSignatureIsRefused) {
  fs::path rsa_ca = keygen_.key("rsa-ca", "rsa-3072");
  auto cas = TrustedCAs::load({ca_.string() + ".pub", rsa_ca.string() + ".pub"});
  ASSERT_TRUE(cas) << cas.error().message;
  Certificate sha1 = cert({"-t", "ssh-rsa", "-I", "alice", "-n", "alice"}, rsa_ca);
  EXPECT_EQ(sha1.signature.algorithm, "ssh-rsa");
  EXPECT_EQ(outcome(authorize(sha1, *cas, "alice", now_, "")), "weak_signature");
  Certificate sha256 = cert({"-t", "rsa-sha2-256", "-I", "alice", "-n", "alice"}, rsa_ca);
  EXPECT_EQ(sha256.signature.algorithm, "rsa-sha2-256");
  EXPECT_EQ(outcome(authorize(sha256, *cas, "alice", now_, "")), "ok");
}

// Every cut of a valid blob is an error; so is a byte too many; so are
// damaged blobs, which also never authorize.
TEST_F(CertTest, DamagedBlobsAreErrorsNeverCrashes) {
  Certificate good = cert({"-I", "alice", "-n", "alice", "-O", "source-address=10.0.0.0/8", "-O",
                           "extension:vigil-recording@vigil.dev=command"});
  const std::string& blob = good.blob;
  for (size_t len = 0; len < blob.size(); ++len) {
    auto cut = parse_certificate(blob.substr(0, len));
    ASSERT_FALSE(cut) << "a blob cut to " << len << " bytes parsed";
    EXPECT_FALSE(cut.error().message.empty());
    EXPECT_EQ(outcome(authorize_blob(blob.substr(0, len), cas_, "alice", now_, "10.0.0.1")),
              "malformed_certificate");
  }
  auto longer = parse_certificate(blob + '\0');
  ASSERT_FALSE(longer);
  EXPECT_NE(longer.error().message.find("trailing"), std::string::npos) << longer.error().message;

  std::mt19937 random(1234);
  for (int i = 0; i < 3000; ++i) {
    std::string damaged = blob;
    const int flips = 1 + static_cast<int>(random() % 3);
    for (int f = 0; f < flips; ++f)
      damaged[random() % damaged.size()] ^= static_cast<char>(1 + random() % 255);
    AuthResult r = authorize_blob(damaged, cas_, "alice", now_, "10.0.0.1");
    ASSERT_FALSE(r) << "a damaged certificate authorized (round " << i << ")";
  }
}

// The kinds of CA a node may trust, each with a user certificate.
struct CaKind {
  const char* name;
  const char* type;
  const char* user_type;
};

class CaKindTest : public CertTest, public ::testing::WithParamInterface<CaKind> {};

TEST_P(CaKindTest, SignsUsableCertificates) {
  const CaKind& kind = GetParam();
  fs::path ca = keygen_.key(std::string("ca-") + kind.name, kind.type);
  user_ = keygen_.key(std::string("user-") + kind.name, kind.user_type);
  auto cas = TrustedCAs::load({ca.string() + ".pub"});
  ASSERT_TRUE(cas) << cas.error().message;
  const std::string line = keygen_.sign(
      ca, user_,
      {"-I", "carol", "-n", "carol", "-O", "extension:vigil-recording@vigil.dev=network"});
  auto parsed = parse_certificate_line(line);
  ASSERT_TRUE(parsed) << parsed.error().message;
  const Certificate& c = *parsed;
  EXPECT_EQ(cert_type_name(c.key.type), parse_key_line(line)->type);
  AuthResult r = authorize(c, *cas, "carol", now_, "");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->user, "carol");
  EXPECT_EQ(r->recorded_kinds->to_string(), "network");
  // The certified key is the user's key, in its plain form.
  auto user_key = parse_public_key_line(read_file(user_.string() + ".pub"));
  ASSERT_TRUE(user_key) << user_key.error().message;
  EXPECT_EQ(c.key.blob, user_key->blob);

  // A byte changed in the signed part, or in the signature: "signature".
  std::string blob = c.blob;
  const size_t nonce_at = 4 + cert_type_name(c.key.type).size() + 4;
  blob[nonce_at + 5] ^= 0x20;
  EXPECT_EQ(outcome(authorize_blob(blob, *cas, "carol", now_, "")), "bad_signature");
  blob = c.blob;
  blob[blob.size() - 3] ^= 0x01;
  AuthResult damaged = authorize_blob(blob, *cas, "carol", now_, "");
  EXPECT_EQ(outcome(damaged), "bad_signature") << damaged.error().message;
  // The default CA does not vouch for this one.
  EXPECT_EQ(outcome(authorize(c, cas_, "carol", now_, "")), "untrusted_ca");
}

INSTANTIATE_TEST_SUITE_P(Auth, CaKindTest,
                         ::testing::Values(CaKind{"ed25519", "ed25519", "ecdsa-256"},
                                           CaKind{"ecdsa256", "ecdsa-256", "ed25519"},
                                           CaKind{"ecdsa384", "ecdsa-384", "ecdsa-521"},
                                           CaKind{"ecdsa521", "ecdsa-521", "ecdsa-384"},
                                           CaKind{"rsa3072", "rsa-3072", "rsa-2048"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(CertTest, CaFilesSkipCommentsAndNameBadLines) {
  const std::string ca_line = read_file(ca_.string() + ".pub");
  fs::path other = keygen_.key("other-ca", "ecdsa-256");
  const std::string other_line = read_file(other.string() + ".pub");

  const fs::path good = keygen_.dir() / "cas.pub";
  write_file(good, "# Vigil user CAs\n\n   \n" + ca_line + "\t# indented comment\r\n" +
                       other_line + ca_line);
  auto cas = TrustedCAs::load({good});
  ASSERT_TRUE(cas) << cas.error().message;
  ASSERT_EQ(cas->cas().size(), 2u);  // the repeated key counts once
  EXPECT_EQ(cas->cas()[0].source, good.string() + ":4");
  EXPECT_EQ(cas->cas()[0].comment, "ca@test");
  EXPECT_EQ(cas->cas()[1].key.type, KeyType::ecdsa_p256);

  auto error_of = [&](const std::string& text) {
    const fs::path file = keygen_.dir() / "bad.pub";
    write_file(file, text);
    auto loaded = TrustedCAs::load({good, file});
    return loaded ? std::string("(loaded)") : loaded.error().message;
  };
  const std::string bad = (keygen_.dir() / "bad.pub").string();
  EXPECT_EQ(error_of("# ok\n" + ca_line + "garbage\n"),
            bad + ":3: expected '<key type> <base64 key> [comment]'");
  EXPECT_EQ(error_of("\nssh-ed25519 AAAA!!!! x\n"),
            bad + ":2: the key after 'ssh-ed25519' is not valid base64");
  EXPECT_EQ(error_of("ssh-rsa " + ca_line.substr(ca_line.find(' ') + 1)),
            bad + ":1: the line says 'ssh-rsa' but its key is of type 'ssh-ed25519'");
  EXPECT_EQ(error_of(keygen_.sign(ca_, user_, {"-I", "x", "-n", "x"})),
            bad + ":1: public key: is a certificate, not a plain public key");
  EXPECT_EQ(error_of("# only a comment\n\n"),
            bad + ": holds no CA public key (expected lines like 'ssh-ed25519 AAAA... comment')");

  auto missing = TrustedCAs::load({(keygen_.dir() / "missing.pub").string()});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "cannot read trusted user CA file " +
                                         (keygen_.dir() / "missing.pub").string() +
                                         ": No such file or directory");
}

}  // namespace
}  // namespace vigil::sshcert
