// A program on a pseudo-terminal the test holds the master of, typed into
// like a person: `vigil record --tty`, `ssh -tt`, asciinema. Everything the
// program writes to its terminal is kept in screen().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "harness.hpp"

namespace e2e {

class Terminal {
 public:
  explicit Terminal(const std::vector<std::string>& argv,
                    const std::vector<std::string>& env = base_environment());
  ~Terminal();
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  // True once `text` is on the screen at or after `from`, within `limit`.
  bool wait_for(const std::string& text, size_t from = 0,
                std::chrono::milliseconds limit = std::chrono::seconds(15));
  // Writes keys to the terminal; false if they could not all be written.
  bool type(const std::string& keys);
  // Reads until the program exits and all it wrote is in; its exit status
  // (128 + N for signal N), or -1 when it did not end within 20 s.
  int finish();
  size_t size() const { return screen_.size(); }
  const std::string& screen() const { return screen_; }

 private:
  // One read; false on EOF/EIO (the slave side is gone) or, with a zero
  // timeout, when nothing is waiting.
  bool pump(int timeout_ms);

  int master_ = -1;
  pid_t pid_ = -1;
  int status_ = -1;
  std::string screen_;
};

}  // namespace e2e
