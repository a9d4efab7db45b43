#include "recording/memory_store.hpp"

#include <cstring>

#include "common/clock.hpp"

namespace vigil::recording {
namespace {

Error no_recording(const std::string& sid) {
  return Error::of(Errc::not_found, "no recording of session " + sid +
                                        " in memory (list them with `vigil recordings`)");
}

Error full(size_t used, size_t max) {
  return Error::of(Errc::resource_exhausted,
                   "recording store (memory): full, " + std::to_string(used) + " of " +
                       std::to_string(max) +
                       " bytes used (give the store more room, or a back end on disk)");
}

}  // namespace

void MemoryRecordingStorage::put_raw(const std::string& sid, std::string bytes, Status status) {
  std::lock_guard lk(mu_);
  Entry& e = entries_[sid];
  bytes_ = bytes_ - e.bytes.size() + bytes.size();
  e.bytes = std::move(bytes);
  e.status = status;
  e.updated_ns = clock::realtime_ns();
}

class MemorySink final : public RecordingSink {
 public:
  MemorySink(std::shared_ptr<MemoryRecordingStorage> storage, std::string sid)
      : storage_(std::move(storage)), sid_(std::move(sid)), name_("memory:" + sid_) {}
  ~MemorySink() override {
    if (finished_) return;
    std::lock_guard lk(storage_->mu_);
    auto it = storage_->entries_.find(sid_);
    if (it != storage_->entries_.end() && it->second.status == Status::in_progress)
      it->second.status = Status::interrupted;
  }

  Result<void> append(std::string_view bytes) override {
    if (finished_)
      return Error::of(Errc::failed_precondition, "recording " + name_ + " is finished");
    MemoryRecordingStorage& s = *storage_;
    std::lock_guard lk(s.mu_);
    auto it = s.entries_.find(sid_);
    if (it == s.entries_.end())
      return Error::of(Errc::not_found, "recording " + name_ + " was removed while written");
    if (s.bytes_ + bytes.size() > s.max_bytes_) return full(s.bytes_, s.max_bytes_);
    it->second.bytes.append(bytes);
    it->second.updated_ns = clock::realtime_ns();
    s.bytes_ += bytes.size();
    return {};
  }

  Result<void> finish() override {
    if (finished_) return {};
    finished_ = true;
    std::lock_guard lk(storage_->mu_);
    auto it = storage_->entries_.find(sid_);
    if (it == storage_->entries_.end())
      return Error::of(Errc::not_found, "recording " + name_ + " was removed while written");
    it->second.status = Status::complete;
    return {};
  }

  const std::string& name() const override { return name_; }

 private:
  std::shared_ptr<MemoryRecordingStorage> storage_;
  std::string sid_;
  std::string name_;
  bool finished_ = false;
};

// Reads the stored bytes as they grow: a reader of a live recording sees
// the chunks appended after it opened, as a reader of a file does.
class MemorySource final : public RecordingSource {
 public:
  MemorySource(std::shared_ptr<MemoryRecordingStorage> storage, RecordingInfo info)
      : storage_(std::move(storage)), info_(std::move(info)) {}
  Result<size_t> read_at(uint64_t offset, void* buf, size_t n) override {
    std::lock_guard lk(storage_->mu_);
    auto it = storage_->entries_.find(info_.sid);
    if (it == storage_->entries_.end()) return size_t{0};
    const std::string& b = it->second.bytes;
    if (offset >= b.size()) return size_t{0};
    const size_t got = std::min<uint64_t>(n, b.size() - offset);
    std::memcpy(buf, b.data() + offset, got);
    return got;
  }
  const RecordingInfo& info() const override { return info_; }

 private:
  std::shared_ptr<MemoryRecordingStorage> storage_;
  RecordingInfo info_;
};

Result<std::unique_ptr<RecordingSink>> MemoryRecordingStore::create(const std::string& sid,
                                                                    std::string_view head) {
  if (!is_valid_sid(sid))
    return Error::of(Errc::invalid_argument, "\"" + sid + "\" cannot name a recording");
  MemoryRecordingStorage& s = *storage_;
  {
    std::lock_guard lk(s.mu_);
    if (s.entries_.count(sid))
      return Error::of(Errc::already_exists, "recording memory:" + sid + " exists");
    if (s.bytes_ + head.size() > s.max_bytes_) return full(s.bytes_, s.max_bytes_);
    auto& e = s.entries_[sid];
    e.bytes.assign(head);
    e.status = Status::in_progress;
    e.updated_ns = clock::realtime_ns();
    s.bytes_ += head.size();
  }
  return std::unique_ptr<RecordingSink>(new MemorySink(storage_, sid));
}

Result<RecordingInfo> MemoryRecordingStore::info(const std::string& sid) {
  std::lock_guard lk(storage_->mu_);
  auto it = storage_->entries_.find(sid);
  if (it == storage_->entries_.end()) return no_recording(sid);
  return RecordingInfo{sid, "memory:" + sid, it->second.status, it->second.bytes.size(),
                       it->second.updated_ns};
}

Result<std::unique_ptr<RecordingSource>> MemoryRecordingStore::open(const std::string& sid) {
  auto i = info(sid);
  if (!i) return i.error();
  return std::unique_ptr<RecordingSource>(new MemorySource(storage_, std::move(*i)));
}

Result<std::vector<RecordingInfo>> MemoryRecordingStore::list() {
  std::lock_guard lk(storage_->mu_);
  std::vector<RecordingInfo> out;
  out.reserve(storage_->entries_.size());
  for (const auto& [sid, e] : storage_->entries_)
    out.push_back({sid, "memory:" + sid, e.status, e.bytes.size(), e.updated_ns});
  return out;
}

Result<void> MemoryRecordingStore::mark_interrupted(const std::string& sid) {
  std::lock_guard lk(storage_->mu_);
  auto it = storage_->entries_.find(sid);
  if (it == storage_->entries_.end()) return no_recording(sid);
  if (it->second.status != Status::complete) it->second.status = Status::interrupted;
  return {};
}

}  // namespace vigil::recording
