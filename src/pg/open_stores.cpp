#include "pg/open_stores.hpp"

#include "auditlog/fanout_store.hpp"
#include "auditlog/file_log.hpp"
#include "cluster/sqlite_store.hpp"
#include "pg/pg_audit_store.hpp"
#include "pg/pg_cluster_store.hpp"

namespace vigil::pg {

Result<std::unique_ptr<cluster::Backend>> open_cluster_backend(const config::Config& cfg) {
  if (cfg.storage.type == "postgresql") return open_postgres_cluster(cfg.storage.conn_string);
  return cluster::open_sqlite(cfg.data_dir + "/cluster/state.db");
}

Result<std::unique_ptr<auditlog::AuditStore>> open_audit_store(const config::Config& cfg,
                                                               const std::string& server_uuid) {
  auto file_log = [&](const std::string& data_dir) -> Result<std::unique_ptr<auditlog::AuditStore>> {
    auditlog::FileLogOptions o;
    o.data_dir = data_dir;
    o.server_uuid = server_uuid;
    auto log = auditlog::FileLog::open(o);
    if (!log) return log.error();
    return std::unique_ptr<auditlog::AuditStore>(std::move(*log));
  };
  if (cfg.storage.audit_events_uri.empty()) return file_log(cfg.data_dir);
  std::vector<std::unique_ptr<auditlog::AuditStore>> stores;
  for (const std::string& uri : cfg.storage.audit_events_uri) {
    Result<std::unique_ptr<auditlog::AuditStore>> s = Error::of(Errc::internal, "");
    if (uri.rfind("file://", 0) == 0) {
      // file:///data_dir/log (the config checked the shape)
      const std::string path = uri.substr(7);
      s = file_log(path.substr(0, path.size() - 4));
    } else {
      PgAuditOptions o;
      o.uri = uri;
      auto p = PgAuditStore::open(o);
      if (p) s = std::unique_ptr<auditlog::AuditStore>(std::move(*p));
      else s = p.error();
    }
    if (!s) return s.error();
    stores.push_back(std::move(*s));
  }
  if (stores.size() == 1) return std::move(stores.front());
  return std::unique_ptr<auditlog::AuditStore>(new auditlog::FanoutAuditStore(std::move(stores)));
}

}  // namespace vigil::pg
