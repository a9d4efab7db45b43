// The in-memory recording store: recordings kept in this process's memory,
// bounded in bytes. For what needs a recording store without a disk (tests
// of the parts that record), and the second back end of the contract suite,
// which shows that the suite assumes nothing of files. Handles on the same
// MemoryRecordingStorage share its recordings, as FileRecordingStores on
// one data_dir do. A writer's end is its sink: finish() completes the
// recording, a sink destroyed without it leaves it interrupted (this store
// cannot outlive a crash of its process, so there is no other way to die).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "recording/recording_store.hpp"

namespace vigil::recording {

class MemoryRecordingStorage {
 public:
  explicit MemoryRecordingStorage(size_t max_bytes = 1u << 30) : max_bytes_(max_bytes) {}

  // Stores bytes and a status as they are, unchecked: what damaged storage
  // or a writer cut short mid-append leaves. For the contract suite.
  void put_raw(const std::string& sid, std::string bytes, Status status);

 private:
  friend class MemoryRecordingStore;
  friend class MemorySink;
  friend class MemorySource;
  struct Entry {
    std::string bytes;
    Status status = Status::in_progress;
    int64_t updated_ns = 0;
  };
  std::mutex mu_;
  std::map<std::string, Entry> entries_;  // by sid: list() comes sorted
  size_t bytes_ = 0;
  const size_t max_bytes_;
};

class MemoryRecordingStore final : public RecordingStore {
 public:
  explicit MemoryRecordingStore(std::shared_ptr<MemoryRecordingStorage> storage)
      : storage_(std::move(storage)) {}

  // Past the storage's max_bytes create and append are refused
  // (Errc::resource_exhausted), storing nothing.
  Result<std::unique_ptr<RecordingSink>> create(const std::string& sid,
                                                std::string_view head) override;
  Result<std::unique_ptr<RecordingSource>> open(const std::string& sid) override;
  Result<RecordingInfo> info(const std::string& sid) override;
  Result<std::vector<RecordingInfo>> list() override;
  Result<void> mark_interrupted(const std::string& sid) override;
  std::string where() const override { return "memory"; }

 private:
  std::shared_ptr<MemoryRecordingStorage> storage_;
};

}  // namespace vigil::recording
