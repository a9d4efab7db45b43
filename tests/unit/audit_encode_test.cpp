// The JSON audit events: exact bytes, key order, value types, escaping and
// the handling of paths and arguments that are not valid UTF-8.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audit/encode.hpp"

namespace vigil::audit {
namespace {

using Json = nlohmann::ordered_json;  // keeps the keys in the order written

constexpr int64_t kGuideCommandTime = 1'688'488'940'540'000'000;  // 2023-07-04T16:42:20.54Z
constexpr const char* kUid = "9b825e22-744d-4130-94c5-dea49198ae3d";

SessionMeta guide_meta() {
  SessionMeta m;
  m.cluster_name = "purple";
  m.server_hostname = "ip-172-31-34-128.us-east-2.compute.internal";
  m.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
  m.sid = "86aca627-971d-4883-854d-d309ba04c658";
  m.login = "ec2-user";
  m.user = "alice@goteleport.com";
  return m;
}

ProcessInfo curl_process() {
  ProcessInfo p;
  p.pid = 5007;
  p.tid = 5007;
  p.ppid = 4985;
  p.uid = 1000;
  p.cgroup_id = 2360;
  p.program = "curl";
  return p;
}

Event command_event(std::string path, std::vector<std::string> argv) {
  Event ev;
  ev.time_ns = kGuideCommandTime;
  ev.process = curl_process();
  CommandEvent cmd;
  cmd.path = std::move(path);
  cmd.argv = std::move(argv);
  ev.body = std::move(cmd);
  return ev;
}

Event disk_event(std::string path, int32_t flags, int32_t return_code) {
  Event ev;
  ev.time_ns = kGuideCommandTime + 5'000'000;
  ev.process = curl_process();
  DiskEvent disk;
  disk.path = std::move(path);
  disk.flags = flags;
  disk.return_code = return_code;
  ev.body = std::move(disk);
  return ev;
}

Event network_event(int version, std::string src, std::string dst, uint16_t port) {
  Event ev;
  ev.time_ns = kGuideCommandTime + 10'000'000;
  ev.process = curl_process();
  NetworkEvent net;
  net.version = version;
  net.src_addr = std::move(src);
  net.dst_addr = std::move(dst);
  net.dst_port = port;
  ev.body = std::move(net);
  return ev;
}

std::string encode(const Event& ev, uint64_t ei = 50) {
  std::string out;
  encode_event(ev, guide_meta(), ei, kUid, out);
  return out;
}

// Parses one encoded line; fails the test unless it is exactly one line.
Json parse_line(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one event, one line";
  return Json::parse(line);
}

std::vector<std::string> keys_of(const Json& j) {
  std::vector<std::string> keys;
  for (const auto& item : j.items()) keys.push_back(item.key());
  return keys;
}

TEST(AuditEncodeCommand, MatchesTheGuideSampleByteForByte) {
  const std::string expected =
      R"({"argv":["https://wttr.in"],"cgroup_id":2360,"cluster_name":"purple","code":"T4000I",)"
      R"("ei":50,"event":"session.command","login":"ec2-user","namespace":"default",)"
      R"("path":"/bin/curl","pid":5007,"ppid":4985,"program":"curl","return_code":0,)"
      R"("server_hostname":"ip-172-31-34-128.us-east-2.compute.internal",)"
      R"("server_id":"531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f",)"
      R"("sid":"86aca627-971d-4883-854d-d309ba04c658","time":"2023-07-04T16:42:20.540000Z",)"
      R"("uid":"9b825e22-744d-4130-94c5-dea49198ae3d","user":"alice@goteleport.com"})"
      "\n";
  EXPECT_EQ(encode(command_event("/bin/curl", {"https://wttr.in"})), expected);
}

TEST(AuditEncodeCommand, FieldsHaveTheGuideTypes) {
  const Json j = parse_line(encode(command_event("/bin/curl", {"-s", "https://wttr.in"})));
  ASSERT_TRUE(j["argv"].is_array());
  EXPECT_EQ(j["argv"], Json::array({"-s", "https://wttr.in"}));
  EXPECT_TRUE(j["cgroup_id"].is_number_unsigned());
  EXPECT_TRUE(j["ei"].is_number_unsigned());
  EXPECT_TRUE(j["pid"].is_number_unsigned());
  EXPECT_TRUE(j["ppid"].is_number_unsigned());
  EXPECT_TRUE(j["return_code"].is_number_integer());
  EXPECT_TRUE(j["time"].is_string());
  EXPECT_EQ(j["namespace"], "default");
}

TEST(AuditEncodeCommand, OptionalFlagsAppearOnlyWhenSetAndInKeyOrder) {
  const std::vector<std::string> plain_keys = {
      "argv", "cgroup_id", "cluster_name", "code", "ei", "event", "login", "namespace",
      "path", "pid", "ppid", "program", "return_code", "server_hostname", "server_id", "sid",
      "time", "uid", "user"};
  EXPECT_EQ(keys_of(parse_line(encode(command_event("/bin/true", {})))), plain_keys);

  Event ev = command_event("/bin/true", {});
  auto& cmd = std::get<CommandEvent>(ev.body);
  cmd.argv_truncated = true;
  cmd.path_truncated = true;
  cmd.args_lost = true;
  const Json j = parse_line(encode(ev));
  const std::vector<std::string> flagged_keys = {
      "args_lost", "argv", "argv_truncated", "cgroup_id", "cluster_name", "code", "ei",
      "event", "login", "namespace", "path", "path_truncated", "pid", "ppid", "program",
      "return_code", "server_hostname", "server_id", "sid", "time", "uid", "user"};
  EXPECT_EQ(keys_of(j), flagged_keys);
  EXPECT_EQ(j["args_lost"], true);
  EXPECT_EQ(j["argv_truncated"], true);
  EXPECT_EQ(j["path_truncated"], true);
  EXPECT_EQ(j["argv"], Json::array());
}

TEST(AuditEncodeCommand, FailedExecKeepsTheNegativeErrno) {
  Event ev = command_event("/usr/bin/nope", {"--help"});
  std::get<CommandEvent>(ev.body).return_code = -2;
  const std::string line = encode(ev);
  EXPECT_NE(line.find(R"("return_code":-2,)"), std::string::npos) << line;
  EXPECT_EQ(parse_line(line)["return_code"], -2);
}

TEST(AuditEncodeCommand, LargeNumbersAreExact) {
  Event ev = command_event("/bin/true", {});
  ev.process.cgroup_id = std::numeric_limits<uint64_t>::max();
  ev.process.pid = std::numeric_limits<uint32_t>::max();
  const std::string line = encode(ev, std::numeric_limits<uint64_t>::max());
  EXPECT_NE(line.find(R"("cgroup_id":18446744073709551615,)"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("ei":18446744073709551615,)"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("pid":4294967295,)"), std::string::npos) << line;
  EXPECT_EQ(parse_line(line)["cgroup_id"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
}

TEST(AuditEncodeDisk, ExactLineAndKeys) {
  // O_WRONLY|O_CREAT|O_TRUNC = 01 | 0100 | 01000 = 577 on amd64 and arm64.
  const std::string expected =
      R"({"cgroup_id":2360,"cluster_name":"purple","code":"T4001I","ei":7,)"
      R"("event":"session.disk","flags":577,"login":"ec2-user","namespace":"default",)"
      R"("path":"/home/ec2-user/out.txt","pid":5007,"ppid":4985,"program":"curl",)"
      R"("return_code":-13,"server_hostname":"ip-172-31-34-128.us-east-2.compute.internal",)"
      R"("server_id":"531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f",)"
      R"("sid":"86aca627-971d-4883-854d-d309ba04c658","time":"2023-07-04T16:42:20.545000Z",)"
      R"("uid":"9b825e22-744d-4130-94c5-dea49198ae3d","user":"alice@goteleport.com"})"
      "\n";
  EXPECT_EQ(encode(disk_event("/home/ec2-user/out.txt", 577, -13), 7), expected);
}

TEST(AuditEncodeDisk, PathTruncatedFlagInKeyOrder) {
  Event ev = disk_event("/very/long", 0, 0);
  std::get<DiskEvent>(ev.body).path_truncated = true;
  const std::vector<std::string> keys = {
      "cgroup_id", "cluster_name", "code", "ei", "event", "flags", "login", "namespace",
      "path", "path_truncated", "pid", "ppid", "program", "return_code", "server_hostname",
      "server_id", "sid", "time", "uid", "user"};
  const Json j = parse_line(encode(ev));
  EXPECT_EQ(keys_of(j), keys);
  EXPECT_EQ(j["path_truncated"], true);
  EXPECT_TRUE(j["flags"].is_number_integer());
}

TEST(AuditEncodeCommand, KernelPathInterpreterAndArgvZeroInKeyOrder) {
  Event ev = command_event("/tmp/s.py", {"one"});
  auto& c = std::get<CommandEvent>(ev.body);
  c.kernel_path = "/usr/bin/python3.11";
  c.kernel_path_truncated = true;
  c.interpreter = {"/usr/bin/python3", "-c"};
  c.argv0 = "sshd: root";
  const std::vector<std::string> keys = {
      "argv", "argv_zero", "cgroup_id", "cluster_name", "code", "ei", "event", "interpreter",
      "kernel_path", "kernel_path_truncated", "login", "namespace", "path", "pid", "ppid",
      "program", "return_code", "server_hostname", "server_id", "sid", "time", "uid", "user"};
  const Json j = parse_line(encode(ev));
  EXPECT_EQ(keys_of(j), keys);
  EXPECT_EQ(j["argv_zero"], "sshd: root");
  EXPECT_EQ(j["interpreter"], Json::array({"/usr/bin/python3", "-c"}));
  EXPECT_EQ(j["kernel_path"], "/usr/bin/python3.11");
}

TEST(AuditEncodeDisk, KernelPathBesideTheRequestedPath) {
  Event ev = disk_event("../x/secret", 0, 0);
  std::get<DiskEvent>(ev.body).kernel_path = "/home/ec2-user/secret";
  const std::string line = encode(ev);
  EXPECT_NE(line.find(R"("flags":0,"kernel_path":"/home/ec2-user/secret","login":)"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find(R"("path":"../x/secret",)"), std::string::npos) << line;
}

TEST(AuditEncodeDisk, EveryFlagInKeyOrder) {
  Event ev = disk_event("", 0, 0);
  auto& d = std::get<DiskEvent>(ev.body);
  d.kernel_path = "/tmp/#12 (deleted)";
  d.kernel_path_truncated = true;
  d.kernel_path_missing = true;  // never with a kernel path in practice; here for the order
  d.path_truncated = true;
  d.path_unreadable = true;
  const std::vector<std::string> keys = {
      "cgroup_id", "cluster_name", "code", "ei", "event", "flags", "kernel_path",
      "kernel_path_missing", "kernel_path_truncated", "login", "namespace", "path",
      "path_truncated", "path_unreadable", "pid", "ppid", "program", "return_code",
      "server_hostname", "server_id", "sid", "time", "uid", "user"};
  const Json j = parse_line(encode(ev));
  EXPECT_EQ(keys_of(j), keys);
  EXPECT_EQ(j["kernel_path"], "/tmp/#12 (deleted)");
  EXPECT_EQ(j["kernel_path_truncated"], true);
  EXPECT_EQ(j["kernel_path_missing"], true);
  EXPECT_EQ(j["path_unreadable"], true);
  EXPECT_EQ(j["path"], "");
}

TEST(AuditEncodeDisk, KernelPathThatIsNotUtf8HasItsExactBytesInBase64) {
  Event ev = disk_event("/tmp/a", 0, 0);
  std::get<DiskEvent>(ev.body).kernel_path = "/tmp/\xff";
  const Json j = parse_line(encode(ev));
  EXPECT_EQ(j["kernel_path"], "/tmp/\xef\xbf\xbd");
  EXPECT_EQ(j["kernel_path_base64"], "L3RtcC//");
  EXPECT_EQ(j["path"], "/tmp/a");
}

TEST(AuditEncodeNetwork, MatchesTheGuideSampleShape) {
  const std::string expected =
      R"({"action":0,"cgroup_id":2360,"cluster_name":"purple","code":"T4002I",)"
      R"("dst_addr":"5.9.243.187","dst_port":443,"ei":51,"event":"session.network",)"
      R"("login":"ec2-user","namespace":"default","net_ns":0,"operation":0,"pid":5007,)"
      R"("ppid":4985,"program":"curl","protocol":"tcp",)"
      R"("server_hostname":"ip-172-31-34-128.us-east-2.compute.internal",)"
      R"("server_id":"531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f",)"
      R"("sid":"86aca627-971d-4883-854d-d309ba04c658","src_addr":"172.31.34.128",)"
      R"("time":"2023-07-04T16:42:20.550000Z","uid":"9b825e22-744d-4130-94c5-dea49198ae3d",)"
      R"("user":"alice@goteleport.com","version":4})"
      "\n";
  EXPECT_EQ(encode(network_event(4, "172.31.34.128", "5.9.243.187", 443), 51), expected);
}

TEST(AuditEncodeNetwork, Ipv6SendDenied) {
  Event ev = network_event(6, "2001:db8::5", "2001:db8::1", 8443);
  auto& net = std::get<NetworkEvent>(ev.body);
  net.operation = 1;
  net.action = 1;
  const Json j = parse_line(encode(ev));
  EXPECT_EQ(j["version"], 6);
  EXPECT_EQ(j["dst_addr"], "2001:db8::1");
  EXPECT_EQ(j["src_addr"], "2001:db8::5");
  EXPECT_EQ(j["dst_port"], 8443);
  EXPECT_EQ(j["operation"], 1);
  EXPECT_EQ(j["action"], 1);
}

TEST(AuditEncodeNetwork, ConnectResultAcceptAndUdpCarryVigilsFields) {
  Event ev = network_event(4, "10.0.0.1", "10.0.0.2", 80);
  auto& net = std::get<NetworkEvent>(ev.body);
  net.operation = net_op::connect_result;
  net.result = ConnectResult::failed;
  net.return_code = -110;
  net.net_ns = 4026531840u;
  net.src_port = 40000;
  Json j = parse_line(encode(ev));
  EXPECT_EQ(j["operation"], 3);
  EXPECT_EQ(j["result"], "failed");
  EXPECT_EQ(j["return_code"], -110);
  EXPECT_EQ(j["net_ns"], 4026531840u);
  EXPECT_EQ(j["src_port"], 40000);
  EXPECT_EQ(j["protocol"], "tcp");

  net.operation = net_op::send;
  net.result = ConnectResult::none;
  net.protocol = NetProtocol::udp;
  net.forgotten_destinations = 3;
  net.src_port = 0;
  j = parse_line(encode(ev));
  EXPECT_EQ(j["protocol"], "udp");
  EXPECT_EQ(j["forgotten_destinations"], 3);
  EXPECT_FALSE(j.contains("result"));
  EXPECT_FALSE(j.contains("return_code"));
  EXPECT_FALSE(j.contains("src_port"));  // not bound yet
}

TEST(AuditEncodeNetwork, UnixPathsAreExactBytesWithoutAddressFields) {
  Event ev = network_event(0, "", "", 0);
  auto& net = std::get<NetworkEvent>(ev.body);
  net.protocol = NetProtocol::unix_socket;
  net.unix_path = std::string("/tmp/a\"\n\xff") + '\0' + "b";  // chosen by whoever bound it
  net.unix_abstract = true;
  const std::string line = encode(ev);
  const Json j = parse_line(line);
  EXPECT_EQ(j["protocol"], "unix");
  EXPECT_EQ(j["unix_abstract"], true);
  EXPECT_EQ(j["unix_path_base64"], "L3RtcC9hIgr/AGI=");  // the exact bytes
  EXPECT_FALSE(j.contains("dst_addr"));
  EXPECT_FALSE(j.contains("dst_port"));
  EXPECT_FALSE(j.contains("src_addr"));
  EXPECT_FALSE(j.contains("version"));
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << "one event, one line";
}

TEST(AuditEncodeEscaping, QuotesBackslashesAndControlBytes) {
  const std::string path = std::string("a\"b\\c\nd\te\rf\bg\fh") + '\0' + "\x01\x1b[31m\x1f\x7f/";
  const std::string line = encode(disk_event(path, 0, 0));
  EXPECT_NE(line.find(R"("path":"a\"b\\c\nd\te\rf\bg\fh\u0000\u0001\u001b[31m\u001f)"
                      "\x7f" R"(/",)"),
            std::string::npos)
      << line;
  const Json j = parse_line(line);
  EXPECT_EQ(j["path"].get<std::string>(), path);
  EXPECT_FALSE(j.contains("path_base64")) << "valid UTF-8 needs no exact copy";
}

TEST(AuditEncodeEscaping, MetaAndArgvAreEscapedToo) {
  SessionMeta meta = guide_meta();
  meta.user = "eve\"\n";
  std::string out;
  encode_event(command_event("/bin/sh", {"-c", "echo \"hi\"\n"}), meta, 1, kUid, out);
  EXPECT_NE(out.find(R"("argv":["-c","echo \"hi\"\n"],)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("user":"eve\"\n"})"), std::string::npos) << out;
  EXPECT_EQ(parse_line(out)["user"], "eve\"\n");
}

TEST(AuditEncodeUtf8, ValidMultiByteTextPassesThroughUnchanged) {
  const std::string path = "/srv/café/日本/\xf0\x9f\x94\x91.txt";  // 2, 3 and 4 byte sequences
  const std::string line = encode(disk_event(path, 0, 0));
  EXPECT_NE(line.find("\"path\":\"" + path + "\","), std::string::npos) << line;
  EXPECT_FALSE(parse_line(line).contains("path_base64"));
}

TEST(AuditEncodeUtf8, InvalidPathGetsReplacementCharsAndExactBase64) {
  const std::string line = encode(disk_event("/tmp/\xff\xfe" "ab", 0, 0));
  EXPECT_NE(line.find("\"path\":\"/tmp/\xef\xbf\xbd\xef\xbf\xbd" "ab\","
                      "\"path_base64\":\"L3RtcC///mFi\",\"pid\":"),
            std::string::npos)
      << line;
  const Json j = parse_line(line);
  EXPECT_EQ(j["path"], "/tmp/\xef\xbf\xbd\xef\xbf\xbd" "ab");
  EXPECT_EQ(j["path_base64"], "L3RtcC///mFi");
}

TEST(AuditEncodeUtf8, EachInvalidByteBecomesOneReplacementChar) {
  const std::string fffd = "\xef\xbf\xbd";
  struct Case {
    std::string bytes;
    std::string shown;
  };
  const Case cases[] = {
      {"\x80", fffd},                                          // stray continuation byte
      {"\xc0\xaf", fffd + fffd},                               // overlong '/'
      {"\xe0\x80\xaf", fffd + fffd + fffd},                    // overlong '/', 3 bytes
      {"\xed\xa0\x80", fffd + fffd + fffd},                    // surrogate U+D800
      {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd},         // beyond U+10FFFF
      {"x\xe2\x82", "x" + fffd + fffd},                        // cut short at the end
      {"\xe2\x82x", fffd + fffd + "x"},                        // cut short by ASCII
      {"caf\xe9", "caf" + fffd},                               // Latin-1, not UTF-8
      {"\xf0\x9f\x94\x91\xff", "\xf0\x9f\x94\x91" + fffd},     // valid then invalid
  };
  for (const Case& c : cases) {
    const Json j = parse_line(encode(disk_event(c.bytes, 0, 0)));
    EXPECT_EQ(j["path"].get<std::string>(), c.shown) << testing::PrintToString(c.bytes);
    EXPECT_TRUE(j.contains("path_base64")) << testing::PrintToString(c.bytes);
  }
}

TEST(AuditEncodeUtf8, InvalidArgvGetsOneBase64StringPerArgument) {
  Event ev = command_event("/bin/echo", {"ok", "caf\xe9", "-c"});
  std::get<CommandEvent>(ev.body).argv_truncated = true;
  const std::string line = encode(ev);
  EXPECT_NE(line.find("{\"argv\":[\"ok\",\"caf\xef\xbf\xbd\",\"-c\"],"
                      "\"argv_base64\":[\"b2s=\",\"Y2Fm6Q==\",\"LWM=\"],"
                      "\"argv_truncated\":true,"),
            std::string::npos)
      << line;
  const Json j = parse_line(line);
  EXPECT_EQ(keys_of(j)[1], "argv_base64");
  EXPECT_FALSE(j.contains("path_base64"));
}

TEST(AuditEncodeUtf8, InvalidProgramIsReplacedWithoutBase64) {
  Event ev = command_event("/bin/true", {});
  ev.process.program = "tr\xff";
  const Json j = parse_line(encode(ev));
  EXPECT_EQ(j["program"], "tr\xef\xbf\xbd");
  EXPECT_FALSE(j.contains("program_base64"));
}

TEST(AuditEncodeBuffer, AppendsToWhatTheBufferHolds) {
  std::string out = "previous\n";
  encode_event(command_event("/bin/true", {}), guide_meta(), 1, kUid, out);
  encode_event(network_event(4, "10.0.0.1", "10.0.0.2", 22), guide_meta(), 2, kUid, out);
  ASSERT_EQ(out.rfind("previous\n{\"argv\":[],", 0), 0u) << out;
  const size_t second = out.find("\n{", 9);
  ASSERT_NE(second, std::string::npos);
  EXPECT_EQ(parse_line(out.substr(second + 1))["ei"], 2);
}

SessionEnd sample_end() {
  SessionEnd end;
  end.time_ns = 1'576'190'686'218'000'000;   // 2019-12-12T22:44:46.218Z
  end.start_ns = 1'576'190'400'000'000'000;  // 2019-12-12T22:40:00Z
  end.stop_ns = 1'576'190'686'217'999'999;
  end.interactive = true;
  end.participants = {"alice@goteleport.com"};
  end.kinds.add(Kind::command);
  end.kinds.add(Kind::network);
  end.recorded[Kind::command] = 12;
  end.recorded[Kind::network] = 3;
  end.lost[Kind::command] = 1;
  return end;
}

TEST(AuditEncodeSessionEnd, ExactLine) {
  std::string out;
  encode_session_end(sample_end(), guide_meta(), 23, "83e67464-a93a-4c7c-8ce6-5a3d8802c3b2", out);
  const std::string expected =
      R"({"cluster_name":"purple","code":"T2004I","ei":23,"enhanced_recording":true,)"
      R"("enhanced_recording_kinds":["command","network"],"event":"session.end",)"
      R"("interactive":true,"login":"ec2-user",)"
      R"("lost_events":{"command":1,"disk":0,"network":0},"namespace":"default",)"
      R"("participants":["alice@goteleport.com"],)"
      R"("recorded_events":{"command":12,"disk":0,"network":3},)"
      R"("server_hostname":"ip-172-31-34-128.us-east-2.compute.internal",)"
      R"("server_id":"531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f",)"
      R"("session_start":"2019-12-12T22:40:00.000000Z",)"
      R"("session_stop":"2019-12-12T22:44:46.217999Z",)"
      R"("sid":"86aca627-971d-4883-854d-d309ba04c658","time":"2019-12-12T22:44:46.218000Z",)"
      R"("uid":"83e67464-a93a-4c7c-8ce6-5a3d8802c3b2","user":"alice@goteleport.com"})"
      "\n";
  EXPECT_EQ(out, expected);
}

TEST(AuditEncodeSessionEnd, CountsAreNumbersAndKindsMayBeEmpty) {
  SessionEnd end = sample_end();
  end.kinds = KindSet();
  end.enhanced_recording = false;
  end.interactive = false;
  end.participants.clear();
  end.recorded[Kind::disk] = std::numeric_limits<uint64_t>::max();
  std::string out;
  encode_session_end(end, guide_meta(), 1, kUid, out);
  const Json j = parse_line(out);
  EXPECT_EQ(j["enhanced_recording"], false);
  EXPECT_EQ(j["interactive"], false);
  EXPECT_EQ(j["enhanced_recording_kinds"], Json::array());
  EXPECT_EQ(j["participants"], Json::array());
  EXPECT_EQ(keys_of(j["recorded_events"]), (std::vector<std::string>{"command", "disk", "network"}));
  EXPECT_EQ(j["recorded_events"]["disk"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(j["recorded_events"]["command"], 12);
  EXPECT_EQ(j["lost_events"]["command"], 1);
}

TEST(AuditEncodeSessionStart, ExactLineWithoutCommand) {
  std::string out;
  encode_session_start(SessionStart{kGuideCommandTime, {}}, guide_meta(), 0, kUid, out);
  const std::string expected =
      R"({"cluster_name":"purple","code":"T2000I","ei":0,"event":"session.start",)"
      R"("login":"ec2-user","namespace":"default",)"
      R"("server_hostname":"ip-172-31-34-128.us-east-2.compute.internal",)"
      R"("server_id":"531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f",)"
      R"("sid":"86aca627-971d-4883-854d-d309ba04c658","time":"2023-07-04T16:42:20.540000Z",)"
      R"("uid":"9b825e22-744d-4130-94c5-dea49198ae3d","user":"alice@goteleport.com"})"
      "\n";
  EXPECT_EQ(out, expected);
}

TEST(AuditEncodeSessionStart, InitialCommandInKeyOrder) {
  std::string out;
  encode_session_start(SessionStart{kGuideCommandTime, {"uptime", "-p"}}, guide_meta(), 0, kUid,
                       out);
  const Json j = parse_line(out);
  const std::vector<std::string> keys = {
      "cluster_name", "code", "ei", "event", "initial_command", "login", "namespace",
      "server_hostname", "server_id", "sid", "time", "uid", "user"};
  EXPECT_EQ(keys_of(j), keys);
  EXPECT_EQ(j["initial_command"], Json::array({"uptime", "-p"}));
}

}  // namespace
TEST(AuditEncodeSessionStart, SealedInKeyOrder) {
  std::string out;
  encode_session_start(
      SessionStart{kGuideCommandTime, {"uptime"}, {"compat_32bit", "io_uring"}}, guide_meta(), 0,
      kUid, out);
  const Json j = parse_line(out);
  const std::vector<std::string> keys = {
      "cluster_name", "code", "ei", "event", "initial_command", "login", "namespace", "sealed",
      "server_hostname", "server_id", "sid", "time", "uid", "user"};
  EXPECT_EQ(keys_of(j), keys);
  EXPECT_EQ(j["sealed"], Json::array({"compat_32bit", "io_uring"}));
}

}  // namespace vigil::audit
