#include "auditlog/fanout_store.hpp"

#include <cassert>

namespace vigil::auditlog {

FanoutAuditStore::FanoutAuditStore(std::vector<std::unique_ptr<AuditStore>> stores)
    : stores_(std::move(stores)) {
  assert(!stores_.empty());
}

Result<void> FanoutAuditStore::emit(std::string_view json_line, Durability durability) {
  return append(std::span<const std::string_view>(&json_line, 1), durability);
}

Result<void> FanoutAuditStore::append(std::span<const std::string_view> lines,
                                      Durability durability) {
  // Checked once before any store has it: a bad line is stored nowhere.
  for (std::string_view line : lines)
    if (auto r = check_event_line(line); !r) return r;
  for (auto& s : stores_)
    if (auto r = s->append(lines, durability); !r) return r;
  return {};
}

Result<void> FanoutAuditStore::flush() {
  Result<void> first;
  for (auto& s : stores_)
    if (auto r = s->flush(); !r && first) first = r;
  return first;
}

}  // namespace vigil::auditlog
