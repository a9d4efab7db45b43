#include "auditlog/file_log.hpp"
#include "common/clock.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <vector>

#include "auditlog/layout.hpp"
#include "common/log.hpp"

namespace vigil::auditlog {
namespace {


std::string size_text(uint64_t bytes) {
  if (bytes >= (1u << 20)) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1u << 10)) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

Result<void> mkdir_p(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string part = path.substr(0, pos);
    if (mkdir(part.c_str(), 0750) != 0 && errno != EEXIST)
      return Error::sys("audit log: cannot create " + part);
  }
  return {};
}

// Holds flock(LOCK_EX) on a day file: Vigil's writers append one at a time,
// so a writer that checks or truncates the end of the file knows that no
// other writer's bytes are there.
class FileLock {
 public:
  explicit FileLock(int fd) : fd_(fd) {
    while (flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        fd_ = -1;
        break;
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) flock(fd_, LOCK_UN);
  }
  bool held() const { return fd_ >= 0; }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

// Cuts off a last line without '\n'. Only a writer killed in the middle of
// a write() leaves one (the kernel checks for SIGKILL between pages), and
// no line of that write was acknowledged. Called with the file locked, so
// the tail is not another writer's write in progress. Returns the size of
// the file afterwards; *cut is the number of bytes removed.
Result<off_t> cut_torn_tail(int fd, const std::string& path, off_t known_size, uint64_t* cut) {
  *cut = 0;
  struct stat st {};
  if (fstat(fd, &st) != 0) return Error::sys("audit log: cannot stat " + path);
  const off_t size = st.st_size;
  if (size == 0 || size == known_size) return size;  // empty, or ends with our own last line
  char last = 0;
  if (pread(fd, &last, 1, size - 1) != 1) return Error::sys("audit log: cannot read " + path);
  if (last == '\n') return size;

  char buf[64 << 10];
  off_t end = size - 1;
  off_t keep = 0;  // no newline at all: the whole file is a torn line
  while (end > 0 && keep == 0) {
    const off_t start = std::max<off_t>(0, end - static_cast<off_t>(sizeof buf));
    const ssize_t n = pread(fd, buf, static_cast<size_t>(end - start), start);
    if (n != end - start) return Error::sys("audit log: cannot read " + path);
    for (ssize_t i = n - 1; i >= 0; --i) {
      if (buf[i] == '\n') {
        keep = start + i + 1;
        break;
      }
    }
    end = start;
  }
  if (ftruncate(fd, keep) != 0) return Error::sys("audit log: cannot truncate " + path);
  *cut = static_cast<uint64_t>(size - keep);
  log::warn("audit log: " + path + ": cut " + std::to_string(*cut) +
            " bytes of an unfinished line left by a writer that died mid-write");
  return keep;
}

}  // namespace

FileLog::FileLog(FileLogOptions options)
    : opt_(std::move(options)),
      log_dir_(log_dir(opt_.data_dir)),
      server_dir_(log_dir_ + "/" + opt_.server_uuid) {}

Result<std::unique_ptr<FileLog>> FileLog::open(FileLogOptions options) {
  if (options.data_dir.empty()) return Error{"audit log: no data_dir given", EINVAL};
  if (!is_safe_dir_name(options.server_uuid))
    return Error{"audit log: server uuid \"" + options.server_uuid + "\" cannot name a directory",
                 EINVAL};
  if (options.group_bytes == 0 || options.flush_interval.count() <= 0)
    return Error{"audit log: group_bytes and flush_interval must be positive", EINVAL};
  if (!options.now_ns) options.now_ns = clock::realtime_ns;
  if (!options.io.write)
    options.io.write = [](int fd, const char* data, size_t len) { return ::write(fd, data, len); };
  if (!options.io.fsync) options.io.fsync = [](int fd) { return ::fsync(fd); };

  std::unique_ptr<FileLog> log(new FileLog(std::move(options)));
  if (auto r = mkdir_p(log->server_dir_); !r) return r.error();
  const int64_t today = day_of(log->opt_.now_ns());
  log->repair_newest_earlier_file(today);
  {
    std::lock_guard io(log->io_mu_);
    if (auto f = log->file_for(today); !f) return f.error();
  }
  log->flusher_ = std::thread([raw = log.get()] { raw->flusher_loop(); });
  return log;
}

Result<std::unique_ptr<FileLog>> FileLog::open_for_search(std::string data_dir) {
  if (data_dir.empty()) return Error::of(Errc::invalid_argument, "audit log: no data_dir given");
  FileLogOptions options;
  options.data_dir = std::move(data_dir);
  std::unique_ptr<FileLog> log(new FileLog(std::move(options)));
  log->search_only_ = true;
  return log;
}

FileLog::~FileLog() {
  if (search_only_) return;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  if (auto r = flush(); !r) log::error(r.error().message);
  std::lock_guard lk(mu_);
  if (stats_.events_pending > 0) {
    log::error("audit log: " + std::to_string(stats_.events_pending) +
               " events could not be written to " + server_dir_ + " and are lost");
    stats_.lost_events += stats_.events_pending;
  }
}

Result<void> FileLog::emit(std::string_view line, Durability durability) {
  return accept(std::span<const std::string_view>(&line, 1), durability);
}

Result<void> FileLog::append(std::span<const std::string_view> lines, Durability durability) {
  return accept(lines, durability);
}

Result<Page> FileLog::search(const Query& query) {
  return auditlog::search(opt_.data_dir, query);
}

Result<void> FileLog::accept(std::span<const std::string_view> lines, Durability durability) {
  if (search_only_)
    return Error::of(Errc::failed_precondition,
                     "audit log: opened for searching only (open it with FileLog::open to write)");
  if (lines.empty()) return {};
  size_t batch_bytes = 0;
  for (std::string_view line : lines) {
    if (auto r = check_event_line(line); !r) return r;
    batch_bytes += line.size();
  }
  const int64_t day = day_of(opt_.now_ns());
  uint64_t seq;
  bool group_full;
  {
    std::lock_guard lk(mu_);
    if (stats_.bytes_pending + batch_bytes > opt_.max_pending_bytes) {
      stats_.lost_events += lines.size();
      return Error{"audit log: " + std::string(lines.size() == 1 ? "event" : "batch of events") +
                       " dropped: " + size_text(stats_.bytes_pending) +
                       " of events already wait for the disk (" + server_dir_ + ")",
                   ENOSPC};
    }
    for (std::string_view line : lines) {
      if (pending_.empty() || pending_.back().day != day ||
          pending_.back().bytes.size() >= opt_.group_bytes) {
        Group& g = pending_.emplace_back();
        g.day = day;
        g.bytes.reserve(std::max(opt_.group_bytes, line.size()) + 1024);
      }
      Group& g = pending_.back();
      g.bytes.append(line);
      ++g.lines;
      g.last_seq = ++next_seq_;
    }
    seq = next_seq_;
    stats_.events_pending += lines.size();
    stats_.bytes_pending += batch_bytes;
    group_full = pending_.back().bytes.size() >= opt_.group_bytes;
  }

  if (durability == Durability::sync) {
    auto written = write_pending();
    if (written_seq_.load() < seq)
      return written ? Error{"audit log: the event is not written yet", EAGAIN}
                     : Error{written.error().message + " (the event is not durable)",
                             written.error().err};
    return sync_through(seq);
  }
  // A full group is written by the producer itself, which slows a producer
  // faster than the disk down. While writes fail the flusher retries alone
  // (the line is kept either way).
  if (group_full && !failing_flag_.load(std::memory_order_relaxed)) (void)write_pending();
  return {};
}

Result<void> FileLog::flush() {
  if (search_only_) return {};
  auto written = write_pending();
  auto synced = sync_through(written_seq_.load());
  if (!written) return written;
  return synced;
}

FileLogStats FileLog::stats() const {
  std::lock_guard lk(mu_);
  FileLogStats s = stats_;
  s.failing = failing_flag_.load();
  return s;
}

void FileLog::flusher_loop() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    wake_.wait_for(lk, opt_.flush_interval, [this] { return stop_; });
    if (stop_) break;
    lk.unlock();
    {
      // Opening the new day's file even when no event comes moves
      // events.log at midnight, for those following it.
      std::lock_guard io(io_mu_);
      (void)file_for(day_of(opt_.now_ns()));
    }
    (void)write_pending();  // failures are logged and counted there
    (void)sync_through(written_seq_.load());
    lk.lock();
  }
}

Result<void> FileLog::write_pending() {
  std::lock_guard io(io_mu_);
  std::deque<Group> groups;
  {
    std::lock_guard lk(mu_);
    groups.swap(pending_);
  }
  if (groups.empty()) return {};

  Result<void> result;
  size_t done = 0;
  uint64_t lines = 0, bytes = 0;
  for (; done < groups.size(); ++done) {
    result = write_group(groups[done]);
    if (!result) break;
    lines += groups[done].lines;
    bytes += groups[done].bytes.size();
    written_seq_.store(groups[done].last_seq);
  }
  {
    std::lock_guard lk(mu_);
    stats_.events_written += lines;
    stats_.bytes_written += bytes;
    stats_.events_pending -= lines;
    stats_.bytes_pending -= bytes;
    if (!result) {
      // Back in front of what was emitted meanwhile: the order is kept.
      ++stats_.write_errors;
      pending_.insert(pending_.begin(), std::make_move_iterator(groups.begin() + done),
                      std::make_move_iterator(groups.end()));
    }
  }
  if (!result && !failing_) {
    log::error(result.error().message + "; keeping up to " + size_text(opt_.max_pending_bytes) +
               " of events in memory and retrying every " +
               std::to_string(opt_.flush_interval.count()) + " ms");
  } else if (result && failing_) {
    log::warn("audit log: writing to " + server_dir_ + " again; " +
              std::to_string(stats().lost_events) + " events lost so far");
  }
  failing_ = !result;
  failing_flag_.store(failing_);
  return result;
}

Result<void> FileLog::write_group(const Group& group) {
  auto file = file_for(group.day);
  if (!file) return file.error();
  DayFile& f = **file;
  FileLock lock(f.fd.get());
  if (!lock.held()) return Error::sys("audit log: cannot lock " + f.path);
  uint64_t cut = 0;
  auto size = cut_torn_tail(f.fd.get(), f.path, f.known_size, &cut);
  if (!size) return size.error();
  if (cut > 0) {
    std::lock_guard lk(mu_);
    ++stats_.torn_repairs;
  }

  const size_t len = group.bytes.size();
  ssize_t n;
  do {
    n = opt_.io.write(f.fd.get(), group.bytes.data(), len);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(len)) {
    f.dirty = true;
    f.known_size = *size + static_cast<off_t>(len);
    return {};
  }
  const int err = n < 0 ? errno : ENOSPC;
  f.known_size = -1;
  if (n > 0) {
    // A short write (the disk filled up mid-group) leaves part of a line:
    // cut back to the size before it and retry the whole group later. Safe
    // among Vigil's writers, which hold the lock; a program appending
    // without it could have appended after our part, and would lose that.
    if (ftruncate(f.fd.get(), *size) == 0)
      f.known_size = *size;
    else
      log::error("audit log: " + f.path + ": cannot cut a partly written group (" +
                 std::strerror(errno) + "); the next write will");
    return Error{"audit log: cannot write " + f.path + ": wrote " + std::to_string(n) + " of " +
                     std::to_string(len) + " bytes (disk full?)",
                 err};
  }
  return Error::sys("audit log: cannot write " + f.path, err);
}

Result<std::shared_ptr<FileLog::DayFile>> FileLog::file_for(int64_t day) {
  if (auto it = files_.find(day); it != files_.end()) return it->second;
  auto f = std::make_shared<DayFile>();
  f->day = day;
  f->path = server_dir_ + "/" + day_file_name(day);
  // O_RDWR: the torn-tail check reads the last bytes.
  f->fd.reset(::open(f->path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (!f->fd) return Error::sys("audit log: cannot open " + f->path);
  // The file's name must survive a crash too, or a sync emit into a new
  // day file would be acknowledged in a file that may not exist after it.
  Fd dir(::open(server_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir || opt_.io.fsync(dir.get()) != 0)
    return Error::sys("audit log: cannot fsync the directory " + server_dir_);
  files_[day] = f;
  if (day > linked_day_) point_link_at(day);
  return f;
}

void FileLog::point_link_at(int64_t day) {
  static std::atomic<uint64_t> counter{0};
  const std::string target = opt_.server_uuid + "/" + day_file_name(day);
  const std::string link = log_dir_ + "/" + std::string(kCurrentLink);
  const std::string tmp = log_dir_ + "/.events.log." + std::to_string(getpid()) + "." +
                          std::to_string(counter.fetch_add(1));
  // A new link under a temporary name renamed over the old one: readers
  // always find events.log, pointing at the old day or the new one.
  if (symlink(target.c_str(), tmp.c_str()) != 0 || rename(tmp.c_str(), link.c_str()) != 0) {
    log::warn("audit log: cannot point " + link + " at " + target + ": " + std::strerror(errno));
    unlink(tmp.c_str());
    return;
  }
  linked_day_ = day;
}

Result<void> FileLog::sync_through(uint64_t seq) {
  std::lock_guard sync(sync_mu_);
  if (synced_seq_ >= seq) return {};
  std::vector<std::shared_ptr<DayFile>> dirty;
  uint64_t target;
  {
    std::lock_guard io(io_mu_);
    target = written_seq_.load();
    for (auto& [day, f] : files_) {
      if (!f->dirty) continue;
      f->dirty = false;
      dirty.push_back(f);
    }
  }
  Result<void> result;
  for (auto& f : dirty) {
    if (opt_.io.fsync(f->fd.get()) == 0) continue;
    result = Error::sys("audit log: cannot fsync " + f->path);
    std::lock_guard io(io_mu_);
    f->dirty = true;  // tried again at the next round
  }
  if (!result) {
    if (!fsync_failing_)
      log::error(result.error().message + "; retrying every " +
                 std::to_string(opt_.flush_interval.count()) + " ms");
    fsync_failing_ = true;
    std::lock_guard lk(mu_);
    ++stats_.fsync_errors;
    return result;
  }
  if (fsync_failing_) log::warn("audit log: fsync of " + server_dir_ + " works again");
  fsync_failing_ = false;
  synced_seq_ = target;
  {
    // Days before the newest one are closed once synced; a late group
    // (written after a failure streak) reopens its file.
    std::lock_guard io(io_mu_);
    const int64_t newest = files_.empty() ? 0 : files_.rbegin()->first;
    for (auto it = files_.begin(); it != files_.end();) {
      if (it->first < newest && !it->second->dirty)
        it = files_.erase(it);
      else
        ++it;
    }
  }
  if (target < seq) return Error{"audit log: the event is not written yet", EAGAIN};
  return {};
}

void FileLog::repair_newest_earlier_file(int64_t today) {
  // A writer killed on an earlier day may have left a torn tail in that
  // day's file, which no writer appends to any more. Today's file is
  // checked before every write anyway.
  DIR* dir = opendir(server_dir_.c_str());
  if (!dir) return;
  int64_t newest = INT64_MIN;
  while (dirent* e = readdir(dir))
    if (auto day = parse_day_file_name(e->d_name); day && *day<today&& * day> newest) newest = *day;
  closedir(dir);
  if (newest == INT64_MIN) return;
  const std::string path = server_dir_ + "/" + day_file_name(newest);
  Fd fd(::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
  if (!fd) return;
  FileLock lock(fd.get());
  uint64_t cut = 0;
  if (lock.held() && cut_torn_tail(fd.get(), path, -1, &cut) && cut > 0) {
    std::lock_guard lk(mu_);
    ++stats_.torn_repairs;
  }
}

}  // namespace vigil::auditlog
