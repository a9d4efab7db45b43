// The node's spool of audit events: what the node's sessions emit waits in
// <data_dir>/spool/ (0700) until the auth service has acknowledged it.
//
//   <data_dir>/spool/lock                        flock'ed by the one process that spools
//   <data_dir>/spool/acked                       "<seq>\n": everything up to seq is delivered
//   <data_dir>/spool/events-<first seq, 20 digits>.log   segments, one record a line:
//        <seq> <crc32 of "<seq> <json>", 8 hex digits> <json>\n
//
// Sequence numbers count this node's events from 1, never reused: after a
// restart the next one follows the largest found in the segments or in
// `acked`. Appends follow the Emitter durability contract (emitter.hpp):
// every append is written (write(), so it survives a crash of the process)
// before it returns; sync appends are fsync'ed before they return, buffered
// ones within flush_interval. A segment is fsync'ed before the next one is
// started, and `acked` is replaced atomically (temporary file, fsync,
// rename, fsync of the directory) before a delivered segment is deleted.
//
// Crashes: a writer killed in the middle of a write leaves at most one
// unfinished record at the end of the last segment; open() cuts it off (its
// event was never acknowledged to the emitter) and counts it in torn_repairs.
// A record whose checksum or sequence number is wrong anywhere else is
// damage, not a crash: open() refuses the spool (data_loss) and says which
// file to move away.
//
// Disk bound: past max_spool_bytes (or when the disk refuses a write) an
// event is not spooled: append() returns Errc::resource_exhausted and the
// event is counted as lost. As soon as there is room again (the next append
// that fits, or an acknowledgement freeing segments) the count goes into the
// spool as an event of its own, before anything newer:
//   {"count":N,"event":"audit.lost","reason":"...","server_hostname":...,"server_id":...,"time":...,"uid":...}
// The count not yet spooled lives in memory: a restart while the spool is
// full forgets it (the emitters saw the errors).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "auditlog/emitter.hpp"
#include "common/fd.hpp"
#include "common/result.hpp"
#include "relay/wire.hpp"

namespace vigil::relay {

// The system calls that put bytes on disk; tests inject faults and crashes.
struct SpoolIo {
  std::function<ssize_t(int fd, const char* data, size_t len)> write;  // default ::write
  std::function<int(int fd)> fsync;                                    // default ::fdatasync
};

struct OutboxOptions {
  std::string data_dir;         // the spool is <data_dir>/spool
  std::string server_id;        // named in the audit.lost event
  std::string server_hostname;
  uint64_t max_spool_bytes = 1ull << 30;
  uint64_t segment_bytes = 8u << 20;  // a new segment starts past this size
  std::chrono::milliseconds flush_interval{100};
  std::function<int64_t()> now_ns;    // default CLOCK_REALTIME
  SpoolIo io;
};

struct OutboxStats {
  uint64_t spooled = 0;        // events appended by this process (audit.lost events included)
  uint64_t spool_bytes = 0;    // on disk now, not yet delivered
  uint64_t last_seq = 0;       // the newest event's sequence number
  uint64_t acked_seq = 0;      // delivered up to here
  uint64_t lost = 0;           // events refused (spool full, disk error), ever, this process
  uint64_t lost_unreported = 0;  // of those, not yet in an audit.lost event
  uint64_t write_errors = 0;
  uint64_t fsync_errors = 0;
  uint64_t torn_repairs = 0;   // unfinished records cut off at open()
};

class Outbox {
 public:
  static Result<std::unique_ptr<Outbox>> open(OutboxOptions options);
  // Fsyncs what was appended; stops the flusher.
  ~Outbox();

  // Spools the lines (each checked as Emitter::emit checks it) in order,
  // all or none; returns the sequence number of the last one.
  Result<uint64_t> append(std::span<const std::string_view> lines,
                          auditlog::Durability durability = auditlog::Durability::buffered);
  Result<uint64_t> append(std::string_view line,
                          auditlog::Durability durability = auditlog::Durability::buffered) {
    return append(std::span<const std::string_view>(&line, 1), durability);
  }
  // Makes everything appended durable.
  Result<void> flush();

  // Spooled events from from_seq on (events without '\n'): at most
  // max_events, and at most max_bytes unless the first event alone is
  // longer. Empty when there is nothing from from_seq on.
  Result<Batch> read(uint64_t from_seq, size_t max_events, size_t max_bytes);

  // The auth service holds everything up to seq: recorded durably, then
  // the segments it covers are deleted. seq beyond last_seq() is a bug of
  // the caller (invalid_argument); an older seq than acked() changes nothing.
  Result<void> ack(uint64_t seq);

  uint64_t acked() const;
  uint64_t last_seq() const;
  // Waits until an event after `seq` is spooled, the timeout passes or
  // wake_all() is called. True when there is one.
  bool wait_beyond(uint64_t seq, std::chrono::milliseconds timeout);
  void wake_all();

  OutboxStats stats() const;
  const std::string& dir() const { return dir_; }

  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

 private:
  struct Segment {
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;  // first_seq - 1 while empty
    std::string path;
    std::shared_ptr<Fd> fd;
    uint64_t size = 0;
  };

  explicit Outbox(OutboxOptions options);
  Result<void> recover();
  // Adds events from `from` on within its segment; false when it has none.
  Result<bool> read_segment(uint64_t from, size_t max_events, size_t max_bytes, Batch& batch,
                            uint64_t& bytes);
  Result<void> write_locked(const std::vector<std::string>& lines, uint64_t record_bytes);
  void report_lost_locked();
  Result<void> sync_through(uint64_t seq);
  Result<void> write_acked(uint64_t seq);
  void flusher_loop();

  OutboxOptions opt_;
  std::string dir_;
  Fd lock_fd_;

  mutable std::mutex mu_;
  std::condition_variable appended_;
  std::vector<Segment> segments_;  // oldest first; the last is appended to
  uint64_t next_seq_ = 1;
  uint64_t acked_ = 0;
  uint64_t spool_bytes_ = 0;
  uint64_t lost_unreported_ = 0;
  uint64_t wakes_ = 0;
  OutboxStats stats_;
  // read()'s place: the byte offset of cursor_seq_ in its segment.
  uint64_t cursor_segment_ = 0;  // first_seq of the cursor's segment; 0: none
  uint64_t cursor_seq_ = 0;
  uint64_t cursor_offset_ = 0;
  bool stop_ = false;
  std::condition_variable stop_cv_;

  // fsync rounds, one at a time. Lock order: sync_mu_, then mu_.
  std::mutex sync_mu_;
  uint64_t synced_seq_ = 0;
  // Writing `acked`, one at a time. Lock order: ack_mu_, then mu_.
  std::mutex ack_mu_;

  std::thread flusher_;
};

// The bytes of one spool record ("<seq> <crc> <json>\n") for an event line
// without '\n'; exposed for tests that damage a spool on purpose.
std::string spool_record(uint64_t seq, std::string_view json);

}  // namespace vigil::relay
