// The root side of privilege separation: serves one unprivileged front end
// over its end of a SOCK_SEQPACKET socketpair (wire.hpp), in the state
// machine OpenSSH's monitor uses: a request is answered only in the state
// that allows it, anything else ends the front end.
//
//   first:      proxied (a connection the cluster's proxy carried: the client's
//               address, signed by the proxy, replaces the socket's)
//   pre-auth:   rate_check, login (the monitor checks the certificate itself: CA
//               signature, validity, principal = login, source-address
//               against the address the monitor took from the socket it
//               accepted, the recording kinds), auth_refused (audited)
//   logged in:  open_session, resize, signal, end_session, rejected
//
// What crosses: requests with bounded fields; back, the login's identity,
// refusals, and each session's fds (SCM_RIGHTS). For a pty session the pty
// master never leaves the monitor: the front end gets one end of a stream
// socketpair and the monitor copies between it and the master, writing
// the terminal recording itself, so a front end cannot forge any session's
// recording. For pipes (exec, sftp; their output is not recorded) the
// front end gets the pipes' ends and the monitor is out of the data path.
//
// A front end that closes its socket or breaks the protocol ends: its
// sessions' processes are killed and their session.end written (the
// leftovers policy of the engine applies), and the monitor goes on.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "audit/session.hpp"
#include "auditlog/emitter.hpp"
#include "ca/proxy_header.hpp"
#include "common/fd.hpp"
#include "engine/engine.hpp"
#include "metrics/metrics.hpp"
#include "recording/recording_store.hpp"
#include "sshcert/rate_limit.hpp"
#include "sshcert/trusted_cas.hpp"

namespace vigil::privsep {

// What every front end's service shares (thread-safe or read-only).
struct MonitorContext {
  Engine* engine;  // null: enhanced recording off
  auditlog::Emitter& log;
  recording::RecordingStore& recordings;
  const sshcert::TrustedCAs& cas;
  audit::SessionMeta identity;  // cluster_name, server_hostname, server_id
  std::string data_dir;         // session journals
  KindSet default_kinds;        // when the certificate has no recording extension
  // A node of a cluster: the roles' decision on a login the certificate
  // allows (node labels, the login), after every check above; an Error is
  // the refusal's message. Empty: the certificate alone decides (standalone).
  std::function<Result<void>(const sshcert::Certificate& cert, const std::string& login)>
      authorize_login;
  // Counted here when set (teleport.diag_addr): logins, sessions, events.
  metrics::NodeMetrics* metrics = nullptr;
  std::string sftp_server = "/usr/lib/openssh/sftp-server";  // the monitor's choice, never the front end's
  size_t max_sessions = 10;     // per front end (one SSH connection), as sshd's MaxSessions
  int max_login_refusals = 6;   // refused logins per front end, then it is ended (MaxAuthTries)
  size_t max_env_bytes = 32768; // all of a session's variables together
  // Per source, across every front end (docs/ssh-node.md, item 9 of issue 7).
  sshcert::AuthRateLimiter limiter;
  sshcert::RefusalAggregator<audit::AuthAttempt> auth_refusals;
  sshcert::RefusalAggregator<audit::SessionRejection> rejections;
  // A node of a cluster: who may tell it where a connection came from (a
  // PROXY header signed by the cluster's proxy, ca/proxy_header.hpp). No
  // trusted CA (a standalone node): every header is refused.
  struct ProxyTrust {
    std::vector<ca::TlsCertificate> trusted;  // the cluster's TLS CA certificates
    std::string cluster;
    std::string node_uuid;
    ca::NonceCache nonces;
  } proxy_trust;
};

// The client of the front end, as the monitor learnt it from the socket it
// accepted (never from the front end).
struct Peer {
  std::string ip;    // "192.0.2.7", "2001:db8::1"
  std::string addr;  // "ip:port", "[ip]:port"
};

struct Served {
  bool violation = false;  // the front end broke the protocol (or the socket failed)
  std::string why;         // what it did, for the log
};

// Until the front end closes `channel`, breaks the protocol, or `stop`:
// then every session it opened is ended (killed, session.end written).
Served serve_front_end(MonitorContext& ctx, Fd channel, const Peer& peer,
                       const std::atomic<bool>& stop);

}  // namespace vigil::privsep
