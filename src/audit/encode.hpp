// Audit events as JSON lines in the shape of Teleport's enhanced session
// recording: session.command (T4000I), session.disk (T4001I),
// session.network (T4002I), session.start (T2000I), session.end (T2004I),
// exec (T3002I), auth (T3007W/T3007I) and session.rejected (T1006W).
// Keys are in alphabetical order, as in Teleport's log. Each call appends
// one object and '\n' to `out`; reuse the buffer to avoid allocations.
//
// Paths and argv are raw bytes: when one is not valid UTF-8 its string has
// U+FFFD for each invalid byte, and "path_base64" / "argv_base64" (standard
// base64, one string per argument) keep the exact bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "audit/session.hpp"
#include "event/event.hpp"

namespace vigil::audit {

// ei: the event's index within its session; uid: the event's own id (see
// uuid.hpp), passed in so callers and tests choose it.
void encode_event(const Event& ev, const SessionMeta& meta, uint64_t ei, std::string_view uid,
                  std::string& out);

void encode_session_start(const SessionStart& start, const SessionMeta& meta, uint64_t ei,
                          std::string_view uid, std::string& out);

void encode_session_end(const SessionEnd& end, const SessionMeta& meta, uint64_t ei,
                        std::string_view uid, std::string& out);

// `session.leftovers_end` (V2005I, Vigil's own): after session.end, when
// the processes the session left running are gone.
void encode_leftovers_end(const LeftoversEnd& end, const SessionMeta& meta, uint64_t ei,
                          std::string_view uid, std::string& out);

// `exec` (T3002I): an SSH exec request's command and how it ended.
void encode_exec(const ExecEnd& exec, const SessionMeta& meta, uint64_t ei, std::string_view uid,
                 std::string& out);

// `auth` (T3007W on failure, T3007I on success): a login attempt. Only the
// node's fields of `meta` are used (cluster_name, server_hostname, server_id).
// A login adds ca_fingerprint, cert_serial and key_id; a summary of several
// refusals (count > 0) adds count and first_time.
void encode_auth(const AuthAttempt& attempt, const SessionMeta& meta, std::string_view uid,
                 std::string& out);

// `session.rejected` (T1006W): a request refused after login, with what was
// asked (`request`), why (`reason`, `error`) and the cap where one applies
// (`max`). Node fields of `meta` only, as encode_auth.
void encode_session_rejected(const SessionRejection& rejection, const SessionMeta& meta,
                             std::string_view uid, std::string& out);

}  // namespace vigil::audit
