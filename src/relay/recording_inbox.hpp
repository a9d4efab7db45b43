// The auth service's side of recording uploads: a node's chunks, each
// with its offset, into the cluster's RecordingStore.
//
// While a session runs, its chunks are kept in a staging area,
// <staging_dir>/<sid>/ (0700):
//   owner     the server_id that sent the first chunk: only it may send more
//   data      the bytes so far, a prefix of the node's recording (fdatasync'ed per chunk)
//   complete  "<bytes>\n" once the final chunk moved the recording into the store
// The final chunk moves `data` into the RecordingStore (create, append,
// finish: status complete) and removes it. RecordingStore has no call to
// reopen a recording for appending, so a recording enters the store whole;
// until then it is in the staging area, durable, and a restart of either
// side resumes from state().bytes.
//
// A chunk (put) is idempotent: bytes already held are compared, not written
// again, so the same chunk twice changes nothing. Refused: a chunk starting
// beyond the bytes held (failed_precondition, "send from offset N"), one
// whose overlap with the bytes held differs (already_exists), one of a
// recording another node started (permission_denied), one of a sid the
// store has from elsewhere (already_exists), one longer than
// kMaxChunkBytes or growing the recording past max_recording_bytes
// (invalid_argument / resource_exhausted).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "recording/recording_store.hpp"
#include "relay/inbox.hpp"
#include "relay/wire.hpp"

namespace vigil::relay {

struct RecordingInboxOptions {
  std::string staging_dir;  // <auth data_dir>/relay/recordings, created 0700
  uint64_t max_recording_bytes = 16ull << 30;
};

class RecordingInbox {
 public:
  static Result<std::unique_ptr<RecordingInbox>> open(recording::RecordingStore& store,
                                                      RecordingInboxOptions options);

  // What the auth service holds of the caller's recording (0 bytes when none).
  Result<RecordingState> state(const Caller& caller, const std::string& sid);
  // Takes a chunk; answers what is held afterwards.
  Result<RecordingState> put(const Caller& caller, const ChunkMeta& chunk, std::string_view bytes);

  // For readers (GET /v1/recordings): the sessions whose recording is still
  // arriving (staged, not yet in the store), and one of them as a source
  // with status in_progress over the bytes held when it is opened (what
  // has arrived; it may end inside a chunk, which a RecordingReader takes
  // as the end of a recording in progress). not_found when sid is not
  // staged (never sent, or moved into the store meanwhile: look there).
  Result<std::vector<std::string>> in_progress();
  Result<std::unique_ptr<recording::RecordingSource>> open_in_progress(const std::string& sid);

 private:
  RecordingInbox(recording::RecordingStore& store, RecordingInboxOptions options)
      : store_(store), opt_(std::move(options)) {}
  Result<std::string> owner_of(const std::string& sid);  // "" when no chunk came yet
  Result<RecordingState> held(const std::string& sid);
  Result<void> move_into_store(const std::string& sid, uint64_t size);

  recording::RecordingStore& store_;
  RecordingInboxOptions opt_;
  std::mutex mu_;
};

}  // namespace vigil::relay
