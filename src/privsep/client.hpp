// The front end's side of the monitor protocol (wire.hpp): one connection's
// requests, each answered in order, and the `exited` notes of its sessions,
// which may arrive at any time (kept until taken).
//
//   MonitorClient monitor(Fd(4));
//   auto yes = monitor.rate_check(Counted::probe);
//   auto who = monitor.login(blob, "alice");            // LoginOk or Refused
//   auto session = monitor.open(request);               // Opened + fds, or Refused
//   ... poll monitor.fd(); for (auto e : monitor.take_exited()) ...
//
// Every call fails (an Error) once the monitor is gone or answered out of
// turn: the front end then ends its connection.
#pragma once

#include <deque>
#include <variant>

#include "common/fd.hpp"
#include "privsep/wire.hpp"

namespace vigil::privsep {

struct OpenedSession {
  Opened opened;
  std::vector<Fd> fds;  // 1 (the pty's stream) or 3 (stdin, stdout, stderr)
};

class MonitorClient {
 public:
  explicit MonitorClient(Fd channel) : fd_(std::move(channel)) {}
  int fd() const { return fd_.get(); }

  Result<bool> rate_check(Counted proof);
  // The PROXY header the connection began with: nullopt when the monitor
  // believes it, else its refusal (the front end closes the connection).
  Result<std::optional<Refused>> proxied(const std::string& header);
  // Both return once the monitor has the event on stable storage.
  Result<void> auth_refused(const AuthRefused& refusal) { return audited(refusal); }
  Result<std::variant<LoginOk, Refused>> login(const std::string& cert_blob, const std::string& login);
  Result<void> rejected(const Rejected& rejection) { return audited(rejection); }
  Result<std::variant<OpenedSession, Refused>> open(const OpenSession& request);
  Result<void> resize(uint32_t channel, uint16_t cols, uint16_t rows) {
    return send(Resize{channel, cols, rows});
  }
  Result<void> signal(uint32_t channel, const std::string& name) { return send(Signal{channel, name}); }
  Result<void> end_session(uint32_t channel) { return send(EndSession{channel}); }

  // Reads what the monitor has sent (call when fd() is readable): exited
  // notes are kept for take_exited(). An error when the monitor is gone.
  Result<void> read_pending();
  std::deque<Exited> take_exited() { return std::exchange(exited_, {}); }

 private:
  Result<void> send(const Request& request);
  Result<void> audited(const Request& request);
  // The answer to the request just sent: exited notes before it are kept.
  Result<std::pair<Reply, std::vector<Fd>>> answer();
  Result<std::pair<Reply, std::vector<Fd>>> receive();

  Fd fd_;
  std::deque<Exited> exited_;
};

}  // namespace vigil::privsep
