// cgroup v2 plumbing for sessions: the mount, session directories, ids,
// and moving processes out before a directory is removed.
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

// Moves every process of `from` into `to`, until `from` stays empty
// (processes may fork while they are moved). Returns how many were moved.
Result<size_t> move_all(const std::string& from, const std::string& to);

// Removes an empty cgroup directory.
Result<void> remove(const std::string& dir);

}  // namespace vigil::cgroup
