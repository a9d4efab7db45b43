// The proxy as a jump host: OpenSSH through it to a real sshd node, and
// every way around it refused (docs/testing.md, "The proxy").
#include "proxy_fixture.hpp"

namespace vigil::proxy::test {
namespace {

TEST_F(ProxyTest, SshJumpRunsTheCommandOnTheNodeThroughTheProxy) {
  auto r = ssh_via_proxy("node1", "echo through-the-proxy");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "through-the-proxy\n");
  // The proxy let alice (the certificate's key id) in and relayed to node1.
  EXPECT_TRUE(proxy_logged("alice from 127.0.0.1:")) << proxy_.log();
  EXPECT_TRUE(proxy_logged("-> node node1 (127.0.0.1:" + std::to_string(node_port_) + ")"))
      << proxy_.log();
  // The node's name with the cluster's, and its uuid, name it too. (The
  // host certificate lists name and uuid, not "<name>.<cluster>": ssh checks
  // it against the alias.)
  r = ssh_via_proxy(std::string("node1.") + kCluster, "-o HostKeyAlias=node1 echo by-cluster-name");
  EXPECT_EQ(r.output, "by-cluster-name\n") << r.output;
  r = ssh_via_proxy(kNodeUuid, "echo by-uuid");
  // The host certificate names the uuid too, so ssh trusts it.
  EXPECT_EQ(r.output, "by-uuid\n") << r.output;
}

TEST_F(ProxyTest, TheProxyRunsAsNobody) {
  std::ifstream status("/proc/" + std::to_string(proxy_.pid()) + "/status");
  std::string line, uid_line, groups_line;
  while (std::getline(status, line)) {
    if (line.rfind("Uid:", 0) == 0) uid_line = line;
    if (line.rfind("Groups:", 0) == 0) groups_line = line;
  }
  std::istringstream uids(uid_line.substr(4));
  uid_t real = 0, effective = 0, saved = 0;
  uids >> real >> effective >> saved;
  EXPECT_EQ(real, nobody_uid_);
  EXPECT_EQ(effective, nobody_uid_);
  EXPECT_EQ(saved, nobody_uid_);
  EXPECT_EQ(groups_line.find_first_of("0123456789"), std::string::npos) << groups_line;
  // And it works so.
  auto r = ssh_via_proxy("node1", "echo as-nobody");
  EXPECT_EQ(r.output, "as-nobody\n") << r.output;
}

TEST_F(ProxyTest, ScpAndSftpWorkThroughTheJump) {
  std::string payload(300 * 1024, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 7919) >> 3);
  put(dir_.file("payload"), payload);
  auto r = shell("scp -F " + dir_.file("ssh_config") + " -J " + jump() + " -P 3022 " +
                 dir_.file("payload") + " root@node1:" + dir_.file("copied"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(slurp(dir_.file("copied")), payload);
  put(dir_.file("batch"), "get " + dir_.file("payload") + " " + dir_.file("fetched") + "\n");
  r = shell("sftp -F " + dir_.file("ssh_config") + " -J " + jump() + " -P 3022 -b " +
            dir_.file("batch") + " root@node1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(slurp(dir_.file("fetched")), payload);
}

TEST_F(ProxyTest, ACertificateOfAnotherCaIsRefused) {
  auto other = ca::CertAuthority::create(ca::CaType::ssh_user, "another-cluster", now_);
  ASSERT_TRUE(other);
  ASSERT_NO_FATAL_FAILURE(user_key_with_certificate("mallory", *other, now_, kTtl));
  write_client_config("mallory");
  auto r = shell(ssh_base() + " -J mallory@127.0.0.1:" + std::to_string(jump_port_) +
                 " -p 3022 root@node1 echo in");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("in\n"), std::string::npos);
  EXPECT_TRUE(proxy_logged("untrusted_ca")) << proxy_.log();
  EXPECT_EQ(proxy_.log().find("-> node"), std::string::npos) << proxy_.log();
}

TEST_F(ProxyTest, AnExpiredCertificateIsRefused) {
  ASSERT_NO_FATAL_FAILURE(user_key_with_certificate("late", *user_ca_, now_ - 7200, 600));
  write_client_config("late");
  auto r = shell(ssh_base() + " -J late@127.0.0.1:" + std::to_string(jump_port_) +
                 " -p 3022 root@node1 echo in");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(proxy_logged("expired")) << proxy_.log();
  EXPECT_EQ(proxy_.log().find("-> node"), std::string::npos) << proxy_.log();
}

TEST_F(ProxyTest, APlainKeyIsRefused) {
  ASSERT_NO_FATAL_FAILURE(user_key_with_certificate("plain", *user_ca_, now_, kTtl));
  // The same key without its certificate.
  put(dir_.file("ssh_config_plain"),
      "Host *\n  IdentityFile " + dir_.file("plain") +
          "\n  IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n"
          "  StrictHostKeyChecking yes\n  UserKnownHostsFile " + dir_.file("known_hosts") +
          "\n  GlobalKnownHostsFile /dev/null\n");
  unlink(dir_.file("plain-cert.pub").c_str());
  auto r = shell("ssh -F " + dir_.file("ssh_config_plain") + " -J plain@127.0.0.1:" +
                 std::to_string(jump_port_) + " -p 3022 root@node1 echo in");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(proxy_logged("no_certificate")) << proxy_.log();
  EXPECT_EQ(proxy_.log().find("-> node"), std::string::npos) << proxy_.log();
}

TEST_F(ProxyTest, AShellOrCommandOnTheProxyItselfIsRefused) {
  const std::string proxy = " -p " + std::to_string(jump_port_) + " alice@127.0.0.1";
  auto r = shell(ssh_base() + proxy + " echo on-the-proxy");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("on-the-proxy"), std::string::npos) << r.output;
  r = shell(ssh_base() + " -s" + proxy + " sftp");
  EXPECT_NE(r.status, 0) << r.output;
  r = shell(ssh_base() + " -tt" + proxy + " </dev/null");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(proxy_logged("session channel (shell, exec, subsystem) refused")) << proxy_.log();
  // -R: remote port forwarding is refused (ExitOnForwardFailure makes ssh say so).
  r = shell(ssh_base() + " -N -o ExitOnForwardFailure=yes -R 127.0.0.1:0:127.0.0.1:22" + proxy);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(proxy_logged("tcpip-forward 127.0.0.1:0 refused")) << proxy_.log();
  EXPECT_EQ(proxy_.log().find("-> node"), std::string::npos) << proxy_.log();
}

TEST_F(ProxyTest, ForwardingToWhatIsNotANodeIsRefused) {
  const std::string proxy = " -p " + std::to_string(jump_port_) + " alice@127.0.0.1";
  const std::string jump_port = std::to_string(jump_port_);
  const std::string node_port = std::to_string(node_port_);
  // An address, even the very address a node listens on: only names go.
  for (const std::string& target : std::vector<std::string>{"127.0.0.1:22", "127.0.0.1:" + jump_port, "127.0.0.1:" + node_port, "localhost:" + node_port,
        "ghost:3022", "node1:22", "node1:" + jump_port}) {
    auto r = shell(ssh_base() + " -W " + target + proxy + " </dev/null");
    EXPECT_NE(r.status, 0) << target << ": " << r.output;
    EXPECT_NE(r.output.find("stdio forwarding failed"), std::string::npos) << target << ": " << r.output;
    EXPECT_TRUE(proxy_logged("direct-tcpip to " + target + " refused")) << target << "\n" << proxy_.log();
  }
  EXPECT_NE(proxy_.log().find("no node \"ghost\""), std::string::npos) << proxy_.log();
  EXPECT_NE(proxy_.log().find("is not its SSH port"), std::string::npos) << proxy_.log();
  EXPECT_EQ(proxy_.log().find("-> node"), std::string::npos) << proxy_.log();
  // Through the jump, to an unknown node.
  auto r = ssh_via_proxy("ghost", "echo in");
  EXPECT_NE(r.status, 0) << r.output;
}

TEST_F(ProxyTest, ANodeGoneFromTheStoreIsNoLongerReached) {
  auto r = ssh_via_proxy("node1", "echo before");
  ASSERT_EQ(r.output, "before\n") << r.output;
  ASSERT_TRUE(store_->delete_node(kNodeUuid));
  r = ssh_via_proxy("node1", "echo after");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(proxy_logged("direct-tcpip to node1:3022 refused: no node \"node1\"")) << proxy_.log();
}

// A node that resets its connection while the user's client keeps the
// channel open (ssh -L and a local connection held): the relay's socket
// reports POLLHUP and POLLERR from then on, whatever it asks for. A proxy
// that keeps it in its poll set never waits again (a busy loop per such
// channel, until the client closes it); one that leaves it out waits for
// the channel, and makes a few system calls a second.
TEST_F(ProxyTest, AChannelWhoseNodeResetItDoesNotKeepTheProxyBusy) {
  FakeNode node;
  ASSERT_TRUE(node.ok());
  ASSERT_NO_FATAL_FAILURE(add_node("0d7c3b2a-1e4f-4a5b-8c6d-7e8f9a0b1c2d", "resetnode",
                                   "127.0.0.1:" + std::to_string(node.port()), false));
  const uint16_t local = free_port();
  HeldForward client(forward_argv(local, "resetnode:3022"), local, dir_.file("held.log"));
  ASSERT_TRUE(client.connected()) << slurp(dir_.file("held.log"));
  ASSERT_TRUE(proxy_logged("-> node resetnode (127.0.0.1:" + std::to_string(node.port()) + ")"))
      << proxy_.log() << slurp(dir_.file("held.log"));
  ASSERT_EQ(node.accepted(), 1);
  node.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the proxy reads the reset
  const long calls = syscalls_during(proxy_.pid(), std::chrono::seconds(2), dir_.file("perf.out"));
  EXPECT_TRUE(client.alive()) << "the client must hold its channel open through the window: "
                              << slurp(dir_.file("held.log"));
  EXPECT_GE(calls, 0);
  EXPECT_LT(calls, 1000) << "the proxy made " << calls
                         << " system calls in 2 s with one idle channel: it polls a reset socket";
  // It still serves: the next user reaches the real node.
  auto r = ssh_via_proxy("node1", "echo still-serving");
  EXPECT_EQ(r.output, "still-serving\n") << r.output;
}

// A proxy out of file descriptors: accept() fails with EMFILE, the
// connection stays in the backlog and the listener stays readable. A
// proxy that polls again at once spins (and logs a line per try) for as
// long as the clients hold their connections, which clients that never
// log in can do for the login grace; one that pauses between tries makes a
// few system calls a second and one warning. When the fds come back, it
// accepts again.
TEST_F(ProxyTest, AProxyOutOfFileDescriptorsPausesInsteadOfSpinning) {
  // The proxy again, with few fds (prlimit lowers its own limit, then execs it).
  proxy_.stop();
  proxy_wrapper_ = {"prlimit", "--nofile=32:32", "--"};
  ASSERT_NO_FATAL_FAILURE(start_proxy("127.0.0.1:" + std::to_string(jump_port_), "0.0.0.0:0"));
  // Raw TCP connections that never say a word: each holds an fd of the proxy
  // (in its key exchange) until it is closed, until none is left.
  std::vector<int> clients;
  for (int i = 0; i < 48 && proxy_.log().find("accept failed") == std::string::npos; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(jump_port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    clients.push_back(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // accepted before the next
  }
  ASSERT_TRUE(proxy_logged("accept failed")) << proxy_.log();
  const long calls = syscalls_during(proxy_.pid(), std::chrono::seconds(2), dir_.file("perf.out"));
  EXPECT_GE(calls, 0);
  EXPECT_LT(calls, 1000) << "the proxy made " << calls
                         << " system calls in 2 s failing to accept: it polls its listener at once";
  const std::string log = proxy_.log();
  size_t warnings = 0;
  for (size_t at = log.find("accept failed"); at != std::string::npos; at = log.find("accept failed", at + 1))
    ++warnings;
  EXPECT_LE(warnings, 2u) << "one warning per 10 s, not one per failed accept";
  for (int fd : clients) close(fd);
  auto r = ssh_via_proxy("node1", "echo accepting-again");
  EXPECT_EQ(r.output, "accepting-again\n") << r.output << proxy_.log();
}

// Reads what a connection through the -L port says first: the node's SSH
// banner when the proxy relays it, nothing (EOF) when it refused.
std::string first_words(uint16_t port, int fd_keep[], int index) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = -1;
  // Until ssh listens (a refused connect opens no channel).
  const bool connected = eventually([&] {
    if (fd >= 0) close(fd);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  });
  if (!connected) return "no connection";
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[64] = {};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  fd_keep[index] = fd;  // held open: the channel stays counted
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "EOF";
}

TEST_F(ProxyTest, TooManyChannelsOnOneConnectionAreRefused) {
  proxy_.stop();
  ASSERT_NO_FATAL_FAILURE(start_proxy("127.0.0.1:" + std::to_string(jump_port_), "0.0.0.0:0",
                                      {"--max-channels", "2"}));
  // One connection to the proxy carrying every channel: ssh -L to the node.
  const uint16_t local = free_port();
  Child forward;
  forward.start({"ssh", "-F", dir_.file("ssh_config"), "-N", "-p", std::to_string(jump_port_),
                 "-L", "127.0.0.1:" + std::to_string(local) + ":node1:3022", "alice@127.0.0.1"},
                dir_.file("forward.log"));
  int fds[3] = {-1, -1, -1};
  EXPECT_EQ(first_words(local, fds, 0).rfind("SSH-2.0-", 0), 0u);
  EXPECT_EQ(first_words(local, fds, 1).rfind("SSH-2.0-", 0), 0u);
  EXPECT_EQ(first_words(local, fds, 2), "EOF");
  EXPECT_TRUE(proxy_logged("refused: already 2 channels on this connection")) << proxy_.log();
  for (int fd : fds) close(fd);
}

}  // namespace
}  // namespace vigil::proxy::test
