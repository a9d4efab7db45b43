// Append rate of the file audit log: one thread emits realistic encoded
// session.disk lines (buffered durability, the default) into a FileLog for
// about two seconds; the time includes writing and fsyncing them all.
//
//   auditlog_bench [DIR]     (default: a temporary directory under /tmp, removed after)
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "audit/encode.hpp"
#include "auditlog/file_log.hpp"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

constexpr auto kRunFor = std::chrono::seconds(2);
constexpr size_t kDistinctLines = 4096;

// What a busy session's file opens look like in the log.
std::vector<std::string> make_lines() {
  static const char* kPaths[] = {
      "/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6",  "/usr/share/locale/locale.alias",
      "/etc/passwd",      "/home/alice/project/src/main.cpp", "/proc/self/status"};
  audit::SessionMeta meta;
  meta.cluster_name = "purple";
  meta.server_hostname = "ip-172-31-34-128.us-east-2.compute.internal";
  meta.server_id = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
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

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  bool temporary = argc < 2;
  if (temporary) {
    char tmpl[] = "/tmp/vigil-auditlog-bench-XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
  } else {
    dir = argv[1];
  }
  const auto lines = make_lines();
  size_t line_bytes = 0;
  for (const auto& l : lines) line_bytes += l.size();

  auditlog::FileLogOptions options;
  options.data_dir = dir;
  options.server_uuid = "531dc1de-c2c9-49bd-a0e3-4f4f3a523f5f";
  auto log = auditlog::FileLog::open(options);
  if (!log) {
    std::fprintf(stderr, "auditlog_bench: %s\n", log.error().message.c_str());
    return 1;
  }

  uint64_t events = 0, bytes = 0, refused = 0;
  const auto start = Clock::now();
  const auto stop = start + kRunFor;
  while (Clock::now() < stop) {
    for (size_t i = 0; i < 1024; ++i) {
      const std::string& line = lines[events % kDistinctLines];
      if (!(*log)->emit(line)) ++refused;
      ++events;
      bytes += line.size();
    }
  }
  const auto emitted = Clock::now();
  if (auto r = (*log)->flush(); !r)
    std::fprintf(stderr, "auditlog_bench: %s\n", r.error().message.c_str());
  const auto done = Clock::now();
  const auto stats = (*log)->stats();
  log->reset();
  if (temporary) std::filesystem::remove_all(dir);

  const double emit_s = std::chrono::duration<double>(emitted - start).count();
  const double total_s = std::chrono::duration<double>(done - start).count();
  std::printf(
      "auditlog_bench: FileLog append, 1 thread, buffered, session.disk lines of %zu bytes on "
      "average\n",
      line_bytes / lines.size());
  std::printf("  %llu events in %.2f s (%.2f s to emit, %.3f s final write+fsync)\n",
              static_cast<unsigned long long>(events), total_s, emit_s, total_s - emit_s);
  std::printf("  %.0f events/s, %.1f MB/s (written and fsync'ed)\n", events / total_s,
              bytes / total_s / 1e6);
  std::printf("  written %llu, lost %llu, refused %llu, write errors %llu\n",
              static_cast<unsigned long long>(stats.events_written),
              static_cast<unsigned long long>(stats.lost_events),
              static_cast<unsigned long long>(refused),
              static_cast<unsigned long long>(stats.write_errors));
  return stats.lost_events == 0 && refused == 0 ? 0 : 1;
}
