// The one-line text form of events for people, and its terminal safety.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "audit/syscall_names.hpp"
#include "audit/text.hpp"
#include "audit/text_quote.hpp"

namespace vigil::audit {
namespace {

constexpr int64_t kTime = 1'688'488'940'540'999'999;  // 16:42:20.540 (cut, not rounded)
const std::string kHead = "16:42:20.540 user=alice@goteleport.com login=ec2-user ";

SessionMeta meta() {
  SessionMeta m;
  m.cluster_name = "purple";
  m.sid = "86aca627-971d-4883-854d-d309ba04c658";
  m.login = "ec2-user";
  m.user = "alice@goteleport.com";
  return m;
}

Event with_body(std::variant<CommandEvent, DiskEvent, NetworkEvent> body,
                std::string program = "curl") {
  Event ev;
  ev.time_ns = kTime;
  ev.process.pid = 5007;
  ev.process.ppid = 4985;
  ev.process.program = std::move(program);
  ev.body = std::move(body);
  return ev;
}

std::string text(const Event& ev) {
  std::string out;
  format_text(ev, meta(), out);
  return out;
}

CommandEvent command(std::string path, std::vector<std::string> argv, int32_t rc = 0) {
  CommandEvent c;
  c.path = std::move(path);
  c.argv = std::move(argv);
  c.return_code = rc;
  return c;
}

DiskEvent disk(std::string path, int32_t flags, int32_t rc = 0) {
  DiskEvent d;
  d.path = std::move(path);
  d.flags = flags;
  d.return_code = rc;
  return d;
}

NetworkEvent network(int version, std::string src, std::string dst, uint16_t port) {
  NetworkEvent n;
  n.version = version;
  n.src_addr = std::move(src);
  n.dst_addr = std::move(dst);
  n.dst_port = port;
  return n;
}

std::string flags_text(int32_t flags) {
  std::string out;
  append_open_flags(out, flags);
  return out;
}

std::string shell_word(std::string_view s) {
  std::string out;
  append_shell_word(out, s);
  return out;
}

std::string printable(std::string_view s) {
  std::string out;
  append_printable(out, s);
  return out;
}

TEST(AuditText, SuccessfulCommand) {
  EXPECT_EQ(text(with_body(command("/bin/curl", {"https://wttr.in"}))),
            kHead + "command pid=5007 curl: /bin/curl https://wttr.in → ok\n");
}

TEST(AuditText, FailedExecNamesTheErrno) {
  EXPECT_EQ(text(with_body(command("/usr/bin/nope", {"--help"}, -2), "bash")),
            kHead + "command pid=5007 bash: /usr/bin/nope --help → ENOENT (-2)\n");
  EXPECT_EQ(text(with_body(command("./script", {}, -8), "bash")),
            kHead + "command pid=5007 bash: ./script → ENOEXEC (-8)\n");
  EXPECT_EQ(text(with_body(command("/x", {}, -200), "bash")),
            kHead + "command pid=5007 bash: /x → error (-200)\n");
}

TEST(AuditText, CommandArgumentsAreShellQuoted) {
  EXPECT_EQ(text(with_body(command("/bin/sh", {"-c", "echo 'hi there' | wc", ""}), "sh")),
            kHead + "command pid=5007 sh: /bin/sh -c 'echo '\\''hi there'\\'' | wc' '' → ok\n");
}

TEST(AuditText, CommandMarksTruncationAndLoss) {
  CommandEvent c = command("/usr/bin/find", {"/", "-name", "*.log"});
  c.argv_truncated = true;
  EXPECT_EQ(text(with_body(c, "find")),
            kHead + "command pid=5007 find: /usr/bin/find / -name '*.log' → ok [argv truncated]\n");
  CommandEvent lost = command("", {});
  lost.args_lost = true;
  EXPECT_EQ(text(with_body(lost, "find")),
            kHead + "command pid=5007 find: '' → ok [args lost]\n");
}

TEST(AuditText, DiskOpenForWritingThatFailed) {
  EXPECT_EQ(text(with_body(disk("/etc/shadow", O_WRONLY | O_CREAT, -13))),
            kHead + "disk pid=5007 curl: /etc/shadow O_WRONLY|O_CREAT → EACCES (-13)\n");
  EXPECT_EQ(text(with_body(disk("/etc/hosts", O_RDONLY | O_CLOEXEC))),
            kHead + "disk pid=5007 curl: /etc/hosts O_RDONLY|O_CLOEXEC → ok\n");
}

TEST(AuditText, DiskMarksTruncation) {
  DiskEvent d = disk("/deep/path", O_RDONLY);
  d.path_truncated = true;
  EXPECT_EQ(text(with_body(d)), kHead + "disk pid=5007 curl: /deep/path O_RDONLY → ok [path truncated]\n");
}

TEST(AuditText, DiskNamesTheFileTheKernelOpenedWhenThePathSaysOtherwise) {
  DiskEvent d = disk("secret", O_RDONLY);
  d.kernel_path = "/home/alice/secret";
  EXPECT_EQ(text(with_body(d)),
            kHead + "disk pid=5007 curl: secret O_RDONLY → ok opened /home/alice/secret\n");
  d.path = "/home/alice/secret";  // the same: said once
  EXPECT_EQ(text(with_body(d)), kHead + "disk pid=5007 curl: /home/alice/secret O_RDONLY → ok\n");
  d.path = "";
  d.path_unreadable = true;
  EXPECT_EQ(text(with_body(d)), kHead + "disk pid=5007 curl: '' O_RDONLY → ok [path unreadable] "
                                        "opened /home/alice/secret\n");
}

TEST(AuditText, OpenFlagsSpelledSymbolically) {
  EXPECT_EQ(flags_text(0), "O_RDONLY");
  EXPECT_EQ(flags_text(577), "O_WRONLY|O_CREAT|O_TRUNC");  // same value on amd64 and arm64
  EXPECT_EQ(flags_text(O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC), "O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC");
  EXPECT_EQ(flags_text(O_WRONLY | O_APPEND | O_NONBLOCK), "O_WRONLY|O_APPEND|O_NONBLOCK");
  EXPECT_EQ(flags_text(O_RDONLY | O_DIRECTORY | O_NOFOLLOW), "O_RDONLY|O_DIRECTORY|O_NOFOLLOW");
  EXPECT_EQ(flags_text(O_PATH | O_CLOEXEC), "O_RDONLY|O_CLOEXEC|O_PATH");
  // Flags made of several bits are named once, without their parts.
  EXPECT_EQ(flags_text(O_RDWR | O_TMPFILE), "O_RDWR|O_TMPFILE");
  EXPECT_EQ(flags_text(O_WRONLY | O_SYNC), "O_WRONLY|O_SYNC");
  EXPECT_EQ(flags_text(O_WRONLY | O_DSYNC), "O_WRONLY|O_DSYNC");
  EXPECT_EQ(flags_text(O_WRONLY | 0x40000000), "O_WRONLY|0x40000000");  // no name
  EXPECT_EQ(flags_text(3), "O_ACCMODE");
}

TEST(AuditText, ErrnoNames) {
  EXPECT_EQ(errno_name(ENOENT), "ENOENT");
  EXPECT_EQ(errno_name(EACCES), "EACCES");
  EXPECT_EQ(errno_name(ECONNREFUSED), "ECONNREFUSED");
  EXPECT_EQ(errno_name(ENAMETOOLONG), "ENAMETOOLONG");
  EXPECT_EQ(errno_name(0), "");
  EXPECT_EQ(errno_name(4000), "");
}

TEST(AuditText, NetworkIpv4) {
  EXPECT_EQ(text(with_body(network(4, "172.31.34.128", "5.9.243.187", 443))),
            kHead + "network pid=5007 curl: connect 172.31.34.128 → 5.9.243.187:443 v4\n");
}

TEST(AuditText, NetworkIpv6InBrackets) {
  EXPECT_EQ(text(with_body(network(6, "2001:db8::5", "2001:db8::1", 8443))),
            kHead + "network pid=5007 curl: connect 2001:db8::5 → [2001:db8::1]:8443 v6\n");
}

TEST(AuditText, NetworkSendDenied) {
  NetworkEvent n = network(4, "10.0.0.1", "10.0.0.2", 53);
  n.operation = 1;
  n.action = 1;
  EXPECT_EQ(text(with_body(n, "dig")),
            kHead + "network pid=5007 dig: send 10.0.0.1 → 10.0.0.2:53 v4 denied\n");
}

TEST(AuditText, NetworkResultsAcceptUdpAndNamespace) {
  NetworkEvent n = network(4, "127.0.0.1", "127.0.0.1", 80);
  n.operation = net_op::connect_result;
  n.result = ConnectResult::refused;
  n.return_code = -111;
  n.net_ns = 4026531840u;
  EXPECT_EQ(text(with_body(n)), kHead + "network pid=5007 curl: connect result 127.0.0.1 → "
                                        "127.0.0.1:80 v4: refused netns=4026531840\n");
  n.result = ConnectResult::failed;
  n.return_code = -110;
  EXPECT_EQ(text(with_body(n)), kHead + "network pid=5007 curl: connect result 127.0.0.1 → "
                                        "127.0.0.1:80 v4: failed → ETIMEDOUT (-110) netns=4026531840\n");
  NetworkEvent in = network(6, "::1", "::1", 8080);
  in.operation = net_op::accept;
  in.src_port = 5555;
  EXPECT_EQ(text(with_body(in)),
            kHead + "network pid=5007 curl: accept [::1]:5555 → [::1]:8080 v6\n");
  NetworkEvent udp = network(4, "0.0.0.0", "10.0.0.53", 53);
  udp.protocol = NetProtocol::udp;
  udp.operation = net_op::send;
  udp.forgotten_destinations = 2;
  EXPECT_EQ(text(with_body(udp)), kHead + "network pid=5007 curl: udp send 0.0.0.0 → "
                                          "10.0.0.53:53 v4 [2 destinations forgotten]\n");
}

TEST(AuditText, UnixPathsAreQuotedOnOneLine) {
  NetworkEvent n;
  n.protocol = NetProtocol::unix_socket;
  n.unix_path = "/tmp/x\n12:00:00.000 user=root: forged";
  EXPECT_EQ(text(with_body(n)), kHead + "network pid=5007 curl: unix connect "
                                        "$'/tmp/x\\x0a12:00:00.000 user=root: forged'\n");
  n.unix_path = "name";
  n.unix_abstract = true;
  EXPECT_EQ(text(with_body(n)), kHead + "network pid=5007 curl: unix connect abstract name\n");
}

TEST(AuditTextSafety, RecordedBytesNeverReachTheTerminal) {
  SessionMeta m = meta();
  m.user = "mallory\r";
  std::string out;
  format_text(with_body(command("/tmp/\x1b[2J", {"a'b\n"}), "\x1b]0;pwn\x07"), m, out);
  EXPECT_EQ(out,
            "16:42:20.540 user=$'mallory\\x0d' login=ec2-user command pid=5007 $'\\x1b]0;pwn\\x07': "
            "$'/tmp/\\x1b[2J' $'a\\'b\\x0a' → ok\n");
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
}

TEST(AuditTextSafety, PrintableEscapes) {
  EXPECT_EQ(printable("plain text"), "plain text");
  EXPECT_EQ(printable("back\\slash"), "back\\\\slash");
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9");      // valid UTF-8 shown as is
  EXPECT_EQ(printable("caf\xe9"), "caf\\xe9");             // invalid byte
  EXPECT_EQ(printable("\x7f"), "\\x7f");                   // DEL
  EXPECT_EQ(printable("a\xc2\x9b" "2J"), "a\\xc2\\x9b2J");  // C1 CSI, both bytes
  EXPECT_EQ(printable("evil\xe2\x80\xaetxt.exe"), "evil\\xe2\\x80\\xaetxt.exe");  // RLO
}

TEST(AuditTextSafety, ShellWords) {
  EXPECT_EQ(shell_word("/usr/bin/ls"), "/usr/bin/ls");
  EXPECT_EQ(shell_word("--color=auto"), "--color=auto");
  EXPECT_EQ(shell_word("日本"), "日本");
  EXPECT_EQ(shell_word(""), "''");
  EXPECT_EQ(shell_word("two words"), "'two words'");
  EXPECT_EQ(shell_word("$HOME"), "'$HOME'");
  EXPECT_EQ(shell_word("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_word("tab\there"), "$'tab\\x09here'");
  EXPECT_EQ(shell_word("q'\\\x01"), "$'q\\'\\\\\\x01'");
}

std::string value(std::string_view s) {
  std::string out;
  append_value(out, s);
  return out;
}

TEST(AuditTextSafety, FieldValues) {
  EXPECT_EQ(value("alice@goteleport.com"), "alice@goteleport.com");
  EXPECT_EQ(value("$HOME;|*"), "$HOME;|*");  // no meaning in key=value
  EXPECT_EQ(value("日本"), "日本");
  EXPECT_EQ(value(""), "''");
  EXPECT_EQ(value("x login=root"), "'x login=root'");
  EXPECT_EQ(value("a=b"), "'a=b'");
  EXPECT_EQ(value("it's"), "'it'\\''s'");
  EXPECT_EQ(value("say \"hi\""), "'say \"hi\"'");
  EXPECT_EQ(value("`id`"), "'`id`'");
  EXPECT_EQ(value("back\\slash"), "'back\\slash'");
  EXPECT_EQ(value("tab\there"), "$'tab\\x09here'");
  EXPECT_EQ(value("a\xff" "b"), "$'a\\xffb'");
  // Blanks that are not ASCII spaces, and ones that show as nothing.
  EXPECT_EQ(value("x\u00a0login=root"), "'x\u00a0login=root'");
  EXPECT_EQ(value("x\u3000y"), "'x\u3000y'");
  EXPECT_EQ(value("x\u200by"), "'x\u200by'");
  // In a shell word too (it is two words to the eye).
  EXPECT_EQ(shell_word("x\u00a0y"), "'x\u00a0y'");
}

// The certificate's key id is the user: whoever holds the certificate chose it.
TEST(AuditTextSafety, AUserNameCannotForgeFields) {
  SessionMeta m = meta();
  m.user = "x login=root auth success=true";
  std::string out;
  format_text(with_body(command("/bin/true", {}), "a login=root"), m, out);
  EXPECT_EQ(out,
            "16:42:20.540 user='x login=root auth success=true' login=ec2-user command pid=5007 "
            "'a login=root': /bin/true → ok\n");
}

TEST(AuditTextSessionEnd, SummaryWithCounts) {
  SessionEnd end;
  end.time_ns = 1'576'190'686'218'000'000;  // 22:44:46.218
  end.kinds.add(Kind::command);
  end.kinds.add(Kind::network);
  end.recorded[Kind::command] = 12;
  end.recorded[Kind::network] = 3;
  end.lost[Kind::command] = 1;
  std::string out;
  format_session_end_text(end, meta(), out);
  EXPECT_EQ(out,
            "22:44:46.218 user=alice@goteleport.com login=ec2-user session "
            "86aca627-971d-4883-854d-d309ba04c658 ended: recorded command=12 disk=off network=3, "
            "lost command=1 disk=off network=0\n");
}

}  // namespace
}  // namespace vigil::audit
