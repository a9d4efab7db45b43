#include "recording/writer.hpp"

#include "common/clock.hpp"
#include "recording/file_store.hpp"

#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <thread>

#include "common/log.hpp"

namespace vigil::recording {
namespace {

// Room a record takes in a payload besides its data (type, time, length).
constexpr size_t kRecordOverhead = 12;
// Chunks that could not be written are kept for a retry up to this much;
// beyond it they are dropped and counted as lost.
constexpr size_t kMaxUnwritten = 64u << 20;


void free_deflate(z_stream* zs) {
  deflateEnd(zs);
  delete zs;
}

}  // namespace

// One thread flushes every open recording at its own interval: a thread per
// recording made 1,000 threads of 1,000 live sessions (each fork of the
// monitor, one per session launched, copies their stacks' mappings). A
// flush takes only that writer's lock, so a writer being closed waits for
// at most the flush in progress.
class FlushClock {
 public:
  static FlushClock& instance() {
    static FlushClock* clock = new FlushClock();  // never destroyed: its thread outlives main
    return *clock;
  }

  void add(RecordingWriter* w, std::chrono::milliseconds interval) {
    std::lock_guard lock(mu_);
    writers_[w] = {interval, std::chrono::steady_clock::now() + interval};
    if (!started_) {
      started_ = true;
      std::thread([this] { run(); }).detach();
    }
    cv_.notify_all();
  }

  // After it returns, `w` is not being flushed and never will be.
  void remove(RecordingWriter* w) {
    std::unique_lock lock(mu_);
    writers_.erase(w);
    idle_.wait(lock, [&] { return busy_ != w; });
  }

 private:
  struct Entry {
    std::chrono::milliseconds interval;
    std::chrono::steady_clock::time_point due;
  };

  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (writers_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto next = writers_.begin();
      for (auto it = writers_.begin(); it != writers_.end(); ++it)
        if (it->second.due < next->second.due) next = it;
      if (cv_.wait_until(lock, next->second.due) == std::cv_status::no_timeout) continue;
      auto now = std::chrono::steady_clock::now();
      // The registry may have changed while waiting: take what is due now.
      for (auto it = writers_.begin(); it != writers_.end(); ++it) {
        if (it->second.due > now) continue;
        it->second.due = now + it->second.interval;
        busy_ = it->first;
        lock.unlock();
        busy_->flush_tick();
        lock.lock();
        busy_ = nullptr;
        idle_.notify_all();
        break;  // the registry may have changed meanwhile: look again
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;    // a writer added (an earlier due time)
  std::condition_variable idle_;  // a flush ended
  std::map<RecordingWriter*, Entry> writers_;
  RecordingWriter* busy_ = nullptr;
  bool started_ = false;
};

void RecordingWriter::flush_tick() {
  std::lock_guard lock(mu_);
  if (!stopping_) write_settled_locked(false);
}

Result<std::unique_ptr<RecordingWriter>> RecordingWriter::create(RecordingStore& store,
                                                                 const Header& header,
                                                                 WriterOptions options) {
  const std::string head = encode_file_header(header);
  auto sink = store.create(header.sid, head);
  if (!sink) return sink.error();
  return start(std::move(*sink), header, head.size(), std::move(options));
}

Result<std::unique_ptr<RecordingWriter>> RecordingWriter::create(const std::string& path,
                                                                 const Header& header,
                                                                 WriterOptions options) {
  const std::string head = encode_file_header(header);
  auto sink = FileRecordingStore::create_file(path, header.sid, head);
  if (!sink) return sink.error();
  return start(std::move(*sink), header, head.size(), std::move(options));
}

Result<std::unique_ptr<RecordingWriter>> RecordingWriter::start(
    std::unique_ptr<RecordingSink> sink, const Header& header, size_t header_bytes,
    WriterOptions options) {
  if (!options.clock) options.clock = clock::realtime_ns;
  std::unique_ptr<RecordingWriter> w(
      new RecordingWriter(std::move(sink), header.start_ns, header_bytes, std::move(options)));
  // Raw deflate (no zlib wrapper): the frame's CRC-32 already guards the bytes.
  if (deflateInit2(w->zs_.get(), std::clamp(w->options_.compression_level, 0, 9), Z_DEFLATED, -15,
                   8, Z_DEFAULT_STRATEGY) != Z_OK)
    return Error{"zlib: cannot initialise compression"};
  if (w->options_.flush_interval.count() > 0) {
    FlushClock::instance().add(w.get(), w->options_.flush_interval);
    w->flushed_by_clock_ = true;
  }
  return w;
}

RecordingWriter::RecordingWriter(std::unique_ptr<RecordingSink> sink, int64_t start_ns,
                                 size_t header_bytes, WriterOptions options)
    : path_(sink->name()),
      start_ns_(start_ns),
      options_(std::move(options)),
      zs_(new z_stream{}, free_deflate),
      sink_(std::move(sink)),
      next_size_check_(options_.chunk_bytes),
      last_written_ns_(start_ns) {
  stats_.file_bytes = header_bytes;
}

Result<std::unique_ptr<RecordingWriter>> RecordingWriter::create_in(const std::string& data_dir,
                                                                    const Header& header,
                                                                    WriterOptions options) {
  FileRecordingStore store(data_dir);
  return create(store, header, std::move(options));
}

RecordingWriter::~RecordingWriter() {
  if (auto r = close(); !r) log::error("recording " + path_ + ": " + r.error().message);
}

void RecordingWriter::output(int64_t time_ns, std::string_view bytes) {
  // Large writes are split so that one record never outgrows a chunk.
  const size_t piece = std::max<size_t>(options_.chunk_bytes, 1);
  while (!bytes.empty()) {
    const size_t n = std::min(bytes.size(), piece);
    append({RecordType::output, time_ns, std::string(bytes.substr(0, n))});
    bytes.remove_prefix(n);
  }
}

void RecordingWriter::resize(int64_t time_ns, uint16_t cols, uint16_t rows) {
  append({RecordType::resize, time_ns, {}, cols, rows});
}

void RecordingWriter::event(int64_t time_ns, std::string_view json_line) {
  if (!json_line.empty() && json_line.back() == '\n') json_line.remove_suffix(1);
  append({RecordType::event, time_ns, std::string(json_line)});
}

void RecordingWriter::append(Pending record) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  if (record.time_ns < last_written_ns_) ++stats_.late_records;
  // Records mostly arrive in time order: the scan from the back stops at once.
  auto pos = pending_.end();
  while (pos != pending_.begin() && std::prev(pos)->time_ns > record.time_ns) --pos;
  pending_bytes_ += record.data.size() + kRecordOverhead;
  pending_.insert(pos, std::move(record));
  if (pending_bytes_ >= next_size_check_) write_settled_locked(false);
}

Result<void> RecordingWriter::flush() {
  std::lock_guard lock(mu_);
  if (!closed_) write_settled_locked(true);
  return status_locked();
}

Result<void> RecordingWriter::close() {
  {
    std::lock_guard lock(mu_);
    if (closed_ || stopping_) return status_locked();
    stopping_ = true;
  }
  if (flushed_by_clock_) FlushClock::instance().remove(this);

  std::lock_guard lock(mu_);
  write_settled_locked(true);
  if (!unwritten_.empty()) {
    stats_.lost_bytes += unwritten_.size();
    unwritten_.clear();
  }
  // Durable, and status complete in the store.
  if (auto r = sink_->finish(); !r && !error_) error_ = r.error();
  closed_ = true;
  return status_locked();
}

void RecordingWriter::abandon() {
  {
    std::lock_guard lock(mu_);
    if (closed_ || stopping_) return;
    stopping_ = true;
  }
  if (flushed_by_clock_) FlushClock::instance().remove(this);
  std::lock_guard lock(mu_);
  pending_.clear();
  pending_bytes_ = 0;
  unwritten_.clear();
  sink_.reset();  // unfinished: the store marks it interrupted
  closed_ = true;
}

WriterStats RecordingWriter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

// Writes the records that can no longer be overtaken by a late one (all of
// them when `all`), in chunks of about chunk_bytes.
void RecordingWriter::write_settled_locked(bool all) {
  size_t settled = pending_.size();
  if (!all) {
    const int64_t cutoff = options_.clock() - options_.reorder_window_ns;
    settled = std::upper_bound(pending_.begin(), pending_.end(), cutoff,
                               [](int64_t t, const Pending& p) { return t < p.time_ns; }) -
              pending_.begin();
  }
  while (settled > 0) {
    size_t count = 0, bytes = 0;
    while (count < settled && bytes < options_.chunk_bytes)
      bytes += pending_[count++].data.size() + kRecordOverhead;
    write_chunk_locked(count);
    settled -= count;
  }
  // Unsettled records are retried after another chunk's worth arrives (or
  // by the flusher), not on every append.
  next_size_check_ = pending_bytes_ + options_.chunk_bytes;
  if (!unwritten_.empty()) write_out_locked();
}

void RecordingWriter::write_chunk_locked(size_t count) {
  std::string raw;
  int64_t prev = start_ns_;
  for (size_t i = 0; i < count; ++i) {
    const Pending& p = pending_.front();
    encode_record(raw, prev, p.type, p.time_ns, p.data, p.cols, p.rows);
    prev = p.time_ns;
    pending_bytes_ -= p.data.size() + kRecordOverhead;
    pending_.pop_front();
  }
  last_written_ns_ = std::max(last_written_ns_, prev);
  stats_.records += count;
  stats_.raw_bytes += raw.size();

  Frame frame;
  frame.codec = stream_started_ ? Codec::deflate_continue : Codec::deflate_start;
  frame.raw_len = static_cast<uint32_t>(raw.size());
  std::string compressed = compress_locked(raw);
  stream_started_ = true;
  frame.stored_len = static_cast<uint32_t>(compressed.size());
  frame.payload_crc = crc32_of(compressed);
  encode_frame(frame, unwritten_);
  unwritten_ += compressed;
  ++stats_.chunks;
  write_out_locked();
}

// Deflates `raw` into the session's stream, ending with a sync flush so
// that a reader can decode everything written so far.
std::string RecordingWriter::compress_locked(std::string& raw) {
  if (!stream_started_) deflateReset(zs_.get());
  std::string out;
  zs_->next_in = reinterpret_cast<Bytef*>(raw.data());
  zs_->avail_in = static_cast<uInt>(raw.size());
  do {
    const size_t used = out.size();
    out.resize(used + deflateBound(zs_.get(), zs_->avail_in) + 16);
    zs_->next_out = reinterpret_cast<Bytef*>(out.data() + used);
    zs_->avail_out = static_cast<uInt>(out.size() - used);
    deflate(zs_.get(), Z_SYNC_FLUSH);  // cannot fail on a valid stream with output room
    out.resize(out.size() - zs_->avail_out);
  } while (zs_->avail_in > 0 || zs_->avail_out == 0);
  return out;
}

// Appends the complete chunks in unwritten_ with one write. A partial write
// is taken back, so the file never ends in half a chunk that a reader would
// report as damage; the chunks stay for the next attempt.
void RecordingWriter::write_out_locked() {
  if (unwritten_.empty()) return;
  // The store takes all of it or none (a partial write taken back).
  auto written = sink_->append(unwritten_);
  if (written) {
    stats_.file_bytes += unwritten_.size();
    unwritten_.clear();
    if (error_) log::info("recording " + path_ + ": writing again");
    error_.reset();
    return;
  }
  if (!error_) log::warn(written.error().message + " (kept in memory, retried)");
  error_ = written.error();
  if (unwritten_.size() > kMaxUnwritten) {
    stats_.lost_bytes += unwritten_.size();
    unwritten_.clear();
    stream_started_ = false;  // the next chunk must not depend on the lost ones
  }
}

// A failure still unresolved, or chunks lost for good.
Result<void> RecordingWriter::status_locked() const {
  if (!error_ && !stats_.lost_bytes) return {};
  Error e = error_ ? *error_ : Error{"could not write recording " + path_};
  if (stats_.lost_bytes) e.message += "; " + std::to_string(stats_.lost_bytes) + " bytes lost";
  return e;
}

}  // namespace vigil::recording
