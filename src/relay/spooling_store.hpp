// The node's audit sink when it is part of a cluster: an AuditStore whose
// emits go into the Outbox (outbox.hpp), so sessions and the engine write
// events exactly as they do to a FileLog, and the Forwarder delivers them.
//
// search(): a node keeps events only until the auth service has them, so
// it has no audit log to search. search() is refused with
// Errc::failed_precondition and a message that says to search the auth
// service's log (`vigilctl events`, GET /v1/events). Nothing on the node
// searches its own store (recovery of sessions reads the local recordings).
#pragma once

#include "auditlog/store.hpp"
#include "relay/outbox.hpp"

namespace vigil::relay {

class SpoolingStore final : public auditlog::AuditStore {
 public:
  explicit SpoolingStore(Outbox& outbox) : outbox_(outbox) {}

  Result<void> emit(std::string_view json_line,
                    auditlog::Durability durability = auditlog::Durability::buffered) override;
  Result<void> flush() override;
  Result<void> append(std::span<const std::string_view> lines,
                      auditlog::Durability durability = auditlog::Durability::buffered) override;
  Result<auditlog::Page> search(const auditlog::Query& query) override;

 private:
  Outbox& outbox_;
};

}  // namespace vigil::relay
