#include "ssh/channel.hpp"

#include <fcntl.h>
#include <libssh/server.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/ssh_signals.hpp"
#include "ssh/connection.hpp"

namespace vigil::ssh {
namespace {

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

SessionChannel::SessionChannel(Node& node, const LoginContext& login, ssh_session session,
                               ssh_event event, uint32_t id)
    : node_(node), login_(login), session_(session), event_(event), id_(id) {
  channel_ = ssh_channel_new(session);
  callbacks_.userdata = this;
  callbacks_.channel_data_function = on_data;
  callbacks_.channel_eof_function = on_eof;
  callbacks_.channel_close_function = on_close;
  callbacks_.channel_signal_function = on_signal;
  callbacks_.channel_pty_request_function = on_pty;
  callbacks_.channel_pty_window_change_function = on_window_change;
  callbacks_.channel_env_request_function = on_env;
  callbacks_.channel_exec_request_function = on_exec;
  callbacks_.channel_shell_request_function = on_shell;
  callbacks_.channel_subsystem_request_function = on_subsystem;
  // libssh answers agent forwarding requests itself (no agent is ever
  // forwarded); the callback only logs them. X11 requests have no callback:
  // libssh refuses them and the connection logs why (connection.cpp).
  callbacks_.channel_auth_agent_req_function = on_agent_request;
  ssh_callbacks_init(&callbacks_);
  ssh_set_channel_callbacks(channel_, &callbacks_);
}

SessionChannel::~SessionChannel() {
  abort();
  if (channel_) {
    ssh_remove_channel_callbacks(channel_, &callbacks_);
    ssh_channel_free(channel_);
  }
}

#define SELF static_cast<SessionChannel*>(self)

int SessionChannel::on_data(ssh_session, ssh_channel, void* data, uint32_t len, int, void* self) {
  return SELF->feed_stdin(static_cast<const char*>(data), len);
}

void SessionChannel::on_eof(ssh_session, ssh_channel, void* self) {
  // Pipes: the process sees end of input. A pty has no such thing (sshd too
  // ignores it there); the shell ends when the user types exit.
  if (SELF->pty_requested_) return;
  SELF->stdin_eof_ = true;
  SELF->close_stdin_when_drained();
}

void SessionChannel::on_close(ssh_session, ssh_channel, void* self) {
  SELF->peer_closed_ = true;
  // Nobody is left to talk to: end everything the session started.
  if (SELF->started_ && !SELF->exited_) (void)SELF->node_.monitor.end_session(SELF->id_);
}

void SessionChannel::on_signal(ssh_session, ssh_channel, const char* name, void* self) {
  if (name && ssh_signal_number(name) && SELF->started_ && !SELF->exited_)
    (void)SELF->node_.monitor.signal(SELF->id_, name);
}

int SessionChannel::on_pty(ssh_session, ssh_channel, const char* term, int cols, int rows, int,
                           int, void* self) {
  if (SELF->started_ || SELF->pty_requested_) {
    reject(SELF->node_, SELF->login_, "pty_refused", "pty-req",
           SELF->pty_requested_ ? "the channel has a pty already"
                                : "the session has started already");
    return -1;
  }
  if (!SELF->login_.permit_pty) {
    // As sshd: the request fails, the session may go on without a pty.
    reject(SELF->node_, SELF->login_, "pty_not_permitted", "pty-req",
           "the certificate has no permit-pty");
    SELF->notify("vigil: no terminal: your certificate does not permit a pty (permit-pty)");
    return -1;
  }
  SELF->size_ = {static_cast<unsigned short>(cols > 0 && cols <= 65535 ? cols : 80),
                 static_cast<unsigned short>(rows > 0 && rows <= 65535 ? rows : 24)};
  // The pty itself is the monitor's: made when the session opens.
  SELF->pty_requested_ = true;
  std::string_view t = term ? term : "";
  SELF->term_ = std::string(t.substr(0, privsep::kMaxName));
  return 0;
}

int SessionChannel::on_window_change(ssh_session, ssh_channel, int cols, int rows, int, int,
                                     void* self) {
  if (!SELF->pty_requested_ || cols <= 0 || rows <= 0 || cols > 65535 || rows > 65535) return -1;
  SELF->size_ = {static_cast<unsigned short>(cols), static_cast<unsigned short>(rows)};
  // The pty and the recording, by the monitor.
  if (SELF->started_ && !SELF->exited_)
    (void)SELF->node_.monitor.resize(SELF->id_, SELF->size_.cols, SELF->size_.rows);
  return 0;
}

// Only the locale: anything else (LD_PRELOAD, PATH, BASH_ENV...) could
// change what the login's own programs do. Bounded per channel (Node's
// max_env_*): each refusal is audited, and a name sent again replaces its
// value, as sshd does.
int SessionChannel::on_env(ssh_session, ssh_channel, const char* name, const char* value,
                           void* self) {
  const Node& node = SELF->node_;
  std::string_view n(name), v(value);
  // What was asked, bounded: the name may be as long as a packet.
  std::string request = "env " + std::string(n.substr(0, 64)) + (n.size() > 64 ? "..." : "");
  auto refuse = [&](const char* reason, std::string why, uint64_t max = 0) {
    reject(SELF->node_, SELF->login_, reason, request, std::move(why), max);
    return -1;
  };
  if (SELF->started_) return refuse("env_not_allowed", "the session has started already");
  if (!(n == "LANG" || n.rfind("LC_", 0) == 0) || n.find('=') != std::string_view::npos)
    return refuse("env_not_allowed", "only LANG and LC_* may be set");
  const size_t bytes = n.size() + 1 + v.size();
  if (bytes > node.max_env_var_bytes)
    return refuse("env_limit",
                  std::to_string(bytes) + " bytes: at most " +
                      std::to_string(node.max_env_var_bytes) + " per variable",
                  node.max_env_var_bytes);
  auto& env = SELF->client_env_;
  auto same = env.end();
  size_t total = bytes;
  for (auto it = env.begin(); it != env.end(); ++it) {
    if (it->size() > n.size() && it->compare(0, n.size(), n) == 0 && (*it)[n.size()] == '=')
      same = it;
    else
      total += it->size();
  }
  if (same == env.end() && env.size() >= node.max_env_vars)
    return refuse("env_limit",
                  "already " + std::to_string(env.size()) + " variables on this channel",
                  node.max_env_vars);
  if (total > node.max_env_bytes)
    return refuse("env_limit",
                  "the channel's variables would take " + std::to_string(total) +
                      " bytes: at most " + std::to_string(node.max_env_bytes),
                  node.max_env_bytes);
  std::string entry = std::string(n) + "=" + std::string(v);
  if (same != env.end()) *same = std::move(entry);
  else env.push_back(std::move(entry));
  return 0;
}

int SessionChannel::on_exec(ssh_session, ssh_channel, const char* command, void* self) {
  std::string_view c(command);
  if (c.size() > privsep::kMaxCommand) {
    reject(SELF->node_, SELF->login_, "channel_request", "exec",
           "the command is " + std::to_string(c.size()) + " bytes: at most " +
               std::to_string(privsep::kMaxCommand));
    return -1;
  }
  return SELF->start(privsep::Program::exec, std::string(c));
}

int SessionChannel::on_shell(ssh_session, ssh_channel, void* self) {
  return SELF->start(privsep::Program::shell);
}

// libssh answers the request itself (success: with a callback it assumes
// support), but no agent is ever forwarded: no socket, no SSH_AUTH_SOCK.
void SessionChannel::on_agent_request(ssh_session, ssh_channel, void* self) {
  reject(SELF->node_, SELF->login_, "agent_forwarding", "auth-agent-req@openssh.com",
         "agent forwarding (-A) is not allowed on this node");
}

int SessionChannel::on_subsystem(ssh_session, ssh_channel, const char* name, void* self) {
  std::string_view n(name);
  std::string request = "subsystem " + std::string(n.substr(0, 64)) + (n.size() > 64 ? "..." : "");
  if (n != "sftp") {
    reject(SELF->node_, SELF->login_, "subsystem_refused", request, "only sftp is served");
    return -1;
  }
  // The monitor runs its sftp-server as sshd runs `Subsystem sftp <path>`:
  // a command like any exec, so it is recorded (and a force-command still
  // replaces it). Which program that is, is the monitor's choice.
  return SELF->start(privsep::Program::sftp);
}

int SessionChannel::on_output(int fd, int, void* self) {
  SELF->forward_output(fd);
  return 0;
}

int SessionChannel::on_stdin_writable(int, int, void* self) {
  SELF->pump_stdin();
  return 0;
}

#undef SELF

// libssh offers everything it holds for the channel and keeps what is not
// taken, but offers it again only when more arrives. What a full stdin
// refuses is therefore fetched by pump_stdin once stdin has room; until
// then the client's window stays shut, so a process that reads slowly slows
// the client rather than filling the node's memory.
int SessionChannel::feed_stdin(const char* data, uint32_t len) {
  if (stdin_fd_ < 0) return static_cast<int>(len);  // nothing to feed: dropped
  ssize_t n = 0;
  if (stdin_pending_.empty()) {
    n = write(stdin_fd_, data, len);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return static_cast<int>(len);  // stdin closed
    if (n < 0) n = 0;
  }
  stdin_backlog_ = len - static_cast<size_t>(n);
  if (stdin_backlog_ > 0) watch_stdin(true);
  return static_cast<int>(n);
}

void SessionChannel::pump_stdin() {
  char buf[65536];
  while (stdin_fd_ >= 0) {
    if (stdin_pending_.empty()) {
      if (stdin_backlog_ == 0) break;
      // At most what libssh holds: the read is served from its buffer
      // without waiting for (or handling) packets.
      uint32_t want = static_cast<uint32_t>(std::min(stdin_backlog_, sizeof(buf)));
      int got = ssh_channel_read_nonblocking(channel_, buf, want, 0);
      if (got <= 0) {
        stdin_backlog_ = 0;
        break;
      }
      stdin_backlog_ -= static_cast<size_t>(got);
      stdin_pending_.assign(buf, static_cast<size_t>(got));
    }
    ssize_t n = write(stdin_fd_, stdin_pending_.data(), stdin_pending_.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    if (n < 0) {  // the process closed its stdin: the rest has nowhere to go
      stdin_pending_.clear();
      continue;
    }
    stdin_pending_.erase(0, static_cast<size_t>(n));
  }
}

// Polled only while input waits: an empty pipe is always writable.
void SessionChannel::watch_stdin(bool on) {
  if (on == stdin_watched_ || stdin_fd_ < 0) return;
  if (on) ssh_event_add_fd(event_, stdin_fd_, POLLOUT, on_stdin_writable, this);
  else ssh_event_remove_fd(event_, stdin_fd_);
  stdin_watched_ = on;
}

void SessionChannel::close_stdin_when_drained() {
  if (stdin_eof_ && stdin_backlog_ == 0 && stdin_pending_.empty() && !stdin_watched_)
    close_fd(stdin_fd_);
}

void SessionChannel::forward_output(int fd) {
  int stream = fd == stderr_fd_ ? 1 : 0;
  // Paused (removed from the poll after this round): the client has not
  // taken what was read last.
  if (!out_pending_[stream].empty()) return;
  // Large reads: fewer syscalls and poll rounds per byte (libssh cuts the
  // data into packets the client's maximum size anyway).
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      out_eof_[stream] = true;  // unwatched in flush_output, outside libssh's callback
      return;
    }
    if (n < 0) return;  // EAGAIN: the poll round ends
    send_output(stream, buf, static_cast<size_t>(n));  // recorded by the monitor on a pty
    if (!out_pending_[stream].empty() || static_cast<size_t>(n) < sizeof(buf)) return;
  }
}

// The session is non-blocking (connection.cpp): libssh sends at most what
// the client's window admits and never waits, so a client that stops
// reading holds back the process, never the node, and loses nothing.
long SessionChannel::write_to_client(int stream, const char* data, size_t len) {
  uint32_t window = ssh_channel_window_size(channel_);
  size_t n = std::min<size_t>(len, window);
  if (n == 0) return 0;
  int rc = stream == 1 ? ssh_channel_write_stderr(channel_, data, static_cast<uint32_t>(n))
                       : ssh_channel_write(channel_, data, static_cast<uint32_t>(n));
  return rc == SSH_ERROR ? -1 : rc;
}

void SessionChannel::send_output(int stream, const char* data, size_t len) {
  if (peer_closed_ || ssh_channel_is_closed(channel_)) return;  // nobody to send to
  size_t sent = 0;
  if (out_pending_[stream].empty()) {
    long n = write_to_client(stream, data, len);
    if (n < 0) return output_failed();
    sent = static_cast<size_t>(n);
  }
  out_pending_[stream].append(data + sent, len - sent);
}

void SessionChannel::flush_output() {
  for (int stream : {0, 1}) {
    std::string& pending = out_pending_[stream];
    if (peer_closed_ || ssh_channel_is_closed(channel_)) {
      pending.clear();
      continue;
    }
    if (!pending.empty()) {
      long n = write_to_client(stream, pending.data(), pending.size());
      if (n < 0) return output_failed();
      pending.erase(0, static_cast<size_t>(n));
    }
  }
  // Read again what the client caught up with; stop reading what it did not
  // take, and what has ended.
  if (!ended_) {
    set_output_polled(0, out_pending_[0].empty() && !out_eof_[0]);
    set_output_polled(1, out_pending_[1].empty() && !out_eof_[1]);
  }
}

void SessionChannel::set_output_polled(int stream, bool on) {
  int fd = stream == 1 ? stderr_fd_ : stdout_fd_;
  if (fd < 0 || out_polled_[stream] == on) return;
  if (on) ssh_event_add_fd(event_, fd, POLLIN, on_output, this);
  else ssh_event_remove_fd(event_, fd);
  out_polled_[stream] = on;
}

// Sending failed: the connection is broken. Said, and the session ended as
// for a client that went away (its processes would block on a full pipe).
void SessionChannel::output_failed() {
  log::warn("ssh: session " + sid_ + " of " + login_.user + " from " + login_.remote_addr +
            ": sending output failed (" + ssh_get_error(session_) + "): ending the session");
  peer_closed_ = true;
  out_pending_[0].clear();
  out_pending_[1].clear();
  if (started_ && !exited_) (void)node_.monitor.end_session(id_);
}

int SessionChannel::start(privsep::Program program, std::string command) {
  if (started_) return -1;
  started_ = true;
  interactive_ = pty_requested_;
  // The monitor opens the session (recording, journal, session.start), runs
  // the process as the login and passes back its fds; it applies the
  // certificate's force-command and checks the environment again itself.
  privsep::OpenSession request;
  request.channel = id_;
  request.program = program;
  request.command = std::move(command);
  request.pty = interactive_;
  request.term = term_;
  request.cols = size_.cols;
  request.rows = size_.rows;
  request.env = client_env_;
  auto answer = node_.monitor.open(request);
  if (!answer) {
    log::error("ssh: monitor: " + answer.error().message);
    return -1;
  }
  if (auto* no = std::get_if<privsep::Refused>(&*answer)) {
    // The process could not start: the session ran and ended (session.end
    // says why), and the client hears it as a shell would say it.
    if (no->reason == "launch_not_found" || no->reason == "launch_failed") {
      std::string message = "vigil: " + no->message + "\r\n";
      ssh_channel_write_stderr(channel_, message.data(), message.size());
      exit_status_ = (no->reason == "launch_not_found" ? 127 : 126) << 8;
      exited_ = true;
      return 0;
    }
    log::warn("ssh: session of " + login_.user + " refused by the monitor: " + no->message);
    return -1;  // the client is told the request failed: nothing runs unrecorded
  }
  auto& opened = std::get<privsep::OpenedSession>(*answer);
  sid_ = opened.opened.sid;
  if (interactive_) {
    // The pty's master stays with the monitor (it records the output); this
    // is a stream to it.
    stdout_fd_ = opened.fds[0].release();
    stdin_fd_ = fcntl(stdout_fd_, F_DUPFD_CLOEXEC, 0);
  } else {
    stdin_fd_ = opened.fds[0].release();
    stdout_fd_ = opened.fds[1].release();
    stderr_fd_ = opened.fds[2].release();
  }
  for (int fd : {stdin_fd_, stdout_fd_, stderr_fd_})
    if (fd >= 0) set_nonblocking(fd);
  set_output_polled(0, true);
  set_output_polled(1, true);
  return 0;
}

void SessionChannel::exited(int wait_status) {
  exit_status_ = wait_status;
  exited_ = true;
}

void SessionChannel::notify(const std::string& message) {
  if (peer_closed_ || !channel_ || ssh_channel_is_closed(channel_)) return;
  std::string line = message + "\r\n";
  ssh_channel_write_stderr(channel_, line.data(), line.size());
}

void SessionChannel::step() {
  if (done_) return;
  // Outside libssh's poll: a watch is removed here, not in its own callback.
  if (stdin_watched_ && stdin_backlog_ == 0 && stdin_pending_.empty()) {
    watch_stdin(false);
    close_stdin_when_drained();
  }
  if (exited_ && !ended_) end_session();
  flush_output();
  if (ended_) {
    // exit-status goes after the last byte of output, as sshd does it.
    if (peer_closed_ || (out_pending_[0].empty() && out_pending_[1].empty())) close_channel();
  } else if (peer_closed_ && !started_) {
    done_ = true;
  }
}

void SessionChannel::stop_polling() {
  watch_stdin(false);
  set_output_polled(0, false);
  set_output_polled(1, false);
}

void SessionChannel::end_session() {
  stop_polling();
  // What the process wrote before it exited is in the pipes, or on its way
  // through the monitor's pty stream (which the monitor closes after the
  // last byte): read it all, bounded (a process it left behind may go on
  // writing), to the client's queue.
  const int64_t until = clock::monotonic_ns() + 5'000'000'000;
  for (int stream : {0, 1}) {
    int fd = stream == 1 ? stderr_fd_ : stdout_fd_;
    char buf[65536];
    for (size_t total = 0; fd >= 0 && total < (size_t{4} << 20);) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN && interactive_) {
        int64_t left_ms = (until - clock::monotonic_ns()) / 1'000'000;
        pollfd p{fd, POLLIN, 0};
        if (left_ms > 0 && poll(&p, 1, static_cast<int>(left_ms)) == 1) continue;
      }
      if (n <= 0) break;
      total += static_cast<size_t>(n);
      send_output(stream, buf, static_cast<size_t>(n));
    }
  }
  close_fd(stdin_fd_);
  close_fd(stdout_fd_);
  close_fd(stderr_fd_);
  ended_ = true;
}

void SessionChannel::close_channel() {
  if (!peer_closed_ && !ssh_channel_is_closed(channel_)) {
    int status = exit_status_;
    if (WIFSIGNALED(status))
      ssh_channel_request_send_exit_signal(channel_, ssh_signal_name(WTERMSIG(status)).data(),
                                           WCOREDUMP(status), "", "");
    else
      ssh_channel_request_send_exit_status(channel_, WEXITSTATUS(status));
    ssh_channel_send_eof(channel_);
    ssh_channel_close(channel_);
  }
  done_ = true;
}

void SessionChannel::abort() {
  if (done_ || !started_) {
    done_ = true;
    return;
  }
  peer_closed_ = true;
  if (!ended_) {
    // The monitor kills what the session runs and writes session.end.
    if (!exited_) (void)node_.monitor.end_session(id_);
    stop_polling();
    close_fd(stdin_fd_);
    close_fd(stdout_fd_);
    close_fd(stderr_fd_);
    ended_ = true;
  }
  done_ = true;
}

}  // namespace vigil::ssh
