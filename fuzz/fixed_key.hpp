// A fuzz target's own Ed25519 key, made from a fixed seed: every run signs
// the same way, so a committed seed stays valid.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string_view>

#include "ca/key.hpp"
#include "check.hpp"

namespace vigil::fuzz {

inline ca::PrivateKey fixed_ed25519_key(const unsigned char (&seed)[32]) {
  EVP_PKEY* raw = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, sizeof seed);
  BIO* bio = BIO_new(BIO_s_mem());
  FUZZ_CHECK(raw && bio && PEM_write_bio_PrivateKey(bio, raw, nullptr, nullptr, 0, nullptr, nullptr),
             "fixed key");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  auto key = ca::PrivateKey::from_pem(std::string_view(data, static_cast<size_t>(len)));
  FUZZ_CHECK(key, key ? "" : key.error().message);
  BIO_free(bio);
  EVP_PKEY_free(raw);
  return std::move(*key);
}

}  // namespace vigil::fuzz
