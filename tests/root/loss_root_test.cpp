// Root tier: losses forced at each place the engine can lose an event, under
// a storm of known size. The README promises that nothing is lost without a
// count; these tests fail when a loss goes uncounted, when it is counted
// under the wrong kind, or when an event is counted twice.
//
// What the storm did is measured once with an engine that loses nothing
// (asserted), then the same storm runs against an engine made to lose:
// per kind, recorded + lost must equal what the storm did, and lost > 0.
//
// The places:
//   - a full ring: 1-page rings, the reader kept off the CPU while the storm
//     runs (the storm is SCHED_FIFO on the CPU the engine's threads are
//     pinned to, so no wake-up can let the reader in before it is done);
//   - a full queue: a sink that blocks until the storm is over, a queue
//     limit of a few records;
// The command ring cannot be made smaller than one record of the largest
// size (32 pages: the engine raises it), so the full-ring storms exec with
// an argument of 4 KiB: 150 of them are 600 KiB, far more than 128 KiB.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>

#include "engine/engine.hpp"
#include "engine/launch.hpp"

using namespace vigil;

namespace {

const std::string kHelper = VIGIL_TEST_HELPER;
int g_counter = 0;

std::string unique(const std::string& what) {
  return what + "-" + std::to_string(getpid()) + "-" + std::to_string(++g_counter);
}

// A loopback listener with a backlog larger than any storm here: connects
// complete in the kernel without an accept.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), len) || listen(fd_, 4096) ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len))
      ADD_FAILURE() << "loopback listener: " << strerror(errno);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// An engine of its own (its own cgroup root), its threads pinned to `cpu`
// when cpu >= 0 (threads inherit the affinity of the thread that starts them).
class OwnEngine {
 public:
  OwnEngine(EngineOptions options, int cpu) {
    options.root_path = "/" + unique("vigil-loss");
    root_ = options.cgroup_path + options.root_path;
    cpu_set_t saved;
    sched_getaffinity(0, sizeof(saved), &saved);
    if (cpu >= 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      EXPECT_EQ(sched_setaffinity(0, sizeof(one), &one), 0) << strerror(errno);
    }
    auto engine = Engine::start(options);
    sched_setaffinity(0, sizeof(saved), &saved);
    if (engine.ok()) engine_ = std::move(engine.value());
    else error_ = engine.error().message;
  }
  ~OwnEngine() {
    engine_.reset();
    rmdir(root_.c_str());
    rmdir(("/run/vigil/sessions" + root_).c_str());
  }
  Engine* get() const { return engine_.get(); }
  const std::string& error() const { return error_; }

 private:
  std::unique_ptr<Engine> engine_;
  std::string root_, error_;
};

struct StormRun {
  SessionSummary summary;
  int exit_status = -1;
  KindCounts seen;              // events the sink got, whole or not
  uint64_t without_args = 0;    // commands delivered without path and argv
  std::vector<Event> events;
};

// Runs `vigil_test_helper fifo CPU vigil_test_helper storm N MARKER PORT` as
// the first process of a session of `engine`. With `block_sink`, the sink
// holds the first event it gets until the storm has exited.
StormRun storm(Engine& engine, int cpu, int n, const std::string& marker, int port,
               bool block_sink = false, int exec_arg_bytes = 0) {
  StormRun out;
  std::mutex mu;
  std::condition_variable cv;
  bool storm_over = false;
  auto session = engine.open_session({unique("s"), KindSet::all()}, [&](const Event& e) {
    std::unique_lock lock(mu);
    if (block_sink) cv.wait(lock, [&] { return storm_over; });
    ++out.seen[e.kind()];
    if (auto* c = std::get_if<CommandEvent>(&e.body); c && c->args_lost) ++out.without_args;
    out.events.push_back(e);
  });
  EXPECT_TRUE(session.ok()) << session.error().message;
  if (!session.ok()) return out;
  LaunchSpec spec;
  spec.argv = {kHelper, "fifo", std::to_string(cpu), kHelper, "storm", std::to_string(n), marker,
               std::to_string(port)};
  if (exec_arg_bytes) spec.argv.push_back(std::to_string(exec_arg_bytes));
  auto child = launch(**session, spec);
  EXPECT_TRUE(child.ok()) << child.error().message;
  if (child.ok()) {
    EXPECT_EQ(waitpid(child->pid, &out.exit_status, 0), child->pid);
  }
  {
    std::lock_guard lock(mu);
    storm_over = true;
  }
  cv.notify_all();
  auto summary = engine.close_session(**session);
  EXPECT_TRUE(summary.ok()) << summary.error().message;
  if (summary.ok()) out.summary = *summary;
  return out;
}

// The storms' exec argument for the full-ring tests: 4 KiB.
constexpr int kBigArg = 4096;

size_t count_opens_of(const StormRun& r, const std::string& path) {
  size_t n = 0;
  for (const auto& e : r.events)
    if (auto* d = std::get_if<DiskEvent>(&e.body); d && d->path == path) ++n;
  return n;
}

class Loss : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the root tier needs root (CAP_BPF, CAP_SYS_ADMIN, SCHED_FIFO); "
                                "run 'make test' as root";
    marker_ = "/tmp/" + unique("vigil-loss-marker");
    std::ofstream(marker_) << "x";
  }
  void TearDown() override { unlink(marker_.c_str()); }

  // What a storm of n steps does, per kind, measured with default options
  // and the engine's threads free to run anywhere: nothing may be lost.
  KindCounts what_the_storm_does(int n, int exec_arg_bytes = 0) {
    OwnEngine lossless(EngineOptions{}, -1);
    EXPECT_NE(lossless.get(), nullptr) << lossless.error();
    if (!lossless.get()) return {};
    StormRun r = storm(*lossless.get(), -1, n, marker_, listener_.port(), false, exec_arg_bytes);
    EXPECT_EQ(r.exit_status, 0) << "the storm itself failed";
    EXPECT_EQ(r.summary.lost.total(), 0u) << "the baseline run lost events";
    // Its size is known: the wrapper and the helper, then n of each.
    EXPECT_EQ(count_opens_of(r, marker_), static_cast<size_t>(n));
    // Each connect and its result (established).
    EXPECT_EQ(r.summary.recorded[Kind::network], 2 * static_cast<uint64_t>(n));
    EXPECT_EQ(r.summary.recorded[Kind::command], static_cast<uint64_t>(n) + 2);
    return r.summary.recorded;
  }

  static void expect_accounted(const StormRun& r, const KindCounts& did, KindSet forced) {
    EXPECT_EQ(r.exit_status, 0) << "the storm itself failed";
    for (int k = 0; k < kKindCount; ++k) {
      Kind kind = static_cast<Kind>(k);
      SCOPED_TRACE(std::string("kind ") + std::string(kind_name(kind)));
      EXPECT_EQ(r.summary.recorded[kind] + r.summary.lost[kind], did[kind])
          << "recorded " << r.summary.recorded[kind] << " + lost " << r.summary.lost[kind];
      if (forced.has(kind)) {
        EXPECT_GT(r.summary.lost[kind], 0u) << "no loss was forced";
      }
    }
  }

  // The CPU this test's storms and pinned engines share.
  static int storm_cpu() {
    cpu_set_t set;
    sched_getaffinity(0, sizeof(set), &set);
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) return c;
    return 0;
  }

  std::string marker_;
  Listener listener_;
};

}  // namespace

TEST_F(Loss, FullRingsAreCountedPerKind) {
  const int n = 150;
  KindCounts did = what_the_storm_does(n, kBigArg);
  EngineOptions options;
  options.ring_pages = {1, 1, 1};
  int cpu = storm_cpu();
  OwnEngine small(options, cpu);
  ASSERT_NE(small.get(), nullptr) << small.error();
  StormRun r = storm(*small.get(), cpu, n, marker_, listener_.port(), false, kBigArg);
  expect_accounted(r, did, KindSet::all());
  // What was recorded reached the sink whole: every exec of the storm that
  // was recorded carries its 4 KiB argument.
  for (int k = 0; k < kKindCount; ++k)
    EXPECT_EQ(r.seen[static_cast<Kind>(k)], r.summary.recorded[static_cast<Kind>(k)]);
  size_t whole = 0;
  for (const auto& e : r.events)
    if (auto* c = std::get_if<CommandEvent>(&e.body); c && c->path == "/bin/true") {
      EXPECT_EQ(c->argv, std::vector<std::string>{std::string(kBigArg, 'b')});
      EXPECT_FALSE(c->args_lost || c->argv_truncated);
      ++whole;
    }
  EXPECT_GT(whole, 0u) << "no exec of the storm was recorded";
}

// The kernel counts per CPU (session_counters is a per-CPU array): a full
// ring on any CPU must show in the totals, so the storm and the engine are
// pinned to each CPU in turn, and each run must account for every event.
TEST_F(Loss, FullRingsOnEveryCpuAreSummed) {
  const int n = 150;
  KindCounts did = what_the_storm_does(n, kBigArg);
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  int cpus = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    SCOPED_TRACE("storm on CPU " + std::to_string(cpu));
    ++cpus;
    EngineOptions options;
    options.ring_pages = {1, 1, 1};
    OwnEngine small(options, cpu);
    ASSERT_NE(small.get(), nullptr) << small.error();
    StormRun r = storm(*small.get(), cpu, n, marker_, listener_.port(), false, kBigArg);
    expect_accounted(r, did, KindSet::all());
  }
  EXPECT_GE(cpus, 2) << "one CPU only: the sum over CPUs was not exercised";
}

TEST_F(Loss, AFullQueueBehindABlockedSinkIsCounted) {
  const int n = 1000;
  KindCounts did = what_the_storm_does(n);
  EngineOptions options;
  options.max_queued_bytes = 8192;  // a few dozen records; a 4 KiB path still fits
  OwnEngine small(options, -1);
  ASSERT_NE(small.get(), nullptr) << small.error();
  StormRun r = storm(*small.get(), -1, n, marker_, listener_.port(), /*block_sink=*/true);
  expect_accounted(r, did, KindSet::all());
  for (int k = 0; k < kKindCount; ++k)
    EXPECT_EQ(r.seen[static_cast<Kind>(k)], r.summary.recorded[static_cast<Kind>(k)]);
}

// The command ring is never smaller than one record of the largest size:
// asked for 1 page it takes the minimum (32 pages), and says so.
TEST_F(Loss, ACommandRingTooSmallForTheLargestRecordIsRaisedToTheMinimum) {
  EngineOptions options;
  options.ring_pages = {1, 1, 1};
  OwnEngine small(options, -1);
  ASSERT_NE(small.get(), nullptr) << small.error();
  EXPECT_EQ(small.get()->ring_pages()[0], kMinCommandRingPages);
  EXPECT_EQ(kMinCommandRingPages, 32u);
  EXPECT_EQ(small.get()->ring_pages()[1], 1u) << "only the command ring has a minimum";
  options.ring_pages = {100, 1, 1};
  OwnEngine larger(options, -1);
  ASSERT_NE(larger.get(), nullptr) << larger.error();
  EXPECT_EQ(larger.get()->ring_pages()[0], 128u) << "a larger ring is rounded up, not lowered";
}
