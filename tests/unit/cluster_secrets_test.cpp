// Secrets: join and sign-up tokens (random, stored hashed, typed refusals),
// argon2id passwords, TOTP (RFC 6238 vectors, the +-1 step window, no code
// accepted twice, even by two racing logins).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "../support/temp_dir.hpp"
#include "cluster/secrets.hpp"
#include "cluster/sqlite_store.hpp"

namespace vigil::cluster {
namespace {

Time T(int64_t s) { return Time{Seconds{s}}; }

class Secrets : public ::testing::Test {
 protected:
  ClusterStore open() { return ClusterStore(open_sqlite(dir_.file("cluster.db")).value()); }
  std::string file_bytes() {
    std::string all;
    for (const char* suffix : {"", "-wal"}) {
      std::ifstream f(dir_.file("cluster.db") + suffix, std::ios::binary);
      all += std::string(std::istreambuf_iterator<char>(f), {});
    }
    return all;
  }
  test::TempDir dir_;
};

TEST_F(Secrets, JoinTokensAre128BitRandomAndStoredOnlyAsTheirHash) {
  ClusterStore s = open();
  std::set<std::string> seen;
  std::string last;
  for (int i = 0; i < 200; ++i) {
    auto t = issue_join_token(s, {SystemRole::node}, Seconds{300}, T(1000));
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(t->secret.size(), 32u);
    EXPECT_EQ(t->token.hash, hash_token(t->secret));
    EXPECT_EQ(t->token.expires, T(1300));
    EXPECT_TRUE(seen.insert(t->secret).second);
    last = t->secret;
  }
  // The secrets never reach the database file; their hashes do.
  const std::string bytes = file_bytes();
  EXPECT_EQ(bytes.find(last), std::string::npos);
  EXPECT_NE(bytes.find(hash_token(last)), std::string::npos);
  EXPECT_EQ(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(Secrets, AJoinTokenIsCheckedForExpiryRevocationAndRole) {
  ClusterStore s = open();
  auto t = issue_join_token(s, {SystemRole::node}, Seconds{300}, T(1000)).value();
  EXPECT_TRUE(check_join_token(s, t.secret, SystemRole::node, T(1299)).ok());
  EXPECT_TRUE(check_join_token(s, t.secret, SystemRole::node, T(1299)).ok());  // several nodes

  auto expired = check_join_token(s, t.secret, SystemRole::node, T(1300));
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().kind(), Errc::unauthenticated);
  EXPECT_NE(expired.error().message.find("expired at 1970-01-01T00:21:40Z"), std::string::npos)
      << expired.error().message;
  EXPECT_NE(expired.error().message.find("vigilctl nodes add"), std::string::npos);

  auto wrong_role = check_join_token(s, t.secret, SystemRole::proxy, T(1100));
  ASSERT_FALSE(wrong_role.ok());
  EXPECT_EQ(wrong_role.error().kind(), Errc::permission_denied);
  EXPECT_NE(wrong_role.error().message.find("--roles=proxy"), std::string::npos);

  // One hex digit changed: unknown.
  std::string forged = t.secret;
  forged[0] = forged[0] == 'a' ? 'b' : 'a';
  auto unknown = check_join_token(s, forged, SystemRole::node, T(1100));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind(), Errc::unauthenticated);
  // The hash itself is not the token (a stolen database row does not join).
  EXPECT_EQ(check_join_token(s, t.token.hash, SystemRole::node, T(1100)).error().kind(),
            Errc::unauthenticated);
  for (const char* junk : {"", "x", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", "' OR 1=1 --"})
    EXPECT_EQ(check_join_token(s, junk, SystemRole::node, T(1100)).error().kind(),
              Errc::unauthenticated);

  ASSERT_TRUE(s.delete_token(t.token.hash).ok());  // tokens rm: revoked
  auto revoked = check_join_token(s, t.secret, SystemRole::node, T(1100));
  ASSERT_FALSE(revoked.ok());
  EXPECT_EQ(revoked.error().kind(), Errc::unauthenticated);
  EXPECT_NE(revoked.error().message.find("unknown, revoked"), std::string::npos);

  EXPECT_EQ(issue_join_token(s, {SystemRole::node}, Seconds{0}, T(0)).error().kind(),
            Errc::invalid_argument);
  EXPECT_EQ(issue_join_token(s, {SystemRole::node}, Seconds{49 * 3600}, T(0)).error().kind(),
            Errc::invalid_argument);
  EXPECT_EQ(issue_join_token(s, {}, Seconds{60}, T(0)).error().kind(), Errc::invalid_argument);
}

TEST_F(Secrets, SignUpAndJoinTokensAreNotInterchangeable) {
  ClusterStore s = open();
  auto signup = issue_signup_token(s, "alice", Seconds{3600}, T(0)).value();
  auto join = issue_join_token(s, {SystemRole::node}, Seconds{3600}, T(0)).value();
  EXPECT_EQ(check_join_token(s, signup.secret, SystemRole::node, T(1)).error().kind(),
            Errc::permission_denied);
  EXPECT_EQ(consume_signup_token(s, join.secret, T(1)).error().kind(), Errc::permission_denied);
  auto used = consume_signup_token(s, signup.secret, T(1));
  ASSERT_TRUE(used.ok()) << used.error().message;
  EXPECT_EQ(used->user, "alice");
  auto again = consume_signup_token(s, signup.secret, T(2));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind(), Errc::unauthenticated);
  auto late = issue_signup_token(s, "bob", Seconds{60}, T(0)).value();
  auto expired = consume_signup_token(s, late.secret, T(60));
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.error().message.find("expired"), std::string::npos);
}

TEST_F(Secrets, PasswordsAreArgon2idAndVerified) {
  auto hash = hash_password("correct horse battery");
  ASSERT_TRUE(hash.ok()) << hash.error().message;
  EXPECT_TRUE(hash->starts_with("$argon2id$v=19$m=65536,t=2,p=1$")) << hash.value();
  EXPECT_NE(hash.value(), hash_password("correct horse battery").value());  // salted
  EXPECT_TRUE(verify_password(hash.value(), "correct horse battery").ok());
  auto wrong = verify_password(hash.value(), "correct horse batterY");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().kind(), Errc::unauthenticated);
  EXPECT_EQ(verify_password(hash.value(), "").error().kind(), Errc::unauthenticated);
  EXPECT_EQ(verify_password("", "correct horse battery").error().kind(), Errc::unauthenticated);
  EXPECT_EQ(hash_password("short").error().kind(), Errc::invalid_argument);
  EXPECT_EQ(hash_password(std::string(kMaxPasswordBytes + 1, 'x')).error().kind(),
            Errc::invalid_argument);
  // A stored hash asking for more than this build spends is refused, not run.
  std::string greedy = hash.value();
  greedy.replace(greedy.find("m=65536"), 7, "m=4194304");
  EXPECT_EQ(verify_password(greedy, "correct horse battery").error().kind(), Errc::data_loss);
  EXPECT_EQ(verify_password("$2b$10$bcryptbcryptbcrypt", "correct horse battery").error().kind(),
            Errc::data_loss);
}

// RFC 6238 appendix B, SHA-1 secret; the vectors' last 6 of 8 digits.
const std::string kRfcSecret = "12345678901234567890";

TEST_F(Secrets, TotpCodesMatchRfc6238) {
  EXPECT_EQ(totp_code(kRfcSecret, T(59)).value(), "287082");
  EXPECT_EQ(totp_code(kRfcSecret, T(1111111109)).value(), "081804");
  EXPECT_EQ(totp_code(kRfcSecret, T(1234567890)).value(), "005924");
  EXPECT_EQ(totp_code(kRfcSecret, T(2000000000)).value(), "279037");
  EXPECT_EQ(totp_base32(kRfcSecret), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  EXPECT_EQ(totp_uri("Vigil", "alice@example.com", kRfcSecret),
            "otpauth://totp/Vigil:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
            "&issuer=Vigil&algorithm=SHA1&digits=6&period=30");
  auto secret = new_totp_secret();
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(secret->size(), 20u);
  EXPECT_NE(secret.value(), new_totp_secret().value());
}

TEST_F(Secrets, ATotpCodeIsAcceptedOneStepEitherSideAndNoFurther) {
  const Time now = T(1111111109);  // step 37037036
  const std::string code = totp_code(kRfcSecret, now).value();
  EXPECT_EQ(totp_match(kRfcSecret, code, now).value(), 37037036);
  EXPECT_EQ(totp_match(kRfcSecret, code, now + Seconds{30}).value(), 37037036);  // next step
  EXPECT_EQ(totp_match(kRfcSecret, code, now - Seconds{30}).value(), 37037036);  // previous
  EXPECT_EQ(totp_match(kRfcSecret, code, now + Seconds{60}).error().kind(), Errc::unauthenticated);
  EXPECT_EQ(totp_match(kRfcSecret, code, now - Seconds{60}).error().kind(), Errc::unauthenticated);
  for (const char* bad : {"", "12345", "1234567", "12a456", " 81804", "081804\n"})
    EXPECT_EQ(totp_match(kRfcSecret, bad, now).error().kind(), Errc::unauthenticated) << bad;
}

TEST_F(Secrets, AUsedTotpCodeCannotBeReplayedNorAnOlderOne) {
  ClusterStore s = open();
  User u;
  u.name = "alice";
  u.totp = Totp{kRfcSecret, -1};
  ASSERT_TRUE(s.create_user(u).ok());
  const Time now = T(1111111109);
  const std::string current = totp_code(kRfcSecret, now).value();
  const std::string previous = totp_code(kRfcSecret, now - Seconds{30}).value();
  ASSERT_TRUE(use_totp(s, "alice", current, now).ok());
  auto replay = use_totp(s, "alice", current, now + Seconds{5});
  ASSERT_FALSE(replay.ok());
  EXPECT_EQ(replay.error().kind(), Errc::unauthenticated);
  EXPECT_NE(replay.error().message.find("already used"), std::string::npos);
  // Still inside the window, but older than the one used.
  EXPECT_EQ(use_totp(s, "alice", previous, now).error().kind(), Errc::unauthenticated);
  // The next step's code works.
  EXPECT_TRUE(use_totp(s, "alice", totp_code(kRfcSecret, now + Seconds{30}).value(),
                       now + Seconds{30}).ok());
  EXPECT_EQ(s.get_user("alice")->totp->last_step, 37037037);
  // Without a second factor, or an unknown user.
  User bob;
  bob.name = "bob";
  ASSERT_TRUE(s.create_user(bob).ok());
  EXPECT_EQ(use_totp(s, "bob", current, now).error().kind(), Errc::failed_precondition);
  EXPECT_EQ(use_totp(s, "carol", current, now).error().kind(), Errc::unauthenticated);
}

TEST_F(Secrets, TwoLoginsRacingWithOneCodeGetOneAcceptance) {
  {
    ClusterStore s = open();
    User u;
    u.name = "alice";
    u.totp = Totp{kRfcSecret, -1};
    ASSERT_TRUE(s.create_user(u).ok());
  }
  // Many rounds, each a fresh step: both threads try the same code.
  constexpr int kRounds = 30;
  int accepted[2] = {0, 0};
  std::atomic<int> round_ready{0};
  auto run = [&](int who) {
    ClusterStore own = open();
    for (int r = 0; r < kRounds; ++r) {
      const Time now = T(1111111109 + int64_t{r} * 30);
      const std::string code = totp_code(kRfcSecret, now).value();
      round_ready.fetch_add(1);
      while (round_ready.load() < 2 * (r + 1)) std::this_thread::yield();
      auto used = use_totp(own, "alice", code, now);
      if (used.ok()) ++accepted[who];
      else EXPECT_EQ(used.error().kind(), Errc::unauthenticated) << used.error().message;
    }
  };
  std::thread a(run, 0), b(run, 1);
  a.join();
  b.join();
  EXPECT_EQ(accepted[0] + accepted[1], kRounds);
}

}  // namespace
}  // namespace vigil::cluster
