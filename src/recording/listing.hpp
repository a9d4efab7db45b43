// What a list of recordings shows (`vigil recordings`, `vsh recordings ls`,
// GET /v1/recordings): one JSON object per recording, made from its Summary,
// and the table people read, made from those objects. The table takes the
// objects (not Summaries) so that a client renders what a server sent with
// the same code: every field is read with a default, a value of the wrong
// type reads as its default, and every cell is quoted by the audit text
// rule, so a user name (or a hostile server) cannot shift the columns.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recording/summary.hpp"

namespace vigil::recording {

// {"sid","server_id","user","login","start","duration_ms","interactive",
//  "enhanced","events":{command,disk,network},"output_bytes","status"
//  (ended | in progress | interrupted | damaged),"damage"?:{kind,offset,reason}}
// appended to `out` in that order (keys already there stay first).
void append_listing_fields(nlohmann::ordered_json& out, const Summary& s);

// The table: a header line, then one line per object (objects with an
// "error" field, or that are not objects, are left out). Columns: START
// (UTC), DURATION, SID, USER, LOGIN, TYPE, ENHANCED, EVENTS, STATUS.
std::string listing_table(const std::vector<nlohmann::ordered_json>& rows);

}  // namespace vigil::recording
