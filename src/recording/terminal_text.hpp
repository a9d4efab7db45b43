// A session's terminal output as plain text, for reading and grepping.
//
// TerminalText follows the output one line at a time the way a terminal
// would draw it: escape sequences are removed (a few that edit the current
// line are applied: erase in line, cursor left/right/column, tab stops
// forward and back, delete, insert, erase and repeat characters), a carriage
// return goes back to the line start and what follows overwrites, backspace
// moves left, a tab moves to the next multiple of 8. "\r\n" thus ends a
// line as "\n" does. Bytes that are not UTF-8 become U+FFFD; control
// characters are dropped. It is a line model, not a screen: full-screen
// programs (vim, top) come out garbled.
//
// Output is what a session printed, so anyone who could log in chooses it.
// As on a terminal, the cursor stays inside the terminal's width (the
// recording's, at most kMaxColumns) and text that reaches the right margin
// wraps to a new line: a line holds at most `width` characters, and every
// input byte costs at most O(width) time and output, whatever the counts in
// an escape sequence say (ESC [ 10000 C, ESC [ 10000 @, ESC [ 10000 b).
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
#include <vector>

#include "recording/format.hpp"

namespace vigil::recording {

// The widest line TerminalText keeps: wider than any real terminal, and the
// width taken when a recording says 0 (unknown) or more (damaged).
inline constexpr size_t kMaxColumns = 1024;

class TerminalText {
 public:
  explicit TerminalText(size_t cols = kMaxColumns) { set_width(cols); }
  // The terminal's width from now on (a resize); 0 or above kMaxColumns
  // means kMaxColumns.
  void set_width(size_t cols);
  // Appends every line the bytes complete to `out`, each with '\n'.
  void feed(std::string_view bytes, std::string& out);
  // Ends the current line early (before a mark) when it has text.
  void break_line(std::string& out);
  // Writes what is left: an unfinished character, the last line.
  void finish(std::string& out);

 private:
  enum class State { ground, escape, escape_intermediate, csi, string, string_escape };
  void byte(unsigned char c, std::string& out);
  void put(char32_t cp, std::string& out);
  void csi_final(unsigned char final, std::string& out);
  void end_line(std::string& out);

  State state_ = State::ground;
  size_t width_ = kMaxColumns;
  std::u32string line_;  // one code point a cell; at most kMaxColumns
  // 0..width_; width_ after a character was put in the last column (the
  // next one wraps, as on a terminal).
  size_t cursor_ = 0;
  char32_t last_ = 0;  // the last character put, for ESC [ n b (repeat)
  std::string csi_params_;
  size_t string_length_ = 0;
  std::string carry_;  // an incomplete UTF-8 sequence from the previous feed
};

class TextExport {
 public:
  explicit TextExport(const Header& header, bool show_commands = true)
      : start_ns_(header.start_ns), show_commands_(show_commands), text_(header.cols) {}
  // Resizes set the width; output records may come in pieces (a record cut
  // anywhere, even inside a character or an escape sequence, reads the same).
  void record(const Record& r, std::string& out);
  void finish(std::string& out) { text_.finish(out); }
  // Events that could not be shown since the last call, each as
  // "record N: why" (N counts the records given, from 1). They are skipped;
  // the export goes on.
  std::vector<std::string> take_warnings() { return std::move(warnings_); }

 private:
  int64_t start_ns_;
  bool show_commands_;
  TerminalText text_;
  uint64_t records_ = 0;
  std::vector<std::string> warnings_;
};

// "[+1.234s] $ /usr/bin/ls -la\n" from a session.command event's JSON;
// false when the JSON is not a session.command event, with `why` set when it
// might be one that cannot be read (not JSON, nested too deep).
bool format_command_mark(std::string_view event_json, int64_t start_ns, int64_t time_ns,
                         std::string& out, std::string* why = nullptr);

}  // namespace vigil::recording
