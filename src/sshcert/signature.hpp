// Checking a CA's signature with OpenSSL: Ed25519, ECDSA on P-256/384/521
// with SHA-256/384/512 (RFC 5656), RSA PKCS#1 v1.5 with SHA-256/512
// (RFC 8332). SHA-1 RSA signatures ("ssh-rsa") are refused: SHA-1 collisions
// are practical, and OpenSSH stopped accepting them for certificates in 8.2.
#pragma once

#include <string_view>

#include "sshcert/keys.hpp"
#include "common/result.hpp"

namespace vigil::sshcert {

// The signature algorithms a key of this type may sign with here.
bool algorithm_fits_key(std::string_view algorithm, KeyType key);
bool is_sha1_algorithm(std::string_view algorithm);  // "ssh-rsa"

// Ok when sig is a valid signature of data by key; else why not.
Result<void> verify_signature(const PublicKey& key, const Signature& sig, std::string_view data);

}  // namespace vigil::sshcert
