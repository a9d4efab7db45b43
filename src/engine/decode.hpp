// Decoding kernel records into Events: pure functions, raw bytes in, event
// out, so they are unit-tested on hand-built records without root.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "event/event.hpp"

namespace vigil::decode {

// Kernel timestamps are CLOCK_BOOTTIME; events carry wall-clock time.
struct TimeBase {
  int64_t boot_to_realtime_ns = 0;  // realtime = boottime + this
  static TimeBase now();
  int64_t to_realtime(uint64_t boot_ns) const {
    return static_cast<int64_t>(boot_ns) + boot_to_realtime_ns;
  }
};

// The kind and session slot of a ring record, checked for size.
struct RecordHead {
  Kind kind;
  uint32_t session;
};
Result<RecordHead> head(std::span<const std::byte> record);

// argv as execve received it, without argv[0]. `blob` is the kernel's
// NUL-separated copy; for an interpreted exec (#! script) the kernel put the
// interpreter and its argument in front, which are dropped up to `path`.
// A trailing argument without its NUL (cut by the size limit) is dropped.
std::vector<std::string> split_argv(std::string_view blob, std::string_view path, bool script);

// What a successful exec's argv blob holds besides the arguments: the
// program's argv[0], or for a #! script the interpreter and its optional
// argument the kernel put in front (the script's own argv[0] is gone then).
struct ExecArgv {
  std::vector<std::string> argv;         // without argv[0], as split_argv
  std::vector<std::string> interpreter;  // script only: interpreter [, its argument]
  std::string argv0;                     // not a script: argv[0]
};
ExecArgv split_exec_argv(std::string_view blob, std::string_view path, bool script);

// One decoder per record kind. A command record carries its argv, path and
// kernel path after its fixed part; every length is bounded by the bytes
// received and by the record's limits, whatever the kernel claimed.
Result<Event> exec(std::span<const std::byte> record, const TimeBase& time);
Result<Event> open(std::span<const std::byte> record, const TimeBase& time);
// The same into `ev`, whose strings (and body, when it is already a disk
// event) are reused: the engine's worker decodes a storm without allocating.
// Every field of `ev` is set.
Result<void> open_into(std::span<const std::byte> record, const TimeBase& time, Event& ev);
// A network record of any operation (connect, send, accept, connect result).
Result<Event> network(std::span<const std::byte> record, const TimeBase& time);

// A session's kernel counters, summed over the per-CPU copies of its
// session_counters entry (`per_cpu` as bpf_map_lookup_elem returns it for
// `cpus` possible CPUs; a shorter buffer counts the CPUs it holds whole).
struct SessionCounters {
  KindCounts emitted;          // records handed to a ring
  KindCounts lost;             // records a full ring refused
  uint64_t marked_forks = 0;   // tasks that got the session's mark at fork
  uint64_t unmarked_forks = 0; // session tasks the kernel could not mark
};
SessionCounters sum_counters(std::span<const std::byte> per_cpu, size_t cpus);
// Bytes of a per-CPU session_counters value for `cpus` possible CPUs.
size_t per_cpu_counters_size(size_t cpus);

}  // namespace vigil::decode
