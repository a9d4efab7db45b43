// Reading a secret a person types: from the terminal with echo off, or from
// standard input for scripts (--password-stdin), one line, bounded.
#pragma once

#include <string>
#include <string_view>

#include "ca/key.hpp"
#include "common/result.hpp"

namespace vigil::client {

// The longest secret read (cluster passwords are at most 1024 bytes).
inline constexpr size_t kMaxSecretLine = 1024;

// Prints prompt on the terminal (/dev/tty), reads a line with echo off and
// restores the terminal, also when interrupted (Ctrl-C). failed_precondition
// when there is no terminal (say --password-stdin).
Result<ca::Secret> read_secret_from_terminal(std::string_view prompt);

// One line from fd (standard input): the line without its "\n" (or "\r\n");
// invalid_argument when it is longer than kMaxSecretLine or there is none.
// Reads byte by byte, so whatever follows the line stays in fd for the next
// read (a TOTP code after the password).
Result<ca::Secret> read_secret_line(int fd, std::string_view what);

}  // namespace vigil::client
