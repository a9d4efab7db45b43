#include "term/pty.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace vigil::term {

Result<Pty> Pty::open(WindowSize size, std::optional<uid_t> owner) {
  Pty pty;
  pty.master_.reset(posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!pty.master_) return Error::sys("cannot allocate a pseudo-terminal (posix_openpt)");
  if (grantpt(pty.master()) || unlockpt(pty.master()))
    return Error::sys("cannot unlock the pseudo-terminal");
  char name[128];
  if (ptsname_r(pty.master(), name, sizeof(name))) return Error::sys("ptsname");
  pty.slave_path_ = name;
  pty.slave_.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!pty.slave_) return Error::sys("cannot open " + pty.slave_path_);
  if (owner) {
    // Reentrant: SSH connections open ptys on threads of their own.
    group entry{}, *tty = nullptr;
    char buf[4096];
    getgrnam_r("tty", &entry, buf, sizeof(buf), &tty);
    if (fchown(pty.slave(), *owner, tty ? tty->gr_gid : static_cast<gid_t>(-1)) ||
        fchmod(pty.slave(), 0620))
      return Error::sys("cannot hand " + pty.slave_path_ + " to uid " + std::to_string(*owner));
  }
  if (auto r = pty.resize(size); !r) return r.error();
  return pty;
}

Result<void> Pty::resize(WindowSize size) {
  winsize ws{};
  ws.ws_col = size.cols;
  ws.ws_row = size.rows;
  if (ioctl(master(), TIOCSWINSZ, &ws)) return Error::sys("cannot set the terminal size");
  return {};
}

void Pty::attach_child() const {
  setsid();
  ioctl(slave(), TIOCSCTTY, 0);
  dup2(slave(), STDIN_FILENO);
  dup2(slave(), STDOUT_FILENO);
  dup2(slave(), STDERR_FILENO);
}

std::optional<WindowSize> window_size(int fd) {
  winsize ws{};
  if (ioctl(fd, TIOCGWINSZ, &ws) || ws.ws_col == 0 || ws.ws_row == 0) return std::nullopt;
  return WindowSize{ws.ws_col, ws.ws_row};
}

RawMode::RawMode(int fd) : fd_(fd) {
  if (!isatty(fd) || tcgetattr(fd, &saved_)) return;
  termios raw = saved_;
  cfmakeraw(&raw);
  active_ = tcsetattr(fd, TCSAFLUSH, &raw) == 0;
}

RawMode::~RawMode() { restore(); }

void RawMode::restore() {
  if (active_) tcsetattr(fd_, TCSAFLUSH, &saved_);
  active_ = false;
}

}  // namespace vigil::term
