// The proxy's signed PROXY v2 header (ca/proxy_header.hpp), as a node's
// monitor reads whatever the first bytes of a connection were, against a
// fixed TLS CA of cluster "fuzz" and this node's uuid.
//
// Input: one byte of choices, then
//   bit 0 clear   the header's bytes, read as they came (probe, read, verify)
//   bit 0 set     the fields of a header the fuzz proxy signs: client address
//                 (4 or 16 bytes, bit 2: IPv6), port (2), issued_at's offset
//                 from now (i16), then the node uuid it names; bit 1 signs
//                 with an ordinary node's identity instead of the proxy's.
//                 Such a header is believed exactly when the proxy signed it,
//                 for this node, within the age: anything else is refused.
#include <arpa/inet.h>

#include <cstdint>
#include <optional>
#include <string>

#include "ca/key.hpp"
#include "ca/proxy_header.hpp"
#include "ca/tls_ca.hpp"
#include "check.hpp"
#include "fixed_key.hpp"

using namespace vigil::ca;
using vigil::fuzz::kMaxMessage;

namespace {

constexpr int64_t kNow = 1'800'000'000;
constexpr const char* kNode = "5e0c4b2a-8d7e-4f0e-9b1a-3c2d1e0f9a8b";

// An Ed25519 key from a fixed seed, seed bytes first, first + 1, ...
PrivateKey fixed_key(unsigned char first) {
  unsigned char seed[32];
  for (int i = 0; i < 32; ++i) seed[i] = static_cast<unsigned char>(first + i);
  return vigil::fuzz::fixed_ed25519_key(seed);
}

struct Fixture {
  std::optional<PrivateKey> ca_key, proxy_key, node_key;
  std::optional<TlsCertificate> ca, proxy, node;
  std::vector<TlsCertificate> trusted;
};

TlsCertificate issue(const Fixture& f, const PrivateKey& key, const std::string& name,
                     std::vector<std::string> roles) {
  TlsIssueRequest r;
  r.identity.kind = TlsIdentityKind::node;
  r.identity.cluster = "fuzz";
  r.identity.name = name;
  r.identity.node_name = "host";
  r.identity.roles = std::move(roles);
  r.subject_public_key = key.spki_der();
  r.now = kNow - 100;
  r.ttl = 10 * 86400;
  auto cert = issue_tls_certificate(*f.ca_key, *f.ca, r);
  FUZZ_CHECK(cert, cert ? "" : cert.error().message);
  return *cert;
}

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    f.ca_key.emplace(fixed_key(1));
    f.proxy_key.emplace(fixed_key(64));
    f.node_key.emplace(fixed_key(128));
    auto ca = make_tls_ca_certificate(*f.ca_key, "fuzz", kNow - 86400, 10 * 86400);
    FUZZ_CHECK(ca, ca ? "" : ca.error().message);
    f.ca.emplace(*ca);
    f.proxy.emplace(issue(f, *f.proxy_key, "9d7b0c1e-2f3a-4b5c-8d6e-7f8091a2b3c4", {"proxy"}));
    f.node.emplace(issue(f, *f.node_key, "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", {}));
    f.trusted = {*f.ca};
    return f;
  }();
  return f;
}

void check_read(std::string_view header) {
  const Fixture& f = fixture();
  auto probed = probe_proxy_header(header);
  auto read = read_proxy_origin(header);
  auto v = verify_proxy_header(header, HeaderCheck{f.trusted, "fuzz", kNode, kNow});
  if (!v) {
    FUZZ_CHECK(v.error().message.size() <= kMaxMessage, "refusal message too long");
    return;
  }
  // Believed: it is one whole header, signed by the fuzz proxy, for this
  // node, within the age; what the front end reads of it is the same.
  FUZZ_CHECK(probed && probed->start == HeaderStart::header && probed->length == header.size(),
             "a believed header that the probe does not measure whole");
  FUZZ_CHECK(v->proxy.name == "9d7b0c1e-2f3a-4b5c-8d6e-7f8091a2b3c4", "believed from " + v->proxy.name);
  FUZZ_CHECK(v->origin.node_uuid == kNode, "believed for node " + v->origin.node_uuid);
  const int64_t age = kNow - v->origin.issued_at;
  FUZZ_CHECK(age <= kProxyHeaderMaxAge && age >= -kProxyHeaderMaxAge, "believed a stale header");
  FUZZ_CHECK(read && read->client_addr() == v->origin.client_addr(),
             "the front end reads another client than the monitor believed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 1) return 0;
  const uint8_t choices = bytes[0];
  std::string_view rest(reinterpret_cast<const char*>(bytes + 1), size - 1);
  if (!(choices & 1)) {
    check_read(rest);
    return 0;
  }
  const Fixture& f = fixture();
  const bool v6 = choices & 4;
  const size_t addr_len = v6 ? 16 : 4;
  if (rest.size() < addr_len + 4) return 0;
  char ip[INET6_ADDRSTRLEN] = {};
  FUZZ_CHECK(inet_ntop(v6 ? AF_INET6 : AF_INET, rest.data(), ip, sizeof ip), "inet_ntop");
  ProxyOrigin o;
  o.client_ip = ip;
  o.client_port = static_cast<uint16_t>((static_cast<uint8_t>(rest[addr_len]) << 8) |
                                        static_cast<uint8_t>(rest[addr_len + 1]));
  const auto offset = static_cast<int16_t>((static_cast<uint8_t>(rest[addr_len + 2]) << 8) |
                                           static_cast<uint8_t>(rest[addr_len + 3]));
  o.issued_at = kNow + offset;
  o.node_uuid = std::string(rest.substr(addr_len + 4));
  const bool by_proxy = !(choices & 2);
  auto header = sign_proxy_header(o, by_proxy ? *f.proxy_key : *f.node_key,
                                  by_proxy ? *f.proxy : *f.node);
  if (!header) {
    FUZZ_CHECK(o.node_uuid.empty() || o.node_uuid.size() > 255, "could not sign: " + header.error().message);
    return 0;
  }
  auto v = verify_proxy_header(*header, HeaderCheck{f.trusted, "fuzz", kNode, kNow});
  const bool should = by_proxy && o.node_uuid == kNode && offset <= kProxyHeaderMaxAge &&
                      offset >= -kProxyHeaderMaxAge;
  FUZZ_CHECK(bool(v) == should, v ? "believed a header it should refuse" : v.error().message);
  if (v) FUZZ_CHECK(v->origin.client_addr() == o.client_addr(), "another client came out");
  check_read(*header);
  return 0;
}
