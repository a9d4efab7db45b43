// The cluster's TLS CA: its self-signed certificate, the X.509 identities
// it issues to nodes and users, and the check of a peer's certificate.
//
// How an identity is written in a certificate (read back by verify_tls_peer):
//   subjectAltName URI  vigil://<cluster>/<kind>/<name>, exactly one; kind is
//                       "user" or "node", cluster and name percent-encoded
//                       (RFC 3986: all but A-Z a-z 0-9 - . _ ~). The URI is
//                       the identity, as a SPIFFE ID is in an X.509-SVID.
//   subject             O=<cluster>, CN=<name> (the user name, or the node's
//                       uuid), one OU per role ("node" for a node; a user's
//                       roles otherwise), one UID per login (users)
//   subjectAltName DNS  a node's name and uuid, and its DNS addresses
//   subjectAltName IP   a node's IP addresses
//   validity            [now - kClockSkew, now + ttl)
//   extKeyUsage         clientAuth (users); serverAuth and clientAuth (nodes)
//   keyUsage            digitalSignature (critical); basicConstraints CA:FALSE
// The role name "node" is reserved for nodes: a user identity holding it is
// refused when issued and when verified.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ca/key.hpp"
#include "common/result.hpp"

namespace vigil::ca {

inline constexpr std::string_view kNodeRole = "node";
// Roles a node identity may hold beside "node": the auth service's own
// server certificate carries "auth" (clients require it of the server they
// call, so a joined node cannot pose as the auth service), a proxy's "proxy".
inline constexpr std::string_view kAuthRole = "auth";
inline constexpr std::string_view kProxyRole = "proxy";

// An X.509 certificate (reference-counted by OpenSSL: copies are cheap).
class TlsCertificate {
 public:
  static Result<TlsCertificate> from_pem(std::string_view text);
  static Result<TlsCertificate> from_der(std::string_view der);
  explicit TlsCertificate(X509* owned) : x509_(owned) {}  // takes a reference
  TlsCertificate(const TlsCertificate& o);
  TlsCertificate& operator=(const TlsCertificate& o);
  TlsCertificate(TlsCertificate&& o) noexcept : x509_(std::exchange(o.x509_, nullptr)) {}
  TlsCertificate& operator=(TlsCertificate&& o) noexcept;
  ~TlsCertificate();

  X509* get() const { return x509_; }
  std::string pem() const;
  std::string der() const;

 private:
  X509* x509_ = nullptr;
};

// "sha256:<hex of SHA-256 of the certificate's SubjectPublicKeyInfo DER>",
// the CA pin a node or client checks the auth service's CA against before
// it trusts anything the service sends (Teleport's format).
std::string ca_pin(const TlsCertificate& ca);

// The CA's own certificate: O=<cluster>, CN=<cluster> Vigil CA,
// basicConstraints CA:TRUE pathlen:0, keyUsage keyCertSign cRLSign.
Result<TlsCertificate> make_tls_ca_certificate(const PrivateKey& key, std::string_view cluster,
                                               int64_t now, int64_t validity_seconds);

enum class TlsIdentityKind : uint8_t { user, node };

struct TlsIdentity {
  TlsIdentityKind kind = TlsIdentityKind::user;
  std::string cluster;
  std::string name;                    // user name, or the node's uuid
  std::vector<std::string> roles;      // a node: {"node"}
  std::vector<std::string> logins;     // users
  std::string node_name;               // nodes: host name (a DNS SAN)
  std::vector<std::string> addresses;  // nodes: IP addresses and DNS names
  int64_t not_before = 0;              // unix seconds (filled when read back)
  int64_t not_after = 0;
  std::string serial;                  // hex (filled when read back)
};

struct TlsIssueRequest {
  TlsIdentity identity;            // not_before, not_after, serial: ignored
  std::string subject_public_key;  // the holder's SubjectPublicKeyInfo, DER
  int64_t now = 0;
  int64_t ttl = 0;                 // seconds, > 0
};

// A certificate for the identity, signed by the CA's active key. The CA
// certificate's cluster (its O) must be the identity's.
Result<TlsCertificate> issue_tls_certificate(const PrivateKey& ca_key, const TlsCertificate& ca_cert,
                                             const TlsIssueRequest& request);

enum class TlsUsage : uint8_t { client, server };

enum class TlsRefusalReason : uint8_t {
  malformed_certificate,  // unreadable, or no certificate
  untrusted_ca,           // not issued by a trusted CA key (another cluster, self-made)
  bad_signature,          // the issuer's signature does not verify (tampered)
  expired,
  not_yet_valid,
  wrong_usage,            // a CA certificate as a peer, or extKeyUsage lacks the usage
  bad_identity,           // no (or more than one) vigil:// URI, or it disagrees with the subject
  wrong_cluster,          // an identity of another cluster
};
std::string_view tls_refusal_name(TlsRefusalReason reason);

struct TlsRefusal {
  TlsRefusalReason reason = TlsRefusalReason::malformed_certificate;
  std::string message;
  Error error() const;  // "<reason>: <message>", Errc::unauthenticated
};

// A TlsIdentity or a TlsRefusal.
class [[nodiscard]] TlsVerification {
 public:
  TlsVerification(TlsIdentity identity) : identity_(std::move(identity)) {}
  TlsVerification(TlsRefusal refusal) : refusal_(std::move(refusal)) {}
  bool ok() const { return identity_.has_value(); }
  explicit operator bool() const { return ok(); }
  const TlsIdentity& value() const { return *identity_; }
  const TlsIdentity* operator->() const { return &*identity_; }
  const TlsRefusal& refusal() const { return refusal_; }

 private:
  std::optional<TlsIdentity> identity_;
  TlsRefusal refusal_;
};

// Checks the peer's leaf certificate against any of the trusted CA
// certificates (rotation: the old and the new CA), at time now, for the
// usage (client: a TLS server checking its client), and reads its identity.
// Only the leaf is looked at: Vigil's CAs issue no intermediates, so other
// certificates a peer sends are ignored.
TlsVerification verify_tls_peer(X509* leaf, const std::vector<TlsCertificate>& trusted,
                                std::string_view cluster, TlsUsage usage, int64_t now);
TlsVerification verify_tls_peer_der(std::string_view leaf_der,
                                    const std::vector<TlsCertificate>& trusted,
                                    std::string_view cluster, TlsUsage usage, int64_t now);

// An OpenSSL context for one side of a mutual-TLS connection: TLS 1.3
// only, our certificate and key, the peer's certificate required and
// checked against trusted. After the handshake, verify_tls_peer() on
// SSL_get0_peer_certificate() gives the peer's identity.
struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
Result<SslCtxPtr> make_mutual_tls_context(TlsUsage side, const PrivateKey& key,
                                          const TlsCertificate& cert,
                                          const std::vector<TlsCertificate>& trusted);

}  // namespace vigil::ca
