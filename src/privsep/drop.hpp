// Dropping root for good in a process that will read network input (the
// SSH front end; later the auth service and the proxy), the way OpenSSH's
// pre-authentication child does it.
//
//   auto who = ensure_service_user("vigil");   // in the monitor, as root
//   ... fork ...
//   if (auto r = drop_to(*who, {socket_fd, monitor_fd}); !r) _exit(1);  // in the child
//
// After drop_to(): every uid and gid (real, effective, saved, fs) is the
// service user's, the only group is its own, setuid(0) fails (checked,
// not assumed), no capability is left (effective, permitted, inheritable,
// ambient), execve can never gain privileges (PR_SET_NO_NEW_PRIVS), the
// process cannot be ptraced or dumped by its own uid (PR_SET_DUMPABLE 0),
// and every fd but `keep` (and 0..2, reopened on /dev/null) is closed.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.hpp"

namespace vigil::privsep {

// The account network-facing processes run as.
inline constexpr const char* kServiceUser = "vigil";

struct ServiceUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The account `name`, made as a system user with no home and no shell when
// missing (useradd --system --no-create-home --shell /usr/sbin/nologin;
// `created` tells the caller to say so). Refused: an account with uid or
// gid 0, which would drop nothing.
Result<ServiceUser> ensure_service_user(const std::string& name, bool* created = nullptr);

struct DropOptions {
  // Kept open (and 0..2, which are reopened on /dev/null unless listed).
  std::vector<int> keep_fds;
  // When set: chroot to it (an empty directory owned by root) before the
  // ids change, so that no file of the node can be opened by path.
  std::string chroot_dir;
};

// Irreversible. Call in a single-threaded process (right after fork):
// set*id changes only the calling thread's ids in the kernel, and glibc
// does the rest by signalling the other threads.
Result<void> drop_to(const ServiceUser& who, const DropOptions& options);

}  // namespace vigil::privsep
