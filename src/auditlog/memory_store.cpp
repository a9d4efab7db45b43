#include "auditlog/memory_store.hpp"

#include <algorithm>

namespace vigil::auditlog {
namespace {
const std::string kSource = "memory";
}

void MemoryAuditStorage::put_raw(std::string bytes) {
  std::lock_guard lk(mu_);
  bytes_ += bytes.size();
  entries_.push_back(std::move(bytes));
}

std::unique_ptr<MemoryAuditStore> MemoryAuditStore::open(
    std::shared_ptr<MemoryAuditStorage> storage) {
  return std::unique_ptr<MemoryAuditStore>(new MemoryAuditStore(std::move(storage)));
}

Result<void> MemoryAuditStore::emit(std::string_view line, Durability durability) {
  return append(std::span<const std::string_view>(&line, 1), durability);
}

Result<void> MemoryAuditStore::append(std::span<const std::string_view> lines, Durability) {
  size_t batch = 0;
  for (std::string_view line : lines) {
    if (auto r = check_event_line(line); !r) return r;
    batch += line.size();
  }
  MemoryAuditStorage& s = *storage_;
  std::lock_guard lk(s.mu_);
  if (s.bytes_ + batch > s.max_bytes_) {
    std::lock_guard mine(mu_);
    lost_ += lines.size();
    return Error::of(Errc::resource_exhausted,
                     "audit log (memory): full, " + std::to_string(s.bytes_) + " of " +
                         std::to_string(s.max_bytes_) +
                         " bytes used: events dropped (give the store more room, or a "
                         "back end on disk)");
  }
  for (std::string_view line : lines) s.entries_.emplace_back(line);
  s.bytes_ += batch;
  return {};
}

Result<Page> MemoryAuditStore::search(const Query& query) {
  auto search = LineSearch::begin(query);
  if (!search) return search.error();
  MemoryAuditStorage& s = *storage_;
  std::lock_guard lk(s.mu_);
  // Byte positions as a file would have them: later entries sort after
  // earlier ones among events of the same time, and keys stay valid while
  // entries are appended.
  uint64_t offset = 0, line_no = 1;
  for (const std::string& e : s.entries_) {
    std::string_view line(e);
    const bool whole = !line.empty() && line.back() == '\n';
    if (whole) line.remove_suffix(1);
    // An entry without its '\n' is what a writer cut short left: like the
    // unfinished last line of a file, never returned. Being its own entry,
    // it glues onto nothing.
    if (whole) search->add(line, kSource, offset, line_no);
    offset += e.size();
    ++line_no;
  }
  return search->finish();
}

uint64_t MemoryAuditStore::lost_events() const {
  std::lock_guard lk(mu_);
  return lost_;
}

}  // namespace vigil::auditlog
