// The monitor protocol's codec: every request and reply reads back as it
// was written, and every way a packet can be wrong is an error that names
// the field (the monitor then ends the front end that sent it).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "privsep/wire.hpp"

namespace vigil::privsep {
namespace {

OpenSession sample_open() {
  OpenSession m;
  m.channel = 7;
  m.program = Program::exec;
  m.command = "echo hi";
  m.pty = true;
  m.term = "xterm";
  m.cols = 120;
  m.rows = 40;
  m.env = {"LANG=C.UTF-8", "LC_ALL=C"};
  return m;
}

std::string error_of(std::string_view packet) {
  auto r = decode_request(packet);
  return r ? "ok" : r.error().message;
}

TEST(PrivsepWire, RequestsReadBack) {
  auto open = std::get<OpenSession>(decode_request(encode(Request{sample_open()})).value());
  EXPECT_EQ(open.channel, 7u);
  EXPECT_EQ(open.program, Program::exec);
  EXPECT_EQ(open.command, "echo hi");
  EXPECT_TRUE(open.pty);
  EXPECT_EQ(open.term, "xterm");
  EXPECT_EQ(open.cols, 120);
  EXPECT_EQ(open.rows, 40);
  EXPECT_EQ(open.env, (std::vector<std::string>{"LANG=C.UTF-8", "LC_ALL=C"}));

  auto login = std::get<Login>(decode_request(encode(Request{Login{std::string("\0\1blob", 6), "bob"}})).value());
  EXPECT_EQ(login.cert_blob, std::string("\0\1blob", 6));  // a blob is bytes, not text
  EXPECT_EQ(login.login, "bob");

  auto refused = std::get<AuthRefused>(decode_request(encode(Request{
      AuthRefused{"bob", "", "no_certificate", "publickey", "plain keys are not accepted"}})).value());
  EXPECT_EQ(refused.reason, "no_certificate");
  EXPECT_EQ(refused.message, "plain keys are not accepted");

  auto sig = std::get<Signal>(decode_request(encode(Request{Signal{3, "INT"}})).value());
  EXPECT_EQ(sig.channel, 3u);
  EXPECT_EQ(sig.name, "INT");
  auto resize = std::get<Resize>(decode_request(encode(Request{Resize{2, 100, 30}})).value());
  EXPECT_EQ(resize.cols, 100);
  EXPECT_EQ(std::get<EndSession>(decode_request(encode(Request{EndSession{9}})).value()).channel, 9u);
  auto rejected = std::get<Rejected>(decode_request(encode(Request{
      Rejected{"port_forwarding", "direct-tcpip 10.0.0.1:22", "no", 0}})).value());
  EXPECT_EQ(rejected.request, "direct-tcpip 10.0.0.1:22");
}

TEST(PrivsepWire, RepliesReadBack) {
  LoginOk ok{"alice@example.com", 5, true, std::string("/bin/true"), 1234567890123};
  auto back = std::get<LoginOk>(decode_reply(encode(Reply{ok})).value());
  EXPECT_EQ(back.user, "alice@example.com");
  EXPECT_EQ(back.kinds, 5);
  EXPECT_TRUE(back.permit_pty);
  EXPECT_EQ(back.force_command, std::optional<std::string>("/bin/true"));
  EXPECT_EQ(back.valid_before, 1234567890123);
  ok.force_command.reset();
  ok.valid_before = INT64_MAX;
  back = std::get<LoginOk>(decode_reply(encode(Reply{ok})).value());
  EXPECT_FALSE(back.force_command);
  EXPECT_EQ(back.valid_before, INT64_MAX);
  auto exited = std::get<Exited>(decode_reply(encode(Reply{Exited{4, 9}})).value());
  EXPECT_EQ(exited.wait_status, 9);
  EXPECT_EQ(std::get<Opened>(decode_reply(encode(Reply{Opened{4, "sid"}})).value()).sid, "sid");
  EXPECT_TRUE(std::get<Allowed>(decode_reply(encode(Reply{Allowed{true}})).value()).yes);
  EXPECT_TRUE(std::holds_alternative<Audited>(decode_reply(encode(Reply{Audited{}})).value()));
}

TEST(PrivsepWire, RequestsAndRepliesAreNotInterchangeable) {
  EXPECT_FALSE(decode_request(encode(Reply{Exited{1, 0}})));
  EXPECT_FALSE(decode_reply(encode(Request{EndSession{1}})));
}

TEST(PrivsepWire, EveryCutIsAnError) {
  const std::string whole = encode(Request{sample_open()});
  for (size_t len = 0; len < whole.size(); ++len)
    EXPECT_FALSE(decode_request(std::string_view(whole).substr(0, len))) << "cut at " << len;
}

TEST(PrivsepWire, BytesAfterTheLastFieldAreAnError) {
  EXPECT_NE(error_of(encode(Request{EndSession{1}}) + "x").find("after its last field"),
            std::string::npos);
}

TEST(PrivsepWire, UnknownTypeIsAnError) {
  EXPECT_NE(error_of(std::string("\x2a", 1)).find("type 42"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
}

TEST(PrivsepWire, TextMustBeUtf8WithoutNul) {
  EXPECT_NE(error_of(encode(Request{Login{"blob", "bo\xff"}})).find("login is not UTF-8"),
            std::string::npos);
  EXPECT_NE(error_of(encode(Request{Login{"blob", std::string("bo\0b", 4)}})).find("login"),
            std::string::npos);
  EXPECT_NE(error_of(encode(Request{Login{"blob", ""}})).find("login is empty"), std::string::npos);
}

TEST(PrivsepWire, FieldsAreBounded) {
  EXPECT_NE(error_of(encode(Request{Login{std::string(kMaxCertBlob + 1, 'x'), "bob"}}))
                .find("cert_blob is 16385 bytes"),
            std::string::npos);
  auto open = sample_open();
  open.env.assign(kMaxEnvVars + 1, "LANG=C");
  EXPECT_NE(error_of(encode(Request{open})).find("env_count is 33"), std::string::npos);
  open = sample_open();
  open.term = std::string(kMaxName + 1, 'x');
  EXPECT_NE(error_of(encode(Request{open})).find("term is 65 bytes"), std::string::npos);
  // A length that claims more than the packet holds.
  std::string lying = encode(Request{Signal{1, "INT"}});
  lying[8] = 60;  // the name's length: 3 -> 60 (within its bound, past the packet)
  EXPECT_NE(error_of(lying).find("runs past the end"), std::string::npos);
  EXPECT_NE(error_of(std::string(kMaxMessage + 1, '\x07')).find("more than"), std::string::npos);
}

TEST(PrivsepWire, NamesComeFromFixedSets) {
  EXPECT_NE(error_of(encode(Request{AuthRefused{"bob", "", "anything_i_like", "publickey", "x"}}))
                .find("reason is not one of"),
            std::string::npos);
  EXPECT_NE(error_of(encode(Request{AuthRefused{"bob", "", "expired", "carrier-pigeon", "x"}}))
                .find("method is not one of"),
            std::string::npos);
  EXPECT_NE(error_of(encode(Request{Rejected{"session.end", "x", "y", 0}})).find("reason"),
            std::string::npos);
}

TEST(PrivsepWire, FlagsAndProgramsAreStrict) {
  std::string packet = encode(Request{sample_open()});
  std::string bad_program = packet;
  bad_program[5] = 3;  // after type and channel
  EXPECT_NE(error_of(bad_program).find("program"), std::string::npos);
  auto shell = sample_open();
  shell.program = Program::shell;  // a shell with a command: which one runs?
  EXPECT_NE(error_of(encode(Request{shell})).find("command is given"), std::string::npos);
  std::string bad_flag = packet;
  size_t flag_at = 1 + 4 + 1 + 4 + sample_open().command.size();
  ASSERT_EQ(bad_flag[flag_at], 1);
  bad_flag[flag_at] = 2;
  EXPECT_NE(error_of(bad_flag).find("pty is neither 0 nor 1"), std::string::npos);
}

TEST(PrivsepWire, PacketsCarryFdsAndRefuseExtraOnes) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  ASSERT_TRUE(send_packet(pair[0], "abc", {pipe_fds[0]}));
  auto got = recv_packet(pair[1], 1);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->bytes, "abc");
  ASSERT_EQ(got->fds.size(), 1u);
  ASSERT_EQ(write(pipe_fds[1], "z", 1), 1);
  char c = 0;
  EXPECT_EQ(read(got->fds[0], &c, 1), 1);  // the same pipe, through the packet
  EXPECT_EQ(c, 'z');
  close(got->fds[0]);
  // A packet with fds where none are expected: an error, none kept.
  ASSERT_TRUE(send_packet(pair[0], "abc", {pipe_fds[0], pipe_fds[1]}));
  auto extra = recv_packet(pair[1], 0);
  ASSERT_FALSE(extra);
  EXPECT_NE(extra.error().message.find("more fds"), std::string::npos);
  close(pair[0]);
  auto closed = recv_packet(pair[1], 0);
  ASSERT_TRUE(closed);
  EXPECT_TRUE(closed->closed);
  close(pair[1]);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

}  // namespace
}  // namespace vigil::privsep
