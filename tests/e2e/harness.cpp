#include "harness.hpp"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <regex>
#include <sstream>

namespace e2e {

std::vector<std::string> base_environment() {
  std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  if (const char* home = getenv("HOME")) env.push_back(std::string("HOME=") + home);
  return env;
}

uid_t nobody_uid() {
  const passwd* pw = getpwnam("nobody");
  return pw ? pw->pw_uid : 65534;
}

gid_t nobody_gid() {
  const passwd* pw = getpwnam("nobody");
  return pw ? pw->pw_gid : 65534;
}

namespace {

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Exits the forked child with a message when a step before exec fails.
[[noreturn]] void child_die(const char* what) {
  const char* why = strerror(errno);
  (void)!write(STDERR_FILENO, "e2e harness: ", 13);
  (void)!write(STDERR_FILENO, what, strlen(what));
  (void)!write(STDERR_FILENO, ": ", 2);
  (void)!write(STDERR_FILENO, why, strlen(why));
  (void)!write(STDERR_FILENO, "\n", 1);
  _exit(120);
}

}  // namespace

Process::Process(const Spawn& spawn) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    ADD_FAILURE() << "pipe2: " << strerror(errno);
    return;
  }
  // Prepared before fork: the child only makes async-signal-safe calls.
  std::vector<char*> argv, envp;
  for (const auto& a : spawn.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spawn.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const bool drop = spawn.unprivileged && geteuid() == 0;
  const uid_t uid = nobody_uid();
  const gid_t gid = nobody_gid();

  pid_ = fork();
  if (pid_ < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return;
  }
  if (pid_ == 0) {
    if (!spawn.stdin_data) {
      int null = open("/dev/null", O_RDONLY);
      if (null < 0 || dup2(null, STDIN_FILENO) < 0) child_die("stdin");
    } else if (dup2(in[0], STDIN_FILENO) < 0) {
      child_die("stdin");
    }
    if (dup2(out[1], STDOUT_FILENO) < 0 || dup2(err[1], STDERR_FILENO) < 0) child_die("dup2");
    // SIGPIPE and the rest as a shell would leave them.
    signal(SIGPIPE, SIG_DFL);
    if (drop && (setgroups(0, nullptr) || setgid(gid) || setuid(uid))) child_die("drop to nobody");
    if (!spawn.cwd.empty() && chdir(spawn.cwd.c_str())) child_die("chdir");
    execve(argv[0], argv.data(), envp.data());
    child_die(argv[0]);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  in_ = in[1];
  out_ = out[0];
  err_ = err[0];
  if (spawn.stdin_data) {
    stdin_data_ = *spawn.stdin_data;
    set_nonblocking(in_);
  } else {
    close(in_);
    in_ = -1;
  }
  set_nonblocking(out_);
  set_nonblocking(err_);
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  for (int fd : {in_, out_, err_})
    if (fd >= 0) close(fd);
}

Outcome Process::wait(int timeout_ms) {
  Outcome o;
  if (pid_ <= 0) return o;
  const int64_t deadline = now_ns() + int64_t{timeout_ms} * 1'000'000;
  size_t written = 0;
  if (in_ >= 0 && stdin_data_.empty()) {
    close(in_);
    in_ = -1;
  }
  while (out_ >= 0 || err_ >= 0) {
    pollfd fds[3];
    int n = 0;
    for (int fd : {out_, err_}) {
      if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
    }
    if (in_ >= 0) fds[n++] = {in_, POLLOUT, 0};
    const int64_t left_ms = (deadline - now_ns()) / 1'000'000;
    if (left_ms <= 0) {
      o.timed_out = true;
      kill(pid_, SIGKILL);
      ADD_FAILURE() << "timed out after " << timeout_ms << " ms; killed";
      break;
    }
    if (poll(fds, n, static_cast<int>(left_ms)) < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "poll: " << strerror(errno);
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == in_) {
        ssize_t w = write(in_, stdin_data_.data() + written, stdin_data_.size() - written);
        if (w > 0) written += w;
        if ((w < 0 && errno != EAGAIN) || written == stdin_data_.size()) {
          close(in_);
          in_ = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        (fds[i].fd == out_ ? o.out : o.err).append(buf, r);
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        int& fd = fds[i].fd == out_ ? out_ : err_;
        close(fd);
        fd = -1;
      }
    }
  }
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  if (WIFEXITED(status)) o.status = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) o.status = 128 + WTERMSIG(status);
  return o;
}

Outcome run(const Spawn& spawn, int timeout_ms) {
  Process p(spawn);
  return p.wait(timeout_ms);
}

std::vector<nlohmann::ordered_json> Log::of(const std::string& name) const {
  std::vector<nlohmann::ordered_json> out;
  for (const auto& e : events)
    if (e.is_object() && e.value("event", "") == name) out.push_back(e);
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

Log parse_log(const std::string& text) {
  Log log;
  log.text = text;
  if (!text.empty()) {
    EXPECT_EQ(text.back(), '\n') << "the log's last line is not terminated";
  }
  log.lines = split_lines(text);
  for (size_t i = 0; i < log.lines.size(); ++i) {
    try {
      auto j = nlohmann::ordered_json::parse(log.lines[i]);
      EXPECT_TRUE(j.is_object()) << "line " << i + 1 << " is not a JSON object: "
                                 << log.lines[i];
      log.events.push_back(std::move(j));
    } catch (const nlohmann::json::exception& e) {
      ADD_FAILURE() << "line " << i + 1 << " is not JSON (" << e.what() << "): " << log.lines[i];
      log.events.push_back(nlohmann::ordered_json());
    }
  }
  return log;
}

Log read_log(const std::string& path) { return parse_log(read_file(path)); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

bool file_exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

std::vector<std::string> keys_of(const nlohmann::ordered_json& object) {
  std::vector<std::string> keys;
  if (!object.is_object()) return keys;
  for (auto it = object.begin(); it != object.end(); ++it) keys.push_back(it.key());
  return keys;
}

bool is_uuid(const std::string& s) {
  static const std::regex re("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  return std::regex_match(s, re);
}

std::optional<int64_t> parse_rfc3339_utc(const std::string& s) {
  static const std::regex re(
      R"(^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{1,9})Z$)");
  std::smatch m;
  if (!std::regex_match(s, m, re)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return std::nullopt;
  std::string frac = m[7];
  frac.resize(9, '0');
  return int64_t{timegm(&tm)} * 1'000'000'000 + std::stoll(frac);
}

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace e2e
