// The enhanced recording engine: sessions in, decoded events out.
//
//   auto engine = Engine::start(options);            // loads BPF, attaches nothing
//   auto s = engine->open_session({"sid", kinds}, sink);  // cgroup + registration
//   launch(*s, spec);                                 // first process, inside it
//   // ... it exits:
//   auto summary = engine->end_session(*s, on_finished);  // drains every event
//
// Processes the first one left behind (`nohup x &`, `setsid -f`) stay in the
// session and recorded under it until the last one exits (then on_finished
// runs with the totals), or are killed (LeftoverPolicy::kill). Nothing a
// session started runs on unrecorded: close_session() and the engine's
// destructor kill what is left, and if the recording process itself dies a
// guard process it forked at start kills its sessions' processes.
//
// Two threads: the reader empties the kernel rings into a queue as fast as
// it can (the rings are small); the worker orders by time, decodes (into one
// reused event) and runs the sinks, one event at a time (record_order.hpp). A slow sink backs up into the queue
// (bounded by max_queued_bytes; beyond it records are counted as lost).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "engine/decode.hpp"
#include "engine/record_order.hpp"
#include "event/event.hpp"

struct ring_buffer;

namespace vigil {

class Probe;

// What happens to processes a session's first process leaves behind.
enum class LeftoverPolicy {
  record,  // they stay in the session, recorded, until the last one exits
  kill,    // they are killed when the first process ends (like KillUserProcesses)
};

struct EngineOptions {
  std::string cgroup_path = "/cgroup2";   // where cgroup2 is (or gets) mounted
  std::string root_path = "/vigil";       // this instance's sessions, below cgroup_path
  // Rounded up to 2^n; the command ring is raised to hold one record of the
  // largest size (ring_pages_in_use).
  std::array<uint32_t, kKindCount> ring_pages = {1024, 2048, 32};
  int poll_interval_ms = 50;               // longest a quiet event waits to be read
  // Records read from the rings wait here for decoding and the sinks; a
  // storm faster than the sinks fills it instead of the small kernel rings.
  // Past this bound records are dropped and counted as lost.
  size_t max_queued_bytes = 256u << 20;
  bool failed_execs = true;                // see config::EnhancedRecording::failed_execs
  LeftoverPolicy leftovers = LeftoverPolicy::record;
  // Seal each session (seal.hpp); read by whoever calls launch(), which
  // installs it. See config::EnhancedRecording::seal.
  bool seal = true;
  // The kernel path walk reads fields with plain loads (bpf_rdonly_cast,
  // Linux 6.2+) when the kernel takes them, else with probe reads. Tests
  // set false to check the probe-read walk on a kernel that has both.
  bool kernel_path_plain_loads = true;
  // Live sessions this engine takes at once (1 to 4095); slots are reused
  // round robin within this bound. Tests lower it to reuse a slot soon.
  uint32_t max_sessions = 4095;
};

// The ring sizes an engine uses for `requested` (pages per kind): each
// rounded up to a power of two, and the command ring raised to
// kMinCommandRingPages when it is smaller (one exec of 64 KiB of argv and two
// 4 KiB paths is a 72 KiB record; the guide's 8 pages would refuse it).
// `raised` says which kinds were raised. An error for 0 or more than 65536.
struct RingPages {
  std::array<uint32_t, kKindCount> pages{};
  std::array<bool, kKindCount> raised{};
};
inline constexpr uint32_t kMinCommandRingPages = 32;  // checked against the record's size
Result<RingPages> ring_pages_in_use(const std::array<uint32_t, kKindCount>& requested);

using EventSink = std::function<void(const Event&)>;

struct SessionSpec {
  std::string id;          // unique per engine; names the cgroup directory
  KindSet kinds = KindSet(0b101);  // command and network
};

struct SessionSummary {
  KindCounts recorded;     // events handed to the sink
  KindCounts lost;         // events that could not be delivered whole
  // Processes still in the session when its first process ended: in its
  // cgroup, or carrying its mark wherever they moved.
  size_t leftover_processes = 0;
  enum class Leftovers {
    none,     // there were none: the session is closed
    running,  // still recorded: on_finished follows when the last one exits
    exited,   // the last one exited (on_finished): the session is closed
    killed,   // killed (policy, close_session, shutdown): the session is closed
  } leftovers = Leftovers::none;
};
using FinishedSink = std::function<void(const SessionSummary&)>;

class Session {
 public:
  const std::string& id() const { return id_; }
  KindSet kinds() const { return kinds_; }
  const std::string& cgroup_dir() const { return cgroup_dir_; }
  uint64_t cgroup_id() const { return cgroup_id_; }
  uint32_t slot() const { return slot_; }
  // Ties an audit session id (from /proc/<pid>/sessionid of the first
  // process) to this session, so a process that leaves the cgroup is still
  // recorded. Call before that process runs untrusted code.
  Result<void> bind_audit_session(uint32_t audit_session);
  // Gives the process `pid` this session's mark (see Engine): every task it
  // starts from now on inherits it, and it follows them out of the cgroup
  // and the audit session. Call before that process runs untrusted code.
  Result<void> mark_process(pid_t pid);

 private:
  friend class Engine;
  Session() = default;
  class Engine* engine_ = nullptr;
  std::string id_;
  KindSet kinds_;
  std::string cgroup_dir_;
  uint64_t cgroup_id_ = 0;
  uint32_t slot_ = 0;
  uint32_t generation_ = 0;   // the slot's generation while this session holds it
  Fd lock_;
  std::vector<uint32_t> audit_sessions_;
  EventSink sink_;
  std::function<void()> on_batch_;
  bool touched_ = false;      // got events in the current pass
  // Written by the engine's threads while leftovers run, read for summaries.
  std::array<std::atomic<uint64_t>, kKindCount> delivered_{};
  // Dropped in user space (queue full, undecodable): counted as they happen
  // so a summary taken while processes still run is exact about them.
  std::array<std::atomic<uint64_t>, kKindCount> user_lost_{};
  // Under the engine's mu_: open -> (lingering ->) closing -> closed.
  enum class State { open, lingering, closing, closed } state_ = State::open;
  size_t leftover_processes_ = 0;
  FinishedSink on_finished_;  // lingering sessions
  int watch_ = -1;            // inotify watch of cgroup.events while lingering
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> start(const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // `on_batch`, when given, runs after each pass over the rings that
  // delivered events to this session: the moment to flush buffered output.
  Result<std::shared_ptr<Session>> open_session(const SessionSpec& spec, EventSink sink,
                                                std::function<void()> on_batch = {});
  // The session's first process has ended. Every event its processes
  // produced before this call reaches the sink before it returns, and the
  // summary counts them. When no process is left the session is closed
  // (cgroup removed). Processes still running are killed and waited for
  // (LeftoverPolicy::kill), or stay recorded (LeftoverPolicy::record:
  // `leftovers` is running) until the last one exits; then the session is
  // closed and `on_finished` runs, once, on an engine thread, with the
  // totals of the whole session.
  Result<SessionSummary> end_session(Session& session, FinishedSink on_finished = {});
  // Ends a session now: kills whatever still runs in it, waits for it,
  // drains and closes. A lingering session's on_finished runs too (with
  // `killed`), before this returns.
  Result<SessionSummary> close_session(Session& session);

  const EngineOptions& options() const { return options_; }
  // The ring sizes in use, in pages (ring_pages_in_use of the options).
  const std::array<uint32_t, kKindCount>& ring_pages() const { return ring_pages_; }
  bool has_audit_session() const;
  // Whether the kernel path walk reads with plain loads (else probe reads).
  bool kernel_path_plain_loads() const;
  // Which kinds have their hooks attached now (for tests and `vigil check`).
  bool attached(Kind kind) const;
  // Whether the fork hook that marks sessions' tasks is attached (it is
  // while any session lives).
  bool marks_attached() const;
  // The id of the live session whose mark process `pid` carries, or empty
  // (no mark, or the mark of an ended session). For tests and diagnostics.
  std::string session_of_process(pid_t pid) const;
  // For metrics (read at scrape time): bytes waiting in the kind's kernel
  // ring (its producer position minus its consumer's), and the records the
  // reader copied out that wait for the worker.
  uint64_t ring_used_bytes(Kind kind) const;
  struct Queued {
    uint64_t bytes = 0;
    uint64_t records = 0;
  };
  Queued queued();
  // Waits until hooks no live session needs are detached (that happens in
  // the background after a close, as it takes a grace period per hook).
  void settle();

 private:
  friend class Session;
  Engine() = default;
  Result<void> setup();
  void reader_loop();
  void worker_loop();
  void drain();
  int on_record(const void* data, size_t size);
  void deliver(uint64_t until_boot_ns, const decode::TimeBase& time);
  class Delivery;
  static int ring_callback(void* ctx, void* data, size_t size);
  Result<void> retain(KindSet kinds);
  // The session's kernel counters, summed over CPUs.
  decode::SessionCounters kernel_counters(const Session& s) const;
  // Live processes (thread-group leaders) carrying the session's mark, this
  // process excepted; with `kill`, each is sent SIGKILL through its pidfd.
  std::vector<pid_t> marked_processes(const Session& s, bool kill) const;
  // Whether a process carrying the session's mark still runs: a scan that
  // finds none counts only when no marked fork happened during it.
  bool marked_alive(const Session& s) const;
  // Kills every process carrying the session's mark, until a scan finds
  // none with no marked fork during it; returns how many were signalled.
  size_t kill_marked(const Session& s) const;
  void release(KindSet kinds);
  void detacher_loop();
  void reaper_loop();
  Result<void> start_guard();
  Result<uint32_t> alloc_slot();
  void cleanup_stale_sessions();
  // Unregisters, waits for in-flight programs, drains, removes the cgroup:
  // the session's processes are gone (or no longer its concern).
  SessionSummary finish(Session& s);
  // Whether `s` can be ended by this caller (open or lingering), marking it closing.
  Result<Session::State> begin_closing(Session& s);

  EngineOptions options_;
  std::array<uint32_t, kKindCount> ring_pages_{};
  std::string root_dir_;      // cgroup_path + root_path
  std::string lock_dir_;      // /run/vigil/<root> session lock files
  std::unique_ptr<Probe> probe_;
  ring_buffer* rings_ = nullptr;
  Fd epoll_;
  Fd wake_;                   // eventfd: drain requests and stop

  // Lock order: mu_ may be held when taking attach_mu_, never the reverse.
  mutable std::mutex attach_mu_;  // kind_users_ and the probe's links
  std::condition_variable attach_cv_;
  std::array<int, kKindCount> kind_users_ = {0, 0, 0};
  int mark_users_ = 0;        // live sessions: the fork hook is attached while > 0
  bool detach_pending_ = false;
  bool detacher_stop_ = false;
  std::thread detacher_;

  mutable std::mutex mu_;     // sessions_, slots; held while reading rings
  std::vector<std::shared_ptr<Session>> sessions_;  // by slot
  uint32_t next_slot_ = 1;
  uint32_t next_generation_ = 1;  // never 0 (a free slot)
  size_t cpus_ = 1;               // possible CPUs: copies of a per-CPU value
  int live_sessions_ = 0;
  // Reader side (under mu_).
  uint64_t undecodable_ = 0;    // records too damaged to name a session
  uint64_t late_records_ = 0;   // records of sessions already closed

  // Records on their way from the reader to the worker: raw bytes (a
  // command's carry its argv and paths).
  RecordBatch reading_;         // filled by the reader during a pass (under mu_)
  size_t reading_budget_ = 0;   // bytes reading_ may take in this pass (the queue's room)
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  RecordBatch inbox_;           // handed to the worker
  uint64_t inbox_ticket_ = 0;   // drain ticket the inbox completes
  uint64_t queue_dropped_ = 0;  // records refused past max_queued_bytes (reader only)
  bool worker_stop_ = false;
  std::thread worker_;

  // Worker side.
  RecordOrder order_;              // records waiting to be delivered in time order
  std::vector<Session*> touched_;  // sessions that got events in this pass

  std::mutex drain_mu_;
  std::condition_variable drained_;
  // Lingering sessions: the reaper waits for their cgroup to empty.
  Fd inotify_;
  Fd reaper_wake_;
  bool reaper_stop_ = false;  // under mu_
  std::thread reaper_;
  // The guard process: it kills this engine's sessions if this process dies
  // without closing them (its end of the pipe then reads EOF).
  pid_t guard_pid_ = -1;
  Fd guard_pipe_;
  uint64_t drain_requested_ = 0;
  uint64_t drain_done_ = 0;
  bool stop_ = false;
  std::thread reader_;
};

}  // namespace vigil
