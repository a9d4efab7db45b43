// Root tier: exec records carry their argv and paths in the command ring.
// A burst of execs from many processes at once is recorded whole with
// nothing lost; argv of exactly 64 KiB comes back whole; the smallest ring
// the engine allows still takes an exec of the largest size.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "engine/engine.hpp"
#include "engine/launch.hpp"
#include "engine_env.hpp"

extern "C" {
#include <linux/types.h>
#include "vigil_events.h"
}

using namespace vigil;

namespace {

const std::string kHelper = VIGIL_TEST_HELPER;

using vigil::testing::g_engine;
using vigil::testing::g_start_error;

// The default options: the ring size a node gets without a config.
VIGIL_ROOT_ENGINE("execring", [](EngineOptions&) {});

int g_sessions = 0;

struct Recorded {
  std::vector<CommandEvent> commands;
  SessionSummary summary;
  int exit_status = -1;
};

// Runs argv as the first process of a new session of `engine` that records
// commands; `launches` false: the exec is expected to fail.
Recorded record(Engine& engine, std::vector<std::string> argv, bool launches = true) {
  Recorded out;
  std::mutex mu;
  std::string id = "x" + std::to_string(getpid()) + "-" + std::to_string(++g_sessions);
  auto session = engine.open_session({id, KindSet(1u << static_cast<int>(Kind::command))},
                                     [&](const Event& e) {
                                       std::lock_guard lock(mu);
                                       if (auto* c = std::get_if<CommandEvent>(&e.body))
                                         out.commands.push_back(*c);
                                     });
  EXPECT_TRUE(session.ok()) << session.error().message;
  if (!session.ok()) return out;
  LaunchSpec spec;
  spec.argv = std::move(argv);
  auto child = launch(**session, spec);
  EXPECT_EQ(child.ok(), launches) << (child.ok() ? "it launched" : child.error().message);
  if (child.ok()) {
    EXPECT_EQ(waitpid(child->pid, &out.exit_status, 0), child->pid);
    EXPECT_TRUE(WIFEXITED(out.exit_status) && WEXITSTATUS(out.exit_status) == 0)
        << "the session's first process ended with wait status " << out.exit_status;
  }
  auto summary = engine.close_session(**session);
  EXPECT_TRUE(summary.ok()) << summary.error().message;
  if (summary.ok()) out.summary = *summary;
  return out;
}

#define REQUIRE_ENGINE()                                                           \
  do {                                                                             \
    ASSERT_EQ(geteuid(), 0u) << "the root tier needs root (CAP_BPF, CAP_SYS_ADMIN); " \
                                "run 'make test' as root";                         \
    ASSERT_NE(g_engine, nullptr) << "the engine did not start: " << g_start_error; \
  } while (0)

// argv of `total` bytes (NULs included): argv[0], then arguments of 1023
// bytes and one last argument that makes up the rest.
std::vector<std::string> argv_of(const std::string& zero, size_t total) {
  std::vector<std::string> argv{zero};
  size_t used = zero.size() + 1;
  for (int i = 0; used + 1024 < total; ++i, used += 1024)
    argv.push_back(std::string(1023, 'a' + i % 26));
  argv.push_back(std::string(total - used - 1, 'z'));
  return argv;
}

size_t bytes_of(const std::vector<std::string>& argv) {
  size_t n = 0;
  for (const auto& a : argv) n += a.size() + 1;
  return n;
}

}  // namespace

// 64 processes wait on one pipe, then each runs /bin/true 50 times, all at
// once: every exec is in the session's record with its argv, exactly once,
// and none is lost. (With the argument store of schema 3, 256 entries, the
// same burst lost execs: see docs/benchmarks-execring.md.)
TEST(ExecRing, ABurstFromManyProcessesAtOnceIsRecordedWholeWithNothingLost) {
  REQUIRE_ENGINE();
  const int n = 64, m = 50;
  const std::string tag = "vigil-burst-" + std::to_string(getpid());
  Recorded r = record(*g_engine, {kHelper, "exec-burst", std::to_string(n), std::to_string(m), tag});
  std::map<std::pair<int, int>, int> seen;
  size_t record_bytes = 0, burst = 0;
  for (const auto& c : r.commands) {
    if (c.path != "/bin/true") continue;
    ++burst;
    ASSERT_EQ(c.argv.size(), 3u) << "an exec of the burst without its argv";
    EXPECT_EQ(c.argv[0], tag);
    EXPECT_FALSE(c.args_lost || c.argv_truncated);
    ++seen[{std::stoi(c.argv[1]), std::stoi(c.argv[2])}];
    // What its record took in the ring: header, fixed part, argv, both paths.
    record_bytes += 8 + offsetof(vigil_exec_record, data) + bytes_of({"true"}) +
                    bytes_of(c.argv) + c.path.size() + 1 + c.kernel_path.size() + 1;
  }
  EXPECT_EQ(r.summary.lost[Kind::command], 0u);
  EXPECT_EQ(burst, static_cast<size_t>(n * m));
  EXPECT_EQ(seen.size(), static_cast<size_t>(n * m)) << "an exec recorded twice, or not at all";
  for (const auto& [who, count] : seen) EXPECT_EQ(count, 1) << who.first << " " << who.second;
  // The helper and the burst.
  EXPECT_EQ(r.summary.recorded[Kind::command], static_cast<uint64_t>(n * m + 1));
  if (burst) RecordProperty("mean_exec_record_bytes", static_cast<int>(record_bytes / burst));
}

// The 64 KiB limit is of argv with its NULs: exactly 65536 bytes come back
// whole; one byte more and the last argument is dropped, flagged.
TEST(ExecRing, AnArgvOfExactly64KiBComesBackWholeAndOneByteMoreIsCut) {
  REQUIRE_ENGINE();
  auto argv = argv_of("/bin/true", VIGIL_ARGV_MAX);
  ASSERT_EQ(bytes_of(argv), static_cast<size_t>(VIGIL_ARGV_MAX));
  Recorded r = record(*g_engine, argv);
  ASSERT_EQ(r.commands.size(), 1u);
  EXPECT_FALSE(r.commands[0].argv_truncated);
  EXPECT_EQ(r.commands[0].argv, std::vector<std::string>(argv.begin() + 1, argv.end()));
  EXPECT_EQ(r.summary.lost.total(), 0u);

  auto longer = argv_of("/bin/true", VIGIL_ARGV_MAX + 1);
  Recorded cut = record(*g_engine, longer);
  ASSERT_EQ(cut.commands.size(), 1u);
  EXPECT_TRUE(cut.commands[0].argv_truncated);
  EXPECT_EQ(cut.commands[0].argv, std::vector<std::string>(longer.begin() + 1, longer.end() - 1));
  EXPECT_EQ(cut.summary.lost.total(), 0u) << "a cut argv is not a lost event";
}

// An engine asked for a 1-page command ring gets the minimum, and that ring
// takes an exec of the largest size: a 4095-byte path (the program copied
// there, so its kernel path is as long) and 64 KiB of argv.
TEST(ExecRing, TheSmallestRingTakesAnExecOfTheLargestSize) {
  ASSERT_EQ(geteuid(), 0u) << "the root tier needs root";
  EngineOptions options;
  options.root_path = "/vigil-execring-small-" + std::to_string(getpid());
  options.ring_pages = {1, 1, 1};
  auto engine = Engine::start(options);
  ASSERT_TRUE(engine.ok()) << engine.error().message;
  EXPECT_EQ((*engine)->ring_pages()[0], kMinCommandRingPages);
  // The largest record fits the ring, and would not fit one size below.
  EXPECT_LE(sizeof(vigil_exec_record) + 8, kMinCommandRingPages * 4096u);
  EXPECT_GT(sizeof(vigil_exec_record) + 8, kMinCommandRingPages * 4096u / 2);

  // A directory tree whose file has a name of VIGIL_PATH_MAX - 1 bytes.
  const std::string base = "/tmp/vigil-full-" + std::to_string(getpid());
  std::string path = base;
  ASSERT_EQ(mkdir(path.c_str(), 0755), 0) << strerror(errno);
  std::vector<std::string> dirs{path};
  while (VIGIL_PATH_MAX - 1 - path.size() > 256) {
    path += "/" + std::string(200, 'd');
    ASSERT_EQ(mkdir(path.c_str(), 0755), 0) << strerror(errno);
    dirs.push_back(path);
  }
  path += "/" + std::string(VIGIL_PATH_MAX - 1 - path.size() - 1, 't');
  ASSERT_EQ(path.size(), static_cast<size_t>(VIGIL_PATH_MAX - 1));
  {
    std::ifstream in("/bin/true", std::ios::binary);
    std::ofstream out(path, std::ios::binary);
    out << in.rdbuf();
  }
  ASSERT_EQ(chmod(path.c_str(), 0755), 0) << strerror(errno);

  auto argv = argv_of(path, VIGIL_ARGV_MAX);
  Recorded r = record(**engine, argv);
  unlink(path.c_str());
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) rmdir(it->c_str());
  engine.value().reset();
  rmdir(("/cgroup2" + options.root_path).c_str());

  ASSERT_EQ(r.commands.size(), 1u);
  const CommandEvent& c = r.commands[0];
  EXPECT_EQ(c.path, path);
  EXPECT_FALSE(c.path_truncated);
  EXPECT_EQ(c.kernel_path, path);
  EXPECT_FALSE(c.kernel_path_truncated);
  EXPECT_FALSE(c.argv_truncated);
  EXPECT_EQ(c.argv, std::vector<std::string>(argv.begin() + 1, argv.end()));
  EXPECT_EQ(r.summary.lost.total(), 0u);
  EXPECT_EQ(r.summary.recorded[Kind::command], 1u);
}
