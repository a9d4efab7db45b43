#include "relay/spooling_store.hpp"

namespace vigil::relay {

Result<void> SpoolingStore::emit(std::string_view json_line, auditlog::Durability durability) {
  if (auto r = outbox_.append(json_line, durability); !r) return r.error();
  return {};
}

Result<void> SpoolingStore::flush() { return outbox_.flush(); }

Result<void> SpoolingStore::append(std::span<const std::string_view> lines,
                                   auditlog::Durability durability) {
  if (lines.empty()) return {};
  if (auto r = outbox_.append(lines, durability); !r) return r.error();
  return {};
}

Result<auditlog::Page> SpoolingStore::search(const auditlog::Query&) {
  return Error::of(Errc::failed_precondition,
                   "this node sends its audit events to the auth service and keeps them only "
                   "until delivered: search the cluster's audit log on the auth service "
                   "(vigilctl events, or GET /v1/events)");
}

}  // namespace vigil::relay
