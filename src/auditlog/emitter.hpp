// The one way audit events leave a producer (a session, the SSH server's
// authentication, the cluster): an Emitter takes complete JSON lines and
// stores them. The file back end (file_log.hpp) is the embedded default;
// other back ends implement the same interface.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/result.hpp"

namespace vigil::auditlog {

enum class Durability {
  // Written in small groups within the back end's flush interval: the
  // default, for the bulk of session events.
  buffered,
  // Written and on stable storage before emit() returns, so that success is
  // an acknowledgement: session.end and security events (auth failures).
  sync,
};

class Emitter {
 public:
  virtual ~Emitter() = default;

  // json_line is one complete JSON object followed by '\n', as
  // vigil::audit::encode_* produce it; anything else is refused with an
  // error and stored nowhere. Success means accepted (buffered) or durable
  // (sync). An error from a sync emit means "not known to be durable":
  // never a false acknowledgement.
  virtual Result<void> emit(std::string_view json_line,
                            Durability durability = Durability::buffered) = 0;

  // Writes everything accepted so far and makes it durable.
  virtual Result<void> flush() = 0;
};

// The longest event line any back end stores, '\n' included: what search
// reads back (a longer line would be written and then never found). The
// encoders stay far below it (argv is cut at 64 KiB).
inline constexpr size_t kMaxEventBytes = 16u << 20;

// The framing an emitter requires of json_line: not empty, starting with
// '{', ending with "}\n", no other '\n', at most kMaxEventBytes. A cheap
// check of the framing only: the encoders are trusted with the JSON inside.
// Refusals are Errc::invalid_argument.
Result<void> check_event_line(std::string_view json_line);

}  // namespace vigil::auditlog
