// Browser sessions on the web port (issue 11 §1): a login with the
// password gives an HttpOnly cookie and a CSRF token; every call made with
// the cookie must echo the token; the cookie acts as its user with exactly
// the rights of that user's current roles; logout ends it. Each way around
// it is tried here, with the exact status and audit event.
#include "authsvc_fixture.hpp"

#include "api/server.hpp"

namespace vigil::authsvc::test {
namespace {

class WebSession : public AuthFixture {
 protected:
  struct Login {
    std::string cookie;  // the token, as the Set-Cookie header gave it
    std::string csrf;
    api::Reply reply;
  };
  Login web_login(const std::string& user, const std::string& password = kPassword,
                  std::string address = "198.51.100.7:40000") {
    Login out;
    out.reply = call("POST", "/v1/webapi/sessions", anonymous(address),
                     {{"user", user}, {"password", password}});
    for (const auto& [name, value] : out.reply.headers)
      if (name == "Set-Cookie") {
        auto v = api::cookie_value(value.substr(0, value.find(';')), api::kSessionCookie);
        if (v) out.cookie = *v;
      }
    json j = body(out.reply);
    if (j.contains("csrf_token")) out.csrf = j["csrf_token"].get<std::string>();
    return out;
  }
  // A peer on the web port carrying the cookie (and the CSRF header).
  static api::Peer browser(const std::string& cookie, std::optional<std::string> csrf,
                           std::string addr = "198.51.100.7:40000") {
    api::Peer p = anonymous(std::move(addr));
    p.web_session = cookie;
    p.web_csrf = std::move(csrf);
    return p;
  }
  static std::string set_cookie(const api::Reply& r) {
    for (const auto& [name, value] : r.headers)
      if (name == "Set-Cookie") return value;
    return {};
  }
  // The last access.denied, checked field by field.
  void expect_denied(const std::string& user, const std::string& action, const std::string& error_part) {
    json d = audit_.last("access.denied");
    ASSERT_FALSE(d.is_null());
    EXPECT_EQ(d["user"], user) << d.dump();
    EXPECT_EQ(d["action"], action) << d.dump();
    EXPECT_NE(d["error"].get<std::string>().find(error_part), std::string::npos) << d.dump();
    EXPECT_EQ(d["code"], "V1000W");
  }
};

TEST_F(WebSession, LoginSetsAnHttpOnlyStrictCookieAndACsrfTokenAndIsAudited) {
  make_user("alice", {"access"}, {"alice"});
  Login l = web_login("alice");
  ASSERT_EQ(l.reply.status, 201) << l.reply.body;
  const std::string sc = set_cookie(l.reply);
  EXPECT_EQ(sc.rfind("__Host-vigil_session=", 0), 0u) << sc;
  for (const char* attr : {"; Path=/", "; Secure", "; HttpOnly", "; SameSite=Strict", "; Max-Age=43200"})
    EXPECT_NE(sc.find(attr), std::string::npos) << attr << " missing in " << sc;
  EXPECT_EQ(l.cookie.size(), 64u);
  EXPECT_EQ(l.csrf.size(), 64u);
  EXPECT_NE(l.cookie, l.csrf);
  EXPECT_EQ(body(l.reply)["user"], "alice");
  EXPECT_EQ(body(l.reply)["ttl_seconds"], 12 * 3600);
  json ev = audit_.last("user.login");
  EXPECT_EQ(ev["success"], true);
  EXPECT_EQ(ev["web_session"], true);
  EXPECT_EQ(ev["user"], "alice");
  EXPECT_EQ(ev["addr.remote"], "198.51.100.7");
  // Stored hashed only: neither token is in the cluster state.
  auto records = store_->backend().list("web_session");
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ(records->front().name, cluster::hash_token(l.cookie));
  EXPECT_EQ(records->front().data.find(l.cookie), std::string::npos);
  EXPECT_EQ(records->front().data.find(l.csrf), std::string::npos);
}

TEST_F(WebSession, TheCookieActsAsItsUserWithTheRightsOfTheCurrentRoles) {
  const std::string role = "kind: role\nversion: v7\nmetadata:\n  name: mine\nspec:\n  allow:\n    logins: [alice]\n";
  create_role(role);
  make_user("alice", {"mine"}, {"alice"});
  Login l = web_login("alice");
  ASSERT_EQ(l.reply.status, 201);
  auto me = call("GET", "/v1/webapi/sessions/current", browser(l.cookie, l.csrf));
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(body(me)["user"], "alice");
  EXPECT_EQ(body(me)["web_session"], true);
  EXPECT_EQ(body(me)["sees_all_events"], false);
  Caller c = caller_of(browser(l.cookie, l.csrf));
  EXPECT_EQ(c.kind, CallerKind::user);
  EXPECT_EQ(c.name, "alice");
  // What alice's certificate may not do, the cookie may not either.
  EXPECT_EQ(call("GET", "/v1/users", browser(l.cookie, l.csrf)).status, 403);
  expect_denied("alice", "users.list", "may not list user");
  // Roles are read at each call: her role now allows event list, and the
  // same cookie sees every event.
  create_role(role + "    rules:\n    - resources: [event]\n      verbs: [list, read]\n");
  auto again = call("GET", "/v1/webapi/sessions/current", browser(l.cookie, l.csrf));
  EXPECT_EQ(body(again)["sees_all_events"], true) << again.body;
}

TEST_F(WebSession, NoCookieIsAnonymous) {
  auto r = call("GET", "/v1/webapi/sessions/current", anonymous());
  EXPECT_EQ(r.status, 401);
  expect_denied("anonymous", "who am I", "log in first");
  EXPECT_EQ(call("GET", "/v1/nodes", anonymous()).status, 401);
}

TEST_F(WebSession, AForgedOrMalformedCookieIsRefused401AndAudited) {
  make_user("alice", {"access"}, {"alice"});
  ASSERT_EQ(web_login("alice").reply.status, 201);
  const std::string forged(64, 'a');
  auto r = call("GET", "/v1/webapi/sessions/current", browser(forged, "x"));
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(error_message(r).find("unknown, logged out or expired"), std::string::npos) << r.body;
  expect_denied("anonymous", "authenticate", "unknown, logged out or expired");
  for (const std::string& bad : std::vector<std::string>{"", "zz", std::string(64, 'G'), std::string(65, 'a')}) {
    auto m = call("GET", "/v1/nodes", browser(bad, "x"));
    EXPECT_EQ(m.status, 401) << bad;
    expect_denied("anonymous", "authenticate", "not one Vigil gave");
  }
}

TEST_F(WebSession, AnExpiredCookieIsRefused401) {
  make_user("alice", {"access"}, {"alice"});
  Login l = web_login("alice");
  ASSERT_EQ(l.reply.status, 201);
  now_ += 12 * 3600 - 1;
  EXPECT_EQ(call("GET", "/v1/webapi/sessions/current", browser(l.cookie, l.csrf)).status, 200);
  now_ += 1;
  auto r = call("GET", "/v1/webapi/sessions/current", browser(l.cookie, l.csrf));
  EXPECT_EQ(r.status, 401);
  expect_denied("alice", "authenticate", "expired");
  // And the purge removes it from the store.
  ASSERT_TRUE(service_->purge_expired().ok());
  EXPECT_TRUE(store_->backend().list("web_session")->empty());
}

TEST_F(WebSession, TheSessionLastsNoLongerThanTheRolesMaxSessionTtl) {
  create_role(R"(kind: role
version: v7
metadata:
  name: short
spec:
  options:
    max_session_ttl: 1h
  allow:
    logins: [alice]
)");
  make_user("alice", {"short"}, {"alice"});
  Login l = web_login("alice");
  ASSERT_EQ(l.reply.status, 201) << l.reply.body;
  EXPECT_EQ(body(l.reply)["ttl_seconds"], 3600);
  EXPECT_NE(set_cookie(l.reply).find("Max-Age=3600"), std::string::npos);
  now_ += 3600;
  EXPECT_EQ(call("GET", "/v1/webapi/sessions/current", browser(l.cookie, l.csrf)).status, 401);
}

TEST_F(WebSession, LogoutDeletesTheSessionAndClearsTheCookie) {
  make_user("alice", {"access"}, {"alice"});
  Login l = web_login("alice");
  auto out = call("DELETE", "/v1/webapi/sessions/current", browser(l.cookie, l.csrf));
  ASSERT_EQ(out.status, 204) << out.body;
  EXPECT_NE(set_cookie(out).find("__Host-vigil_session=; "), std::string::npos);
  EXPECT_NE(set_cookie(out).find("Max-Age=0"), std::string::npos);
  auto r = call("GET", "/v1/webapi/sessions/current", browser(l.cookie, l.csrf));
  EXPECT_EQ(r.status, 401);
  expect_denied("anonymous", "authenticate", "unknown, logged out or expired");
  // Logout without a session is refused.
  EXPECT_EQ(call("DELETE", "/v1/webapi/sessions/current", anonymous()).status, 401);
  expect_denied("anonymous", "logout", "ends a browser session");
}

TEST_F(WebSession, AMissingOrWrongCsrfHeaderIsRefused403ForEveryCall) {
  make_user("alice", {"access"}, {"alice"});
  Login l = web_login("alice");
  Login other = web_login("alice");
  ASSERT_EQ(other.reply.status, 201);
  for (const std::string& path : std::vector<std::string>{"/v1/webapi/sessions/current", "/v1/nodes"}) {
    auto none = call("GET", path, browser(l.cookie, std::nullopt));
    EXPECT_EQ(none.status, 403) << path;
    expect_denied("alice", "authenticate", "X-Vigil-CSRF header");
    auto empty = call("GET", path, browser(l.cookie, ""));
    EXPECT_EQ(empty.status, 403) << path;
    auto wrong = call("GET", path, browser(l.cookie, std::string(64, 'b')));
    EXPECT_EQ(wrong.status, 403) << path;
    expect_denied("alice", "authenticate", "not the CSRF token of this browser session");
    // Another session's token is not this one's.
    EXPECT_EQ(call("GET", path, browser(l.cookie, other.csrf)).status, 403) << path;
  }
  // Logout is a state change: refused without the token, the session stays.
  EXPECT_EQ(call("DELETE", "/v1/webapi/sessions/current", browser(l.cookie, std::nullopt)).status, 403);
  EXPECT_EQ(call("GET", "/v1/webapi/sessions/current", browser(l.cookie, l.csrf)).status, 200);
}

TEST_F(WebSession, TheCookieOfADeletedUserIsRefused401) {
  make_user("alice", {"access"}, {"alice"});
  Login l = web_login("alice");
  ASSERT_EQ(call("DELETE", "/v1/users/alice", admin_peer()).status, 204);
  auto r = call("GET", "/v1/webapi/sessions/current", browser(l.cookie, l.csrf));
  EXPECT_EQ(r.status, 401);
  expect_denied("alice", "authenticate", "no longer exists");
}

TEST_F(WebSession, FailedWebLoginsCountWithTheCertificateLoginsAndAreAudited) {
  make_user("alice", {"access"}, {"alice"});
  for (int i = 0; i < 4; ++i) {
    Login bad = web_login("alice", "wrong password!", "203.0.113.9:1000");
    EXPECT_EQ(bad.reply.status, 401);
    EXPECT_TRUE(set_cookie(bad.reply).empty());
    json ev = audit_.last("user.login");
    EXPECT_EQ(ev["success"], false);
    EXPECT_EQ(ev["error"], "wrong password");
    EXPECT_EQ(ev["addr.remote"], "203.0.113.9");
  }
  // The fifth failure through the certificate login, from the same source.
  ClientKeys k;
  EXPECT_EQ(call("POST", "/v1/login", anonymous("203.0.113.9:2000"), login_body("bob", "nope", k)).status, 401);
  // Now the source is blocked, the right password included, on both calls.
  Login blocked = web_login("alice", kPassword, "203.0.113.9:3000");
  EXPECT_EQ(blocked.reply.status, 429) << blocked.reply.body;
  EXPECT_TRUE(blocked.cookie.empty());
  EXPECT_EQ(audit_.last("user.login")["error"], "rate limited (source:203.0.113.9)");
  EXPECT_EQ(call("POST", "/v1/login", anonymous("203.0.113.9:4000"), login_body("alice", kPassword, k)).status,
            429);
}

TEST_F(WebSession, TotpIsRequiredWhenTheClusterSaysSo) {
  start(SecondFactor::otp);
  make_user("alice", {"access"}, {"alice"});
  Login l = web_login("alice");
  EXPECT_EQ(l.reply.status, 401);
  EXPECT_EQ(error_message(l.reply), "invalid user name, password or second-factor code");
  auto user = store_->get_user("alice");
  ASSERT_TRUE(user.ok() && user->totp);
  auto code = cluster::totp_code(user->totp->secret, cluster::Time{cluster::Seconds{now_.load()}});
  ASSERT_TRUE(code.ok());
  auto ok = call("POST", "/v1/webapi/sessions", anonymous(),
                 {{"user", "alice"}, {"password", kPassword}, {"totp_code", *code}});
  EXPECT_EQ(ok.status, 201) << ok.body;
}

TEST_F(WebSession, AStaleCookieDoesNotStandInTheWayOfANewLogin) {
  make_user("alice", {"access"}, {"alice"});
  api::Request q;
  q.method = "POST";
  q.path = "/v1/webapi/sessions";
  q.peer = browser(std::string(64, 'c'), std::nullopt);
  json b = {{"user", "alice"}, {"password", kPassword}};
  q.body = b.dump();
  q.content_type = "application/json";
  q.json = b;
  EXPECT_EQ(router_.dispatch(std::move(q)).status, 201);
}

TEST_F(WebSession, ACertificateWinsOverACookie) {
  make_user("alice", {"access"}, {"alice"});
  make_user("bob", {"access"}, {"bob"});
  Login l = web_login("alice");
  api::Peer p = user_peer("bob");
  p.web_session = l.cookie;
  p.web_csrf = l.csrf;
  EXPECT_EQ(caller_of(p).name, "bob");
}

TEST_F(WebSession, AtMostSixteenSessionsAUserTheOldestEnd) {
  make_user("alice", {"access"}, {"alice"});
  Login first = web_login("alice");
  for (size_t i = 1; i < kMaxWebSessionsPerUser; ++i) {
    now_ += 1;
    ASSERT_EQ(web_login("alice").reply.status, 201);
  }
  EXPECT_EQ(call("GET", "/v1/webapi/sessions/current", browser(first.cookie, first.csrf)).status, 200);
  now_ += 1;
  Login last = web_login("alice");
  EXPECT_EQ(store_->backend().list("web_session")->size(), kMaxWebSessionsPerUser);
  EXPECT_EQ(call("GET", "/v1/webapi/sessions/current", browser(first.cookie, first.csrf)).status, 401);
  EXPECT_EQ(call("GET", "/v1/webapi/sessions/current", browser(last.cookie, last.csrf)).status, 200);
}

// Behind a proxy on another host: the session travels in
// X-Vigil-Forwarded-Session/-CSRF, believed from a proxy identity only.
class ForwardedWebSession : public WebSession {
 protected:
  api::Peer join_proxy() {
    ClientKeys keys;
    auto tok = call("POST", "/v1/tokens", admin_peer(), {{"roles", {"proxy"}}});
    auto joined = call("POST", "/v1/join", anonymous(),
                       {{"token", body(tok)["token"]}, {"role", "proxy"}, {"node_name", "proxy-1"},
                        {"addresses", {"10.0.0.9:3080"}}, {"ssh_public_key", keys.ssh_line()},
                        {"tls_public_key", keys.tls_b64()}});
    EXPECT_EQ(joined.status, 200) << joined.body;
    api::Peer p = node_peer(body(joined)["uuid"]);
    p.address = "10.0.0.9:41000";
    return p;
  }
};

TEST_F(ForwardedWebSession, FromAProxyTheSessionIsTheClientsAtItsAddress) {
  make_user("alice", {"access"}, {"alice"});
  Login l = web_login("alice");
  api::Peer p = join_proxy();
  p.forwarded_for = "203.0.113.7:5555";
  p.forwarded_session = l.cookie;
  p.forwarded_csrf = l.csrf;
  Caller c = caller_of(p);
  EXPECT_EQ(c.kind, CallerKind::user);
  EXPECT_EQ(c.name, "alice");
  EXPECT_EQ(c.address, "203.0.113.7:5555");
  EXPECT_TRUE(c.forwarded);
  EXPECT_FALSE(c.web_session.empty());
  // The CSRF rule holds through the proxy too.
  p.forwarded_csrf = std::string(64, 'b');
  EXPECT_EQ(call("GET", "/v1/webapi/sessions/current", p).status, 403);
  expect_denied("alice", "authenticate", "not the CSRF token");
}

TEST_F(ForwardedWebSession, FromAnyoneButAProxyTheForwardedSessionIsRefused403) {
  make_user("alice", {"access"}, {"alice"});
  make_user("bob", {"access"}, {"bob"});
  Login l = web_login("alice");
  for (api::Peer p : {anonymous(), user_peer("bob")}) {
    p.forwarded_session = l.cookie;
    p.forwarded_csrf = l.csrf;
    auto r = call("GET", "/v1/webapi/sessions/current", p);
    EXPECT_EQ(r.status, 403) << r.body;
    json d = audit_.last("access.denied");
    EXPECT_EQ(d["action"], "forward");
  }
}

TEST(CookieHeader, OneValueByNameAndNoneWhenNamedTwice) {
  EXPECT_EQ(api::cookie_value("a=1; __Host-vigil_session=abc; b=2", "__Host-vigil_session"), "abc");
  EXPECT_EQ(api::cookie_value("__Host-vigil_session=abc", "__Host-vigil_session"), "abc");
  EXPECT_EQ(api::cookie_value("x__Host-vigil_session=abc", "__Host-vigil_session"), std::nullopt);
  EXPECT_EQ(api::cookie_value("a=1", "__Host-vigil_session"), std::nullopt);
  // Cookie tossing: a second cookie of the same name makes neither count.
  EXPECT_EQ(api::cookie_value("__Host-vigil_session=abc; __Host-vigil_session=def", "__Host-vigil_session"),
            std::string());
  EXPECT_EQ(api::cookie_value("__Host-vigil_session=abc, __Host-vigil_session=def", "__Host-vigil_session"),
            std::string());
}

}  // namespace
}  // namespace vigil::authsvc::test
