// OpenSSH public keys and certificates, read from their wire blobs or from
// their one-line text form ("ssh-ed25519 AAAA... comment").
//
// Formats: RFC 4253 6.6 (ssh-rsa), RFC 5656 3.1 (ecdsa-sha2-*), RFC 8709
// (ssh-ed25519), RFC 8332 (rsa-sha2-256/512 signatures) and OpenSSH's
// PROTOCOL.certkeys (the *-cert-v01@openssh.com forms). Parsing is strict:
// a blob is accepted only when every field is well formed and nothing
// follows the last one. Checking what a certificate allows is authorize.hpp's
// job; this file only reads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace vigil::sshcert {

enum class KeyType : uint8_t { ed25519, ecdsa_p256, ecdsa_p384, ecdsa_p521, rsa };

// "ssh-ed25519", "ecdsa-sha2-nistp256", ..., "ssh-rsa".
std::string_view key_type_name(KeyType type);
// "ssh-ed25519-cert-v01@openssh.com", ...
std::string_view cert_type_name(KeyType type);

// RSA keys smaller than this are refused (OpenSSH's own floor is 1024 bits;
// such keys have not been safe for years).
inline constexpr size_t kMinRsaBits = 2048;
inline constexpr size_t kMaxRsaBits = 16384;  // as OpenSSH

// A certificate read from a client is parsed before its CA is known, so
// what it may list is bounded: duplicates are looked for among all the
// names, and a blob of a few hundred KiB could otherwise list tens of
// thousands. OpenSSH's own limit on principals is 256 too.
inline constexpr size_t kMaxPrincipals = 256;
inline constexpr size_t kMaxOptions = 64;  // critical options; extensions (each list)

struct PublicKey {
  KeyType type = KeyType::ed25519;
  // The key's wire encoding. Parsing only accepts the one canonical
  // encoding of each key, so two blobs are the same key iff they are equal.
  std::string blob;
  // ed25519: the 32-byte key; ecdsa: the uncompressed point 04||x||y.
  std::string point;
  // rsa: big-endian magnitudes without leading zero bytes.
  std::string rsa_e;
  std::string rsa_n;

  // "SHA256:<base64 without padding>", as ssh-keygen -l prints it.
  std::string fingerprint() const;
};

enum class CertType : uint32_t { user = 1, host = 2 };

// A critical option or an extension: a name and its data. For options that
// carry a value (force-command, source-address, vigil-recording@vigil.dev)
// the data is itself a wire string holding the value; flags have empty data.
struct CertOption {
  std::string name;
  std::string data;
};

// A signature as it appears on the wire: the algorithm that made it and its
// algorithm-specific bytes (for ECDSA, the mpints r and s).
struct Signature {
  std::string algorithm;  // "ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "ssh-rsa"...
  std::string bytes;
};

inline constexpr uint64_t kForever = 0xffffffffffffffffULL;

struct Certificate {
  std::string nonce;
  PublicKey key;                        // the certified key, with its plain blob
  uint64_t serial = 0;
  CertType type = CertType::user;
  std::string key_id;
  std::vector<std::string> principals;
  uint64_t valid_after = 0;             // seconds since the epoch
  uint64_t valid_before = 0;            // kForever: no end
  std::vector<CertOption> critical_options;
  std::vector<CertOption> extensions;
  std::string reserved;
  PublicKey signature_key;              // the CA's key
  Signature signature;
  std::string blob;                     // the whole certificate as read
  size_t signed_length = 0;             // the CA signed blob[0, signed_length)

  std::string_view signed_data() const { return std::string_view(blob).substr(0, signed_length); }
};

// A plain public key's wire blob (not a certificate).
Result<PublicKey> parse_public_key(std::string_view blob);
// A certificate's wire blob.
Result<Certificate> parse_certificate(std::string_view blob);

// One line of an authorized_keys-style file: "<type> <base64> [comment]".
// Leading and trailing blanks are ignored; the base64 must decode to a blob
// of the named type. Options in front of the type are not accepted.
struct KeyLine {
  std::string type;     // as written
  std::string blob;     // decoded
  std::string comment;  // the rest of the line, may be empty
};
Result<KeyLine> parse_key_line(std::string_view line);

// A line holding a plain public key, or a certificate.
Result<PublicKey> parse_public_key_line(std::string_view line);
Result<Certificate> parse_certificate_line(std::string_view line);

}  // namespace vigil::sshcert
