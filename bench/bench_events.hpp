// What the audit-log benchmarks share: realistic encoded audit lines (a
// busy session's file opens, session.disk) and a process's CPU time and
// peak memory. Header only; used by auditlog_bench and relay_bench.
#pragma once

#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "audit/encode.hpp"

namespace vigil::bench {

inline constexpr size_t kDistinctLines = 4096;

// kDistinctLines session.disk lines of one node, about 500 bytes each,
// stamped from now on.
inline std::vector<std::string> disk_event_lines(
    const std::string& server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f",
    const std::string& server_hostname = "ip-172-31-34-128.us-east-2.compute.internal") {
  static const char* kPaths[] = {
      "/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6",  "/usr/share/locale/locale.alias",
      "/etc/passwd",      "/home/alice/project/src/main.cpp", "/proc/self/status"};
  audit::SessionMeta meta;
  meta.cluster_name = "purple";
  meta.server_hostname = server_hostname;
  meta.server_id = server_id;
  meta.sid = "86aca627-971d-4883-854d-d309ba04c658";
  meta.login = "ec2-user";
  meta.user = "alice@goteleport.com";
  std::vector<std::string> lines;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  for (size_t i = 0; i < kDistinctLines; ++i) {
    Event ev;
    ev.time_ns = int64_t{now.tv_sec} * 1'000'000'000 + static_cast<int64_t>(i) * 1000;
    ev.process.pid = 5007;
    ev.process.ppid = 4985;
    ev.process.cgroup_id = 2360;
    ev.process.program = "make";
    ev.body = DiskEvent{kPaths[i % std::size(kPaths)], 0x80000, 0, i % 7 == 0 ? -2 : 3};
    std::string line;
    audit::encode_event(ev, meta, i, "9b825e22-744d-4130-94c5-dea49198ae3d", line);
    lines.push_back(std::move(line));
  }
  return lines;
}

inline size_t average_bytes(const std::vector<std::string>& lines) {
  size_t n = 0;
  for (const auto& l : lines) n += l.size();
  return lines.empty() ? 0 : n / lines.size();
}

// User + system CPU seconds of a process (0 = this one), from /proc.
inline double cpu_seconds(pid_t pid = 0) {
  std::ifstream f(pid ? "/proc/" + std::to_string(pid) + "/stat" : std::string("/proc/self/stat"));
  std::string text((std::istreambuf_iterator<char>(f)), {});
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// A field of /proc/<pid>/status in KiB (VmHWM: peak RSS), -1 when absent.
inline long status_kib(pid_t pid, const std::string& key) {
  std::ifstream f(pid ? "/proc/" + std::to_string(pid) + "/status" : std::string("/proc/self/status"));
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

}  // namespace vigil::bench
