// recording_bench: how big a session recording gets per hour of a busy
// terminal, and how fast it is written and read back. No root needed.
//
// The session is synthetic but shaped like a real one: a developer
// rebuilding a C++ project for an hour. The terminal prints ~20 lines a
// second (CMake progress lines in colour, gcc warnings with their source
// line and caret, test results), in pty-sized reads. With enhanced
// recording each compile also yields its audit events, encoded by the real
// encoder: execs of c++, cc1plus and as with full argv (command) and the
// ~120 headers each compile opens (disk).
//
// Each workload is written twice, with the simulated hour fed as fast as
// possible: "live" flushes a chunk every simulated second, as the writer's
// flusher does in a real session; "64KiB" only when a chunk is full, the
// best case for compression. Reported per workload: records, raw payload
// and file bytes per hour, the ratio, chunks, write and read throughput.
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "audit/encode.hpp"
#include "recording/reader.hpp"
#include "recording/writer.hpp"

using namespace vigil;
using namespace vigil::recording;

namespace {

constexpr int64_t kSec = 1'000'000'000;

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * kSec + ts.tv_nsec;
}

// Deterministic, so every run measures the same session.
class Random {
 public:
  uint32_t next() {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state_ >> 33);
  }
  uint32_t below(uint32_t n) { return next() % n; }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[below(static_cast<uint32_t>(v.size()))];
  }

 private:
  uint64_t state_ = 0x853c49e6748fea9bull;
};

const std::vector<std::string> kDirs = {"engine",    "audit",    "config", "cmd",
                                        "recording", "auditlog", "term",   "ssh",
                                        "proxy",     "auth",     "web"};
const std::vector<std::string> kFiles = {
    "decode",  "encode", "engine", "probe",     "cgroup", "launch", "host",    "json",    "timefmt",
    "uuid",    "base64", "text",   "writer",    "reader", "format", "summary", "session", "server",
    "channel", "kex",    "cipher", "handshake", "token",  "role",   "values",  "relay",   "pty"};
const std::vector<std::string> kVars = {"count", "offset", "len", "fd", "session", "rc", "buf"};
const std::vector<std::string> kHeaders = {"/usr/include/c++/12/string",
                                           "/usr/include/c++/12/vector",
                                           "/usr/include/c++/12/memory",
                                           "/usr/include/c++/12/bits/basic_string.h",
                                           "/usr/include/c++/12/bits/stl_vector.h",
                                           "/usr/include/x86_64-linux-gnu/c++/12/bits/c++config.h",
                                           "/usr/include/features.h",
                                           "/usr/include/stdint.h",
                                           "/usr/include/nlohmann/json.hpp",
                                           "/usr/include/CLI/CLI.hpp",
                                           "/usr/include/c++/12/type_traits",
                                           "/usr/include/c++/12/bits/move.h",
                                           "/usr/include/x86_64-linux-gnu/bits/types.h",
                                           "/usr/include/c++/12/optional"};

// What one simulated second of the session produced.
struct Second {
  std::vector<std::string> reads;   // output, as the pty delivered it
  std::vector<std::string> events;  // audit events, JSON lines
};

class BuildSession {
 public:
  explicit BuildSession(bool commands, bool disk) : commands_(commands), disk_(disk) {
    meta_.cluster_name = "purple";
    meta_.server_hostname = "build-node-3.example.internal";
    meta_.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
    meta_.sid = "86aca627-971d-4883-854d-d309ba04c658";
    meta_.login = "dev";
    meta_.user = "alice@goteleport.com";
  }

  // ~20 lines a second in reads of 1 to 4 lines; two compiles a second.
  Second next_second(int64_t t) {
    Second s;
    int lines = 17 + static_cast<int>(rng_.below(7));
    while (lines > 0) {
      std::string read;
      for (int n = 1 + static_cast<int>(rng_.below(4)); n > 0 && lines > 0; --n, --lines)
        read += next_line(t, s);
      s.reads.push_back(std::move(read));
    }
    return s;
  }

 private:
  std::string progress() {
    char p[16];
    std::snprintf(p, sizeof p, "[%3d%%] ", percent_);
    return p;
  }

  std::string next_line(int64_t t, Second& s) {
    const uint32_t kind = rng_.below(100);
    const std::string& dir = rng_.pick(kDirs);
    const std::string& file = rng_.pick(kFiles);
    if (kind < 5) {  // a gcc warning: location, message, source line, caret
      const int line = 20 + static_cast<int>(rng_.below(400));
      const std::string& var = rng_.pick(kVars);
      return "\x1b[01m\x1b[Ksrc/" + dir + "/" + file + ".cpp:" + std::to_string(line) + ":" +
             std::to_string(5 + rng_.below(30)) +
             ":\x1b[m\x1b[K \x1b[01;35m\x1b[Kwarning: \x1b[m\x1b[Kunused variable "
             "\xe2\x80\x98\x1b[01m\x1b[K" +
             var +
             "\x1b[m\x1b[K\xe2\x80\x99 [\x1b[01;35m\x1b[K"
             "-Wunused-variable\x1b[m\x1b[K]\r\n  " +
             std::to_string(line) + " |   size_t " + var +
             " = 0;\r\n      |          \x1b[01;35m\x1b[K^~~~~\x1b[m\x1b[K\r\n";
    }
    if (kind < 12) {  // test results
      const std::string name = file + "_test." + rng_.pick(kVars) + std::to_string(rng_.below(40));
      return "[ RUN      ] " + name + "\r\n[       OK ] " + name + " (" +
             std::to_string(rng_.below(30)) + " ms)\r\n";
    }
    if (kind < 15) {
      advance();
      return progress() + "\x1b[32m\x1b[1mLinking CXX static library libvigil_" + dir +
             ".a\x1b[0m\r\n" + progress() + "Built target vigil_" + dir + "\r\n";
    }
    advance();
    if (kind % 10 == 0) compile_events(t, dir, file, s);
    return progress() + "\x1b[32mBuilding CXX object src/" + dir + "/CMakeFiles/vigil_" + dir +
           ".dir/" + file + ".cpp.o\x1b[0m\r\n";
  }

  void advance() {
    if (++step_ % 3 == 0) percent_ = percent_ >= 100 ? 0 : percent_ + 1;
  }

  void exec(int64_t t, const std::string& path, std::vector<std::string> argv, Second& s) {
    if (!commands_) return;
    Event ev;
    ev.time_ns = t;
    ev.process = {pid_, pid_, pid_ - 1, 1000, 1000, 7, 2360, path.substr(path.rfind('/') + 1)};
    CommandEvent cmd;
    cmd.path = path;
    cmd.argv = std::move(argv);
    ev.body = cmd;
    audit::encode_event(ev, meta_, ei_++, "9b825e22-744d-4130-94c5-dea49198ae3d", line_);
    s.events.push_back(std::move(line_));
    line_.clear();
  }

  // One compile: the driver, the compiler proper, the assembler, the headers.
  void compile_events(int64_t t, const std::string& dir, const std::string& file, Second& s) {
    const std::string src = "/home/dev/vigil/src/" + dir + "/" + file + ".cpp";
    const std::string obj = "src/" + dir + "/CMakeFiles/vigil_" + dir + ".dir/" + file + ".cpp.o";
    pid_ += 3;
    exec(t, "/usr/bin/c++",
         {"-I/home/dev/vigil/src", "-isystem", "/usr/include/libbpf", "-O2", "-g", "-DNDEBUG",
          "-std=c++20", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-MD", "-MT", obj,
          "-MF", obj + ".d", "-o", obj, "-c", src},
         s);
    exec(t + 1'000'000, "/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus",
         {"-quiet",
          "-I",
          "/home/dev/vigil/src",
          "-imultiarch",
          "x86_64-linux-gnu",
          "-MD",
          obj + ".d",
          "-MT",
          obj,
          "-D_GNU_SOURCE",
          "-DNDEBUG",
          "-isystem",
          "/usr/include/libbpf",
          src,
          "-quiet",
          "-dumpdir",
          "src/",
          "-dumpbase",
          file + ".cpp",
          "-dumpbase-ext",
          ".cpp",
          "-mtune=generic",
          "-march=x86-64",
          "-g",
          "-O2",
          "-Wall",
          "-Wextra",
          "-std=c++20",
          "-o",
          "/tmp/ccA1b2C3.s"},
         s);
    if (disk_) {
      for (int i = 0; i < 120; ++i) {
        Event ev;
        ev.time_ns = t + 2'000'000 + i * 100'000;
        ev.process = {pid_ + 1, pid_ + 1, pid_, 1000, 1000, 7, 2360, "cc1plus"};
        DiskEvent d;
        d.path = i == 0 ? src : rng_.pick(kHeaders);
        d.flags = 0;  // O_RDONLY
        d.return_code = rng_.below(5) == 0 ? -2 : 0;
        ev.body = d;
        audit::encode_event(ev, meta_, ei_++, "da151350-bf45-4a04-a62b-7a4fc805e744", line_);
        s.events.push_back(std::move(line_));
        line_.clear();
      }
    }
    exec(t + 400'000'000, "/usr/bin/as", {"--64", "-o", obj, "/tmp/ccA1b2C3.s"}, s);
  }

  bool commands_, disk_;
  audit::SessionMeta meta_;
  Random rng_;
  int percent_ = 0;
  uint64_t step_ = 0;
  uint32_t pid_ = 40000;
  uint64_t ei_ = 0;
  std::string line_;
};

struct Measure {
  WriterStats stats;
  double write_seconds = 0;
  double read_seconds = 0;
  uint64_t records_read = 0;
};

// Feeds `seconds` of the session to a writer, as fast as it can take them.
Measure run(const std::string& path, int seconds, bool commands, bool disk, bool live) {
  Header h;
  h.sid = "86aca627-971d-4883-854d-d309ba04c658";
  h.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
  h.user = "alice@goteleport.com";
  h.login = "dev";
  h.start_ns = 1'688'488'940'540'000'000;
  int64_t now = h.start_ns;
  WriterOptions o;
  o.flush_interval = std::chrono::milliseconds(0);  // simulated time: flushed below
  o.clock = [&now] { return now; };
  unlink(path.c_str());

  BuildSession session(commands, disk);
  std::vector<Second> seconds_of_output;  // generated first: not part of the timing
  seconds_of_output.reserve(seconds);
  for (int i = 0; i < seconds; ++i)
    seconds_of_output.push_back(session.next_second(now + i * kSec));

  Measure m;
  const int64_t begin = monotonic_ns();
  auto w = RecordingWriter::create(path, h, o);
  if (!w) {
    std::fprintf(stderr, "recording_bench: %s\n", w.error().message.c_str());
    std::exit(1);
  }
  for (int i = 0; i < seconds; ++i) {
    const Second& s = seconds_of_output[i];
    const int64_t second_start = h.start_ns + i * kSec;
    for (size_t r = 0; r < s.reads.size(); ++r) {
      now = second_start + static_cast<int64_t>(r) * kSec / static_cast<int64_t>(s.reads.size());
      (*w)->output(now, s.reads[r]);
      if (r == 0)
        for (const auto& e : s.events) (*w)->event(now, e);
    }
    now = second_start + kSec;
    if (live && !(*w)->flush()) std::exit(1);  // what the flusher does each second
  }
  if (!(*w)->close()) std::exit(1);
  m.write_seconds = static_cast<double>(monotonic_ns() - begin) / 1e9;
  m.stats = (*w)->stats();

  const int64_t read_begin = monotonic_ns();
  auto reader = RecordingReader::open(path);
  if (!reader) std::exit(1);
  Record rec;
  while (reader->next(rec)) ++m.records_read;
  m.read_seconds = static_cast<double>(monotonic_ns() - read_begin) / 1e9;
  if (reader->damage() || m.records_read != m.stats.records) {
    std::fprintf(stderr, "recording_bench: read back %llu of %llu records\n",
                 (unsigned long long)m.records_read, (unsigned long long)m.stats.records);
    std::exit(1);
  }
  unlink(path.c_str());
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"recording_bench: recording size per hour and write/read throughput"};
  int seconds = 3600;
  std::string dir = "/tmp";
  app.add_option("--seconds", seconds, "simulated session length")->check(CLI::Range(1, 86400));
  app.add_option("--dir", dir, "where the recordings are written (and removed)");
  CLI11_PARSE(app, argc, argv);

  struct Workload {
    const char* name;
    bool commands, disk;
  };
  const Workload workloads[] = {{"output only", false, false},
                                {"output + command", true, false},
                                {"output + command + disk", true, true}};
  const double per_hour = 3600.0 / seconds;
  std::printf("Simulated session: %d s of a C++ build, ~20 lines/s, events of 2 compiles/s\n\n",
              seconds);
  std::printf(
      "| workload | flushing | records/h | raw MB/h | file MB/h | ratio | chunk count | "
      "write MB/s (raw) | write records/s | read records/s |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& wl : workloads) {
    for (bool live : {true, false}) {
      const std::string path = dir + "/recording_bench." + std::to_string(getpid()) + ".vrec";
      Measure m = run(path, seconds, wl.commands, wl.disk, live);
      const double raw_mb = m.stats.raw_bytes / 1e6, file_mb = m.stats.file_bytes / 1e6;
      std::printf("| %s | %s | %.0f | %.2f | %.2f | %.1fx | %llu | %.0f | %.0f | %.0f |\n", wl.name,
                  live ? "live (1 s)" : "64 KiB", m.stats.records * per_hour, raw_mb * per_hour,
                  file_mb * per_hour, raw_mb / file_mb, (unsigned long long)m.stats.chunks,
                  raw_mb / m.write_seconds, m.stats.records / m.write_seconds,
                  m.records_read / m.read_seconds);
      std::fflush(stdout);
    }
  }
  return 0;
}
