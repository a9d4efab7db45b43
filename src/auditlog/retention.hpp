// Retention (audit.retention, audit.recording_retention): whole day files
// of the file audit log, and recordings of the file back end, older than
// their setting are removed, each removal written as an audit event.
//
//   Retention policy{.audit_ns = 90 * kNsPerDay, .recordings_ns = 30 * kNsPerDay};
//   auto report = apply_retention(data_dir, policy, now_ns, log);
//
// What is removed:
// - a day file <data_dir>/log/<server>/<day>.log whose whole day ended at
//   least audit_ns before now (the file of 2026-01-01 goes once now is past
//   2026-01-02T00:00Z + audit_ns): never today's file, never the file
//   events.log points at, never a file whose name is not a day file's;
// - a recording <data_dir>/log/records/<sid>.vrec (and its .status) whose
//   last write is at least recordings_ns before now and which is not in
//   progress (a live session's recording is kept whatever its age).
// Each removal writes one `audit.retention` event (synced) to `log` *before*
// the file goes: a crash between the two leaves the file and an event that
// says it was due, never a removal nobody recorded.
// 0 for a setting: keep forever (the default).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "auditlog/emitter.hpp"
#include "common/result.hpp"

namespace vigil::auditlog {

struct Retention {
  int64_t audit_ns = 0;       // 0: keep the audit log forever
  int64_t recordings_ns = 0;  // 0: keep recordings forever
};

struct RetentionReport {
  size_t day_files_removed = 0;
  size_t recordings_removed = 0;
  uint64_t bytes_removed = 0;
};

Result<RetentionReport> apply_retention(const std::string& data_dir, const Retention& policy,
                                        int64_t now_ns, Emitter& log,
                                        std::string_view server_id = "");

// Applies the policy at once and then every `every` on a thread of its own
// until destroyed; what it removes and any failure go to stderr (log.hpp).
// Nothing runs when both settings are 0.
class RetentionRunner {
 public:
  RetentionRunner(std::string data_dir, Retention policy, Emitter& log, std::string server_id,
                  std::chrono::seconds every = std::chrono::hours(1));
  ~RetentionRunner();
  RetentionRunner(const RetentionRunner&) = delete;
  RetentionRunner& operator=(const RetentionRunner&) = delete;

 private:
  void run();
  const std::string data_dir_;
  const Retention policy_;
  Emitter& log_;
  const std::string server_id_;
  const std::chrono::seconds every_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace vigil::auditlog
