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

#include "auditlog/file_log.hpp"
#include "bench_events.hpp"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

constexpr auto kRunFor = std::chrono::seconds(2);

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
  const auto lines = bench::disk_event_lines();
  using bench::kDistinctLines;

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
      bench::average_bytes(lines));
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
