#include "relay/uploader.hpp"

#include <algorithm>

#include "common/log.hpp"

namespace vigil::relay {

RecordingUploader::RecordingUploader(recording::RecordingStore& local, UploadFns fns,
                                     UploaderOptions options)
    : local_(local), fns_(std::move(fns)), opt_(options) {
  opt_.chunk_bytes = std::clamp<size_t>(opt_.chunk_bytes, 1, kMaxChunkBytes);
}

RecordingUploader::~RecordingUploader() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<RecordingState> RecordingUploader::sync(const std::string& sid) {
  std::lock_guard sl(sync_mu_);
  auto src = local_.open(sid);
  if (!src) return src.error();
  const recording::RecordingInfo info = (*src)->info();
  // The recording ends: nothing more will be appended to it locally.
  const bool ended = info.status != recording::Status::in_progress;

  RecordingState remote;
  bool known;
  {
    std::lock_guard lk(mu_);
    auto it = remote_.find(sid);
    known = it != remote_.end();
    if (known) remote = it->second;
  }
  if (!known) {
    auto st = fns_.state(sid);
    if (!st) return st.error();
    remote = *st;
  }
  auto remember = [&](const RecordingState& s) {
    std::lock_guard lk(mu_);
    remote_[sid] = s;
  };
  remember(remote);
  if (remote.bytes > info.bytes)
    return Error::of(Errc::failed_precondition,
                     "recording upload: the auth service holds " + std::to_string(remote.bytes) +
                         " bytes of session " + sid + ", more than the " +
                         std::to_string(info.bytes) + " this node has");
  std::string buf;
  while (!remote.complete && (remote.bytes < info.bytes || ended)) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(info.bytes - remote.bytes,
                                                               opt_.chunk_bytes));
    buf.resize(want);
    size_t got = 0;
    while (got < want) {
      auto n = (*src)->read_at(remote.bytes + got, buf.data() + got, want - got);
      if (!n) return n.error();
      if (*n == 0) break;
      got += *n;
    }
    if (got != want)
      return Error::of(Errc::data_loss, "recording upload: " + info.name + " is shorter than " +
                                            std::to_string(info.bytes) + " bytes");
    const bool final = ended && remote.bytes + got == info.bytes;
    auto after = fns_.upload(sid, remote.bytes, std::string_view(buf.data(), got), final);
    if (!after) {
      std::lock_guard lk(mu_);
      ++stats_.failures;
      // Ask again next time: the chunk may have been taken.
      remote_.erase(sid);
      return after.error();
    }
    if (after->bytes != remote.bytes + got || (final && !after->complete)) {
      std::lock_guard lk(mu_);
      remote_.erase(sid);
      ++stats_.failures;
      return Error::of(Errc::unavailable,
                       "recording upload: the auth service answered " +
                           std::to_string(after->bytes) + " bytes of session " + sid +
                           " after a chunk ending at " + std::to_string(remote.bytes + got) +
                           "; asking it again next time");
    }
    {
      std::lock_guard lk(mu_);
      ++stats_.chunks;
      stats_.bytes += got;
      if (after->complete) ++stats_.completed;
    }
    remote = *after;
    remember(remote);
  }
  return remote;
}

Result<void> RecordingUploader::sync_all() {
  auto list = local_.list();
  if (!list) return list.error();
  Result<void> first;
  for (const auto& info : *list) {
    if (delivered(info.sid)) continue;
    if (auto r = sync(info.sid); !r && first.ok()) first = r.error();
  }
  return first;
}

bool RecordingUploader::delivered(const std::string& sid) const {
  std::lock_guard lk(mu_);
  auto it = remote_.find(sid);
  return it != remote_.end() && it->second.complete;
}

void RecordingUploader::run_every(std::chrono::milliseconds interval) {
  if (thread_.joinable()) return;
  thread_ = std::thread([this, interval] {
    std::unique_lock lk(mu_);
    while (!stop_) {
      lk.unlock();
      if (auto r = sync_all(); !r) log::warn("recording upload: " + r.error().message);
      lk.lock();
      cv_.wait_for(lk, interval, [&] { return stop_; });
    }
  });
}

UploaderStats RecordingUploader::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

}  // namespace vigil::relay
