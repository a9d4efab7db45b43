#include "auditlog/session_log.hpp"

#include "audit/encode.hpp"
#include "audit/uuid.hpp"
#include "common/log.hpp"

namespace vigil::auditlog {

SessionLog::SessionLog(audit::SessionMeta meta, Emitter& log, Copy copy)
    : meta_(std::move(meta)), log_(log), copy_(std::move(copy)) {}

void SessionLog::start(int64_t time_ns, std::vector<std::string> command,
                       std::vector<std::string> sealed) {
  std::lock_guard lock(mu_);
  line_.clear();
  audit::encode_session_start({time_ns, std::move(command), std::move(sealed)}, meta_, ei_++,
                              audit::new_uuid(), line_);
  deliver(time_ns, Durability::buffered);
}

void SessionLog::event(const Event& ev) {
  std::lock_guard lock(mu_);
  line_.clear();
  audit::encode_event(ev, meta_, ei_++, audit::new_uuid(), line_);
  deliver(ev.time_ns, Durability::buffered);
}

void SessionLog::exec(const audit::ExecEnd& exec) {
  std::lock_guard lock(mu_);
  line_.clear();
  audit::encode_exec(exec, meta_, ei_++, audit::new_uuid(), line_);
  deliver(exec.time_ns, Durability::buffered);
}

void SessionLog::end(const audit::SessionEnd& end) {
  std::lock_guard lock(mu_);
  line_.clear();
  audit::encode_session_end(end, meta_, ei_++, audit::new_uuid(), line_);
  deliver(end.time_ns, Durability::sync);
}

std::string SessionLog::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

void SessionLog::deliver(int64_t time_ns, Durability durability) {
  if (auto r = log_.emit(line_, durability); !r && error_.empty()) {
    error_ = r.error().message;
    log::error("session " + meta_.sid + ": audit log: " + error_);
  }
  if (copy_) copy_(time_ns, line_);
}

}  // namespace vigil::auditlog
