// `vigil play` and `vigil recordings` run as a user runs them: through
// pipes (the exports, the listing, damaged and foreign files) and on a
// pseudo-terminal (replay timing, the keys, the terminal given back as it
// was, also on SIGTERM). No root needed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "recording/store.hpp"
#include "test_util.hpp"

namespace vigil::recording {
namespace {

using namespace testing;
using Clock = std::chrono::steady_clock;

struct CliResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out, err;
};

// Runs the CLI with stdin from /dev/null, stdout and stderr captured.
CliResult run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), VIGIL_RECORDING_CLI);
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) return {};
  pid_t pid = fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDONLY);
    dup2(null, STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  CliResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0 && poll(fds, 2, 30'000) > 0) {
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !fds[i].revents) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string command_event(int64_t t, const std::string& path) {
  (void)t;
  return R"({"argv":["-la"],"event":"session.command","path":")" + path + R"(","return_code":0})";
}

std::vector<Record> sample_session(int64_t start = kStart) {
  return {
      output(start + 100 * kMs, "$ ls -la\r\n"),
      event(start + 150 * kMs, command_event(start + 150 * kMs, "/usr/bin/ls")),
      output(start + 200 * kMs, "\x1b[01;34mdir\x1b[0m  caf\xc3"),
      output(start + 210 * kMs, "\xa9\xff\r\n"),
      resize(start + 300 * kMs, 100, 30),
      event(start + 400 * kMs, R"({"event":"session.disk","path":"/etc/hosts"})"),
      output(start + 500 * kMs, "$ exit\r\n"),
  };
}

class PlayCli : public ::testing::Test {
 protected:
  void SetUp() override { path_ = make_recording(dir_, sample_session()); }
  TempDir dir_;
  std::string path_;
};

TEST_F(PlayCli, TerminalFormatToAPipeWritesTheExactOutputBytes) {
  CliResult r = run_cli({"play", path_});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "$ ls -la\r\n\x1b[01;34mdir\x1b[0m  caf\xc3\xa9\xff\r\n$ exit\r\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(PlayCli, JsonFormatPrintsTheEventsInOrder) {
  CliResult r = run_cli({"play", "--format", "json", path_});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, command_event(0, "/usr/bin/ls") + "\n" +
                       R"({"event":"session.disk","path":"/etc/hosts"})" + "\n");
}

TEST_F(PlayCli, AsciicastFormat) {
  CliResult r = run_cli({"play", "--format", "asciicast", path_});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1688488940}\n"
            "[0.100000,\"o\",\"$ ls -la\\r\\n\"]\n"
            "[0.200000,\"o\",\"\\u001b[01;34mdir\\u001b[0m  caf\"]\n"
            "[0.210000,\"o\",\"\xc3\xa9\xef\xbf\xbd\\r\\n\"]\n"
            "[0.300000,\"r\",\"100x30\"]\n"
            "[0.500000,\"o\",\"$ exit\\r\\n\"]\n");
}

TEST_F(PlayCli, TextFormatMarksCommands) {
  CliResult r = run_cli({"play", "--format", "text", path_});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "$ ls -la\n"
            "[+0.150s] $ /usr/bin/ls -la\n"
            "dir  caf\xc3\xa9\xef\xbf\xbd\n"
            "$ exit\n");
}

TEST_F(PlayCli, SessionIdIsLookedUpInTheDataDir) {
  ASSERT_TRUE(prepare_records_dir(dir_.path()).ok());
  const std::string sid = test_header().sid;
  ASSERT_EQ(rename(path_.c_str(), recording_path(dir_.path(), sid).c_str()), 0);
  CliResult r = run_cli({"play", "--data-dir", dir_.path(), "--format", "json", sid});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("session.disk"), std::string::npos);
  r = run_cli({"play", "--data-dir", dir_.path(), sid.substr(0, 8)});
  EXPECT_EQ(r.status, 0) << r.err;

  r = run_cli({"play", "--data-dir", dir_.path(), "0000"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "vigil play: no recording of session 0000 in " + records_dir(dir_.path()) +
                       " (list them with `vigil recordings`)\n");
}

TEST_F(PlayCli, DamagedRecordingShowsWhatIsReadableThenFails) {
  // Two chunks; the second loses its last byte.
  const std::string path = dir_.file("cut.vrec");
  auto w = RecordingWriter::create(path, test_header(), manual_options());
  ASSERT_TRUE(w.ok());
  (*w)->output(kStart + kMs, "readable\r\n");
  ASSERT_TRUE((*w)->flush().ok());
  const uint64_t second = (*w)->stats().file_bytes;
  (*w)->output(kStart + 2 * kMs, "lost\r\n");
  ASSERT_TRUE((*w)->close().ok());
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>((*w)->stats().file_bytes - 1)), 0);

  for (const char* format : {"terminal", "text"}) {
    CliResult r = run_cli({"play", "--format", format, path});
    EXPECT_EQ(r.status, 1) << format;
    EXPECT_NE(r.out.find("readable"), std::string::npos) << format;
    EXPECT_EQ(r.out.find("lost"), std::string::npos) << format;
    EXPECT_EQ(
        r.err.rfind(
            "vigil play: " + path + ": truncated at offset " + std::to_string(second) + " (", 0),
        0u)
        << r.err;
  }
}

TEST_F(PlayCli, ForeignFileIsRefusedByName) {
  const std::string path = dir_.file("notes.txt");
  write_file(path, "hello\n");
  CliResult r = run_cli({"play", path});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "vigil play: " + path +
                       ": not a Vigil recording (it does not start with \"VIGILREC\")\n");
}

TEST_F(PlayCli, SessionInProgressIsShownUpToNow) {
  const std::string path = dir_.file("live.vrec");
  auto w = RecordingWriter::create(path, test_header(), manual_options());
  ASSERT_TRUE(w.ok());
  (*w)->output(kStart + kMs, "so far\r\n");
  ASSERT_TRUE((*w)->flush().ok());
  CliResult r = run_cli({"play", path});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "so far\r\n");
  EXPECT_NE(r.err.find("session in progress"), std::string::npos) << r.err;
}

TEST(RecordingsCli, ListsNewestFirstWithStatus) {
  TempDir dir;
  ASSERT_TRUE(prepare_records_dir(dir.path()).ok());
  auto header_at = [](const char* sid, int64_t start) {
    Header h = test_header(start);
    h.sid = sid;
    return h;
  };
  const std::string records = records_dir(dir.path());
  // Ended an hour after the sample time, with counts in session.end.
  const std::string end_event =
      R"({"enhanced_recording":true,"event":"session.end",)"
      R"("recorded_events":{"command":3,"disk":10,"network":1}})";
  make_recording(dir, {output(kStart + kSec, "x"), event(kStart + 3725 * kSec, end_event)},
                 "log/records/aaaaaaaa-0000-4000-8000-000000000001.vrec",
                 header_at("aaaaaaaa-0000-4000-8000-000000000001", kStart));
  // Newer, still being written.
  auto live = RecordingWriter::create(
      records + "/bbbbbbbb-0000-4000-8000-000000000002.vrec",
      header_at("bbbbbbbb-0000-4000-8000-000000000002", kStart + 86400 * kSec), manual_options());
  ASSERT_TRUE(live.ok());
  (*live)->event(kStart + 86405 * kSec, command_event(0, "/bin/ls"));
  ASSERT_TRUE((*live)->flush().ok());
  // Oldest, damaged.
  {
    const std::string path = records + "/cccccccc-0000-4000-8000-000000000003.vrec";
    auto w = RecordingWriter::create(
        path, header_at("cccccccc-0000-4000-8000-000000000003", kStart - 86400 * kSec),
        manual_options());
    ASSERT_TRUE(w.ok());
    (*w)->output(kStart - 86400 * kSec + kSec, "y");
    ASSERT_TRUE((*w)->close().ok());
    std::string bytes = read_file(path);
    bytes[bytes.size() - 2] ^= 1;
    write_file(path, bytes);
  }
  write_file(records + "/junk.vrec", "junk");

  CliResult r = run_cli({"recordings", "--data-dir", dir.path()});
  EXPECT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines;
  for (size_t at = 0, nl; (nl = r.out.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(r.out.substr(at, nl - at));
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0].rfind("START (UTC)", 0), 0u) << lines[0];
  EXPECT_NE(lines[1].find("bbbbbbbb-"), std::string::npos) << r.out;
  EXPECT_NE(lines[1].find("2023-07-05 16:42:20Z"), std::string::npos) << r.out;
  EXPECT_NE(lines[1].find("command=1 disk=0 network=0"), std::string::npos) << r.out;
  EXPECT_NE(lines[1].find("in progress"), std::string::npos) << r.out;
  EXPECT_NE(lines[2].find("aaaaaaaa-"), std::string::npos) << r.out;
  EXPECT_NE(lines[2].find("1h02m05s"), std::string::npos) << r.out;
  EXPECT_NE(lines[2].find("alice@goteleport.com  ec2-user  interactive  yes"), std::string::npos)
      << r.out;
  EXPECT_NE(lines[2].find("command=3 disk=10 network=1"), std::string::npos) << r.out;
  EXPECT_NE(lines[2].find("ended"), std::string::npos) << r.out;
  EXPECT_NE(lines[3].find("cccccccc-"), std::string::npos) << r.out;
  EXPECT_NE(lines[3].find("damaged at offset "), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "vigil recordings: " + records +
                       "/junk.vrec: not a Vigil recording (it does not start with \"VIGILREC\")\n");

  r = run_cli({"recordings", "--data-dir", dir.path(), "--format", "json"});
  EXPECT_EQ(r.status, 0) << r.err;
  std::vector<nlohmann::json> objects;
  for (size_t at = 0, nl; (nl = r.out.find('\n', at)) != std::string::npos; at = nl + 1)
    objects.push_back(nlohmann::json::parse(r.out.substr(at, nl - at)));
  ASSERT_EQ(objects.size(), 4u);
  EXPECT_EQ(objects[0]["status"], "in progress");
  EXPECT_EQ(objects[1]["status"], "ended");
  EXPECT_EQ(objects[1]["duration_ms"], 3725000);
  EXPECT_EQ(objects[1]["events"]["disk"], 10);
  EXPECT_EQ(objects[1]["start"], "2023-07-04T16:42:20.540000Z");
  EXPECT_EQ(objects[2]["status"], "damaged");
  EXPECT_EQ(objects[2]["damage"]["kind"], "corrupt");
  EXPECT_TRUE(objects[3].contains("error"));
}

TEST(RecordingsCli, EmptyDataDir) {
  TempDir dir;
  CliResult r = run_cli({"recordings", "--data-dir", dir.path()});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "no recordings in " + dir.path() + "/log/records\n");
}

// ---- On a terminal ----

class PtyPlay {
 public:
  explicit PtyPlay(std::vector<std::string> args) {
    args.insert(args.begin(), VIGIL_RECORDING_CLI);
    pid_ = forkpty(&master_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    tcgetattr(master_, &initial_);
  }
  ~PtyPlay() {
    if (pid_ > 0 && status_ < 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) close(master_);
  }

  // Reads until `text` has been shown or `timeout` passes.
  bool wait_for(const std::string& text, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (shown_.find(text) == std::string::npos) {
      if (Clock::now() > deadline) return false;
      read_some(20);
    }
    return true;
  }
  // Waits for the exit; its status as run_cli gives it, -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      read_some(20);
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        read_some(50);
        return status_;
      }
    }
    return -1;
  }
  void key(char c) { ASSERT_EQ(write(master_, &c, 1), 1); }

  // What the player is waiting for, read from the kernel instead of a
  // stopwatch: the timeout of the ppoll it is blocked in, in ns, or -1 when
  // it blocks with none (paused: only a key can wake it). nullopt when it is
  // not blocked in ppoll right now. Read twice around the timeout's
  // memory, so a wait that ended in between is not mistaken for one.
  std::optional<int64_t> ppoll_timeout() {
    auto syscall_line = [&] {
      std::ifstream in("/proc/" + std::to_string(pid_) + "/syscall");
      std::string line;
      std::getline(in, line);
      return line;
    };
    const std::string line = syscall_line();
    std::istringstream in(line);
    long nr = -1;
    std::string fds, nfds, tmo;
    if (!(in >> nr >> fds >> nfds >> tmo) || nr != SYS_ppoll) return std::nullopt;
    const uint64_t address = std::stoull(tmo, nullptr, 16);
    int64_t ns = -1;
    if (address != 0) {
      timespec ts{};
      const int mem = open(("/proc/" + std::to_string(pid_) + "/mem").c_str(), O_RDONLY);
      if (mem < 0) return std::nullopt;
      const ssize_t got = pread(mem, &ts, sizeof ts, static_cast<off_t>(address));
      close(mem);
      if (got != static_cast<ssize_t>(sizeof ts)) return std::nullopt;
      ns = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
    }
    if (syscall_line() != line) return std::nullopt;
    return ns;
  }
  // Waits until the player blocks in a ppoll with no output pending after
  // it (reads the terminal before and after): returns its timeout as
  // ppoll_timeout() gives it, or nullopt when it exits first.
  std::optional<int64_t> next_wait() {
    for (int i = 0; i < 5000; ++i) {
      read_some(0);
      const size_t before = shown_.size();
      auto t = ppoll_timeout();
      read_some(1);
      if (t && shown_.size() == before) return t;
      int status;
      if (status_ >= 0 || waitpid(pid_, &status, WNOHANG) == pid_) return std::nullopt;
    }
    return std::nullopt;
  }
  void signal(int sig) { kill(pid_, sig); }
  const std::string& shown() const { return shown_; }
  // Whether the terminal is back in the mode it had before the replay.
  bool terminal_restored() {
    termios now{};
    tcgetattr(master_, &now);
    return now.c_lflag == initial_.c_lflag && now.c_iflag == initial_.c_iflag &&
           now.c_oflag == initial_.c_oflag;
  }
  bool raw_now() {
    termios now{};
    tcgetattr(master_, &now);
    return !(now.c_lflag & ICANON) && !(now.c_lflag & ECHO);
  }

 private:
  void read_some(int ms) {
    pollfd pfd{master_, POLLIN, 0};
    if (poll(&pfd, 1, ms) > 0) {
      char buf[4096];
      ssize_t n = read(master_, buf, sizeof buf);
      if (n > 0) shown_.append(buf, static_cast<size_t>(n));
    }
  }

  int master_ = -1;
  pid_t pid_ = -1;
  int status_ = -1;
  termios initial_{};
  std::string shown_;
};

std::string slow_session(const TempDir& dir) {
  return make_recording(
      dir, {output(kStart + 100 * kMs, "first\r\n"), output(kStart + 1100 * kMs, "second\r\n"),
            output(kStart + 30 * kSec, "last\r\n")});
}

TEST(PlayOnTerminal, ReplaysAtSpeedAndSkipsIdle) {
  TempDir dir;
  // 3.6 s between "first" and "second" (0.9 s at speed 4, under the 1 s
  // idle cap), 56.4 s before "last" (14.1 s at speed 4, over it).
  const std::string path = make_recording(
      dir, {output(kStart + 100 * kMs, "first\r\n"), output(kStart + 3700 * kMs, "second\r\n"),
            output(kStart + 60 * kSec, "last\r\n")});
  PtyPlay play({"play", "--speed", "4", "--skip-idle", path});
  ASSERT_TRUE(play.wait_for("first", std::chrono::seconds(5))) << play.shown();
  EXPECT_TRUE(play.raw_now());
  // The waits the player asks the kernel for, not a stopwatch.
  auto to_second = play.next_wait();
  ASSERT_TRUE(to_second.has_value()) << "the player never waited for \"second\"";
  EXPECT_EQ(play.shown().find("second"), std::string::npos);
  EXPECT_GT(*to_second, 0);
  EXPECT_LE(*to_second, 900 * kMs) << "3.6 s at speed 4";
  ASSERT_TRUE(play.wait_for("second", std::chrono::seconds(5)));
  auto to_last = play.next_wait();
  ASSERT_TRUE(to_last.has_value()) << "the player never waited for \"last\"";
  EXPECT_EQ(play.shown().find("last"), std::string::npos);
  EXPECT_GT(*to_last, 0);
  EXPECT_LE(*to_last, 1 * kSec) << "idle is cut to 1 s";
  EXPECT_EQ(play.wait_exit(std::chrono::seconds(5)), 0);
  EXPECT_NE(play.shown().find("last"), std::string::npos);
  EXPECT_TRUE(play.terminal_restored());
}

TEST(PlayOnTerminal, QQuitsAndSpacePauses) {
  TempDir dir;
  // "second" is due 30 s after "first": the key is pressed long before.
  const std::string path = make_recording(
      dir, {output(kStart + 100 * kMs, "first\r\n"), output(kStart + 30 * kSec, "second\r\n")});
  PtyPlay play({"play", path});
  ASSERT_TRUE(play.wait_for("first", std::chrono::seconds(5))) << play.shown();
  play.key(' ');
  // Paused is a state, not a time window: the player blocks with no
  // timeout at all, so nothing but a key can make it go on.
  std::optional<int64_t> wait;
  for (int i = 0; i < 2000 && (wait = play.next_wait()) && *wait != -1; ++i) {
  }
  ASSERT_EQ(wait, std::optional<int64_t>(-1)) << "the player did not pause";
  play.key(' ');
  // Playing again: a deadline again, what was left of the 30 s at most.
  for (int i = 0; i < 2000 && (wait = play.next_wait()) && *wait == -1; ++i) {
  }
  ASSERT_TRUE(wait.has_value());
  EXPECT_GT(*wait, 0) << "the player did not resume";
  EXPECT_LE(*wait, 30 * kSec);
  play.key('q');
  EXPECT_EQ(play.wait_exit(std::chrono::seconds(3)), 0);
  EXPECT_EQ(play.shown().find("second"), std::string::npos);
  EXPECT_TRUE(play.terminal_restored());
}

TEST(PlayOnTerminal, SigtermRestoresTheTerminal) {
  TempDir dir;
  const std::string path = slow_session(dir);
  PtyPlay play({"play", path});
  ASSERT_TRUE(play.wait_for("first", std::chrono::seconds(5))) << play.shown();
  ASSERT_TRUE(play.raw_now());
  play.signal(SIGTERM);
  EXPECT_EQ(play.wait_exit(std::chrono::seconds(3)), 128 + SIGTERM);
  EXPECT_TRUE(play.terminal_restored());
}

}  // namespace
}  // namespace vigil::recording
