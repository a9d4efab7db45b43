#include "common/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace vigil::log {
namespace {
std::atomic<Level> g_level{Level::warn};
}

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }

bool stderr_is_journal() {
  // systemd sets JOURNAL_STREAM to "<dev>:<inode>" of the stream it gave
  // as stdout/stderr; it only counts while fd 2 is still that stream.
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st{};
  return fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

void write(Level l, std::string_view message) {
  if (l < g_level.load(std::memory_order_relaxed)) return;
  static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
  std::string line;
  const bool journal = stderr_is_journal();
  if (journal) {
    // sd-daemon(3): the journal takes "<N>" as the line's priority.
    static constexpr const char* kPriorities[] = {"<7>", "<6>", "<4>", "<3>"};
    line += kPriorities[static_cast<int>(l)];
  }
  line += "vigil: ";
  line += kNames[static_cast<int>(l)];
  line += ": ";
  if (!journal) {
    line += message;
  } else {
    // One entry a line: a message's own line breaks are escaped.
    for (char c : message) {
      if (c == '\n') line += "\\n";
      else if (c == '\r') line += "\\r";
      else line += c;
    }
  }
  line += '\n';
  // One write per line so concurrent writers never interleave within a line.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace vigil::log
