// A session's terminal output as plain text, for reading and grepping.
//
// TerminalText follows the output one line at a time the way a terminal
// would draw it: escape sequences are removed (a few that edit the current
// line are applied: erase in line, cursor left/right/column, delete, insert
// and erase characters), a carriage return goes back to the line start and
// what follows overwrites, backspace moves left, a tab moves to the next
// multiple of 8. "\r\n" thus ends a line as "\n" does. Bytes that are not
// UTF-8 become U+FFFD; control characters are dropped. It is a line model,
// not a screen: full-screen programs (vim, top) come out garbled.
//
// TextExport adds the session's commands, from its session.command events,
// as marked lines at their place in time:
//   [+1.234s] $ /usr/bin/ls -la
// The marks are for reading: output can print a line that looks like one
// (the JSON events are the record to trust).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "recording/format.hpp"

namespace vigil::recording {

class TerminalText {
 public:
  // Appends every line the bytes complete to `out`, each with '\n'.
  void feed(std::string_view bytes, std::string& out);
  // Ends the current line early (before a mark) when it has text.
  void break_line(std::string& out);
  // Writes what is left: an unfinished character, the last line.
  void finish(std::string& out);

 private:
  enum class State { ground, escape, escape_intermediate, csi, string, string_escape };
  void byte(unsigned char c, std::string& out);
  void put(char32_t cp);
  void csi_final(unsigned char final);
  void end_line(std::string& out);

  State state_ = State::ground;
  std::u32string line_;  // one code point a cell
  size_t cursor_ = 0;
  std::string csi_params_;
  size_t string_length_ = 0;
  std::string carry_;  // an incomplete UTF-8 sequence from the previous feed
};

class TextExport {
 public:
  explicit TextExport(const Header& header, bool show_commands = true)
      : start_ns_(header.start_ns), show_commands_(show_commands) {}
  void record(const Record& r, std::string& out);
  void finish(std::string& out) { text_.finish(out); }

 private:
  int64_t start_ns_;
  bool show_commands_;
  TerminalText text_;
};

// "[+1.234s] $ /usr/bin/ls -la\n" from a session.command event's JSON;
// false when the JSON is not a session.command event.
bool format_command_mark(std::string_view event_json, int64_t start_ns, int64_t time_ns,
                         std::string& out);

}  // namespace vigil::recording
