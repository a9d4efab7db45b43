#include "common/log.hpp"

#include <unistd.h>

#include <atomic>
#include <string>

namespace vigil::log {
namespace {
std::atomic<Level> g_level{Level::warn};
}

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }

void write(Level l, std::string_view message) {
  if (l < g_level.load(std::memory_order_relaxed)) return;
  static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
  std::string line = "vigil: ";
  line += kNames[static_cast<int>(l)];
  line += ": ";
  line += message;
  line += '\n';
  // One write per line so concurrent writers never interleave within a line.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace vigil::log
