// Minimal leveled logging to stderr; the audit log is elsewhere.
#pragma once

#include <string_view>

namespace vigil::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(Level level);
Level level();
// One line on stderr: "vigil: <level>: <message>". Under systemd (stderr is
// the journal's stream, JOURNAL_STREAM) the line starts with the level's
// syslog priority, "<4>vigil: warning: ...", and line breaks inside the
// message are escaped (\n), so each message is one journal entry with its
// priority (docs/operations.md).
void write(Level level, std::string_view message);
// Whether stderr is the journal's stream (JOURNAL_STREAM names fd 2).
bool stderr_is_journal();

inline void debug(std::string_view m) { write(Level::debug, m); }
inline void info(std::string_view m) { write(Level::info, m); }
inline void warn(std::string_view m) { write(Level::warn, m); }
inline void error(std::string_view m) { write(Level::error, m); }

}  // namespace vigil::log
