// vigil play: shows a session's recording: replayed on the terminal, or as
// its audit events, an asciicast, or plain text with the commands marked.
// The showing itself is the player library's (src/player/), which vsh play
// uses too.
#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "player/player.hpp"
#include "recording/file_store.hpp"
#include "recording/reader.hpp"
#include "recording/store.hpp"

namespace vigil::cmd {
namespace {

struct PlayArgs {
  DataDirOptions data;
  std::string recording;  // SID, SID prefix or file
  player::PlayOptions options;
};

int play(const PlayArgs& args) {
  auto cfg = args.data.resolve();
  if (!cfg) {
    std::fprintf(stderr, "vigil play: %s\n", cfg.error().message.c_str());
    return kVigilFailed;
  }
  // A file named by its path is read where it is; a session id is looked
  // up in the node's recording store.
  recording::FileRecordingStore store(cfg->data_dir);
  Result<recording::RecordingReader> reader = Error{};
  if (recording::is_file_name(args.recording)) {
    reader = recording::RecordingReader::open(args.recording);
  } else {
    auto sid = store.resolve(args.recording);
    if (!sid) {
      std::fprintf(stderr, "vigil play: %s\n", sid.error().message.c_str());
      return player::kUnreadable;
    }
    reader = recording::RecordingReader::open(store, *sid);
  }
  const std::string path = reader ? reader->path() : args.recording;
  if (!reader) {
    std::fprintf(stderr, "vigil play: %s\n", reader.error().message.c_str());
    return player::kUnreadable;
  }

  return player::play(*reader, path, args.options);
}

}  // namespace

Subcommand add_play(CLI::App& app) {
  auto args = std::make_shared<PlayArgs>();
  auto* sub = app.add_subcommand("play", "show a session's recording");
  sub->add_option(
         "recording", args->recording,
         "session id (or a unique prefix of one) in <data_dir>/log/records, or a .vrec file")
      ->required();
  sub->add_option("--speed", args->options.speed,
                  "replay speed factor (terminal format), 0.01 to 1000")
      ->check(CLI::Validator([](std::string& text) { return player::check_speed(text); },
                             "FACTOR", "speed"));
  sub->add_flag("--skip-idle", args->options.skip_idle, "shorten pauses to 1 s (terminal format)");
  sub->add_option("--format", args->options.format,
                  "terminal: replay (keys: space pauses, q quits; plain bytes when stdout is not "
                  "a terminal); json: the audit events; asciicast: asciicast v2 for asciinema; "
                  "text: the output as text with the commands marked")
      ->check(CLI::IsMember({"terminal", "json", "asciicast", "text"}));
  args->data.add_to(sub);
  return {sub, [args] { return play(*args); }};
}

}  // namespace vigil::cmd
