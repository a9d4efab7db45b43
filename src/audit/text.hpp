// The text form of audit events: one line per event for people reading a
// session (vigilctl, logs). Times are UTC, so a line reads the same on every
// host. Recorded bytes are escaped (text_quote.hpp): a line never drives
// the reader's terminal.
//
//   16:42:20.540 user=alice login=ec2-user command pid=5007 curl: /bin/curl https://wttr.in → ok
//   16:42:20.541 user=alice login=ec2-user disk pid=5007 curl: /etc/hosts O_RDONLY|O_CLOEXEC → ok
//   16:42:20.550 user=alice login=ec2-user network pid=5007 curl: connect 172.31.34.128 → 5.9.243.187:443 v4
#pragma once

#include <string>

#include "audit/session.hpp"
#include "event/event.hpp"

namespace vigil::audit {

// Appends one line and '\n'.
void format_text(const Event& ev, const SessionMeta& meta, std::string& out);

// Appends one summary line and '\n': the events recorded and lost per kind
// ("off" for a kind the session did not record).
void format_session_end_text(const SessionEnd& end, const SessionMeta& meta, std::string& out);

// session.leftovers_end: "... session SID: its last leftover process exited: ...".
void format_leftovers_end_text(const LeftoversEnd& end, const SessionMeta& meta,
                               std::string& out);

}  // namespace vigil::audit
