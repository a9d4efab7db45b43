// Root tier: real BPF programs on the real kernel, real processes in real
// sessions, exact events asserted.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "engine/cgroup.hpp"
#include "engine/engine.hpp"
#include "engine_env.hpp"
#include "engine/launch.hpp"

using namespace vigil;

namespace {

const std::string kHelper = VIGIL_TEST_HELPER;

using vigil::testing::g_engine;
using vigil::testing::g_start_error;

VIGIL_ROOT_ENGINE("engine", [](EngineOptions&) {});

struct Recorded {
  std::vector<Event> events;
  SessionSummary summary;
  int exit_status = -1;
  uint64_t session_cgroup_id = 0;

  std::vector<CommandEvent> commands() const { return of<CommandEvent>(); }
  std::vector<DiskEvent> opens() const { return of<DiskEvent>(); }
  // Connect attempts (each TCP connect is also followed by its result).
  std::vector<NetworkEvent> connects() const {
    std::vector<NetworkEvent> out;
    for (const auto& n : of<NetworkEvent>())
      if (n.operation == net_op::connect) out.push_back(n);
    return out;
  }
  template <typename T>
  std::vector<T> of() const {
    std::vector<T> out;
    for (const auto& e : events)
      if (auto* p = std::get_if<T>(&e.body)) out.push_back(*p);
    return out;
  }
  // Successful commands whose path ends with /name (or equals name).
  std::vector<CommandEvent> ran(const std::string& name) const {
    std::vector<CommandEvent> out;
    for (const auto& c : commands()) {
      bool match = c.path == name || (c.path.size() > name.size() &&
                                      c.path.compare(c.path.size() - name.size() - 1,
                                                     std::string::npos, "/" + name) == 0);
      if (match && c.return_code == 0) out.push_back(c);
    }
    return out;
  }
  std::vector<DiskEvent> opened(const std::string& path) const {
    std::vector<DiskEvent> out;
    for (const auto& d : opens())
      if (d.path == path) out.push_back(d);
    return out;
  }
};

int session_counter = 0;

std::string new_session_id() {
  return "t" + std::to_string(getpid()) + "-" + std::to_string(++session_counter);
}

// Runs argv as the first process of a new session recording `kinds`. The
// launch must succeed (or, with launches = false, fail: an exec that fails
// is still recorded) and the process must exit 0.
Recorded record(std::vector<std::string> argv, KindSet kinds = KindSet::all(),
                std::function<void(Session&)> while_running = nullptr, bool launches = true) {
  Recorded out;
  std::mutex mu;
  auto session = g_engine->open_session({new_session_id(), kinds}, [&](const Event& e) {
    std::lock_guard lock(mu);
    out.events.push_back(e);
  });
  EXPECT_TRUE(session.ok()) << session.error().message;
  if (!session.ok()) return out;
  out.session_cgroup_id = (*session)->cgroup_id();
  LaunchSpec spec;
  spec.argv = std::move(argv);
  auto child = launch(**session, spec);
  EXPECT_EQ(child.ok(), launches) << (child.ok() ? std::string("it launched")
                                                 : child.error().message);
  if (child.ok()) {
    if (while_running) while_running(**session);
    EXPECT_EQ(waitpid(child->pid, &out.exit_status, 0), child->pid);
    EXPECT_TRUE(WIFEXITED(out.exit_status) && WEXITSTATUS(out.exit_status) == 0)
        << "the session's first process ended with wait status " << out.exit_status;
  }
  auto summary = g_engine->close_session(**session);
  EXPECT_TRUE(summary.ok()) << summary.error().message;
  if (summary.ok()) out.summary = *summary;
  return out;
}

Recorded sh(const std::string& script, KindSet kinds = KindSet::all()) {
  return record({"/bin/sh", "-c", script}, kinds);
}

// A loopback listener that accepts and closes until destroyed.
class Listener {
 public:
  explicit Listener(const char* addr) {
    bool v6 = strchr(addr, ':');
    fd_ = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) || listen(fd_, 4096))
      ADD_FAILURE() << "listener on " << addr << ": " << strerror(errno);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          if (stop_) return;
          continue;
        }
        close(c);
      }
    });
  }
  ~Listener() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

#define REQUIRE_ROOT()                                                                 \
  do {                                                                                 \
    if (geteuid() != 0)                                                                \
      GTEST_SKIP() << "SKIPPED: needs root (CAP_BPF, CAP_SYS_ADMIN) to load BPF; run " \
                      "'make test' as root";                                           \
    ASSERT_NE(g_engine, nullptr) << "the engine did not start: " << g_start_error;     \
  } while (0)

std::string temp_path(const std::string& name) {
  return "/tmp/vigil-test-" + std::to_string(getpid()) + "-" + name;
}

}  // namespace

TEST(Command, LsGivesItsArgvAndReturnCode) {
  REQUIRE_ROOT();
  auto r = record({"/bin/ls", "-la", "/"});
  auto ls = r.ran("ls");
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0].path, "/bin/ls");
  EXPECT_EQ(ls[0].argv, (std::vector<std::string>{"-la", "/"}));
  EXPECT_EQ(ls[0].return_code, 0);
  EXPECT_FALSE(ls[0].argv_truncated);
  EXPECT_EQ(r.summary.lost.total(), 0u);
  // The process fields name the program and its session.
  for (const auto& e : r.events) {
    if (auto* c = std::get_if<CommandEvent>(&e.body); c && c->path == "/bin/ls") {
      EXPECT_EQ(e.process.program, "ls");
      EXPECT_EQ(e.process.ppid, static_cast<uint32_t>(getpid()));
      EXPECT_NE(e.process.cgroup_id, 0u);
    }
  }
}

TEST(Command, ObfuscatedPipelineIsSeenThrough) {
  REQUIRE_ROOT();
  auto r = sh("echo bHMgLWxh | base64 --decode | sh");
  auto b64 = r.ran("base64");
  ASSERT_EQ(b64.size(), 1u);
  EXPECT_EQ(b64[0].argv, (std::vector<std::string>{"--decode"}));
  EXPECT_EQ(r.ran("sh").size(), 2u);  // the outer sh -c and the one fed by the pipe
  auto ls = r.ran("ls");
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0].argv, (std::vector<std::string>{"-la"}));
}

TEST(Command, CommandsInsideAScriptAreRecorded) {
  REQUIRE_ROOT();
  std::string script = temp_path("script.sh");
  {
    std::ofstream out(script);
    out << "#!/bin/sh\nid -u\nhostname\nuname -s\n";
  }
  chmod(script.c_str(), 0755);
  auto r = record({script, "first-arg"});
  unlink(script.c_str());
  auto self = r.ran(script.substr(script.rfind('/') + 1));
  ASSERT_EQ(self.size(), 1u);
  EXPECT_EQ(self[0].path, script);
  // The interpreter's own argv is dropped: what execve received remains.
  EXPECT_EQ(self[0].argv, (std::vector<std::string>{"first-arg"}));
  ASSERT_EQ(r.ran("id").size(), 1u);
  EXPECT_EQ(r.ran("id")[0].argv, (std::vector<std::string>{"-u"}));
  EXPECT_EQ(r.ran("hostname").size(), 1u);
  ASSERT_EQ(r.ran("uname").size(), 1u);
  EXPECT_EQ(r.ran("uname")[0].argv, (std::vector<std::string>{"-s"}));
}

TEST(Command, CommandsTypedWithEchoOffOnATerminalAreRecorded) {
  REQUIRE_ROOT();
  // script(1) gives the shell a real pseudo-terminal; stty -echo turns
  // echo off there before the commands run.
  auto r = record({"/usr/bin/script", "-qec", "stty -echo; printf hidden | base64; ls -la /tmp",
                   "/dev/null"});
  auto stty = r.ran("stty");
  ASSERT_EQ(stty.size(), 1u);
  EXPECT_EQ(stty[0].argv, (std::vector<std::string>{"-echo"}));
  EXPECT_EQ(r.ran("base64").size(), 1u);
  auto ls = r.ran("ls");
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0].argv, (std::vector<std::string>{"-la", "/tmp"}));
}

TEST(Command, FailedExecOfAMissingPathGivesENOENT) {
  REQUIRE_ROOT();
  auto r = sh("/nonexistent/vigil-missing a b; true");
  std::vector<CommandEvent> failed;
  for (const auto& c : r.commands())
    if (c.path == "/nonexistent/vigil-missing") failed.push_back(c);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].return_code, -2);
  EXPECT_EQ(failed[0].argv, (std::vector<std::string>{"a", "b"}));
}

TEST(Command, LargeArgumentsComeBackExact) {
  REQUIRE_ROOT();
  std::string big(10 * 1024, 'x');
  for (size_t i = 0; i < big.size(); i += 97) big[i] = 'a' + (i % 26);
  std::vector<std::string> many;
  for (int i = 0; i < 300; ++i) many.push_back("arg" + std::to_string(i));

  auto r1 = record({"/bin/echo", big});
  ASSERT_EQ(r1.ran("echo").size(), 1u);
  EXPECT_EQ(r1.ran("echo")[0].argv, std::vector<std::string>{big});
  EXPECT_FALSE(r1.ran("echo")[0].argv_truncated);

  std::vector<std::string> argv{"/bin/true"};
  argv.insert(argv.end(), many.begin(), many.end());
  auto r2 = record(argv);
  ASSERT_EQ(r2.ran("true").size(), 1u);
  EXPECT_EQ(r2.ran("true")[0].argv, many);

  // A failed exec reads argv from the caller's memory instead: same result.
  argv[0] = "/nonexistent/vigil-missing";
  auto r3 = record(argv, KindSet::all(), nullptr, /*launches=*/false);
  auto cmds = r3.commands();
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].return_code, -2);
  EXPECT_EQ(cmds[0].argv, many);
}

TEST(Command, OversizedArgvIsCutAndSaysSo) {
  REQUIRE_ROOT();
  std::vector<std::string> argv{"/bin/true"};
  for (int i = 0; i < 100; ++i) argv.push_back(std::string(1023, 'a' + i % 26));  // 100 KiB
  auto r = record(argv);
  auto t = r.ran("true");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_TRUE(t[0].argv_truncated);
  // Exactly 64 KiB of argv is kept, argv[0] and the NULs included:
  // "/bin/true\0" (10 bytes) + 63 arguments of 1024 bytes = 64522; the 64th
  // would end at 65546 and is dropped whole rather than cut.
  ASSERT_EQ(t[0].argv.size(), 63u);
  for (size_t i = 0; i < t[0].argv.size(); ++i) EXPECT_EQ(t[0].argv[i], argv[i + 1]);
  EXPECT_EQ(r.summary.lost.total(), 0u) << "a cut argv is not a lost event";
}

TEST(Command, FailedExecWithOversizedArgvIsCutAndSaysSo) {
  REQUIRE_ROOT();
  // Read from the caller's memory, argument by argument: the same limit.
  std::vector<std::string> argv{"/nonexistent/vigil-missing"};
  for (int i = 0; i < 100; ++i) argv.push_back(std::string(1023, 'a' + i % 26));  // 100 KiB
  auto r = record(argv, KindSet::all(), nullptr, /*launches=*/false);
  auto cmds = r.commands();
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].path, argv[0]);
  EXPECT_EQ(cmds[0].return_code, -2);
  EXPECT_TRUE(cmds[0].argv_truncated) << "a failed exec's argv was cut without saying so";
  // 27 bytes of argv[0] + 63 * 1024 = 64539; the 64th would pass 65536.
  ASSERT_EQ(cmds[0].argv.size(), 63u);
  for (size_t i = 0; i < cmds[0].argv.size(); ++i) EXPECT_EQ(cmds[0].argv[i], argv[i + 1]);
}

TEST(Command, FailedExecsCanBeLeftOutToSpareTheHost) {
  REQUIRE_ROOT();
  EngineOptions options;
  options.root_path = "/vigil-test-nofail-" + std::to_string(getpid());
  options.failed_execs = false;
  auto engine = Engine::start(options);
  ASSERT_TRUE(engine.ok()) << engine.error().message;
  std::vector<CommandEvent> seen;
  std::mutex mu;
  auto session = (*engine)->open_session({new_session_id(), KindSet(1u)}, [&](const Event& e) {
    std::lock_guard lock(mu);
    if (auto* c = std::get_if<CommandEvent>(&e.body)) seen.push_back(*c);
  });
  ASSERT_TRUE(session.ok()) << session.error().message;
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c", "/nonexistent/vigil-missing; /bin/true x"};
  auto child = launch(**session, spec);
  ASSERT_TRUE(child.ok()) << child.error().message;
  waitpid(child->pid, nullptr, 0);
  ASSERT_TRUE((*engine)->close_session(**session).ok());
  engine->reset();
  rmdir(("/cgroup2" + options.root_path).c_str());
  ASSERT_EQ(seen.size(), 2u);  // sh and true; the failed exec is not recorded
  EXPECT_EQ(seen[0].path, "/bin/sh");
  EXPECT_EQ(seen[1].path, "/bin/true");
  EXPECT_EQ(seen[1].argv, std::vector<std::string>{"x"});
}

TEST(Disk, OpensCarryPathFlagsAndResult) {
  REQUIRE_ROOT();
  std::string created = temp_path("created");
  unlink(created.c_str());
  auto r = sh("cat /etc/hostname >/dev/null; " + kHelper + " open /nonexistent/vigil-file 0; " +
              kHelper + " open " + created + " " + std::to_string(O_CREAT | O_WRONLY));
  unlink(created.c_str());

  auto host = r.opened("/etc/hostname");
  ASSERT_EQ(host.size(), 1u);
  EXPECT_EQ(host[0].flags & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(host[0].return_code, 0);

  auto missing = r.opened("/nonexistent/vigil-file");
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0].return_code, -2);

  auto made = r.opened(created);
  ASSERT_EQ(made.size(), 1u);
  EXPECT_EQ(made[0].flags, O_CREAT | O_WRONLY);
  EXPECT_EQ(made[0].return_code, 0);
  EXPECT_EQ(made[0].mode, 0644u);
}

TEST(Network, ConnectsOverIPv4AndIPv6AreExact) {
  REQUIRE_ROOT();
  Listener v4("127.0.0.1"), v6("::1");
  auto r = sh(kHelper + " connect 127.0.0.1 " + std::to_string(v4.port()) + "; " + kHelper +
              " connect ::1 " + std::to_string(v6.port()) + "; " + kHelper +
              " connect ::ffff:127.0.0.1 " + std::to_string(v4.port()));
  auto c = r.connects();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].version, 4);
  EXPECT_EQ(c[0].src_addr, "127.0.0.1");
  EXPECT_EQ(c[0].dst_addr, "127.0.0.1");
  EXPECT_EQ(c[0].dst_port, v4.port());
  EXPECT_EQ(c[1].version, 6);
  EXPECT_EQ(c[1].src_addr, "::1");
  EXPECT_EQ(c[1].dst_addr, "::1");
  EXPECT_EQ(c[1].dst_port, v6.port());
  // A v4-mapped peer on an IPv6 socket is IPv4 on the wire.
  EXPECT_EQ(c[2].version, 4);
  EXPECT_EQ(c[2].src_addr, "127.0.0.1");
  EXPECT_EQ(c[2].dst_addr, "127.0.0.1");
  EXPECT_EQ(c[2].dst_port, v4.port());
  for (const auto& n : c) {
    EXPECT_EQ(n.operation, 0);
    EXPECT_EQ(n.action, 0);
  }
}

TEST(Sessions, ProcessesOutsideTheSessionNeverAppear) {
  REQUIRE_ROOT();
  std::string marker = temp_path("outside-marker");
  { std::ofstream(marker) << "x"; }
  Listener v4("127.0.0.1");
  std::atomic<bool> stop{false};
  std::vector<pid_t> outside;
  std::mutex mu;
  std::thread noise([&] {
    while (!stop) {
      pid_t p = fork();
      if (p == 0) {
        execl(kHelper.c_str(), "vigil_test_helper", "storm", "1", marker.c_str(),
              std::to_string(v4.port()).c_str(), static_cast<char*>(nullptr));
        _exit(127);
      }
      { std::lock_guard lock(mu); outside.push_back(p); }
      waitpid(p, nullptr, 0);
    }
  });
  auto r = sh("for i in 1 2 3 4 5; do cat /etc/hostname >/dev/null; " + kHelper +
              " connect 127.0.0.1 " + std::to_string(v4.port()) + "; done");
  stop = true;
  noise.join();
  unlink(marker.c_str());
  ASSERT_GT(outside.size(), 0u);
  EXPECT_EQ(r.opened("/etc/hostname").size(), 5u);
  EXPECT_EQ(r.connects().size(), 5u);
  EXPECT_EQ(r.opened(marker).size(), 0u);
  for (const auto& e : r.events)
    EXPECT_EQ(std::count(outside.begin(), outside.end(), static_cast<pid_t>(e.process.pid)), 0)
        << "event from outside process " << e.process.pid;
}

TEST(Sessions, DiskOnlySessionHasNoCommandOrNetworkEvents) {
  REQUIRE_ROOT();
  Listener v4("127.0.0.1");
  auto r = sh("ls / >/dev/null; cat /etc/hostname >/dev/null; " + kHelper +
                  " connect 127.0.0.1 " + std::to_string(v4.port()),
              KindSet(1u << static_cast<int>(Kind::disk)));
  EXPECT_EQ(r.commands().size(), 0u);
  EXPECT_EQ(r.connects().size(), 0u);
  EXPECT_EQ(r.opened("/etc/hostname").size(), 1u);
  EXPECT_EQ(r.summary.recorded[Kind::command], 0u);
  EXPECT_GT(r.summary.recorded[Kind::disk], 0u);
}

TEST(Sessions, AProcessThatLeavesTheCgroupIsStillRecorded) {
  REQUIRE_ROOT();
  ASSERT_TRUE(g_engine->has_audit_session()) << "this kernel has no audit session ids";
  std::string elsewhere = "/cgroup2/vigil-escape-" + std::to_string(getpid());
  mkdir(elsewhere.c_str(), 0755);
  std::string marker = temp_path("escaped");
  auto r = record({kHelper, "join-cgroup", elsewhere, "/bin/sh", "-c",
                   "cat /proc/self/cgroup >/dev/null; " + kHelper + " open " + marker + " 0"});
  rmdir(elsewhere.c_str());
  auto cats = r.ran("cat");
  ASSERT_EQ(cats.size(), 1u);
  ASSERT_EQ(r.opened(marker).size(), 1u);
  ASSERT_NE(r.session_cgroup_id, 0u);
  // The open happened outside the session's cgroup (so only the audit
  // session id can have tied it to the session), the helper's own exec inside.
  for (const auto& e : r.events) {
    if (auto* d = std::get_if<DiskEvent>(&e.body); d && d->path == marker) {
      EXPECT_NE(e.process.cgroup_id, r.session_cgroup_id) << "the open was in the session cgroup";
    }
    if (auto* c = std::get_if<CommandEvent>(&e.body);
        c && c->path == kHelper && !c->argv.empty() && c->argv[0] == "join-cgroup") {
      EXPECT_EQ(e.process.cgroup_id, r.session_cgroup_id);
    }
  }
}

TEST(Sessions, HooksAreAttachedOnlyWhileASessionNeedsThem) {
  REQUIRE_ROOT();
  g_engine->settle();
  EXPECT_FALSE(g_engine->attached(Kind::disk));
  auto session = g_engine->open_session({new_session_id(), KindSet(1u << 1)}, [](const Event&) {});
  ASSERT_TRUE(session.ok());
  EXPECT_TRUE(g_engine->attached(Kind::disk));
  EXPECT_FALSE(g_engine->attached(Kind::command));
  std::string dir = (*session)->cgroup_dir();
  ASSERT_TRUE(g_engine->close_session(**session).ok());
  g_engine->settle();
  EXPECT_FALSE(g_engine->attached(Kind::disk));
  struct stat st{};
  EXPECT_NE(stat(dir.c_str(), &st), 0) << dir << " was left behind";
}

// close_session ends a session now: what still runs in it is killed (it
// could not be recorded once the session is gone), never moved out.
TEST(Sessions, CloseSessionKillsWhatStillRuns) {
  REQUIRE_ROOT();
  auto session = g_engine->open_session({new_session_id(), KindSet::all()}, [](const Event&) {});
  ASSERT_TRUE(session.ok());
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c", "sleep 30 & echo started"};
  auto child = launch(**session, spec);
  ASSERT_TRUE(child.ok()) << child.error().message;
  waitpid(child->pid, nullptr, 0);
  std::string dir = (*session)->cgroup_dir();
  auto left = cgroup::procs(dir);
  ASSERT_EQ(left.size(), 1u);
  auto summary = g_engine->close_session(**session);
  ASSERT_TRUE(summary.ok()) << summary.error().message;
  EXPECT_EQ(summary->leftover_processes, 1u);
  EXPECT_EQ(summary->leftovers, SessionSummary::Leftovers::killed);
  struct stat st{};
  EXPECT_NE(stat(dir.c_str(), &st), 0);
  // Killed: gone, or a zombie until init reaps it.
  std::ifstream status("/proc/" + std::to_string(left[0]) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("State:", 0) == 0) {
      EXPECT_NE(line.find("Z"), std::string::npos) << line;
    }
}

TEST(Load, TenParallelWorkersLoseNothing) {
  REQUIRE_ROOT();
  std::string marker = temp_path("storm");
  { std::ofstream(marker) << "x"; }
  Listener v4("127.0.0.1");
  std::string port = std::to_string(v4.port());
  std::string script;
  for (int i = 0; i < 10; ++i) script += kHelper + " storm 200 " + marker + " " + port + " & ";
  script += "wait";
  auto r = sh(script);
  unlink(marker.c_str());
  EXPECT_EQ(r.summary.lost.total(), 0u);
  EXPECT_EQ(r.ran("true").size(), 2000u);
  EXPECT_EQ(r.opened(marker).size(), 2000u);
  EXPECT_EQ(r.connects().size(), 2000u);
}

// The ring reader wins the CPU over every ordinary task (SCHED_FIFO): at a
// nice of 0, 1,000 sessions starting programs at once kept it off the CPU
// until the disk ring overflowed (bench/session_scale.py lost 10,176 opens);
// the worker, whose lateness only grows the queue, stays an ordinary task.
TEST(Engine, TheRingReaderRunsBeforeOrdinaryTasksAndTheWorkerDoesNot) {
  ASSERT_NE(g_engine, nullptr) << g_start_error;
  auto policy_of = [](const std::string& name) -> std::string {
    for (auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(t.path() / "comm");
      std::string c;
      std::getline(comm, c);
      if (c != name) continue;
      std::ifstream sched(t.path() / "sched");
      for (std::string line; std::getline(sched, line);)
        if (line.rfind("policy", 0) == 0) return line.substr(line.find(':') + 1);
    }
    return "no thread named " + name;
  };
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(' '));
    return s;
  };
  EXPECT_EQ(trim(policy_of("vigil-reader")), "1") << "SCHED_FIFO is policy 1";
  EXPECT_EQ(trim(policy_of("vigil-worker")), "0") << "SCHED_OTHER is policy 0";
}
