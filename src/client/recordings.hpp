// The cluster's recordings as vsh reads them (GET /v1/recordings and
// GET /v1/recordings/:sid, docs/api.md): a page of the list, and a
// recording as a recording::RecordingSource that fetches its bytes in
// windows of at most 1 MiB when the reader asks for them, so a recording of
// any size is played with one window in memory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "recording/recording_store.hpp"

namespace vigil::client {

struct RecordingsPage {
  std::vector<nlohmann::ordered_json> rows;  // recording::listing_table's rows
  std::string next;                           // "" on the last page
};

// One page of the recordings the caller may see, newest first.
Result<RecordingsPage> list_recordings(api::Client& api, const std::string& after,
                                       size_t limit);

// The recording of session sid. Asks for its first window at once, so a
// refusal (not yours, not a uuid, unknown) is the error here. The caller
// keeps `api` alive as long as the source.
Result<std::unique_ptr<recording::RecordingSource>> open_remote_recording(api::Client& api,
                                                                          const std::string& sid);

}  // namespace vigil::client
