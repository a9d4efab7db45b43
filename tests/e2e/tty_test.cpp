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

namespace e2e {
namespace {

using namespace std::chrono_literals;

// A program on a pseudo-terminal of our own, typed into like a person.
class Terminal {
 public:
  explicit Terminal(const std::vector<std::string>& argv,
                    const std::vector<std::string>& env = base_environment()) {
    winsize ws{};
    ws.ws_col = 100;
    ws.ws_row = 30;
    pid_ = forkpty(&master_, nullptr, nullptr, &ws);
    if (pid_ == 0) {
      std::vector<char*> args, envp;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
      envp.push_back(nullptr);
      execve(args[0], args.data(), envp.data());
      _exit(127);
    }
  }
  ~Terminal() {
    if (pid_ > 0 && status_ < 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) close(master_);
  }

  // Reads the screen until `text` shows after `from` or the time is up.
  bool wait_for(const std::string& text, size_t from = 0,
                std::chrono::milliseconds limit = 10s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (screen_.find(text, from) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline || !read_some(100)) return false;
    }
    return true;
  }
  void type(const std::string& keys) { ASSERT_EQ(write(master_, keys.data(), keys.size()), static_cast<ssize_t>(keys.size())); }
  // Reads to the end and returns the exit status.
  int finish() {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      read_some(100);
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        while (read_some(0)) {
        }
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
      }
    }
    return -1;
  }
  const std::string& screen() const { return screen_; }

 private:
  bool read_some(int timeout_ms) {
    pollfd p{master_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return timeout_ms > 0;
    char buf[4096];
    ssize_t n = read(master_, buf, sizeof buf);
    if (n <= 0) return false;
    screen_.append(buf, n);
    return true;
  }

  int master_ = -1;
  pid_t pid_ = -1;
  int status_ = -1;
  std::string screen_;
};

class TtySession : public VigilTest {};

TEST_F(TtySession, EchoOffCommandsAreRecordedAndTheScreenReplays) {
  REQUIRE_ROOT();
  auto env = base_environment();
  env.push_back("PS1=prompt> ");
  Terminal term(record_argv({"--tty"}, {"/bin/sh"}), env);
  ASSERT_TRUE(term.wait_for("prompt> ")) << term.screen();
  term.type("stty -echo\n");
  size_t after_stty = term.screen().size();
  ASSERT_TRUE(term.wait_for("prompt> ", after_stty)) << term.screen();
  size_t hidden_from = term.screen().size();
  term.type("echo hidden-$((6*7))\n");
  ASSERT_TRUE(term.wait_for("hidden-42", hidden_from)) << term.screen();
  term.type("ls /etc/hostname\n");
  ASSERT_TRUE(term.wait_for("/etc/hostname", hidden_from)) << term.screen();
  term.type("exit\n");
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
