// Decoding kernel records, on hand-built records: no root, no kernel.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <gtest/gtest.h>
#include <linux/types.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/decode.hpp"
#include "engine/engine.hpp"

extern "C" {
#include "vigil_events.h"
}

using namespace vigil;

namespace {

std::span<const std::byte> bytes_of(const void* p, size_t n) {
  return {static_cast<const std::byte*>(p), n};
}

vigil_record_head head(uint32_t kind) {
  vigil_record_head h{};
  h.kind = kind;
  h.session = 7;
  h.ktime_ns = 5'000'000'000;
  h.cgroup_id = 2360;
  h.pid = 5007;
  h.tid = 5008;
  h.ppid = 4985;
  h.audit_session = 42;
  h.uid = 1000;
  h.gid = 1000;
  std::strcpy(h.comm, "curl");
  return h;
}

const decode::TimeBase kTime{1'700'000'000'000'000'000 - 5'000'000'000};

// A command record as the kernel sends it: the fixed part, argv (each
// argument NUL-terminated), the path and its NUL, then the kernel path and
// its NUL when there is one; only the bytes used.
struct ExecRecord {
  std::unique_ptr<vigil_exec_record> rec = std::make_unique<vigil_exec_record>();
  size_t size = 0;

  ExecRecord(const std::string& path, const std::vector<std::string>& argv, uint32_t flags,
             const std::string& kernel_path = "") {
    std::memset(rec.get(), 0, sizeof(*rec));
    rec->head = head(VIGIL_KIND_COMMAND);
    rec->flags = flags;
    std::string data;
    for (const auto& a : argv) data.append(a).push_back('\0');
    rec->argv_len = data.size();
    rec->argc = argv.size();
    data.append(path).push_back('\0');
    rec->path_len = path.size();
    if (!kernel_path.empty()) {
      data.append(kernel_path).push_back('\0');
      rec->kernel_path_len = kernel_path.size();
    }
    std::memcpy(rec->data, data.data(), data.size());
    size = offsetof(vigil_exec_record, data) + data.size();
  }
  Result<Event> decode(size_t n) const { return decode::exec(bytes_of(rec.get(), n), kTime); }
  Result<Event> decode() const { return decode(size); }
  CommandEvent command() const {
    auto ev = decode();
    EXPECT_TRUE(ev.ok()) << ev.error().message;
    return ev.ok() ? std::get<CommandEvent>(ev->body) : CommandEvent{};
  }
};

}  // namespace

TEST(SplitArgv, DropsArgvZero) {
  using namespace std::string_literals;
  EXPECT_EQ(decode::split_argv("curl\0https://wttr.in\0"s, "/bin/curl", false),
            (std::vector<std::string>{"https://wttr.in"}));
  EXPECT_EQ(decode::split_argv("ls\0"s, "/bin/ls", false), std::vector<std::string>{});
  EXPECT_EQ(decode::split_argv(""s, "/bin/ls", false), std::vector<std::string>{});
}

TEST(SplitArgv, KeepsEmptyArguments) {
  using namespace std::string_literals;
  EXPECT_EQ(decode::split_argv("printf\0\0x\0"s, "/usr/bin/printf", false),
            (std::vector<std::string>{"", "x"}));
}

TEST(SplitArgv, DropsAnArgumentCutByTheSizeLimit) {
  using namespace std::string_literals;
  EXPECT_EQ(decode::split_argv("echo\0whole\0cut-in-the-mi"s, "/bin/echo", false),
            (std::vector<std::string>{"whole"}));
}

TEST(SplitArgv, ScriptDropsTheInterpreterPrefix) {
  using namespace std::string_literals;
  // The kernel turns execve("/tmp/s.sh", ["s.sh", "a"]) of a "#!/bin/sh -e"
  // script into ["/bin/sh", "-e", "/tmp/s.sh", "a"].
  EXPECT_EQ(decode::split_argv("/bin/sh\0-e\0/tmp/s.sh\0a\0"s, "/tmp/s.sh", true),
            (std::vector<std::string>{"a"}));
  EXPECT_EQ(decode::split_argv("/bin/sh\0/tmp/s.sh\0"s, "/tmp/s.sh", true),
            std::vector<std::string>{});
  // Nested interpreters still end at the script's own path.
  EXPECT_EQ(decode::split_argv("/usr/bin/env\0/tmp/inner\0/tmp/outer\0x\0y\0"s, "/tmp/outer", true),
            (std::vector<std::string>{"x", "y"}));
}

TEST(SplitExecArgv, ScriptGivesItsInterpreterAndNoArgv0) {
  std::string blob("/usr/bin/python3\0-c\0/tmp/s.py\0one\0", 34);
  auto split = decode::split_exec_argv(blob, "/tmp/s.py", true);
  EXPECT_EQ(split.interpreter, (std::vector<std::string>{"/usr/bin/python3", "-c"}));
  EXPECT_EQ(split.argv, (std::vector<std::string>{"one"}));
  EXPECT_EQ(split.argv0, "");
  std::string plain("sleep\0" "5\0", 8);
  split = decode::split_exec_argv(plain, "/bin/sleep", false);
  EXPECT_TRUE(split.interpreter.empty());
  EXPECT_EQ(split.argv0, "sleep");
  EXPECT_EQ(split.argv, (std::vector<std::string>{"5"}));
}

TEST(Exec, KernelPathArgv0AndInterpreter) {
  ExecRecord r("/bin/sleep", {"sshd: root", "5"}, VIGIL_EXEC_KPATH_TRUNCATED, "/usr/bin/sleep");
  CommandEvent c = r.command();
  EXPECT_EQ(c.kernel_path, "/usr/bin/sleep");
  EXPECT_TRUE(c.kernel_path_truncated);
  EXPECT_EQ(c.argv0, "sshd: root");
  EXPECT_EQ(c.argv, (std::vector<std::string>{"5"}));

  // argv[0] equal to the path or its last name is not news.
  for (const char* zero : {"sleep", "/bin/sleep"}) {
    CommandEvent e = ExecRecord("/bin/sleep", {zero, "5"}, 0).command();
    EXPECT_EQ(e.argv0, "") << zero;
    EXPECT_FALSE(e.kernel_path_truncated);
  }

  // A kernel_path_len past the record stays inside the bytes received.
  r.rec->kernel_path_len = 1u << 30;
  EXPECT_EQ(r.command().kernel_path, "/usr/bin/sleep");
  // A failed exec has none: the bytes after the path are not read as one.
  r.rec->kernel_path_len = 0;
  EXPECT_EQ(r.command().kernel_path, "");
}

TEST(Exec, AScriptGivesItsInterpreterAndItsOwnArguments) {
  CommandEvent c = ExecRecord("/tmp/s.sh", {"/bin/sh", "-e", "/tmp/s.sh", "a"},
                              VIGIL_EXEC_SCRIPT, "/usr/bin/dash")
                       .command();
  EXPECT_EQ(c.path, "/tmp/s.sh");
  EXPECT_EQ(c.kernel_path, "/usr/bin/dash");
  EXPECT_EQ(c.interpreter, (std::vector<std::string>{"/bin/sh", "-e"}));
  EXPECT_EQ(c.argv, (std::vector<std::string>{"a"}));
  EXPECT_EQ(c.argv0, "");
}

TEST(Head, RejectsShortAndUnknownRecords) {
  auto h = head(VIGIL_KIND_DISK);
  EXPECT_FALSE(decode::head(bytes_of(&h, sizeof(h) - 1)).ok());
  h.kind = 9;
  auto r = decode::head(bytes_of(&h, sizeof(h)));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("unknown kind 9"), std::string::npos);
  h.kind = VIGIL_KIND_NETWORK;
  auto ok = decode::head(bytes_of(&h, sizeof(h)));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->kind, Kind::network);
  EXPECT_EQ(ok->session, 7u);
}

TEST(Exec, DecodesProcessPathArgvAndTime) {
  ExecRecord r("/bin/curl", {"curl", "https://wttr.in"}, 0);
  auto ev = r.decode();
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  EXPECT_EQ(ev->time_ns, 1'700'000'000'000'000'000);
  EXPECT_EQ(ev->session, 7u);
  EXPECT_EQ(ev->process.pid, 5007u);
  EXPECT_EQ(ev->process.ppid, 4985u);
  EXPECT_EQ(ev->process.cgroup_id, 2360u);
  EXPECT_EQ(ev->process.program, "curl");
  auto& cmd = std::get<CommandEvent>(ev->body);
  EXPECT_EQ(cmd.path, "/bin/curl");
  EXPECT_EQ(cmd.argv, std::vector<std::string>{"https://wttr.in"});
  EXPECT_EQ(cmd.kernel_path, "");
  EXPECT_EQ(cmd.return_code, 0);
  EXPECT_FALSE(cmd.argv_truncated);
  EXPECT_FALSE(cmd.args_lost);
}

TEST(Exec, FlagsAndUnreadableArguments) {
  ExecRecord r("/x", {"x", "a"}, VIGIL_EXEC_ARGV_TRUNCATED | VIGIL_EXEC_PATH_TRUNCATED);
  r.rec->return_code = -2;
  CommandEvent c = r.command();
  EXPECT_TRUE(c.argv_truncated);
  EXPECT_TRUE(c.path_truncated);
  EXPECT_FALSE(c.args_lost);
  EXPECT_EQ(c.return_code, -2);

  // argv the kernel could not read: no arguments, and the event says so.
  CommandEvent lost = ExecRecord("/bin/true", {}, VIGIL_EXEC_ARGV_UNREADABLE).command();
  EXPECT_TRUE(lost.args_lost);
  EXPECT_TRUE(lost.argv.empty());
  EXPECT_EQ(lost.path, "/bin/true");
}

TEST(Exec, AFullSizeRecordRoundTrips) {
  // 64 KiB of argv (argv[0] and 63 arguments of 1023 bytes and a last one
  // that fills it to the byte), a 4095-byte path and kernel path.
  std::vector<std::string> argv{"/bin/true"};
  size_t used = 10;
  for (int i = 0; i < 63; ++i, used += 1024) argv.push_back(std::string(1023, 'a' + i % 26));
  argv.push_back(std::string(VIGIL_ARGV_MAX - used - 1, 'z'));
  std::string path = "/" + std::string(VIGIL_PATH_MAX - 2, 'p');
  std::string kpath = "/" + std::string(VIGIL_PATH_MAX - 2, 'k');
  ExecRecord r(path, argv, 0, kpath);
  ASSERT_EQ(r.rec->argv_len, static_cast<uint32_t>(VIGIL_ARGV_MAX));
  ASSERT_EQ(r.size, sizeof(vigil_exec_record));
  CommandEvent c = r.command();
  EXPECT_EQ(c.path, path);
  EXPECT_EQ(c.kernel_path, kpath);
  ASSERT_EQ(c.argv.size(), 64u);
  for (size_t i = 0; i < c.argv.size(); ++i) EXPECT_EQ(c.argv[i], argv[i + 1]);
}

TEST(Exec, BadLengthsFromTheKernelStayInsideTheBytesReceived) {
  ExecRecord r("/bin/true", {"true", "x"}, 0, "/usr/bin/true");
  // An argv_len past the record: argv takes every byte, nothing is left for
  // the paths, and nothing is read past the record.
  r.rec->argv_len = 1u << 30;
  auto ev = r.decode();
  ASSERT_TRUE(ev.ok());
  auto& c = std::get<CommandEvent>(ev->body);
  EXPECT_EQ(c.path, "");
  EXPECT_EQ(c.kernel_path, "");
  EXPECT_EQ(c.argv, (std::vector<std::string>{"x", "/bin/true", "/usr/bin/true"}));

  // A path_len past the record is cut at the record's end.
  ExecRecord p("/bin/true", {"true"}, 0);
  p.rec->path_len = 1u << 30;
  EXPECT_EQ(p.command().path, "/bin/true");
  auto cut = p.decode(offsetof(vigil_exec_record, data) + 5 + 4);  // "true\0" "/bin"
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(std::get<CommandEvent>(cut->body).path, "/bin");

  // Shorter than the fixed part: the builds differ.
  auto shorter = p.decode(offsetof(vigil_exec_record, data) - 1);
  ASSERT_FALSE(shorter.ok());
  EXPECT_NE(shorter.error().message.find("different builds"), std::string::npos);
}

// An open record as the kernel sends it: the fixed part, the requested path
// and its NUL, then the kernel path and its NUL when there is one.
struct OpenRecord {
  std::unique_ptr<vigil_open_record> rec = std::make_unique<vigil_open_record>();
  size_t size = 0;

  OpenRecord(const std::string& path, const std::string& kernel_path, uint32_t flags = 0) {
    std::memset(rec.get(), 0, sizeof(*rec));
    rec->head = head(VIGIL_KIND_DISK);
    rec->flags = flags;
    std::memcpy(rec->data, path.c_str(), path.size() + 1);
    rec->path_len = path.size();
    size = offsetof(vigil_open_record, data) + path.size() + 1;
    if (!kernel_path.empty()) {
      std::memcpy(rec->data + path.size() + 1, kernel_path.c_str(), kernel_path.size() + 1);
      rec->kernel_path_len = kernel_path.size();
      size += kernel_path.size() + 1;
    }
  }
  Result<Event> decode(size_t n) const { return decode::open(bytes_of(rec.get(), n), kTime); }
  DiskEvent disk() const {
    auto ev = decode(size);
    EXPECT_TRUE(ev.ok()) << ev.error().message;
    return ev.ok() ? std::get<DiskEvent>(ev->body) : DiskEvent{};
  }
};

TEST(Open, DecodesVariableLengthPath) {
  OpenRecord r("/etc/hostname", "");
  r.rec->return_code = -2;
  r.rec->open_flags = 0101;  // O_CREAT|O_WRONLY
  r.rec->mode = 0644;
  DiskEvent d = r.disk();
  EXPECT_EQ(d.path, "/etc/hostname");
  EXPECT_EQ(d.kernel_path, "");
  EXPECT_EQ(d.flags, 0101);
  EXPECT_EQ(d.mode, 0644u);
  EXPECT_EQ(d.return_code, -2);
  EXPECT_FALSE(d.path_truncated || d.path_unreadable || d.kernel_path_truncated ||
               d.kernel_path_missing);

  // A path_len larger than the record is cut at the record's end.
  r.rec->path_len = 4000;
  auto cut = r.decode(offsetof(vigil_open_record, data) + 4);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(std::get<DiskEvent>(cut->body).path, "/etc");
  EXPECT_FALSE(r.decode(offsetof(vigil_open_record, data) - 1).ok());
}

TEST(Open, DecodesTheKernelPathAfterTheRequestedOne) {
  OpenRecord r("../x/./secret", "/home/alice/secret");
  DiskEvent d = r.disk();
  EXPECT_EQ(d.path, "../x/./secret");
  EXPECT_EQ(d.kernel_path, "/home/alice/secret");

  // An empty requested path (unreadable) still has its NUL before the kernel path.
  OpenRecord unreadable("", "/home/alice/secret", VIGIL_OPEN_PATH_UNREADABLE);
  d = unreadable.disk();
  EXPECT_EQ(d.path, "");
  EXPECT_TRUE(d.path_unreadable);
  EXPECT_EQ(d.kernel_path, "/home/alice/secret");
}

TEST(Open, KeepsEveryFlag) {
  struct Case {
    uint32_t flag;
    bool DiskEvent::*field;
  } cases[] = {
      {VIGIL_OPEN_PATH_TRUNCATED, &DiskEvent::path_truncated},
      {VIGIL_OPEN_PATH_UNREADABLE, &DiskEvent::path_unreadable},
      {VIGIL_OPEN_KPATH_TRUNCATED, &DiskEvent::kernel_path_truncated},
      {VIGIL_OPEN_KPATH_MISSING, &DiskEvent::kernel_path_missing},
  };
  for (const auto& c : cases) {
    DiskEvent d = OpenRecord("/a", "/b", c.flag).disk();
    for (const auto& other : cases) EXPECT_EQ(d.*other.field, &other == &c) << c.flag;
  }
}

TEST(Open, KernelPathStaysInsideTheRecordWhateverItsLength) {
  OpenRecord r("/a", "/home/alice/secret");
  // Cut in the middle of the kernel path: what arrived, no more.
  r.rec->kernel_path_len = 1u << 30;
  auto ev = r.decode(offsetof(vigil_open_record, data) + 3 + 5);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(std::get<DiskEvent>(ev->body).kernel_path, "/home");
  // A requested path that claims all the bytes leaves none for the kernel path.
  r.rec->path_len = 1u << 30;
  ev = r.decode(r.size);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(std::get<DiskEvent>(ev->body).path, "/a");
  EXPECT_EQ(std::get<DiskEvent>(ev->body).kernel_path, "");
  // Both strings full length, without their NULs, in the largest record.
  std::memset(r.rec->data, 'p', sizeof(r.rec->data));
  r.rec->path_len = VIGIL_PATH_MAX - 1;
  r.rec->kernel_path_len = VIGIL_PATH_MAX - 1;
  ev = r.decode(sizeof(vigil_open_record));
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(std::get<DiskEvent>(ev->body).path.size(), VIGIL_PATH_MAX - 1u);
  EXPECT_EQ(std::get<DiskEvent>(ev->body).kernel_path.size(), VIGIL_PATH_MAX - 1u);
}

// A network record as the ring delivers it: the fixed part, plus the path
// for a unix socket.
constexpr size_t kNetFixed = offsetof(vigil_net_record, path);

vigil_net_record tcp_record(uint8_t op) {
  vigil_net_record rec{};
  rec.head = head(VIGIL_KIND_NETWORK);
  rec.operation = op;
  rec.protocol = IPPROTO_TCP;
  rec.net_ns = 4026531840u;
  return rec;
}

TEST(Connect, IPv4) {
  vigil_net_record rec = tcp_record(VIGIL_NET_CONNECT);
  rec.family = AF_INET;
  rec.dport = 443;
  inet_pton(AF_INET, "172.31.34.128", rec.saddr4);
  inet_pton(AF_INET, "5.9.243.187", rec.daddr4);
  auto ev = decode::network(bytes_of(&rec, kNetFixed), kTime);
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  auto& n = std::get<NetworkEvent>(ev->body);
  EXPECT_EQ(n.version, 4);
  EXPECT_EQ(n.src_addr, "172.31.34.128");
  EXPECT_EQ(n.dst_addr, "5.9.243.187");
  EXPECT_EQ(n.dst_port, 443);
  EXPECT_EQ(n.protocol, NetProtocol::tcp);
  EXPECT_EQ(n.operation, net_op::connect);
  EXPECT_EQ(n.net_ns, 4026531840u);
  EXPECT_EQ(n.result, ConnectResult::none);
  // Shorter than the fixed part: refused, not read past the end.
  EXPECT_FALSE(decode::network(bytes_of(&rec, kNetFixed - 1), kTime).ok());
}

TEST(Connect, IPv6AndV4Mapped) {
  vigil_net_record rec = tcp_record(VIGIL_NET_CONNECT);
  rec.family = AF_INET6;
  rec.dport = 22;
  inet_pton(AF_INET6, "2001:db8::1", rec.saddr6);
  inet_pton(AF_INET6, "2001:db8::2", rec.daddr6);
  auto v6 = decode::network(bytes_of(&rec, kNetFixed), kTime);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(std::get<NetworkEvent>(v6->body).version, 6);
  EXPECT_EQ(std::get<NetworkEvent>(v6->body).src_addr, "2001:db8::1");
  EXPECT_EQ(std::get<NetworkEvent>(v6->body).dst_addr, "2001:db8::2");

  // An IPv6 socket to ::ffff:10.0.0.9: the kernel filled the v4 source.
  inet_pton(AF_INET6, "::ffff:10.0.0.9", rec.daddr6);
  std::memset(rec.saddr6, 0, 16);
  inet_pton(AF_INET, "10.0.0.1", rec.saddr4);
  auto mapped = decode::network(bytes_of(&rec, kNetFixed), kTime);
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ(std::get<NetworkEvent>(mapped->body).version, 4);
  EXPECT_EQ(std::get<NetworkEvent>(mapped->body).src_addr, "10.0.0.1");
  EXPECT_EQ(std::get<NetworkEvent>(mapped->body).dst_addr, "10.0.0.9");

  rec.family = 99;  // neither IP nor unix
  EXPECT_FALSE(decode::network(bytes_of(&rec, kNetFixed), kTime).ok());
  rec.family = AF_INET;
  rec.protocol = 1;  // ICMP: not a protocol Vigil records
  EXPECT_FALSE(decode::network(bytes_of(&rec, kNetFixed), kTime).ok());
  rec.protocol = IPPROTO_TCP;
  rec.operation = 4;  // from another build
  EXPECT_FALSE(decode::network(bytes_of(&rec, kNetFixed), kTime).ok());
}

TEST(Connect, ResultsAreEstablishedRefusedFailedOrClosed) {
  vigil_net_record rec = tcp_record(VIGIL_NET_CONNECT_RESULT);
  rec.family = AF_INET;
  rec.sport = 40000;
  auto result_of = [&](int32_t rc, uint32_t flags) {
    rec.result = rc;
    rec.flags = flags;
    auto ev = decode::network(bytes_of(&rec, kNetFixed), kTime);
    EXPECT_TRUE(ev.ok());
    return ev.ok() ? std::get<NetworkEvent>(ev->body) : NetworkEvent{};
  };
  EXPECT_EQ(result_of(0, 0).result, ConnectResult::established);
  EXPECT_EQ(result_of(0, 0).src_port, 40000);
  EXPECT_EQ(result_of(-ECONNREFUSED, 0).result, ConnectResult::refused);
  EXPECT_EQ(result_of(-ECONNREFUSED, 0).return_code, -ECONNREFUSED);
  EXPECT_EQ(result_of(-ETIMEDOUT, 0).result, ConnectResult::failed);
  EXPECT_EQ(result_of(-ETIMEDOUT, 0).return_code, -ETIMEDOUT);
  EXPECT_EQ(result_of(0, VIGIL_NET_CLOSED).result, ConnectResult::closed);
}

TEST(Connect, UdpSendCarriesProtocolAndForgottenCount) {
  vigil_net_record rec = tcp_record(VIGIL_NET_SEND);
  rec.protocol = IPPROTO_UDP;
  rec.family = AF_INET;
  rec.dport = 53;
  rec.forgotten = 7;
  inet_pton(AF_INET, "10.0.0.53", rec.daddr4);
  auto ev = decode::network(bytes_of(&rec, kNetFixed), kTime);
  ASSERT_TRUE(ev.ok());
  auto& n = std::get<NetworkEvent>(ev->body);
  EXPECT_EQ(n.protocol, NetProtocol::udp);
  EXPECT_EQ(n.operation, net_op::send);
  EXPECT_EQ(n.src_addr, "0.0.0.0");  // not bound yet
  EXPECT_EQ(n.dst_addr, "10.0.0.53");
  EXPECT_EQ(n.forgotten_destinations, 7u);
}

TEST(Connect, UnixPathsAreBoundedByTheBytesReceived) {
  vigil_net_record rec{};
  rec.head = head(VIGIL_KIND_NETWORK);
  rec.family = AF_UNIX;
  rec.operation = VIGIL_NET_CONNECT;
  const char path[] = "/run/x.sock";
  std::memcpy(rec.path, path, sizeof(path));
  rec.path_len = sizeof(path);  // the kernel's length may count the NUL
  auto ev = decode::network(bytes_of(&rec, kNetFixed + sizeof(path)), kTime);
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  auto& n = std::get<NetworkEvent>(ev->body);
  EXPECT_EQ(n.protocol, NetProtocol::unix_socket);
  EXPECT_EQ(n.unix_path, "/run/x.sock");
  EXPECT_FALSE(n.unix_abstract);

  // Abstract: the leading NUL dropped, later NULs kept.
  const char name[] = "\0ab\0c";
  std::memcpy(rec.path, name, 5);
  rec.path_len = 5;
  rec.flags = VIGIL_NET_UNIX_ABSTRACT;
  ev = decode::network(bytes_of(&rec, kNetFixed + 5), kTime);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(std::get<NetworkEvent>(ev->body).unix_path, std::string("ab\0c", 4));
  EXPECT_TRUE(std::get<NetworkEvent>(ev->body).unix_abstract);

  // A length past what arrived (and past sun_path) is cut to what arrived.
  std::memset(rec.path, 'p', sizeof(rec.path));
  rec.flags = 0;
  rec.path_len = 100000;
  ev = decode::network(bytes_of(&rec, kNetFixed + 10), kTime);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(std::get<NetworkEvent>(ev->body).unix_path, std::string(10, 'p'));
  ev = decode::network(bytes_of(&rec, sizeof(rec)), kTime);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(std::get<NetworkEvent>(ev->body).unix_path, std::string(108, 'p'));
}

TEST(KindSet, ParsesListsAndRejectsNonsense) {
  std::string why;
  auto all = KindSet::parse("command,disk,network", &why);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, KindSet::all());
  auto two = KindSet::parse("network, command", &why);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->to_string(), "command,network");
  EXPECT_FALSE(KindSet::parse("command,bogus", &why));
  EXPECT_EQ(why, "unknown event kind 'bogus': use a comma-separated list of command, disk, network");
  EXPECT_FALSE(KindSet::parse("disk,disk", &why));
  EXPECT_EQ(why, "event kind 'disk' is listed twice");
  EXPECT_FALSE(KindSet::parse("", &why));
}

// The kernel keeps a session's counters one copy per CPU (no shared cache
// line under storms); what a session lost is the sum over every copy.
TEST(SessionCounters, AreSummedOverEveryCpu) {
  constexpr size_t kCpus = 3;
  std::vector<vigil_session_counters> copies(kCpus);
  for (size_t cpu = 0; cpu < kCpus; ++cpu) {
    for (int k = 0; k < VIGIL_KIND_COUNT; ++k) {
      copies[cpu].emitted[k] = 100 * (cpu + 1) + k;
      copies[cpu].lost[k] = 10 * (cpu + 1) + k;
    }
    copies[cpu].marked_forks = cpu + 1;
    copies[cpu].unmarked_forks = cpu;
  }
  ASSERT_EQ(decode::per_cpu_counters_size(kCpus), sizeof(vigil_session_counters) * kCpus);
  auto bytes = bytes_of(copies.data(), copies.size() * sizeof(copies[0]));
  auto total = decode::sum_counters(bytes, kCpus);
  for (int k = 0; k < kKindCount; ++k) {
    EXPECT_EQ(total.emitted.v[k], 600u + 3 * k);
    EXPECT_EQ(total.lost.v[k], 60u + 3 * k);
  }
  EXPECT_EQ(total.marked_forks, 6u);
  EXPECT_EQ(total.unmarked_forks, 3u);
  // A buffer cut inside the last copy counts the whole copies only.
  auto cut = decode::sum_counters(bytes.first(bytes.size() - 1), kCpus);
  EXPECT_EQ(cut.lost.v[0], 30u);
  EXPECT_EQ(cut.marked_forks, 3u);
}

// The command ring holds one record of the largest size: a smaller size (the
// guide's 8 pages) is raised to 32 pages and said so; the others are only
// rounded up to a power of two; 0 and more than 65536 are refused.
TEST(RingPages, TheCommandRingIsRaisedToHoldTheLargestRecord) {
  auto guide = ring_pages_in_use({8, 128, 8});
  ASSERT_TRUE(guide.ok()) << guide.error().message;
  EXPECT_EQ(guide->pages, (std::array<uint32_t, kKindCount>{32, 128, 8}));
  EXPECT_EQ(guide->raised, (std::array<bool, kKindCount>{true, false, false}));
  EXPECT_GE(kMinCommandRingPages * 4096u, sizeof(vigil_exec_record) + 8);
  auto odd = ring_pages_in_use({33, 3, 1});
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->pages, (std::array<uint32_t, kKindCount>{64, 4, 1}));
  EXPECT_EQ(odd->raised, (std::array<bool, kKindCount>{false, false, false}));
  for (uint32_t bad : {0u, 65537u}) {
    auto r = ring_pages_in_use({bad, 1, 1});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find("use 1 to 65536 pages"), std::string::npos);
  }
}
