// Starting a session's first process: inside the session's cgroup, with a
// fresh audit session id bound to the session, before any of its own code
// runs. The SSH node and `vigil record` both start processes this way.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "engine/account.hpp"
#include "engine/engine.hpp"
#include "engine/seal.hpp"

namespace vigil {

struct LaunchSpec {
  std::vector<std::string> argv;             // argv[0] is looked up in PATH when it has no '/'
  std::optional<Credentials> credentials;    // become this user (when not already)
  std::optional<std::vector<std::string>> env;  // replaces the environment when set
  std::string cwd;                           // empty: stay
  // Runs in the child after it joined the session and before it drops
  // privileges: only async-signal-safe calls (the parent has threads).
  std::function<void()> child_setup;
  // Installed in the child right before it drops privileges (seal.hpp);
  // must outlive the launch() call. Null: the session is not sealed.
  const seal::Filter* seal = nullptr;
};

struct Launched {
  pid_t pid = -1;
  uint32_t audit_session = UINT32_MAX;  // UINT32_MAX when the kernel has no audit sessions
};

// Starts spec's program as the first process of `session` (in its cgroup,
// its audit session id registered before the program runs).
Result<Launched> launch(Session& session, const LaunchSpec& spec);
// The same without enhanced recording: the program still gets a fresh
// audit session id and the launcher's clean start (fds, signals).
Result<Launched> launch_unrecorded(const LaunchSpec& spec);

// PATH lookup as a shell does it; an empty result means not found.
std::string find_in_path(const std::string& name, const std::string& path_var);

}  // namespace vigil
