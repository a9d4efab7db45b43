// What `vigil recordings` shows about one recording, read from the file.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.hpp"
#include "event/event.hpp"
#include "recording/format.hpp"
#include "recording/reader.hpp"
#include "recording/time_offset.hpp"

namespace vigil::recording {

struct Summary {
  std::string path;
  Header header;
  int64_t end_ns = 0;        // session.end's time, else the last record's (in progress, crashed)
  bool ended = false;        // the recording has its session.end event
  bool in_progress = false;  // its writer is live (the store's status)
  Status status = Status::unknown;  // the store's status when read
  bool enhanced = false;     // session.end's enhanced_recording, else: any BPF event seen
  KindCounts events;         // session.end's recorded_events, else counted in the file
  uint64_t output_bytes = 0;
  Damage damage;  // where reading stopped early, if it did

  int64_t duration_ns() const { return offset_ns(end_ns, header.start_ns); }
};

// Reads the whole recording; fails only when it cannot be opened as one.
Result<Summary> summarize(const std::string& path);
Result<Summary> summarize(RecordingStore& store, const std::string& sid);
Summary summarize(RecordingReader& reader);

}  // namespace vigil::recording
