// vigil record: run one command in a new recorded session and write its
// events, ending with session.end, to a file or stderr (like strace).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <optional>

#include "common/clock.hpp"
#include "audit/host_id.hpp"
#include "audit/text.hpp"
#include "audit/uuid.hpp"
#include "auditlog/file_log.hpp"
#include "auditlog/session_log.hpp"
#include "commands.hpp"
#include "common/fd.hpp"
#include "engine/engine.hpp"
#include "engine/host.hpp"
#include "engine/launch.hpp"
#include "recording/writer.hpp"
#include "session/outcome.hpp"
#include "term/pty.hpp"
#include "term/relay.hpp"

namespace vigil::cmd {
namespace {

struct RecordArgs {
  DataDirOptions where;      // -c CONFIG, --data-dir DIR
  std::string events;        // "command,disk,network"; empty: config's defaults
  std::string output;        // empty: stderr
  std::string format = "json";
  std::string user;          // login to run as; empty: the caller
  bool tty = false;          // run on a new pseudo-terminal, recording what it shows
  std::vector<std::string> command;
};

std::atomic<pid_t> g_child{0};
std::atomic<bool> g_stop{false};  // a signal came while only leftovers ran

// SIGTERM and SIGHUP go to the recorded command; SIGINT and SIGQUIT from
// the terminal reach it directly (same process group), so vigil only
// survives them to write the session's end. Handlers, not SIG_IGN: exec
// resets handlers, so the command starts with default dispositions. Once
// the command is gone, any of them ends the wait for its leftovers (which
// are then killed: nothing runs on unrecorded).
void forward_signal(int sig) {
  pid_t child = g_child.load();
  if (child > 0 && (sig == SIGTERM || sig == SIGHUP)) kill(child, sig);
  if (child == 0) g_stop = true;
}

void install_signal_forwarding() {
  struct sigaction sa{};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGQUIT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}


int fail(const std::string& message) {
  std::fprintf(stderr, "vigil record: %s\n", message.c_str());
  return kVigilFailed;
}

// The -o file (or stderr): appended in blocks after each batch the engine
// delivers, so a reader following it sees events promptly without one write
// per event. What cannot be written is kept up to a bound and reported.
class OutputFile {
 public:
  OutputFile(Fd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}

  std::string& buffer() { return buf_; }
  void maybe_flush() {
    if (buf_.size() >= kFlushBytes) flush();
  }
  void flush() {
    size_t off = 0;
    while (off < buf_.size()) {
      ssize_t n = write(fd_.get(), buf_.data() + off, buf_.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (!failing_)
          std::fprintf(stderr, "vigil record: cannot write events to %s: %s (kept in memory)\n",
                       name_.c_str(), std::strerror(errno));
        failing_ = true;
        buf_.erase(0, off);
        if (buf_.size() > kMaxPending) {
          dropped_ += buf_.size();
          buf_.clear();
        }
        return;
      }
      off += n;
    }
    failing_ = false;
    buf_.clear();
  }
  const std::string& name() const { return name_; }
  bool failing() const { return failing_; }
  uint64_t dropped_bytes() const { return dropped_; }

 private:
  static constexpr size_t kFlushBytes = 1 << 16;
  static constexpr size_t kMaxPending = 64u << 20;
  Fd fd_;
  std::string name_;
  std::string buf_;
  bool failing_ = false;
  uint64_t dropped_ = 0;
};

// vigil record's outputs of a session: the audit log and the recording
// (through auditlog::SessionLog, which encodes each event once), and the -o
// file, as the same JSON lines or as text for people.
class SessionWriter {
 public:
  SessionWriter(audit::SessionMeta meta, auditlog::Emitter& log, OutputFile* out, bool text,
                recording::RecordingWriter* rec)
      : out_(out),
        text_(text),
        log_(std::move(meta), log, [this, rec](int64_t time_ns, std::string_view line) {
          if (rec) rec->event(time_ns, line);
          if (out_ && !text_) out_->buffer() += line;
          if (out_) out_->maybe_flush();
        }) {}

  Result<void> keep_journal(const std::string& dir, bool interactive, KindSet kinds) {
    return log_.keep_journal(dir, interactive, kinds);
  }
  void start(int64_t time_ns, const std::vector<std::string>& command,
             std::vector<std::string> sealed) {
    log_.start(time_ns, command, std::move(sealed));
  }
  void event(const Event& ev) {
    if (out_ && text_) audit::format_text(ev, log_.meta(), out_->buffer());
    log_.event(ev);
  }
  void end(const audit::SessionEnd& end) {
    if (out_ && text_) audit::format_session_end_text(end, log_.meta(), out_->buffer());
    log_.end(end);
    flush();
  }
  void leftovers_end(const audit::LeftoversEnd& end) {
    if (out_ && text_) audit::format_leftovers_end_text(end, log_.meta(), out_->buffer());
    log_.leftovers_end(end);
    flush();
  }
  void flush() {
    if (out_) out_->flush();
  }
  std::string log_error() const { return log_.error(); }

 private:
  OutputFile* out_;
  bool text_;
  auditlog::SessionLog log_;  // last: its copy callback uses the members above
};

std::vector<std::string> login_environment(const Credentials& c) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view v(*e);
    if (v.rfind("HOME=", 0) == 0 || v.rfind("USER=", 0) == 0 || v.rfind("LOGNAME=", 0) == 0 ||
        v.rfind("SHELL=", 0) == 0)
      continue;
    env.emplace_back(v);
  }
  env.push_back("HOME=" + c.home);
  env.push_back("USER=" + c.name);
  env.push_back("LOGNAME=" + c.name);
  env.push_back("SHELL=" + c.shell);
  return env;
}

std::string writer_name(const RecordArgs& args) {
  return args.output.empty() ? "stderr" : args.output;
}

int exit_status_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kVigilFailed;
}

}  // namespace

int record(const RecordArgs& args) {
  auto cfg = args.where.resolve();
  if (!cfg) return fail(cfg.error().message);
  KindSet kinds = cfg->ssh.default_kinds;
  if (!args.events.empty()) {
    std::string why;
    auto parsed = KindSet::parse(args.events, &why);
    if (!parsed) return fail("--events: " + why);
    kinds = *parsed;
  }
  if (args.command.empty()) return fail("no command given: vigil record [options] -- CMD ARGS...");
  if (!cfg->ssh.enhanced_recording.enabled)
    return fail(cfg->source + ": ssh_service.enhanced_recording.enabled is " +
                (cfg->ssh.enhanced_recording.enabled_given ? "false" : "not set (the guide's default is false)") +
                ": vigil record records with BPF; set it to true");

  if (auto r = host::require_bpf_privileges(); !r) return fail(r.error().message);

  auto creds = args.user.empty() ? current_credentials() : credentials_for(args.user);
  if (!creds) return fail("--user: " + creds.error().message + " (give a local login name)");

  // Events go to -o, else to stderr, except in a --tty session where
  // stderr is the session's screen: there they go to the recording only.
  std::optional<OutputFile> out;
  if (!args.output.empty() || !args.tty) {
    Fd fd(args.output.empty()
              ? fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)
              : open(args.output.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd)
      return fail("cannot open " + writer_name(args) + ": " + std::strerror(errno));
    out.emplace(std::move(fd), writer_name(args));
  }

  auto server_id = audit::load_or_create_host_uuid(cfg->data_dir);
  if (!server_id) return fail(server_id.error().message);

  auto engine = Engine::start(engine_options(cfg->ssh.enhanced_recording));
  if (!engine) return fail("cannot record: " + engine.error().message);

  audit::SessionMeta meta;
  meta.cluster_name = cfg->cluster_name;
  meta.server_hostname = cfg->nodename;
  meta.server_id = *server_id;
  meta.sid = audit::new_uuid();
  meta.login = creds->name;
  meta.user = creds->name;
  int64_t start_ns = clock::realtime_ns();
  std::optional<term::WindowSize> local_size = term::window_size(STDIN_FILENO);
  std::optional<term::Pty> pty;
  if (args.tty) {
    auto opened = term::Pty::open(local_size.value_or(term::WindowSize{}),
                                  args.user.empty() ? std::nullopt
                                                    : std::optional<uid_t>(creds->uid));
    if (!opened) return fail(opened.error().message);
    pty.emplace(std::move(opened.value()));
  }

  recording::Header header;
  header.sid = meta.sid;
  header.server_id = meta.server_id;
  header.user = meta.user;
  header.login = meta.login;
  header.start_ns = start_ns;
  header.cols = local_size.value_or(term::WindowSize{}).cols;
  header.rows = local_size.value_or(term::WindowSize{}).rows;
  header.interactive = args.tty;
  recording::FileRecordingStore recordings(cfg->data_dir);
  auto rec = recording::RecordingWriter::create(recordings, header);
  if (!rec) return fail(rec.error().message);

  auditlog::FileLogOptions log_options;
  log_options.data_dir = cfg->data_dir;
  log_options.server_uuid = meta.server_id;
  auto audit_log = auditlog::FileLog::open(log_options);
  if (!audit_log) return fail("audit log: " + audit_log.error().message);

  if (auto recovered = auditlog::recover_sessions(cfg->data_dir, **audit_log, recordings);
      !recovered)
    return fail(recovered.error().message);

  SessionWriter writer(meta, **audit_log, out ? &*out : nullptr, args.format == "text",
                       rec->get());
  if (auto r = writer.keep_journal(auditlog::journal_dir(cfg->data_dir), args.tty, kinds); !r)
    return fail(r.error().message);
  const seal::Filter* sealed = seal::for_session((*engine)->options().seal);
  writer.start(start_ns, args.command, seal::refused(sealed));
  auto session = (*engine)->open_session(
      {meta.sid, kinds}, [&](const Event& ev) { writer.event(ev); }, [&] { writer.flush(); });
  if (!session) return fail("cannot open a session: " + session.error().message);

  LaunchSpec spec;
  spec.argv = args.command;
  spec.seal = sealed;
  if (!args.user.empty()) {
    spec.credentials = *creds;
    spec.env = login_environment(*creds);
  }
  if (pty) spec.child_setup = [&pty] { pty->attach_child(); };
  install_signal_forwarding();
  int exit_status;
  auto child = launch(**session, spec);
  if (!child) {
    std::fprintf(stderr, "vigil record: %s\n", child.error().message.c_str());
    exit_status = child.error().err == ENOENT ? 127 : 126;
  } else {
    g_child = child->pid;
    int status = 0;
    if (pty) {
      pty->close_slave();
      term::RawMode raw(STDIN_FILENO);
      recording::RecordingWriter* r = rec->get();
      auto relayed = term::relay(*pty, child->pid, STDIN_FILENO, STDOUT_FILENO,
                                 {[r](std::string_view bytes) { r->output(clock::realtime_ns(), bytes); },
                                  [r](term::WindowSize size) {
                                    r->resize(clock::realtime_ns(), size.cols, size.rows);
                                  }});
      raw.restore();
      if (relayed) status = *relayed;
      else std::fprintf(stderr, "vigil record: %s\n", relayed.error().message.c_str());
    } else {
      while (waitpid(child->pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    g_child = 0;
    exit_status = exit_status_of(status);
  }

  // Like strace -f: the session lasts as long as a process of it runs.
  std::promise<SessionSummary> finished;
  auto summary = (*engine)->end_session(
      **session, [&finished](const SessionSummary& s) { finished.set_value(s); });
  if (!summary) return fail("ending the session: " + summary.error().message);
  audit::SessionEnd end;
  end.time_ns = clock::realtime_ns();
  end.start_ns = start_ns;
  end.stop_ns = end.time_ns;
  end.interactive = args.tty;
  end.enhanced_recording = true;
  end.participants = {meta.user};
  end.kinds = kinds;
  session::add_summary(*summary, end);
  writer.end(end);
  if (summary->leftovers == SessionSummary::Leftovers::running) {
    std::fprintf(stderr,
                 "vigil record: %zu processes of the session are still running: recording until "
                 "the last one exits (interrupt to kill them)\n",
                 summary->leftover_processes);
    auto done = finished.get_future();
    while (done.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
      if (g_stop) {
        (void)(*engine)->close_session(**session);  // kills them; on_finished runs
        break;
      }
    }
    writer.leftovers_end(session::leftovers_end(done.get(), clock::realtime_ns()));
  } else if (summary->leftovers == SessionSummary::Leftovers::killed) {
    std::fprintf(stderr, "vigil record: %zu processes of the session were still running: killed "
                 "(leftover_processes: kill)\n", summary->leftover_processes);
  }
  if (auto r = (*rec)->close(); !r) return fail("the recording: " + r.error().message);
  if (auto r = (*audit_log)->flush(); !r) return fail("audit log: " + r.error().message);
  if (!writer.log_error().empty()) return fail("audit log: " + writer.log_error());
  if (out && (out->failing() || out->dropped_bytes()))
    return fail("events could not all be written to " + out->name() + " (" +
                std::to_string(out->dropped_bytes()) + " bytes dropped past the memory bound)");
  return exit_status;
}

Subcommand add_record(CLI::App& app) {
  auto args = std::make_shared<RecordArgs>();
  auto* sub = app.add_subcommand("record", "run a command in a new recorded session");
  args->where.add_to(sub);
  sub->add_option("--events", args->events,
                  "kinds to record, comma-separated: command, disk, network "
                  "(default: command,network)");
  sub->add_option("-o,--output", args->output, "write events to FILE (appended); default stderr");
  sub->add_option("--format", args->format, "json (one event a line) or text (for people)")
      ->check(CLI::IsMember({"json", "text"}));
  sub->add_option("--user", args->user, "run the command as this local login");
  sub->add_flag("--tty", args->tty,
                "run on a new pseudo-terminal and record what it shows (vigil play SID)");
  sub->add_option("command", args->command, "the command and its arguments, after --")->required();
  sub->positionals_at_end();
  return {sub, [args, sub] {
    if (sub->get_option("--events")->count() && args->events.empty())
      return fail("--events: give at least one of command, disk, network");
    return record(*args);
  }};
}

}  // namespace vigil::cmd
