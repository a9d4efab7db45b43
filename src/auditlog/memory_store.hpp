// The in-memory audit store: events kept in this process's memory, bounded
// in bytes, searched with the same filter, order and continuation keys as
// the day files (search.hpp's LineSearch). For what needs an audit store
// without a disk: tests of the parts that write through one (sessions,
// recovery), and the second back end of the contract suite, which shows
// that the suite assumes nothing of files.
//
// Handles share storage: open() on the same MemoryAuditStorage gives
// another writer and reader of the same events, as another process's
// FileLog on the same data_dir would. Durability is the storage's lifetime:
// a sync append is "durable" once it is in the shared storage, which
// outlives every handle (not the process).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "auditlog/store.hpp"

namespace vigil::auditlog {

class MemoryAuditStorage {
 public:
  explicit MemoryAuditStorage(size_t max_bytes = 256u << 20) : max_bytes_(max_bytes) {}

  // What a writer that failed mid-append, or damaged storage, leaves: bytes
  // stored as they are, unchecked ("{...}" without its '\n' is an unfinished
  // line, which search leaves out; anything else not JSON is reported).
  // For the contract suite's crash and corruption cases.
  void put_raw(std::string bytes);

 private:
  friend class MemoryAuditStore;
  std::mutex mu_;
  std::vector<std::string> entries_;  // each a line with its '\n' (unless damaged)
  size_t bytes_ = 0;
  const size_t max_bytes_;
};

class MemoryAuditStore final : public AuditStore {
 public:
  static std::unique_ptr<MemoryAuditStore> open(std::shared_ptr<MemoryAuditStorage> storage);

  // Past the storage's max_bytes an append is refused whole
  // (Errc::resource_exhausted) and counted in lost_events().
  Result<void> emit(std::string_view json_line,
                    Durability durability = Durability::buffered) override;
  Result<void> flush() override { return {}; }
  Result<void> append(std::span<const std::string_view> lines,
                      Durability durability = Durability::buffered) override;
  Result<Page> search(const Query& query) override;

  uint64_t lost_events() const;

 private:
  explicit MemoryAuditStore(std::shared_ptr<MemoryAuditStorage> storage)
      : storage_(std::move(storage)) {}
  std::shared_ptr<MemoryAuditStorage> storage_;
  mutable std::mutex mu_;
  uint64_t lost_ = 0;
};

}  // namespace vigil::auditlog
