// The asciicast export read by the real asciinema (Debian's package, see
// scripts/deps.sh): `asciinema cat` and `asciinema play` must accept the
// file and print the session's output, and that output as text must be
// what `vigil play --format text` shows. asciinema opens /dev/tty, so it
// runs on a pseudo-terminal of its own. A missing asciinema fails the test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "../recording/test_util.hpp"
#include "audit/utf8.hpp"
#include "recording/asciicast.hpp"
#include "recording/terminal_text.hpp"

namespace vigil::recording {
namespace {

using namespace testing;

struct PtyRun {
  int status = -1;
  std::string terminal;  // what the program wrote to its terminal (errors)
};

// Runs argv with a pseudo-terminal as its controlling terminal and stdin,
// stdout redirected to `stdout_path`.
PtyRun run_on_pty(const std::vector<std::string>& argv, const std::string& stdout_path,
                  const std::string& config_home) {
  PtyRun run;
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) return run;
  if (pid == 0) {
    int fd = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0) _exit(126);
    setenv("ASCIINEMA_CONFIG_HOME", config_home.c_str(), 1);
    setenv("PYTHONIOENCODING", "utf-8", 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  char buf[4096];
  for (;;) {
    pollfd pfd{master, POLLIN, 0};
    if (poll(&pfd, 1, 100) > 0) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) run.terminal.append(buf, static_cast<size_t>(n));
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      run.status = status;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      run.terminal += "\n[killed after 60 s]";
      break;
    }
  }
  close(master);
  return run;
}

bool asciinema_installed() { return system("command -v asciinema >/dev/null 2>&1") == 0; }

// The output stream with each byte that is not UTF-8 replaced by U+FFFD,
// decoded in one piece: what the export must give however it was split.
std::string expected_stream(const std::vector<Record>& records) {
  std::string all, out;
  for (const auto& r : records)
    if (r.type == RecordType::output) all += r.data;
  const auto* p = reinterpret_cast<const unsigned char*>(all.data());
  for (size_t i = 0; i < all.size();) {
    char32_t cp;
    size_t len = audit::utf8_decode(p + i, all.size() - i, &cp);
    if (len == 0) {
      out += audit::kReplacementChar;
      ++i;
    } else {
      out.append(all, i, len);
      i += len;
    }
  }
  return out;
}

std::vector<Record> busy_session() {
  std::vector<Record> r;
  int64_t t = kStart;
  auto at = [&](int64_t step_ms) { return t += step_ms * kMs; };
  r.push_back(output(at(50), "\x1b]0;alice@node: ~\x07\x1b[01;32malice@node\x1b[00m:~$ "));
  r.push_back(output(at(400), "l"));
  r.push_back(output(at(120), "s"));
  r.push_back(output(at(300), "\r\n"));
  r.push_back(
      event(at(2), R"({"argv":["--color"],"event":"session.command","path":"/usr/bin/ls"})"));
  r.push_back(output(at(5), "caf\xc3"));  // é split across two reads
  r.push_back(output(at(1), "\xa9.txt  \x1b[01;34mdir\x1b[0m  \xe2\x82"));
  r.push_back(output(at(1),
                     "\xac.txt  bad\xff"
                     "byte\r\n"));
  r.push_back(resize(at(200), 120, 40));
  r.push_back(output(at(10), "alice@node:~$ "));
  for (int i = 0; i < 50; ++i)
    r.push_back(output(at(20), "[" + std::to_string(2 * i) + "%] Building CXX object src/f" +
                                   std::to_string(i) + ".cpp.o\r\n"));
  r.push_back(output(at(5), "progress 10%\rprogress 100%\r\n\xf0\x9f\x98"));
  r.push_back(output(at(5), "\x80 done\r\nexit\r\n"));
  r.push_back(output(at(5), "tail cut \xe2\x82"));  // never completed
  return r;
}

TEST(Asciinema, CatAndPlayShowTheRecordedOutput) {
  ASSERT_TRUE(asciinema_installed())
      << "asciinema is not installed: apt-get install asciinema (listed in scripts/deps.sh)";
  TempDir dir;
  const std::vector<Record> records = busy_session();
  const std::string vrec = make_recording(dir, records);

  // Export through the reader, as `vigil play --format asciicast` does.
  auto reader = RecordingReader::open(vrec);
  ASSERT_TRUE(reader.ok());
  AsciicastExport cast(reader->header());
  TextExport text(reader->header(), /*show_commands=*/false);
  std::string cast_text, plain;
  cast.begin(cast_text);
  Record rec;
  while (reader->next(rec)) {
    cast.record(rec, cast_text);
    text.record(rec, plain);
  }
  cast.finish(cast_text);
  text.finish(plain);
  const std::string cast_path = dir.file("session.cast");
  write_file(cast_path, cast_text);

  const std::string expected = expected_stream(records);
  struct Case {
    const char* name;
    std::vector<std::string> argv;
  };
  for (const Case& c : {Case{"cat", {"asciinema", "cat", cast_path}},
                        Case{"play", {"asciinema", "play", "-s", "20", "-i", "0.01", cast_path}}}) {
    SCOPED_TRACE(c.name);
    const std::string out_path = dir.file(std::string(c.name) + ".out");
    PtyRun run = run_on_pty(c.argv, out_path, dir.path());
    ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
        << "asciinema " << c.name << " failed: " << run.terminal;
    const std::string shown = read_file(out_path);
    EXPECT_EQ(shown, expected);

    TerminalText as_text;
    std::string shown_text;
    as_text.feed(shown, shown_text);
    as_text.finish(shown_text);
    EXPECT_EQ(shown_text, plain);
  }
  EXPECT_NE(plain.find("café.txt  dir  €.txt  bad\xef\xbf\xbd"
                       "byte\n"),
            std::string::npos)
      << plain;
  EXPECT_NE(plain.find("progress 100%\n😀 done\nexit\n"), std::string::npos) << plain;
}

}  // namespace
}  // namespace vigil::recording
