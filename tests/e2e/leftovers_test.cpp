// End to end: what a session leaves running is recorded until it exits (or
// killed), a recorder killed with SIGKILL takes its sessions' processes with
// it and the next run writes their missing end, and the recorded command
// gets nothing of its caller's but fds 0-2 and default signal dispositions.
// Each test attacks the promise the way a user would get around it.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "../support/wait.hpp"
#include "fixture.hpp"

namespace e2e {
namespace {

using json = nlohmann::ordered_json;
using vigil::testing::eventually;
using vigil::testing::running;

// Waits (bounded) for a condition a background process brings about.
pid_t read_pid(const std::string& file) {
  std::string text = file_exists(file) ? read_file(file) : "";
  return text.empty() ? 0 : static_cast<pid_t>(std::stol(text));
}

size_t index_of(const Log& log, const std::string& event) {
  for (size_t i = 0; i < log.events.size(); ++i)
    if (log.events[i]["event"] == event) return i;
  return SIZE_MAX;
}

bool ran_after(const Log& log, size_t from, const std::string& program) {
  for (size_t i = from; i < log.events.size(); ++i)
    if (log.events[i]["event"] == "session.command" && log.events[i]["program"] == program)
      return true;
  return false;
}

class Leftovers : public VigilTest {
 protected:
  void use_policy(const std::string& policy) {
    write_file(config(), node_yaml(data_dir()) + "    leftover_processes: " + policy + "\n");
  }
};

// `(sleep; cat; true) &` outlives the shell that started it: everything it
// does is still the session's, after session.end, and vigil record returns
// only when it is gone, with a session.leftovers_end that counts it all.
TEST_F(Leftovers, BackgroundProcessesStayRecordedAfterSessionEnd) {
  REQUIRE_ROOT();
  std::string out = path("events.json");
  Outcome o = record({"-o", out, "--events", "command,disk"},
                     {"sh", "-c", "(sleep 0.3; cat /etc/hostname >/dev/null; exec true) & echo started"});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "started\n");
  EXPECT_THAT(o.err, ::testing::HasSubstr("processes of the session are still running"));
  Log log = read_log(out);
  ASSERT_FALSE(log.events.empty());
  size_t end = index_of(log, "session.end");
  ASSERT_NE(end, SIZE_MAX);
  EXPECT_GE(log.events[end]["leftover_processes"].get<int>(), 1);
  EXPECT_EQ(log.events[end]["leftover_action"], "recorded");
  // What the leftover did after the session's end is the session's.
  EXPECT_TRUE(ran_after(log, end, "cat"));
  EXPECT_TRUE(ran_after(log, end, "true"));
  bool opened_after = false;
  for (size_t i = end; i < log.events.size(); ++i)
    if (log.events[i]["event"] == "session.disk" && log.events[i]["path"] == "/etc/hostname")
      opened_after = true;
  EXPECT_TRUE(opened_after);
  const json& last = log.events.back();
  EXPECT_EQ(last["event"], "session.leftovers_end");
  EXPECT_EQ(last["code"], "V2005I");
  EXPECT_EQ(last["killed"], false);
  EXPECT_EQ(last["processes"], log.events[end]["leftover_processes"]);
  std::string sid = log.events[0]["sid"];
  for (const auto& e : log.events) EXPECT_EQ(e["sid"], sid) << e.dump();
  // The totals cover the whole session: every command and open in the file.
  EXPECT_EQ(last["recorded_events"]["command"].get<size_t>(), log.count("session.command"));
  EXPECT_EQ(last["recorded_events"]["disk"].get<size_t>(), log.count("session.disk"));
  EXPECT_EQ(last["lost_events"], (json{{"command", 0}, {"disk", 0}, {"network", 0}}));
  // The audit log has the same, ending with the same event.
  Log audit = read_log(data_dir() + "/log/events.log");
  ASSERT_FALSE(audit.events.empty());
  EXPECT_EQ(audit.events.back()["event"], "session.leftovers_end");
  EXPECT_EQ(audit.count("session.command"), log.count("session.command"));
  EXPECT_FALSE(std::filesystem::exists(data_dir() + "/sessions/" + sid + ".json"))
      << "the session's journal outlived its end";
}

// A child that runs a command just after its parent exits was missed every
// time when leftovers were moved out at the end: it must be recorded every time.
TEST_F(Leftovers, ACommandRightAfterTheFirstProcessExitsIsRecorded) {
  REQUIRE_ROOT();
  for (int i = 0; i < 15; ++i) {
    std::string out = path("events" + std::to_string(i) + ".json");
    Outcome o = record({"-o", out}, {"sh", "-c", "exec /bin/true & exit 0"});
    ASSERT_EQ(o.status, 0) << o.err;
    Log log = read_log(out);
    size_t trues = 0;
    for (const auto& e : log.of("session.command"))
      if (e["program"] == "true") ++trues;
    EXPECT_EQ(trues, 1u) << "run " << i << ":\n" << log.text;
  }
}

TEST_F(Leftovers, KillPolicyKillsThemWhenTheSessionEnds) {
  REQUIRE_ROOT();
  use_policy("kill");
  std::string out = path("events.json"), pidfile = path("pid");
  Outcome o = record({"-o", out}, {"sh", "-c", "sleep 300 & echo $! > " + pidfile});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_THAT(o.err, ::testing::HasSubstr("killed (leftover_processes: kill)"));
  pid_t sleeper = read_pid(pidfile);
  ASSERT_GT(sleeper, 0);
  EXPECT_TRUE(eventually([&] { return !running(sleeper); })) << "sleep 300 survived its session";
  Log log = read_log(out);
  ASSERT_FALSE(log.events.empty());
  EXPECT_EQ(log.events.back()["event"], "session.end");
  EXPECT_EQ(log.events.back()["leftover_action"], "killed");
  EXPECT_EQ(log.events.back()["leftover_processes"], 1);
  EXPECT_EQ(log.count("session.leftovers_end"), 0u);
}

TEST_F(Leftovers, ConfigRefusesAnUnknownPolicy) {
  use_policy("ignore");
  Outcome o = record({}, {"true"});
  EXPECT_EQ(o.status, 125);
  EXPECT_THAT(o.err, ::testing::HasSubstr("leftover_processes"));
  EXPECT_THAT(o.err, ::testing::HasSubstr("record"));
}

// Interrupting vigil record while it waits for leftovers kills them (they
// could not be recorded once it is gone) and still writes the last event.
TEST_F(Leftovers, InterruptWhileWaitingKillsThemAndEndsTheRecord) {
  REQUIRE_ROOT();
  std::string out = path("events.json"), pidfile = path("pid");
  Process p({.argv = record_argv({"-o", out}, {"sh", "-c", "sleep 300 & echo $! > " + pidfile})});
  ASSERT_TRUE(eventually([&] { return read_pid(pidfile) > 0; }));
  pid_t sleeper = read_pid(pidfile);
  // Waiting for the leftover: session.end is in the file.
  ASSERT_TRUE(eventually([&] {
    return file_exists(out) && read_file(out).find("\"session.end\"") != std::string::npos;
  }));
  kill(p.pid(), SIGINT);
  Outcome o = p.wait();
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_TRUE(eventually([&] { return !running(sleeper); }));
  Log log = read_log(out);
  ASSERT_FALSE(log.events.empty());
  EXPECT_EQ(log.events.back()["event"], "session.leftovers_end");
  EXPECT_EQ(log.events.back()["killed"], true);
}

// kill -9 of the recorder: its guard kills what the session still ran (so
// nothing runs on unrecorded), and the next run writes the missing
// session.end, marked recovered, with what reached the audit log.
TEST_F(Leftovers, KilledRecorderTakesItsSessionAlongAndIsRecoveredNextRun) {
  REQUIRE_ROOT();
  std::string pidfile = path("pid");
  Process p({.argv = record_argv({"-o", path("events.json")},
                                 {"sh", "-c", "echo $$ > " + pidfile + "; exec sleep 300"})});
  ASSERT_TRUE(eventually([&] { return read_pid(pidfile) > 0; }));
  pid_t sleeper = read_pid(pidfile);
  // sleep has replaced the shell: its exec reaches the audit log within the
  // log's flush interval (what recovery counts is what reached it).
  std::string audit_path = data_dir() + "/log/events.log";
  ASSERT_TRUE(eventually([&] {
    return file_exists(audit_path) && read_file(audit_path).find("\"sleep\"") != std::string::npos;
  }));
  std::string sid = read_log(path("events.json")).events.at(0)["sid"];
  kill(p.pid(), SIGKILL);
  Outcome killed = p.wait();
  EXPECT_EQ(killed.status, 128 + SIGKILL);
  EXPECT_TRUE(eventually([&] { return !running(sleeper); }))
      << "the session's process outlived its recorder";
  EXPECT_TRUE(std::filesystem::exists(data_dir() + "/sessions/" + sid + ".json"));

  Outcome next = record({}, {"true"});
  ASSERT_EQ(next.status, 0) << next.err;
  Log audit = read_log(data_dir() + "/log/events.log");
  std::vector<json> ends;
  for (const auto& e : audit.of("session.end"))
    if (e["sid"] == sid) ends.push_back(e);
  ASSERT_EQ(ends.size(), 1u) << audit.text;
  EXPECT_EQ(ends[0]["recovered"], true);
  EXPECT_FALSE(ends[0].contains("lost_events"));
  EXPECT_GE(ends[0]["recorded_events"]["command"].get<int>(), 1);  // sleep's exec
  // Its ei follows the session's last event in the log.
  uint64_t max_ei = 0;
  for (const auto& e : audit.events)
    if (e["sid"] == sid && e["event"] != "session.end") max_ei = std::max(max_ei, e["ei"].get<uint64_t>());
  EXPECT_EQ(ends[0]["ei"].get<uint64_t>(), max_ei + 1);
  EXPECT_FALSE(std::filesystem::exists(data_dir() + "/sessions/" + sid + ".json"));
}

// The caller's open files (a socket, a file opened without O_CLOEXEC) must
// not reach the recorded command, and neither may the signals it ignores or
// blocks (both survive fork and exec): vigil record is started directly by
// this test with SIGUSR1 ignored and SIGUSR2 blocked, which vigil itself
// does not touch, so only the launcher's reset gives the command defaults.
TEST_F(Leftovers, RecordedCommandGetsOnlyStdioAndDefaultSignals) {
  REQUIRE_ROOT();
  int leaked_file = open("/etc/hostname", O_RDONLY);
  int leaked_socket = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(leaked_file, 3);
  ASSERT_GE(leaked_socket, 3);
  Outcome fds = record({}, {"sh", "-c", "ls /proc/$$/fd; true"});
  sigset_t usr2, old_mask;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &usr2, &old_mask);
  auto old_usr1 = signal(SIGUSR1, SIG_IGN);
  // And signal 32, which glibc reserves (its signal() cannot reset it): set
  // with the raw call, as a parent that is not a glibc program could.
  struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    uint64_t mask;
  } ignore{SIG_IGN, 0, nullptr, 0}, old_32{};
  ASSERT_EQ(syscall(SYS_rt_sigaction, 32, &ignore, &old_32, sizeof(uint64_t)), 0);
  // The program reads its own status: a shell would clear its mask itself.
  Outcome sigs = record({}, {"grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"});
  signal(SIGUSR1, old_usr1);
  syscall(SYS_rt_sigaction, 32, &old_32, nullptr, sizeof(uint64_t));
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  close(leaked_file);
  close(leaked_socket);
  ASSERT_EQ(fds.status, 0) << fds.err;
  EXPECT_EQ(fds.out, "0\n1\n2\n");
  ASSERT_EQ(sigs.status, 0) << sigs.err;
  EXPECT_EQ(sigs.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

}  // namespace
}  // namespace e2e
