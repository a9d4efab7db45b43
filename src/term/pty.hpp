// A pseudo-terminal for a recorded session: the master stays with Vigil
// (it sees every byte the session prints), the slave becomes the session's
// controlling terminal.
#pragma once

#include <sys/types.h>
#include <termios.h>

#include <optional>
#include <string>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace vigil::term {

struct WindowSize {
  unsigned short cols = 80;
  unsigned short rows = 24;
};

class Pty {
 public:
  // Allocates a pair; the slave is made usable by `owner` (its uid and the
  // tty group, mode 0620) when given, as login(1) would.
  static Result<Pty> open(WindowSize size, std::optional<uid_t> owner = std::nullopt);

  int master() const { return master_.get(); }
  int slave() const { return slave_.get(); }
  const std::string& slave_path() const { return slave_path_; }
  Result<void> resize(WindowSize size);
  // After fork, in the child: new process session, the slave as the
  // controlling terminal and as fds 0, 1 and 2. Async-signal-safe.
  void attach_child() const;
  // In the parent once the child has started: only the child holds the slave.
  void close_slave() { slave_.reset(); }

 private:
  Fd master_;
  Fd slave_;
  std::string slave_path_;
};

// The size of the terminal on `fd`, if it is one.
std::optional<WindowSize> window_size(int fd);

// Puts the terminal on `fd` in raw mode for the guard's lifetime (the
// session's own terminal interprets keys, not the local one) and restores it.
class RawMode {
 public:
  explicit RawMode(int fd);
  ~RawMode();
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;
  bool active() const { return active_; }
  void restore();

 private:
  int fd_;
  bool active_ = false;
  termios saved_{};
};

}  // namespace vigil::term
