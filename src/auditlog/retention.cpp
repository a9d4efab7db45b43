#include "auditlog/retention.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "audit/json.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "audit/uuid.hpp"
#include "auditlog/layout.hpp"
#include "recording/file_store.hpp"
#include "recording/store.hpp"

namespace vigil::auditlog {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kNsPerHour = 3'600'000'000'000;

Result<void> announce(Emitter& log, std::string_view what, const std::string& path,
                      uint64_t bytes, int64_t retention_ns, int64_t now_ns,
                      std::string_view server_id) {
  std::string line;
  audit::JsonObject o(line);
  o.uint64("bytes", bytes);
  o.string("event", "audit.retention");
  o.string("path", path);
  o.string("removed", what);
  o.int64("retention_hours", retention_ns / kNsPerHour);
  if (!server_id.empty()) o.string("server_id", server_id);
  o.time("time", now_ns);
  o.string("uid", audit::new_uuid());
  o.end();
  return log.emit(line, Durability::sync);
}

uint64_t size_of(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// The file events.log points at ("<server>/<day file>"), if any.
std::string current_target(const std::string& dir) {
  std::error_code ec;
  fs::path target = fs::read_symlink(fs::path(dir) / kCurrentLink, ec);
  return ec ? std::string() : (fs::path(dir) / target).lexically_normal().string();
}

}  // namespace

Result<RetentionReport> apply_retention(const std::string& data_dir, const Retention& policy,
                                        int64_t now_ns, Emitter& log, std::string_view server_id) {
  RetentionReport report;
  const std::string dir = log_dir(data_dir);
  if (policy.audit_ns > 0 && fs::is_directory(dir)) {
    const int64_t today = day_of(now_ns);
    const std::string current = current_target(dir);
    std::vector<std::string> due;
    std::error_code ec;
    for (const auto& server : fs::directory_iterator(dir, ec)) {
      if (!server.is_directory() || server.is_symlink()) continue;
      if (server.path().filename() == "records") continue;
      std::error_code ec2;
      for (const auto& file : fs::directory_iterator(server.path(), ec2)) {
        if (!file.is_regular_file() || file.is_symlink()) continue;
        auto day = parse_day_file_name(file.path().filename().string());
        if (!day || *day >= today) continue;
        // The day ends at (day + 1) * kNsPerDay; it is due once that is
        // retention old.
        if ((*day + 1) * kNsPerDay + policy.audit_ns > now_ns) continue;
        std::string path = file.path().lexically_normal().string();
        if (path == current) continue;
        due.push_back(path);
      }
      if (ec2) return Error::sys("retention: cannot list " + server.path().string(), ec2.value());
    }
    if (ec) return Error::sys("retention: cannot list " + dir, ec.value());
    for (const auto& path : due) {
      uint64_t bytes = size_of(path);
      if (auto r = announce(log, "audit_log_day", path, bytes, policy.audit_ns, now_ns, server_id);
          !r)
        return r.error();
      if (unlink(path.c_str()) != 0 && errno != ENOENT)
        return Error::sys("retention: cannot remove " + path);
      ++report.day_files_removed;
      report.bytes_removed += bytes;
    }
  }
  if (policy.recordings_ns > 0 && fs::is_directory(recording::records_dir(data_dir))) {
    recording::FileRecordingStore store(data_dir);
    auto all = store.list();
    if (!all) return all.error();
    for (const auto& info : *all) {
      if (info.status == recording::Status::in_progress) continue;
      if (info.updated_ns == 0 || info.updated_ns + policy.recordings_ns > now_ns) continue;
      std::string path = recording::recording_path(data_dir, info.sid);
      if (auto r = announce(log, "recording", path, info.bytes, policy.recordings_ns, now_ns,
                            server_id);
          !r)
        return r.error();
      if (unlink(path.c_str()) != 0 && errno != ENOENT)
        return Error::sys("retention: cannot remove " + path);
      (void)unlink(recording::status_path(path).c_str());
      ++report.recordings_removed;
      report.bytes_removed += info.bytes;
    }
  }
  return report;
}

RetentionRunner::RetentionRunner(std::string data_dir, Retention policy, Emitter& log,
                                 std::string server_id, std::chrono::seconds every)
    : data_dir_(std::move(data_dir)),
      policy_(policy),
      log_(log),
      server_id_(std::move(server_id)),
      every_(every) {
  if (policy_.audit_ns > 0 || policy_.recordings_ns > 0) thread_ = std::thread([this] { run(); });
}

RetentionRunner::~RetentionRunner() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RetentionRunner::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    auto report = apply_retention(data_dir_, policy_, clock::realtime_ns(), log_, server_id_);
    if (!report)
      log::error("retention: " + report.error().message + " (tried again in an hour)");
    else if (report->day_files_removed || report->recordings_removed)
      log::warn("retention: removed " + std::to_string(report->day_files_removed) +
                " day files of the audit log and " + std::to_string(report->recordings_removed) +
                " recordings (" + std::to_string(report->bytes_removed) + " bytes)");
    lock.lock();
    cv_.wait_for(lock, every_, [this] { return stop_; });
  }
}

}  // namespace vigil::auditlog
