// A certificate authority's private key: generated with OpenSSL, serialized
// for storage (OpenSSH's private key format for the SSH CAs, PKCS#8 PEM for
// the TLS CA) and read back strictly.
//
// Key material never reaches a log or an error message: serialized keys are
// Secret values, wiped when they go away.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "sshcert/keys.hpp"

namespace vigil::ca {

// Ed25519 for the SSH CAs (OpenSSH and libssh 0.10 both take it); ECDSA P-256
// for the TLS CA (every TLS 1.2/1.3 stack takes it, browsers included, which
// Ed25519 certificates do not have yet).
enum class KeyAlgorithm : uint8_t { ed25519, ecdsa_p256 };

std::string_view algorithm_name(KeyAlgorithm algorithm);  // "ed25519", "ecdsa-p256"

// Bytes that must not outlive their use: wiped (OPENSSL_cleanse) on
// destruction. Move-only, so no stray copy is made by accident.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string bytes) : bytes_(std::move(bytes)) {}
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& o) noexcept : bytes_(std::move(o.bytes_)) { o.wipe(); }
  Secret& operator=(Secret&& o) noexcept {
    if (this != &o) {
      wipe();
      bytes_ = std::move(o.bytes_);
      o.wipe();
    }
    return *this;
  }
  ~Secret() { wipe(); }

  std::string_view view() const { return bytes_; }
  size_t size() const { return bytes_.size(); }

 private:
  void wipe();
  std::string bytes_;
};

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

class PrivateKey {
 public:
  static Result<PrivateKey> generate(KeyAlgorithm algorithm);

  // "-----BEGIN OPENSSH PRIVATE KEY-----" (PROTOCOL.key), unencrypted, as
  // ssh-keygen -N '' writes it. Ed25519 only (the SSH CAs' algorithm).
  static Result<PrivateKey> from_openssh(std::string_view text);
  // "-----BEGIN PRIVATE KEY-----" (PKCS#8, RFC 5208), unencrypted.
  static Result<PrivateKey> from_pem(std::string_view text);
  // Either of the two, by its first line.
  static Result<PrivateKey> parse(std::string_view text);

  Result<Secret> to_openssh(std::string_view comment) const;
  Result<Secret> to_pem() const;

  KeyAlgorithm algorithm() const { return algorithm_; }
  EVP_PKEY* get() const { return pkey_.get(); }

  // The public half: as OpenSSH writes it on the wire, as a one-line
  // public key ("ssh-ed25519 AAAA... comment"), as X.509's
  // SubjectPublicKeyInfo DER.
  const sshcert::PublicKey& ssh_public_key() const { return ssh_public_; }
  std::string ssh_public_key_line(std::string_view comment = {}) const;
  std::string spki_der() const;

  // An SSH signature over data (RFC 8709 for Ed25519; RFC 5656 for P-256,
  // with SHA-256): the algorithm name and its bytes.
  Result<sshcert::Signature> sign_ssh(std::string_view data) const;

 private:
  PrivateKey(PkeyPtr pkey, KeyAlgorithm algorithm, sshcert::PublicKey pub)
      : pkey_(std::move(pkey)), algorithm_(algorithm), ssh_public_(std::move(pub)) {}
  static Result<PrivateKey> wrap(PkeyPtr pkey);

  PkeyPtr pkey_;
  KeyAlgorithm algorithm_ = KeyAlgorithm::ed25519;
  sshcert::PublicKey ssh_public_;
};

// The largest key file read (a key is a few hundred bytes).
inline constexpr size_t kMaxKeyText = 64 * 1024;

}  // namespace vigil::ca
