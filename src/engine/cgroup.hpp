// cgroup v2 plumbing for sessions: the mount, session directories, ids,
// and ending what runs in a directory before it is removed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace vigil::cgroup {

// Makes sure `path` is the root of a cgroup v2 hierarchy, mounting one there
// when nothing is mounted. Returns true when this call mounted it. A mount
// Vigil did not make is never unmounted (and Vigil leaves its own in place:
// other instances may share it).
Result<bool> ensure_mounted(const std::string& path);

// mkdir -p, each component a cgroup.
Result<void> make_dirs(const std::string& path);

// The kernel's id of a cgroup directory, as bpf_get_current_cgroup_id() sees it.
Result<uint64_t> id_of(const std::string& dir);

// Depth below the hierarchy root, counted in path components.
uint32_t level_below(const std::string& root, const std::string& dir);

std::vector<pid_t> procs(const std::string& dir);

// Whether any process is in `dir` or below (cgroup.events "populated").
Result<bool> populated(const std::string& dir);

// SIGKILLs every process in `dir` and below (cgroup.kill: a forking process
// cannot outrun it) and waits, bounded, until none is left. Returns how many
// processes were there when it started.
Result<size_t> kill_all(const std::string& dir);

// Removes an empty cgroup directory.
Result<void> remove(const std::string& dir);

}  // namespace vigil::cgroup
