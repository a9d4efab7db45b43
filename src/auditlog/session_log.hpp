// One session's audit events, however the session runs (`vigil record`, an
// SSH channel): each is encoded once as its JSON line with the session's
// next ei, emitted to the audit log, and handed to `copy` (the session's
// recording, an -o file). session.end is synced: the session counts as
// recorded only once its end is durable. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "audit/session.hpp"
#include "auditlog/emitter.hpp"
#include "engine/event.hpp"

namespace vigil::auditlog {

class SessionLog {
 public:
  using Copy = std::function<void(int64_t time_ns, std::string_view json_line)>;

  SessionLog(audit::SessionMeta meta, Emitter& log, Copy copy = {});

  // sealed: what the session seal refuses, empty when unsealed.
  void start(int64_t time_ns, std::vector<std::string> command,
             std::vector<std::string> sealed = {});
  void event(const Event& ev);
  void exec(const audit::ExecEnd& exec);
  void end(const audit::SessionEnd& end);

  const audit::SessionMeta& meta() const { return meta_; }
  // The audit log's first refusal, empty when every line was accepted (the
  // log keeps retrying and counts what it has to drop). Logged when it happens.
  std::string error() const;

 private:
  void deliver(int64_t time_ns, Durability durability);

  const audit::SessionMeta meta_;
  Emitter& log_;
  const Copy copy_;
  mutable std::mutex mu_;
  std::string line_;
  uint64_t ei_ = 0;
  std::string error_;
};

}  // namespace vigil::auditlog
