#include "relay/outbox.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "audit/json.hpp"
#include "audit/uuid.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "recording/format.hpp"

namespace vigil::relay {
namespace {

constexpr std::string_view kPrefix = "events-";
constexpr std::string_view kSuffix = ".log";

std::string segment_name(uint64_t first_seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(first_seq));
  return std::string(kPrefix) + buf + std::string(kSuffix);
}

std::optional<uint64_t> parse_segment_name(std::string_view name) {
  if (name.size() != kPrefix.size() + 20 + kSuffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(kSuffix))
    return std::nullopt;
  uint64_t v = 0;
  const char* b = name.data() + kPrefix.size();
  auto [p, ec] = std::from_chars(b, b + 20, v);
  if (ec != std::errc() || p != b + 20) return std::nullopt;
  return v;
}

std::string hex8(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// A record without its '\n': "<seq> <crc> <json>". False when it is not one
// or its checksum is wrong.
bool parse_record(std::string_view line, uint64_t* seq, std::string_view* json) {
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp1 > 20) return false;
  auto [p, ec] = std::from_chars(line.data(), line.data() + sp1, *seq);
  if (ec != std::errc() || p != line.data() + sp1 || *seq == 0) return false;
  if (line.size() < sp1 + 1 + 8 + 1 || line[sp1 + 9] != ' ') return false;
  const std::string_view crc = line.substr(sp1 + 1, 8);
  *json = line.substr(sp1 + 10);
  std::string covered;
  covered.reserve(sp1 + 1 + json->size());
  covered.append(line.substr(0, sp1 + 1));
  covered.append(*json);
  return crc == hex8(recording::crc32_of(covered)) && !json->empty();
}

Result<void> fsync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::sys("spool: cannot open " + dir);
  if (::fsync(fd.get()) != 0) return Error::sys("spool: cannot fsync " + dir);
  return {};
}

Result<void> mkdir_p(const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string part = path.substr(0, pos);
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST)
      return Error::sys("spool: cannot create " + part);
  }
  return {};
}

Result<std::string> read_whole(int fd, const std::string& path) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return Error::sys("spool: cannot stat " + path);
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::sys("spool: cannot read " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

}  // namespace

std::string spool_record(uint64_t seq, std::string_view json) {
  std::string r = std::to_string(seq) + ' ';
  std::string covered = r;
  covered.append(json);
  r += hex8(recording::crc32_of(covered));
  r += ' ';
  r.append(json);
  r += '\n';
  return r;
}

Outbox::Outbox(OutboxOptions options) : opt_(std::move(options)), dir_(opt_.data_dir + "/spool") {}

Result<std::unique_ptr<Outbox>> Outbox::open(OutboxOptions options) {
  if (options.data_dir.empty()) return Error::of(Errc::invalid_argument, "spool: no data_dir given");
  if (options.segment_bytes == 0 || options.max_spool_bytes == 0 ||
      options.flush_interval.count() <= 0)
    return Error::of(Errc::invalid_argument,
                     "spool: segment_bytes, max_spool_bytes and flush_interval must be positive");
  if (!options.now_ns) options.now_ns = clock::realtime_ns;
  if (!options.io.write)
    options.io.write = [](int fd, const char* d, size_t n) { return ::write(fd, d, n); };
  if (!options.io.fsync) options.io.fsync = [](int fd) { return ::fdatasync(fd); };
  std::unique_ptr<Outbox> box(new Outbox(std::move(options)));
  if (auto r = box->recover(); !r) return r.error();
  box->flusher_ = std::thread([raw = box.get()] { raw->flusher_loop(); });
  return box;
}

Outbox::~Outbox() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  appended_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  if (auto r = flush(); !r) log::error(r.error().message);
}

Result<void> Outbox::recover() {
  if (auto r = mkdir_p(dir_, 0700); !r) return r;
  struct stat st {};
  if (::stat(dir_.c_str(), &st) != 0) return Error::sys("spool: cannot stat " + dir_);
  if (!S_ISDIR(st.st_mode))
    return Error::of(Errc::failed_precondition, "spool: " + dir_ + " is not a directory");
  // Events wait here in clear: only the owner reads them.
  if ((st.st_mode & 07777) != 0700 && ::chmod(dir_.c_str(), 0700) != 0)
    return Error::sys("spool: cannot make " + dir_ + " 0700");

  lock_fd_ = Fd(::open((dir_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd_) return Error::sys("spool: cannot open " + dir_ + "/lock");
  if (flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return Error::of(Errc::failed_precondition,
                       "spool: another process spools in " + dir_ +
                           " (one vigil process per data_dir: stop the other one)");
    return Error::sys("spool: cannot lock " + dir_ + "/lock");
  }

  // Delivered up to here.
  const std::string acked_path = dir_ + "/acked";
  ::unlink((acked_path + ".tmp").c_str());
  {
    Fd fd(::open(acked_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd) {
      auto text = read_whole(fd.get(), acked_path);
      if (!text) return text.error();
      uint64_t v = 0;
      const std::string& t = *text;
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (ec != std::errc() || t.empty() || p != t.data() + t.size() - 1 || t.back() != '\n')
        return Error::of(Errc::data_loss, "spool: " + acked_path +
                                              " is damaged (expected one number and a newline); "
                                              "remove it and the auth service will skip events "
                                              "it already holds");
      acked_ = v;
    } else if (errno != ENOENT) {
      return Error::sys("spool: cannot open " + acked_path);
    }
  }

  std::vector<uint64_t> firsts;
  {
    DIR* d = ::opendir(dir_.c_str());
    if (!d) return Error::sys("spool: cannot list " + dir_);
    while (dirent* e = ::readdir(d))
      if (auto first = parse_segment_name(e->d_name)) firsts.push_back(*first);
    ::closedir(d);
  }
  std::sort(firsts.begin(), firsts.end());

  uint64_t highest = acked_;
  std::vector<Segment> kept;
  for (size_t i = 0; i < firsts.size(); ++i) {
    const bool last_file = i + 1 == firsts.size();
    Segment seg;
    seg.first_seq = firsts[i];
    seg.path = dir_ + "/" + segment_name(firsts[i]);
    seg.fd = std::make_shared<Fd>(::open(seg.path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
    if (!*seg.fd) return Error::sys("spool: cannot open " + seg.path);
    auto data = read_whole(seg.fd->get(), seg.path);
    if (!data) return data.error();
    const std::string_view all = *data;
    uint64_t expect = seg.first_seq;
    size_t pos = 0;
    while (pos < all.size()) {
      const size_t nl = all.find('\n', pos);
      uint64_t seq = 0;
      std::string_view json;
      const bool whole = nl != std::string_view::npos &&
                         parse_record(all.substr(pos, nl - pos), &seq, &json) && seq == expect;
      if (!whole) {
        if (!last_file || nl != std::string_view::npos) {
          // A complete line that is not the next record: damage, not a crash.
          if (!last_file || all.find('\n', nl + 1) != std::string_view::npos)
            return Error::of(Errc::data_loss,
                             "spool: " + seg.path + " is damaged at byte " + std::to_string(pos) +
                                 " (record " + std::to_string(expect) +
                                 "): move the spool away to start afresh; its undelivered "
                                 "events are then lost");
        }
        // The unfinished end of the last segment, left by a writer killed
        // mid-write: no event of it was acknowledged.
        if (ftruncate(seg.fd->get(), static_cast<off_t>(pos)) != 0)
          return Error::sys("spool: cannot truncate " + seg.path);
        log::warn("spool: " + seg.path + ": cut " + std::to_string(all.size() - pos) +
                  " bytes of an unfinished record left by a writer that died mid-write");
        ++stats_.torn_repairs;
        break;
      }
      ++expect;
      pos = nl + 1;
    }
    seg.size = pos;
    seg.last_seq = expect - 1;
    if (!kept.empty() && seg.first_seq != kept.back().last_seq + 1 &&
        seg.last_seq >= seg.first_seq)
      return Error::of(Errc::data_loss, "spool: " + seg.path + " starts at event " +
                                            std::to_string(seg.first_seq) + " but " +
                                            kept.back().path + " ends at " +
                                            std::to_string(kept.back().last_seq) +
                                            ": move the spool away to start afresh");
    highest = std::max(highest, seg.last_seq);
    if (seg.last_seq < seg.first_seq || seg.last_seq <= acked_) {
      // Empty, or delivered already (the crash came between `acked` and the unlink).
      ::unlink(seg.path.c_str());
      continue;
    }
    kept.push_back(std::move(seg));
  }
  if (!kept.empty() && kept.front().first_seq > acked_ + 1)
    return Error::of(Errc::data_loss,
                     "spool: events " + std::to_string(acked_ + 1) + " to " +
                         std::to_string(kept.front().first_seq - 1) + " are missing from " +
                         dir_ + " (a segment was removed): move the spool away to start afresh");
  segments_ = std::move(kept);
  next_seq_ = highest + 1;
  for (const auto& s : segments_) spool_bytes_ += s.size;
  // What is in the files now is what the next crash keeps.
  for (const auto& s : segments_)
    if (opt_.io.fsync(s.fd->get()) != 0) return Error::sys("spool: cannot fsync " + s.path);
  synced_seq_ = next_seq_ - 1;
  return {};
}

Result<void> Outbox::write_locked(const std::vector<std::string>& records, uint64_t bytes) {
  if (segments_.empty() || segments_.back().size >= opt_.segment_bytes) {
    if (!segments_.empty() && opt_.io.fsync(segments_.back().fd->get()) != 0) {
      ++stats_.fsync_errors;
      return Error::sys("spool: cannot fsync " + segments_.back().path);
    }
    Segment seg;
    seg.first_seq = next_seq_;
    seg.last_seq = next_seq_ - 1;
    seg.path = dir_ + "/" + segment_name(next_seq_);
    seg.fd = std::make_shared<Fd>(
        ::open(seg.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
    if (!*seg.fd) {
      ++stats_.write_errors;
      return Error::sys("spool: cannot create " + seg.path);
    }
    if (auto r = fsync_dir(dir_); !r) {
      ::unlink(seg.path.c_str());
      ++stats_.fsync_errors;
      return r;
    }
    segments_.push_back(std::move(seg));
  }
  Segment& seg = segments_.back();
  std::string all;
  all.reserve(bytes);
  for (const auto& r : records) all += r;
  size_t done = 0;
  while (done < all.size()) {
    const ssize_t n = opt_.io.write(seg.fd->get(), all.data() + done, all.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : ENOSPC;
      ++stats_.write_errors;
      // Take back what was written of the batch: all or none.
      if (ftruncate(seg.fd->get(), static_cast<off_t>(seg.size)) != 0)
        log::error("spool: cannot truncate " + seg.path + " back after a failed write: " +
                   std::strerror(errno));
      return Error::sys("spool: cannot write " + seg.path, e);
    }
    done += static_cast<size_t>(n);
  }
  seg.size += all.size();
  seg.last_seq += records.size();
  next_seq_ += records.size();
  spool_bytes_ += all.size();
  stats_.spooled += records.size();
  appended_.notify_all();
  return {};
}

void Outbox::report_lost_locked() {
  if (lost_unreported_ == 0) return;
  std::string line;
  {
    audit::JsonObject o(line);
    o.uint64("count", lost_unreported_);
    o.string("event", "audit.lost");
    o.string("reason", "the node's spool was full or its disk refused writes");
    o.string("server_hostname", opt_.server_hostname);
    o.string("server_id", opt_.server_id);
    o.time("time", opt_.now_ns());
    std::string uid = audit::new_uuid();
    o.string("uid", uid);
    o.end();
  }
  line.pop_back();  // records hold the JSON without its '\n'
  std::vector<std::string> records{spool_record(next_seq_, line)};
  if (spool_bytes_ + records[0].size() > opt_.max_spool_bytes) return;
  if (write_locked(records, records[0].size())) {
    log::warn("spool: " + std::to_string(lost_unreported_) +
              " events that did not fit were reported in an audit.lost event");
    lost_unreported_ = 0;
  }
}

Result<uint64_t> Outbox::append(std::span<const std::string_view> lines,
                                auditlog::Durability durability) {
  if (lines.empty()) return Error::of(Errc::invalid_argument, "spool: no events to append");
  size_t estimate = 0;
  for (std::string_view line : lines) {
    if (auto r = auditlog::check_event_line(line); !r) return r.error();
    estimate += line.size() + 32;
  }
  uint64_t last;
  {
    std::lock_guard lk(mu_);
    report_lost_locked();
    if (lost_unreported_ > 0 || spool_bytes_ + estimate > opt_.max_spool_bytes) {
      lost_unreported_ += lines.size();
      stats_.lost += lines.size();
      return Error::of(Errc::resource_exhausted,
                       "spool: " + dir_ + " holds " + std::to_string(spool_bytes_ >> 20) +
                           " MiB of undelivered events, its bound is " +
                           std::to_string(opt_.max_spool_bytes >> 20) + " MiB: " +
                           std::to_string(lines.size()) +
                           " events not spooled (counted; an audit.lost event reports them once "
                           "the auth service takes the spool)");
    }
    std::vector<std::string> records;
    records.reserve(lines.size());
    uint64_t bytes = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      records.push_back(spool_record(next_seq_ + i, lines[i].substr(0, lines[i].size() - 1)));
      bytes += records.back().size();
    }
    if (auto r = write_locked(records, bytes); !r) {
      lost_unreported_ += lines.size();
      stats_.lost += lines.size();
      return r.error();
    }
    last = next_seq_ - 1;
  }
  if (durability == auditlog::Durability::sync)
    if (auto r = sync_through(last); !r) return r.error();
  return last;
}

Result<void> Outbox::sync_through(uint64_t seq) {
  std::lock_guard sl(sync_mu_);
  if (synced_seq_ >= seq) return {};
  std::vector<std::shared_ptr<Fd>> fds;
  std::vector<std::string> paths;
  uint64_t target;
  {
    std::lock_guard lk(mu_);
    target = next_seq_ - 1;
    for (const auto& s : segments_)
      if (s.last_seq > synced_seq_) {
        fds.push_back(s.fd);
        paths.push_back(s.path);
      }
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    if (opt_.io.fsync(fds[i]->get()) != 0) {
      const int e = errno;
      std::lock_guard lk(mu_);
      ++stats_.fsync_errors;
      return Error::sys("spool: cannot fsync " + paths[i], e);
    }
  }
  std::lock_guard lk(mu_);  // read() and ack() read it under mu_
  synced_seq_ = target;
  return {};
}

Result<void> Outbox::flush() {
  return sync_through(last_seq());
}

void Outbox::flusher_loop() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    stop_cv_.wait_for(lk, opt_.flush_interval);
    if (stop_) break;
    const uint64_t last = next_seq_ - 1;
    lk.unlock();
    if (auto r = sync_through(last); !r) log::error(r.error().message);
    lk.lock();
  }
}

Result<Batch> Outbox::read(uint64_t from_seq, size_t max_events, size_t max_bytes) {
  Batch batch;
  batch.server_id = opt_.server_id;
  batch.server_hostname = opt_.server_hostname;
  batch.first_seq = from_seq;
  if (max_events == 0) return batch;
  // Only durable events leave the node: a sequence number the auth service
  // holds then never names another event after a crash of the node.
  if (auto r = sync_through(last_seq()); !r) return r.error();
  uint64_t bytes = 0;
  for (;;) {
    const size_t had = batch.events.size();
    auto more = read_segment(from_seq + had, max_events, max_bytes, batch, bytes);
    if (!more) return more.error();
    if (!*more || batch.events.size() == had || batch.events.size() >= max_events) break;
  }
  return batch;
}

Result<bool> Outbox::read_segment(uint64_t from_seq, size_t max_events, size_t max_bytes,
                                  Batch& batch, uint64_t& bytes) {
  std::shared_ptr<Fd> fd;
  std::string path;
  uint64_t offset = 0, seq = 0, end = 0, seg_first = 0;
  {
    std::lock_guard lk(mu_);
    auto it = std::find_if(segments_.begin(), segments_.end(), [&](const Segment& s) {
      return s.first_seq <= from_seq && from_seq <= s.last_seq;
    });
    if (it == segments_.end() || from_seq > synced_seq_) return false;
    fd = it->fd;
    path = it->path;
    end = it->size;
    seg_first = it->first_seq;
    if (cursor_segment_ == it->first_seq && cursor_seq_ == from_seq) {
      offset = cursor_offset_;
      seq = from_seq;
    } else {
      offset = 0;
      seq = it->first_seq;
    }
  }
  std::string buf;
  size_t at = 0;               // start of the next record in buf
  uint64_t file_pos = offset;  // file offset of buf[0]
  bool full = false;
  while (batch.events.size() < max_events && file_pos + at < end) {
    size_t nl = buf.find('\n', at);
    if (nl == std::string::npos) {
      buf.erase(0, at);
      file_pos += at;
      at = 0;
      const size_t want = std::min<uint64_t>(end - file_pos - buf.size(), 256u << 10);
      if (want == 0)
        return Error::of(Errc::data_loss, "spool: " + path + " ends inside a record");
      const size_t old = buf.size();
      buf.resize(old + want);
      ssize_t n = pread(fd->get(), buf.data() + old, want, static_cast<off_t>(file_pos + old));
      if (n <= 0) return Error::sys("spool: cannot read " + path, n < 0 ? errno : EIO);
      buf.resize(old + static_cast<size_t>(n));
      continue;
    }
    uint64_t rseq = 0;
    std::string_view json;
    if (!parse_record(std::string_view(buf).substr(at, nl - at), &rseq, &json) || rseq != seq)
      return Error::of(Errc::data_loss, "spool: " + path + " is damaged at byte " +
                                            std::to_string(file_pos + at));
    if (rseq >= from_seq) {
      if (!batch.events.empty() && bytes + json.size() > max_bytes) {
        full = true;
        break;
      }
      batch.events.emplace_back(json);
      bytes += json.size();
    }
    ++seq;
    at = nl + 1;
  }
  std::lock_guard lk(mu_);
  cursor_segment_ = seg_first;
  cursor_seq_ = seq;
  cursor_offset_ = file_pos + at;
  return !full;
}

Result<void> Outbox::write_acked(uint64_t seq) {
  const std::string path = dir_ + "/acked";
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Error::sys("spool: cannot create " + tmp);
  const std::string text = std::to_string(seq) + "\n";
  if (opt_.io.write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return Error::sys("spool: cannot write " + tmp);
  if (opt_.io.fsync(fd.get()) != 0) return Error::sys("spool: cannot fsync " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Error::sys("spool: cannot rename " + tmp);
  return fsync_dir(dir_);
}

Result<void> Outbox::ack(uint64_t seq) {
  // Only durable events are acknowledged (read() syncs what it hands out).
  if (auto r = sync_through(std::min(seq, last_seq())); !r) return r;
  std::lock_guard al(ack_mu_);
  {
    std::lock_guard lk(mu_);
    if (seq <= acked_) return {};
    if (seq > synced_seq_ || seq >= next_seq_)
      return Error::of(Errc::invalid_argument,
                       "spool: acknowledgement of event " + std::to_string(seq) +
                           " which was never sent (the newest sent is " +
                           std::to_string(std::min(synced_seq_, next_seq_ - 1)) + ")");
  }
  if (auto r = write_acked(seq); !r) return r;
  std::vector<std::string> remove;
  {
    std::lock_guard lk(mu_);
    acked_ = seq;
    while (!segments_.empty() && segments_.front().last_seq <= seq) {
      if (cursor_segment_ == segments_.front().first_seq) cursor_segment_ = 0;
      spool_bytes_ -= segments_.front().size;
      remove.push_back(segments_.front().path);
      segments_.erase(segments_.begin());
    }
    report_lost_locked();
  }
  for (const auto& p : remove) ::unlink(p.c_str());
  return {};
}

uint64_t Outbox::acked() const {
  std::lock_guard lk(mu_);
  return acked_;
}

uint64_t Outbox::last_seq() const {
  std::lock_guard lk(mu_);
  return next_seq_ - 1;
}

bool Outbox::wait_beyond(uint64_t seq, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  const uint64_t w = wakes_;
  appended_.wait_for(lk, timeout, [&] { return next_seq_ - 1 > seq || wakes_ != w || stop_; });
  return next_seq_ - 1 > seq;
}

void Outbox::wake_all() {
  {
    std::lock_guard lk(mu_);
    ++wakes_;
  }
  appended_.notify_all();
}

OutboxStats Outbox::stats() const {
  std::lock_guard lk(mu_);
  OutboxStats s = stats_;
  s.spool_bytes = spool_bytes_;
  s.last_seq = next_seq_ - 1;
  s.acked_seq = acked_;
  s.lost_unreported = lost_unreported_;
  return s;
}

}  // namespace vigil::relay
