// The node's side of recording uploads: each session's recording stays in
// the node's local RecordingStore and is sent to the auth service in chunks
// (PUT /v1/recordings/:sid?offset=N, wire.hpp) while the session runs and
// at its end, the last chunk marked final once the local recording is no
// longer in progress (complete, or interrupted: its writer is gone).
//
// Resuming: the first time a process sends a recording it asks the auth
// service what it holds (state) and continues from there, so a restart of
// either side neither resends nor skips bytes. A chunk the auth service
// already holds is taken again without change (idempotent), so a lost
// answer is harmless.
//
// The node may drop its local copy once delivered() says so (RecordingStore
// has no removal call yet: that is for the integrator, with a retention
// policy).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.hpp"
#include "recording/recording_store.hpp"
#include "relay/wire.hpp"

namespace vigil::relay {

struct UploadFns {
  // What the auth service holds of sid (GET /v1/recordings/:sid/upload).
  std::function<Result<RecordingState>(const std::string& sid)> state;
  // One chunk (PUT /v1/recordings/:sid?offset=N&final=...); answers what is held afterwards.
  std::function<Result<RecordingState>(const std::string& sid, uint64_t offset,
                                       std::string_view bytes, bool final)>
      upload;
};

struct UploaderOptions {
  size_t chunk_bytes = 1u << 20;  // at most kMaxChunkBytes
};

struct UploaderStats {
  uint64_t chunks = 0;     // chunks the auth service took
  uint64_t bytes = 0;      // their bytes
  uint64_t completed = 0;  // recordings the auth service holds complete
  uint64_t failures = 0;
};

class RecordingUploader {
 public:
  RecordingUploader(recording::RecordingStore& local, UploadFns fns, UploaderOptions options = {});
  ~RecordingUploader();  // stops run_every's thread

  // Sends what the auth service lacks of sid; answers what it holds afterwards.
  Result<RecordingState> sync(const std::string& sid);
  // sync() of every local recording not yet delivered; the first error (the
  // others are still tried).
  Result<void> sync_all();
  // The auth service holds sid complete.
  bool delivered(const std::string& sid) const;
  // A thread that runs sync_all() every `interval` until destruction.
  void run_every(std::chrono::milliseconds interval);

  UploaderStats stats() const;

 private:
  recording::RecordingStore& local_;
  UploadFns fns_;
  UploaderOptions opt_;
  mutable std::mutex mu_;
  std::map<std::string, RecordingState> remote_;  // what the auth service holds, as last heard
  UploaderStats stats_;
  std::mutex sync_mu_;  // one sync at a time
  bool stop_ = false;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace vigil::relay
