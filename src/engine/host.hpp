// What the host offers: privileges, tracefs, BTF, cgroup2, audit sessions.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"

namespace vigil::host {

inline constexpr const char* kTracefs = "/sys/kernel/tracing";

// CAP_BPF (or CAP_SYS_ADMIN on old kernels), CAP_SYS_ADMIN and CAP_PERFMON
// are needed to load, attach and manage cgroups. Says plainly what is missing.
Result<void> require_bpf_privileges();

// Mounts tracefs at /sys/kernel/tracing when it is not there yet.
Result<void> ensure_tracefs();
bool tracepoint_exists(const std::string& category, const std::string& name);

// One line of `vigil check`.
struct Check {
  std::string what;
  bool ok = false;
  std::string detail;
  bool required = true;  // a failed required check means no enhanced recording
};

}  // namespace vigil::host
