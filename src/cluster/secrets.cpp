#include "cluster/secrets.hpp"

#include <liboath/oath.h>
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "cluster/format.hpp"

namespace vigil::cluster {

namespace {

std::string to_hex(const unsigned char* bytes, size_t n) {
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bytes, n);
  out.pop_back();
  return out;
}

bool is_token_text(std::string_view s) {
  return s.size() == kTokenBytes * 2 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Result<NewToken> issue(ClusterStore& store, Token token, Seconds ttl, Time now) {
  if (auto r = init_crypto(); !r) return r.error();
  if (ttl < Seconds{1} || ttl > kMaxTokenTtl)
    return Error::of(Errc::invalid_argument,
                     "a token's ttl must be from 1s to 48h; give a shorter --ttl");
  unsigned char raw[kTokenBytes];
  randombytes_buf(raw, sizeof raw);
  NewToken out;
  out.secret = to_hex(raw, sizeof raw);
  sodium_memzero(raw, sizeof raw);
  token.hash = hash_token(out.secret);
  token.created = now;
  token.expires = now + ttl;
  auto stored = store.create_token(token);
  if (!stored) return stored.error();
  out.token = stored.value();
  return out;
}

// The stored token for secret, or why not. The lookup is by hash; the hash
// is compared again in constant time.
Result<Token> find(ClusterStore& store, std::string_view secret, std::string_view what_to_do) {
  if (!is_token_text(secret))
    return Error::of(Errc::unauthenticated,
                     "this is not a Vigil token (32 hex digits); " + std::string(what_to_do));
  const std::string hash = hash_token(secret);
  auto token = store.get_token(hash);
  if (!token) {
    if (token.error().kind() == Errc::not_found)
      return Error::of(Errc::unauthenticated,
                       "the token is unknown, revoked or long expired; " + std::string(what_to_do));
    return token.error();
  }
  if (token->hash.size() != hash.size() ||
      sodium_memcmp(token->hash.data(), hash.data(), hash.size()) != 0)
    return Error::of(Errc::unauthenticated, "the token is unknown; " + std::string(what_to_do));
  return token;
}

}  // namespace

Result<void> init_crypto() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = sodium_init() >= 0 && oath_init() == OATH_OK; });
  if (!ok)
    return Error::of(Errc::internal, "cannot initialise libsodium or liboath (is /dev/urandom "
                                     "readable?)");
  return {};
}

std::string random_hex(size_t bytes) {
  (void)init_crypto();
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  return to_hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::string hash_token(std::string_view secret) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(secret.data()), secret.size());
  return to_hex(digest, sizeof digest);
}

Result<NewToken> issue_join_token(ClusterStore& store, std::vector<SystemRole> roles, Seconds ttl,
                                  Time now) {
  if (roles.empty())
    return Error::of(Errc::invalid_argument, "a join token needs a role (--roles=node or proxy)");
  Token t;
  t.kind = TokenKind::join;
  t.roles = std::move(roles);
  return issue(store, std::move(t), ttl, now);
}

Result<NewToken> issue_signup_token(ClusterStore& store, std::string_view user, Seconds ttl,
                                    Time now) {
  Token t;
  t.kind = TokenKind::signup;
  t.user = std::string(user);
  return issue(store, std::move(t), ttl, now);
}

Result<Token> check_join_token(ClusterStore& store, std::string_view secret, SystemRole role,
                               Time now) {
  constexpr std::string_view kNew = "ask the administrator for a new one (vigilctl nodes add)";
  auto token = find(store, secret, kNew);
  if (!token) return token;
  if (token->kind != TokenKind::join)
    return Error::of(Errc::permission_denied,
                     "this is a sign-up token, not a join token; " + std::string(kNew));
  if (token->expires <= now)
    return Error::of(Errc::unauthenticated,
                     "the token expired at " + rfc3339(token->expires) + "; " + std::string(kNew));
  if (std::find(token->roles.begin(), token->roles.end(), role) == token->roles.end())
    return Error::of(Errc::permission_denied,
                     "the token does not let its holder join as " +
                         std::string(system_role_name(role)) + "; make one with --roles=" +
                         std::string(system_role_name(role)));
  return token;
}

Result<Token> consume_signup_token(ClusterStore& store, std::string_view secret, Time now) {
  constexpr std::string_view kNew =
      "ask the administrator for a new sign-up link (vigilctl users reset)";
  auto token = find(store, secret, kNew);
  if (!token) return token;
  if (token->kind != TokenKind::signup)
    return Error::of(Errc::permission_denied,
                     "this is a join token, not a sign-up token; " + std::string(kNew));
  if (token->expires <= now) {
    (void)store.delete_token(token->hash, token->revision);
    return Error::of(Errc::unauthenticated,
                     "the sign-up token expired at " + rfc3339(token->expires) + "; " +
                         std::string(kNew));
  }
  if (auto gone = store.delete_token(token->hash, token->revision); !gone) {
    const Errc k = gone.error().kind();
    if (k == Errc::not_found || k == Errc::failed_precondition)
      return Error::of(Errc::unauthenticated,
                       "the sign-up token was already used; " + std::string(kNew));
    return gone.error();
  }
  return token;
}

Result<std::string> hash_password(std::string_view password) {
  if (auto r = init_crypto(); !r) return r.error();
  if (password.size() < kMinPasswordBytes || password.size() > kMaxPasswordBytes)
    return Error::of(Errc::invalid_argument,
                     "a password must be " + std::to_string(kMinPasswordBytes) + " to " +
                         std::to_string(kMaxPasswordBytes) + " bytes; choose another");
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    return Error::of(Errc::resource_exhausted,
                     "cannot hash the password: out of memory (argon2id needs 64 MiB)");
  return std::string(out);
}

namespace {
// A stored hash whose cost this build would not spend (a tampered row must
// not make a login take gigabytes or minutes).
bool cost_is_bounded(std::string_view hash) {
  if (!hash.starts_with("$argon2id$")) return false;
  auto number_after = [&](std::string_view key) -> long {
    size_t at = hash.find(key);
    if (at == std::string_view::npos) return -1;
    return std::strtol(std::string(hash.substr(at + key.size(), 12)).c_str(), nullptr, 10);
  };
  long m = number_after("m="), t = number_after(",t="), p = number_after(",p=");
  return m > 0 && m <= (1 << 20) && t > 0 && t <= 16 && p == 1;  // m in KiB: at most 1 GiB
}
}  // namespace

Result<void> verify_password(std::string_view hash, std::string_view password) {
  if (auto r = init_crypto(); !r) return r.error();
  const auto refused =
      Error::of(Errc::unauthenticated, "wrong user name or password; try again");
  if (password.empty() || password.size() > kMaxPasswordBytes) return refused;
  if (hash.empty()) {
    burn_password_time(password);
    return Error::of(Errc::unauthenticated,
                     "no password is set for this user; finish the sign-up first");
  }
  if (hash.size() >= crypto_pwhash_STRBYTES || !cost_is_bounded(hash))
    return Error::of(Errc::data_loss,
                     "the stored password hash is not an argon2id hash this build accepts; reset "
                     "the user's password (vigilctl users reset)");
  char stored[crypto_pwhash_STRBYTES] = {};
  std::copy(hash.begin(), hash.end(), stored);
  if (crypto_pwhash_str_verify(stored, password.data(), password.size()) != 0) return refused;
  return {};
}

void burn_password_time(std::string_view password) {
  static const std::string dummy = [] {
    auto h = hash_password("vigil-dummy-password-for-timing");
    return h ? h.value() : std::string();
  }();
  if (dummy.empty()) return;
  // The outcome is meaningless (nobody has this password); only the time counts.
  if (crypto_pwhash_str_verify(dummy.c_str(), password.data(),
                               std::min(password.size(), kMaxPasswordBytes)) == 0) {
  }
}

Result<std::string> new_totp_secret() {
  if (auto r = init_crypto(); !r) return r.error();
  std::string secret(kTotpSecretBytes, '\0');
  randombytes_buf(secret.data(), secret.size());
  return secret;
}

std::string totp_base32(std::string_view secret) {
  char* out = nullptr;
  size_t len = 0;
  if (oath_base32_encode(secret.data(), secret.size(), &out, &len) != OATH_OK) return {};
  std::string text(out, len);
  std::free(out);
  while (!text.empty() && text.back() == '=') text.pop_back();
  return text;
}

std::string totp_uri(std::string_view issuer, std::string_view account, std::string_view secret) {
  auto escape = [](std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '@') {
        out += static_cast<char>(c);
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        out += buf;
      }
    }
    return out;
  };
  return "otpauth://totp/" + escape(issuer) + ":" + escape(account) +
         "?secret=" + totp_base32(secret) + "&issuer=" + escape(issuer) +
         "&algorithm=SHA1&digits=6&period=30";
}

Result<std::string> totp_code(std::string_view secret, Time now) {
  if (auto r = init_crypto(); !r) return r.error();
  char out[kTotpDigits + 1] = {};
  if (oath_totp_generate(secret.data(), secret.size(), now.time_since_epoch().count(), kTotpStep,
                         0, kTotpDigits, out) != OATH_OK)
    return Error::of(Errc::internal, "cannot compute a TOTP code");
  return std::string(out);
}

Result<int64_t> totp_match(std::string_view secret, std::string_view code, Time now) {
  if (auto r = init_crypto(); !r) return r.error();
  if (code.size() != kTotpDigits ||
      !std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return Error::of(Errc::unauthenticated,
                     "a second-factor code is 6 digits from the authenticator app; try again");
  const std::string otp(code);
  int position = 0;
  uint64_t counter = 0;
  const int rc = oath_totp_validate3(secret.data(), secret.size(), now.time_since_epoch().count(),
                                     kTotpStep, 0, 1, &position, &counter, otp.c_str());
  if (rc < 0)
    return Error::of(Errc::unauthenticated,
                     "wrong second-factor code; check the authenticator app and the clock of "
                     "this device, then try again");
  return static_cast<int64_t>(counter);
}

Result<void> use_totp(ClusterStore& store, std::string_view user, std::string_view code, Time now) {
  // Bounded: each retry means another login of this user won a race.
  for (int attempt = 0; attempt < 32; ++attempt) {
    auto u = store.get_user(user);
    if (!u) {
      if (u.error().kind() == Errc::not_found)
        return Error::of(Errc::unauthenticated, "wrong user name or second-factor code");
      return u.error();
    }
    if (!u->totp)
      return Error::of(Errc::failed_precondition,
                       "user " + std::string(user) + " has no second factor enrolled; enrol one "
                       "at sign-up or after vigilctl users reset");
    auto step = totp_match(u->totp->secret, code, now);
    if (!step) return step.error();
    if (step.value() <= u->totp->last_step)
      return Error::of(Errc::unauthenticated,
                       "this second-factor code was already used; wait for the next one");
    u->totp->last_step = step.value();
    auto updated = store.update_user(u.value());
    if (updated) return {};
    if (updated.error().kind() != Errc::failed_precondition) return updated.error();
  }
  return Error::of(Errc::unavailable, "user " + std::string(user) +
                                          " is changing too fast to record the code; try again");
}

}  // namespace vigil::cluster
