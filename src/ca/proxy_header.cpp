#include "ca/proxy_header.hpp"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace vigil::ca {
namespace {

constexpr uint8_t kVersionCommand = 0x21;  // version 2, PROXY
constexpr uint8_t kTcp4 = 0x11, kTcp6 = 0x21;
constexpr uint8_t kTlvVersion = 1;
constexpr std::string_view kContext{"vigil proxy origin v1\0", 22};

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
void put_i64(std::string& out, int64_t v) {
  auto u = static_cast<uint64_t>(v);
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((u >> shift) & 0xff));
}

// A bounded reader over the header's bytes: every read checks the length.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool take(size_t n, std::string_view& out) {
    if (n > data_.size() - pos_) return false;
    out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool u8(uint8_t& v) {
    std::string_view b;
    if (!take(1, b)) return false;
    v = static_cast<uint8_t>(b[0]);
    return true;
  }
  bool u16(uint16_t& v) {
    std::string_view b;
    if (!take(2, b)) return false;
    v = static_cast<uint16_t>((static_cast<uint8_t>(b[0]) << 8) | static_cast<uint8_t>(b[1]));
    return true;
  }
  bool i64(int64_t& v) {
    std::string_view b;
    if (!take(8, b)) return false;
    uint64_t u = 0;
    for (char c : b) u = (u << 8) | static_cast<uint8_t>(c);
    v = static_cast<int64_t>(u);
    return true;
  }
  size_t left() const { return data_.size() - pos_; }
  size_t pos() const { return pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// The client's address as the header's address block: family, then
// source address, destination address (unspecified: the node knows its
// own), source port, destination port (0).
Result<std::pair<uint8_t, std::string>> address_block(const std::string& ip, uint16_t port) {
  std::string block;
  in6_addr v6{};
  in_addr v4{};
  uint8_t family;
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) {
    family = kTcp4;
    block.append(reinterpret_cast<const char*>(&v4), 4);
    block.append(4, '\0');
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6) == 1) {
    family = kTcp6;
    block.append(reinterpret_cast<const char*>(&v6), 16);
    block.append(16, '\0');
  } else {
    return Error::of(Errc::invalid_argument, "the client address " + ip.substr(0, 64) +
                                                 " is not an IP address");
  }
  put_u16(block, port);
  put_u16(block, 0);
  return std::pair{family, block};
}

// What the signature covers: the context, the family and address block,
// and the TLV's fields before the signature.
std::string signed_bytes(uint8_t family, std::string_view addresses, std::string_view tlv_fields) {
  std::string out(kContext);
  out.push_back(static_cast<char>(family));
  out.append(addresses);
  out.append(tlv_fields);
  return out;
}

const EVP_MD* digest_for(EVP_PKEY* key) {
  return EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
}

Error refused(std::string why) {
  return Error::of(Errc::unauthenticated, "the proxy header is not believed: " + std::move(why));
}
Error malformed(std::string why) {
  return Error::of(Errc::invalid_argument, "the proxy header is malformed: " + std::move(why));
}

}  // namespace

std::string ProxyOrigin::client_addr() const {
  if (client_ip.find(':') != std::string::npos)
    return "[" + client_ip + "]:" + std::to_string(client_port);
  return client_ip + ":" + std::to_string(client_port);
}

Result<Nonce> random_nonce() {
  Nonce n{};
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1)
    return Error::of(Errc::internal, "OpenSSL has no random bytes for a nonce");
  return n;
}

Result<std::string> sign_proxy_header(const ProxyOrigin& origin, const PrivateKey& key,
                                      const TlsCertificate& cert) {
  auto block = address_block(origin.client_ip, origin.client_port);
  if (!block) return block.error();
  if (origin.node_uuid.empty() || origin.node_uuid.size() > 255)
    return Error::of(Errc::invalid_argument, "a proxy header names a node uuid of 1 to 255 bytes");
  const std::string der = cert.der();
  if (der.empty() || der.size() > 0xffff)
    return Error::of(Errc::invalid_argument, "the proxy's certificate cannot be written");
  std::string fields;
  fields.push_back(static_cast<char>(kTlvVersion));
  put_i64(fields, origin.issued_at);
  fields.append(reinterpret_cast<const char*>(origin.nonce.data()), origin.nonce.size());
  fields.push_back(static_cast<char>(origin.node_uuid.size()));
  fields.append(origin.node_uuid);
  put_u16(fields, static_cast<uint16_t>(der.size()));
  fields.append(der);

  const std::string message = signed_bytes(block->first, block->second, fields);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, digest_for(key.get()), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, bytes_of(message), message.size()) != 1)
    return Error::of(Errc::internal, "OpenSSL cannot sign a proxy header with the proxy's key");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     bytes_of(message), message.size()) != 1)
    return Error::of(Errc::internal, "OpenSSL failed to sign a proxy header");
  sig.resize(len);
  put_u16(fields, static_cast<uint16_t>(sig.size()));
  fields.append(sig);

  std::string tlv;
  tlv.push_back(static_cast<char>(kVigilOriginTlv));
  put_u16(tlv, static_cast<uint16_t>(fields.size()));
  tlv.append(fields);

  const size_t body = block->second.size() + tlv.size();
  if (kProxyHeaderFixed + body > kMaxProxyHeader)
    return Error::of(Errc::invalid_argument, "the proxy header would be over " +
                                                 std::to_string(kMaxProxyHeader) +
                                                 " bytes: the proxy's certificate is too large");
  std::string out(kProxyV2Signature);
  out.push_back(static_cast<char>(kVersionCommand));
  out.push_back(static_cast<char>(block->first));
  put_u16(out, static_cast<uint16_t>(body));
  out.append(block->second);
  out.append(tlv);
  return out;
}

OriginSigner make_origin_signer(const PrivateKey& key, TlsCertificate cert) {
  return [&key, cert = std::move(cert)](const std::string& client_ip, uint16_t client_port,
                                        const std::string& node_uuid) -> Result<std::string> {
    auto nonce = random_nonce();
    if (!nonce) return nonce.error();
    ProxyOrigin origin;
    origin.client_ip = client_ip;
    origin.client_port = client_port;
    origin.node_uuid = node_uuid;
    origin.issued_at = static_cast<int64_t>(time(nullptr));
    origin.nonce = *nonce;
    return sign_proxy_header(origin, key, cert);
  };
}

Result<ProbedHeader> probe_proxy_header(std::string_view prefix) {
  const size_t n = std::min(prefix.size(), kProxyV2Signature.size());
  if (prefix.substr(0, n) != kProxyV2Signature.substr(0, n)) return ProbedHeader{};
  if (prefix.size() < kProxyHeaderFixed) return ProbedHeader{HeaderStart::need_more, 0};
  const size_t body = (static_cast<uint8_t>(prefix[14]) << 8) | static_cast<uint8_t>(prefix[15]);
  if (kProxyHeaderFixed + body > kMaxProxyHeader)
    return malformed("it says it has " + std::to_string(kProxyHeaderFixed + body) +
                     " bytes, over the " + std::to_string(kMaxProxyHeader) + " a node reads");
  return ProbedHeader{HeaderStart::header, kProxyHeaderFixed + body};
}

namespace {

// A header's fields, read but not yet believed.
struct Parsed {
  ProxyOrigin origin;
  uint8_t family = 0;
  std::string_view addresses, fields, der, sig;
};

Result<Parsed> parse(std::string_view header) {
  auto probed = probe_proxy_header(header);
  if (!probed) return probed.error();
  if (probed->start != HeaderStart::header || probed->length != header.size())
    return malformed("not one whole PROXY protocol v2 header");
  const auto version_command = static_cast<uint8_t>(header[12]);
  Parsed p;
  p.family = static_cast<uint8_t>(header[13]);
  if (version_command != kVersionCommand)
    return malformed("version/command byte " + std::to_string(version_command) +
                     " (a node takes only version 2, PROXY)");
  size_t addr_len;
  if (p.family == kTcp4) addr_len = 4;
  else if (p.family == kTcp6) addr_len = 16;
  else return malformed("address family " + std::to_string(p.family) + " (TCP over IPv4 or IPv6 only)");

  Reader r(header.substr(kProxyHeaderFixed));
  if (!r.take(2 * addr_len + 4, p.addresses)) return malformed("the address block is cut");
  char text[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(p.family == kTcp4 ? AF_INET : AF_INET6, p.addresses.data(), text, sizeof text))
    return malformed("the client address does not read");
  p.origin.client_ip = text;
  p.origin.client_port =
      static_cast<uint16_t>((static_cast<uint8_t>(p.addresses[2 * addr_len]) << 8) |
                            static_cast<uint8_t>(p.addresses[2 * addr_len + 1]));

  // The TLVs: exactly one, Vigil's (a header with anything else was not
  // made by a Vigil proxy).
  uint8_t type = 0;
  uint16_t tlv_len = 0;
  if (!r.u8(type) || !r.u16(tlv_len)) return malformed("no Vigil origin TLV");
  if (type != kVigilOriginTlv)
    return malformed("a TLV of type " + std::to_string(type) + " where the Vigil origin (224) goes");
  if (tlv_len != r.left()) return malformed("the Vigil origin TLV's length is not the rest of the header");
  const size_t fields_start = r.pos();
  uint8_t version = 0, uuid_len = 0;
  std::string_view nonce, uuid;
  uint16_t der_len = 0, sig_len = 0;
  if (!r.u8(version)) return malformed("the Vigil origin TLV is empty");
  if (version != kTlvVersion)
    return malformed("Vigil origin version " + std::to_string(version) + " (this node reads 1)");
  if (!r.i64(p.origin.issued_at) || !r.take(p.origin.nonce.size(), nonce) || !r.u8(uuid_len) ||
      !r.take(uuid_len, uuid) || !r.u16(der_len) || !r.take(der_len, p.der))
    return malformed("the Vigil origin TLV is cut");
  p.fields = header.substr(kProxyHeaderFixed + fields_start, r.pos() - fields_start);
  if (!r.u16(sig_len) || !r.take(sig_len, p.sig)) return malformed("the signature is cut");
  if (r.left() != 0) return malformed("bytes after the signature");
  std::memcpy(p.origin.nonce.data(), nonce.data(), nonce.size());
  p.origin.node_uuid = std::string(uuid);
  return p;
}

}  // namespace

Result<ProxyOrigin> read_proxy_origin(std::string_view header) {
  auto p = parse(header);
  if (!p) return p.error();
  return std::move(p->origin);
}

Result<VerifiedOrigin> verify_proxy_header(std::string_view header, const HeaderCheck& check) {
  auto p = parse(header);
  if (!p) return p.error();
  // Who signed it, then the signature, then what it says.
  auto identity = verify_tls_peer_der(p->der, check.trusted, check.cluster, TlsUsage::client, check.now);
  if (!identity) return refused("its certificate: " + identity.refusal().error().message);
  const auto& roles = identity->roles;
  const bool is_proxy = identity->kind == TlsIdentityKind::node &&
                        (std::find(roles.begin(), roles.end(), kProxyRole) != roles.end() ||
                         std::find(roles.begin(), roles.end(), kAuthRole) != roles.end());
  if (!is_proxy)
    return refused("it is signed by " + identity->name + ", which is not the cluster's proxy");
  auto cert = TlsCertificate::from_der(p->der);
  if (!cert) return refused("its certificate does not read");
  EVP_PKEY* key = X509_get0_pubkey(cert->get());
  if (!key) return refused("its certificate has no public key");
  const std::string message = signed_bytes(p->family, p->addresses, p->fields);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, digest_for(key), nullptr, key) != 1 ||
      EVP_DigestVerify(ctx.get(), bytes_of(p->sig), p->sig.size(), bytes_of(message),
                       message.size()) != 1)
    return refused("its signature does not verify");
  if (p->origin.node_uuid != check.node_uuid)
    return refused("it was made for node " + p->origin.node_uuid.substr(0, 64) +
                   ", not this one (" + std::string(check.node_uuid) + ")");
  const int64_t age = check.now - p->origin.issued_at;
  if (age > kProxyHeaderMaxAge || age < -kProxyHeaderMaxAge)
    return refused("it was made " + std::to_string(age) + " s from now (at most " +
                   std::to_string(kProxyHeaderMaxAge) + " s either way: check the clocks)");
  return VerifiedOrigin{std::move(p->origin), identity.value()};
}

NonceCache::Use NonceCache::use(const Nonce& nonce, int64_t issued_at, int64_t now) {
  std::lock_guard lock(mu_);
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now) {
    seen_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
  if (seen_.count(nonce)) return Use::replay;
  if (seen_.size() >= capacity_) return Use::full;
  // Kept until no header of this age can be believed any more.
  const int64_t forget_after = std::max(issued_at, now) + kProxyHeaderMaxAge;
  seen_.emplace(nonce, forget_after);
  by_expiry_.emplace(forget_after, nonce);
  return Use::first;
}

size_t NonceCache::size() const {
  std::lock_guard lock(mu_);
  return seen_.size();
}

}  // namespace vigil::ca
