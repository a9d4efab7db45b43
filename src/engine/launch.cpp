#include "engine/launch.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/fd.hpp"

extern char** environ;

namespace vigil {
namespace {

// What the child tells the parent through its close-on-exec pipe.
struct ChildMessage {
  enum Type : uint32_t { audit_session = 1, failed = 2 } type;
  uint32_t value;  // the audit session id, or the failed step
  int32_t err;     // errno of the failed step
};

enum Step : uint32_t {
  join_cgroup = 1, set_loginuid, switch_user, change_dir, exec_program, seal_session
};

const char* step_name(uint32_t step) {
  switch (step) {
    case join_cgroup: return "join the session cgroup";
    case set_loginuid: return "set the audit login uid";
    case switch_user: return "switch to the login's user";
    case change_dir: return "change to the working directory";
    case exec_program: return "run the program";
    case seal_session: return "seal the session (seccomp)";
  }
  return "start";
}

void send(int fd, ChildMessage m) { (void)!write(fd, &m, sizeof(m)); }

[[noreturn]] void child_fail(int fd, Step step) {
  send(fd, {ChildMessage::failed, step, errno});
  _exit(127);
}

// Async-signal-safe: parse the decimal in /proc/self/sessionid.
uint32_t read_audit_session() {
  int fd = open("/proc/self/sessionid", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return UINT32_MAX;
  char buf[16];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  uint64_t v = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) v = v * 10 + (buf[i] - '0');
  return n > 0 ? static_cast<uint32_t>(v) : UINT32_MAX;
}

// The user's program starts as from a fresh login: default signal
// dispositions (the daemon ignores SIGPIPE and others), nothing blocked, and
// no file of the daemon's but 0-2 (its sockets, the pty master, BPF and log
// fds: OpenSSH's child_close_fds). Async-signal-safe.
void reset_for_exec() {
  // The raw call: glibc's signal() refuses the signals it reserves (32, 33),
  // which an ignoring parent would otherwise pass on through exec.
  struct {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    uint64_t mask;
  } dfl{SIG_DFL, 0, nullptr, 0};
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof(uint64_t));
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // Close-on-exec rather than closed: the pipe that reports a failed exec
  // must stay open until the exec succeeds.
  if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
  long max = sysconf(_SC_OPEN_MAX);  // kernels before 5.11
  for (int fd = 3; fd < (max > 0 && max < (1 << 20) ? max : (1 << 20)); ++fd)
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

}  // namespace

std::string find_in_path(const std::string& name, const std::string& path_var) {
  if (name.find('/') != std::string::npos) return name;
  size_t pos = 0;
  while (pos <= path_var.size()) {
    size_t colon = path_var.find(':', pos);
    if (colon == std::string::npos) colon = path_var.size();
    std::string dir = path_var.substr(pos, colon - pos);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st{};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0)
      return candidate;
    pos = colon + 1;
  }
  return {};
}

namespace {
Result<Launched> launch_in(Session* session, const LaunchSpec& spec);
}

Result<Launched> launch(Session& session, const LaunchSpec& spec) { return launch_in(&session, spec); }

Result<Launched> launch_unrecorded(const LaunchSpec& spec) { return launch_in(nullptr, spec); }

namespace {

Result<Launched> launch_in(Session* session, const LaunchSpec& spec) {
  if (spec.argv.empty()) return Error{"no command to run"};

  // Everything the child needs is prepared here: after fork only
  // async-signal-safe calls are allowed.
  std::vector<std::string> env_strings;
  if (spec.env) env_strings = *spec.env;
  else
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  std::string path_var = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : env_strings)
    if (e.rfind("PATH=", 0) == 0) path_var = e.substr(5);
  std::string program = find_in_path(spec.argv[0], path_var);
  if (program.empty()) return Error{spec.argv[0] + ": command not found", ENOENT};

  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  uid_t login_uid = spec.credentials ? spec.credentials->uid : getuid();
  std::string login_uid_str = std::to_string(login_uid);
  bool switch_user = spec.credentials && spec.credentials->uid != geteuid();

  Fd procs;
  if (session) {
    procs.reset(open((session->cgroup_dir() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!procs) return Error::sys("cannot open " + session->cgroup_dir() + "/cgroup.procs");
  }
  int up[2], down[2];
  if (pipe2(up, O_CLOEXEC)) return Error::sys("pipe");
  Fd up_r(up[0]), up_w(up[1]);
  if (pipe2(down, O_CLOEXEC)) return Error::sys("pipe");
  Fd down_r(down[0]), down_w(down[1]);

  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return Error::sys("fork");
  if (pid == 0) {
    int out = up_w.get();
    // Until its exec, the child holds copies of every fd the parent had:
    // other launches' pipes, the engine guard's pipe (which tells the guard
    // that the recorder died). It must not outlive the thread that started
    // it: a child left waiting for `go` kept the guard from killing the
    // sessions of a recorder that died, and two such children held each
    // other's `go` pipe open for ever.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    // A new loginuid gives this process (and all it starts) a fresh audit
    // session id that a non-root user cannot change. Done before joining
    // the cgroup, so Vigil's own set-up is not recorded as the session's.
    uint32_t ses = UINT32_MAX;
    int lfd = open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC);
    if (lfd >= 0) {
      if (write(lfd, login_uid_str.data(), login_uid_str.size()) < 0) child_fail(out, set_loginuid);
      close(lfd);
      ses = read_audit_session();
    }
    if (procs && write(procs.get(), "0", 1) != 1) child_fail(out, join_cgroup);
    send(out, {ChildMessage::audit_session, ses, 0});
    char go = 0;
    if (read(down_r.get(), &go, 1) != 1 || go != 1) _exit(127);
    if (spec.child_setup) spec.child_setup();
    if (spec.seal && !seal::install(*spec.seal)) child_fail(out, seal_session);
    if (switch_user) {
      const auto& c = *spec.credentials;
      if (setgroups(c.groups.size(), c.groups.data()) || setgid(c.gid) || setuid(c.uid))
        child_fail(out, Step::switch_user);
    }
    if (!spec.cwd.empty() && chdir(spec.cwd.c_str())) child_fail(out, change_dir);
    reset_for_exec();
    // What the session runs may outlive the recorder's thread (leftovers
    // are recorded, or killed by policy): not by a signal of its own.
    prctl(PR_SET_PDEATHSIG, 0);
    execve(program.c_str(), argv.data(), envp.data());
    child_fail(out, exec_program);
  }

  up_w.reset();
  down_r.reset();
  auto reap = [&](Error e) -> Result<Launched> {
    // Killed, not told by EOF: another launch's child, forked meanwhile,
    // may hold a copy of `down` until its own exec.
    kill(pid, SIGKILL);
    down_w.reset();
    int status;
    waitpid(pid, &status, 0);
    return e;
  };
  ChildMessage m{};
  if (read(up_r.get(), &m, sizeof(m)) != sizeof(m))
    return reap(Error{"the session's first process died before it started"});
  if (m.type == ChildMessage::failed)
    return reap(Error{std::string("cannot ") + step_name(m.value) + ": " + strerror(m.err), m.err});
  Launched out;
  out.pid = pid;
  out.audit_session = m.value;
  if (m.value != UINT32_MAX) {
    if (session)
      if (auto r = session->bind_audit_session(m.value); !r) return reap(r.error());
  }
  // The mark follows it and all it starts wherever they move (engine.hpp).
  if (session)
    if (auto r = session->mark_process(pid); !r) return reap(r.error());
  char go = 1;
  if (write(down_w.get(), &go, 1) != 1) return reap(Error::sys("cannot start the child"));
  down_w.reset();
  ssize_t n = read(up_r.get(), &m, sizeof(m));
  if (n == sizeof(m) && m.type == ChildMessage::failed)
    return reap(Error{std::string("cannot ") + step_name(m.value) + " " + program + ": " +
                          strerror(m.err),
                      m.err});
  return out;
}

}  // namespace

}  // namespace vigil
