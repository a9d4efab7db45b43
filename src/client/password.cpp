#include "client/password.hpp"

#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace vigil::client {

namespace {

// The terminal's settings while echo is off, for the signal handler.
std::atomic<int> g_tty{-1};
termios g_saved{};
struct sigaction g_old_int{}, g_old_term{}, g_old_hup{};

void restore_and_reraise(int sig) {
  int fd = g_tty.load();
  if (fd >= 0) tcsetattr(fd, TCSAFLUSH, &g_saved);
  struct sigaction* old = sig == SIGINT ? &g_old_int : sig == SIGTERM ? &g_old_term : &g_old_hup;
  sigaction(sig, old, nullptr);
  raise(sig);
}

// Bytes are wiped as the line is built: the buffer may be copied by growth.
class WipedString {
 public:
  ~WipedString() { wipe(); }
  void push_back(char c) {
    if (s_.size() == s_.capacity()) {
      std::string bigger;
      bigger.reserve(s_.capacity() * 2 + 16);
      bigger.append(s_);
      wipe();
      s_.swap(bigger);
    }
    s_.push_back(c);
  }
  size_t size() const { return s_.size(); }
  void pop_cr() {
    if (!s_.empty() && s_.back() == '\r') s_.pop_back();
  }
  ca::Secret take() {
    ca::Secret out{std::string(s_)};
    wipe();
    return out;
  }

 private:
  void wipe() {
    volatile char* p = s_.data();
    for (size_t i = 0; i < s_.capacity(); ++i) p[i] = 0;
    s_.clear();
  }
  std::string s_;
};

}  // namespace

Result<ca::Secret> read_secret_line(int fd, std::string_view what) {
  WipedString line;
  bool got_any = false;
  while (true) {
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::sys("read the " + std::string(what));
    }
    if (n == 0) break;
    got_any = true;
    if (c == '\n') break;
    line.push_back(c);
    if (line.size() > kMaxSecretLine + 1)
      return Error::of(Errc::invalid_argument,
                       "the " + std::string(what) + " is longer than " +
                           std::to_string(kMaxSecretLine) + " bytes");
  }
  line.pop_cr();
  if (!got_any)
    return Error::of(Errc::invalid_argument,
                     "no " + std::string(what) + " on standard input: give it as one line");
  if (line.size() > kMaxSecretLine)
    return Error::of(Errc::invalid_argument, "the " + std::string(what) + " is longer than " +
                                                 std::to_string(kMaxSecretLine) + " bytes");
  return line.take();
}

Result<ca::Secret> read_secret_from_terminal(std::string_view prompt) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return Error::of(Errc::failed_precondition,
                     "no terminal to ask on (" + std::string(std::strerror(errno)) +
                         "): give the secret on standard input with --password-stdin");
  termios saved{};
  if (tcgetattr(fd, &saved) != 0) {
    ::close(fd);
    return Error::of(Errc::failed_precondition,
                     "/dev/tty is not a terminal: give the secret with --password-stdin");
  }
  g_saved = saved;
  g_tty = fd;
  struct sigaction sa{};
  sa.sa_handler = restore_and_reraise;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
  sigaction(SIGHUP, &sa, &g_old_hup);
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;
  (void)!::write(fd, prompt.data(), prompt.size());
  tcsetattr(fd, TCSAFLUSH, &quiet);
  auto line = read_secret_line(fd, "answer");
  tcsetattr(fd, TCSAFLUSH, &saved);
  g_tty = -1;
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
  sigaction(SIGHUP, &g_old_hup, nullptr);
  ::close(fd);
  return line;
}

}  // namespace vigil::client
