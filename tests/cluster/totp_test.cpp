// The cluster with `second_factor: otp` (issue 10 §3, §5): a user enrols
// TOTP at sign-up, logs in with the password and the current code, and a
// wrong, a future or a replayed code is refused and audited. The codes are
// made here with liboath from the secret vsh printed, not with Vigil's own.
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>

#include "cluster_harness.hpp"

namespace {

using namespace cluster_test;
using e2e::Outcome;

constexpr int kAuth = 27025, kWeb = 27080, kJump = 27023, kTunnel = 27024, kNode = 27022;
std::unique_ptr<VigilProcess> g;

std::string proxy_flag() {
  return "127.0.0.1:" + std::to_string(kWeb) + "," + std::to_string(kJump);
}

int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Outcome login(const std::string& who, const std::string& code) {
  return g->vsh(who, {"login", "--proxy=" + proxy_flag(), "--user=" + who, "--insecure", "--password-stdin"},
                std::string(kPassword) + "\n" + code + "\n");
}

// The user.login events of `who` that failed.
std::vector<nlohmann::json> failed_logins(const std::string& who) {
  std::vector<nlohmann::json> out;
  for (auto& e : g->auth_events("user.login"))
    if (e.value("user", "") == who && !e.value("success", true)) out.push_back(e);
  return out;
}

class Totp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g = std::make_unique<VigilProcess>("vigil-totp");
    std::ostringstream cfg;
    cfg << "version: v3\n"
           "teleport:\n"
           "  nodename: otpnode\n"
           "  data_dir: " << g->data_dir() << "\n"
           "auth_service:\n"
           "  enabled: true\n"
           "  cluster_name: otp-cluster\n"
           "  listen_addr: 127.0.0.1:" << kAuth << "\n"
           "  authentication:\n"
           "    second_factor: otp\n"
           "proxy_service:\n"
           "  enabled: true\n"
           "  web_listen_addr: 127.0.0.1:" << kWeb << "\n"
           "  listen_addr: 127.0.0.1:" << kJump << "\n"
           "  tunnel_listen_addr: 127.0.0.1:" << kTunnel << "\n"
           "  public_addr: 127.0.0.1:" << kWeb << "\n"
           "ssh_service:\n"
           "  enabled: true\n"
           "  listen_addr: 127.0.0.1:" << kNode << "\n";
    g->write_config(cfg.str());
    g->start();
    bool up = wait_until(
        [] {
          auto nodes = g->ctl({"nodes", "ls"});
          return nodes.status == 0 && nodes.out.find("otpnode") != std::string::npos;
        },
        90);
    if (!up) FAIL() << "the cluster did not come up; vigil start said:\n" << g->log_text();
  }
  static void TearDownTestSuite() { g.reset(); }
  void SetUp() override {
    if (!g || !g->running()) GTEST_FAIL() << "vigil start is not running";
  }

  // Signs `who` up; returns the TOTP secret vsh printed.
  static std::string sign_up(const std::string& who) {
    auto add = g->ctl({"users", "add", who, "--roles=access", "--logins=root"});
    EXPECT_EQ(add.status, 0) << add.err;
    auto signup = g->vsh(who, {"signup", "--proxy=" + proxy_flag(), "--insecure", "--password-stdin",
                               signup_token(add.out)},
                         std::string(kPassword) + "\n");
    EXPECT_EQ(signup.status, 0) << signup.err;
    return totp_secret(signup.out);
  }
};

TEST_F(Totp, FindSaysOtpAndSignupEnrolsASecret) {
  std::string secret = sign_up("olga");
  EXPECT_GE(secret.size(), 26u) << "a 160-bit base32 secret";
}

TEST_F(Totp, ThePasswordAndTheCurrentCodeLogInAndTheCertificateWorks) {
  std::string secret = sign_up("paula");
  ASSERT_FALSE(secret.empty());
  auto ok = login("paula", totp_code(secret, now()));
  ASSERT_EQ(ok.status, 0) << ok.err;
  auto st = g->vsh("paula", {"status"});
  EXPECT_NE(st.out.find("Logged in as:       paula"), std::string::npos) << st.out;
  auto run = g->vsh("paula", {"ssh", "root@otpnode", "echo", "second-factor-ok"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("second-factor-ok"), std::string::npos);
  bool audited = false;
  for (auto& e : g->auth_events("user.login"))
    if (e.value("user", "") == "paula" && e.value("success", false)) audited = true;
  EXPECT_TRUE(audited) << g->auth_log_text();
}

TEST_F(Totp, AWrongOrFutureCodeIsRefusedAndAudited) {
  std::string secret = sign_up("quentin");
  ASSERT_FALSE(secret.empty());
  // Ten minutes ahead: a code the user's app will show, but not now.
  std::string future = totp_code(secret, now() + 600);
  auto refused = login("quentin", future);
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("invalid user name, password or second-factor code"), std::string::npos)
      << refused.err;
  EXPECT_FALSE(std::filesystem::exists(g->dir() + "/home-quentin/current-profile"));
  auto st = g->vsh("quentin", {"status"});
  EXPECT_NE(st.status, 0) << "no credentials after a refused login: " << st.out;
  ASSERT_TRUE(wait_until([] { return !failed_logins("quentin").empty(); }, 10)) << g->auth_log_text();
  EXPECT_NE(failed_logins("quentin").front().value("error", "").find("code"), std::string::npos)
      << failed_logins("quentin").front().dump();
  // Only the password, no code: refused as well.
  auto none = g->vsh("quentin", {"login", "--proxy=" + proxy_flag(), "--user=quentin", "--insecure",
                                 "--password-stdin"},
                     std::string(kPassword) + "\n\n");
  EXPECT_NE(none.status, 0);
}

TEST_F(Totp, ACodeIsUsedOnlyOnce) {
  std::string secret = sign_up("rita");
  ASSERT_FALSE(secret.empty());
  std::string code = totp_code(secret, now());
  auto first = login("rita", code);
  ASSERT_EQ(first.status, 0) << first.err;
  // Someone who saw it over her shoulder, within the same 30 s.
  auto replay = login("rita", code);
  EXPECT_NE(replay.status, 0);
  // The user is told only that the login failed; the log says why.
  EXPECT_NE(replay.err.find("invalid user name, password or second-factor code"), std::string::npos)
      << replay.err;
  ASSERT_TRUE(wait_until([] { return !failed_logins("rita").empty(); }, 10)) << g->auth_log_text();
  EXPECT_NE(failed_logins("rita").front().value("error", "").find("already used"), std::string::npos)
      << failed_logins("rita").front().dump();
}

}  // namespace
