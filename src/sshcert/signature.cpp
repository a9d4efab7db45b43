#include "sshcert/signature.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <memory>

#include "sshcert/wire.hpp"

namespace vigil::sshcert {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

BIGNUM* to_bn(std::string_view magnitude) {
  return BN_bin2bn(bytes_of(magnitude), static_cast<int>(magnitude.size()), nullptr);
}

// Size in bytes of one coordinate (and of r and s) on the key's curve.
size_t field_bytes(KeyType type) {
  switch (type) {
    case KeyType::ecdsa_p256: return 32;
    case KeyType::ecdsa_p384: return 48;
    case KeyType::ecdsa_p521: return 66;
    default: return 0;
  }
}

const char* group_name(KeyType type) {
  switch (type) {
    case KeyType::ecdsa_p256: return "P-256";
    case KeyType::ecdsa_p384: return "P-384";
    default: return "P-521";
  }
}

PkeyPtr from_params(const char* algorithm, OSSL_PARAM* params) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, algorithm, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    return nullptr;
  return PkeyPtr(pkey);
}

// The key in OpenSSL's form; null when OpenSSL refuses it (e.g. an ECDSA
// point that is not on its curve).
PkeyPtr openssl_key(const PublicKey& key) {
  switch (key.type) {
    case KeyType::ed25519:
      return PkeyPtr(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes_of(key.point),
                                                 key.point.size()));
    case KeyType::ecdsa_p256:
    case KeyType::ecdsa_p384:
    case KeyType::ecdsa_p521: {
      // OSSL_PARAM wants mutable pointers; OpenSSL only reads them.
      std::string group = group_name(key.type);
      std::string point = key.point;
      OSSL_PARAM params[] = {
          OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group.data(), 0),
          OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
          OSSL_PARAM_construct_end()};
      return from_params("EC", params);
    }
    case KeyType::rsa: {
      BnPtr n(to_bn(key.rsa_n)), e(to_bn(key.rsa_e));
      ParamBldPtr bld(OSSL_PARAM_BLD_new());
      if (!n || !e || !bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
          !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()))
        return nullptr;
      ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
      return params ? from_params("RSA", params.get()) : nullptr;
    }
  }
  return nullptr;
}

// ECDSA signature bytes on the wire are (mpint r, mpint s); OpenSSL wants DER.
Result<std::string> ecdsa_der(std::string_view bytes, KeyType type) {
  WireReader r(bytes, "ecdsa signature");
  std::string_view rv = r.positive_mpint("r", field_bytes(type));
  std::string_view sv = r.positive_mpint("s", field_bytes(type));
  r.expect_end();
  if (!r.ok()) return r.error();
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* rb = to_bn(rv);
  BIGNUM* sb = to_bn(sv);
  if (!sig || !rb || !sb || ECDSA_SIG_set0(sig.get(), rb, sb) != 1) {
    BN_free(rb);
    BN_free(sb);
    return Error{"ecdsa signature: out of memory"};
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return Error{"ecdsa signature: cannot be DER-encoded"};
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

Result<void> check(const PublicKey& key, const Signature& sig, std::string_view data) {
  if (is_sha1_algorithm(sig.algorithm))
    return Error{"the signature uses ssh-rsa (RSA with SHA-1), which is refused: re-sign with "
                 "rsa-sha2-256 or rsa-sha2-512 (ssh-keygen -t rsa-sha2-512 -s ...)"};
  if (!algorithm_fits_key(sig.algorithm, key.type))
    return Error{"signature algorithm '" + sig.algorithm + "' does not fit a " +
                 std::string(key_type_name(key.type)) + " key"};

  const EVP_MD* md = nullptr;
  std::string sig_bytes = sig.bytes;
  switch (key.type) {
    case KeyType::ed25519:
      if (sig_bytes.size() != 64) return Error{"ed25519 signature is not 64 bytes"};
      break;  // Ed25519 hashes internally: no digest is named
    case KeyType::ecdsa_p256:
    case KeyType::ecdsa_p384:
    case KeyType::ecdsa_p521: {
      md = key.type == KeyType::ecdsa_p256   ? EVP_sha256()
           : key.type == KeyType::ecdsa_p384 ? EVP_sha384()
                                             : EVP_sha512();
      auto der = ecdsa_der(sig_bytes, key.type);
      if (!der) return der.error();
      sig_bytes = std::move(*der);
      break;
    }
    case KeyType::rsa:
      md = sig.algorithm == "rsa-sha2-256" ? EVP_sha256() : EVP_sha512();
      // Some signers drop leading zero bytes; PKCS#1 wants the modulus' length.
      if (sig_bytes.size() > key.rsa_n.size())
        return Error{"rsa signature is longer than the key's modulus"};
      sig_bytes.insert(0, key.rsa_n.size() - sig_bytes.size(), '\0');
      break;
  }

  PkeyPtr pkey = openssl_key(key);
  if (!pkey) return Error{"OpenSSL refused the signing key (" + key.fingerprint() + ")"};
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pkey.get()) != 1)
    return Error{"OpenSSL cannot set up verification with the signing key"};
  if (EVP_DigestVerify(ctx.get(), bytes_of(sig_bytes), sig_bytes.size(), bytes_of(data),
                       data.size()) != 1)
    return Error{"the signature does not match the signed data"};
  return {};
}

}  // namespace

bool is_sha1_algorithm(std::string_view algorithm) { return algorithm == "ssh-rsa"; }

bool algorithm_fits_key(std::string_view algorithm, KeyType key) {
  if (key == KeyType::rsa) return algorithm == "rsa-sha2-256" || algorithm == "rsa-sha2-512";
  return algorithm == key_type_name(key);
}

Result<void> verify_signature(const PublicKey& key, const Signature& sig, std::string_view data) {
  Result<void> result = check(key, sig, data);
  // Failed OpenSSL calls leave entries in this thread's error queue.
  if (!result) ERR_clear_error();
  return result;
}

}  // namespace vigil::sshcert
