// One recorded session, however it is reached (`vigil record`, an SSH
// channel): the adapters speak their protocol, this runs the session.
//
//   auto s = RecordedSession::open(log, options);  // recording, journal, session.start, engine session
//   s->launch(spec);                               // the first process, inside the session
//   s->output(bytes); s->resize(size); s->signal(SIGINT);   // while it runs
//   s->finish(s->wait());                          // session.end (and later session.leftovers_end)
//
// What it promises:
// - Exactly one session.end per session that opened, whatever happened: a
//   launch that failed (its error in `error`), an engine that could not
//   open its session, an adapter that never called finish() (the
//   destructor kills what runs and finishes).
// - Without an engine (enhanced_recording off) the session keeps its
//   terminal recording and its audit events; session.end says
//   `enhanced_recording: false` and no kinds, and no BPF event is written.
// - Processes the first one leaves running stay recorded after finish() (or
//   are killed, by the engine's policy); session.leftovers_end is written,
//   once, when the last one exits, even after this object is gone.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/session.hpp"
#include "auditlog/emitter.hpp"
#include "common/result.hpp"
#include "engine/engine.hpp"
#include "engine/launch.hpp"
#include "recording/recording_store.hpp"
#include "term/pty.hpp"

namespace vigil::session {

// What an adapter adds to the session's outputs (vigil record's -o file).
// `event`, `line` and `leftovers_ended` run on the engine's threads too.
struct Hooks {
  using Meta = audit::SessionMeta;
  // An engine event, before it is logged.
  std::function<void(const Event&, const Meta&)> event;
  // Each audit JSON line of the session, after the log and the recording got it.
  std::function<void(int64_t time_ns, std::string_view line)> line;
  std::function<void(const audit::SessionEnd&, const Meta&)> ended;  // after session.end is logged
  std::function<void(const audit::LeftoversEnd&, const Meta&)> leftovers_ended;  // likewise
  std::function<void()> batch;  // after each pass of the engine that delivered events
};

struct Options {
  // cluster_name, server_hostname, server_id, login, user, remote_addr;
  // `sid` is made by open().
  audit::SessionMeta meta;
  std::string data_dir;      // journal in <data_dir>/sessions
  // Where the recording goes; null: the file back end in <data_dir>.
  recording::RecordingStore* recordings = nullptr;
  Engine* engine = nullptr;  // null: enhanced recording off (terminal recording and audit events only)
  KindSet kinds;             // what the engine records
  std::vector<std::string> command;  // session.start's initial_command; empty for a shell
  // An SSH exec request's command: an `exec` event with its exit code is
  // written before session.end.
  std::optional<std::string> exec_command;
  term::WindowSize size;          // the terminal's size when the recording starts
  std::optional<term::Pty> pty;   // interactive: the first process gets it as its terminal
  Hooks hooks;
};

// What finish() learnt about the processes the first one left behind.
struct Ending {
  SessionSummary::Leftovers leftovers = SessionSummary::Leftovers::none;
  size_t leftover_processes = 0;
};

// A wait status as a shell reports it: the exit status, or 128 + the signal.
int exit_code(int wait_status);

class RecordedSession {
 public:
  // Creates the recording and the journal, writes session.start (synced)
  // and opens the engine session, in that order: nothing the session runs
  // escapes the recording. When the engine cannot open the session,
  // session.end is written (with the error) and the error returned.
  static Result<std::unique_ptr<RecordedSession>> open(auditlog::Emitter& log, Options options);
  // Not finished: kills what the session runs, waits for it, finishes.
  ~RecordedSession();
  RecordedSession(const RecordedSession&) = delete;
  RecordedSession& operator=(const RecordedSession&) = delete;

  const audit::SessionMeta& meta() const;
  bool interactive() const { return interactive_; }
  bool enhanced() const { return engine_session_ != nullptr; }
  term::Pty* pty() { return pty_ ? &*pty_ : nullptr; }
  pid_t pid() const { return pid_; }

  // Starts the session's first process (once: a second call is refused):
  // in the engine session and sealed as the engine says, or unrecorded
  // without an engine. A pty is attached after spec.child_setup ran. The
  // error is also kept for session.end.
  Result<pid_t> launch(LaunchSpec spec);
  // Waits for the first process (EINTR retried) and returns its wait
  // status; after a failed launch, a shell's: 127 not found, 126 otherwise.
  int wait();
  // A signal to the first process while it runs.
  void signal(int sig);
  // Ends everything the session runs now: its cgroup is killed; without an
  // engine, the first process's group.
  void kill_all();

  // Terminal output (recorded on a pty only) and size changes.
  void output(std::string_view bytes);
  Result<void> resize(term::WindowSize size);  // the pty and the recording
  void resized(term::WindowSize size);         // the recording (the pty already has it)
  // Closes the pty's master: whatever still holds the terminal gets SIGHUP.
  void close_pty() { pty_.reset(); }

  // The first process ended with `wait_status` (the caller reaped it): the
  // engine session is drained and ended, the `exec` event and session.end
  // written. Processes left running stay recorded (session.leftovers_end
  // and the recording's close follow when they end) or are killed, as the
  // engine's policy says. Once; session.end is written even when ending the
  // engine session failed (that error is returned).
  Result<Ending> finish(int wait_status);
  // After finish() left processes running: true once the last one ended
  // and session.leftovers_end is written; false after `timeout`.
  bool wait_leftovers(std::chrono::milliseconds timeout);
  // Kills the leftovers now; session.leftovers_end is written before this returns.
  void kill_leftovers();

  // The recording's close, once it happened (an error until then); the
  // audit log's first refusal, empty when it took every line.
  Result<void> recording_closed() const;
  std::string log_error() const;

 private:
  struct Shared;
  RecordedSession() = default;

  std::shared_ptr<Shared> shared_;  // with the engine's callbacks: outlives this object
  Engine* engine_ = nullptr;
  std::shared_ptr<Session> engine_session_;
  std::optional<term::Pty> pty_;
  bool interactive_ = false;
  const seal::Filter* seal_ = nullptr;
  std::optional<std::string> exec_command_;
  KindSet kinds_;
  int64_t start_ns_ = 0;
  bool launched_ = false;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 127 << 8;  // no process: as a shell's "not found"
  std::string error_;      // for session.end: why the session did not run
  bool finished_ = false;
};

}  // namespace vigil::session
