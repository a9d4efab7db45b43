// Root tier: the session mark (task storage set on the first process and
// inherited at fork). Attacks: a root process that leaves the session's
// cgroup AND takes a new audit session id (both ways the engine used to
// find it) is still recorded under its session, and so is what it forks
// later; a process outside every session is never marked; a process left
// with the mark of an ended session is not taken for the next session in
// the same slot; what carries the mark keeps the session open, and a close
// kills it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>

#include "engine/engine.hpp"
#include "engine/launch.hpp"

using namespace vigil;

namespace {

int g_counter = 0;

std::string unique(const std::string& what) {
  return what + "-" + std::to_string(getpid()) + "-" + std::to_string(++g_counter);
}

std::unique_ptr<Engine> start_engine(uint32_t max_sessions = 4095) {
  EngineOptions options;
  options.root_path = "/" + unique("vigil-mark-test");
  options.max_sessions = max_sessions;
  auto engine = Engine::start(options);
  EXPECT_TRUE(engine.ok()) << engine.error().message;
  return engine.ok() ? std::move(engine.value()) : nullptr;
}

struct Events {
  std::mutex mu;
  std::vector<Event> all;
  EventSink sink() {
    return [this](const Event& e) {
      std::lock_guard lock(mu);
      all.push_back(e);
    };
  }
  std::vector<Event> commands_with_arg(const std::string& arg) {
    std::lock_guard lock(mu);
    std::vector<Event> out;
    for (const auto& e : all)
      if (auto* c = std::get_if<CommandEvent>(&e.body))
        for (const auto& a : c->argv)
          if (a == arg) out.push_back(e);
    return out;
  }
  std::vector<Event> opens_of(const std::string& path) {
    std::lock_guard lock(mu);
    std::vector<Event> out;
    for (const auto& e : all)
      if (auto* d = std::get_if<DiskEvent>(&e.body); d && d->path == path) out.push_back(e);
    return out;
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A cgroup outside the engine's root to escape into, removed at the end.
struct EscapeCgroup {
  std::string dir = "/cgroup2/" + unique("vigil-mark-escape");
  EscapeCgroup() { EXPECT_EQ(mkdir(dir.c_str(), 0755), 0) << dir << ": " << strerror(errno); }
  ~EscapeCgroup() { rmdir(dir.c_str()); }
};

// Waits (bounded against a broken engine) until `pid` has exited.
bool exits(pid_t pid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  int n = poll(&p, 1, 60'000);
  close(fd);
  return n == 1;
}

class Mark : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the root tier needs root; run 'make test' as root";
    dir_ = "/tmp/" + unique("vigil-mark");
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
    fifo_ = dir_ + "/go";
    ASSERT_EQ(mkfifo(fifo_.c_str(), 0600), 0);
  }
  void TearDown() override {
    for (const char* f : {"/go", "/pid", "/ses", "/file"}) unlink((dir_ + f).c_str());
    rmdir(dir_.c_str());
  }
  // Lets the escaped process blocked on the fifo go on.
  void release() {
    int fd = open(fifo_.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(write(fd, "x\n", 2), 2);
    close(fd);
  }
  // The first process leaves the session's cgroup, takes a new audit
  // session id (root may), then runs a command and opens a file; the
  // subshell it leaves behind waits on the fifo, then runs a command.
  std::string escape_script(const EscapeCgroup& cg, const std::string& tag) {
    return "echo $$ > " + cg.dir + "/cgroup.procs && echo 0 > /proc/self/loginuid && "
           "cat /proc/self/sessionid > " + dir_ + "/ses && "
           "/bin/echo " + tag + "-now && cat " + dir_ + "/file > /dev/null && "
           "{ ( read x < " + fifo_ + "; /bin/echo " + tag + "-later ) & echo $! > " + dir_ +
           "/pid; }";
  }
  std::string dir_, fifo_;
};

}  // namespace

TEST_F(Mark, AProcessThatLeavesCgroupAndAuditSessionStaysRecordedAndKeepsTheSessionOpen) {
  // Declared before the engine: its destructor may still deliver to them.
  Events events;
  std::promise<SessionSummary> finished;
  EscapeCgroup cg;
  auto engine = start_engine();
  ASSERT_TRUE(engine);
  std::ofstream(dir_ + "/file") << "x";
  auto s = engine->open_session({unique("m"), KindSet::all()}, events.sink());
  ASSERT_TRUE(s.ok()) << s.error().message;
  std::string tag = unique("mark");
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c", escape_script(cg, tag)};
  auto child = launch(**s, spec);
  ASSERT_TRUE(child.ok()) << child.error().message;
  int status = -1;
  ASSERT_EQ(waitpid(child->pid, &status, 0), child->pid);
  ASSERT_EQ(status, 0) << "the escape itself failed";
  uint32_t new_ses = static_cast<uint32_t>(std::stoul(read_file(dir_ + "/ses")));
  ASSERT_NE(new_ses, child->audit_session) << "loginuid was not rewritten";
  pid_t later = std::stoi(read_file(dir_ + "/pid"));

  // The cgroup is empty; the marked subshell keeps the session open.
  auto summary = engine->end_session(**s, [&](const SessionSummary& t) { finished.set_value(t); });
  ASSERT_TRUE(summary.ok()) << summary.error().message;
  EXPECT_EQ(summary->leftovers, SessionSummary::Leftovers::running);
  EXPECT_EQ(summary->leftover_processes, 1u);
  EXPECT_EQ(engine->session_of_process(later), (*s)->id());

  auto now = events.commands_with_arg(tag + "-now");
  ASSERT_EQ(now.size(), 1u) << "the command after the escape was not recorded";
  // Found by neither of the old ways: the mark did it.
  EXPECT_NE(now[0].process.cgroup_id, (*s)->cgroup_id());
  EXPECT_EQ(now[0].process.audit_session, new_ses);
  auto opens = events.opens_of(dir_ + "/file");
  ASSERT_EQ(opens.size(), 1u) << "the open after the escape was not recorded";
  EXPECT_NE(opens[0].process.cgroup_id, (*s)->cgroup_id());

  release();
  auto done = finished.get_future();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(60)), std::future_status::ready)
      << "the session did not end after its last marked process";
  SessionSummary total = done.get();
  EXPECT_EQ(total.leftovers, SessionSummary::Leftovers::exited);
  auto later_cmds = events.commands_with_arg(tag + "-later");
  ASSERT_EQ(later_cmds.size(), 1u) << "the command of the child forked after the escape";
  EXPECT_EQ(later_cmds[0].process.audit_session, new_ses);
  EXPECT_NE(later_cmds[0].process.cgroup_id, (*s)->cgroup_id());
}

TEST_F(Mark, CloseKillsWhatCarriesTheMarkOutsideTheCgroup) {
  // Declared before the engine: its destructor may still deliver to them.
  Events events;
  EscapeCgroup cg;
  auto engine = start_engine();
  ASSERT_TRUE(engine);
  std::ofstream(dir_ + "/file") << "x";
  auto s = engine->open_session({unique("m"), KindSet::all()}, events.sink());
  ASSERT_TRUE(s.ok()) << s.error().message;
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c", escape_script(cg, unique("kill"))};
  auto child = launch(**s, spec);
  ASSERT_TRUE(child.ok()) << child.error().message;
  int status = -1;
  ASSERT_EQ(waitpid(child->pid, &status, 0), child->pid);
  ASSERT_EQ(status, 0) << "the escape itself failed";
  pid_t later = std::stoi(read_file(dir_ + "/pid"));
  ASSERT_EQ(engine->session_of_process(later), (*s)->id());

  auto summary = engine->close_session(**s);
  ASSERT_TRUE(summary.ok()) << summary.error().message;
  EXPECT_EQ(summary->leftovers, SessionSummary::Leftovers::killed);
  EXPECT_EQ(summary->leftover_processes, 1u);
  EXPECT_TRUE(exits(later)) << "the escaped process still runs after the session closed";
  kill(later, SIGKILL);  // when the test failed: nothing of it stays behind
}

TEST_F(Mark, AProcessInNoSessionIsNeverMarked) {
  Events events;
  auto engine = start_engine();
  ASSERT_TRUE(engine);
  auto s = engine->open_session({unique("m"), KindSet(0b001)}, events.sink());
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_TRUE(engine->marks_attached());
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c", "read x < " + fifo_};
  auto first = launch(**s, spec);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(engine->session_of_process(first->pid), (*s)->id());

  // Forked here (outside every session) while the fork hook runs, and a
  // grandchild forked by that one.
  // Two pipes: one carries the grandchild's pid up, the other holds both
  // until the checks are done (a shared pipe let the waiting readers take
  // bytes of the pid).
  int report[2], hold[2];
  ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(hold, O_CLOEXEC), 0);
  pid_t outside = fork();
  ASSERT_GE(outside, 0);
  if (outside == 0) {
    pid_t grandchild = fork();
    if (grandchild == 0) {
      char c;
      (void)!read(hold[0], &c, 1);
      _exit(0);
    }
    (void)!write(report[1], &grandchild, sizeof(grandchild));
    char c;
    (void)!read(hold[0], &c, 1);
    _exit(0);
  }
  close(report[1]);
  pid_t grandchild = -1;
  ASSERT_EQ(read(report[0], &grandchild, sizeof(grandchild)), static_cast<ssize_t>(sizeof(grandchild)));
  EXPECT_EQ(engine->session_of_process(outside), "");
  EXPECT_EQ(engine->session_of_process(grandchild), "");
  EXPECT_EQ(engine->session_of_process(getpid()), "");
  close(hold[1]);
  kill(outside, SIGKILL);
  kill(grandchild, SIGKILL);
  waitpid(outside, nullptr, 0);
  close(report[0]);
  close(hold[0]);

  release();
  waitpid(first->pid, nullptr, 0);
  auto summary = engine->end_session(**s);
  ASSERT_TRUE(summary.ok()) << summary.error().message;
  EXPECT_EQ(summary->leftovers, SessionSummary::Leftovers::none);
}

// One slot for every session: the second session gets the first one's slot.
// This test's own process carries the first session's mark when that
// session closes (the engine never kills its own process); what it does
// afterwards must not be taken for the second session.
TEST_F(Mark, TheMarkOfAnEndedSessionIsNotTakenForTheNextInTheSameSlot) {
  Events a_events, b_events;
  auto engine = start_engine(/*max_sessions=*/1);
  ASSERT_TRUE(engine);
  auto a = engine->open_session({unique("a"), KindSet(0b010)}, a_events.sink());
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_TRUE((*a)->mark_process(getpid()).ok());
  ASSERT_EQ(engine->session_of_process(getpid()), (*a)->id());
  std::string during_a = dir_ + "/file";
  close(open(during_a.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(engine->close_session(**a).ok());
  EXPECT_EQ(a_events.opens_of(during_a).size(), 1u) << "the mark did not take while A lived";

  auto b = engine->open_session({unique("b"), KindSet(0b010)}, b_events.sink());
  ASSERT_TRUE(b.ok()) << b.error().message;
  ASSERT_EQ((*b)->slot(), (*a)->slot()) << "the slot was not reused";
  EXPECT_EQ(engine->session_of_process(getpid()), "");
  std::string after_a = dir_ + "/pid";
  close(open(after_a.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600));
  // B's own process, as a control that B records opens at all.
  LaunchSpec spec;
  spec.argv = {"/bin/cat", dir_ + "/ses"};
  std::ofstream(dir_ + "/ses") << "x";
  auto first = launch(**b, spec);
  ASSERT_TRUE(first.ok()) << first.error().message;
  waitpid(first->pid, nullptr, 0);
  auto summary = engine->end_session(**b);
  ASSERT_TRUE(summary.ok()) << summary.error().message;
  EXPECT_EQ(b_events.opens_of(dir_ + "/ses").size(), 1u);
  EXPECT_EQ(b_events.opens_of(after_a).size(), 0u)
      << "an open by a process marked for the ended session A was recorded under B";
}
