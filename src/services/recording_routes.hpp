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
//
// Bounds: a page lists at most kMaxListLimit recordings; a call for bytes
// answers at most kMaxReadBytes, read from the store into one buffer of
// that size, so a recording of any size is served in bounded chunks and
// never held whole. A recording still arriving from its node (staged in
// the RecordingInbox) is served as it is, with status in_progress.
// docs/api.md has the replies.
#pragma once

#include <cstddef>
#include <string>

#include "api/router.hpp"

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

void add_recording_routes(api::Router& router, authsvc::AuthService& service,
                          recording::RecordingStore& store, relay::RecordingInbox& inbox);

}  // namespace vigil::services
