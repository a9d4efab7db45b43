// Where a connection a proxy carried to a node really came from.
//
// A node reached through the proxy sees the proxy's address (or, through a
// reverse tunnel, its own loopback): its audit events would name the proxy
// as every user's `addr.remote`, a certificate's source-address would be
// checked against the proxy, and one client's failed logins would count
// against everyone who comes through the proxy. So the proxy starts each
// connection it opens to a node with a PROXY protocol version 2 header
// (haproxy's proxy-protocol.txt, section 2.2: the 12-byte signature,
// version 2 command PROXY, TCP over IPv4 or IPv6, the client's address and
// port as the source) that carries one Vigil TLV (type 0xE0, the first of
// the range the format leaves to applications), signed by the proxy:
//
//   TLV value = version:u8 (1) issued_at:i64 nonce[16]
//               node_uuid:len u8, bytes   the node the proxy dialled
//               cert:len u16, DER         the proxy's TLS certificate
//               sig:len u16, bytes        the proxy key's signature
//
// The signature covers a fixed context string and every field before it,
// the client's address and port included (signed_bytes() in the .cpp), with
// the key of the certificate: ECDSA P-256 with SHA-256 or Ed25519.
//
// The node believes a header only when all of this holds: the certificate
// is a node identity of the node's own cluster, issued by its TLS CA, valid
// now, holding the role "proxy" (a proxy on a host of its own) or "auth" (the
// proxy in the auth service's process); the signature verifies; node_uuid
// is the node's own (a header made for one node is no use on another);
// issued_at is within kProxyHeaderMaxAge of the node's clock; and its nonce
// was not seen before (NonceCache: a header copied off the wire cannot be
// sent again). Anything else is refused and the connection closed: a node
// never takes an unsigned or unverified header, so nobody but the cluster's
// proxy can choose the address a connection is recorded with.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ca/key.hpp"
#include "ca/tls_ca.hpp"
#include "common/result.hpp"

namespace vigil::ca {

inline constexpr std::string_view kProxyV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
inline constexpr size_t kProxyHeaderFixed = 16;  // signature, version/command, family, length
inline constexpr size_t kMaxProxyHeader = 4096;  // a header and its certificate fit in 2 KiB
inline constexpr uint8_t kVigilOriginTlv = 0xE0;
inline constexpr int64_t kProxyHeaderMaxAge = 120;  // seconds, either way (clock skew)

using Nonce = std::array<uint8_t, 16>;

struct ProxyOrigin {
  std::string client_ip;  // "192.0.2.7", "2001:db8::1"
  uint16_t client_port = 0;
  std::string node_uuid;
  int64_t issued_at = 0;  // unix seconds
  Nonce nonce{};
  // "ip:port", "[ip]:port"
  std::string client_addr() const;
};

// 16 random bytes (OpenSSL's RAND_bytes).
Result<Nonce> random_nonce();

// The header for origin, signed with key (whose certificate is cert).
// invalid_argument when client_ip is not an IP address or node_uuid is empty
// or over 255 bytes.
Result<std::string> sign_proxy_header(const ProxyOrigin& origin, const PrivateKey& key,
                                      const TlsCertificate& cert);

// What a proxy signs with (proxy::Proxy::sign_origin): a header made now,
// with a fresh nonce, by the holder of key (which must outlive the signer)
// and cert.
using OriginSigner = std::function<Result<std::string>(
    const std::string& client_ip, uint16_t client_port, const std::string& node_uuid)>;
OriginSigner make_origin_signer(const PrivateKey& key, TlsCertificate cert);

// What the first bytes of a connection are.
enum class HeaderStart : uint8_t {
  none,       // not a PROXY v2 header (an SSH client's "SSH-2.0-...")
  need_more,  // a header's start so far: read more
  header,     // a header of `length` bytes in all
};
struct ProbedHeader {
  HeaderStart start = HeaderStart::none;
  size_t length = 0;
};
// Looks at the first bytes; a header longer than kMaxProxyHeader is an error.
Result<ProbedHeader> probe_proxy_header(std::string_view prefix);

struct HeaderCheck {
  const std::vector<TlsCertificate>& trusted;  // the cluster's TLS CA certificates
  std::string_view cluster;
  std::string_view node_uuid;  // this node's
  int64_t now = 0;             // unix seconds
};

struct VerifiedOrigin {
  ProxyOrigin origin;
  TlsIdentity proxy;  // who signed it
};

// The header's origin, or why it is not believed (unauthenticated for a
// header that does not verify, invalid_argument for one that does not parse).
// The nonce is not looked at: NonceCache does that, after this.
Result<VerifiedOrigin> verify_proxy_header(std::string_view header, const HeaderCheck& check);

// The fields of a header, read without believing them: for the front end,
// once the monitor has believed the header (verify_proxy_header).
Result<ProxyOrigin> read_proxy_origin(std::string_view header);

// Nonces of the headers believed in the last 2 * kProxyHeaderMaxAge seconds
// (a header older than that is refused by its age). Thread-safe; bounded.
class NonceCache {
 public:
  NonceCache() = default;
  explicit NonceCache(size_t capacity) : capacity_(capacity) {}
  // True the first time nonce is offered; false for a replay, or when the
  // cache is full of live nonces (resource_exhausted is then what the caller
  // says: a proxy opening more connections than that in 4 minutes).
  enum class Use : uint8_t { first, replay, full };
  Use use(const Nonce& nonce, int64_t issued_at, int64_t now);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  size_t capacity_ = 100'000;
  std::map<Nonce, int64_t> seen_;           // nonce -> forget after
  std::multimap<int64_t, Nonce> by_expiry_;
};

}  // namespace vigil::ca
