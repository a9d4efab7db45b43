// Root tier: processes a session leaves running, through the engine's API.
// end_session keeps them recorded until the last one exits (then
// on_finished runs once with the totals), kills them under
// LeftoverPolicy::kill, and close_session kills them at any time.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <fstream>
#include <mutex>
#include <optional>

#include "../support/wait.hpp"
#include "engine/cgroup.hpp"
#include "engine/engine.hpp"
#include "engine/launch.hpp"

using namespace vigil;

namespace {

int g_counter = 0;

std::string new_id() { return "lo" + std::to_string(getpid()) + "-" + std::to_string(++g_counter); }

std::unique_ptr<Engine> start_engine(LeftoverPolicy policy) {
  EngineOptions options;
  options.root_path = "/vigil-leftover-test-" + std::to_string(getpid());
  options.leftovers = policy;
  auto engine = Engine::start(options);
  EXPECT_TRUE(engine.ok()) << engine.error().message;
  return engine.ok() ? std::move(engine.value()) : nullptr;
}

struct Events {
  std::mutex mu;
  std::vector<Event> all;
  size_t commands_named(const std::string& program) {
    std::lock_guard lock(mu);
    size_t n = 0;
    for (const auto& e : all)
      if (e.kind() == Kind::command && e.process.program == program) ++n;
    return n;
  }
};

struct Started {
  std::shared_ptr<Session> session;
  pid_t first = -1;
};

Started start(Engine& engine, Events& events, const std::string& script) {
  Started run;
  auto s = engine.open_session({new_id(), KindSet::all()}, [&events](const Event& e) {
    std::lock_guard lock(events.mu);
    events.all.push_back(e);
  });
  EXPECT_TRUE(s.ok()) << s.error().message;
  if (!s.ok()) return run;
  run.session = *s;
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  auto child = launch(*run.session, spec);
  EXPECT_TRUE(child.ok()) << child.error().message;
  if (child.ok()) {
    run.first = child->pid;
    int status;
    waitpid(run.first, &status, 0);
  }
  return run;
}

TEST(Leftovers, StayRecordedUntilTheLastExits) {
  ASSERT_EQ(geteuid(), 0u) << "the root tier needs root";
  Events events;  // before the engine: it may deliver events until it is gone
  auto engine = start_engine(LeftoverPolicy::record);
  ASSERT_TRUE(engine);
  // The leftover waits for a file the test creates after end_session, so
  // its exec happens after session.end by construction.
  std::string go = "/tmp/vigil-leftover-go-" + std::to_string(getpid());
  unlink(go.c_str());
  Started run = start(*engine, events,
                  "(while [ ! -e " + go + " ]; do sleep 0.01; done; exec /bin/true) & echo");
  ASSERT_TRUE(run.session);
  std::promise<SessionSummary> finished;
  int calls = 0;
  auto ended = engine->end_session(*run.session, [&](const SessionSummary& s) {
    ++calls;
    finished.set_value(s);
  });
  ASSERT_TRUE(ended.ok()) << ended.error().message;
  EXPECT_EQ(ended->leftovers, SessionSummary::Leftovers::running);
  EXPECT_GE(ended->leftover_processes, 1u);  // the subshell (and its sleep, at times)
  EXPECT_EQ(events.commands_named("true"), 0u);
  size_t before = ended->recorded.total();
  EXPECT_EQ(ended->lost.total(), 0u);
  // A second end is refused: the session is no longer open.
  EXPECT_FALSE(engine->end_session(*run.session).ok());
  { std::ofstream(go) << ""; }
  auto done = finished.get_future();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "on_finished never ran";
  SessionSummary total = done.get();
  unlink(go.c_str());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(total.leftovers, SessionSummary::Leftovers::exited);
  EXPECT_EQ(total.leftover_processes, ended->leftover_processes);
  EXPECT_EQ(events.commands_named("true"), 1u);
  EXPECT_GT(total.recorded.total(), before);
  EXPECT_EQ(total.recorded.total(), events.all.size());
  EXPECT_EQ(total.lost.total(), 0u);
  // Closed: the cgroup is gone and closing again is refused.
  EXPECT_FALSE(cgroup::populated(run.session->cgroup_dir()).ok());
  EXPECT_FALSE(engine->close_session(*run.session).ok());
}

TEST(Leftovers, KillPolicyKillsAtTheEnd) {
  ASSERT_EQ(geteuid(), 0u) << "the root tier needs root";
  Events events;  // before the engine: it may deliver events until it is gone
  auto engine = start_engine(LeftoverPolicy::kill);
  ASSERT_TRUE(engine);
  Started run = start(*engine, events, "sleep 300 & sleep 300 & echo");
  ASSERT_TRUE(run.session);
  auto procs = cgroup::procs(run.session->cgroup_dir());
  ASSERT_EQ(procs.size(), 2u);
  bool called = false;
  auto ended = engine->end_session(*run.session, [&](const SessionSummary&) { called = true; });
  ASSERT_TRUE(ended.ok()) << ended.error().message;
  EXPECT_EQ(ended->leftovers, SessionSummary::Leftovers::killed);
  EXPECT_EQ(ended->leftover_processes, 2u);
  EXPECT_FALSE(called);  // closed at once: nothing follows
  for (pid_t p : procs) EXPECT_FALSE(vigil::testing::running(p)) << p;
}

TEST(Leftovers, CloseSessionKillsLingeringOnesAndRunsOnFinished) {
  ASSERT_EQ(geteuid(), 0u) << "the root tier needs root";
  Events events;  // before the engine: it may deliver events until it is gone
  auto engine = start_engine(LeftoverPolicy::record);
  ASSERT_TRUE(engine);
  Started run = start(*engine, events, "setsid -f sleep 300; echo");
  ASSERT_TRUE(run.session);
  auto procs = cgroup::procs(run.session->cgroup_dir());
  ASSERT_EQ(procs.size(), 1u);
  std::optional<SessionSummary> finished;
  auto ended = engine->end_session(*run.session, [&](const SessionSummary& s) { finished = s; });
  ASSERT_TRUE(ended.ok());
  ASSERT_EQ(ended->leftovers, SessionSummary::Leftovers::running);
  auto closed = engine->close_session(*run.session);
  ASSERT_TRUE(closed.ok()) << closed.error().message;
  ASSERT_TRUE(finished.has_value()) << "on_finished did not run before close_session returned";
  EXPECT_EQ(finished->leftovers, SessionSummary::Leftovers::killed);
  EXPECT_EQ(closed->leftovers, SessionSummary::Leftovers::killed);
  EXPECT_FALSE(vigil::testing::running(procs[0])) << "setsid -f sleep 300 survived close_session";
}

// The engine's end kills lingering sessions too (and runs their on_finished):
// nothing a session started runs on after its recorder.
TEST(Leftovers, EngineShutdownKillsLingeringSessions) {
  ASSERT_EQ(geteuid(), 0u) << "the root tier needs root";
  Events events;  // before the engine: it may deliver events until it is gone
  auto engine = start_engine(LeftoverPolicy::record);
  ASSERT_TRUE(engine);
  Started run = start(*engine, events, "sleep 300 & echo");
  ASSERT_TRUE(run.session);
  auto procs = cgroup::procs(run.session->cgroup_dir());
  ASSERT_EQ(procs.size(), 1u);
  std::optional<SessionSummary> finished;
  ASSERT_TRUE(engine->end_session(*run.session, [&](const SessionSummary& s) { finished = s; }).ok());
  engine.reset();
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ(finished->leftovers, SessionSummary::Leftovers::killed);
  EXPECT_FALSE(vigil::testing::running(procs[0])) << "sleep 300 survived the engine";
}

}  // namespace

namespace {

pid_t read_pid_from(int fd) {
  pid_t pid = -1;
  return read(fd, &pid, sizeof pid) == sizeof pid ? pid : -1;
}

}  // namespace

// A launch's child holds a copy of every fd of its recorder until its exec:
// other launches' pipes and the pipe whose end tells the engine's guard that
// the recorder died. A recorder killed while a child was between fork and
// exec left that child waiting for ever, the guard's pipe held open, and so
// the session processes the guard should kill ran on (seen: a node stopped
// with 1,000 live sessions left 54 of their processes and two such children
// running). The child must die with the thread that started it.
TEST(Leftovers, AChildBetweenForkAndExecDiesWithItsRecorder) {
  ASSERT_EQ(geteuid(), 0u) << "needs root (a fresh audit session id for the child)";
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);  // the orphan is ours to reap
  int guard[2], report[2];
  ASSERT_EQ(pipe2(guard, O_CLOEXEC), 0);  // stands for the engine guard's pipe
  ASSERT_EQ(pipe(report), 0);
  pid_t recorder = fork();
  ASSERT_GE(recorder, 0);
  if (recorder == 0) {
    close(guard[0]);
    close(report[0]);
    int out = report[1];
    LaunchSpec spec;
    spec.argv = {"/bin/true"};
    // Runs in the launched child after `go`, before its exec: it says its
    // pid and stays there.
    spec.child_setup = [out] {
      pid_t me = getpid();
      (void)!write(out, &me, sizeof me);
      for (;;) pause();
    };
    (void)launch_unrecorded(spec);  // blocks: the child never execs
    _exit(0);
  }
  close(guard[1]);
  close(report[1]);
  pid_t child = read_pid_from(report[0]);
  close(report[0]);
  ASSERT_GT(child, 0) << "the launched child never reached its set-up";
  kill(recorder, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(recorder, &status, 0), recorder);
  // The recorder is gone: its child must follow, and with it the last copy
  // of the guard pipe's write end.
  bool child_gone = vigil::testing::eventually([&] { return waitpid(child, &status, WNOHANG) == child; });
  pollfd p{guard[0], POLLIN, 0};
  bool guard_told = poll(&p, 1, child_gone ? 1000 : 0) == 1 && (p.revents & POLLHUP);
  if (!child_gone) kill(child, SIGKILL), waitpid(child, &status, 0);
  close(guard[0]);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  EXPECT_TRUE(child_gone) << "a launched child outlived its recorder, waiting before its exec";
  EXPECT_TRUE(child_gone && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(guard_told) << "the guard pipe stayed open: a guard would never see the recorder die";
}
