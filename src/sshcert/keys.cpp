#include "sshcert/keys.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <optional>

#include "sshcert/wire.hpp"

namespace vigil::sshcert {
namespace {

struct TypeInfo {
  KeyType type;
  std::string_view name;
  std::string_view cert_name;
  std::string_view curve;  // ecdsa: the curve name the blob repeats
  size_t point_size;       // ed25519 key or ecdsa uncompressed point, in bytes
};

constexpr TypeInfo kTypes[] = {
    {KeyType::ed25519, "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com", "", 32},
    {KeyType::ecdsa_p256, "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
     "nistp256", 1 + 2 * 32},
    {KeyType::ecdsa_p384, "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384-cert-v01@openssh.com",
     "nistp384", 1 + 2 * 48},
    {KeyType::ecdsa_p521, "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
     "nistp521", 1 + 2 * 66},
    {KeyType::rsa, "ssh-rsa", "ssh-rsa-cert-v01@openssh.com", "", 0},
};

// RSA public exponents are small in practice (65537); a bound keeps a
// hostile key from making verification expensive.
constexpr size_t kMaxRsaExponentBytes = 8;

const TypeInfo& info(KeyType type) { return kTypes[static_cast<size_t>(type)]; }

const TypeInfo* plain_type(std::string_view name) {
  for (const auto& t : kTypes)
    if (t.name == name) return &t;
  return nullptr;
}

const TypeInfo* cert_type(std::string_view name) {
  for (const auto& t : kTypes)
    if (t.cert_name == name) return &t;
  return nullptr;
}

// Input bytes quoted for an error message: printable ASCII as is, the rest
// as \xNN, cut after 64 bytes.
std::string quoted(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (s.size() > 64) out += "...";
  return out + "'";
}

size_t bit_length(std::string_view magnitude) {
  if (magnitude.empty()) return 0;
  auto top = static_cast<unsigned char>(magnitude[0]);
  size_t bits = (magnitude.size() - 1) * 8;
  while (top) {
    ++bits;
    top >>= 1;
  }
  return bits;
}

// The public fields that follow the type name, the same in a plain key and
// in a certificate. Fills key, including its canonical plain blob.
void read_key_fields(WireReader& r, const TypeInfo& t, PublicKey* key) {
  key->type = t.type;
  WireWriter w;
  w.bytes(t.name);
  switch (t.type) {
    case KeyType::ed25519: {
      std::string_view pk = r.bytes("ed25519 key");
      if (r.ok() && pk.size() != t.point_size)
        r.fail("ed25519 key", "is " + std::to_string(pk.size()) + " bytes, not 32");
      key->point = pk;
      w.bytes(pk);
      break;
    }
    case KeyType::ecdsa_p256:
    case KeyType::ecdsa_p384:
    case KeyType::ecdsa_p521: {
      std::string_view curve = r.bytes("curve");
      if (r.ok() && curve != t.curve)
        r.fail("curve", quoted(curve) + " does not match key type " + std::string(t.name));
      std::string_view point = r.bytes("ecdsa point");
      if (r.ok() && (point.size() != t.point_size || point[0] != 0x04))
        r.fail("ecdsa point", "is not an uncompressed " + std::string(t.curve) + " point (" +
                                  std::to_string(t.point_size) + " bytes starting with 04)");
      key->point = point;
      w.bytes(curve);
      w.bytes(point);
      break;
    }
    case KeyType::rsa: {
      std::string_view e = r.positive_mpint("rsa exponent", kMaxRsaExponentBytes);
      std::string_view n = r.positive_mpint("rsa modulus", kMaxRsaBits / 8);
      if (r.ok() && bit_length(n) < kMinRsaBits)
        r.fail("rsa modulus", "is " + std::to_string(bit_length(n)) +
                                  " bits: RSA keys need at least " +
                                  std::to_string(kMinRsaBits) + " bits");
      key->rsa_e = e;
      key->rsa_n = n;
      w.positive_mpint(e);
      w.positive_mpint(n);
      break;
    }
  }
  key->blob = w.data();
}

Result<PublicKey> read_public_key(std::string_view blob, const std::string& what) {
  WireReader r(blob, what);
  std::string_view name = r.bytes("key type");
  if (!r.ok()) return r.error();
  const TypeInfo* t = plain_type(name);
  if (!t) {
    if (cert_type(name)) return Error{what + ": is a certificate, not a plain public key"};
    return Error{what + ": unknown key type " + quoted(name)};
  }
  PublicKey key;
  read_key_fields(r, *t, &key);
  r.expect_end();
  if (!r.ok()) return r.error();
  return key;
}

// A sequence of (name, data) pairs: critical options or extensions.
Result<std::vector<CertOption>> read_options(std::string_view blob, const std::string& what) {
  WireReader r(blob, what);
  std::vector<CertOption> options;
  while (r.ok() && !r.at_end()) {
    if (options.size() == kMaxOptions) {
      r.fail("list", "holds more than " + std::to_string(kMaxOptions) + " entries");
      break;
    }
    CertOption option;
    option.name = r.text("name");
    option.data = r.bytes("data of " + quoted(option.name));
    if (!r.ok()) break;
    if (option.name.empty()) r.fail("name", "is empty");
    // The format allows each name once; a second copy could mean one thing
    // to us and another to some other reader.
    for (const auto& seen : options)
      if (seen.name == option.name) r.fail(quoted(option.name), "appears twice");
    options.push_back(std::move(option));
  }
  if (!r.ok()) return r.error();
  return options;
}

Result<std::vector<std::string>> read_principals(std::string_view blob) {
  WireReader r(blob, "certificate: valid principals");
  std::vector<std::string> principals;
  while (r.ok() && !r.at_end()) {
    if (principals.size() == kMaxPrincipals) {
      r.fail("list", "holds more than " + std::to_string(kMaxPrincipals) + " principals");
      break;
    }
    std::string_view p = r.text("principal " + std::to_string(principals.size() + 1));
    if (r.ok() && p.empty())
      r.fail("principal " + std::to_string(principals.size() + 1), "is empty");
    principals.emplace_back(p);
  }
  if (!r.ok()) return r.error();
  return principals;
}

Result<Signature> read_signature(std::string_view blob) {
  WireReader r(blob, "certificate: signature");
  Signature sig;
  sig.algorithm = r.text("algorithm");
  sig.bytes = r.bytes("signature bytes");
  r.expect_end();
  if (!r.ok()) return r.error();
  return sig;
}

constexpr std::string_view kBlanks = " \t\r\n";

std::string_view trim(std::string_view s) {
  const size_t first = s.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlanks) - first + 1);
}

// The type name written at the start of a blob, or "" if it has none.
std::string_view blob_type(std::string_view blob) {
  WireReader r(blob, "");
  std::string_view name = r.bytes("");
  return r.ok() ? name : std::string_view();
}

}  // namespace

std::string_view key_type_name(KeyType type) { return info(type).name; }
std::string_view cert_type_name(KeyType type) { return info(type).cert_name; }

std::string PublicKey::fingerprint() const {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(blob.data(), blob.size(), digest, &size, EVP_sha256(), nullptr) != 1)
    return "SHA256:?";  // only if OpenSSL itself is broken
  return "SHA256:" + base64_encode({reinterpret_cast<const char*>(digest), size}, false);
}

Result<PublicKey> parse_public_key(std::string_view blob) {
  return read_public_key(blob, "public key");
}

Result<Certificate> parse_certificate(std::string_view blob) {
  WireReader r(blob, "certificate");
  Certificate cert;
  std::string_view name = r.bytes("key type");
  if (!r.ok()) return r.error();
  const TypeInfo* t = cert_type(name);
  if (!t) {
    if (plain_type(name)) return Error{"certificate: is a plain public key, not a certificate"};
    return Error{"certificate: unknown certificate type " + quoted(name)};
  }
  cert.nonce = r.bytes("nonce");
  read_key_fields(r, *t, &cert.key);
  cert.serial = r.u64("serial");
  const uint32_t type = r.u32("type");
  if (r.ok() && type != 1 && type != 2)
    r.fail("type", std::to_string(type) + " is neither user (1) nor host (2)");
  cert.type = static_cast<CertType>(type);
  cert.key_id = r.text("key id");
  std::string_view principals = r.bytes("valid principals");
  cert.valid_after = r.u64("valid after");
  cert.valid_before = r.u64("valid before");
  std::string_view critical = r.bytes("critical options");
  std::string_view extensions = r.bytes("extensions");
  cert.reserved = r.bytes("reserved");
  std::string_view signature_key = r.bytes("signature key");
  cert.signed_length = r.offset();
  std::string_view signature = r.bytes("signature");
  r.expect_end();
  if (!r.ok()) return r.error();

  auto p = read_principals(principals);
  if (!p) return p.error();
  cert.principals = std::move(*p);
  auto c = read_options(critical, "certificate: critical options");
  if (!c) return c.error();
  cert.critical_options = std::move(*c);
  auto e = read_options(extensions, "certificate: extensions");
  if (!e) return e.error();
  cert.extensions = std::move(*e);
  // A plain key only: OpenSSH does not chain certificates, nor do we.
  auto k = read_public_key(signature_key, "certificate: signature key");
  if (!k) return k.error();
  cert.signature_key = std::move(*k);
  auto s = read_signature(signature);
  if (!s) return s.error();
  cert.signature = std::move(*s);
  cert.blob = blob;
  return cert;
}

Result<KeyLine> parse_key_line(std::string_view line) {
  line = trim(line);
  const size_t type_end = line.find_first_of(kBlanks);
  if (line.empty() || type_end == std::string_view::npos)
    return Error{"expected '<key type> <base64 key> [comment]'"};
  KeyLine out;
  out.type = line.substr(0, type_end);
  std::string_view rest = trim(line.substr(type_end));
  const size_t b64_end = std::min(rest.find_first_of(kBlanks), rest.size());
  auto blob = base64_decode(rest.substr(0, b64_end));
  if (!blob) return Error{"the key after " + quoted(out.type) + " is not valid base64"};
  out.blob = std::move(*blob);
  out.comment = trim(rest.substr(b64_end));
  std::string_view inner = blob_type(out.blob);
  if (inner != out.type)
    return Error{"the line says " + quoted(out.type) + " but its key is of type " + quoted(inner)};
  return out;
}

Result<PublicKey> parse_public_key_line(std::string_view line) {
  auto parsed = parse_key_line(line);
  if (!parsed) return parsed.error();
  return parse_public_key(parsed->blob);
}

Result<Certificate> parse_certificate_line(std::string_view line) {
  auto parsed = parse_key_line(line);
  if (!parsed) return parsed.error();
  return parse_certificate(parsed->blob);
}

}  // namespace vigil::sshcert
