// A `session` channel (internal to vigil_ssh): its requests (pty-req, env,
// exec, shell, window-change, signal), its process started by the monitor
// in a new recorded session (privsep/monitor.hpp), and the bytes between
// the client and the fds the monitor passed back. Runs in its connection's
// front end only.
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/account.hpp"
#include "privsep/wire.hpp"
#include "ssh/server.hpp"
#include "term/pty.hpp"

namespace vigil::ssh {

// Who is logged in on the connection: what authentication established.
struct LoginContext {
  std::string user;   // the certificate's key id
  Credentials account;
  KindSet kinds;      // what this user's sessions record
  std::optional<std::string> force_command;
  bool permit_pty = false;     // the certificate's permit-pty extension
  int64_t valid_before = 0;    // the certificate's end (seconds, INT64_MAX for forever)
  std::string remote_addr;     // "ip:port"
};


class SessionChannel {
 public:
  SessionChannel(Node& node, const LoginContext& login, ssh_session session, ssh_event event,
                 uint32_t id);
  ~SessionChannel();
  SessionChannel(const SessionChannel&) = delete;
  SessionChannel& operator=(const SessionChannel&) = delete;

  ssh_channel handle() const { return channel_; }
  uint32_t id() const { return id_; }
  // Its process was started and the monitor has not said it exited.
  bool running() const { return started_ && !exited_; }
  // The monitor says the session's process exited (its session.end is written).
  void exited(int wait_status);
  // Called by the connection after each poll round: sends output the
  // client's window now admits, resumes reading paused output, and ends the
  // session of a process that exited (output read, events written); once
  // the client has taken all output, exit-status is sent and the channel closed.
  void step();
  // The connection is going away: kills what runs in the session and
  // closes it (session.end is still written).
  void abort();
  bool done() const { return done_; }
  // Tells the client why its session is about to end (on its stderr).
  void notify(const std::string& message);

 private:
  static int on_data(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* self);
  static void on_eof(ssh_session, ssh_channel, void* self);
  static void on_close(ssh_session, ssh_channel, void* self);
  static void on_signal(ssh_session, ssh_channel, const char* name, void* self);
  static int on_pty(ssh_session, ssh_channel, const char* term, int cols, int rows, int, int,
                    void* self);
  static int on_window_change(ssh_session, ssh_channel, int cols, int rows, int, int, void* self);
  static int on_env(ssh_session, ssh_channel, const char* name, const char* value, void* self);
  static int on_exec(ssh_session, ssh_channel, const char* command, void* self);
  static int on_shell(ssh_session, ssh_channel, void* self);
  static void on_agent_request(ssh_session, ssh_channel, void* self);
  static int on_subsystem(ssh_session, ssh_channel, const char* name, void* self);
  static int on_output(int fd, int revents, void* self);
  static int on_stdin_writable(int fd, int revents, void* self);

  // Asks the monitor to open the session and start the process in it.
  int start(privsep::Program program, std::string command = {});
  // Output: read from the process only as fast as the client takes it.
  void forward_output(int fd);
  void send_output(int stream, const char* data, size_t len);
  long write_to_client(int stream, const char* data, size_t len);
  void flush_output();
  void set_output_polled(int stream, bool on);
  void output_failed();
  int feed_stdin(const char* data, uint32_t len);
  void pump_stdin();
  void watch_stdin(bool on);
  void close_stdin_when_drained();
  // The process exited (or was killed): what it wrote is read and the fds
  // closed (the monitor ended the session).
  void end_session();
  void close_channel();
  void stop_polling();

  Node& node_;
  const LoginContext& login_;
  ssh_session session_;
  ssh_event event_;
  ssh_channel channel_;
  ssh_channel_callbacks_struct callbacks_{};
  uint32_t id_;

  bool pty_requested_ = false;  // a pty-req was granted
  std::string term_;
  term::WindowSize size_;
  std::vector<std::string> client_env_;  // LANG, LC_*

  bool started_ = false;
  bool exited_ = false;          // the process is gone (the monitor said so)
  bool peer_closed_ = false;
  bool interactive_ = false;     // on a pty (pty-req before the start)
  bool ended_ = false;           // end_session() ran
  bool done_ = false;
  int exit_status_ = 127 << 8;   // wait status; launch failed: as a shell's
  int stdin_fd_ = -1;   // pipe or a dup of the pty's stream (polled apart from the output)
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;  // pipes only
  // Per output stream (0 stdout/pty, 1 stderr): what the client's window did
  // not admit yet, and whether the fd is polled. A stream with pending
  // output is not read, so the process blocks instead of the node buffering.
  std::string out_pending_[2];
  bool out_polled_[2] = {false, false};
  // The stream reached its end (EOF, or an error other than EAGAIN): never
  // polled again, or every poll round would return at once for it.
  bool out_eof_[2] = {false, false};
  // Client input a full stdin holds back: libssh keeps `stdin_backlog_`
  // bytes for us (and does not open the window for them), `stdin_pending_`
  // was fetched but not yet written.
  size_t stdin_backlog_ = 0;
  std::string stdin_pending_;
  bool stdin_watched_ = false;  // polled for POLLOUT while input waits
  bool stdin_eof_ = false;      // the client sent EOF: close once drained
  std::string sid_;
};

}  // namespace vigil::ssh
