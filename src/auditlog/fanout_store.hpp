// Several audit stores as one (teleport.storage.audit_events_uri is a list):
// every event goes to each, in the order given, and searches use the first.
// An append returns the first failure; the stores before the one that
// failed have the events, so a caller that sends the batch again (the
// relay's spool) may store it twice in those (searches read the first:
// a failure of the first store doubles nothing).
#pragma once

#include <memory>
#include <vector>

#include "auditlog/store.hpp"

namespace vigil::auditlog {

class FanoutAuditStore final : public AuditStore {
 public:
  // stores: at least one.
  explicit FanoutAuditStore(std::vector<std::unique_ptr<AuditStore>> stores);

  Result<void> emit(std::string_view json_line, Durability durability = Durability::buffered) override;
  Result<void> flush() override;
  Result<void> append(std::span<const std::string_view> lines,
                      Durability durability = Durability::buffered) override;
  Result<Page> search(const Query& query) override { return stores_.front()->search(query); }

 private:
  std::vector<std::unique_ptr<AuditStore>> stores_;
};

}  // namespace vigil::auditlog
