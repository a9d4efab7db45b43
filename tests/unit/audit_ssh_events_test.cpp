// The SSH node's own audit events: exec (T3002I), auth (T3007W, T3007I),
// session.rejected (T1006W), refusal summaries and the client's address
// ("addr.remote") in session events.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audit/encode.hpp"

namespace vigil::audit {
namespace {

using Json = nlohmann::ordered_json;

SessionMeta node_meta() {
  SessionMeta m;
  m.cluster_name = "c";
  m.server_hostname = "node";
  m.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
  m.sid = "86aca627-971d-4883-854d-d309ba04c658";
  m.login = "vigiltest";
  m.user = "alice@example.com";
  m.remote_addr = "127.0.0.1:50000";
  return m;
}

std::vector<std::string> keys(const Json& j) {
  std::vector<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.push_back(it.key());
  return k;
}

TEST(AuditEncodeExec, ExactLine) {
  std::string out;
  encode_exec({1'688'488'940'540'000'000, "echo hi | sh", 3}, node_meta(), 4, "u-1", out);
  EXPECT_EQ(out,
            R"({"addr.remote":"127.0.0.1:50000","cluster_name":"c","code":"T3002I",)"
            R"("command":"echo hi | sh","ei":4,"event":"exec","exit_code":3,"login":"vigiltest",)"
            R"("namespace":"default","server_hostname":"node",)"
            R"("server_id":"531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f",)"
            R"("sid":"86aca627-971d-4883-854d-d309ba04c658","time":"2023-07-04T16:42:20.540000Z",)"
            R"("uid":"u-1","user":"alice@example.com"})"
            "\n");
}

TEST(AuditEncodeAuth, RefusalCarriesReasonAndMessage) {
  AuthAttempt a;
  a.time_ns = 1'688'488'940'540'000'000;
  a.user = "alice@example.com";
  a.login = "root";
  a.remote_addr = "192.0.2.7:4022";
  a.reason = "principal_mismatch";
  a.message = "login \"root\" is not a principal";
  std::string out;
  encode_auth(a, node_meta(), "u-2", out);
  Json j = Json::parse(out);
  EXPECT_EQ(j["code"], "T3007W");
  EXPECT_EQ(j["event"], "auth");
  EXPECT_EQ(j["success"], false);
  EXPECT_EQ(j["reason"], "principal_mismatch");
  EXPECT_EQ(j["error"], "principal_mismatch: login \"root\" is not a principal");
  EXPECT_EQ(j["addr.remote"], "192.0.2.7:4022");
  EXPECT_EQ(j["login"], "root");
  EXPECT_EQ(j["user"], "alice@example.com");
  EXPECT_FALSE(j.contains("sid"));
  auto k = keys(j);
  EXPECT_TRUE(std::is_sorted(k.begin(), k.end())) << out;
}

TEST(AuditEncodeAuth, SuccessHasNoError) {
  AuthAttempt a;
  a.success = true;
  std::string out;
  encode_auth(a, node_meta(), "u", out);
  Json j = Json::parse(out);
  EXPECT_EQ(j["code"], "T3007I");
  EXPECT_FALSE(j.contains("error"));
  EXPECT_FALSE(j.contains("addr.remote"));
}

TEST(AuditEncodeRemoteAddr, SessionEventsCarryItFirst) {
  std::string out;
  encode_session_start({1, {}}, node_meta(), 0, "u", out);
  SessionEnd end;
  encode_session_end(end, node_meta(), 1, "u", out);
  Event ev;
  ev.body = NetworkEvent{};
  encode_event(ev, node_meta(), 2, "u", out);
  ev.body = CommandEvent{};
  encode_event(ev, node_meta(), 3, "u", out);
  size_t start = 0;
  for (int i = 0; i < 4; ++i) {
    size_t nl = out.find('\n', start);
    Json j = Json::parse(out.substr(start, nl - start));
    start = nl + 1;
    EXPECT_EQ(j["addr.remote"], "127.0.0.1:50000");
    auto k = keys(j);
    EXPECT_TRUE(std::is_sorted(k.begin(), k.end())) << j.dump();
  }
}

TEST(AuditEncodeRemoteAddr, AbsentForLocalSessions) {
  SessionMeta m = node_meta();
  m.remote_addr.clear();
  std::string out;
  encode_session_start({1, {}}, m, 0, "u", out);
  EXPECT_EQ(out.find("addr.remote"), std::string::npos);
}

// The login path (connection.cpp): auth for a login (T3007I) and for a
// summary of refusals, session.rejected (T1006W), and how a summary keeps
// only what its refusals had in common.
bool sorted_keys(const Json& j) {
  std::vector<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.push_back(it.key());
  return std::is_sorted(k.begin(), k.end());
}

TEST(AuditLoginEvents, LoginExactLine) {
  AuthAttempt a;
  a.time_ns = 1'688'488'940'540'000'000;
  a.success = true;
  a.user = "alice@example.com";
  a.login = "vigiltest";
  a.remote_addr = "127.0.0.1:50000";
  a.method = "publickey";
  a.key_id = "alice@example.com";
  a.cert_serial = 18446744073709551615u;  // the whole uint64 range of a serial
  a.ca_fingerprint = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
  std::string out;
  encode_auth(a, node_meta(), "u-1", out);
  EXPECT_EQ(out,
            R"({"addr.remote":"127.0.0.1:50000",)"
            R"("ca_fingerprint":"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",)"
            R"("cert_serial":18446744073709551615,"cluster_name":"c","code":"T3007I",)"
            R"("event":"auth","key_id":"alice@example.com","login":"vigiltest",)"
            R"("method":"publickey","namespace":"default","server_hostname":"node",)"
            R"("server_id":"531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f","success":true,)"
            R"("time":"2023-07-04T16:42:20.540000Z","uid":"u-1","user":"alice@example.com"})"
            "\n");
}

TEST(AuditLoginEvents, RefusalSummaryCarriesCountAndFirstTime) {
  AuthAttempt a;
  a.time_ns = 2'000'000'000;
  a.login = "root";
  a.remote_addr = "192.0.2.7:4022";
  a.reason = "no_certificate";
  a.message = "plain keys";
  a.method = "publickey";
  AuthAttempt later = a;
  later.time_ns = 5'000'000'000;
  later.remote_addr = "192.0.2.7:4023";  // another connection from the same address
  later.login = "admin";
  a.absorb(later);
  a.count = 2;
  std::string out;
  encode_auth(a, node_meta(), "u-2", out);
  Json j = Json::parse(out);
  EXPECT_TRUE(sorted_keys(j)) << out;
  EXPECT_EQ(j["count"], 2);
  EXPECT_EQ(j["first_time"], "1970-01-01T00:00:02.000000Z");
  EXPECT_EQ(j["time"], "1970-01-01T00:00:05.000000Z");
  EXPECT_EQ(j["addr.remote"], "192.0.2.7");  // the ports differed
  EXPECT_EQ(j["login"], "");                 // so did the logins
  EXPECT_EQ(j["error"], "no_certificate: plain keys");
  EXPECT_EQ(j["code"], "T3007W");
  EXPECT_FALSE(j.contains("cert_serial"));
}

TEST(AuditLoginEvents, SessionRejectedExactLine) {
  SessionRejection r;
  r.time_ns = 1'688'488'940'540'000'000;
  r.user = "alice@example.com";
  r.login = "vigiltest";
  r.remote_addr = "[2001:db8::7]:50000";
  r.reason = "channel_limit";
  r.request = "session channel";
  r.message = "already 10 sessions on this connection";
  r.max = 10;
  std::string out;
  encode_session_rejected(r, node_meta(), "u-3", out);
  EXPECT_EQ(out,
            R"({"addr.remote":"[2001:db8::7]:50000","cluster_name":"c","code":"T1006W",)"
            R"("error":"channel_limit: already 10 sessions on this connection",)"
            R"("event":"session.rejected","login":"vigiltest","max":10,"namespace":"default",)"
            R"("reason":"channel_limit","request":"session channel","server_hostname":"node",)"
            R"("server_id":"531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f",)"
            R"("time":"2023-07-04T16:42:20.540000Z","uid":"u-3","user":"alice@example.com"})"
            "\n");
}

TEST(AuditLoginEvents, RejectionSummaryKeepsWhatWasCommon) {
  SessionRejection r;
  r.time_ns = 1;
  r.user = "alice";
  r.login = "vigiltest";
  r.remote_addr = "[2001:db8::7]:50000";
  r.reason = "env_not_allowed";
  r.request = "env LD_PRELOAD";
  r.message = "only LANG and LC_* may be set";
  SessionRejection later = r;
  later.time_ns = 2;
  later.request = "env PATH";
  later.remote_addr = "[2001:db8::7]:50001";
  r.absorb(later);
  EXPECT_EQ(r.request, "");
  EXPECT_EQ(r.message, "only LANG and LC_* may be set");
  EXPECT_EQ(r.remote_addr, "2001:db8::7");
  EXPECT_EQ(r.first_time_ns, 1);
  EXPECT_EQ(r.time_ns, 2);
  later.remote_addr = "192.0.2.1:1";  // another source altogether (cannot happen): nothing
  r.absorb(later);
  EXPECT_EQ(r.remote_addr, "");
  r.count = 3;
  std::string out;
  encode_session_rejected(r, node_meta(), "u", out);
  Json j = Json::parse(out);
  EXPECT_TRUE(sorted_keys(j)) << out;
  EXPECT_FALSE(j.contains("addr.remote"));
  EXPECT_FALSE(j.contains("max"));
  EXPECT_EQ(j["count"], 3);
}

TEST(AuditLoginEvents, AddressOnly) {
  EXPECT_EQ(address_only("127.0.0.1:22"), "127.0.0.1");
  EXPECT_EQ(address_only("[::1]:22"), "::1");
  EXPECT_EQ(address_only("::1"), "::1");
  EXPECT_EQ(address_only("host"), "host");
}

}  // namespace
}  // namespace vigil::audit
