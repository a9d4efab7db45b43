#include "ca/tls_ca.hpp"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <set>

#include "ca/ssh_ca.hpp"

namespace vigil::ca {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* g) const { GENERAL_NAMES_free(g); }
};
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesFree>;

Error ssl_error(Errc code, std::string message) {
  ERR_clear_error();
  return Error::of(code, std::move(message));
}

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
  return out;
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (unreserved(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Strict: only unreserved characters and %XX (upper-case hex), so one name
// has one spelling. nullopt otherwise.
std::optional<std::string> percent_decode(std::string_view s) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (unreserved(c)) {
      out += static_cast<char>(c);
      continue;
    }
    if (c != '%' || i + 2 >= s.size()) return std::nullopt;
    const int hi = digit(s[i + 1]), lo = digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const auto decoded = static_cast<unsigned char>(hi * 16 + lo);
    if (unreserved(decoded)) return std::nullopt;  // would have been written plain
    out += static_cast<char>(decoded);
    i += 2;
  }
  return out;
}

std::string identity_uri(TlsIdentityKind kind, std::string_view cluster, std::string_view name) {
  return "vigil://" + percent_encode(cluster) + (kind == TlsIdentityKind::node ? "/node/" : "/user/") +
         percent_encode(name);
}

// A DNS name as it may go in a certificate: letters, digits, '-', '.'.
bool is_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
  });
}

Result<void> add_name_entry(X509_NAME* name, const char* field, std::string_view value) {
  if (value.empty() || value.find('\0') != std::string_view::npos)
    return Error::of(Errc::invalid_argument, std::string("subject ") + field + " is empty");
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1)
    return ssl_error(Errc::invalid_argument, std::string("subject ") + field + " '" +
                                                 std::string(value) +
                                                 "' cannot go in a certificate (too long? "
                                                 "names are limited to 64 characters)");
  return {};
}

Result<void> add_conf_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return ssl_error(Errc::internal, std::string("cannot add the certificate extension ") + value);
  return {};
}

Result<void> set_common(X509* cert, int64_t not_before, int64_t not_after) {
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return ssl_error(Errc::internal, "no randomness");
  serial[0] &= 0x7f;  // positive
  serial[0] |= 0x01;  // and 16 bytes long, never 0
  BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  ASN1_INTEGER* s = X509_get_serialNumber(cert);
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), s) || X509_set_version(cert, 2) != 1 ||
      !ASN1_TIME_set(X509_getm_notBefore(cert), static_cast<time_t>(not_before)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert), static_cast<time_t>(not_after)))
    return ssl_error(Errc::internal, "cannot set the certificate's serial or validity");
  return {};
}

Result<void> sign(X509* cert, const PrivateKey& key) {
  const EVP_MD* md = key.algorithm() == KeyAlgorithm::ed25519 ? nullptr : EVP_sha256();
  if (X509_sign(cert, key.get(), md) <= 0) return ssl_error(Errc::internal, "cannot sign the certificate");
  return {};
}

std::vector<std::string> name_entries(X509_NAME* name, int nid) {
  std::vector<std::string> out;
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(name, nid, i)) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) {
      out.push_back("\x01");  // unreadable: never a valid name
      continue;
    }
    out.emplace_back(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }
  return out;
}

int64_t to_unix(const ASN1_TIME* t) {
  struct tm tm {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

TlsRefusal refuse(TlsRefusalReason reason, std::string message) { return {reason, std::move(message)}; }

// Reads the identity from a certificate whose chain is already verified.
TlsVerification read_identity(X509* leaf, std::string_view cluster) {
  GeneralNamesPtr sans(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr)));
  std::vector<std::string> uris;
  TlsIdentity id;
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans.get(), i);
    if (g->type == GEN_URI) {
      const ASN1_IA5STRING* s = g->d.uniformResourceIdentifier;
      std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<size_t>(ASN1_STRING_length(s)));
      if (uri.starts_with("vigil:")) uris.push_back(uri);
    } else if (g->type == GEN_DNS) {
      const ASN1_IA5STRING* s = g->d.dNSName;
      id.addresses.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (g->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = g->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      const int family = ip->length == 4 ? AF_INET : ip->length == 16 ? AF_INET6 : 0;
      if (family && inet_ntop(family, ip->data, text, sizeof text)) id.addresses.emplace_back(text);
    }
  }
  if (uris.size() != 1)
    return refuse(TlsRefusalReason::bad_identity,
                  "the certificate holds " + std::to_string(uris.size()) +
                      " vigil:// identities; a Vigil certificate holds exactly one");
  // vigil://<cluster>/<kind>/<name>
  std::string_view rest = std::string_view(uris[0]);
  if (!rest.starts_with("vigil://"))
    return refuse(TlsRefusalReason::bad_identity, "the identity URI does not start with vigil://");
  rest.remove_prefix(8);
  const size_t s1 = rest.find('/');
  const size_t s2 = s1 == std::string_view::npos ? s1 : rest.find('/', s1 + 1);
  if (s2 == std::string_view::npos || rest.find('/', s2 + 1) != std::string_view::npos)
    return refuse(TlsRefusalReason::bad_identity, "the identity URI is not vigil://CLUSTER/KIND/NAME");
  auto uri_cluster = percent_decode(rest.substr(0, s1));
  const std::string_view kind = rest.substr(s1 + 1, s2 - s1 - 1);
  auto name = percent_decode(rest.substr(s2 + 1));
  if (!uri_cluster || !name || name->empty() || (kind != "user" && kind != "node"))
    return refuse(TlsRefusalReason::bad_identity, "the identity URI is not vigil://CLUSTER/KIND/NAME");
  id.kind = kind == "node" ? TlsIdentityKind::node : TlsIdentityKind::user;
  id.cluster = *uri_cluster;
  id.name = *name;

  X509_NAME* subject = X509_get_subject_name(leaf);
  const auto cns = name_entries(subject, NID_commonName);
  const auto orgs = name_entries(subject, NID_organizationName);
  if (cns.size() != 1 || cns[0] != id.name || orgs.size() != 1 || orgs[0] != id.cluster)
    return refuse(TlsRefusalReason::bad_identity,
                  "the certificate's subject (CN, O) disagrees with its identity URI");
  if (id.cluster != cluster)
    return refuse(TlsRefusalReason::wrong_cluster, "the certificate is for cluster '" + id.cluster +
                                                       "', not '" + std::string(cluster) + "'");
  id.roles = name_entries(subject, NID_organizationalUnitName);
  id.logins = name_entries(subject, NID_userId);
  const bool has_node_role =
      std::find(id.roles.begin(), id.roles.end(), kNodeRole) != id.roles.end();
  if (id.kind == TlsIdentityKind::node) {
    bool roles_ok = !id.roles.empty() && id.roles.front() == kNodeRole;
    for (size_t i = 1; roles_ok && i < id.roles.size(); ++i)
      roles_ok = id.roles[i] == kAuthRole || id.roles[i] == kProxyRole;
    if (!roles_ok || !id.logins.empty())
      return refuse(TlsRefusalReason::bad_identity,
                    "a node certificate holds the role node (and auth or proxy) only");
    // Issued with the node's name first among the DNS names, then its uuid.
    for (const auto& a : id.addresses)
      if (a != id.name) {
        id.node_name = a;
        break;
      }
  } else if (has_node_role) {
    return refuse(TlsRefusalReason::bad_identity,
                  "a user certificate holds the role 'node', which only nodes may hold");
  }
  id.not_before = to_unix(X509_get0_notBefore(leaf));
  id.not_after = to_unix(X509_get0_notAfter(leaf));
  BnPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), nullptr));
  if (serial) {
    char* h = BN_bn2hex(serial.get());
    id.serial = h ? h : "";
    OPENSSL_free(h);
  }
  return id;
}

}  // namespace

TlsCertificate::TlsCertificate(const TlsCertificate& o) : x509_(o.x509_) {
  if (x509_) X509_up_ref(x509_);
}
TlsCertificate& TlsCertificate::operator=(const TlsCertificate& o) {
  if (this != &o) {
    if (o.x509_) X509_up_ref(o.x509_);
    X509_free(x509_);
    x509_ = o.x509_;
  }
  return *this;
}
TlsCertificate& TlsCertificate::operator=(TlsCertificate&& o) noexcept {
  if (this != &o) {
    X509_free(x509_);
    x509_ = std::exchange(o.x509_, nullptr);
  }
  return *this;
}
TlsCertificate::~TlsCertificate() { X509_free(x509_); }

Result<TlsCertificate> TlsCertificate::from_pem(std::string_view text) {
  if (text.size() > kMaxKeyText) return Error::of(Errc::invalid_argument, "certificate text too large");
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  X509* x = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!x) return ssl_error(Errc::invalid_argument, "not a PEM certificate");
  return TlsCertificate(x);
}

Result<TlsCertificate> TlsCertificate::from_der(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (!x) return ssl_error(Errc::invalid_argument, "not a DER certificate");
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    X509_free(x);
    return Error::of(Errc::invalid_argument, "bytes follow the DER certificate");
  }
  return TlsCertificate(x);
}

std::string TlsCertificate::pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), x509_) != 1) return {};
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string TlsCertificate::der() const {
  unsigned char* der = nullptr;
  const int len = i2d_X509(x509_, &der);
  if (len <= 0) return {};
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string ca_pin(const TlsCertificate& ca) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(X509_get0_pubkey(ca.get()), &der);
  if (len <= 0) return {};
  unsigned char digest[32];
  unsigned int dlen = 0;
  EVP_Digest(der, static_cast<size_t>(len), digest, &dlen, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return "sha256:" + hex(digest, dlen);
}

Result<TlsCertificate> make_tls_ca_certificate(const PrivateKey& key, std::string_view cluster,
                                               int64_t now, int64_t validity_seconds) {
  TlsCertificate cert(X509_new());
  if (!cert.get()) return ssl_error(Errc::resource_exhausted, "out of memory");
  NamePtr name(X509_NAME_new());
  if (auto r = add_name_entry(name.get(), "O", cluster); !r) return r.error();
  if (auto r = add_name_entry(name.get(), "CN", std::string(cluster) + " Vigil CA"); !r) return r.error();
  if (auto r = set_common(cert.get(), now - kClockSkew, now + validity_seconds); !r) return r.error();
  if (X509_set_subject_name(cert.get(), name.get()) != 1 ||
      X509_set_issuer_name(cert.get(), name.get()) != 1 || X509_set_pubkey(cert.get(), key.get()) != 1)
    return ssl_error(Errc::internal, "cannot fill the CA certificate");
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            {NID_key_usage, "critical,keyCertSign,cRLSign"},
                            {NID_subject_key_identifier, "hash"},
                            {NID_authority_key_identifier, "keyid:always"}})
    if (auto r = add_conf_ext(cert.get(), &ctx, nid, value); !r) return r.error();
  if (auto r = sign(cert.get(), key); !r) return r.error();
  return cert;
}

Result<TlsCertificate> issue_tls_certificate(const PrivateKey& ca_key, const TlsCertificate& ca_cert,
                                             const TlsIssueRequest& request) {
  const TlsIdentity& id = request.identity;
  auto bad = [](std::string m) { return Error::of(Errc::invalid_argument, std::move(m)); };
  if (request.ttl <= 0) return bad("a TLS certificate needs a positive TTL");
  if (id.name.empty()) return bad("a TLS identity needs a name (user name or node uuid)");
  const auto ca_orgs = name_entries(X509_get_subject_name(ca_cert.get()), NID_organizationName);
  if (ca_orgs.size() != 1 || ca_orgs[0] != id.cluster)
    return bad("the identity is for cluster '" + id.cluster + "' but the CA is another cluster's");
  const bool has_node_role = std::find(id.roles.begin(), id.roles.end(), kNodeRole) != id.roles.end();
  if (id.kind == TlsIdentityKind::user && has_node_role)
    return bad("the role name 'node' is reserved for nodes; give the user other roles");
  if (id.kind == TlsIdentityKind::node && (!id.logins.empty() || id.node_name.empty()))
    return bad("a node identity has a node name and no logins");
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1)
    return ssl_error(Errc::invalid_argument, "the CA key does not match the CA certificate");

  const auto* p = reinterpret_cast<const unsigned char*>(request.subject_public_key.data());
  PkeyPtr subject_key(d2i_PUBKEY(nullptr, &p, static_cast<long>(request.subject_public_key.size())));
  if (!subject_key) return ssl_error(Errc::invalid_argument, "the holder's public key (SPKI DER) cannot be read");

  TlsCertificate cert(X509_new());
  NamePtr name(X509_NAME_new());
  if (!cert.get() || !name) return ssl_error(Errc::resource_exhausted, "out of memory");
  if (auto r = add_name_entry(name.get(), "O", id.cluster); !r) return r.error();
  // A node: "node" first, then the service roles it was given (auth, proxy).
  std::vector<std::string> roles = id.roles;
  if (id.kind == TlsIdentityKind::node) {
    roles = {std::string(kNodeRole)};
    for (const auto& r : id.roles) {
      if (r == kNodeRole) continue;
      if (r != kAuthRole && r != kProxyRole)
        return bad("a node identity holds the roles node, auth and proxy only, not '" + r + "'");
      if (std::find(roles.begin(), roles.end(), r) == roles.end()) roles.push_back(r);
    }
  }
  for (const auto& role : roles)
    if (auto r = add_name_entry(name.get(), "OU", role); !r) return r.error();
  if (auto r = add_name_entry(name.get(), "CN", id.name); !r) return r.error();
  for (const auto& login : id.logins)
    if (auto r = add_name_entry(name.get(), "UID", login); !r) return r.error();
  if (auto r = set_common(cert.get(), request.now - kClockSkew, request.now + request.ttl); !r)
    return r.error();
  if (X509_set_subject_name(cert.get(), name.get()) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) != 1 ||
      X509_set_pubkey(cert.get(), subject_key.get()) != 1)
    return ssl_error(Errc::internal, "cannot fill the certificate");

  // subjectAltName built from GENERAL_NAMEs, never from a config string
  // that a name with a comma could add entries to.
  GeneralNamesPtr sans(sk_GENERAL_NAME_new_null());
  auto push_ia5 = [&](int type, const std::string& value) -> bool {
    GENERAL_NAME* g = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (!g || !s || ASN1_STRING_set(s, value.data(), static_cast<int>(value.size())) != 1) {
      GENERAL_NAME_free(g);
      ASN1_IA5STRING_free(s);
      return false;
    }
    GENERAL_NAME_set0_value(g, type, s);
    if (!sk_GENERAL_NAME_push(sans.get(), g)) {
      GENERAL_NAME_free(g);
      return false;
    }
    return true;
  };
  bool ok = sans && push_ia5(GEN_URI, identity_uri(id.kind, id.cluster, id.name));
  if (id.kind == TlsIdentityKind::node) {
    std::set<std::string> seen;
    std::vector<std::string> dns = {id.node_name, id.name};
    dns.insert(dns.end(), id.addresses.begin(), id.addresses.end());
    for (const auto& a : dns) {
      if (a.empty() || !seen.insert(a).second) continue;
      if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(a.c_str())) {
        GENERAL_NAME* g = GENERAL_NAME_new();
        if (!g) {
          ASN1_OCTET_STRING_free(ip);
          ok = false;
          break;
        }
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
        ok = ok && sk_GENERAL_NAME_push(sans.get(), g);
      } else if (is_dns_name(a)) {
        ok = ok && push_ia5(GEN_DNS, a);
      } else {
        ERR_clear_error();
        return bad("node address '" + a + "' is neither an IP address nor a DNS name");
      }
    }
  }
  if (!ok || X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, sans.get(), 0, 0) != 1)
    return ssl_error(Errc::internal, "cannot add the subjectAltName");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca_cert.get(), cert.get(), nullptr, nullptr, 0);
  const char* eku = id.kind == TlsIdentityKind::node ? "serverAuth,clientAuth" : "clientAuth";
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            {NID_key_usage, "critical,digitalSignature"},
                            {NID_ext_key_usage, eku},
                            {NID_subject_key_identifier, "hash"},
                            {NID_authority_key_identifier, "keyid:always"}})
    if (auto r = add_conf_ext(cert.get(), &ctx, nid, value); !r) return r.error();
  if (auto r = sign(cert.get(), ca_key); !r) return r.error();
  return cert;
}

std::string_view tls_refusal_name(TlsRefusalReason reason) {
  switch (reason) {
    case TlsRefusalReason::malformed_certificate: return "malformed_certificate";
    case TlsRefusalReason::untrusted_ca: return "untrusted_ca";
    case TlsRefusalReason::bad_signature: return "bad_signature";
    case TlsRefusalReason::expired: return "expired";
    case TlsRefusalReason::not_yet_valid: return "not_yet_valid";
    case TlsRefusalReason::wrong_usage: return "wrong_usage";
    case TlsRefusalReason::bad_identity: return "bad_identity";
    case TlsRefusalReason::wrong_cluster: return "wrong_cluster";
  }
  return "unknown";
}

Error TlsRefusal::error() const {
  return Error::of(Errc::unauthenticated, std::string(tls_refusal_name(reason)) + ": " + message);
}

TlsVerification verify_tls_peer(X509* leaf, const std::vector<TlsCertificate>& trusted,
                                std::string_view cluster, TlsUsage usage, int64_t now) {
  if (!leaf) return refuse(TlsRefusalReason::malformed_certificate, "the peer sent no certificate");
  if (X509_check_ca(leaf) != 0)
    return refuse(TlsRefusalReason::wrong_usage,
                  "the peer's certificate is a CA certificate, not an identity");
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx) return refuse(TlsRefusalReason::malformed_certificate, "out of memory");
  for (const auto& ca : trusted) X509_STORE_add_cert(store.get(), ca.get());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr) != 1) {
    ERR_clear_error();
    return refuse(TlsRefusalReason::malformed_certificate, "cannot set up the verification");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now));
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  X509_VERIFY_PARAM_set_depth(param, 1);  // leaf <- CA: no intermediates
  X509_STORE_CTX_set_purpose(ctx.get(), usage == TlsUsage::client ? X509_PURPOSE_SSL_CLIENT
                                                                   : X509_PURPOSE_SSL_SERVER);
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    const std::string what = X509_verify_cert_error_string(err);
    switch (err) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
        return refuse(TlsRefusalReason::expired, "the certificate has expired: log in again");
      case X509_V_ERR_CERT_NOT_YET_VALID:
        return refuse(TlsRefusalReason::not_yet_valid,
                      "the certificate is not valid yet (is this host's clock right?)");
      case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
        return refuse(TlsRefusalReason::bad_signature,
                      "the CA's signature on the certificate does not verify (" + what + ")");
      case X509_V_ERR_INVALID_PURPOSE:
        return refuse(TlsRefusalReason::wrong_usage,
                      std::string("the certificate may not be used by a TLS ") +
                          (usage == TlsUsage::client ? "client" : "server"));
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_CERT_CHAIN_TOO_LONG:
        return refuse(TlsRefusalReason::untrusted_ca,
                      "the certificate is not issued by this cluster's CA (" + what + ")");
      default:
        return refuse(TlsRefusalReason::malformed_certificate, "the certificate is refused: " + what);
    }
  }
  return read_identity(leaf, cluster);
}

TlsVerification verify_tls_peer_der(std::string_view leaf_der, const std::vector<TlsCertificate>& trusted,
                                    std::string_view cluster, TlsUsage usage, int64_t now) {
  auto cert = TlsCertificate::from_der(leaf_der);
  if (!cert) return refuse(TlsRefusalReason::malformed_certificate, cert.error().message);
  return verify_tls_peer(cert->get(), trusted, cluster, usage, now);
}

Result<SslCtxPtr> make_mutual_tls_context(TlsUsage side, const PrivateKey& key, const TlsCertificate& cert,
                                          const std::vector<TlsCertificate>& trusted) {
  SslCtxPtr ctx(SSL_CTX_new(side == TlsUsage::server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) return ssl_error(Errc::resource_exhausted, "cannot create a TLS context");
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
      SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1)
    return ssl_error(Errc::invalid_argument, "the TLS certificate and key do not go together");
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  for (const auto& ca : trusted)
    if (X509_STORE_add_cert(store, ca.get()) != 1)
      return ssl_error(Errc::internal, "cannot add a trusted CA to the TLS context");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx.get(), 1);
  return ctx;
}

}  // namespace vigil::ca
