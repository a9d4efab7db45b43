// End to end: `vigil record` as a command-line tool. Its exit status is the
// recorded command's (or 125 when vigil itself fails), its messages name
// the problem, the command's stdio is untouched, and the text format and
// --user do what they say.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <regex>
#include <set>
#include <thread>

#include "fixture.hpp"

namespace e2e {
namespace {

using json = nlohmann::ordered_json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int kVigilFailed = 125;

class RecordCli : public VigilTest {
 protected:
  std::string out_file() const { return path("events.json"); }
  Outcome record_to_file(std::vector<std::string> options,
                         const std::vector<std::string>& command) const {
    options.insert(options.begin(), {"-o", out_file()});
    return record(options, command);
  }
  // vigil failed before any session: nothing written, not even the file.
  void expect_no_session(const Outcome& o) const {
    EXPECT_EQ(o.status, kVigilFailed) << o.err;
    EXPECT_EQ(o.out, "");
    EXPECT_FALSE(file_exists(out_file())) << "a failed vigil created its output file";
  }
};

// ---- exit status --------------------------------------------------------

TEST_F(RecordCli, ExitStatusIsTheCommands) {
  REQUIRE_ROOT();
  auto o = record_to_file({}, {"sh", "-c", "exit 7"});
  EXPECT_EQ(o.status, 7);
  EXPECT_EQ(o.err, "");
  auto log = read_log(out_file());
  ASSERT_EQ(log.events.size(), 3u) << log.text;
  EXPECT_EQ(log.events.back()["event"], "session.end");
}

TEST_F(RecordCli, CommandKilledBySignalGives128PlusSignal) {
  REQUIRE_ROOT();
  auto o = record_to_file({}, {"sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(o.status, 128 + SIGTERM);
  EXPECT_EQ(o.err, "");
  auto log = read_log(out_file());
  ASSERT_FALSE(log.events.empty());
  EXPECT_EQ(log.events.back()["event"], "session.end") << "the session still ends";
  EXPECT_EQ(log.events.back()["recorded_events"]["command"], 1);
}

TEST_F(RecordCli, TermSentToVigilReachesTheCommandAndTheSessionEnds) {
  REQUIRE_ROOT();
  Process p({.argv = record_argv({"-o", out_file()}, {"sleep", "30"})});
  // Wait until the session's first command is in the file: then vigil has
  // its signal forwarding in place and sleep is running.
  bool started = false;
  for (int i = 0; i < 500 && !started; ++i) {
    started = read_file(out_file()).find("\"program\":\"sleep\"") != std::string::npos;
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(started) << "sleep never appeared in " << out_file();
  ASSERT_EQ(kill(p.pid(), SIGTERM), 0);
  auto o = p.wait(5000);
  EXPECT_EQ(o.status, 128 + SIGTERM) << "vigil exits as the command did";
  EXPECT_EQ(o.err, "");
  auto log = read_log(out_file());
  ASSERT_FALSE(log.events.empty());
  EXPECT_EQ(log.events.back()["event"], "session.end");
  EXPECT_EQ(log.events.back()["recorded_events"]["command"], 1);
}

TEST_F(RecordCli, MissingProgramGives127AndStillEndsTheSession) {
  REQUIRE_ROOT();
  const std::string missing = path("no-such-program");
  auto o = record_to_file({}, {missing, "arg"});
  EXPECT_EQ(o.status, 127);
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err, "vigil record: cannot run the program " + missing +
                       ": No such file or directory\n");
  auto log = read_log(out_file());
  ASSERT_EQ(log.events.size(), 3u) << log.text;
  EXPECT_EQ(log.events[0]["event"], "session.start");
  EXPECT_EQ(log.events[0]["initial_command"], json({missing, "arg"}));
  // The failed execve is itself a recorded command, with -ENOENT.
  json attempt = log.events[1];
  EXPECT_EQ(attempt["event"], "session.command");
  EXPECT_EQ(attempt["path"], missing);
  EXPECT_EQ(attempt["argv"], json::array({"arg"}));
  EXPECT_EQ(attempt["return_code"], -ENOENT);
  json end = log.events[2];
  EXPECT_EQ(end["event"], "session.end");
  EXPECT_EQ(end["recorded_events"], json({{"command", 1}, {"disk", 0}, {"network", 0}}));
}

TEST_F(RecordCli, CommandNotOnPathGives127AndStillEndsTheSession) {
  REQUIRE_ROOT();
  auto o = record_to_file({}, {"no-such-command-e2e", "arg"});
  EXPECT_EQ(o.status, 127);
  EXPECT_EQ(o.err, "vigil record: no-such-command-e2e: command not found\n");
  auto log = read_log(out_file());
  ASSERT_EQ(log.events.size(), 2u) << log.text;
  EXPECT_EQ(log.events[0]["event"], "session.start");
  EXPECT_EQ(log.events[1]["event"], "session.end");
  EXPECT_EQ(log.events[1]["recorded_events"],
            json({{"command", 0}, {"disk", 0}, {"network", 0}}));
}

TEST_F(RecordCli, FailedExecsOffRecordsOnlyExecsThatSucceed) {
  REQUIRE_ROOT();
  write_file(config(), node_yaml(data_dir()) + "    failed_execs: false\n");
  const std::string missing = path("no-such-program");
  auto o = record_to_file({}, {"sh", "-c", missing + "; true"});
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.out, "");
  EXPECT_THAT(o.err, HasSubstr(missing)) << "sh says it is not found";
  auto log = read_log(out_file());
  auto commands = log.of("session.command");
  ASSERT_EQ(commands.size(), 1u) << log.text;
  EXPECT_EQ(commands[0]["program"], "sh");
  EXPECT_EQ(log.events.back()["recorded_events"],
            json({{"command", 1}, {"disk", 0}, {"network", 0}}));
}

TEST_F(RecordCli, ProgramThatCannotBeExecutedGives126) {
  REQUIRE_ROOT();
  const std::string script = path("not-executable.sh");
  write_file(script, "echo never\n");
  chmod(script.c_str(), 0644);
  auto o = record_to_file({}, {script});
  EXPECT_EQ(o.status, 126);
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err, "vigil record: cannot run the program " + script + ": Permission denied\n");
  auto log = read_log(out_file());
  ASSERT_EQ(log.events.size(), 3u) << log.text;
  EXPECT_EQ(log.events[1]["path"], script);
  EXPECT_EQ(log.events[1]["return_code"], -EACCES);
  EXPECT_EQ(log.events[2]["event"], "session.end");
}

// ---- vigil's own failures: 125 and a message naming the problem ---------

TEST_F(RecordCli, UnknownEventKindIsRefused) {
  auto o = record_to_file({"--events", "command,bogus"}, {"true"});
  expect_no_session(o);
  EXPECT_EQ(o.err,
            "vigil record: --events: unknown event kind 'bogus': use a comma-separated list of "
            "command, disk, network\n");
}

TEST_F(RecordCli, RepeatedEventKindIsRefused) {
  auto o = record_to_file({"--events", "disk,disk"}, {"true"});
  expect_no_session(o);
  EXPECT_THAT(o.err, StartsWith("vigil record: --events: "));
  EXPECT_THAT(o.err, HasSubstr("'disk'"));
}

TEST_F(RecordCli, UnknownOptionIsRefused) {
  auto o = run({.argv = {kVigil, "record", "-c", config(), "-o", out_file(), "--bogus", "--",
                         "true"}});
  expect_no_session(o);
  EXPECT_THAT(o.err, HasSubstr("--bogus"));
}

TEST_F(RecordCli, NothingAfterTheDoubleDashIsRefused) {
  auto o = run({.argv = {kVigil, "record", "-c", config(), "-o", out_file(), "--"}});
  expect_no_session(o);
  EXPECT_THAT(o.err, HasSubstr("command is required"));
}

TEST_F(RecordCli, NoCommandAtAllIsRefused) {
  auto o = run({.argv = {kVigil, "record", "-c", config(), "-o", out_file()}});
  expect_no_session(o);
  EXPECT_THAT(o.err, HasSubstr("command is required"));
}

TEST_F(RecordCli, NoSubcommandIsRefused) {
  auto o = run({.argv = {kVigil}});
  EXPECT_EQ(o.status, kVigilFailed);
  EXPECT_THAT(o.err, HasSubstr("subcommand"));
}

TEST_F(RecordCli, UnknownFormatIsRefused) {
  auto o = record_to_file({"--format", "xml"}, {"true"});
  expect_no_session(o);
  EXPECT_THAT(o.err, HasSubstr("--format"));
  EXPECT_THAT(o.err, HasSubstr("xml"));
}

TEST_F(RecordCli, MissingConfigFileIsRefused) {
  const std::string missing = path("absent.yaml");
  auto o = run({.argv = {kVigil, "record", "-c", missing, "-o", out_file(), "--", "true"}});
  expect_no_session(o);
  EXPECT_THAT(o.err, HasSubstr("--config"));
  EXPECT_THAT(o.err, HasSubstr(missing));
}

TEST_F(RecordCli, UnreadableConfigFileIsRefused) {
  // As nobody (as ourselves when not root), a mode-000 file cannot be read.
  chmod(config().c_str(), 0000);
  give_dir_to_nobody();
  auto o = run({.argv = {kVigil, "record", "-c", config(), "-o", out_file(), "--", "true"},
                .unprivileged = true});
  expect_no_session(o);
  EXPECT_EQ(o.err, "vigil record: cannot open config file " + config() + ": Permission denied\n");
}

TEST_F(RecordCli, ConfigFieldWithATypoIsRefused) {
  write_file(config(),
             "version: v3\n"
             "teleport:\n"
             "  data_dir: " + data_dir() + "\n"
             "ssh_service:\n"
             "  enhanced_recording:\n"
             "    root_pth: " + root_path() + "\n");
  auto o = record_to_file({}, {"true"});
  expect_no_session(o);
  EXPECT_EQ(o.err, "vigil record: " + config() +
                       ":6: unknown field ssh_service.enhanced_recording.root_pth; did you mean "
                       "root_path?\n");
  EXPECT_FALSE(file_exists(data_dir())) << "a bad config still made the data_dir";
}

TEST_F(RecordCli, UnknownUserIsRefused) {
  REQUIRE_ROOT();
  auto o = record_to_file({"--user", "no-such-user-e2e"}, {"true"});
  expect_no_session(o);
  EXPECT_EQ(o.err,
            "vigil record: --user: no such user: no-such-user-e2e (give a local login name)\n");
}

// ---- stdio ---------------------------------------------------------------

TEST_F(RecordCli, EventsGoToStderrWithoutOutputOption) {
  REQUIRE_ROOT();
  auto o = record({}, {"sh", "-c", "echo out; echo err >&2"});
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.out, "out\n") << "the command's stdout is exactly what it printed";
  // stderr holds the events and, among them, the command's own line.
  std::vector<std::string> json_lines;
  std::vector<std::string> other;
  for (const auto& line : split_lines(o.err))
    (line.starts_with("{") ? json_lines : other).push_back(line);
  EXPECT_EQ(other, std::vector<std::string>{"err"}) << o.err;
  std::string joined;
  for (const auto& l : json_lines) joined += l + "\n";
  auto log = parse_log(joined);
  ASSERT_GE(log.events.size(), 3u) << o.err;
  EXPECT_EQ(log.events.front()["event"], "session.start");
  EXPECT_EQ(log.events.back()["event"], "session.end");
  EXPECT_EQ(log.events.back()["recorded_events"]["command"], log.count("session.command"));
  EXPECT_EQ(log.count("session.command"), 1u) << "sh, with echo a builtin";
}

TEST_F(RecordCli, StdinReachesTheCommand) {
  REQUIRE_ROOT();
  auto o = run({.argv = record_argv({"-o", out_file()}, {"cat"}), .stdin_data = "abc"});
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.out, "abc");
  EXPECT_EQ(o.err, "");
  auto log = read_log(out_file());
  ASSERT_EQ(log.count("session.command"), 1u) << log.text;
  json cat = log.of("session.command")[0];
  EXPECT_EQ(cat["path"], "/usr/bin/cat");
  EXPECT_EQ(cat["argv"], json::array());
}

// ---- --format text ---------------------------------------------------------

TEST_F(RecordCli, TextFormatIsOneReadableLinePerEventThenTheSummary) {
  REQUIRE_ROOT();
  // Commands only: ls's NSS lookups may reach nscd, a unix connect (network).
  auto o = record_to_file(
      {"--format", "text", "--events", "command"},
      {"sh", "-c", "echo bHMgLWxh | base64 --decode | sh >/dev/null; cat /etc/hostname"});
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.err, "");
  const auto lines = split_lines(read_file(out_file()));
  ASSERT_EQ(lines.size(), 6u) << read_file(out_file());
  // "HH:MM:SS.mmm user=root login=root command pid=N PROGRAM: PATH ARGS → ok"
  const std::regex command_line(
      R"(^\d\d:\d\d:\d\d\.\d{3} user=root login=root command pid=[1-9]\d* (.*)$)");
  std::multiset<std::string> commands;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(lines[i], m, command_line)) << lines[i];
    commands.insert(m[1]);
  }
  EXPECT_EQ(commands,
            (std::multiset<std::string>{
                "sh: /usr/bin/sh -c 'echo bHMgLWxh | base64 --decode | sh >/dev/null; cat "
                "/etc/hostname' → ok",
                "base64: /usr/bin/base64 --decode → ok",
                "sh: /usr/bin/sh → ok",
                "ls: /usr/bin/ls -la → ok",
                "cat: /usr/bin/cat /etc/hostname → ok",
            }));
  // The first line is the session's first process; the last, the summary.
  EXPECT_THAT(lines[0], HasSubstr(" sh: /usr/bin/sh -c "));
  const std::regex summary(
      R"(^\d\d:\d\d:\d\d\.\d{3} user=root login=root session [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} ended: recorded command=5 disk=off network=off, lost command=0 disk=off network=off$)");
  EXPECT_TRUE(std::regex_match(lines.back(), summary)) << lines.back();
}

// ---- --user ------------------------------------------------------------------

TEST_F(RecordCli, UserOptionRunsTheCommandAsThatLogin) {
  REQUIRE_ROOT();
  const passwd* pw = getpwnam("nobody");
  ASSERT_NE(pw, nullptr) << "this host has no user nobody";
  const std::string home = pw->pw_dir;
  auto o = record_to_file({"--user", "nobody"},
                          {"sh", "-c", "id -u; id -g; echo \"$USER $LOGNAME $HOME\""});
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, std::to_string(pw->pw_uid) + "\n" + std::to_string(pw->pw_gid) +
                       "\nnobody nobody " + home + "\n");
  EXPECT_EQ(std::to_string(pw->pw_uid), "65534");
  auto log = read_log(out_file());
  ASSERT_GE(log.events.size(), 5u) << log.text;
  for (auto& e : log.events) {
    EXPECT_EQ(e["login"], "nobody") << e.dump();
    EXPECT_EQ(e["user"], "nobody") << e.dump();
  }
  EXPECT_EQ(log.events.back()["participants"], json::array({"nobody"}));
  EXPECT_EQ(log.count("session.command"), 3u) << "sh, id, id";
  for (auto& c : log.of("session.command")) EXPECT_EQ(c["return_code"], 0);
}

}  // namespace
}  // namespace e2e
