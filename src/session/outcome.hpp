// How an engine session ended, as the audit events say it: shared by every
// way a session runs (`vigil record`, an SSH channel).
#pragma once

#include <cstdint>

#include "audit/session.hpp"
#include "engine/engine.hpp"

namespace vigil::session {

// session.end's counts and what became of the processes left behind.
inline void add_summary(const SessionSummary& summary, audit::SessionEnd& end) {
  end.recorded = summary.recorded;
  end.lost = summary.lost;
  end.leftover_processes = summary.leftover_processes;
  end.leftovers_killed = summary.leftovers == SessionSummary::Leftovers::killed;
}

// session.leftovers_end, from the summary on_finished gets.
inline audit::LeftoversEnd leftovers_end(const SessionSummary& summary, int64_t time_ns) {
  audit::LeftoversEnd end;
  end.time_ns = time_ns;
  end.processes = summary.leftover_processes;
  end.killed = summary.leftovers == SessionSummary::Leftovers::killed;
  end.recorded = summary.recorded;
  end.lost = summary.lost;
  return end;
}

}  // namespace vigil::session
