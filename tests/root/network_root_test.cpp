// Root tier: network events beyond the TCP connect (issue 9 §5). Each test
// runs vigil_test_helper as the first process of a session that records
// network only, and asserts the exact events: UDP once per destination per
// process, unix connects, a connect's result, inbound connections on a
// session's listener, and the network namespace of each. Each comes with the
// way around it that an attacker would try (another thread, v4-mapped
// addresses, leaving the cgroup, a storm of destinations, a new namespace).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "engine/engine.hpp"
#include "engine/launch.hpp"
#include "engine_env.hpp"

using namespace vigil;

namespace {

const std::string kHelper = VIGIL_TEST_HELPER;
const KindSet kNetwork(1u << static_cast<int>(Kind::network));

using vigil::testing::g_engine;
using vigil::testing::g_start_error;

// The storm test sends 201 records; the ring holds them all.
VIGIL_ROOT_ENGINE("network", [](EngineOptions& o) { o.ring_pages = {8, 128, 64}; });

#define REQUIRE_ROOT()                                                                 \
  do {                                                                                 \
    if (geteuid() != 0)                                                                \
      GTEST_SKIP() << "SKIPPED: needs root (CAP_BPF, CAP_SYS_ADMIN) to load BPF; run " \
                      "'make test' as root";                                           \
    ASSERT_NE(g_engine, nullptr) << "the engine did not start: " << g_start_error;     \
  } while (0)

struct Net {
  ProcessInfo process;
  NetworkEvent net;
};

struct Recorded {
  std::vector<Net> events;
  SessionSummary summary;
  uint64_t session_cgroup_id = 0;
  pid_t pid = 0;
};

int g_counter = 0;

std::string unique(const std::string& what) {
  return "/tmp/vigil-net-" + std::to_string(getpid()) + "-" + what + "-" +
         std::to_string(++g_counter);
}

// Runs argv as a session's first process (network only); it must exit 0.
Recorded record(std::vector<std::string> argv, std::function<void()> while_running = nullptr) {
  Recorded out;
  std::mutex mu;
  auto session = g_engine->open_session(
      {"n" + std::to_string(getpid()) + "-" + std::to_string(++g_counter), kNetwork},
      [&](const Event& e) {
        std::lock_guard lock(mu);
        out.events.push_back({e.process, std::get<NetworkEvent>(e.body)});
      });
  EXPECT_TRUE(session.ok()) << session.error().message;
  if (!session.ok()) return out;
  out.session_cgroup_id = (*session)->cgroup_id();
  LaunchSpec spec;
  spec.argv = std::move(argv);
  auto child = launch(**session, spec);
  EXPECT_TRUE(child.ok()) << child.error().message;
  if (child.ok()) {
    out.pid = child->pid;
    if (while_running) while_running();
    int status = -1;
    EXPECT_EQ(waitpid(child->pid, &status, 0), child->pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "the session's first process ended with wait status " << status;
  }
  auto summary = g_engine->close_session(**session);
  EXPECT_TRUE(summary.ok()) << summary.error().message;
  if (summary.ok()) out.summary = *summary;
  return out;
}

uint32_t my_net_ns() {
  struct stat st{};
  EXPECT_EQ(stat("/proc/self/ns/net", &st), 0);
  return static_cast<uint32_t>(st.st_ino);
}

// A bound socket (UDP, or TCP listening when `listen_tcp`): a port that
// answers. Closed: a TCP port nobody listens on (bound, not listening).
class Port {
 public:
  Port(const char* addr, int type, bool listen_tcp) {
    bool v6 = strchr(addr, ':');
    fd_ = socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
      s->sin6_family = AF_INET6;
      inet_pton(AF_INET6, addr, &s->sin6_addr);
      len = sizeof(*s);
    } else {
      auto* s = reinterpret_cast<sockaddr_in*>(&ss);
      s->sin_family = AF_INET;
      inet_pton(AF_INET, addr, &s->sin_addr);
      len = sizeof(*s);
    }
    if (bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) || (listen_tcp && listen(fd_, 64)))
      ADD_FAILURE() << "socket on " << addr << ": " << strerror(errno);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  ~Port() { close(fd_); }
  uint16_t port() const { return port_; }
  std::string str() const { return std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

std::vector<Net> with_op(const Recorded& r, int op) {
  std::vector<Net> out;
  for (const auto& e : r.events)
    if (e.net.operation == op) out.push_back(e);
  return out;
}

}  // namespace

// A TCP connect is followed by its answer: established, or refused.
TEST(NetworkTcp, ConnectResultsSayEstablishedOrRefused) {
  REQUIRE_ROOT();
  Port open("127.0.0.1", SOCK_STREAM, true), closed("127.0.0.1", SOCK_STREAM, false);
  auto r = record({"/bin/sh", "-c",
                   kHelper + " connect 127.0.0.1 " + open.str() + " && ! " + kHelper +
                       " connect 127.0.0.1 " + closed.str()});
  auto attempts = with_op(r, net_op::connect);
  auto results = with_op(r, net_op::connect_result);
  ASSERT_EQ(attempts.size(), 2u);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(r.events.size(), 4u);
  EXPECT_EQ(results[0].net.result, ConnectResult::established);
  EXPECT_EQ(results[0].net.return_code, 0);
  EXPECT_EQ(results[0].net.dst_addr, "127.0.0.1");
  EXPECT_EQ(results[0].net.dst_port, open.port());
  EXPECT_NE(results[0].net.src_port, 0);
  EXPECT_EQ(results[1].net.result, ConnectResult::refused);
  EXPECT_EQ(results[1].net.return_code, -ECONNREFUSED);
  EXPECT_EQ(results[1].net.dst_port, closed.port());
  for (const auto& e : r.events) {
    EXPECT_EQ(e.net.protocol, NetProtocol::tcp);
    EXPECT_EQ(e.net.net_ns, my_net_ns());
    EXPECT_EQ(e.process.program, "vigil_test_help");
  }
  // The result names the process that connected, not whatever ran in softirq.
  EXPECT_EQ(results[0].process.pid, attempts[0].process.pid);
  EXPECT_EQ(results[1].process.pid, attempts[1].process.pid);
}

// Another thread connects: its result names that thread, as its attempt does.
TEST(NetworkTcp, AConnectFromAnotherThreadHasItsResultUnderThatThread) {
  REQUIRE_ROOT();
  Port open("::1", SOCK_STREAM, true);
  auto r = record({kHelper, "connect-thread", "::1", open.str()});
  ASSERT_EQ(r.events.size(), 2u);
  const Net& attempt = r.events[0];
  const Net& result = r.events[1];
  EXPECT_EQ(attempt.net.operation, net_op::connect);
  EXPECT_EQ(result.net.operation, net_op::connect_result);
  EXPECT_EQ(result.net.result, ConnectResult::established);
  EXPECT_EQ(result.net.version, 6);
  EXPECT_EQ(result.net.dst_addr, "::1");
  EXPECT_EQ(result.process.pid, static_cast<uint32_t>(r.pid));
  EXPECT_NE(result.process.tid, result.process.pid) << "the connect ran in a second thread";
  EXPECT_EQ(result.process.tid, attempt.process.tid);
}

// A connection made from outside the session to a session's listener.
TEST(NetworkTcp, AnInboundConnectionOnASessionListenerIsRecorded) {
  REQUIRE_ROOT();
  std::string port_file = unique("port");
  uint16_t client_port = 0, server_port = 0;
  auto r = record({kHelper, "accept", port_file}, [&] {
    std::string line;
    for (int i = 0; i < 3000 && line.empty(); ++i) {  // bound only against a broken helper
      std::ifstream(port_file) >> line;
      if (line.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_FALSE(line.empty()) << "the helper never listened";
    server_port = static_cast<uint16_t>(std::stoi(line));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(server_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    client_port = ntohs(a.sin_port);
    char c;
    (void)!read(fd, &c, 1);  // the helper accepted and closed
    close(fd);
  });
  unlink(port_file.c_str());
  // Only the inbound connection: the test's own connect is outside the session.
  ASSERT_EQ(r.events.size(), 1u);
  const Net& in = r.events[0];
  EXPECT_EQ(in.net.operation, net_op::accept);
  EXPECT_EQ(in.net.protocol, NetProtocol::tcp);
  EXPECT_EQ(in.net.version, 4);
  EXPECT_EQ(in.net.src_addr, "127.0.0.1");
  EXPECT_EQ(in.net.src_port, client_port);
  EXPECT_EQ(in.net.dst_addr, "127.0.0.1");
  EXPECT_EQ(in.net.dst_port, server_port);
  EXPECT_EQ(in.net.net_ns, my_net_ns());
  EXPECT_EQ(in.process.pid, static_cast<uint32_t>(r.pid));  // the process that listened
}

// UDP: once per destination per process, whatever the number of datagrams.
TEST(NetworkUdp, SendsAreReportedOncePerDestinationPerProcess) {
  REQUIRE_ROOT();
  Port a("127.0.0.1", SOCK_DGRAM, false), b("127.0.0.1", SOCK_DGRAM, false);
  auto r = record({"/bin/sh", "-c",
                   kHelper + " udp 127.0.0.1 " + a.str() + " 5 && " + kHelper + " udp 127.0.0.1 " +
                       b.str() + " 3 && " + kHelper + " udp 127.0.0.1 " + a.str() + " 2 && " +
                       kHelper + " udp-connect 127.0.0.1 " + b.str()});
  ASSERT_EQ(r.events.size(), 4u);
  EXPECT_EQ(r.summary.lost.total(), 0u);
  const uint16_t ports[] = {a.port(), b.port(), a.port(), b.port()};
  for (size_t i = 0; i < 4; ++i) {
    const auto& n = r.events[i].net;
    EXPECT_EQ(n.protocol, NetProtocol::udp);
    EXPECT_EQ(n.operation, i == 3 ? net_op::connect : net_op::send);
    EXPECT_EQ(n.version, 4);
    EXPECT_EQ(n.dst_addr, "127.0.0.1");
    EXPECT_EQ(n.dst_port, ports[i]);
    EXPECT_EQ(n.net_ns, my_net_ns());
    EXPECT_EQ(n.forgotten_destinations, 0u);
  }
  // Four processes, one event each (5, 3, 2 and 2 datagrams): a later
  // process is new to a destination an earlier one reported.
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = i + 1; j < 4; ++j) EXPECT_NE(r.events[i].process.pid, r.events[j].process.pid);
}

// A v4-mapped destination is the IPv4 one on the wire, reported as such,
// once; a real IPv6 destination is another one.
TEST(NetworkUdp, V4MappedIsReportedAsIpv4AndIpv6Separately) {
  REQUIRE_ROOT();
  Port v4("127.0.0.1", SOCK_DGRAM, false), v6("::1", SOCK_DGRAM, false);
  auto r = record({"/bin/sh", "-c",
                   "exec " + kHelper + " udp ::ffff:127.0.0.1 " + v4.str() + " 2"});
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].net.version, 4);
  EXPECT_EQ(r.events[0].net.dst_addr, "127.0.0.1");
  EXPECT_EQ(r.events[0].net.dst_port, v4.port());
  // connect() of an IPv6 socket to ::ffff:127.0.0.1, then a datagram from an
  // IPv4 socket to 127.0.0.1: one destination, one event.
  auto pair = record({kHelper, "udp-pair", "::ffff:127.0.0.1", "127.0.0.1", v4.str()});
  ASSERT_EQ(pair.events.size(), 1u);
  EXPECT_EQ(pair.events[0].net.operation, net_op::connect);
  EXPECT_EQ(pair.events[0].net.version, 4);
  EXPECT_EQ(pair.events[0].net.dst_addr, "127.0.0.1");
  auto r6 = record({kHelper, "udp", "::1", v6.str(), "2"});
  ASSERT_EQ(r6.events.size(), 1u);
  EXPECT_EQ(r6.events[0].net.version, 6);
  EXPECT_EQ(r6.events[0].net.dst_addr, "::1");
  EXPECT_EQ(r6.events[0].net.dst_port, v6.port());
}

// Another thread of the process: reported once, under the thread that sent first.
TEST(NetworkUdp, AnotherThreadSharesItsProcessTable) {
  REQUIRE_ROOT();
  Port a("127.0.0.1", SOCK_DGRAM, false);
  auto r = record({kHelper, "udp-thread", "127.0.0.1", a.str()});
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].process.pid, static_cast<uint32_t>(r.pid));
  EXPECT_NE(r.events[0].process.tid, r.events[0].process.pid) << "the first send was the thread's";
}

// A storm to many destinations: memory stays bounded (64 per process), each
// new destination is still reported, and what the table forgot is counted,
// so a repeat to a forgotten destination is reported again, not never.
TEST(NetworkUdp, AStormOfDestinationsIsBoundedAndCountsWhatItForgot) {
  REQUIRE_ROOT();
  const int n = 200;
  const int base = 20000 + (getpid() % 20000);
  auto r = record({kHelper, "udp-storm", std::to_string(n), std::to_string(base)});
  EXPECT_EQ(r.summary.lost.total(), 0u);
  ASSERT_EQ(r.events.size(), static_cast<size_t>(n + 1));
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(r.events[i].net.dst_port, base + i);
    EXPECT_EQ(r.events[i].net.forgotten_destinations, static_cast<uint32_t>(std::max(0, i + 1 - 64)));
  }
  EXPECT_EQ(r.events[n].net.dst_port, base);
  EXPECT_EQ(r.events[n].net.forgotten_destinations, static_cast<uint32_t>(n + 1 - 64));
}

// Root in a session moves to another cgroup, then sends: the audit session
// id still ties it to the session (the hooks sit at the cgroup root).
TEST(NetworkUdp, AProcessThatLeftTheSessionCgroupIsStillRecorded) {
  REQUIRE_ROOT();
  ASSERT_TRUE(g_engine->has_audit_session()) << "this kernel has no audit session ids";
  std::string elsewhere = "/cgroup2/vigil-net-escape-" + std::to_string(getpid());
  mkdir(elsewhere.c_str(), 0755);
  Port a("127.0.0.1", SOCK_DGRAM, false), t("127.0.0.1", SOCK_STREAM, true);
  auto r = record({kHelper, "join-cgroup", elsewhere, "/bin/sh", "-c",
                   kHelper + " udp 127.0.0.1 " + a.str() + " 1 && " + kHelper +
                       " connect 127.0.0.1 " + t.str()});
  rmdir(elsewhere.c_str());
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[0].net.protocol, NetProtocol::udp);
  EXPECT_EQ(r.events[0].net.dst_port, a.port());
  EXPECT_EQ(with_op(r, net_op::connect_result).size(), 1u);
  for (const auto& e : r.events)
    EXPECT_NE(e.process.cgroup_id, r.session_cgroup_id) << "sent from the session cgroup";
}

// Unix sockets: the path connected to, and abstract names.
TEST(NetworkUnix, ConnectsNameThePathAndAbstractNames) {
  REQUIRE_ROOT();
  std::string path = unique("sock");
  std::string abstract = "vigil-net-" + std::to_string(getpid());
  auto listen_unix = [](const std::string& name, bool is_abstract) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    socklen_t len;
    if (is_abstract) {
      memcpy(sun.sun_path + 1, name.data(), name.size());
      len = offsetof(sockaddr_un, sun_path) + 1 + name.size();
    } else {
      memcpy(sun.sun_path, name.c_str(), name.size() + 1);
      len = sizeof(sun);
    }
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sun), len), 0) << strerror(errno);
    EXPECT_EQ(listen(fd, 8), 0);
    return fd;
  };
  int fs = listen_unix(path, false), ab = listen_unix(abstract, true);
  auto r = record({"/bin/sh", "-c",
                   kHelper + " unix " + path + " && " + kHelper + " unix @" + abstract});
  close(fs);
  close(ab);
  unlink(path.c_str());
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0].net.protocol, NetProtocol::unix_socket);
  EXPECT_EQ(r.events[0].net.operation, net_op::connect);
  EXPECT_EQ(r.events[0].net.unix_path, path);
  EXPECT_FALSE(r.events[0].net.unix_abstract);
  EXPECT_EQ(r.events[0].net.net_ns, my_net_ns());
  EXPECT_EQ(r.events[1].net.unix_path, abstract);
  EXPECT_TRUE(r.events[1].net.unix_abstract);
}

// A new network namespace: its events name it, not the host's.
TEST(NetworkNamespace, EventsNameTheSocketsNamespace) {
  REQUIRE_ROOT();
  std::string ns_file = unique("ns");
  auto r = record({kHelper, "netns", ns_file, "4242"});
  uint32_t ns = 0;
  std::ifstream(ns_file) >> ns;
  unlink(ns_file.c_str());
  ASSERT_NE(ns, 0u);
  ASSERT_NE(ns, my_net_ns());
  // UDP send, TCP connect, its refusal: all in the new namespace.
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[0].net.protocol, NetProtocol::udp);
  EXPECT_EQ(r.events[1].net.operation, net_op::connect);
  EXPECT_EQ(r.events[2].net.result, ConnectResult::refused);
  for (const auto& e : r.events) EXPECT_EQ(e.net.net_ns, ns);
}
