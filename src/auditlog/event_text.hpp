// The text form of logged audit events, read back from their JSON: one line
// per event for people (`vigil events --format text`). The engine-side text
// form (audit/text.hpp) works on Event structs; this one works on any event
// in the log, including types it does not know.
//
//   2023-07-04T16:42:20.540Z user=alice login=ec2-user session.command pid=5007 curl:
//     /bin/curl https://wttr.in → ok
//   ... session.disk pid=5007 curl: /etc/hosts O_RDONLY|O_CLOEXEC → ok
//   ... session.network pid=5007 curl: connect 172.31.34.128 → 5.9.243.187:443 v4
//   ... session.end sid=86aca627-...: 41.5s, recorded command=3 disk=off network=1,
//     lost command=0 disk=off network=0
//   2023-07-04T16:44:00.000Z user=bob auth.failure error='bad key' remote_addr=10.0.0.9
// (each on one line; "..." is the time, user and login).
//
// Recorded bytes are shown exactly (from "path_base64"/"argv_base64" when
// present) and escaped as audit/text_quote.hpp does: a line never drives
// the reader's terminal. Field values (user, login, program, ...) follow
// audit::append_value: one that could read as more fields is quoted.
#pragma once

#include <string>
#include <string_view>

namespace vigil::auditlog {

// Appends one line and '\n'. Returns false, appending nothing, when
// json_line is not a JSON object, or nests deeper than audit::kMaxJsonDepth.
bool append_event_text(std::string_view json_line, std::string& out);

}  // namespace vigil::auditlog
