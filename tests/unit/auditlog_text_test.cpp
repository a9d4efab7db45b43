// The text form of logged events, read back from their JSON lines: one
// readable line per event type, exact bytes from the base64 fields, and
// escapes so that a recorded name never drives the reader's terminal.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <string>

#include "audit/encode.hpp"
#include "auditlog/event_text.hpp"
#include "auditlog/timeparse.hpp"

namespace vigil::auditlog {
namespace {

constexpr int64_t kTime = 1'688'488'940'540'123'000;  // 2023-07-04T16:42:20.540123Z
const std::string kHead = "2023-07-04T16:42:20.540Z user=alice login=ec2-user ";

audit::SessionMeta meta() {
  audit::SessionMeta m;
  m.cluster_name = "purple";
  m.server_hostname = "node";
  m.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
  m.sid = "86aca627-971d-4883-854d-d309ba04c658";
  m.login = "ec2-user";
  m.user = "alice";
  return m;
}

std::string text_of(const std::string& json_line) {
  std::string out;
  EXPECT_TRUE(append_event_text(json_line, out)) << json_line;
  return out;
}

std::string encoded(decltype(Event::body) body) {
  Event ev;
  ev.time_ns = kTime;
  ev.process.pid = 5007;
  ev.process.program = "curl";
  ev.body = std::move(body);
  std::string out;
  audit::encode_event(ev, meta(), 50, "uid", out);
  return out;
}

TEST(AuditlogText, Command) {
  EXPECT_EQ(text_of(encoded(CommandEvent{"/bin/curl", {"https://wttr.in", "a b"}})),
            kHead + "session.command pid=5007 curl: /bin/curl https://wttr.in 'a b' → ok\n");
  CommandEvent failed{"/usr/bin/nope", {}, -2};
  failed.argv_truncated = true;
  EXPECT_EQ(
      text_of(encoded(failed)),
      kHead + "session.command pid=5007 curl: /usr/bin/nope → ENOENT (-2) [argv truncated]\n");
}

TEST(AuditlogText, ExactBytesOfPathsThatAreNotUtf8) {
  // The JSON string has U+FFFD; path_base64 keeps the byte, shown escaped.
  EXPECT_EQ(text_of(encoded(CommandEvent{"/tmp/\xff", {"\x1b[2J"}})),
            kHead + "session.command pid=5007 curl: $'/tmp/\\xff' $'\\x1b[2J' → ok\n");
}

TEST(AuditlogText, Disk) {
  EXPECT_EQ(text_of(encoded(DiskEvent{"/etc/shadow", O_WRONLY | O_CREAT, 0, -13})),
            kHead + "session.disk pid=5007 curl: /etc/shadow O_WRONLY|O_CREAT → EACCES (-13)\n");
}

TEST(AuditlogText, DiskNamesTheFileTheKernelOpened) {
  DiskEvent d{"../x", O_RDONLY, 0, 3};
  d.kernel_path = "/etc/x y";
  EXPECT_EQ(text_of(encoded(d)),
            kHead + "session.disk pid=5007 curl: ../x O_RDONLY → ok opened '/etc/x y'\n");
}

TEST(AuditlogText, Network) {
  EXPECT_EQ(text_of(encoded(NetworkEvent{4, "172.31.34.128", "5.9.243.187", 443})),
            kHead + "session.network pid=5007 curl: connect 172.31.34.128 → 5.9.243.187:443 v4\n");
  EXPECT_EQ(text_of(encoded(NetworkEvent{6, "::1", "2001:db8::1", 22, 1, 1})),
            kHead + "session.network pid=5007 curl: send ::1 → [2001:db8::1]:22 v6 denied\n");
}

TEST(AuditlogText, NetworkOfEveryOperation) {
  NetworkEvent result{4, "10.0.0.1", "10.0.0.2", 80, net_op::connect_result};
  result.result = ConnectResult::refused;
  result.return_code = -111;
  result.net_ns = 7;
  EXPECT_EQ(text_of(encoded(result)), kHead + "session.network pid=5007 curl: connect result "
                                              "10.0.0.1 → 10.0.0.2:80 v4: refused netns=7\n");
  NetworkEvent in{4, "10.0.0.9", "10.0.0.2", 22, net_op::accept};
  in.src_port = 4000;
  EXPECT_EQ(text_of(encoded(in)),
            kHead + "session.network pid=5007 curl: accept 10.0.0.9:4000 → 10.0.0.2:22 v4\n");
  NetworkEvent unix_socket;
  unix_socket.protocol = NetProtocol::unix_socket;
  unix_socket.unix_path = "/run/a b\nc";
  EXPECT_EQ(text_of(encoded(unix_socket)),
            kHead + "session.network pid=5007 curl: unix connect $'/run/a b\\x0ac'\n");
}

TEST(AuditlogText, SessionStartAndEnd) {
  std::string start;
  audit::encode_session_start({kTime, {"sh", "-c", "ls /"}}, meta(), 0, "uid", start);
  EXPECT_EQ(text_of(start), kHead +
                                "session.start sid=86aca627-971d-4883-854d-d309ba04c658: "
                                "command sh -c 'ls /'\n");
  start.clear();
  audit::encode_session_start({kTime, {}}, meta(), 0, "uid", start);
  EXPECT_EQ(text_of(start), kHead +
                                "session.start sid=86aca627-971d-4883-854d-d309ba04c658: "
                                "interactive shell\n");

  audit::SessionEnd end;
  end.time_ns = end.stop_ns = kTime;
  end.start_ns = kTime - 41'550'000'000;
  end.kinds.add(Kind::command);
  end.kinds.add(Kind::network);
  end.recorded[Kind::command] = 3;
  end.recorded[Kind::network] = 1;
  end.lost[Kind::network] = 2;
  std::string line;
  audit::encode_session_end(end, meta(), 9, "uid", line);
  EXPECT_EQ(text_of(line), kHead +
                               "session.end sid=86aca627-971d-4883-854d-d309ba04c658: 41.5s, "
                               "recorded command=3 disk=off network=1, "
                               "lost command=0 disk=off network=2\n");
  end.error = "the recording could not be written: disk full";
  line.clear();
  audit::encode_session_end(end, meta(), 9, "uid", line);
  EXPECT_EQ(text_of(line), kHead +
                               "session.end sid=86aca627-971d-4883-854d-d309ba04c658: 41.5s, "
                               "recorded command=3 disk=off network=1, "
                               "lost command=0 disk=off network=2, "
                               "error='the recording could not be written: disk full'\n");
}

TEST(AuditlogText, OtherEventsAsKeyValues) {
  EXPECT_EQ(text_of(R"({"code":"T1000W","error":"bad key","event":"auth.failure",)"
                    R"("remote":{"port":22},"success":false,"time":"2023-07-04T16:42:20.540123Z",)"
                    R"("user":"bob"})"),
            "2023-07-04T16:42:20.540Z user=bob auth.failure error='bad key' "
            "remote='{\"port\":22}' success=false\n");
  // Control bytes in any field are escaped.
  EXPECT_EQ(text_of(R"({"event":"x\u001b[31m","note":"a\u0007","time":"bad"})"),
            "bad $'x\\x1b[31m' note=$'a\\x07'\n");
}

// A certificate's key id becomes the user; a process names itself. Neither
// may read as more fields of the line.
TEST(AuditlogText, ValuesThatLookLikeFieldsAreQuoted) {
  audit::SessionMeta m = meta();
  m.user = "x login=root auth success=true";
  m.login = "";
  Event ev;
  ev.time_ns = kTime;
  ev.process.pid = 5007;
  ev.process.program = "a user=root";
  ev.body = CommandEvent{"/bin/true", {}};
  std::string line;
  audit::encode_event(ev, m, 50, "uid", line);
  EXPECT_EQ(text_of(line),
            "2023-07-04T16:42:20.540Z user='x login=root auth success=true' login='' "
            "session.command pid=5007 'a user=root': /bin/true → ok\n");
  EXPECT_EQ(text_of(R"({"event":"e","time":"2023-07-04T16:42:20.540123Z","user":"it's",)"
                    R"("a b":"c","k=v":"\u00a0x","q":"\"","n":1})"),
            "2023-07-04T16:42:20.540Z user='it'\\''s' e 'a b'=c 'k=v'='\u00a0x' n=1 q='\"'\n");
}

TEST(AuditlogText, DeeplyNestedValuesAreRefusedNotRendered) {
  const std::string head = R"({"event":"e","time":"2023-07-04T16:42:20.540123Z","v":)";
  // 100,000 levels overflowed the stack when the value was printed.
  std::string out = "kept";
  EXPECT_FALSE(append_event_text(head + std::string(100'000, '[') + std::string(100'000, ']') +
                                     "}",
                                 out));
  EXPECT_EQ(out, "kept");
  // 64 levels, the object's included, are shown.
  EXPECT_EQ(text_of(head + std::string(63, '[') + std::string(63, ']') + "}"),
            "2023-07-04T16:42:20.540Z e v=" + std::string(63, '[') + std::string(63, ']') + "\n");
  EXPECT_FALSE(append_event_text(head + std::string(64, '[') + std::string(64, ']') + "}", out));
}

TEST(AuditlogText, SessionEndAcrossTheWholeTimeRange) {
  // Both times parse (1677 and 2262), their difference does not fit in int64.
  EXPECT_EQ(text_of(R"({"event":"session.end","time":"2023-07-04T16:42:20.540123Z",)"
                    R"("session_start":"1677-09-21T00:12:44Z","session_stop":"2262-04-11T23:47:16Z",)"
                    R"("sid":"s"})"),
            "2023-07-04T16:42:20.540Z session.end sid=s:,\n");
}

TEST(AuditlogText, NotAJsonObject) {
  std::string out = "kept";
  EXPECT_FALSE(append_event_text("[1,2]", out));
  EXPECT_FALSE(append_event_text("{", out));
  EXPECT_EQ(out, "kept");
}

}  // namespace
}  // namespace vigil::auditlog
