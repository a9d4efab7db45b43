// What the audit encoder knows about a session besides its events: who and
// where (SessionMeta, repeated in every event as Teleport does) and the
// summaries written when a session starts and ends.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "event/event.hpp"

namespace vigil::audit {

struct SessionMeta {
  std::string cluster_name;
  std::string server_hostname;
  std::string server_id;
  std::string namespace_name = "default";
  std::string sid;    // session id (a UUID)
  std::string login;  // the OS account the session runs as
  std::string user;   // the cluster user who logged in
  // The client's "ip:port" for sessions that came over SSH ("addr.remote" in
  // every event); empty for local sessions (`vigil record`): not written.
  std::string remote_addr;
};

struct SessionStart {
  int64_t time_ns = 0;                       // ns since the Unix epoch
  std::vector<std::string> initial_command;  // empty for an interactive shell
  // What the session seal refuses ("io_uring", ...: engine/seal.hpp), in
  // the order written; empty (and not written) for an unsealed session.
  std::vector<std::string> sealed;
};

struct SessionEnd {
  int64_t time_ns = 0;   // when the event is written, ns since the Unix epoch
  int64_t start_ns = 0;
  int64_t stop_ns = 0;
  bool interactive = false;
  bool enhanced_recording = true;
  std::vector<std::string> participants;
  KindCounts recorded;   // events written to the log, per kind
  KindCounts lost;       // events the kernel or engine dropped, per kind
  KindSet kinds;         // kinds this session recorded
  // Processes the session's first process left running. With
  // `leftovers_killed` false they stay recorded under this session, and a
  // session.leftovers_end follows when the last one exits.
  size_t leftover_processes = 0;
  bool leftovers_killed = false;
  // Written after the recorder died (kill -9, crash) from what it had saved:
  // `recorded` is what reached the audit log, `lost` is unknown (not written).
  bool recovered = false;
  // Why the session's program never ran (the launch failed, the engine
  // could not open the session): written as `error`; empty when it ran.
  std::string error;
};

// The last of the processes a session left running has exited (or they were
// killed): written after session.end, with the totals of the whole session.
struct LeftoversEnd {
  int64_t time_ns = 0;
  size_t processes = 0;  // how many were running at session.end
  bool killed = false;   // ended by the recorder (shutdown), not by exiting
  KindCounts recorded;
  KindCounts lost;
  bool recovered = false;  // see SessionEnd::recovered
};

// A command run through an SSH `exec` request, written when it ends (T3002I).
struct ExecEnd {
  int64_t time_ns = 0;
  std::string command;  // as the client sent it
  int exit_code = 0;    // 128 + signal when killed, as a shell reports it
};

// Keeps `mine` when `other` says the same, else clears it: a summary of
// several refusals says only what they all had in common.
inline void keep_common(std::string& mine, const std::string& other) {
  if (mine != other) mine.clear();
}

// "ip:port" -> "ip" ("[v6]:port" -> "v6"): what refusals from several
// connections of one source have in common.
inline std::string address_only(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || addr.find(':') == colon) return addr.substr(0, colon);
  if (addr.size() > 2 && addr.front() == '[' && addr[colon - 1] == ']')
    return addr.substr(1, colon - 2);
  return addr;  // a bare IPv6 address
}

// One login attempt (`auth`): T3007W for a refusal, T3007I for a login. Not
// tied to a session, so it carries no sid or ei.
struct AuthAttempt {
  int64_t time_ns = 0;
  bool success = false;
  std::string user;         // the certificate's key id when it could be read
  std::string login;        // the account asked for
  std::string remote_addr;  // "ip:port" of the client
  std::string reason;       // "untrusted_ca", "expired", ... (refusal_name) or Vigil's own
  std::string message;      // for people
  std::string method;       // "publickey", "password", "keyboard-interactive"...; may be empty
  // A login's certificate (success only): its key id, serial and the
  // signing CA's fingerprint ("SHA256:...", as ssh-keygen -l prints it).
  std::string key_id;
  uint64_t cert_serial = 0;
  std::string ca_fingerprint;
  // 0: this one attempt. N > 0: a summary of N refusals of this reason from
  // one source (first_time..time), fields they did not share left empty.
  uint64_t count = 0;
  int64_t first_time_ns = 0;

  // Folds a later refusal of the same reason and source into this one,
  // which then spans first_time_ns..time_ns.
  void absorb(const AuthAttempt& later) {
    if (first_time_ns == 0) first_time_ns = time_ns;
    time_ns = later.time_ns;
    keep_common(user, later.user);
    keep_common(login, later.login);
    keep_common(message, later.message);
    if (remote_addr != later.remote_addr) {
      std::string ip = address_only(remote_addr);
      remote_addr = ip == address_only(later.remote_addr) ? ip : "";
    }
  }
};

// A request refused after login (`session.rejected`, T1006W, as Teleport
// names a session it refuses): a pty without permit-pty, forwarding, a
// channel beyond the cap, an env variable, a subsystem. Not tied to a
// session either (most are refused before one starts).
struct SessionRejection {
  int64_t time_ns = 0;
  std::string user;         // the certificate's key id
  std::string login;
  std::string remote_addr;  // "ip:port"
  std::string reason;       // "pty_not_permitted", "port_forwarding", ... (docs/ssh-node.md)
  std::string request;      // what was asked, e.g. "env LD_PRELOAD", "direct-tcpip 10.0.0.1:22"
  std::string message;      // why it was refused, for people
  uint64_t max = 0;         // the cap that was reached, where one was (Teleport's "max")
  uint64_t count = 0;       // as AuthAttempt::count
  int64_t first_time_ns = 0;

  void absorb(const SessionRejection& later) {
    if (first_time_ns == 0) first_time_ns = time_ns;
    time_ns = later.time_ns;
    keep_common(user, later.user);
    keep_common(login, later.login);
    keep_common(request, later.request);
    keep_common(message, later.message);
    if (remote_addr != later.remote_addr) {
      std::string ip = address_only(remote_addr);
      remote_addr = ip == address_only(later.remote_addr) ? ip : "";
    }
  }
};

}  // namespace vigil::audit
