// vigil record: run one command in a new recorded session and write its
// events, ending with session.end, to a file or stderr (like strace).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

#include "audit/host_id.hpp"
#include "audit/text.hpp"
#include "auditlog/file_log.hpp"
#include "auditlog/session_log.hpp"
#include "commands.hpp"
#include "common/fd.hpp"
#include "engine/engine.hpp"
#include "engine/host.hpp"
#include "recording/file_store.hpp"
#include "session/recorded_session.hpp"
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

// The -o file's share of the session's events: the same JSON lines the
// audit log gets, or text for people.
session::Hooks output_hooks(OutputFile* out, bool text) {
  session::Hooks hooks;
  if (!out) return hooks;
  hooks.line = [out, text](int64_t, std::string_view line) {
    if (!text) out->buffer() += line;
    out->maybe_flush();
  };
  hooks.batch = [out] { out->flush(); };
  if (text)
    hooks.event = [out](const Event& ev, const audit::SessionMeta& meta) {
      audit::format_text(ev, meta, out->buffer());
    };
  hooks.ended = [out, text](const audit::SessionEnd& end, const audit::SessionMeta& meta) {
    if (text) audit::format_session_end_text(end, meta, out->buffer());
    out->flush();
  };
  hooks.leftovers_ended = [out, text](const audit::LeftoversEnd& end,
                                      const audit::SessionMeta& meta) {
    if (text) audit::format_leftovers_end_text(end, meta, out->buffer());
    out->flush();
  };
  return hooks;
}

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

  auditlog::FileLogOptions log_options;
  log_options.data_dir = cfg->data_dir;
  log_options.server_uuid = *server_id;
  auto audit_log = auditlog::FileLog::open(log_options);
  if (!audit_log) return fail("audit log: " + audit_log.error().message);

  recording::FileRecordingStore recordings(cfg->data_dir);
  if (auto recovered = auditlog::recover_sessions(cfg->data_dir, **audit_log, recordings);
      !recovered)
    return fail(recovered.error().message);

  session::Options options;
  options.meta.cluster_name = cfg->cluster_name;
  options.meta.server_hostname = cfg->nodename;
  options.meta.server_id = *server_id;
  options.meta.login = creds->name;
  options.meta.user = creds->name;
  options.data_dir = cfg->data_dir;
  options.recordings = &recordings;
  options.engine = engine->get();
  options.kinds = kinds;
  options.command = args.command;
  options.size = term::window_size(STDIN_FILENO).value_or(term::WindowSize{});
  if (args.tty) {
    auto pty = term::Pty::open(options.size, args.user.empty() ? std::nullopt
                                                               : std::optional<uid_t>(creds->uid));
    if (!pty) return fail(pty.error().message);
    options.pty.emplace(std::move(pty.value()));
  }
  options.hooks = output_hooks(out ? &*out : nullptr, args.format == "text");
  auto opened = session::RecordedSession::open(**audit_log, std::move(options));
  if (!opened) return fail(opened.error().message);
  session::RecordedSession& s = **opened;

  LaunchSpec spec;
  spec.argv = args.command;
  if (!args.user.empty()) {
    spec.credentials = *creds;
    spec.env = login_environment(*creds);
  }
  install_signal_forwarding();
  int status;
  auto child = s.launch(spec);
  if (!child) {
    std::fprintf(stderr, "vigil record: %s\n", child.error().message.c_str());
    status = s.wait();
  } else if (s.pty()) {
    g_child = *child;
    term::RawMode raw(STDIN_FILENO);
    auto relayed = term::relay(*s.pty(), *child, STDIN_FILENO, STDOUT_FILENO,
                               {[&s](std::string_view bytes) { s.output(bytes); },
                                [&s](term::WindowSize size) { s.resized(size); }});
    raw.restore();
    status = relayed ? *relayed : 0;
    if (!relayed) std::fprintf(stderr, "vigil record: %s\n", relayed.error().message.c_str());
  } else {
    g_child = *child;
    status = s.wait();
  }
  g_child = 0;

  // Like strace -f: the session lasts as long as a process of it runs.
  auto ending = s.finish(status);
  if (!ending) return fail(ending.error().message);
  if (ending->leftovers == SessionSummary::Leftovers::running) {
    std::fprintf(stderr,
                 "vigil record: %zu processes of the session are still running: recording until "
                 "the last one exits (interrupt to kill them)\n",
                 ending->leftover_processes);
    while (!s.wait_leftovers(std::chrono::milliseconds(100))) {
      if (g_stop) {
        s.kill_leftovers();  // session.leftovers_end is written before it returns
        break;
      }
    }
  } else if (ending->leftovers == SessionSummary::Leftovers::killed) {
    std::fprintf(stderr, "vigil record: %zu processes of the session were still running: killed "
                 "(leftover_processes: kill)\n", ending->leftover_processes);
  }
  if (auto r = s.recording_closed(); !r) return fail("the recording: " + r.error().message);
  if (auto r = (*audit_log)->flush(); !r) return fail("audit log: " + r.error().message);
  if (!s.log_error().empty()) return fail("audit log: " + s.log_error());
  if (out && (out->failing() || out->dropped_bytes()))
    return fail("events could not all be written to " + out->name() + " (" +
                std::to_string(out->dropped_bytes()) + " bytes dropped past the memory bound)");
  return session::exit_code(status);
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
