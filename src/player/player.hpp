// Shows a recording read by a RecordingReader, wherever its bytes come from
// (a local store, a file, the auth service): replayed at its pace on a
// terminal, or exported to stdout as its audit events (json), an asciicast
// v2 file or text with the commands marked. Bounded as `vigil play` always
// was: output goes out in pieces of at most 64 KiB whatever a record's
// size, events with control bytes are re-encoded, at most 100 warnings.
#pragma once

#include <string>

#include "recording/reader.hpp"

namespace vigil::player {

// --speed bounds: beyond them a replay is a pause of hours or a flash, and
// a pause divided by the factor could leave the int64 range.
inline constexpr double kMinSpeed = 0.01;
inline constexpr double kMaxSpeed = 1000;
// Exit status for a recording that cannot be read, or only in part.
inline constexpr int kUnreadable = 1;

struct PlayOptions {
  double speed = 1.0;        // kMinSpeed..kMaxSpeed
  bool skip_idle = false;
  std::string format = "terminal";  // terminal | json | asciicast | text
  std::string program = "vigil play";  // how messages on stderr start
};

// "" when `text` is a speed factor in bounds, else the message to show.
std::string check_speed(const std::string& text);

// Plays the recording to stdout (SIGINT, SIGTERM, SIGHUP stop it; the
// terminal is restored). `name` is what messages call the recording.
// Returns the exit status: 0 (also after q or a closed reader of stdout),
// 128+N after signal N, kUnreadable when the recording is damaged. A
// recording still being written ends where its bytes end, and stderr says
// "session in progress, shown up to offset N".
int play(recording::RecordingReader& reader, const std::string& name, const PlayOptions& options);

}  // namespace vigil::player
