// Browser sessions end to end (issue 11 §1), over real HTTPS with curl as
// the browser: the proxy's web port gives a cookie and a CSRF token, the
// cookie acts as its user on the same routes a certificate does, and only
// on the web port. Two ways the proxy runs: in the auth service's process
// (`vigil start` with auth, proxy and node: "A"), and alone on its own
// "host" (a second `vigil start` joined with a proxy token: "B"), whose
// forwarder carries the session to the auth service.
// Ports: 31000-31199 (A: 310xx, B: 311xx).
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "cluster_harness.hpp"

namespace {

using e2e::Spawn;
using nlohmann::json;
using namespace cluster_test;
constexpr int kAuth = 31025, kWeb = 31080, kJump = 31023, kTunnel = 31024, kNode = 31022;
constexpr int kWebB = 31180, kJumpB = 31123, kTunnelB = 31124;

std::unique_ptr<VigilProcess> g_a, g_b;

std::string proxy_flag() { return "127.0.0.1:" + std::to_string(kWeb) + "," + std::to_string(kJump); }
e2e::Outcome ctl(std::vector<std::string> args) { return g_a->ctl(std::move(args)); }

struct HttpReply {
  int status = 0;
  std::string headers, body;
  json json_body() const { return json::parse(body, nullptr, false); }
  std::string header(const std::string& name) const {
    std::istringstream in(headers);
    std::string line;
    std::string lower_name = name;
    for (auto& c : lower_name) c = static_cast<char>(std::tolower(c));
    while (std::getline(in, line)) {
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string n = line.substr(0, colon);
      for (auto& c : n) c = static_cast<char>(std::tolower(c));
      if (n == lower_name) {
        std::string v = line.substr(colon + 1);
        while (!v.empty() && (v.front() == ' ')) v.erase(0, 1);
        while (!v.empty() && (v.back() == '\r' || v.back() == '\n')) v.pop_back();
        return v;
      }
    }
    return "";
  }
};

// curl as a browser would call: the cluster's CA trusted, headers given.
HttpReply https(const std::string& method, int port, const std::string& path,
                std::vector<std::string> headers = {}, const std::string& body = "") {
  Spawn s;
  const std::string hdr_file = g_a->dir() + "/curl-headers";
  s.argv = {"/usr/bin/curl", "-sS", "--path-as-is", "-X", method, "-D", hdr_file, "-w", "\n%{http_code}",
            "--cacert", g_a->data_dir() + "/admin/ca.pem"};
  for (const auto& h : headers) s.argv.insert(s.argv.end(), {"-H", h});
  if (!body.empty()) s.argv.insert(s.argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
  s.argv.push_back("https://127.0.0.1:" + std::to_string(port) + path);
  auto out = e2e::run(s, 30000);
  HttpReply r;
  auto nl = out.out.rfind('\n');
  if (nl == std::string::npos) {
    r.body = out.out + out.err;
    return r;
  }
  r.status = std::atoi(out.out.substr(nl + 1).c_str());
  r.body = out.out.substr(0, nl);
  r.headers = e2e::read_file(hdr_file);
  return r;
}

struct Browser {
  std::string cookie, csrf;
  HttpReply login;
  std::vector<std::string> headers() const {
    return {"Cookie: __Host-vigil_session=" + cookie, "X-Vigil-CSRF: " + csrf};
  }
};

Browser web_login(int port, const std::string& user, const std::string& password = kPassword) {
  Browser b;
  b.login = https("POST", port, "/v1/webapi/sessions", {},
                  json{{"user", user}, {"password", password}}.dump());
  std::string sc = b.login.header("Set-Cookie");
  const std::string prefix = "__Host-vigil_session=";
  if (sc.rfind(prefix, 0) == 0) b.cookie = sc.substr(prefix.size(), sc.find(';') - prefix.size());
  auto j = b.login.json_body();
  if (j.is_object() && j.contains("csrf_token")) b.csrf = j["csrf_token"].get<std::string>();
  return b;
}

std::string word_after(const std::string& out, const std::string& label) {
  auto at = out.find(label);
  if (at == std::string::npos) return "";
  std::istringstream in(out.substr(at + label.size()));
  std::string w;
  in >> w;
  return w;
}

class WebSessionE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_a = std::make_unique<VigilProcess>("vigil-web");
    std::ostringstream cfg;
    cfg << "version: v3\n"
           "teleport:\n"
           "  nodename: webnode\n"
           "  data_dir: " << g_a->data_dir() << "\n"
           "auth_service:\n"
           "  enabled: true\n"
           "  cluster_name: amber\n"
           "  listen_addr: 127.0.0.1:" << kAuth << "\n"
           "proxy_service:\n"
           "  enabled: true\n"
           "  web_listen_addr: 127.0.0.1:" << kWeb << "\n"
           "  listen_addr: 127.0.0.1:" << kJump << "\n"
           "  tunnel_listen_addr: 127.0.0.1:" << kTunnel << "\n"
           "  public_addr: 127.0.0.1:" << kWeb << "\n"
           "ssh_service:\n"
           "  enabled: true\n"
           "  listen_addr: 127.0.0.1:" << kNode << "\n"
           "  enhanced_recording:\n"
           "    enabled: true\n"
           "    root_path: /vigil-web-test\n";
    g_a->write_config(cfg.str());
    g_a->start();
    bool up = wait_until(
        [] {
          auto nodes = ctl({"nodes", "ls"});
          if (nodes.status != 0 || nodes.out.find("webnode") == std::string::npos) return false;
          Spawn s;
          s.argv = {"/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(kNode)};
          return e2e::run(s).status == 0;
        },
        90);
    if (!up) FAIL() << "cluster A did not come up:\n" << g_a->log_text();

    // B: a proxy alone, joined with a proxy token.
    const std::string pin = word_after(ctl({"status"}).out, "CA pin");
    auto token = ctl({"tokens", "add", "--type=proxy", "--ttl=5m"});
    ASSERT_EQ(token.status, 0) << token.err;
    g_b = std::make_unique<VigilProcess>("vigil-webproxy");
    std::ostringstream pcfg;
    pcfg << "version: v3\n"
            "teleport:\n"
            "  nodename: webproxy\n"
            "  data_dir: " << g_b->data_dir() << "\n"
            "  auth_server: 127.0.0.1:" << kAuth << "\n"
            "  auth_token: " << word_after(token.out, "The invite token:") << "\n"
            "  ca_pin: " << pin << "\n"
            "auth_service:\n"
            "  enabled: false\n"
            "proxy_service:\n"
            "  enabled: true\n"
            "  web_listen_addr: 127.0.0.1:" << kWebB << "\n"
            "  listen_addr: 127.0.0.1:" << kJumpB << "\n"
            "  tunnel_listen_addr: 127.0.0.1:" << kTunnelB << "\n"
            "  public_addr: 127.0.0.1:" << kWebB << "\n"
            "ssh_service:\n"
            "  enabled: false\n";
    g_b->write_config(pcfg.str());
    g_b->start();
    if (!wait_until([] { return https("GET", kWebB, "/v1/webapi/find").status == 200; }, 60))
      FAIL() << "proxy B did not come up:\n" << g_b->log_text();

    for (auto [name, roles] : {std::pair{"alice", "access"}, {"bob", "access"}, {"carol", "auditor"}})
      ASSERT_TRUE(make_user(g_a->config(), g_a->dir(), proxy_flag(), name, roles, name == std::string("carol") ? "carol" : "root"));
  }
  static void TearDownTestSuite() {
    g_b.reset();
    g_a.reset();
  }
  void SetUp() override {
    if (!g_a || !g_a->running()) GTEST_FAIL() << "vigil start (A) is not running";
    if (!g_b || !g_b->running()) GTEST_FAIL() << "vigil start (B, the proxy) is not running";
  }
  // The last access.denied of the auth service's log for `user` and `action`.
  static json last_denied(const std::string& user, const std::string& action) {
    json found;
    for (const auto& e : g_a->auth_events("access.denied"))
      if (e.value("user", "") == user && e.value("action", "") == action) found = e;
    return found;
  }
};

TEST_F(WebSessionE2e, OnTheWebPortTheCookieActsAsTheUserAndOnTheAuthPortItIsNotRead) {
  Browser b = web_login(kWeb, "alice");
  ASSERT_EQ(b.login.status, 201) << b.login.body << b.login.headers;
  EXPECT_NE(b.login.header("Set-Cookie").find("HttpOnly"), std::string::npos);
  auto me = https("GET", kWeb, "/v1/webapi/sessions/current", b.headers());
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.json_body()["user"], "alice");
  // The same routes a certificate calls: alice's own events.
  auto events = https("GET", kWeb, "/v1/events?type=user.login&user=alice", b.headers());
  ASSERT_EQ(events.status, 200) << events.body;
  bool web_login_event = false;
  const json listed = events.json_body();
  for (const auto& e : listed["events"])
    if (e.value("web_session", false) && e.value("success", false)) web_login_event = true;
  EXPECT_TRUE(web_login_event) << events.body;
  EXPECT_EQ(https("GET", kWeb, "/v1/nodes", b.headers()).status, 200);
  // The auth service's own port does not read cookies: anonymous there.
  auto direct = https("GET", kAuth, "/v1/webapi/sessions/current", b.headers());
  EXPECT_EQ(direct.status, 401) << direct.body;
  EXPECT_FALSE(last_denied("anonymous", "who am I").is_null());
  // Without the CSRF header the cookie is refused.
  auto no_csrf = https("GET", kWeb, "/v1/events", {"Cookie: __Host-vigil_session=" + b.cookie});
  EXPECT_EQ(no_csrf.status, 403) << no_csrf.body;
  EXPECT_FALSE(last_denied("alice", "authenticate").is_null());
  // Logout, then the cookie is dead.
  EXPECT_EQ(https("DELETE", kWeb, "/v1/webapi/sessions/current", b.headers()).status, 204);
  EXPECT_EQ(https("GET", kWeb, "/v1/webapi/sessions/current", b.headers()).status, 401);
}

TEST_F(WebSessionE2e, ANonAuditorCannotOpenAnotherUsersRecordingWithTheCookie) {
  auto run = g_a->vsh("alice", {"ssh", "root@webnode", "/bin/echo", "web-session-marker"});
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  std::string sid;
  ASSERT_TRUE(wait_until(
      [&] {
        auto ls = g_a->vsh("alice", {"recordings", "ls", "--format", "json"});
        std::istringstream lines(ls.out);
        std::string line;
        while (std::getline(lines, line)) {
          auto j = json::parse(line, nullptr, false);
          if (j.is_object() && j.value("status", "") == "ended") sid = j.value("sid", "");
        }
        return !sid.empty();
      },
      40))
      << "alice's recording was never listed";
  Browser bob = web_login(kWeb, "bob");
  ASSERT_EQ(bob.login.status, 201);
  auto r = https("GET", kWeb, "/v1/recordings/" + sid, bob.headers());
  EXPECT_EQ(r.status, 403) << r.body;
  json denied = last_denied("bob", "play recording");
  ASSERT_FALSE(denied.is_null());
  EXPECT_EQ(denied["caller"], "user");
  auto others = https("GET", kWeb, "/v1/events?user=alice", bob.headers());
  EXPECT_EQ(others.status, 403) << others.body;
  EXPECT_FALSE(last_denied("bob", "search events").is_null());
  // Scoped to himself, bob's search of alice's session finds nothing.
  auto scoped = https("GET", kWeb, "/v1/events?sid=" + sid, bob.headers());
  ASSERT_EQ(scoped.status, 200);
  EXPECT_TRUE(scoped.json_body()["events"].empty()) << scoped.body;
  // alice herself and the auditor carol may.
  Browser alice = web_login(kWeb, "alice");
  Browser carol = web_login(kWeb, "carol");
  EXPECT_EQ(https("GET", kWeb, "/v1/recordings/" + sid, alice.headers()).status, 200);
  EXPECT_EQ(https("GET", kWeb, "/v1/recordings/" + sid, carol.headers()).status, 200);
  auto all = https("GET", kWeb, "/v1/events?sid=" + sid, carol.headers());
  EXPECT_FALSE(all.json_body()["events"].empty()) << all.body;
}

TEST_F(WebSessionE2e, ThroughAProxyOnAnotherHostTheSessionTravelsToTheAuthService) {
  Browser b = web_login(kWebB, "alice");
  ASSERT_EQ(b.login.status, 201) << b.login.body;
  EXPECT_NE(b.login.header("Set-Cookie").find("SameSite=Strict"), std::string::npos) << b.login.headers;
  auto me = https("GET", kWebB, "/v1/webapi/sessions/current", b.headers());
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.json_body()["user"], "alice");
  // The session is the cluster's: the in-process web port takes it too.
  EXPECT_EQ(https("GET", kWeb, "/v1/webapi/sessions/current", b.headers()).status, 200);
  // A wrong CSRF token through the proxy: 403, audited at the auth service.
  auto wrong = https("GET", kWebB, "/v1/nodes", {"Cookie: __Host-vigil_session=" + b.cookie,
                                                  "X-Vigil-CSRF: " + std::string(64, '0')});
  EXPECT_EQ(wrong.status, 403) << wrong.body;
  // A client that sends the forwarding headers itself to the auth port is
  // not a proxy: refused.
  auto posing = https("GET", kAuth, "/v1/webapi/sessions/current",
                      {"X-Forwarded-For: 203.0.113.9:1", "X-Vigil-Forwarded-Session: " + b.cookie,
                       "X-Vigil-Forwarded-CSRF: " + b.csrf});
  EXPECT_EQ(posing.status, 403) << posing.body;
  EXPECT_FALSE(last_denied("anonymous", "forward").is_null());
  // Failed web logins through the proxy are the client's, audited.
  auto bad = web_login(kWebB, "alice", "not the password");
  EXPECT_EQ(bad.login.status, 401);
  bool audited = false;
  for (const auto& e : g_a->auth_events("user.login"))
    if (e.value("user", "") == "alice" && !e.value("success", true) && e.value("addr.remote", "") == "127.0.0.1")
      audited = true;
  EXPECT_TRUE(audited);
  EXPECT_EQ(https("DELETE", kWebB, "/v1/webapi/sessions/current", b.headers()).status, 204);
  EXPECT_EQ(https("GET", kWebB, "/v1/webapi/sessions/current", b.headers()).status, 401);
}

}  // namespace

namespace {

TEST_F(WebSessionE2e, TheWebPortServesThePageWithItsPolicyAndTheAuthPortDoesNot) {
  for (int port : {kWeb, kWebB}) {
    auto page = https("GET", port, "/web/index.html");
    ASSERT_EQ(page.status, 200) << port << page.body;
    EXPECT_EQ(page.header("Content-Type"), "text/html; charset=utf-8");
    EXPECT_NE(page.header("Content-Security-Policy").find("script-src 'self';"), std::string::npos)
        << page.headers;
    EXPECT_NE(page.body.find("/web/js/app.js"), std::string::npos);
    auto script = https("GET", port, "/web/vendor/xterm.js");
    EXPECT_EQ(script.status, 200) << port;
    EXPECT_EQ(script.header("Content-Type"), "text/javascript; charset=utf-8");
    auto root = https("GET", port, "/");
    EXPECT_EQ(root.status, 302);
    EXPECT_EQ(root.header("Location"), "/web/index.html");
    EXPECT_EQ(https("GET", port, "/web/../../etc/passwd").status, 400);
    EXPECT_EQ(https("GET", port, "/web/%2e%2e/%2e%2e/etc/passwd").status, 400);
  }
  EXPECT_EQ(https("GET", kAuth, "/web/index.html").status, 404);
}

}  // namespace

namespace {

// The web UI in Debian's chromium (tests/web/browser.mjs): one browser for
// the suite, against this suite's cluster.
TEST_F(WebSessionE2e, InTheBrowserTheAuditLogShowsTheObfuscatedCommandAndMarkupStaysText) {
  const std::string xss = "<img src=x onerror=window.__vigilXss=1>";
  // On a terminal (script(1)), so the output is recorded: `echo onscreen-7`
  // shows on screen (the second echo prints its command line), the decoded
  // curl never does.
  const std::string command = "/bin/echo onscreen-7; /bin/echo echo onscreen-7; "
                              "echo Y3VybCBodHRwOi8vMTI3LjAuMC4xOjMxMDAxLw== | base64 --decode | sh; "
                              "/bin/echo '" + xss + "'; true";
  auto quoted = [](const std::string& text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  };
  Spawn t;
  t.argv = {"/usr/bin/script", "-qec", quoted(kVsh) + " ssh -t root@webnode " + quoted(command), "/dev/null"};
  t.env.push_back("VSH_HOME=" + g_a->dir() + "/home-alice");
  t.env.push_back("HOME=" + g_a->dir());
  auto run = e2e::run(t, 60000);
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  ASSERT_NE(run.out.find("echo onscreen-7"), std::string::npos) << run.out;
  std::string sid;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& e : g_a->auth_events("session.command"))
          if (e.value("program", "") == "curl")
            sid = e.value("sid", "");
        if (sid.empty()) return false;
        auto ls = g_a->vsh("alice", {"recordings", "ls", "--format", "json"});
        return ls.out.find(sid) != std::string::npos && ls.out.find("\"ended\"") != std::string::npos;
      },
      60))
      << "the decoded curl never reached the auth service's log";
  const std::string shots = g_a->dir() + "/screenshots";
  std::filesystem::create_directories(shots);
  Spawn s;
  s.argv = {"/usr/bin/node", std::string(WEB_TEST_DIR) + "/browser.mjs"};
  s.cwd = WEB_TEST_DIR;
  s.env.push_back("VIGIL_URL=https://127.0.0.1:" + std::to_string(kWeb));
  s.env.push_back(std::string("VIGIL_PASSWORD=") + kPassword);
  s.env.push_back("VIGIL_SID=" + sid);
  s.env.push_back("VIGIL_XSS=" + xss);
  s.env.push_back("VIGIL_SHOTS=" + shots);
  auto out = e2e::run(s, 180000);
  EXPECT_EQ(out.status, 0) << out.out << out.err;
  // VIGIL_SCREENSHOTS=DIR keeps them (docs/screenshots/ is made so).
  if (const char* keep = getenv("VIGIL_SCREENSHOTS"))
    for (const auto& f : std::filesystem::directory_iterator(shots))
      std::filesystem::copy_file(f.path(), std::filesystem::path(keep) / f.path().filename(),
                                 std::filesystem::copy_options::overwrite_existing);
}

}  // namespace
