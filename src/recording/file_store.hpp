// The file back end of the recording store, the embedded default: one
// <sid>.vrec a session under <data_dir>/log/records (store.hpp), and its
// status beside it in <sid>.vrec.status, a small JSON document replaced
// atomically (written under a temporary name, then renamed):
//
//   {"version":1,"status":"in_progress","boot_id":"...","pid":4242,"pid_start":123456}
//
// in_progress names its writer: this boot, a pid and the process's start
// time (from /proc/PID/stat, so a reused pid is not taken for the writer).
// A reader that finds the writer gone says interrupted: a writer killed
// with SIGKILL leaves no chance to write its status, and none is needed.
// A .vrec without a status file (copied from elsewhere, or written before
// status files existed) is unknown, read as not in progress.
#pragma once

#include <memory>
#include <string>

#include "recording/recording_store.hpp"

namespace vigil::recording {

// "<recording path>.status"
std::string status_path(const std::string& recording_path);

class FileRecordingStore final : public RecordingStore {
 public:
  explicit FileRecordingStore(std::string data_dir);

  // Creates <data_dir>/log/records when missing.
  Result<std::unique_ptr<RecordingSink>> create(const std::string& sid,
                                                std::string_view head) override;
  Result<std::unique_ptr<RecordingSource>> open(const std::string& sid) override;
  Result<RecordingInfo> info(const std::string& sid) override;
  Result<std::vector<RecordingInfo>> list() override;
  Result<void> mark_interrupted(const std::string& sid) override;
  std::string where() const override;

  // A recording named by its file, wherever it is (`vigil play FILE`, tests).
  static Result<std::unique_ptr<RecordingSink>> create_file(const std::string& path,
                                                            const std::string& sid,
                                                            std::string_view head);
  static Result<std::unique_ptr<RecordingSource>> open_file(const std::string& path,
                                                            const std::string& sid = {});
  static Result<RecordingInfo> info_file(const std::string& path, const std::string& sid = {});

 private:
  std::string data_dir_;
};

}  // namespace vigil::recording
