// The stores teleport.storage names, for the auth service
// (services/cluster_services.cpp): the cluster state (SQLite in data_dir,
// or PostgreSQL) and the audit store (the day files under data_dir, or the
// list of audit_events_uri: every event to each, searches from the first).
#pragma once

#include <memory>
#include <string>

#include "auditlog/store.hpp"
#include "cluster/store.hpp"
#include "config/config.hpp"

namespace vigil::pg {

Result<std::unique_ptr<cluster::Backend>> open_cluster_backend(const config::Config& cfg);
Result<std::unique_ptr<auditlog::AuditStore>> open_audit_store(const config::Config& cfg,
                                                               const std::string& server_uuid);

}  // namespace vigil::pg
