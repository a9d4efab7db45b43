// Users, sign-up and login: the certificates a login gives (principals,
// recorded kinds, roles, ttl), and the attacks on it (unknown user, guess
// loops, TOTP codes wrong or reused, sign-up tokens raced or reused), each
// with the exact refusal and its audit event.
#include <thread>

#include "authsvc_fixture.hpp"
#include "ca/tls_ca.hpp"

namespace vigil::authsvc::test {
namespace {

class Login : public AuthFixture {
 protected:
  sshcert::Certificate ssh_cert(const api::Reply& r) {
    auto c = sshcert::parse_certificate_line(body(r)["ssh_certificate"].get<std::string>());
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    return c.ok() ? c.value() : sshcert::Certificate{};
  }
  api::Reply login(const std::string& user, const std::string& password,
                   std::string code = "", std::string addr = "198.51.100.7:40000") {
    return call("POST", "/v1/login", anonymous(addr), login_body(user, password, keys_, code));
  }
  ClientKeys keys_;
};

TEST_F(Login, ALoginGivesCertificatesForTheLoginsTheRolesAllow) {
  create_role(
      "kind: role\nversion: v8\nmetadata:\n  name: dev\nspec:\n  allow:\n    logins: [ubuntu, "
      "'{{internal.logins}}']\n    node_labels: {'*': '*'}\n  options:\n    max_session_ttl: 2h\n");
  make_user("ann", {"dev", "auditor"}, {"ann", "deploy"});
  auto r = login("ann", kPassword);
  ASSERT_EQ(r.status, 200) << r.body;
  auto c = ssh_cert(r);
  EXPECT_EQ(c.type, sshcert::CertType::user);
  EXPECT_EQ(c.key_id, "ann");
  EXPECT_EQ(c.key.blob, keys_.ssh.ssh_public_key().blob);
  EXPECT_EQ(c.principals, (std::vector<std::string>{"ann", "deploy", "ubuntu"}));
  EXPECT_EQ(option_text(c, "vigil-roles@vigil.dev"), "dev,auditor");
  EXPECT_EQ(option_text(c, "vigil-recording@vigil.dev"), "command,network");
  // The default 12h is capped by dev's 2h.
  EXPECT_EQ(c.valid_before, static_cast<uint64_t>(kStart + 2 * 3600));
  EXPECT_EQ(body(r)["ttl_seconds"], 7200);
  EXPECT_EQ(c.signature_key.blob, cas_->ssh_user.active().key.ssh_public_key().blob);

  auto tls = ca::TlsCertificate::from_pem(body(r)["tls_certificate"].get<std::string>()).value();
  auto id = ca::verify_tls_peer(tls.get(), cas_->tls.trusted_tls_certificates(), "alpha",
                                ca::TlsUsage::client, kStart);
  ASSERT_TRUE(id.ok()) << id.refusal().message;
  EXPECT_EQ(id->name, "ann");
  EXPECT_EQ(id->roles, (std::vector<std::string>{"dev", "auditor"}));
  EXPECT_EQ(id->not_after, kStart + 7200);
  EXPECT_NE(body(r)["host_ca_known_hosts"].get<std::string>().find("@cert-authority * "),
            std::string::npos);

  json ok = audit_.last("user.login");
  EXPECT_EQ(ok["success"], true);
  EXPECT_EQ(ok["code"], "T1000I");
  EXPECT_EQ(ok["user"], "ann");
  auto certs = audit_.events("cert.create");
  ASSERT_GE(certs.size(), 2u);
  json ssh_event = certs[certs.size() - 2];
  EXPECT_EQ(ssh_event["cert_type"], "user");
  EXPECT_EQ(ssh_event["serial"], std::to_string(c.serial));
  EXPECT_EQ(ssh_event["ttl"], 7200);
  EXPECT_EQ(ssh_event["identity"]["logins"], json::array({"ann", "deploy", "ubuntu"}));
  EXPECT_EQ(certs.back()["cert_type"], "tls_user");
  EXPECT_EQ(certs.back()["serial"], id->serial);
  // No key material in the audit log.
  EXPECT_EQ(ssh_event.dump().find(keys_.ssh_line().substr(12, 40)), std::string::npos);

  // A longer ttl asked for is still capped; a shorter one is kept.
  auto shorter = call("POST", "/v1/login", anonymous(),
                      [&] { auto j = login_body("ann", kPassword, keys_); j["ttl"] = "30m"; return j; }());
  EXPECT_EQ(body(shorter)["ttl_seconds"], 1800);
  auto longer = call("POST", "/v1/login", anonymous(),
                     [&] { auto j = login_body("ann", kPassword, keys_); j["ttl"] = "30h"; return j; }());
  EXPECT_EQ(body(longer)["ttl_seconds"], 7200);
}

TEST_F(Login, RecordedKindsAreTheUnionOfTheRolesEnhancedRecording) {
  create_role(
      "kind: role\nversion: v8\nmetadata:\n  name: disk-only\nspec:\n  allow:\n    logins: [a]\n"
      "    node_labels: {'*': '*'}\n  options:\n    enhanced_recording: [disk]\n");
  create_role(
      "kind: role\nversion: v8\nmetadata:\n  name: net-only\nspec:\n  allow:\n    logins: [b]\n"
      "  options:\n    enhanced_recording: [network]\n");
  make_user("dora", {"disk-only"});
  make_user("uma", {"disk-only", "net-only"});
  make_user("nell", {"access"}, {"nell"});
  EXPECT_EQ(option_text(ssh_cert(login("dora", kPassword)), "vigil-recording@vigil.dev"), "disk");
  EXPECT_EQ(option_text(ssh_cert(login("uma", kPassword)), "vigil-recording@vigil.dev"),
            "disk,network");
  auto nell = login("nell", kPassword);
  EXPECT_EQ(option_text(ssh_cert(nell), "vigil-recording@vigil.dev"), "command,network");
  EXPECT_EQ(body(nell)["enhanced_recording"], json::array({"command", "network"}));
}

TEST_F(Login, AUserWhoseRolesAllowNoLoginGetsAPrincipalThatOpensNoAccount) {
  make_user("aud", {"auditor"});
  auto r = login("aud", kPassword);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ssh_cert(r).principals, std::vector<std::string>{"-vigil-no-login"});
  EXPECT_FALSE(cluster::is_valid_login("-vigil-no-login"));
}

TEST_F(Login, AnUnknownUserGetsTheSameErrorAsAWrongPassword) {
  make_user("kim", {"access"}, {"kim"});
  auto wrong = login("kim", "not the password at all");
  auto unknown = login("nobody", "not the password at all");
  auto unset = [&] {
    call("POST", "/v1/users", admin_peer(), {{"name", "new"}, {"roles", {"access"}}});
    return login("new", "not the password at all");
  }();
  for (const auto* r : {&wrong, &unknown, &unset}) {
    EXPECT_EQ(r->status, 401) << r->body;
    EXPECT_EQ(r->body, wrong.body);
  }
  EXPECT_EQ(error_message(wrong), "invalid user name or password");
  auto failures = audit_.events("user.login");
  ASSERT_EQ(failures.size(), 3u);
  EXPECT_EQ(failures[0]["error"], "wrong password");
  EXPECT_EQ(failures[1]["error"], "unknown user");
  EXPECT_EQ(failures[1]["user"], "nobody");
  EXPECT_NE(failures[2]["error"].get<std::string>().find("no password set yet"), std::string::npos);
  for (const auto& f : failures) {
    EXPECT_EQ(f["success"], false);
    EXPECT_EQ(f["code"], "T1000W");
    EXPECT_EQ(f["addr.remote"], "198.51.100.7");
  }
}

TEST_F(Login, APasswordGuessLoopHitsTheRateLimit) {
  make_user("leo", {"access"}, {"leo"});
  for (int i = 0; i < 5; ++i) {
    auto r = login("leo", "guess number " + std::to_string(i), "", "203.0.113.5:1000");
    EXPECT_EQ(r.status, 401) << r.body;
  }
  // The sixth try is refused before the password is looked at, even the right one.
  auto limited = login("leo", kPassword, "", "203.0.113.9:2000");
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(error_code(limited), "resource_exhausted");
  const std::string retry = cluster::rfc3339(cluster::Time{cluster::Seconds{kStart + 900}});
  EXPECT_EQ(error_message(limited),
            "too many failed logins for this user; try again after " + retry);
  json e = audit_.last("user.login");
  EXPECT_EQ(e["success"], false);
  EXPECT_EQ(e["error"], "rate limited (user:leo)");

  // The same source guessing other names is limited too.
  auto other = login("someone", "x-password-x", "", "203.0.113.5:1001");
  EXPECT_EQ(other.status, 429) << other.body;
  EXPECT_NE(error_message(other).find("from this address"), std::string::npos);

  // Once the window has passed, the right password works again.
  now_ += 900;
  EXPECT_EQ(login("leo", kPassword, "", "203.0.113.9:2000").status, 200);
}

TEST_F(Login, BehindAProxyFailuresCountPerForwardedClientAndOnlyAProxyMayForward) {
  make_user("rex", {"access"}, {"rex"});
  // A proxy joins; its identity forwards logins.
  auto tok = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"proxy"}}});
  auto joined = call("POST", "/v1/join", anonymous(),
                     {{"token", body(tok)["token"]}, {"role", "proxy"}, {"node_name", "proxy-1"},
                      {"addresses", {"10.0.0.9:3080"}}, {"ssh_public_key", keys_.ssh_line()},
                      {"tls_public_key", keys_.tls_b64()}});
  ASSERT_EQ(joined.status, 200) << joined.body;
  const api::Peer proxy = node_peer(body(joined)["uuid"]);
  ASSERT_EQ(caller_of(proxy).kind, CallerKind::proxy);
  auto via = [&](const api::Peer& peer, const std::string& client, const std::string& user,
                 const std::string& password) {
    api::Request q;
    q.method = "POST";
    q.path = "/v1/login";
    q.peer = peer;
    q.peer.forwarded_for = client;  // as the HTTPS server reads X-Forwarded-For
    q.json = login_body(user, password, keys_);
    q.body = q.json.dump();
    q.content_type = "application/json";
    return router_.dispatch(q);
  };
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(via(proxy, "203.0.113.50", "user" + std::to_string(i), "bad password!!").status, 401);
  EXPECT_EQ(audit_.last("user.login")["addr.remote"], "203.0.113.50");
  // That client is limited; another one behind the same proxy is not.
  EXPECT_EQ(via(proxy, "203.0.113.50", "rex", kPassword).status, 429);
  EXPECT_EQ(via(proxy, "203.0.113.51", "rex", kPassword).status, 200);
  // A client that is not a proxy cannot pick its own address: refused.
  auto forged = via(anonymous("198.51.100.99:1"), "192.0.2.1", "rex", kPassword);
  EXPECT_EQ(forged.status, 403) << forged.body;
  EXPECT_EQ(audit_.last("access.denied")["action"], "forward");
}

TEST_F(Login, ASignupTokenWorksOnceEvenWhenTwoRaceForIt) {
  auto r = call("POST", "/v1/users", admin_peer(),
                {{"name", "max"}, {"roles", {"access"}}, {"logins", {"max"}}});
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string token = body(r)["token"];
  EXPECT_EQ(body(r)["url"], "https://proxy.alpha.test:3080/web/invite/" + token);
  EXPECT_EQ(body(r)["expires"], cluster::rfc3339(cluster::Time{cluster::Seconds{kStart + 3600}}));
  json created = audit_.last("user.create");
  EXPECT_EQ(created["name"], "max");
  EXPECT_EQ(created["code"], "T1002I");
  EXPECT_EQ(created["roles"], json::array({"access"}));
  EXPECT_EQ(created.dump().find(token), std::string::npos);

  // A password too short does not burn the token.
  auto short_pw = call("POST", "/v1/signup", anonymous(), {{"token", token}, {"password", "short"}});
  EXPECT_EQ(short_pw.status, 400);

  api::Reply results[2];
  std::thread a([&] {
    results[0] = call("POST", "/v1/signup", anonymous(), {{"token", token}, {"password", "first password A"}});
  });
  std::thread b([&] {
    results[1] = call("POST", "/v1/signup", anonymous(), {{"token", token}, {"password", "second password B"}});
  });
  a.join();
  b.join();
  const int winners = (results[0].status == 200) + (results[1].status == 200);
  ASSERT_EQ(winners, 1) << results[0].body << results[1].body;
  const api::Reply& loser = results[0].status == 200 ? results[1] : results[0];
  EXPECT_EQ(loser.status, 401) << loser.body;
  const std::string won = results[0].status == 200 ? "first password A" : "second password B";
  const std::string lost = results[0].status == 200 ? "second password B" : "first password A";
  EXPECT_EQ(login("max", won).status, 200);
  EXPECT_EQ(login("max", lost).status, 401);

  // Used once: used up.
  auto again = call("POST", "/v1/signup", anonymous(), {{"token", token}, {"password", "third password C"}});
  EXPECT_EQ(again.status, 401);
  EXPECT_NE(error_message(again).find("vigilctl users reset"), std::string::npos) << again.body;
}

TEST_F(Login, UsersAddWithAMissingRoleIsRefusedNamingIt) {
  auto r = call("POST", "/v1/users", admin_peer(), {{"name", "ned"}, {"roles", {"access", "dba"}}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(error_message(r).find("role dba does not exist"), std::string::npos) << r.body;
  EXPECT_FALSE(store_->get_user("ned").ok());
  auto dup = call("POST", "/v1/users", admin_peer(), {{"name", "ned"}, {"roles", {"access"}}});
  EXPECT_EQ(dup.status, 201);
  auto again = call("POST", "/v1/users", admin_peer(), {{"name", "ned"}, {"roles", {"access"}}});
  EXPECT_EQ(again.status, 409);
  EXPECT_NE(error_message(again).find("vigilctl users reset ned"), std::string::npos);
}

TEST_F(Login, AResetClearsThePasswordAndGivesANewLink) {
  make_user("ola", {"access"}, {"ola"});
  ASSERT_EQ(login("ola", kPassword).status, 200);
  auto r = call("POST", "/v1/users/ola/reset", admin_peer());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(login("ola", kPassword).status, 401);
  EXPECT_EQ(audit_.last("user.update")["reset"], true);
  auto s = call("POST", "/v1/signup", anonymous(),
                {{"token", body(r)["token"]}, {"password", "a brand new password"}});
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(login("ola", "a brand new password").status, 200);
  // Users list and get, for those who may.
  EXPECT_EQ(body(call("GET", "/v1/users", admin_peer()))["users"].size(), 1u);
  EXPECT_EQ(call("GET", "/v1/users/ola", user_peer("ola")).status, 200);  // their own
  EXPECT_EQ(call("GET", "/v1/users", user_peer("ola")).status, 403);
  EXPECT_EQ(call("GET", "/v1/users/ola", admin_peer()).body.find("argon2"), std::string::npos);
}

class Otp : public Login {
 protected:
  void SetUp() override { start(SecondFactor::otp); }
  std::string code_at(const std::string& user, int64_t t) {
    auto u = store_->get_user(user).value();
    return cluster::totp_code(u.totp->secret, cluster::Time{cluster::Seconds{t}}).value();
  }
};

TEST_F(Otp, SignupEnrolsTotpAndLoginNeedsAFreshCode) {
  EXPECT_EQ(body(call("GET", "/v1/find", anonymous()))["auth"]["second_factor"], "otp");
  make_user("pia", {"access"}, {"pia"});
  const std::string secret = last_signup_["totp_secret"];
  EXPECT_EQ(secret, cluster::totp_base32(store_->get_user("pia")->totp->secret));
  EXPECT_EQ(last_signup_["totp_uri"].get<std::string>().rfind("otpauth://totp/alpha:pia?secret=" + secret, 0), 0u)
      << last_signup_;

  const std::string generic = "invalid user name, password or second-factor code";
  auto none = login("pia", kPassword);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(error_message(none), generic);

  std::string wrong = code_at("pia", kStart);
  wrong[0] = wrong[0] == '9' ? '0' : static_cast<char>(wrong[0] + 1);
  auto bad = login("pia", kPassword, wrong);
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(error_message(bad), generic);
  EXPECT_NE(audit_.last("user.login")["error"].get<std::string>().find("second factor"),
            std::string::npos);

  const std::string good = code_at("pia", kStart);
  EXPECT_EQ(login("pia", kPassword, good).status, 200);
  auto reused = login("pia", kPassword, good);
  EXPECT_EQ(reused.status, 401) << reused.body;
  EXPECT_EQ(error_message(reused), generic);
  EXPECT_NE(audit_.last("user.login")["error"].get<std::string>().find("already used"),
            std::string::npos)
      << audit_.last("user.login");
  // The right code with a wrong password: refused the same way.
  now_ += 30;
  EXPECT_EQ(error_message(login("pia", "wrong password here", code_at("pia", now_))), generic);
  now_ += 30;
  EXPECT_EQ(login("pia", kPassword, code_at("pia", now_)).status, 200);
}

}  // namespace
}  // namespace vigil::authsvc::test
