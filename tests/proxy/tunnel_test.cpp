// Reverse tunnels: a node in a network namespace of its own (its sshd
// listens only inside it, on its loopback) holds a tunnel to the proxy and
// is reached through it with ssh -J, and not otherwise; the agent
// reconnects after the proxy restarts; a tunnel login with a user
// certificate or another cluster's host certificate is refused.
#include "proxy_fixture.hpp"

namespace vigil::proxy::test {
namespace {

class TunnelTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    if (HasFatalFailure()) return;
    const std::string id = std::to_string(getpid() % 100000);
    ns_ = "vpx" + id;
    host_if_ = "vpxh" + id;
    const int net = 1 + getpid() % 250;
    host_ip_ = "10.251." + std::to_string(net) + ".1";
    ns_ip_ = "10.251." + std::to_string(net) + ".2";
    auto r = shell("ip netns add " + ns_ + " && ip link add " + host_if_ + " type veth peer name vpxn" + id +
                   " netns " + ns_ + " && ip addr add " + host_ip_ + "/30 dev " + host_if_ +
                   " && ip link set " + host_if_ + " up && ip -n " + ns_ + " addr add " + ns_ip_ +
                   "/30 dev vpxn" + id + " && ip -n " + ns_ + " link set vpxn" + id +
                   " up && ip -n " + ns_ + " link set lo up");
    ASSERT_EQ(r.status, 0) << r.output;
    ASSERT_NO_FATAL_FAILURE(host_key_with_certificate("nat_host", kNatNodeUuid, "natnode"));
    ASSERT_NO_FATAL_FAILURE(start_sshd(nat_sshd_, "natsshd", "127.0.0.1", 2222, ns_, "nat_host"));
    // Listed with no address: reached only through its tunnel.
    ASSERT_NO_FATAL_FAILURE(add_node(kNatNodeUuid, "natnode", "", true));
  }
  void TearDown() override {
    agent_.stop();
    nat_sshd_.stop();
    if (HasFailure()) std::cerr << "--- agent log ---\n" << agent_.log();
    if (!ns_.empty()) shell("ip netns del " + ns_);
    ProxyTest::TearDown();
  }

  void start_agent(const std::string& key, bool in_netns = true,
                   const std::string& local = "127.0.0.1:2222") {
    std::vector<std::string> argv;
    if (in_netns) argv = {"ip", "netns", "exec", ns_};
    for (const std::string& a :
         {std::string(PROXY_HARNESS), std::string("agent"), std::string("--proxy"),
          (in_netns ? host_ip_ : std::string("127.0.0.1")) + ":" + std::to_string(tunnel_port_),
          std::string("--proxy-key-file"), dir_.file("proxy_host.pub"), std::string("--key"),
          dir_.file(key), std::string("--cert"), dir_.file(key + "-cert.pub"),
          std::string("--local"), local, std::string("--min-backoff"),
          std::string("100"), std::string("--max-backoff"), std::string("1000")})
      argv.push_back(a);
    agent_.start(argv, dir_.file("agent.log"));
  }

  size_t count_in_proxy_log(const std::string& text) {
    const std::string log = proxy_.log();
    size_t n = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
    return n;
  }

  std::string ns_, host_if_, host_ip_, ns_ip_;
  Child nat_sshd_, agent_;
};

TEST_F(TunnelTest, ANodeBehindNatIsReachedThroughItsTunnelAndNotOtherwise) {
  // Not reachable from here: its sshd listens inside its namespace only.
  EXPECT_FALSE(port_open(ns_ip_.c_str(), 2222));
  // No tunnel yet: the proxy has no way to it.
  auto r = ssh_via_proxy("natnode", "echo too-early");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(proxy_logged("holds none now")) << proxy_.log();

  start_agent("nat_host");
  ASSERT_TRUE(proxy_logged("node " + std::string(kNatNodeUuid) + " holds a tunnel from " + ns_ip_))
      << proxy_.log() << agent_.log();
  r = ssh_via_proxy("natnode", "echo via-the-tunnel");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "via-the-tunnel\n");
  EXPECT_TRUE(proxy_logged("-> node natnode (tunnel)")) << proxy_.log();
  // The namespace's sshd took the login, from its own loopback (the agent).
  EXPECT_NE(slurp(dir_.file("natsshd.log")).find("Accepted publickey for root from 127.0.0.1"),
            std::string::npos)
      << slurp(dir_.file("natsshd.log"));
  // Bulk data both ways through the tunnel.
  r = shell("head -c 3000000 /dev/urandom > " + dir_.file("blob") + " && " + ssh_base() + " -J " +
            jump() + " -p 3022 root@natnode 'cat > " + dir_.file("blob.copy") + "' < " +
            dir_.file("blob") + " && cmp " + dir_.file("blob") + " " + dir_.file("blob.copy"));
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST_F(TunnelTest, TheAgentReconnectsAfterTheProxyRestarts) {
  start_agent("nat_host");
  ASSERT_TRUE(proxy_logged("holds a tunnel from")) << proxy_.log() << agent_.log();
  auto r = ssh_via_proxy("natnode", "echo first");
  ASSERT_EQ(r.output, "first\n") << r.output;

  const int jump_port = jump_port_, tunnel_port = tunnel_port_;
  proxy_.stop();
  // While the proxy is away the agent keeps trying (and says why).
  ASSERT_TRUE(eventually([&] { return agent_.log().find("retrying in") != std::string::npos; }))
      << agent_.log();
  ASSERT_NO_FATAL_FAILURE(start_proxy("127.0.0.1:" + std::to_string(jump_port),
                                      "0.0.0.0:" + std::to_string(tunnel_port)));
  ASSERT_TRUE(eventually([&] { return count_in_proxy_log("holds a tunnel from") >= 2; }))
      << proxy_.log() << agent_.log();
  r = ssh_via_proxy("natnode", "echo again");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "again\n");
  EXPECT_TRUE(agent_.alive());
}

TEST_F(TunnelTest, ATunnelWithAUserCertificateIsRefused) {
  start_agent("alice", false);
  ASSERT_TRUE(proxy_logged("proxy tunnel: 127.0.0.1:")) << proxy_.log();
  EXPECT_TRUE(proxy_logged("refused: untrusted_ca")) << proxy_.log();
  EXPECT_TRUE(eventually([&] {
    return agent_.log().find("the proxy refused the node's host certificate") != std::string::npos;
  })) << agent_.log();
  EXPECT_EQ(count_in_proxy_log("holds a tunnel"), 0u) << proxy_.log();
  auto r = ssh_via_proxy("natnode", "echo in");
  EXPECT_NE(r.status, 0) << r.output;
}

TEST_F(TunnelTest, ATunnelWithAnotherClustersHostCertificateIsRefused) {
  auto other = ca::CertAuthority::create(ca::CaType::ssh_host, "another-cluster", now_);
  ASSERT_TRUE(other);
  // The right uuid, the wrong cluster.
  ASSERT_NO_FATAL_FAILURE(host_key_with_certificate("impostor", kNatNodeUuid, "natnode", &*other));
  start_agent("impostor");
  ASSERT_TRUE(proxy_logged("proxy tunnel: " + ns_ip_)) << proxy_.log();
  EXPECT_TRUE(proxy_logged("refused: untrusted_ca")) << proxy_.log();
  EXPECT_EQ(count_in_proxy_log("holds a tunnel"), 0u) << proxy_.log();
  auto r = ssh_via_proxy("natnode", "echo in");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(proxy_logged("holds none now")) << proxy_.log();
}

// The node's SSH port resets the agent's connection while the user's client
// keeps its channel open: the agent's socket reports POLLHUP and POLLERR
// from then on. An agent that keeps it in its poll set never waits again
// (a busy loop on the node, per such channel); one that leaves it out makes
// a few system calls a second.
TEST_F(TunnelTest, AChannelTheNodeResetDoesNotKeepTheAgentBusy) {
  FakeNode node(ns_, 2223);
  ASSERT_TRUE(node.ok());
  start_agent("nat_host", true, "127.0.0.1:2223");
  ASSERT_TRUE(proxy_logged("holds a tunnel from")) << proxy_.log() << agent_.log();
  const uint16_t local = free_port();
  HeldForward client(forward_argv(local, "natnode:3022"), local, dir_.file("held.log"));
  ASSERT_TRUE(client.connected()) << slurp(dir_.file("held.log"));
  ASSERT_TRUE(proxy_logged("-> node natnode (tunnel)"))
      << proxy_.log() << agent_.log() << slurp(dir_.file("held.log"));
  ASSERT_EQ(node.accepted(), 1);
  node.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the agent reads the reset
  const long calls = syscalls_during(agent_.pid(), std::chrono::seconds(2), dir_.file("perf.out"));
  EXPECT_TRUE(client.alive()) << slurp(dir_.file("held.log"));
  EXPECT_GE(calls, 0);
  EXPECT_LT(calls, 1000) << "the agent made " << calls
                         << " system calls in 2 s with one idle channel: it polls a reset socket";
}

// A user's client dies while the node holds its end open and silent: the
// proxy's tunnel thread sees its end of the socket pair closed (POLLHUP
// from then on) and the tunnel's channel stays open (the node did not
// close it). A tunnel thread that keeps the socket in its poll set never
// waits again; one that leaves it out makes a few system calls a second.
TEST_F(TunnelTest, AUserGoneWhileTheNodeHoldsOnDoesNotKeepTheProxyBusy) {
  FakeNode node(ns_, 2223);
  ASSERT_TRUE(node.ok());
  start_agent("nat_host", true, "127.0.0.1:2223");
  ASSERT_TRUE(proxy_logged("holds a tunnel from")) << proxy_.log() << agent_.log();
  {
    const uint16_t local = free_port();
    HeldForward client(forward_argv(local, "natnode:3022"), local, dir_.file("held.log"));
    ASSERT_TRUE(client.connected()) << slurp(dir_.file("held.log"));
    ASSERT_TRUE(eventually([&] { return node.accepted() == 1; }))
        << proxy_.log() << agent_.log() << slurp(dir_.file("held.log"));
    ASSERT_TRUE(proxy_logged("-> node natnode (tunnel)")) << proxy_.log();
    client.kill_now();
  }
  // The user's connection thread notices its client gone within a poll round.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const long calls = syscalls_during(proxy_.pid(), std::chrono::seconds(2), dir_.file("perf.out"));
  EXPECT_GE(calls, 0);
  EXPECT_LT(calls, 1000) << "the proxy made " << calls
                         << " system calls in 2 s with no user left: it polls a closed socket pair";
  const long agent_calls = syscalls_during(agent_.pid(), std::chrono::seconds(2), dir_.file("perf.out"));
  EXPECT_GE(agent_calls, 0);
  EXPECT_LT(agent_calls, 1000) << "the agent made " << agent_calls << " system calls in 2 s";
}

}  // namespace
}  // namespace vigil::proxy::test
