// The cluster's session recordings, read back (issue 10 §4): the routes
// `vsh recordings ls` and `vsh play` call, on the auth service's port and
// the proxy's web port (one router in one process).
//
//   GET /v1/recordings[?user=U&limit=N&after=KEY]   the list, newest first
//   GET /v1/recordings/:sid[?offset=N&length=M]     the recording's bytes
//
// Who sees what: an admin, or a user whose roles allow `session` list (for
// the list) or read (for the bytes), like the built-in auditor: every
// recording; any other user: only the recordings of sessions they were
// the user of (the recording header's user, which the node wrote from the
// certificate's key id). Nodes, proxies and anonymous callers read
// nothing. Every refusal is audited as access.denied (AuthService::refuse).
// Every playback is audited as session.recording.access (Teleport's event,
// code T2012I: the reader's user, the sid, the reader's address): written
// durably before the bytes go out (a recording whose reading cannot be
// recorded is not served), once per reader, session and address per
// kPlaybackAuditWindow (PlaybackAudit): a player fetches a recording in
// 1 MiB windows, and one event per window would bury the log.
//
// Bounds: a page lists at most kMaxListLimit recordings; a call for bytes
// answers at most kMaxReadBytes, read from the store into one buffer of
// that size, so a recording of any size is served in bounded chunks and
// never held whole. A recording still arriving from its node (staged in
// the RecordingInbox) is served as it is, with status in_progress.
// docs/api.md has the replies.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "api/router.hpp"
#include "common/result.hpp"

namespace vigil::auditlog {
class Emitter;
}
namespace vigil::authsvc {
class AuthService;
}
namespace vigil::cluster {
class ClusterStore;
}
namespace vigil::recording {
class RecordingStore;
}
namespace vigil::relay {
class RecordingInbox;
}

namespace vigil::services {

inline constexpr size_t kDefaultListLimit = 50;
inline constexpr size_t kMaxListLimit = 200;
inline constexpr size_t kMaxReadBytes = 1u << 20;
// The reply headers of GET /v1/recordings/:sid.
inline constexpr const char* kRecordingBytesHeader = "X-Vigil-Recording-Bytes";
inline constexpr const char* kRecordingStatusHeader = "X-Vigil-Recording-Status";

// A session id as the API takes it: a lowercase UUID
// ("9b825e22-744d-4130-94c5-dea49198ae3d"), nothing else.
bool is_session_uuid(const std::string& sid);

// How long one session.recording.access stands for further reads of the
// same recording by the same user from the same address.
inline constexpr std::chrono::minutes kPlaybackAuditWindow{5};
// Readers remembered at most; beyond, the oldest are forgotten first (an
// extra event, never a missing one).
inline constexpr size_t kPlaybackAuditMemory = 4096;

// Writes session.recording.access for the reads of recordings. Why once
// per window and not on the first window (offset 0) of a read: a reader
// may start anywhere (offset=N), and a read that skips offset 0 must not
// go unrecorded; with the window, every successful read has an event of
// the same user, sid and address at most kPlaybackAuditWindow older.
// Thread-safe (the API's workers call it).
class PlaybackAudit {
 public:
  using Clock = std::function<int64_t()>;  // nanoseconds
  PlaybackAudit(auditlog::Emitter& audit, std::string cluster_name, Clock realtime_ns,
                Clock monotonic_ns);
  // Before the bytes go out. unavailable when the event could not be
  // written durably (the read is then refused: nothing is served that the
  // log does not show).
  Result<void> played(const std::string& user, const std::string& sid,
                      const std::string& remote_addr);
  // Events written so far (for tests and the log).
  uint64_t written() const { return written_.load(); }

 private:
  auditlog::Emitter& audit_;
  std::string cluster_;
  Clock realtime_ns_, monotonic_ns_;
  std::mutex mu_;
  std::map<std::string, int64_t> last_;  // user \0 sid \0 address ip -> when (monotonic)
  std::atomic<uint64_t> written_{0};
};

void add_recording_routes(api::Router& router, authsvc::AuthService& service,
                          recording::RecordingStore& store, relay::RecordingInbox& inbox,
                          PlaybackAudit& playback_audit);

}  // namespace vigil::services
