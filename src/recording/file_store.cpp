#include "recording/file_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "recording/format.hpp"
#include "recording/store.hpp"

namespace vigil::recording {
namespace {

using Json = nlohmann::json;

constexpr int kStatusVersion = 1;
constexpr size_t kMaxStatusBytes = 4096;

std::string read_small(const std::string& path, size_t max) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return {};
  std::string out(max + 1, '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

const std::string& boot_id() {
  static const std::string id = [] {
    std::string s = read_small("/proc/sys/kernel/random/boot_id", 64);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }();
  return id;
}

// Field 22 of /proc/PID/stat (clock ticks after boot); 0 when the process
// does not exist.
uint64_t process_start(pid_t pid) {
  std::string stat = read_small("/proc/" + std::to_string(pid) + "/stat", 2048);
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  // After ") ": field 3 (state) is the first; starttime is field 22.
  for (int i = 3; i <= 22; ++i)
    if (!(in >> field)) return 0;
  return std::strtoull(field.c_str(), nullptr, 10);
}

// Replaces the status file: a temporary name, then rename, so a reader
// finds the old status or the new one, never half of one.
Result<void> write_status(const std::string& rec_path, Status status, bool durable) {
  static std::atomic<uint64_t> counter{0};
  Json j = {{"version", kStatusVersion}, {"status", std::string(status_name(status))}};
  if (status == Status::in_progress) {
    j["boot_id"] = boot_id();
    j["pid"] = getpid();
    j["pid_start"] = process_start(getpid());
  }
  const std::string text = j.dump() + "\n";
  const std::string final_path = status_path(rec_path);
  const std::string tmp = final_path + ".tmp." + std::to_string(getpid()) + "." +
                          std::to_string(counter.fetch_add(1));
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640));
  if (!fd) return Error::sys("cannot write the status of recording " + rec_path);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      (durable && fdatasync(fd.get()) != 0)) {
    Error e = Error::sys("cannot write the status of recording " + rec_path);
    unlink(tmp.c_str());
    return e;
  }
  fd.reset();
  if (rename(tmp.c_str(), final_path.c_str()) != 0) {
    Error e = Error::sys("cannot write the status of recording " + rec_path);
    unlink(tmp.c_str());
    return e;
  }
  return {};
}

Status read_status(const std::string& rec_path) {
  const std::string text = read_small(status_path(rec_path), kMaxStatusBytes);
  if (text.empty() || text.size() > kMaxStatusBytes) return Status::unknown;
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("version", 0) != kStatusVersion) return Status::unknown;
  const std::string s = j.value("status", "");
  if (s == "complete") return Status::complete;
  if (s == "interrupted") return Status::interrupted;
  if (s != "in_progress") return Status::unknown;
  // In progress while its writer lives: same boot, same process.
  const auto pid = j.value("pid", int64_t{0});
  const auto start = j.value("pid_start", uint64_t{0});
  if (j.value("boot_id", "") != boot_id() || pid <= 0 || pid > INT32_MAX || start == 0 ||
      process_start(static_cast<pid_t>(pid)) != start)
    return Status::interrupted;
  return Status::in_progress;
}

std::string sid_of_path(const std::string& path) {
  std::string name = path.substr(path.rfind('/') + 1);
  const std::string ext = kFileExtension;
  if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0)
    name.resize(name.size() - ext.size());
  return name;
}

class FileSink final : public RecordingSink {
 public:
  FileSink(std::string path, Fd fd, uint64_t size)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size) {}
  ~FileSink() override {
    if (finished_) return;
    if (auto r = write_status(path_, Status::interrupted, false); !r)
      log::warn(r.error().message);
  }

  Result<void> append(std::string_view bytes) override {
    if (finished_)
      return Error::of(Errc::failed_precondition, "recording " + path_ + " is finished");
    ssize_t n;
    do n = ::write(fd_.get(), bytes.data(), bytes.size());
    while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(bytes.size())) {
      size_ += bytes.size();
      return {};
    }
    const int err = n < 0 ? errno : ENOSPC;
    // A part of a chunk is taken back: the file never ends in half a chunk
    // that a reader would report as damage.
    if (n > 0 && ftruncate(fd_.get(), static_cast<off_t>(size_)) != 0)
      log::error("recording " + path_ + ": cannot take back a partial chunk");
    return Error::sys("cannot write recording " + path_, err);
  }

  Result<void> finish() override {
    if (finished_) return {};
    finished_ = true;
    Result<void> r;
    if (fdatasync(fd_.get()) != 0) r = Error::sys("cannot sync " + path_);
    fd_.reset();
    if (auto s = write_status(path_, Status::complete, true); !s && r) r = s;
    return r;
  }

  const std::string& name() const override { return path_; }

 private:
  std::string path_;
  Fd fd_;
  uint64_t size_;
  bool finished_ = false;
};

class FileSource final : public RecordingSource {
 public:
  FileSource(Fd fd, RecordingInfo info) : fd_(std::move(fd)), info_(std::move(info)) {}
  Result<size_t> read_at(uint64_t offset, void* buf, size_t n) override {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_.get(), static_cast<char*>(buf) + got, n - got,
                          static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Error::sys("read");
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    return got;
  }
  const RecordingInfo& info() const override { return info_; }

 private:
  Fd fd_;
  RecordingInfo info_;
};

Error no_recording(const std::string& sid, const std::string& where) {
  return Error::of(Errc::not_found, "no recording of session " + sid + " in " + where +
                                        " (list them with `vigil recordings`)");
}

Error bad_sid(const std::string& sid) {
  return Error::of(Errc::invalid_argument,
                   "\"" + sid + "\" cannot name a recording (a session id has no '/' or control " +
                       "character and at most 200 bytes)");
}

RecordingInfo info_of(const std::string& path, const std::string& sid, const struct stat& st) {
  RecordingInfo info;
  info.sid = sid.empty() ? sid_of_path(path) : sid;
  info.name = path;
  info.status = read_status(path);
  info.bytes = static_cast<uint64_t>(st.st_size);
  info.updated_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  return info;
}

}  // namespace

std::string status_path(const std::string& recording_path) { return recording_path + ".status"; }

FileRecordingStore::FileRecordingStore(std::string data_dir) : data_dir_(std::move(data_dir)) {}

std::string FileRecordingStore::where() const { return records_dir(data_dir_); }

Result<std::unique_ptr<RecordingSink>> FileRecordingStore::create_file(const std::string& path,
                                                                       const std::string& sid,
                                                                       std::string_view head) {
  (void)sid;
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640));
  if (!fd) {
    Error e = Error::sys("cannot create recording " + path);
    if (errno == EEXIST) e.code = Errc::already_exists;
    return e;
  }
  auto fail = [&](Error e) -> Error {
    unlink(path.c_str());
    unlink(status_path(path).c_str());
    return e;
  };
  if (auto r = write_status(path, Status::in_progress, false); !r) return fail(r.error());
  ssize_t n;
  do n = ::write(fd.get(), head.data(), head.size());
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(head.size()))
    return fail(Error::sys("cannot write " + path, n < 0 ? errno : ENOSPC));
  return std::unique_ptr<RecordingSink>(new FileSink(path, std::move(fd), head.size()));
}

Result<RecordingInfo> FileRecordingStore::info_file(const std::string& path,
                                                    const std::string& sid) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Error::sys("cannot open " + path);
  return info_of(path, sid, st);
}

Result<std::unique_ptr<RecordingSource>> FileRecordingStore::open_file(const std::string& path,
                                                                       const std::string& sid) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::sys("cannot open " + path);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Error::sys("cannot stat " + path);
  if (!S_ISREG(st.st_mode))
    return Error::of(Errc::invalid_argument, path + ": not a recording (not a regular file)");
  RecordingInfo info = info_of(path, sid, st);
  return std::unique_ptr<RecordingSource>(new FileSource(std::move(fd), std::move(info)));
}

Result<std::unique_ptr<RecordingSink>> FileRecordingStore::create(const std::string& sid,
                                                                  std::string_view head) {
  if (!is_valid_sid(sid)) return bad_sid(sid);
  if (auto r = prepare_records_dir(data_dir_); !r) return r.error();
  return create_file(recording_path(data_dir_, sid), sid, head);
}

Result<std::unique_ptr<RecordingSource>> FileRecordingStore::open(const std::string& sid) {
  if (!is_valid_sid(sid)) return bad_sid(sid);
  auto source = open_file(recording_path(data_dir_, sid), sid);
  if (!source && source.error().err == ENOENT) return no_recording(sid, where());
  return source;
}

Result<RecordingInfo> FileRecordingStore::info(const std::string& sid) {
  if (!is_valid_sid(sid)) return bad_sid(sid);
  auto info = info_file(recording_path(data_dir_, sid), sid);
  if (!info && info.error().err == ENOENT) return no_recording(sid, where());
  return info;
}

Result<std::vector<RecordingInfo>> FileRecordingStore::list() {
  auto paths = list_recordings(data_dir_);
  if (!paths) return paths.error();
  std::vector<RecordingInfo> out;
  out.reserve(paths->size());
  for (const std::string& path : *paths) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) continue;  // removed meanwhile
    out.push_back(info_of(path, {}, st));
  }
  return out;
}

Result<void> FileRecordingStore::mark_interrupted(const std::string& sid) {
  auto i = info(sid);
  if (!i) return i.error();
  if (i->status != Status::in_progress && i->status != Status::interrupted &&
      i->status != Status::unknown)
    return {};
  // The writer may still be alive in another process of this boot only if
  // read_status said in_progress; recovery calls this for dead writers.
  return write_status(i->name, Status::interrupted, true);
}

}  // namespace vigil::recording
