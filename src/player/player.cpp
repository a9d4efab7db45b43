#include "player/player.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "audit/text_json.hpp"
#include "common/clock.hpp"
#include "recording/asciicast.hpp"
#include "recording/terminal_text.hpp"
#include "recording/time_offset.hpp"
#include "term/pty.hpp"

namespace vigil::player {
namespace {

// JSON text a terminal shows as text: no C0 control, DEL or C1 control
// (U+0080..U+009F, which some terminals obey) anywhere, and parseable.
bool safe_json_line(std::string_view line) {
  for (size_t i = 0; i < line.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == 0xc2 && i + 1 < line.size() && static_cast<unsigned char>(line[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(line[i + 1]) <= 0x9f)
      return false;
  }
  return audit::parse_json_bounded(line).has_value();
}

// --skip-idle: the longest pause replayed.
constexpr int64_t kIdleCapNs = 1'000'000'000;
// The exports handle output in pieces of at most this size, checking for a
// stop signal and writing what they made in between: a record can be
// megabytes that expand manyfold (JSON escapes, text lines), and memory and
// the time to stop stay bounded by a piece, not a record.
constexpr size_t kExportPiece = 64 * 1024;
// Warnings about events an export skipped, printed at most.
constexpr size_t kMaxWarnings = 100;

std::atomic<int> g_signal{0};

void note_signal(int sig) { g_signal = sig; }

// SIGINT, SIGTERM and SIGHUP end the replay through the main loop, which
// restores the terminal; no SA_RESTART, so a wait or a write returns at once.
void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = note_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

// Buffered stdout; false once a write fails (a closed pipe, a signal).
class Stdout {
 public:
  bool write(std::string_view bytes) {
    buf_ += bytes;
    return buf_.size() < (1 << 16) || flush();
  }
  bool flush() {
    size_t off = 0;
    while (off < buf_.size()) {
      // A signal during a blocked write can come back as a short write,
      // not EINTR: without this check the next write blocks again.
      if (g_signal) {
        buf_.clear();
        return false;
      }
      ssize_t n = ::write(STDOUT_FILENO, buf_.data() + off, buf_.size() - off);
      if (n < 0 && errno == EINTR && !g_signal) continue;
      if (n <= 0) {
        buf_.clear();
        return false;
      }
      off += static_cast<size_t>(n);
    }
    buf_.clear();
    return true;
  }

 private:
  std::string buf_;
};


// Replays output at its pace on a terminal. Keys (when stdin is a terminal,
// in raw mode): space pauses and resumes, q or Ctrl-C quits.
class LiveReplay {
 public:
  LiveReplay(const PlayOptions& args, bool keys) : args_(args), keys_(keys) {}

  // False when the user or a signal stopped the replay.
  bool play(recording::RecordingReader& reader) {
    // The stop signals stay blocked but during the waits (ppoll unblocks
    // them atomically): one that arrives just before a long pause cannot be
    // missed until the pause is over.
    sigset_t stop;
    sigemptyset(&stop);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, sig);
    pthread_sigmask(SIG_BLOCK, &stop, &wait_mask_);
    const bool completed = replay(reader);
    pthread_sigmask(SIG_SETMASK, &wait_mask_, nullptr);
    return completed && !g_signal;
  }

 private:
  bool replay(recording::RecordingReader& reader) {
    Stdout out;
    recording::Record r;
    int64_t prev_ns = reader.header().start_ns;
    while (reader.next(r)) {
      if (r.type != recording::RecordType::output) continue;
      // Recorded times are the file's: the gap may be anything up to the
      // whole int64 range, and is divided by a speed as low as kMinSpeed.
      const double gap =
          static_cast<double>(std::max<int64_t>(0, recording::offset_ns(r.time_ns, prev_ns)));
      int64_t pause = static_cast<int64_t>(std::min(gap / args_.speed, 0x1p62));
      if (args_.skip_idle) pause = std::min(pause, kIdleCapNs);
      prev_ns = std::max(prev_ns, r.time_ns);
      if (!wait(pause) || !out.write(r.data) || !out.flush()) return false;
    }
    return true;
  }

  // Waits `ns` of playing time (paused time does not count) while reading keys.
  bool wait(int64_t ns) {
    int64_t deadline = clock::monotonic_ns() + ns;
    int64_t remaining_when_paused = 0;
    bool paused = false;
    for (;;) {
      if (g_signal) return false;
      const int64_t left = paused ? -1 : std::max<int64_t>(0, deadline - clock::monotonic_ns());
      if (!paused && left == 0 && !keys_) return true;
      timespec ts{left / 1'000'000'000, left % 1'000'000'000};
      pollfd pfd{STDIN_FILENO, POLLIN, 0};
      const int n =
          ppoll(keys_ ? &pfd : nullptr, keys_ ? 1 : 0, paused ? nullptr : &ts, &wait_mask_);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      if (n == 0) return true;  // the pause is over
      char keys[64];
      const ssize_t got = ::read(STDIN_FILENO, keys, sizeof keys);
      if (got <= 0) {
        keys_ = false;  // stdin closed: play on without keys
        if (paused) deadline = clock::monotonic_ns() + remaining_when_paused;
        paused = false;
        continue;
      }
      for (ssize_t i = 0; i < got; ++i) {
        if (keys[i] == 'q' || keys[i] == 'Q' || keys[i] == 0x03) return false;
        if (keys[i] != ' ') continue;
        paused = !paused;
        if (paused)
          remaining_when_paused = std::max<int64_t>(0, deadline - clock::monotonic_ns());
        else
          deadline = clock::monotonic_ns() + remaining_when_paused;
      }
      if (!paused && left == 0) return true;
    }
  }

  const PlayOptions& args_;
  bool keys_;
  sigset_t wait_mask_;  // the mask before play(): stop signals delivered
};

// Writes the recording in a non-interactive format; false when stdout
// failed or a stop signal came (g_signal says which).
bool export_to_stdout(const PlayOptions& args, recording::RecordingReader& reader,
                      const std::string& name) {
  using recording::RecordType;
  Stdout out;
  std::string buf;
  recording::Record r, piece;
  recording::AsciicastExport cast(reader.header());
  recording::TextExport text(reader.header());
  size_t warnings = 0;
  // One record, or one piece of an output record, at a time.
  auto add = [&](const recording::Record& rec) {
    if (args.format == "json") {
      if (rec.type != RecordType::event) return;
      // What reaches the auditor's terminal is JSON with no control bytes,
      // even from a forged recording: lines that carry any are re-encoded
      // with every non-ASCII character escaped; lines that are not JSON are
      // reported and left out.
      if (!safe_json_line(rec.data)) {
        std::string why;
        auto value = audit::parse_json_bounded(rec.data, &why);
        if (!value || !value->is_object()) {
          if (++warnings <= kMaxWarnings)
            std::fprintf(stderr, "%s: warning: %s: skipped an event that is not a JSON "
                         "object (%s)\n", args.program.c_str(), name.c_str(),
                         why.empty() ? "not an object" : why.c_str());
          return;
        }
        buf += value->dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
        buf += '\n';
        return;
      }
      buf += rec.data;
      buf += '\n';
    } else if (args.format == "asciicast") {
      cast.record(rec, buf);
    } else if (args.format == "text") {
      text.record(rec, buf);
      for (const std::string& w : text.take_warnings())
        if (++warnings <= kMaxWarnings)
          std::fprintf(stderr, "%s: warning: %s: %s\n", args.program.c_str(), name.c_str(), w.c_str());
    } else if (rec.type == RecordType::output) {  // terminal, to a file or pipe
      buf += rec.data;
    }
  };
  if (args.format == "asciicast") cast.begin(buf);
  while (!g_signal && reader.next(r)) {
    if (r.type != RecordType::output || r.data.size() <= kExportPiece) {
      add(r);
      if (!out.write(buf)) return false;
      buf.clear();
      continue;
    }
    // The exports take a record cut anywhere (a character or an escape
    // sequence split between two pieces reads the same).
    piece.type = r.type;
    piece.time_ns = r.time_ns;
    for (size_t at = 0; at < r.data.size() && !g_signal; at += kExportPiece) {
      piece.data.assign(r.data, at, kExportPiece);
      add(piece);
      if (!out.write(buf)) return false;
      buf.clear();
    }
  }
  if (g_signal) return false;
  if (warnings > kMaxWarnings)
    std::fprintf(stderr, "%s: %zu more warnings not listed\n", args.program.c_str(),
                 warnings - kMaxWarnings);
  if (args.format == "asciicast") cast.finish(buf);
  if (args.format == "text") text.finish(buf);
  return out.write(buf) && out.flush();
}

}  // namespace

std::string check_speed(const std::string& text) {
  // CLI::PositiveNumber lets nan and inf through (nan <= 0 is false).
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (!text.empty() && *end == '\0' && std::isfinite(v) && v >= kMinSpeed && v <= kMaxSpeed)
    return {};
  return "--speed " + text +
         ": give a factor from 0.01 to 1000 (1 is the recorded pace, 2 twice as fast, 0.5 half)";
}

int play(recording::RecordingReader& reader, const std::string& name, const PlayOptions& args) {
  install_stop_signals();
  bool completed;
  const bool live = args.format == "terminal" && isatty(STDOUT_FILENO);
  if (live) {
    term::RawMode raw(STDIN_FILENO);  // restored on every way out of this block
    completed = LiveReplay(args, raw.active()).play(reader);
    if (!completed) {
      // Quit mid-way: leave no colour or hidden cursor behind.
      const char reset[] = "\x1b[0m\x1b[?25h\r\n";
      (void)!::write(STDOUT_FILENO, reset, sizeof reset - 1);
    }
  } else {
    completed = export_to_stdout(args, reader, name);
  }
  if (g_signal) {
    // Said on stderr: a file the export was writing is cut short, and a
    // script must not take it for the whole session.
    if (!live)
      std::fprintf(stderr, "%s: stopped by %s: the output is incomplete\n",
                   args.program.c_str(), strsignal(g_signal));
    return 128 + g_signal;
  }
  if (!completed) return 0;  // q, or the reader of our output went away
  if (reader.damage()) {
    std::fprintf(stderr, "%s: %s\n", args.program.c_str(),
                 recording::describe(name, reader.damage()).c_str());
    return kUnreadable;
  }
  if (reader.writer_active())
    std::fprintf(stderr, "%s: %s: session in progress, shown up to offset %llu\n",
                 args.program.c_str(), name.c_str(),
                 static_cast<unsigned long long>(reader.offset()));
  return 0;
}

}  // namespace vigil::player
