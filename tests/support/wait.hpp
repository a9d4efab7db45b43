// Waiting on the system under test without a stopwatch: poll a condition a
// background process brings about, bounded in tries (the bound fails the
// test, it is not a timing assertion), and tell a running process from one
// that is gone or a zombie.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace vigil::testing {

template <typename F>
bool eventually(F ready, int tries = 400, std::chrono::milliseconds step = std::chrono::milliseconds(50)) {
  for (int i = 0; i < tries; ++i) {
    if (ready()) return true;
    std::this_thread::sleep_for(step);
  }
  return ready();
}

// Running, as opposed to gone or a zombie its parent has not reaped.
inline bool running(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("State:", 0) == 0) return line.find('Z') == std::string::npos;
  return false;
}

}  // namespace vigil::testing
