// The cluster's three certificate authorities, each a set of keys: one
// active key signs, every key in the set is trusted. That is what a CA
// rotation needs: add a key (trusted, not yet signing), let every node and
// client learn it, make it the active one, and once the certificates of the
// old key have expired, remove the old key.
//
// On disk (the auth service's data_dir/ca; directories 0700):
//   <dir>/<type>/key-<id>       the private key, 0600: OpenSSH format for the
//                               SSH CAs (ssh-keygen reads it), PKCS#8 PEM for TLS
//   <dir>/<type>/key-<id>.crt   the TLS CA's certificate for that key, 0644
//   <dir>/<type>/active         the active key's id
// where <type> is ssh_user, ssh_host or tls. Every file is replaced
// atomically; the active id is written after the keys it may name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ca/key.hpp"
#include "ca/ssh_ca.hpp"
#include "ca/tls_ca.hpp"
#include "common/result.hpp"
#include "sshcert/trusted_cas.hpp"

namespace vigil::ca {

enum class CaType : uint8_t { ssh_user, ssh_host, tls };
std::string_view ca_type_name(CaType type);  // "ssh_user", "ssh_host", "tls"

// A CA set holds at most this many keys (a rotation needs two).
inline constexpr size_t kMaxCaKeys = 8;
// The TLS CA certificate's validity.
inline constexpr int64_t kTlsCaValidity = 10LL * 365 * 24 * 3600;

class CertAuthority {
 public:
  struct Key {
    uint32_t id = 0;
    PrivateKey key;
    std::optional<TlsCertificate> certificate;  // tls only
  };

  // A CA with one new key, active.
  static Result<CertAuthority> create(CaType type, std::string cluster, int64_t now);

  CaType type() const { return type_; }
  const std::string& cluster() const { return cluster_; }
  const std::vector<Key>& keys() const { return keys_; }
  const Key& active() const;

  // Rotation. add_key: a new key, trusted but not signing; its id.
  Result<uint32_t> add_key(int64_t now);
  Result<void> activate(uint32_t id);
  Result<void> remove_key(uint32_t id);  // never the active one

  // What peers trust: every key of the set.
  // "ssh-ed25519 AAAA... <cluster> <type> CA" lines (TrustedUserCAKeys, or
  // sshcert::TrustedCAs::parse).
  std::string trusted_keys_text() const;
  Result<sshcert::TrustedCAs> trusted_ssh_cas() const;
  // "@cert-authority <hosts> ssh-ed25519 AAAA..." lines for known_hosts.
  std::string known_hosts_text(std::string_view hosts) const;
  std::vector<TlsCertificate> trusted_tls_certificates() const;
  // The active TLS CA certificate's pin ("sha256:..."); empty for SSH CAs.
  std::string pin() const;

  // Signing, always with the active key. An SSH user CA signs only user
  // certificates and the host CA only host certificates.
  Result<std::string> sign_ssh(const SshCertificateSpec& spec) const;
  Result<TlsCertificate> issue_tls(const TlsIssueRequest& request) const;

  Result<void> save(const std::string& dir) const;
  static Result<CertAuthority> load(const std::string& dir, CaType type, std::string cluster);

 private:
  CertAuthority(CaType type, std::string cluster) : type_(type), cluster_(std::move(cluster)) {}
  Result<Key> new_key(uint32_t id, int64_t now) const;

  CaType type_;
  std::string cluster_;
  std::vector<Key> keys_;
  uint32_t active_ = 0;
};

// The three CAs of a cluster.
struct ClusterCAs {
  CertAuthority ssh_user;
  CertAuthority ssh_host;
  CertAuthority tls;

  // Loads them from dir, creating (and saving) any that does not exist yet.
  static Result<ClusterCAs> load_or_create(const std::string& dir, const std::string& cluster,
                                           int64_t now);
};

}  // namespace vigil::ca
