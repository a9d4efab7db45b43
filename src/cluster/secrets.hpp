// Secrets of the cluster: join and sign-up tokens (random, shown once,
// stored as SHA-256), passwords (argon2id) and TOTP second factors (RFC
// 6238: 30 s steps, 6 digits, one step either side, a code never accepted
// twice). libsodium and liboath do the cryptography.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cluster/resources.hpp"
#include "cluster/store.hpp"
#include "common/result.hpp"

namespace vigil::cluster {

// libsodium and liboath set-up; every function here calls it (idempotent).
Result<void> init_crypto();

inline constexpr size_t kTokenBytes = 16;  // 128 bits, 32 hex digits
inline constexpr Seconds kMaxTokenTtl{48 * 3600};

struct NewToken {
  std::string secret;  // show it once; only token.hash is stored
  Token token;
};

// SHA-256 of the token text, 64 lowercase hex digits.
std::string hash_token(std::string_view secret);
// `bytes` random bytes (the system's CSPRNG) as 2*bytes lowercase hex
// digits: browser session and CSRF tokens.
std::string random_hex(size_t bytes);

// Makes and stores a join token for roles, valid for ttl (1 s to 48 h).
Result<NewToken> issue_join_token(ClusterStore& store, std::vector<SystemRole> roles, Seconds ttl,
                                  Time now);
// Makes and stores a one-time sign-up token for user.
Result<NewToken> issue_signup_token(ClusterStore& store, std::string_view user, Seconds ttl,
                                    Time now);

// A node (or proxy) presenting a join token: unauthenticated when it is
// unknown, revoked or expired; permission_denied when it does not grant
// role. A join token stays valid until it expires (several nodes may join
// with it), as in the guide.
Result<Token> check_join_token(ClusterStore& store, std::string_view secret, SystemRole role,
                               Time now);
// Consumes a sign-up token: exactly one caller gets it, even when several
// race (the delete is a compare-and-swap on its revision).
Result<Token> consume_signup_token(ClusterStore& store, std::string_view secret, Time now);

// Passwords: 12 to 1024 bytes.
inline constexpr size_t kMinPasswordBytes = 12;
inline constexpr size_t kMaxPasswordBytes = 1024;
// argon2id with libsodium's interactive limits (2 passes, 64 MiB).
Result<std::string> hash_password(std::string_view password);
// unauthenticated when the password does not match (or no password is set).
Result<void> verify_password(std::string_view hash, std::string_view password);
// The time of a verification, spent when there is no user to check, so that
// a refusal takes as long whether the user exists or not.
void burn_password_time(std::string_view password);

// TOTP.
inline constexpr int kTotpStep = 30;
inline constexpr int kTotpDigits = 6;
inline constexpr size_t kTotpSecretBytes = 20;  // 160 bits (RFC 4226)
Result<std::string> new_totp_secret();
std::string totp_base32(std::string_view secret);
// otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
std::string totp_uri(std::string_view issuer, std::string_view account, std::string_view secret);
// The code for the step of now (for tests and enrolment checks).
Result<std::string> totp_code(std::string_view secret, Time now);
// The step (now/30 - 1 .. now/30 + 1) code belongs to; unauthenticated when
// none.
Result<int64_t> totp_match(std::string_view secret, std::string_view code, Time now);
// Checks user's code and records its step in the store, so that the same
// code (or an older one) is refused afterwards, even by a racing login.
Result<void> use_totp(ClusterStore& store, std::string_view user, std::string_view code, Time now);

}  // namespace vigil::cluster
