#include "terminal.hpp"

#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace e2e {

Terminal::Terminal(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  winsize ws{};
  ws.ws_col = 100;
  ws.ws_row = 30;
  pid_ = forkpty(&master_, nullptr, nullptr, &ws);
  if (pid_ == 0) {
    std::vector<char*> args, envp;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
}

Terminal::~Terminal() {
  if (pid_ > 0 && status_ < 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (master_ >= 0) close(master_);
}

bool Terminal::wait_for(const std::string& text, size_t from, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (screen_.find(text, from) == std::string::npos)
    if (std::chrono::steady_clock::now() > deadline || !pump(100)) return false;
  return true;
}

bool Terminal::type(const std::string& keys) {
  return write(master_, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size());
}

int Terminal::finish() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    pump(50);
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      while (pump(0)) {
      }
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return status_;
    }
  }
  return -1;
}

bool Terminal::pump(int timeout_ms) {
  pollfd p{master_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return timeout_ms > 0;
  char buf[4096];
  ssize_t n = read(master_, buf, sizeof buf);
  if (n <= 0) return false;
  screen_.append(buf, static_cast<size_t>(n));
  return true;
}

}  // namespace e2e
