// Hostile data in the auditor's tools (issue 7): what a user prints in a
// session, what a certificate holder calls himself, and files damaged or
// planted in the data directory are input that `vigil play` and
// `vigil events` must survive. Each test performs the attack against the
// real binary and asserts the output's size, the exit status and the
// messages. Recordings are made with the project's own writer (the attacks
// are in the content, not the framing); one is recorded from a real session.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "fixture.hpp"
#include "recording/writer.hpp"
#include "terminal.hpp"

namespace e2e {
namespace {

namespace rec = vigil::recording;

constexpr int64_t kStart = 1'688'488'940'540'000'000;  // 2023-07-04T16:42:20.54Z
constexpr int64_t kMs = 1'000'000;
constexpr const char* kServer = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
constexpr const char* kDay = "2026-11-27.00:00:00.log";

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

struct Rec {
  rec::RecordType type;
  int64_t time_ns;
  std::string data;
};

// A recording with an 80x24 terminal (or `cols` wide) holding `records`;
// the writer splits output into records of at most `chunk_bytes`.
std::string make_recording(const std::string& path, const std::vector<Rec>& records,
                           uint16_t cols = 80, size_t chunk_bytes = 64 * 1024) {
  rec::Header h;
  h.sid = "86aca627-971d-4883-854d-d309ba04c658";
  h.server_id = kServer;
  h.user = "mallory";
  h.login = "root";
  h.start_ns = kStart;
  h.cols = cols;
  h.rows = 24;
  rec::WriterOptions o;
  o.chunk_bytes = chunk_bytes;
  o.flush_interval = std::chrono::milliseconds(0);
  o.reorder_window_ns = 0;
  o.clock = [] { return int64_t{1} << 62; };
  auto w = rec::RecordingWriter::create(path, h, o);
  EXPECT_TRUE(w.ok()) << (w ? "" : w.error().message);
  if (!w) return path;
  for (const auto& r : records) {
    if (r.type == rec::RecordType::output)
      (*w)->output(r.time_ns, r.data);
    else
      (*w)->event(r.time_ns, r.data);
  }
  EXPECT_TRUE((*w)->close().ok());
  return path;
}

off_t file_size(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

class Hostile : public VigilTest {
 protected:
  // `vigil ARGS > out` with the size of what it may write capped at
  // `max_mib` (ulimit -f: past it the kernel stops it with SIGXFSZ), so
  // that an unbounded renderer fails the test instead of filling the disk.
  Outcome run_capped(const std::vector<std::string>& args, const std::string& out_file,
                     int max_mib = 16) {
    std::vector<std::string> argv = {"/bin/sh", "-c",
                                     "ulimit -f " + std::to_string(max_mib * 2048) +
                                         "; exec \"$0\" \"$@\" > '" + out_file + "'",
                                     kVigil};
    argv.insert(argv.end(), args.begin(), args.end());
    return run({.argv = argv});
  }

  std::string log_file() const { return data_dir() + "/log/" + kServer + "/" + kDay; }
  void write_log(const std::string& text) {
    std::filesystem::create_directories(data_dir() + "/log/" + kServer);
    write_file(log_file(), text);
  }
  std::vector<std::string> events_argv(std::vector<std::string> more = {}) const {
    std::vector<std::string> argv = {kVigil, "events", "--data-dir", data_dir(), "--from",
                                     "2026-11-27", "--to", "2026-11-28"};
    argv.insert(argv.end(), more.begin(), more.end());
    return argv;
  }
};

// An event line of the audit log as a hand-written (or forged) file holds it.
std::string log_line(const std::string& time, const std::string& user, const std::string& rest) {
  return R"({"event":"session.command","time":")" + time + R"(","user":")" + user +
         R"(","login":"root","pid":7,"program":"sh","path":"/bin/true","argv":[],"return_code":0)" +
         rest + "}\n";
}

TEST_F(Hostile, CursorForwardFloodStaysWithinTheTerminalWidth) {
  // 200,000 times "10,000 columns right", then a character: a 2.4 KB file
  // that made `play --format text` write 15.6 GB.
  const std::string file = make_recording(
      path("flood.vrec"),
      {{rec::RecordType::output, kStart + kMs, repeat("\x1b[10000C", 200'000) + "x\r\n"},
       {rec::RecordType::output, kStart + 2 * kMs, repeat("\x1b[10000Cy\r\n", 30'000)}});
  EXPECT_LT(file_size(file), 64 * 1024);
  const std::string out = path("flood.txt");
  Outcome r = run_capped({"play", "--format", "text", file}, out);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // 30,001 lines of 79 blanks, a letter and a newline (the first was 2 GB).
  EXPECT_EQ(file_size(out), 81 * (1 + 30'000));
  const std::string text = read_file(out);
  EXPECT_EQ(text.substr(0, 162), std::string(79, ' ') + "x\n" + std::string(79, ' ') + "y\n");
}

TEST_F(Hostile, InsertFloodIsLinear) {
  // 200,000 inserts of 10,000 blanks: each moved the whole line, which grew
  // by 10,000 cells every time (minutes, then gigabytes).
  const std::string file = make_recording(
      path("insert.vrec"),
      {{rec::RecordType::output, kStart + kMs, "abc\r" + repeat("\x1b[10000@", 200'000) + "z\r\n"},
       {rec::RecordType::output, kStart + 2 * kMs, "ab\x1b[10000b\r\n"}});
  EXPECT_LT(file_size(file), 64 * 1024);
  const std::string out = path("insert.txt");
  Outcome r = run_capped({"play", "--format", "text", file}, out);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(out), "z\n" + std::string("a") + std::string(79, 'b') + "\n");
}

TEST_F(Hostile, AHugeOutputRecordIsExportedInPieces) {
  // 8 MiB of escape sequences in one record (a writer makes 64 KiB ones,
  // a forged file can hold up to 64 MiB).
  const std::string raw = repeat("\x1b[10000C", 1 << 20);
  const std::string file =
      make_recording(path("big.vrec"), {{rec::RecordType::output, kStart, raw}}, 80, 16 << 20);
  const std::string out = path("big.cast");
  Outcome r = run_capped({"play", "--format", "asciicast", file}, out, 512);
  EXPECT_EQ(r.status, 0) << r.err;
  // The record is exported in 64 KiB pieces, "\u001b" for each ESC.
  const size_t pieces = raw.size() / (64 * 1024);
  const size_t header = std::string("{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":"
                                    "1688488940}\n")
                            .size();
  const size_t line = std::string("[0.000000,\"o\",\"\"]\n").size();
  EXPECT_EQ(static_cast<size_t>(file_size(out)), header + pieces * line + raw.size() / 8 * 13);
}

TEST_F(Hostile, ALongExportStopsOnSigtermAndSaysSo) {
  const std::string file = make_recording(
      path("long.vrec"), {{rec::RecordType::output, kStart, repeat("x\x1b[10000b\r\n", 1 << 20)}});
  for (int sig : {SIGTERM, SIGINT}) {
    // stdout is a pipe the test stops reading: once it is full, vigil waits
    // in write() with most of the export still to do.
    int out[2], err[2];
    ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
    ASSERT_EQ(pipe2(err, O_CLOEXEC), 0);
    const pid_t pid = fork();
    if (pid == 0) {
      dup2(out[1], STDOUT_FILENO);
      dup2(err[1], STDERR_FILENO);
      execl(kVigil.c_str(), kVigil.c_str(), "play", "--format", "text", file.c_str(), nullptr);
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    // The first bytes: the export runs (its signal handlers are in place).
    char buf[4096];
    ASSERT_GT(read(out[0], buf, sizeof buf), 0);
    kill(pid, sig);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    std::string message;
    ssize_t n;
    while ((n = read(err[0], buf, sizeof buf)) > 0) message.append(buf, static_cast<size_t>(n));
    close(out[0]);
    close(err[0]);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig);
    EXPECT_EQ(message, std::string("vigil play: stopped by ") + strsignal(sig) +
                           ": the output is incomplete\n");
  }
}

TEST_F(Hostile, DeeplyNestedEventInARecordingIsReportedAndSkipped) {
  const std::string deep = R"({"event":"session.command","path":"/bin/x","argv":[)" +
                           std::string(100'000, '[') + std::string(100'000, ']') + "]}";
  const std::string file = make_recording(
      path("deep.vrec"),
      {{rec::RecordType::output, kStart + 1 * kMs, "one\r\n"},
       {rec::RecordType::event, kStart + 2 * kMs, deep},
       {rec::RecordType::event, kStart + 3 * kMs,
        R"({"event":"session.command","path":"/bin/ls","argv":["-l"]})"},
       {rec::RecordType::output, kStart + 4 * kMs, "two\r\n"}});
  Outcome r = run({.argv = {kVigil, "play", "--format", "text", file}});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "one\n[+0.003s] $ /bin/ls -l\ntwo\n");
  EXPECT_EQ(r.err, "vigil play: warning: " + file +
                       ": record 2: skipped an event (nested deeper than 64 levels)\n");
}

// A forged recording's event records are what `vigil play --format json`
// prints: an escape sequence in them must reach the auditor's terminal
// escaped, and a record that is not JSON must not reach it at all.
TEST_F(Hostile, JsonExportNeverPassesControlBytesToTheTerminal) {
  const std::string file = make_recording(
      path("forged.vrec"),
      {// Raw ESC and BEL inside a string: not JSON, so never printed.
       {rec::RecordType::event, kStart + 1 * kMs,
        "{\"event\":\"session.command\",\"path\":\"\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\"}"},
       {rec::RecordType::event, kStart + 2 * kMs, "\x1b[31mnot json at all"},
       // C1 CSI (U+009B) raw is valid JSON, and some terminals obey it: escaped.
       {rec::RecordType::event, kStart + 3 * kMs,
        "{\"event\":\"session.command\",\"path\":\"\xc2\x9b" "2J\"}"},
       {rec::RecordType::event, kStart + 4 * kMs,
        R"({"event":"session.command","path":"/bin/ls"})"}});
  Outcome r = run({.argv = {kVigil, "play", "--format", "json", file}});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"event\":\"session.command\",\"path\":\"\\u009b2J\"}\n"
            "{\"event\":\"session.command\",\"path\":\"/bin/ls\"}\n");
  EXPECT_EQ(split_lines(r.err).size(), 2u) << r.err;
  EXPECT_THAT(r.err, ::testing::HasSubstr("skipped an event that is not a JSON object"));
}

TEST_F(Hostile, SpeedMustBeAFactorInRange) {
  const std::string file =
      make_recording(path("s.vrec"), {{rec::RecordType::output, kStart + kMs, "hi\r\n"}});
  for (const char* speed : {"nan", "inf", "-inf", "0", "-1", "0.001", "1e9", "2x"}) {
    Outcome r = run({.argv = {kVigil, "play", "--speed", speed, file}});
    EXPECT_EQ(r.status, 125) << speed;
    EXPECT_NE(r.err.find("give a factor from 0.01 to 1000"), std::string::npos)
        << speed << ": " << r.err;
    EXPECT_EQ(r.out, "") << speed;
  }
  for (const char* speed : {"0.01", "2.5", "1000"}) {
    Outcome r = run({.argv = {kVigil, "play", "--speed", speed, file}});
    EXPECT_EQ(r.status, 0) << speed << ": " << r.err;
    EXPECT_EQ(r.out, "hi\r\n") << speed;
  }
}

TEST_F(Hostile, EventsSkipADeeplyNestedLineAndPrintTheRest) {
  const std::string first = log_line("2026-11-27T10:00:00Z", "alice", "");
  // An event type the text shows as key=value: its value was printed with
  // nlohmann's dump(), which recursed 200,000 times.
  write_log(first + R"({"event":"custom","time":"2026-11-27T10:00:01Z","x":)" +
            std::string(200'000, '[') + std::string(200'000, ']') + "}\n" +
            log_line("2026-11-27T10:00:02Z", "bob", ""));
  Outcome r = run({.argv = events_argv()});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "2026-11-27T10:00:00.000Z user=alice login=root session.command pid=7 sh: /bin/true "
            "→ ok\n"
            "2026-11-27T10:00:02.000Z user=bob login=root session.command pid=7 sh: /bin/true "
            "→ ok\n");
  EXPECT_EQ(r.err, "vigil events: warning: log/" + std::string(kServer) + "/" + kDay + ":2 (byte " +
                       std::to_string(first.size()) +
                       "): skipped a corrupt line (nested deeper than 64 levels)\n");
}

TEST_F(Hostile, EventsNeverOpenAFifoOrADeviceNamedLikeADayFile) {
  write_log(log_line("2026-11-27T10:00:00Z", "alice", ""));
  const std::string dir = data_dir() + "/log/" + kServer + "/";
  ASSERT_EQ(mkfifo((dir + "2026-11-26.00:00:00.log").c_str(), 0600), 0);
  std::filesystem::create_symlink("/dev/zero", dir + "2026-11-28.00:00:00.log");
  Outcome r = run({.argv = events_argv()}, 20000);
  EXPECT_FALSE(r.timed_out) << "vigil events blocked or read forever";
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "2026-11-27T10:00:00.000Z user=alice login=root session.command pid=7 sh: /bin/true "
            "→ ok\n");
  const std::string log = "vigil events: warning: log/" + std::string(kServer) + "/";
  EXPECT_EQ(r.err, log + "2026-11-26.00:00:00.log: skipped: a FIFO, not a day file (remove it)\n" +
                       log +
                       "2026-11-28.00:00:00.log: skipped: a symbolic link, not a day file "
                       "(remove it)\n");
}

TEST_F(Hostile, AUserNameCannotForgeFieldsInTheText) {
  // The certificate's key id becomes "user"; whoever got the certificate chose it.
  write_log(log_line("2026-11-27T10:00:00Z", "x login=root auth success=true", ""));
  Outcome r = run({.argv = events_argv()});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "2026-11-27T10:00:00.000Z user='x login=root auth success=true' login=root "
            "session.command pid=7 sh: /bin/true → ok\n");
}

// The attack as a user performs it: a real session on a terminal prints
// the flood, and the auditor exports its recording.
TEST_F(Hostile, ARecordedSessionThatPrintsAFlood) {
  REQUIRE_ROOT();
  Terminal term(record_argv({"--tty"}, {"/bin/sh", "-c",
                                        "i=0; while [ $i -lt 30000 ]; do printf '\\033[10000C'; "
                                        "i=$((i+1)); done; printf 'x\\r\\n'"}));
  ASSERT_EQ(term.finish(), 0);
  Outcome cast = run({.argv = {kVigil, "recordings", "--data-dir", data_dir(), "--format", "json"}});
  ASSERT_EQ(cast.status, 0) << cast.err;
  auto sessions = split_lines(cast.out);
  ASSERT_EQ(sessions.size(), 1u) << cast.out;
  const std::string sid = nlohmann::json::parse(sessions[0])["sid"];
  // The width the session's terminal had, from the asciicast header.
  Outcome header = run({.argv = {kVigil, "play", "--data-dir", data_dir(), "--format",
                                 "asciicast", sid}});
  ASSERT_EQ(header.status, 0) << header.err;
  const int width = nlohmann::json::parse(split_lines(header.out).at(0))["width"];
  const int columns = width == 0 || width > 1024 ? 1024 : width;

  const std::string out = path("session.txt");
  Outcome r = run_capped({"play", "--data-dir", data_dir(), "--format", "text", sid}, out);
  EXPECT_EQ(r.status, 0) << r.err;
  // The session's text, the marks of its commands ("[+0.012s] $ /bin/sh ...") aside.
  std::vector<std::string> text;
  for (const auto& line : split_lines(read_file(out)))
    if (line.rfind("[+", 0) != 0) text.push_back(line);
  EXPECT_EQ(text, std::vector<std::string>{std::string(columns - 1, ' ') + "x"});
  EXPECT_LT(file_size(out), 4096);
}

}  // namespace
}  // namespace e2e
