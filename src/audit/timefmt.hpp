// Timestamps of the audit log: RFC 3339 in UTC with microsecond digits, as
// "2023-07-04T16:42:20.540123Z". Digits below the microsecond are cut, never
// rounded up, so an event is never stamped later than it happened.
// Computed with integer calendar arithmetic: no gmtime_r, no locale, no
// time zone, cheap enough to run per event.
#pragma once

#include <cstdint>
#include <string>

namespace vigil::audit {

// ns counts from the Unix epoch; negative values are before 1970.
void append_time(std::string& out, int64_t ns);
std::string format_time(int64_t ns);

// "16:42:20.540": UTC time of day with milliseconds, for the text form.
void append_clock_millis(std::string& out, int64_t ns);

}  // namespace vigil::audit
