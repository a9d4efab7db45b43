// One session's audit events, however the session runs (`vigil record`, an
// SSH channel): each is encoded once as its JSON line with the session's
// next ei, emitted to the audit log, and handed to `copy` (the session's
// recording, an -o file). session.start and session.end are synced: the
// session is on record before its program runs, and counts as recorded only
// once its end is durable. Thread-safe.
//
// With a journal directory, the session also keeps `<dir>/<sid>.json`
// (0600, locked while the session lives) from start until its last event, so
// that a recorder killed mid-session leaves what recover_sessions() needs to
// write the missing session.end (or session.leftovers_end) on the next start.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "audit/session.hpp"
#include "auditlog/emitter.hpp"
#include "auditlog/store.hpp"
#include "common/fd.hpp"
#include "common/result.hpp"
#include "event/event.hpp"
#include "recording/recording_store.hpp"

namespace vigil::auditlog {

// <data_dir>/sessions: the journals of sessions in progress.
std::string journal_dir(const std::string& data_dir);

class SessionLog {
 public:
  using Copy = std::function<void(int64_t time_ns, std::string_view json_line)>;

  SessionLog(audit::SessionMeta meta, Emitter& log, Copy copy = {});
  ~SessionLog();

  // Before start(): keep a journal in `dir` (made 0700 when missing). What
  // recovery needs to know besides the meta: pty or not, the kinds.
  Result<void> keep_journal(const std::string& dir, bool interactive, KindSet kinds);

  // sealed: what the session seal refuses, empty when unsealed.
  void start(int64_t time_ns, std::vector<std::string> command,
             std::vector<std::string> sealed = {});
  void event(const Event& ev);
  void exec(const audit::ExecEnd& exec);
  // Ends the journal, unless leftovers stay recorded: then it ends with
  // leftovers_end().
  void end(const audit::SessionEnd& end);
  void leftovers_end(const audit::LeftoversEnd& end);

  const audit::SessionMeta& meta() const { return meta_; }
  // The audit log's first refusal, empty when every line was accepted (the
  // log keeps retrying and counts what it has to drop). Logged when it happens.
  std::string error() const;

 private:
  void deliver(int64_t time_ns, Durability durability);
  void write_journal_locked(const audit::SessionEnd* ended);
  void drop_journal_locked();

  const audit::SessionMeta meta_;
  Emitter& log_;
  const Copy copy_;
  mutable std::mutex mu_;
  std::string line_;
  uint64_t ei_ = 0;
  std::string error_;
  // Journal (when kept).
  std::string journal_path_;
  Fd journal_;
  bool interactive_ = false;
  KindSet kinds_;
  int64_t start_ns_ = 0;
};

// Writes what sessions of dead recorders miss (their journals in
// journal_dir(data_dir) that nobody holds): a session.end marked recovered
// (or a session.leftovers_end when the session had ended and only its
// leftovers were still recorded), counting the events that reached the audit
// log, with the next ei. Removes each journal once its
// event is durable. Returns how many sessions were recovered. A journal
// that cannot be read is moved aside (*.bad); one whose event could not be
// written stays for the next start. Both are reported in `warnings`.
// The audit log is searched through `log` for what reached it; the
// session's recording in `recordings` gives its last sign of life and is
// marked interrupted once the end is written.
Result<size_t> recover_sessions(const std::string& data_dir, AuditStore& log,
                                recording::RecordingStore& recordings,
                                std::vector<std::string>* warnings = nullptr);

}  // namespace vigil::auditlog
