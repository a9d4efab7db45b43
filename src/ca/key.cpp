#include "ca/key.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "sshcert/wire.hpp"

namespace vigil::ca {
namespace {

constexpr std::string_view kOpensshBegin = "-----BEGIN OPENSSH PRIVATE KEY-----";
constexpr std::string_view kOpensshEnd = "-----END OPENSSH PRIVATE KEY-----";
constexpr std::string_view kPemBegin = "-----BEGIN PRIVATE KEY-----";
constexpr std::string_view kOpensshMagic{"openssh-key-v1\0", 15};

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

// Wipes a buffer that held key material when the scope ends.
struct Wipe {
  std::string& s;
  ~Wipe() { OPENSSL_cleanse(s.data(), s.size()); }
};

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// OpenSSL's error queue holds what failed; we keep none of it (it can name
// internals, never key bytes) but must not leave it for the next caller.
Error openssl_error(Errc code, std::string message) {
  ERR_clear_error();
  return Error::of(code, std::move(message));
}

// A passphrase callback that refuses: an encrypted key is an error, never a
// prompt on whatever terminal the service has.
int no_passphrase(char*, int, int, void*) { return -1; }

std::string wrapped_base64(std::string_view bytes) {
  const std::string b64 = sshcert::base64_encode(bytes);
  std::string out;
  for (size_t i = 0; i < b64.size(); i += 70) out += b64.substr(i, 70) + "\n";
  return out;
}

}  // namespace

void Secret::wipe() {
  OPENSSL_cleanse(bytes_.data(), bytes_.size());
  bytes_.clear();
}

std::string_view algorithm_name(KeyAlgorithm algorithm) {
  return algorithm == KeyAlgorithm::ed25519 ? "ed25519" : "ecdsa-p256";
}

Result<PrivateKey> PrivateKey::wrap(PkeyPtr pkey) {
  sshcert::WireWriter w;
  KeyAlgorithm algorithm;
  if (EVP_PKEY_get_id(pkey.get()) == EVP_PKEY_ED25519) {
    algorithm = KeyAlgorithm::ed25519;
    unsigned char pub[32];
    size_t len = sizeof pub;
    if (EVP_PKEY_get_raw_public_key(pkey.get(), pub, &len) != 1 || len != sizeof pub)
      return openssl_error(Errc::internal, "cannot read the Ed25519 public key from OpenSSL");
    w.bytes("ssh-ed25519");
    w.bytes({reinterpret_cast<char*>(pub), len});
  } else if (EVP_PKEY_is_a(pkey.get(), "EC")) {
    char group[64] = {};
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &glen) != 1 ||
        (std::string_view(group) != "prime256v1" && std::string_view(group) != "P-256"))
      return openssl_error(Errc::invalid_argument,
                           "the key is an EC key on curve '" + std::string(group) +
                               "'; Vigil's CAs use P-256 (prime256v1) or Ed25519");
    algorithm = KeyAlgorithm::ecdsa_p256;
    unsigned char point[65];
    size_t plen = 0;
    if (EVP_PKEY_get_octet_string_param(pkey.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                        sizeof point, &plen) != 1 ||
        plen != sizeof point || point[0] != 0x04)
      return openssl_error(Errc::internal, "cannot read the P-256 public point from OpenSSL");
    w.bytes("ecdsa-sha2-nistp256");
    w.bytes("nistp256");
    w.bytes({reinterpret_cast<char*>(point), plen});
  } else {
    return openssl_error(Errc::invalid_argument,
                         "the key is neither Ed25519 nor ECDSA P-256, the algorithms Vigil's CAs "
                         "use");
  }
  auto pub = sshcert::parse_public_key(w.data());
  if (!pub) return Error::of(Errc::internal, "own public key does not parse: " + pub.error().message);
  return PrivateKey(std::move(pkey), algorithm, std::move(*pub));
}

Result<PrivateKey> PrivateKey::generate(KeyAlgorithm algorithm) {
  EVP_PKEY* pkey = algorithm == KeyAlgorithm::ed25519
                       ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                       : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (!pkey)
    return openssl_error(Errc::internal, "OpenSSL could not generate an " +
                                             std::string(algorithm_name(algorithm)) + " key");
  return wrap(PkeyPtr(pkey));
}

Result<PrivateKey> PrivateKey::parse(std::string_view text) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start != std::string_view::npos && text.substr(start).starts_with(kOpensshBegin))
    return from_openssh(text);
  return from_pem(text);
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view text) {
  if (text.size() > kMaxKeyText)
    return Error::of(Errc::invalid_argument, "the key text is larger than a key can be");
  if (text.find(kPemBegin) == std::string_view::npos) {
    if (text.find("ENCRYPTED PRIVATE KEY") != std::string_view::npos)
      return Error::of(Errc::invalid_argument,
                       "the key is encrypted; Vigil needs it unencrypted, readable by its "
                       "service user only (openssl pkcs8 -topk8 -nocrypt)");
    return Error::of(Errc::invalid_argument,
                     "not a PKCS#8 PEM private key (no '-----BEGIN PRIVATE KEY-----' line)");
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return openssl_error(Errc::resource_exhausted, "out of memory reading a key");
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  if (!pkey) return openssl_error(Errc::invalid_argument, "the PEM private key cannot be read");
  ERR_clear_error();
  return wrap(PkeyPtr(pkey));
}

Result<Secret> PrivateKey::to_pem() const {
  // A secure-heap memory BIO: its buffer is wiped when freed.
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1)
    return openssl_error(Errc::internal, "OpenSSL could not write the key as PEM");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return Secret(std::string(data, static_cast<size_t>(len)));
}

Result<Secret> PrivateKey::to_openssh(std::string_view comment) const {
  if (algorithm_ != KeyAlgorithm::ed25519)
    return Error::of(Errc::invalid_argument,
                     "only Ed25519 keys are written in OpenSSH's format here; use PEM");
  std::string seed(32, '\0');
  Wipe wipe_seed{seed};
  size_t len = seed.size();
  if (EVP_PKEY_get_raw_private_key(pkey_.get(), reinterpret_cast<unsigned char*>(seed.data()),
                                   &len) != 1 ||
      len != 32)
    return openssl_error(Errc::internal, "cannot read the Ed25519 private key from OpenSSL");
  // The public key: the blob's second string.
  sshcert::WireReader pr(ssh_public_.blob, "own key");
  pr.bytes("type");
  const std::string pub(pr.bytes("key"));

  uint32_t check = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&check), sizeof check) != 1)
    return openssl_error(Errc::internal, "OpenSSL's random generator failed");
  sshcert::WireWriter section;
  Wipe wipe_section{section.data()};
  section.u32(check);
  section.u32(check);
  section.bytes("ssh-ed25519");
  section.bytes(pub);
  std::string secret = seed + pub;  // OpenSSH stores seed || public key
  Wipe wipe_secret{secret};
  section.bytes(secret);
  section.bytes(comment);
  for (char pad = 1; section.data().size() % 8 != 0; ++pad) section.data() += pad;

  sshcert::WireWriter out;
  Wipe wipe_out{out.data()};
  out.raw(kOpensshMagic);
  out.bytes("none");  // cipher
  out.bytes("none");  // kdf
  out.bytes("");      // kdf options
  out.u32(1);         // number of keys
  out.bytes(ssh_public_.blob);
  out.bytes(section.data());
  std::string b64 = wrapped_base64(out.data());
  Wipe wipe_b64{b64};
  return Secret(std::string(kOpensshBegin) + "\n" + b64 + std::string(kOpensshEnd) + "\n");
}

Result<PrivateKey> PrivateKey::from_openssh(std::string_view text) {
  if (text.size() > kMaxKeyText)
    return Error::of(Errc::invalid_argument, "the key text is larger than a key can be");
  const size_t begin = text.find(kOpensshBegin);
  const size_t end = text.find(kOpensshEnd);
  if (begin == std::string_view::npos || end == std::string_view::npos || end < begin)
    return Error::of(Errc::invalid_argument,
                     "not an OpenSSH private key (no BEGIN/END OPENSSH PRIVATE KEY lines)");
  std::string b64;
  Wipe wipe_b64{b64};
  for (char c : text.substr(begin + kOpensshBegin.size(), end - begin - kOpensshBegin.size()))
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') b64 += c;
  auto decoded = sshcert::base64_decode(b64);
  if (!decoded) return Error::of(Errc::invalid_argument, "the OpenSSH private key is not valid base64");
  std::string blob = std::move(*decoded);
  Wipe wipe_blob{blob};
  if (!std::string_view(blob).starts_with(kOpensshMagic))
    return Error::of(Errc::invalid_argument, "the OpenSSH private key lacks its openssh-key-v1 header");

  sshcert::WireReader r(std::string_view(blob).substr(kOpensshMagic.size()), "OpenSSH private key");
  const std::string_view cipher = r.text("cipher");
  const std::string_view kdf = r.text("kdf");
  r.bytes("kdf options");
  const uint32_t keys = r.u32("number of keys");
  const std::string_view pub_blob = r.bytes("public key");
  const std::string_view section = r.bytes("private keys");
  r.expect_end();
  if (!r.ok()) return Error::of(Errc::invalid_argument, r.error().message);
  if (cipher != "none" || kdf != "none")
    return Error::of(Errc::invalid_argument,
                     "the OpenSSH private key is protected by a passphrase; Vigil needs it "
                     "unencrypted, readable by its service user only (ssh-keygen -p -N '' -f FILE)");
  if (keys != 1)
    return Error::of(Errc::invalid_argument, "the OpenSSH private key file holds " +
                                                 std::to_string(keys) + " keys, not one");

  sshcert::WireReader s(section, "OpenSSH private key");
  const uint32_t check1 = s.u32("check");
  const uint32_t check2 = s.u32("check");
  const std::string_view type = s.text("key type");
  if (s.ok() && type != "ssh-ed25519")
    return Error::of(Errc::invalid_argument,
                     "the OpenSSH private key is of type '" + std::string(type) +
                         "'; Vigil's SSH CAs are Ed25519 keys");
  const std::string_view pk = s.bytes("public key");
  const std::string_view sk = s.bytes("private key");
  s.text("comment");
  if (!s.ok()) return Error::of(Errc::invalid_argument, s.error().message);
  const std::string_view padding = section.substr(s.offset());
  bool padding_ok = padding.size() < 8;
  for (size_t i = 0; i < padding.size(); ++i)
    padding_ok = padding_ok && static_cast<unsigned char>(padding[i]) == i + 1;
  if (check1 != check2 || !padding_ok)
    return Error::of(Errc::data_loss, "the OpenSSH private key is damaged (check bytes or "
                                      "padding do not match)");
  if (pk.size() != 32 || sk.size() != 64 || sk.substr(32) != pk)
    return Error::of(Errc::data_loss,
                     "the OpenSSH private key's Ed25519 fields are damaged (sizes or the public "
                     "half do not match)");
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, bytes_of(sk), 32);
  if (!pkey) return openssl_error(Errc::invalid_argument, "OpenSSL refused the Ed25519 key");
  auto key = wrap(PkeyPtr(pkey));
  if (!key) return key.error();
  if (key->ssh_public_key().blob != pub_blob)
    return Error::of(Errc::data_loss,
                     "the OpenSSH private key does not match the public key stored with it");
  return key;
}

std::string PrivateKey::ssh_public_key_line(std::string_view comment) const {
  std::string line = std::string(sshcert::key_type_name(ssh_public_.type)) + " " +
                     sshcert::base64_encode(ssh_public_.blob);
  if (!comment.empty()) line += " " + std::string(comment);
  return line;
}

std::string PrivateKey::spki_der() const {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey_.get(), &der);
  if (len <= 0) return {};
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

Result<sshcert::Signature> PrivateKey::sign_ssh(std::string_view data) const {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  const EVP_MD* md = algorithm_ == KeyAlgorithm::ed25519 ? nullptr : EVP_sha256();
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, pkey_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, bytes_of(data), data.size()) != 1)
    return openssl_error(Errc::internal, "OpenSSL cannot sign with the CA key");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, bytes_of(data),
                     data.size()) != 1)
    return openssl_error(Errc::internal, "OpenSSL failed to sign with the CA key");
  sig.resize(len);
  if (algorithm_ == KeyAlgorithm::ed25519) return sshcert::Signature{"ssh-ed25519", sig};

  // DER (r, s) -> SSH's mpint r, mpint s.
  const unsigned char* p = bytes_of(sig);
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> es(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  if (!es) return openssl_error(Errc::internal, "OpenSSL wrote an unreadable ECDSA signature");
  sshcert::WireWriter w;
  for (const BIGNUM* n : {ECDSA_SIG_get0_r(es.get()), ECDSA_SIG_get0_s(es.get())}) {
    std::string magnitude(static_cast<size_t>(BN_num_bytes(n)), '\0');
    BN_bn2bin(n, reinterpret_cast<unsigned char*>(magnitude.data()));
    w.positive_mpint(magnitude);
  }
  return sshcert::Signature{"ecdsa-sha2-nistp256", w.data()};
}

}  // namespace vigil::ca
