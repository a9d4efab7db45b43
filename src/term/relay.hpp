// Relays a session's terminal: the user's keys to the pty, the pty's output
// to the user's screen and to the recording, window size changes along.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string_view>

#include "common/result.hpp"
#include "term/pty.hpp"

namespace vigil::term {

struct RelayHooks {
  std::function<void(std::string_view bytes)> on_output;  // what the session printed
  std::function<void(WindowSize)> on_resize;               // the user's terminal changed size
};

// Runs until `child` has exited and the pty has no more output for it, then
// returns the child's wait status. `in_fd` is read until EOF; when it is a
// terminal its size follows SIGWINCH.
Result<int> relay(Pty& pty, pid_t child, int in_fd, int out_fd, const RelayHooks& hooks);

}  // namespace vigil::term
