#include "session/recorded_session.hpp"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>

#include "audit/uuid.hpp"
#include "auditlog/session_log.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "recording/writer.hpp"
#include "session/outcome.hpp"

namespace vigil::session {

// What the engine's callbacks share with the session: its processes may
// outlive the adapter (leftovers), and their events and end still go here.
struct RecordedSession::Shared {
  Shared(audit::SessionMeta meta, auditlog::Emitter& emitter, Hooks h,
         std::unique_ptr<recording::RecordingWriter> rec)
      : hooks(std::move(h)),
        recording(std::move(rec)),
        log(std::move(meta), emitter, [this](int64_t time_ns, std::string_view line) {
          recording->event(time_ns, line);
          if (hooks.line) hooks.line(time_ns, line);
        }) {}

  void event(const Event& ev) {
    if (hooks.event) hooks.event(ev, log.meta());
    log.event(ev);
  }
  void end(const audit::SessionEnd& end) {
    log.end(end);
    if (hooks.ended) hooks.ended(end, log.meta());
  }
  void close_recording() {
    auto r = recording->close();
    if (!r) log::error("session " + log.meta().sid + ": the recording: " + r.error().message);
    std::lock_guard lock(mu);
    closed = r;
    recording_done = true;
    cv.notify_all();
  }
  // The engine's on_finished: the last leftover exited, or they were killed.
  void leftovers_finished(const SessionSummary& summary) {
    audit::LeftoversEnd end = leftovers_end(summary, clock::realtime_ns());
    log.leftovers_end(end);
    if (hooks.leftovers_ended) hooks.leftovers_ended(end, log.meta());
    close_recording();
  }

  const Hooks hooks;
  const std::unique_ptr<recording::RecordingWriter> recording;
  auditlog::SessionLog log;  // after the members its copy callback uses

  mutable std::mutex mu;
  std::condition_variable cv;
  bool recording_done = false;  // closed: the session's last record is written
  Result<void> closed = Error{"the recording is still open"};
};

int exit_code(int wait_status) {
  return WIFSIGNALED(wait_status) ? 128 + WTERMSIG(wait_status) : WEXITSTATUS(wait_status);
}

Result<std::unique_ptr<RecordedSession>> RecordedSession::open(auditlog::Emitter& log,
                                                               Options options) {
  std::unique_ptr<RecordedSession> s(new RecordedSession());
  audit::SessionMeta& meta = options.meta;
  meta.sid = audit::new_uuid();
  s->engine_ = options.engine;
  s->kinds_ = options.kinds;
  s->exec_command_ = std::move(options.exec_command);
  s->pty_ = std::move(options.pty);
  s->interactive_ = s->pty_.has_value();
  s->start_ns_ = clock::realtime_ns();

  recording::Header header;
  header.sid = meta.sid;
  header.server_id = meta.server_id;
  header.user = meta.user;
  header.login = meta.login;
  header.start_ns = s->start_ns_;
  header.cols = options.size.cols;
  header.rows = options.size.rows;
  header.interactive = s->interactive_;
  auto rec = options.recordings
                 ? recording::RecordingWriter::create(*options.recordings, header)
                 : recording::RecordingWriter::create_in(options.data_dir, header);
  if (!rec) return rec.error();
  s->shared_ = std::make_shared<Shared>(meta, log, std::move(options.hooks), std::move(rec.value()));
  Shared& shared = *s->shared_;

  // A session that could not be recovered after a crash is not started.
  if (auto r = shared.log.keep_journal(auditlog::journal_dir(options.data_dir), s->interactive_,
                                       s->kinds_);
      !r) {
    // Never started: the recording says interrupted, not complete.
    shared.recording->abandon();
    shared.close_recording();
    s->finished_ = true;
    return r.error();
  }
  s->seal_ = s->engine_ ? seal::for_session(s->engine_->options().seal) : nullptr;
  shared.log.start(s->start_ns_, std::move(options.command), seal::refused(s->seal_));
  if (!s->engine_) return s;

  // The engine session exists before the process does: nothing it runs
  // escapes the recording.
  std::shared_ptr<Shared> keep = s->shared_;
  std::function<void()> batch;
  if (shared.hooks.batch) batch = [keep] { keep->hooks.batch(); };
  auto session = s->engine_->open_session(
      {meta.sid, s->kinds_}, [keep](const Event& ev) { keep->event(ev); }, std::move(batch));
  if (!session) {
    Error e = session.error();
    e.message = "cannot open a recorded session: " + e.message;
    s->error_ = e.message;
    (void)s->finish(s->status_);
    return e;
  }
  s->engine_session_ = std::move(session.value());
  return s;
}

RecordedSession::~RecordedSession() {
  if (finished_ || !shared_) return;
  kill_all();
  (void)finish(wait());
}

const audit::SessionMeta& RecordedSession::meta() const { return shared_->log.meta(); }

Result<pid_t> RecordedSession::launch(LaunchSpec spec) {
  if (launched_ || finished_)
    return Error::of(Errc::failed_precondition, "the session's first process was started already");
  launched_ = true;
  spec.seal = seal_;
  if (pty_) {
    const term::Pty* pty = &*pty_;
    spec.child_setup = [setup = std::move(spec.child_setup), pty] {
      if (setup) setup();
      pty->attach_child();
    };
  }
  auto launched = engine_session_ ? vigil::launch(*engine_session_, spec) : launch_unrecorded(spec);
  if (pty_) pty_->close_slave();  // only the child holds it now
  if (!launched) {
    error_ = launched.error().message;
    status_ = (launched.error().err == ENOENT ? 127 : 126) << 8;
    return launched.error();
  }
  pid_ = launched->pid;
  return pid_;
}

int RecordedSession::wait() {
  if (pid_ <= 0 || reaped_) return status_;
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r == pid_) status_ = status;
  reaped_ = true;
  return status_;
}

void RecordedSession::signal(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

void RecordedSession::kill_all() {
  if (finished_) return;
  if (engine_session_) {
    int fd = ::open((engine_session_->cgroup_dir() + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)!write(fd, "1", 1);
      close(fd);
    }
    return;
  }
  // Unreaped, its pid (and group id) cannot have been reused.
  if (pid_ > 0 && !reaped_) kill(getpgid(pid_) == pid_ ? -pid_ : pid_, SIGKILL);
}

void RecordedSession::output(std::string_view bytes) {
  if (interactive_) shared_->recording->output(clock::realtime_ns(), bytes);
}

Result<void> RecordedSession::resize(term::WindowSize size) {
  if (!pty_) return Error::of(Errc::failed_precondition, "the session has no terminal to resize");
  auto r = pty_->resize(size);
  resized(size);
  return r;
}

void RecordedSession::resized(term::WindowSize size) {
  shared_->recording->resize(clock::realtime_ns(), size.cols, size.rows);
}

Result<Ending> RecordedSession::finish(int wait_status) {
  if (finished_) return Error::of(Errc::failed_precondition, "the session has finished already");
  finished_ = true;
  reaped_ = true;
  Ending ending;
  std::optional<Error> failed;
  audit::SessionEnd end;
  if (engine_session_) {
    // Processes it left running stay recorded under this session after the
    // adapter is gone; their end is written when the last one exits.
    auto summary = engine_->end_session(
        *engine_session_, [keep = shared_](const SessionSummary& s) { keep->leftovers_finished(s); });
    if (summary) {
      add_summary(*summary, end);
      ending.leftovers = summary->leftovers;
      ending.leftover_processes = summary->leftover_processes;
    } else {
      failed = summary.error();
      failed->message = "ending the session: " + failed->message;
    }
  }
  if (exec_command_ && launched_)
    shared_->log.exec({clock::realtime_ns(), *exec_command_, exit_code(wait_status)});
  end.time_ns = end.stop_ns = clock::realtime_ns();
  end.start_ns = start_ns_;
  end.interactive = interactive_;
  end.enhanced_recording = engine_ != nullptr;
  end.participants = {meta().user};
  if (engine_) end.kinds = kinds_;
  end.error = error_;
  shared_->end(end);
  if (ending.leftovers != SessionSummary::Leftovers::running) shared_->close_recording();
  if (failed) return *failed;
  return ending;
}

bool RecordedSession::wait_leftovers(std::chrono::milliseconds timeout) {
  std::unique_lock lock(shared_->mu);
  return shared_->cv.wait_for(lock, timeout, [&] { return shared_->recording_done; });
}

void RecordedSession::kill_leftovers() {
  if (engine_ && engine_session_) (void)engine_->close_session(*engine_session_);
}

Result<void> RecordedSession::recording_closed() const {
  std::lock_guard lock(shared_->mu);
  return shared_->closed;
}

std::string RecordedSession::log_error() const { return shared_->log.error(); }

}  // namespace vigil::session
