#include "privsep/drop.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace vigil::privsep {
namespace {

Result<ServiceUser> lookup(const std::string& name) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) return Error::sys("cannot look up the account " + name, rc);
  if (!found) return Error::of(Errc::not_found, "no account " + name);
  return ServiceUser{name, pw.pw_uid, pw.pw_gid};
}

// Runs useradd without a shell in between (the name is ours, but still).
Result<void> run_useradd(const std::string& name) {
  pid_t pid = fork();
  if (pid < 0) return Error::sys("cannot start useradd");
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) dup2(null, 0);
    const char* argv[] = {"useradd", "--system", "--no-create-home", "--shell",
                          "/usr/sbin/nologin", name.c_str(), nullptr};
    execvp("useradd", const_cast<char* const*>(argv));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return Error::sys("cannot wait for useradd");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return Error::of(Errc::failed_precondition,
                     "useradd not found: install the passwd package, or create the system user "
                     "'" + name + "' yourself (useradd --system --no-create-home --shell "
                     "/usr/sbin/nologin " + name + ")");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Error::of(Errc::failed_precondition,
                     "useradd could not create the system user '" + name + "' (exit status " +
                         std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128) +
                         "): create it yourself with useradd --system --no-create-home "
                         "--shell /usr/sbin/nologin " + name);
  return {};
}

int close_range_sys(unsigned first, unsigned last) {
  return static_cast<int>(syscall(SYS_close_range, first, last, 0));
}

}  // namespace

Result<ServiceUser> ensure_service_user(const std::string& name, bool* created) {
  if (created) *created = false;
  auto found = lookup(name);
  if (!found && found.error().kind() == Errc::not_found) {
    if (auto r = run_useradd(name); !r) return r.error();
    if (created) *created = true;
    found = lookup(name);
  }
  if (!found) return found.error();
  if (found->uid == 0 || found->gid == 0)
    return Error::of(Errc::failed_precondition,
                     "the account " + name + " has uid or gid 0: network-facing processes "
                     "would keep root; give it its own ids (userdel it and let vigil create it)");
  return found;
}

Result<void> drop_to(const ServiceUser& who, const DropOptions& options) {
  if (who.uid == 0 || who.gid == 0)
    return Error::of(Errc::invalid_argument, "refusing to drop to uid/gid 0 (" + who.name + ")");
  // 0..2 on /dev/null (nothing of the monitor's terminal or log), unless kept.
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return Error::sys("cannot open /dev/null");
  for (int fd = 0; fd <= 2; ++fd)
    if (std::find(options.keep_fds.begin(), options.keep_fds.end(), fd) == options.keep_fds.end() &&
        dup2(null, fd) < 0)
      return Error::sys("cannot put fd " + std::to_string(fd) + " on /dev/null");
  close(null);
  // Every fd above 2 but the kept ones: close_range over the gaps.
  std::vector<int> keep;
  for (int fd : options.keep_fds)
    if (fd > 2) keep.push_back(fd);
  std::sort(keep.begin(), keep.end());
  unsigned next = 3;
  for (int fd : keep) {
    if (static_cast<unsigned>(fd) > next && close_range_sys(next, static_cast<unsigned>(fd) - 1) != 0)
      return Error::sys("cannot close inherited fds");
    next = static_cast<unsigned>(fd) + 1;
  }
  if (close_range_sys(next, ~0U) != 0) return Error::sys("cannot close inherited fds");

  if (!options.chroot_dir.empty()) {
    if (chroot(options.chroot_dir.c_str()) != 0)
      return Error::sys("cannot chroot to " + options.chroot_dir);
    if (chdir("/") != 0) return Error::sys("cannot chdir to / in " + options.chroot_dir);
  } else if (chdir("/") != 0) {
    return Error::sys("cannot chdir to /");
  }
  // Groups first (changing them needs root), then the gid, then the uid.
  const gid_t gid = who.gid;
  if (setgroups(1, &gid) != 0) return Error::sys("cannot set the groups of " + who.name);
  if (setresgid(gid, gid, gid) != 0) return Error::sys("cannot set the gid of " + who.name);
  if (setresuid(who.uid, who.uid, who.uid) != 0)
    return Error::sys("cannot set the uid of " + who.name);
  // Checked, not assumed: a kernel or a set*id that did less must stop here.
  if (setuid(0) != -1 || setgid(0) != -1 || setresuid(0, 0, 0) != -1)
    return Error::of(Errc::internal, "dropped to " + who.name + " but setuid(0) still succeeds: "
                     "refusing to serve");
  uid_t r, e, s;
  gid_t rg, eg, sg;
  if (getresuid(&r, &e, &s) != 0 || r != who.uid || e != who.uid || s != who.uid ||
      getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid)
    return Error::of(Errc::internal, "the ids after dropping to " + who.name + " are not its own");
  // A uid change to non-zero clears the capability sets, except ambient
  // ones in some cases: cleared explicitly, then checked.
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return Error::sys("cannot clear ambient capabilities");
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) return Error::sys("cannot read capabilities");
  for (const auto& d : data)
    if (d.effective || d.permitted || d.inheritable)
      return Error::of(Errc::internal, "capabilities are left after dropping to " + who.name);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Error::sys("cannot set no_new_privs");
  // Not dumpable: another process of the service user cannot ptrace this one
  // or read its memory (session keys) through /proc.
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return Error::sys("cannot clear dumpable");
  return {};
}

}  // namespace vigil::privsep
