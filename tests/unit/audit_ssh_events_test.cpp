// The SSH node's own audit events: exec (T3002I), auth (T3007W) and the
// client's address ("addr.remote") in session events.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace vigil::audit
