// Writes one session's recording while the session runs: terminal output
// from the pty thread, audit events from the engine thread, resizes from
// either, all into one .vrec file (format.hpp).
//
// Records are kept in time order: the engine delivers an event tens of
// milliseconds after it happened, later than output printed after it, so
// records wait in memory for `reorder_window` before they are written. A
// chunk is written (compressed, one write on an O_APPEND fd) when pending
// records reach `chunk_bytes`, every `flush_interval`, and at close, so a
// reader of a live session lags it by about a second.
//
// The bytes go to a RecordingStore (recording_store.hpp): the header at
// create, whole chunks after it, and close() finishes the recording (status
// complete). The store keeps the status as metadata: a reader tells a
// session in progress from one whose writer died without a lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "recording/format.hpp"
#include "recording/file_store.hpp"
#include "recording/recording_store.hpp"

typedef struct z_stream_s z_stream;

namespace vigil::recording {

struct WriterOptions {
  size_t chunk_bytes = 64 * 1024;  // raw payload size that triggers a chunk
  // A chunk of whatever has settled is written this often; 0 turns the
  // background flusher off (chunks then come from size, flush() and close()).
  std::chrono::milliseconds flush_interval{1000};
  // How late a record may arrive and still be put in time order.
  int64_t reorder_window_ns = 250'000'000;
  // zlib 0..9. 1: a session recording every open produces hundreds of
  // thousands of events a second, and level 6 cost 3x the CPU of level 1
  // for files about 20% smaller (bench/recording_bench.cpp).
  int compression_level = 1;
  std::function<int64_t()> clock;  // ns since the epoch; CLOCK_REALTIME when unset
};

struct WriterStats {
  uint64_t records = 0;
  uint64_t raw_bytes = 0;   // payload bytes before compression
  uint64_t file_bytes = 0;  // bytes in the file, header included
  uint64_t chunks = 0;
  uint64_t late_records = 0;  // arrived after later records were written
  uint64_t lost_bytes = 0;    // chunks given up after write errors
};

class RecordingWriter {
 public:
  // A new recording of session header.sid in `store` (never replaces one).
  static Result<std::unique_ptr<RecordingWriter>> create(RecordingStore& store,
                                                         const Header& header,
                                                         WriterOptions options = {});
  // The file back end at an explicit path: creates `path` (never replaces a
  // file) and writes the header.
  static Result<std::unique_ptr<RecordingWriter>> create(const std::string& path,
                                                         const Header& header,
                                                         WriterOptions options = {});
  // A session's recording where it belongs: <data_dir>/log/records/<sid>.vrec
  // (the directory made when missing).
  static Result<std::unique_ptr<RecordingWriter>> create_in(const std::string& data_dir,
                                                            const Header& header,
                                                            WriterOptions options = {});
  ~RecordingWriter();  // closes; errors are logged
  RecordingWriter(const RecordingWriter&) = delete;
  RecordingWriter& operator=(const RecordingWriter&) = delete;

  // Thread-safe. Times are ns since the epoch. Writing errors do not stop
  // the session: they are kept and reported by flush() and close().
  void output(int64_t time_ns, std::string_view bytes);
  void resize(int64_t time_ns, uint16_t cols, uint16_t rows);
  void event(int64_t time_ns, std::string_view json_line);  // one trailing '\n' is dropped

  // Writes every pending record now, settled or not.
  Result<void> flush();
  // Flushes, finishes the recording in its store (durable, status
  // complete). Later appends are ignored.
  Result<void> close();

  // Stops without finishing: what is pending is dropped and the recording
  // is left interrupted in its store (a session that could not start, a
  // writer giving up). close() and appends afterwards do nothing.
  void abandon();

  const std::string& path() const { return path_; }
  WriterStats stats() const;

 private:
  struct Pending {
    RecordType type;
    int64_t time_ns;
    std::string data;
    uint16_t cols = 0, rows = 0;
  };

  static Result<std::unique_ptr<RecordingWriter>> start(std::unique_ptr<RecordingSink> sink,
                                                        const Header& header, size_t header_bytes,
                                                        WriterOptions options);
  RecordingWriter(std::unique_ptr<RecordingSink> sink, int64_t start_ns, size_t header_bytes,
                  WriterOptions options);
  void append(Pending record);
  void write_settled_locked(bool all);
  void write_chunk_locked(size_t count);
  std::string compress_locked(std::string& raw);
  void write_out_locked();
  Result<void> status_locked() const;

  const std::string path_;
  const int64_t start_ns_;
  const WriterOptions options_;
  std::unique_ptr<z_stream, void (*)(z_stream*)> zs_;

  mutable std::mutex mu_;
  std::unique_ptr<RecordingSink> sink_;
  std::deque<Pending> pending_;  // sorted by time; equal times keep arrival order
  size_t pending_bytes_ = 0;
  size_t next_size_check_;  // pending_bytes_ that triggers the next settle attempt
  int64_t last_written_ns_;
  std::string unwritten_;        // complete chunks a failed write left behind
  bool stream_started_ = false;  // the next chunk continues the deflate stream
  std::optional<Error> error_;
  WriterStats stats_;
  bool closed_ = false;

  bool stopping_ = false;
  bool flushed_by_clock_ = false;  // registered with the process's one flush thread

  friend class FlushClock;
  void flush_tick();
};

}  // namespace vigil::recording
