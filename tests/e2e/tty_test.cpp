// A `vigil record --tty` session typed into through a real pseudo-terminal,
// with echo turned off: the screen replays exactly from the recording, the
// hidden commands are in the events, and asciinema shows the same text.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "fixture.hpp"
#include "terminal.hpp"

namespace e2e {
namespace {

class TtySession : public VigilTest {};

TEST_F(TtySession, EchoOffCommandsAreRecordedAndTheScreenReplays) {
  REQUIRE_ROOT();
  auto env = base_environment();
  env.push_back("PS1=prompt> ");
  Terminal term(record_argv({"--tty"}, {"/bin/sh"}), env);
  ASSERT_TRUE(term.wait_for("prompt> ")) << term.screen();
  ASSERT_TRUE(term.type("stty -echo\n"));
  size_t after_stty = term.screen().size();
  ASSERT_TRUE(term.wait_for("prompt> ", after_stty)) << term.screen();
  size_t hidden_from = term.screen().size();
  ASSERT_TRUE(term.type("echo hidden-$((6*7))\n"));
  ASSERT_TRUE(term.wait_for("hidden-42", hidden_from)) << term.screen();
  ASSERT_TRUE(term.type("ls /etc/hostname\n"));
  ASSERT_TRUE(term.wait_for("/etc/hostname", hidden_from)) << term.screen();
  ASSERT_TRUE(term.type("exit\n"));
  ASSERT_EQ(term.finish(), 0) << term.screen();
  // With echo off the typed lines never reached the screen.
  EXPECT_EQ(term.screen().find("echo hidden", hidden_from), std::string::npos) << term.screen();
  EXPECT_EQ(term.screen().find("ls /etc", hidden_from), std::string::npos) << term.screen();

  auto listing = run({.argv = {kVigil, "recordings", "--data-dir", data_dir(), "--format", "json"}});
  ASSERT_EQ(listing.status, 0) << listing.err;
  auto sessions = split_lines(listing.out);  // one JSON object per recording
  ASSERT_EQ(sessions.size(), 1u) << listing.out;
  std::string sid = nlohmann::json::parse(sessions[0])["sid"];

  // The recording's output is byte for byte what the terminal showed.
  auto replay = run({.argv = {kVigil, "play", "--data-dir", data_dir(), sid}});
  ASSERT_EQ(replay.status, 0) << replay.err;
  EXPECT_EQ(replay.out, term.screen());

  // The commands typed blind are in the session's events.
  auto events = run({.argv = {kVigil, "play", "--data-dir", data_dir(), "--format", "json", sid}});
  ASSERT_EQ(events.status, 0) << events.err;
  Log log = parse_log(events.out);
  std::vector<std::string> commands;
  bool ended_interactive = false;
  for (const auto& e : log.events) {
    if (e["event"] == "session.command") {
      std::string line = e["path"];
      for (const auto& a : e["argv"]) line += " " + a.get<std::string>();
      commands.push_back(line);
    }
    if (e["event"] == "session.end")
      ended_interactive = e["interactive"] == true && e["enhanced_recording"] == true;
  }
  EXPECT_THAT(commands, ::testing::ElementsAre("/bin/sh", "/usr/bin/stty -echo",
                                               "/usr/bin/ls /etc/hostname"));
  EXPECT_TRUE(ended_interactive);

  // asciinema reads the exported cast and prints the same screen. It needs
  // a terminal of its own; its stdout goes to a file.
  std::string cast = path("session.cast");
  auto exported = run({.argv = {kVigil, "play", "--data-dir", data_dir(), "--format", "asciicast", sid}});
  ASSERT_EQ(exported.status, 0) << exported.err;
  write_file(cast, exported.out);
  std::string shown = path("asciinema.out");
  auto asciinema_env = base_environment();
  asciinema_env.push_back("ASCIINEMA_CONFIG_HOME=" + dir_);
  Terminal cat({"/bin/sh", "-c", "exec asciinema cat '" + cast + "' > '" + shown + "'"},
               asciinema_env);
  ASSERT_EQ(cat.finish(), 0) << cat.screen();
  EXPECT_EQ(read_file(shown), term.screen());
}

}  // namespace
}  // namespace e2e
