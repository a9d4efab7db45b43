// The file back end of the audit log, the embedded default: one JSON event
// a line in one file a UTC day, laid out as Teleport's file log
// (layout.hpp):
//
//   <data_dir>/log/<server-uuid>/2026-11-27.00:00:00.log
//   <data_dir>/log/events.log -> <server-uuid>/2026-11-27.00:00:00.log
//
// Day: a line goes to the file of the day the writer's clock shows when it
// is emitted. events.log is re-pointed (new symlink under a temporary name,
// then rename) when a day's file is first opened, at the first event or
// flusher tick after midnight, so `tail -F events.log` follows the log.
//
// Durability policy (bounded delay):
// - buffered: emit() appends to an in-memory group. The group is written
//   when it reaches group_bytes (by the emitting thread, which is how a
//   producer faster than the disk is slowed down rather than dropped) or
//   by the flusher within flush_interval; the flusher then fsyncs the files
//   it wrote. A buffered line is in the file within about flush_interval
//   and on stable storage within about 2 x flush_interval.
// - sync: emit() writes every pending line up to and including this one,
//   fsyncs, and only then returns success. Concurrent sync emits share
//   write() and fsync() calls (group commit).
//
// Whole lines only: files are opened with O_APPEND and each write() carries
// complete lines, so readers and other processes appending to the same day
// file never see interleaved lines. Writers serialise through flock() on
// the day file, which makes two repairs safe:
// - a short write (disk full) is truncated back to the size before it;
// - a line torn by a writer killed mid-write (the kernel may stop a write
//   between pages on SIGKILL) is cut off by the next writer before it
//   appends, so it never glues onto the next line. A torn group holds no
//   acknowledged line: sync emits return after their write completed.
//
// When the disk refuses writes (ENOSPC, EIO): the first failure of a streak
// is logged as an error, every failed attempt is counted (stats()), unwritten
// lines stay in memory up to max_pending_bytes and are retried at each
// flusher tick; lines beyond the bound are refused and counted as lost. A
// sync emit that cannot be made durable returns an error (its line stays
// queued and is written when the disk recovers).
//
// A new day file's directory is fsync'ed too, so that an acknowledged line
// never sits in a file whose name a crash could lose.
//
// Restarting appends to today's file. Thread-safe: any number of sessions
// may emit at once.
//
// As an AuditStore (store.hpp): search() reads every server's day files
// under <data_dir>/log (search.hpp), so it finds what other writers, other
// nodes sharing the directory included, have written. open_for_search()
// gives a handle that only searches (`vigil events`): it creates and locks
// nothing, and refuses appends.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "auditlog/store.hpp"
#include "common/fd.hpp"

namespace vigil::auditlog {

// The system calls that put bytes on disk. Tests replace them to inject
// faults (ENOSPC, short writes, fsync errors) deterministically.
struct FileLogIo {
  std::function<ssize_t(int fd, const char* data, size_t len)> write;  // default ::write
  std::function<int(int fd)> fsync;                                    // default ::fsync
};

struct FileLogOptions {
  std::string data_dir;
  std::string server_uuid;          // the directory under <data_dir>/log
  std::function<int64_t()> now_ns;  // default CLOCK_REALTIME; tests cross midnight
  std::chrono::milliseconds flush_interval{100};
  size_t group_bytes = 64 << 10;        // one write() per group of lines
  size_t max_pending_bytes = 64 << 20;  // kept in memory while writes fail
  FileLogIo io;
};

struct FileLogStats {
  uint64_t events_written = 0;
  uint64_t bytes_written = 0;
  uint64_t events_pending = 0;  // accepted, not yet written
  uint64_t bytes_pending = 0;
  uint64_t lost_events = 0;   // refused past max_pending_bytes, or unwritten at close
  uint64_t write_errors = 0;  // failed write attempts (each retry counts)
  uint64_t fsync_errors = 0;
  uint64_t torn_repairs = 0;  // torn tails cut off (left by a writer killed mid-write)
  bool failing = false;       // the last write attempt failed
};

class FileLog final : public AuditStore {
 public:
  // Creates <data_dir>/log/<server_uuid>/ when missing, opens today's file
  // for appending and points events.log at it.
  static Result<std::unique_ptr<FileLog>> open(FileLogOptions options);
  // Search only: <data_dir>/log is not created (a search of a data_dir
  // with no log is an Errc::not_found error); emit and append are refused
  // (Errc::failed_precondition).
  static Result<std::unique_ptr<FileLog>> open_for_search(std::string data_dir);

  // Writes and fsyncs what is pending; what cannot be written is logged and
  // lost.
  ~FileLog() override;

  Result<void> emit(std::string_view json_line,
                    Durability durability = Durability::buffered) override;
  Result<void> flush() override;
  Result<void> append(std::span<const std::string_view> lines,
                      Durability durability = Durability::buffered) override;
  // Sees what this handle's emit/append accepted once written (flush(), or
  // within about flush_interval), and everything other writers wrote.
  Result<Page> search(const Query& query) override;

  FileLogStats stats() const;

  // <data_dir>/log/<server_uuid>
  const std::string& server_dir() const { return server_dir_; }

  FileLog(const FileLog&) = delete;
  FileLog& operator=(const FileLog&) = delete;

 private:
  // Lines of one day, written with one write().
  struct Group {
    int64_t day = 0;
    std::string bytes;
    uint64_t lines = 0;
    uint64_t last_seq = 0;  // sequence number of its last line
  };
  // An open day file. Shared, so an fsync outside io_mu_ keeps it open.
  struct DayFile {
    int64_t day = 0;
    std::string path;
    Fd fd;
    bool dirty = false;     // written since its last fsync (guarded by io_mu_)
    off_t known_size = -1;  // size after our last write: no torn-tail check needed
  };

  explicit FileLog(FileLogOptions options);
  Result<void> accept(std::span<const std::string_view> lines, Durability durability);
  void flusher_loop();
  Result<void> write_pending();
  Result<void> write_group(const Group& group);
  Result<std::shared_ptr<DayFile>> file_for(int64_t day);
  Result<void> sync_through(uint64_t seq);
  void point_link_at(int64_t day);
  void repair_newest_earlier_file(int64_t today);

  FileLogOptions opt_;
  bool search_only_ = false;
  std::string log_dir_;
  std::string server_dir_;

  // Accepting lines: cheap, never waits for the disk.
  mutable std::mutex mu_;
  std::deque<Group> pending_;  // oldest first
  uint64_t next_seq_ = 0;
  FileLogStats stats_;  // counters (failing is mirrored from failing_)
  bool stop_ = false;
  std::condition_variable wake_;

  // Writing: one writer at a time keeps groups in order.
  std::mutex io_mu_;
  std::map<int64_t, std::shared_ptr<DayFile>> files_;
  int64_t linked_day_ = INT64_MIN;
  bool failing_ = false;
  std::atomic<bool> failing_flag_{false};
  std::atomic<uint64_t> written_seq_{0};  // every line up to this one is written

  // Making durable: one fsync round at a time. Lock order: sync_mu_, io_mu_, mu_.
  std::mutex sync_mu_;
  uint64_t synced_seq_ = 0;  // every line up to this one is fsync'ed
  bool fsync_failing_ = false;

  std::thread flusher_;
};

}  // namespace vigil::auditlog
