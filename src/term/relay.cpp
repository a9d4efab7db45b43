#include "term/relay.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace vigil::term {
namespace {

// Signals reach whichever thread has them unblocked (the engine has
// threads), so handlers write to a pipe the relay polls.
int g_signal_pipe = -1;

void on_signal(int sig) {
  int saved = errno;
  char c = static_cast<char>(sig);
  (void)!write(g_signal_pipe, &c, 1);
  errno = saved;
}

bool write_all(int fd, const char* data, size_t len) {
  while (len) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        poll(&p, 1, -1);
      }
      continue;
    }
    if (n <= 0) return false;
    data += n;
    len -= n;
  }
  return true;
}

}  // namespace

Result<int> relay(Pty& pty, pid_t child, int in_fd, int out_fd, const RelayHooks& hooks) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK)) return Error::sys("pipe");
  Fd sig_r(fds[0]), sig_w(fds[1]);
  g_signal_pipe = sig_w.get();
  struct sigaction sa{}, old_winch{}, old_chld{};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGWINCH, &sa, &old_winch);
  sigaction(SIGCHLD, &sa, &old_chld);

  char buf[65536];
  bool input_open = in_fd >= 0;
  bool output_open = true;
  int status = 0;
  bool exited = waitpid(child, &status, WNOHANG) == child;  // before the handler was there
  fcntl(pty.master(), F_SETFL, fcntl(pty.master(), F_GETFL) | O_NONBLOCK);
  // Reads all the session printed so far; EIO means no process holds the
  // terminal any more.
  auto drain_output = [&] {
    while (output_open) {
      ssize_t n = read(pty.master(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {
        output_open = false;
        return;
      }
      if (hooks.on_output) hooks.on_output(std::string_view(buf, n));
      write_all(out_fd, buf, n);
    }
  };

  while (!exited) {
    pollfd p[3] = {{output_open ? pty.master() : -1, POLLIN, 0},
                   {sig_r.get(), POLLIN, 0},
                   {input_open ? in_fd : -1, POLLIN, 0}};
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return Error::sys("poll");
    }
    if (p[0].revents) drain_output();
    if (p[1].revents & POLLIN) {
      char sigs[64];
      ssize_t n;
      while ((n = read(sig_r.get(), sigs, sizeof(sigs))) > 0) {
        for (ssize_t i = 0; i < n; ++i) {
          if (sigs[i] != SIGWINCH) continue;
          if (auto size = window_size(in_fd)) {
            (void)pty.resize(*size);
            if (hooks.on_resize) hooks.on_resize(*size);
          }
        }
      }
      if (waitpid(child, &status, WNOHANG) == child) exited = true;
    }
    if (input_open && p[2].revents) {
      ssize_t n = read(in_fd, buf, sizeof(buf));
      if (n > 0) write_all(pty.master(), buf, n);
      else if (n == 0 || (errno != EINTR && errno != EAGAIN)) input_open = false;
    }
  }
  // The child is gone. Its last output may still be on its way through the
  // line discipline: read until no process holds the terminal (EIO), or
  // until a background process that does keeps quiet for a moment.
  while (output_open) {
    pollfd p{pty.master(), POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) break;
    drain_output();
  }
  sigaction(SIGWINCH, &old_winch, nullptr);
  sigaction(SIGCHLD, &old_chld, nullptr);
  g_signal_pipe = -1;
  return status;
}

}  // namespace vigil::term
