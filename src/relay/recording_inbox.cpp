#include "relay/recording_inbox.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <string>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "recording/file_store.hpp"

namespace vigil::relay {
namespace {

constexpr size_t kMoveBytes = 1u << 20;

Result<void> fsync_path(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d || ::fsync(d.get()) != 0) return Error::sys("recording inbox: cannot fsync " + dir);
  return {};
}

Result<void> write_all(int fd, std::string_view bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::sys("recording inbox: cannot write " + path, n < 0 ? errno : ENOSPC);
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<void> replace_file(const std::string& dir, const std::string& name, std::string_view text) {
  const std::string path = dir + "/" + name, tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Error::sys("recording inbox: cannot create " + tmp);
  if (auto r = write_all(fd.get(), text, tmp); !r) return r;
  if (::fsync(fd.get()) != 0) return Error::sys("recording inbox: cannot fsync " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return Error::sys("recording inbox: cannot rename " + tmp);
  return fsync_path(dir);
}

// A small file's text; "" with *exists false when it is missing.
Result<std::string> read_small(const std::string& path, bool* exists) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  *exists = fd.valid();
  if (!fd) {
    if (errno == ENOENT) return std::string();
    return Error::sys("recording inbox: cannot open " + path);
  }
  std::string text(512, '\0');
  ssize_t n = ::read(fd.get(), text.data(), text.size());
  if (n < 0) return Error::sys("recording inbox: cannot read " + path);
  text.resize(static_cast<size_t>(n));
  return text;
}

Result<size_t> pread_all(int fd, char* buf, size_t n, uint64_t offset, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Error::sys("recording inbox: cannot read " + path);
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

Result<std::unique_ptr<RecordingInbox>> RecordingInbox::open(recording::RecordingStore& store,
                                                             RecordingInboxOptions options) {
  const std::string& dir = options.staging_dir;
  if (dir.empty()) return Error::of(Errc::invalid_argument, "recording inbox: no staging_dir given");
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    if (::mkdir(dir.substr(0, pos).c_str(), 0700) != 0 && errno != EEXIST)
      return Error::sys("recording inbox: cannot create " + dir.substr(0, pos));
  }
  return std::unique_ptr<RecordingInbox>(new RecordingInbox(store, std::move(options)));
}

Result<std::string> RecordingInbox::owner_of(const std::string& sid) {
  bool exists = false;
  auto text = read_small(opt_.staging_dir + "/" + sid + "/owner", &exists);
  if (!text) return text.error();
  if (exists && (text->empty() || text->back() != '\n'))
    return Error::of(Errc::data_loss, "recording inbox: " + opt_.staging_dir + "/" + sid +
                                          "/owner is damaged; write the server_id of the "
                                          "node that recorded the session into it");
  if (exists) text->pop_back();
  return std::move(*text);
}

// Bytes held of a recording whose owner is known.
Result<RecordingState> RecordingInbox::held(const std::string& sid) {
  const std::string dir = opt_.staging_dir + "/" + sid;
  bool exists = false;
  auto done = read_small(dir + "/complete", &exists);
  if (!done) return done.error();
  if (exists) {
    uint64_t size = 0;
    auto [p, ec] = std::from_chars(done->data(), done->data() + done->size(), size);
    if (ec != std::errc() || *p != '\n')
      return Error::of(Errc::data_loss, "recording inbox: " + dir + "/complete is damaged");
    return RecordingState{size, true};
  }
  struct stat st {};
  if (::stat((dir + "/data").c_str(), &st) != 0) {
    if (errno == ENOENT) return RecordingState{0, false};
    return Error::sys("recording inbox: cannot stat " + dir + "/data");
  }
  return RecordingState{static_cast<uint64_t>(st.st_size), false};
}

Result<RecordingState> RecordingInbox::state(const Caller& caller, const std::string& sid) {
  if (!recording::is_valid_sid(sid))
    return Error::of(Errc::invalid_argument, "recording inbox: \"" + sid.substr(0, 64) +
                                                 "\" is not a session id");
  std::lock_guard lk(mu_);
  auto owner = owner_of(sid);
  if (!owner) return owner.error();
  if (owner->empty()) return RecordingState{0, false};
  if (*owner != caller.server_id)
    return Error::of(Errc::permission_denied,
                     "recording inbox: session " + sid + " was recorded by another node");
  return held(sid);
}

Result<void> RecordingInbox::move_into_store(const std::string& sid, uint64_t size) {
  const std::string dir = opt_.staging_dir + "/" + sid;
  const std::string data_path = dir + "/data";
  // A crash after the store finished and before `complete` was written.
  if (auto info = store_.info(sid); info) {
    if (info->status != recording::Status::complete || info->bytes != size)
      return Error::of(Errc::data_loss,
                       "recording inbox: " + info->name +
                           " is an unfinished copy of session " + sid +
                           " (the auth service stopped while moving it into the store); move it "
                           "away and the node's next upload completes it");
  } else {
    Fd fd(::open(data_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Error::sys("recording inbox: cannot open " + data_path);
    std::string buf(std::min<uint64_t>(size, kMoveBytes), '\0');
    auto n = pread_all(fd.get(), buf.data(), buf.size(), 0, data_path);
    if (!n) return n.error();
    auto sink = store_.create(sid, std::string_view(buf.data(), *n));
    if (!sink) return sink.error();
    uint64_t at = *n;
    while (at < size) {
      buf.resize(std::min<uint64_t>(size - at, kMoveBytes));
      auto got = pread_all(fd.get(), buf.data(), buf.size(), at, data_path);
      if (!got) return got.error();
      if (*got == 0) return Error::of(Errc::data_loss, "recording inbox: " + data_path + " shrank");
      if (auto r = (*sink)->append(std::string_view(buf.data(), *got)); !r) return r;
      at += *got;
    }
    if (auto r = (*sink)->finish(); !r) return r;
  }
  if (auto r = replace_file(dir, "complete", std::to_string(size) + "\n"); !r) return r;
  ::unlink(data_path.c_str());
  return {};
}

Result<RecordingState> RecordingInbox::put(const Caller& caller, const ChunkMeta& chunk,
                                           std::string_view bytes) {
  const std::string& sid = chunk.sid;
  if (!recording::is_valid_sid(sid))
    return Error::of(Errc::invalid_argument, "recording inbox: \"" + sid.substr(0, 64) +
                                                 "\" is not a session id");
  if (caller.server_id.empty())
    return Error::of(Errc::unauthenticated, "recording inbox: the caller is not a node");
  if (bytes.size() > kMaxChunkBytes)
    return Error::of(Errc::invalid_argument, "recording inbox: a chunk of " +
                                                 std::to_string(bytes.size()) +
                                                 " bytes; send at most " +
                                                 std::to_string(kMaxChunkBytes) + " at a time");
  if (chunk.offset > opt_.max_recording_bytes ||
      bytes.size() > opt_.max_recording_bytes - chunk.offset)
    return Error::of(Errc::resource_exhausted,
                     "recording inbox: session " + sid + " would exceed " +
                         std::to_string(opt_.max_recording_bytes) + " bytes");
  std::lock_guard lk(mu_);
  const std::string dir = opt_.staging_dir + "/" + sid;
  auto owner = owner_of(sid);
  if (!owner) return owner.error();
  if (owner->empty()) {
    if (chunk.offset != 0)
      return Error::of(Errc::failed_precondition,
                       "recording inbox: the auth service holds 0 bytes of session " + sid +
                           ": send from offset 0");
    if (auto info = store_.info(sid); info)
      return Error::of(Errc::already_exists,
                       "recording inbox: the recording store already holds session " + sid);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return Error::sys("recording inbox: cannot create " + dir);
    if (auto r = fsync_path(opt_.staging_dir); !r) return r.error();
    if (auto r = replace_file(dir, "owner", caller.server_id + "\n"); !r) return r.error();
  } else if (*owner != caller.server_id) {
    return Error::of(Errc::permission_denied,
                     "recording inbox: session " + sid + " was recorded by another node");
  }

  auto have = held(sid);
  if (!have) return have.error();
  const uint64_t size = have->bytes;
  if (chunk.offset > size)
    return Error::of(Errc::failed_precondition,
                     "recording inbox: the auth service holds " + std::to_string(size) +
                         " bytes of session " + sid + ": send from offset " + std::to_string(size));
  const uint64_t end = chunk.offset + bytes.size();
  if (have->complete && (end > size || (chunk.final && end != size)))
    return Error::of(Errc::failed_precondition, "recording inbox: session " + sid +
                                                    " is complete at " + std::to_string(size) +
                                                    " bytes");
  if (chunk.final && end < size)
    return Error::of(Errc::failed_precondition,
                     "recording inbox: a final chunk ending at " + std::to_string(end) +
                         " but the auth service holds " + std::to_string(size) + " bytes");

  // The overlap with what is held must be the same bytes.
  const size_t overlap = static_cast<size_t>(std::min(size, end) - chunk.offset);
  if (overlap > 0) {
    std::string old(overlap, '\0');
    size_t got = 0;
    if (have->complete) {
      auto src = store_.open(sid);
      if (!src) return src.error();
      while (got < overlap) {
        auto n = (*src)->read_at(chunk.offset + got, old.data() + got, overlap - got);
        if (!n) return n.error();
        if (*n == 0) break;
        got += *n;
      }
    } else {
      Fd fd(::open((dir + "/data").c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) return Error::sys("recording inbox: cannot open " + dir + "/data");
      auto n = pread_all(fd.get(), old.data(), overlap, chunk.offset, dir + "/data");
      if (!n) return n.error();
      got = *n;
    }
    if (got != overlap || std::string_view(old) != bytes.substr(0, overlap))
      return Error::of(Errc::already_exists,
                       "recording inbox: bytes " + std::to_string(chunk.offset) + ".." +
                           std::to_string(chunk.offset + overlap) + " of session " + sid +
                           " differ from those the auth service holds (a recording is written "
                           "once)");
  }
  if (have->complete) return *have;

  const std::string data_path = dir + "/data";
  if (overlap < bytes.size()) {
    Fd fd(::open(data_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!fd) return Error::sys("recording inbox: cannot open " + data_path);
    if (auto r = write_all(fd.get(), bytes.substr(overlap), data_path); !r) {
      if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
        log::error("recording inbox: cannot truncate " + data_path + " back");
      return r.error();
    }
    if (::fdatasync(fd.get()) != 0) return Error::sys("recording inbox: cannot fsync " + data_path);
  }
  const uint64_t now = std::max(size, end);
  if (!chunk.final) return RecordingState{now, false};
  if (overlap == bytes.size() && size == 0) {
    // An empty recording: create its file so the move finds it.
    Fd fd(::open(data_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return Error::sys("recording inbox: cannot create " + data_path);
  }
  if (auto r = move_into_store(sid, now); !r) return r.error();
  return RecordingState{now, true};
}

namespace {

// A staged recording as its readers see it: the data file, in progress.
class StagedSource final : public recording::RecordingSource {
 public:
  StagedSource(std::unique_ptr<recording::RecordingSource> inner, recording::RecordingInfo info)
      : inner_(std::move(inner)), info_(std::move(info)) {}
  Result<size_t> read_at(uint64_t offset, void* buf, size_t n) override {
    return inner_->read_at(offset, buf, n);
  }
  const recording::RecordingInfo& info() const override { return info_; }

 private:
  std::unique_ptr<recording::RecordingSource> inner_;
  recording::RecordingInfo info_;
};

}  // namespace

Result<std::vector<std::string>> RecordingInbox::in_progress() {
  std::vector<std::string> sids;
  DIR* d = ::opendir(opt_.staging_dir.c_str());
  if (!d) return Error::sys("recording inbox: cannot list " + opt_.staging_dir);
  while (dirent* e = ::readdir(d)) {
    std::string sid = e->d_name;
    if (!recording::is_valid_sid(sid)) continue;
    const std::string dir = opt_.staging_dir + "/" + sid;
    struct stat st {};
    if (::stat((dir + "/complete").c_str(), &st) == 0) continue;
    if (::stat((dir + "/data").c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    sids.push_back(std::move(sid));
  }
  ::closedir(d);
  std::sort(sids.begin(), sids.end());
  return sids;
}

Result<std::unique_ptr<recording::RecordingSource>> RecordingInbox::open_in_progress(
    const std::string& sid) {
  if (!recording::is_valid_sid(sid))
    return Error::of(Errc::invalid_argument, "recording inbox: \"" + sid.substr(0, 64) +
                                                 "\" is not a session id");
  const std::string dir = opt_.staging_dir + "/" + sid;
  struct stat st {};
  if (::stat((dir + "/complete").c_str(), &st) == 0)
    return Error::of(Errc::not_found, "recording inbox: session " + sid + " is in the store");
  auto source = recording::FileRecordingStore::open_file(dir + "/data", sid);
  if (!source) {
    if (source.error().err == ENOENT)
      return Error::of(Errc::not_found, "recording inbox: no recording of session " + sid +
                                            " is arriving");
    return source.error();
  }
  recording::RecordingInfo info = (*source)->info();
  info.status = recording::Status::in_progress;
  return std::unique_ptr<recording::RecordingSource>(
      new StagedSource(std::move(*source), std::move(info)));
}

}  // namespace vigil::relay
