// Root tier: the recorded-session unit (src/session) with a real engine, as
// `vigil record` and an SSH channel use it. session.end is written exactly
// once with the engine's totals; leftovers get exactly one
// session.leftovers_end, even after the unit's object is gone; kill_all ends
// everything the session runs, with or without an engine.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "../support/memory_log.hpp"
#include "../support/temp_dir.hpp"
#include "../support/wait.hpp"
#include "engine_env.hpp"
#include "session/recorded_session.hpp"

using namespace vigil;
using session::RecordedSession;
using Json = nlohmann::ordered_json;

namespace {

using vigil::testing::g_engine;
using vigil::testing::g_start_error;

VIGIL_ROOT_ENGINE("session", [](EngineOptions&) {});

#define REQUIRE_ENGINE()                                                           \
  do {                                                                             \
    ASSERT_EQ(geteuid(), 0u) << "the root tier needs root";                        \
    ASSERT_NE(g_engine, nullptr) << "the engine did not start: " << g_start_error; \
  } while (0)

class SessionRoot : public ::testing::Test {
 protected:
  session::Options options(Engine* engine, KindSet kinds = KindSet::all()) const {
    session::Options o;
    o.meta.cluster_name = "c";
    o.meta.server_hostname = "node";
    o.meta.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
    o.meta.login = "root";
    o.meta.user = "root";
    o.data_dir = dir_.path();
    o.engine = engine;
    o.kinds = kinds;
    return o;
  }
  std::unique_ptr<RecordedSession> open(session::Options o) {
    auto s = RecordedSession::open(log_, std::move(o));
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? std::move(s.value()) : nullptr;
  }
  static LaunchSpec sh(const std::string& script) {
    LaunchSpec spec;
    spec.argv = {"/bin/sh", "-c", script};
    return spec;
  }
  size_t count(const std::string& type) const { return log_.of(type).size(); }
  // The pid a session's script wrote to `file`, once it is there.
  static pid_t written_pid(const std::string& file) {
    pid_t pid = 0;
    EXPECT_TRUE(vigil::testing::eventually([&] {
      std::ifstream in(file);
      return bool(in >> pid);
    })) << file;
    return pid;
  }
  // kill_all(), then the first process is reaped dead of SIGKILL and so is `other`.
  static int kill_all_and_wait(RecordedSession& s, pid_t other) {
    s.kill_all();
    int status = s.wait();
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    EXPECT_TRUE(vigil::testing::eventually([&] { return !vigil::testing::running(other); }))
        << "pid " << other << " outlived kill_all";
    return status;
  }
  // What the session's JSON says it recorded, against what the log holds.
  void expect_counts_match(const Json& counted) const {
    EXPECT_EQ(counted["recorded_events"]["command"], count("session.command"));
    EXPECT_EQ(counted["recorded_events"]["disk"], count("session.disk"));
    EXPECT_EQ(counted["recorded_events"]["network"], count("session.network"));
  }

  vigil::test::TempDir dir_;
  vigil::test::MemoryLog log_;
};

TEST_F(SessionRoot, FinishWritesOneSessionEndWithTheEnginesTotals) {
  REQUIRE_ENGINE();
  auto s = open(options(g_engine, KindSet(0b001)));  // command
  ASSERT_TRUE(s);
  auto pid = s->launch(sh("/bin/true; /bin/true; exit 3"));
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  int status = s->wait();
  EXPECT_EQ(session::exit_code(status), 3);
  auto ending = s->finish(status);
  ASSERT_TRUE(ending.ok()) << ending.error().message;
  EXPECT_EQ(ending->leftovers, SessionSummary::Leftovers::none);
  EXPECT_FALSE(s->finish(status).ok()) << "a second finish is refused";
  s.reset();

  ASSERT_EQ(count("session.end"), 1u);
  EXPECT_EQ(log_.types().front(), "session.start");
  EXPECT_EQ(log_.types().back(), "session.end");
  Json end = log_.of("session.end")[0];
  EXPECT_EQ(count("session.command"), 3u) << "sh and two /bin/true";
  expect_counts_match(end);
  EXPECT_EQ(end["lost_events"], Json({{"command", 0}, {"disk", 0}, {"network", 0}}));
  EXPECT_EQ(end["enhanced_recording"], true);
  EXPECT_EQ(end["enhanced_recording_kinds"], Json::array({"command"}));
  EXPECT_FALSE(end.contains("error"));
  EXPECT_FALSE(end.contains("leftover_processes"));
  EXPECT_TRUE(log_.of("session.start")[0].contains("sealed")) << "the engine seals by default";
}

TEST_F(SessionRoot, AFailedLaunchInAnEngineSessionEndsWithTheError) {
  REQUIRE_ENGINE();
  const std::string missing = dir_.path() + "/no-such-program";
  auto s = open(options(g_engine));
  ASSERT_TRUE(s);
  LaunchSpec spec;
  spec.argv = {missing};
  auto pid = s->launch(spec);
  ASSERT_FALSE(pid.ok());
  int status = s->wait();
  EXPECT_EQ(session::exit_code(status), 127);
  ASSERT_TRUE(s->finish(status).ok());
  ASSERT_EQ(count("session.end"), 1u);
  Json end = log_.of("session.end")[0];
  EXPECT_EQ(end["error"], "cannot run the program " + missing + ": No such file or directory");
  EXPECT_EQ(end["enhanced_recording"], true);
  // The failed execve is itself recorded, and counted.
  EXPECT_EQ(count("session.command"), 1u);
  expect_counts_match(end);
}

TEST_F(SessionRoot, LeftoversEndOnceWithTheWholeSessionsTotalsAfterTheUnitIsGone) {
  REQUIRE_ENGINE();
  const std::string go = dir_.path() + "/go";
  auto s = open(options(g_engine, KindSet(0b001)));
  ASSERT_TRUE(s);
  auto pid = s->launch(sh("(while [ ! -e " + go + " ]; do sleep 0.01; done; exec /bin/true) & :"));
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  auto ending = s->finish(s->wait());
  ASSERT_TRUE(ending.ok()) << ending.error().message;
  ASSERT_EQ(ending->leftovers, SessionSummary::Leftovers::running);
  EXPECT_FALSE(s->recording_closed().ok()) << "the recording stays open for the leftovers";
  Json end = log_.of("session.end")[0];
  EXPECT_EQ(end["leftover_action"], "recorded");
  EXPECT_EQ(end["leftover_processes"], ending->leftover_processes);
  // The adapter goes (an SSH channel closes); the leftovers stay recorded.
  s.reset();
  EXPECT_EQ(count("session.leftovers_end"), 0u);
  { std::ofstream(go) << ""; }
  ASSERT_TRUE(vigil::testing::eventually([&] { return count("session.leftovers_end") > 0; }))
      << "no session.leftovers_end after the last leftover exited";
  EXPECT_EQ(count("session.end"), 1u);
  ASSERT_EQ(count("session.leftovers_end"), 1u);
  Json last = log_.of("session.leftovers_end")[0];
  EXPECT_EQ(log_.types().back(), "session.leftovers_end");
  EXPECT_EQ(last["killed"], false);
  expect_counts_match(last);  // the whole session's, the leftovers' /bin/true included
  EXPECT_GE(count("session.command"), 2u);
}

TEST_F(SessionRoot, KillLeftoversWritesTheirEndBeforeItReturns) {
  REQUIRE_ENGINE();
  auto s = open(options(g_engine, KindSet(0b001)));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->launch(sh("sleep 300 & :")).ok());
  auto ending = s->finish(s->wait());
  ASSERT_TRUE(ending.ok()) << ending.error().message;
  ASSERT_EQ(ending->leftovers, SessionSummary::Leftovers::running);
  EXPECT_FALSE(s->wait_leftovers(std::chrono::milliseconds(0)));
  s->kill_leftovers();
  EXPECT_TRUE(s->wait_leftovers(std::chrono::milliseconds(0)));
  ASSERT_EQ(count("session.leftovers_end"), 1u);
  EXPECT_EQ(log_.of("session.leftovers_end")[0]["killed"], true);
  EXPECT_TRUE(s->recording_closed().ok());
}

TEST_F(SessionRoot, KillAllEndsEverythingTheSessionRuns) {
  REQUIRE_ENGINE();
  const std::string pids = dir_.path() + "/pids";
  auto s = open(options(g_engine, KindSet(0b001)));
  ASSERT_TRUE(s);
  // A background sleep in a new process group of its own (setsid), which a
  // signal to the first process's group would miss.
  ASSERT_TRUE(s->launch(sh("setsid sleep 300 & echo $! > " + pids + "; exec sleep 300")).ok());
  int status = kill_all_and_wait(*s, written_pid(pids));
  auto ending = s->finish(status);
  ASSERT_TRUE(ending.ok()) << ending.error().message;
  EXPECT_NE(ending->leftovers, SessionSummary::Leftovers::running);
}

// enhanced_recording off: no engine session, so nothing the program does is
// an event, and kill_all still ends what it started (its process group).
TEST_F(SessionRoot, WithoutAnEngineOnlyTheSessionsOwnEventsAreWritten) {
  ASSERT_EQ(geteuid(), 0u) << "the root tier needs root (launch writes the loginuid)";
  const std::string pids = dir_.path() + "/pids";
  session::Options o = options(nullptr);
  o.exec_command = "sleeper";
  auto s = open(std::move(o));
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->enhanced());
  LaunchSpec spec = sh("/bin/true; cat /etc/hostname >/dev/null; sleep 300 & echo $! > " + pids +
                       "; exec sleep 300");
  spec.child_setup = [] { setsid(); };  // as an SSH channel's pipes session
  ASSERT_TRUE(s->launch(spec).ok());
  // The first process's group is killed, not only the first process.
  int status = kill_all_and_wait(*s, written_pid(pids));
  ASSERT_TRUE(s->finish(status).ok());
  EXPECT_EQ(log_.types(), (std::vector<std::string>{"session.start", "exec", "session.end"}));
  Json end = log_.of("session.end")[0];
  EXPECT_EQ(end["enhanced_recording"], false);
  EXPECT_EQ(end["enhanced_recording_kinds"], Json::array());
  EXPECT_EQ(log_.of("exec")[0]["exit_code"], 128 + SIGKILL);
}

}  // namespace
