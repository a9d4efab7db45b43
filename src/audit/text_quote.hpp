// Recorded bytes shown to people. A recorded path or argument is chosen by
// the user being audited, so it must never drive the reader's terminal
// (escape sequences, a carriage return that overwrites the line) nor
// reorder what is shown (bidirectional overrides): such bytes appear as \xNN.
#pragma once

#include <string>
#include <string_view>

namespace vigil::audit {

// s with every byte a terminal must not see written as \xNN, and the
// backslash as \\ so that the escapes are unambiguous.
void append_printable(std::string& out, std::string_view s);

// s as one shell word a person can copy back into bash: bare when it has no
// special characters, in single quotes when it has some, and in ANSI-C
// quotes ($'...' with \xNN) when it holds bytes a terminal must not see.
void append_shell_word(std::string& out, std::string_view s);

// s as the value (or key) of a key=value field in a text line: the one rule
// every text renderer uses. Values are chosen by others (a certificate's key
// id becomes `user`, a process names itself), so a value must not read as
// more fields: it is quoted as a shell word ('...', or $'...' with \xNN)
// when it is empty or holds a space (ASCII or Unicode, zero-width ones
// included), '=', a quote, a backslash or a byte a terminal must not see:
//   user=alice   user='x login=root'   user=''   user=$'a\x1b[2Jb'
void append_value(std::string& out, std::string_view s);

}  // namespace vigil::audit
