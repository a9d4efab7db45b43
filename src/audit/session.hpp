// What the audit encoder knows about a session besides its events: who and
// where (SessionMeta, repeated in every event as Teleport does) and the
// summaries written when a session starts and ends.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/event.hpp"

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

// One refused (or accepted) login attempt (T3007W for a refusal): not tied to
// a session, so it carries no sid or ei.
struct AuthAttempt {
  int64_t time_ns = 0;
  bool success = false;
  std::string user;         // the certificate's key id when it could be read
  std::string login;        // the account asked for
  std::string remote_addr;  // "ip:port" of the client
  std::string reason;       // "untrusted_ca", "expired", ... (refusal_name) or Vigil's own
  std::string message;      // for people
};

}  // namespace vigil::audit
