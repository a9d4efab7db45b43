// A node's configuration: the YAML file it starts from, checked up front so
// that a mistake stops the node with a message naming the file, the line and
// the field, instead of surfacing later as a strange kernel error.
//
// The accepted file is Teleport's v3 node file as the enhanced session
// recording guide writes it, which loads unchanged:
//
//   version: v3                  # optional; only v3 is accepted
//   teleport:                    # or `vigil:`, Vigil's own spelling (not both)
//     nodename: graviton-node
//     auth_token: <token>
//     auth_server: 127.0.0.1:3025
//     proxy_server: 127.0.0.1:3080
//     data_dir: /var/lib/teleport
//     # cluster_name: only under `vigil:`
//     ca_pin: sha256:<hex>         # the auth service's CA pin (vigilctl status)
//     diag_addr: 127.0.0.1:3000    # /metrics, /healthz, /readyz; off unless set
//   proxy_service:
//     enabled: false
//     web_listen_addr: 0.0.0.0:3080
//     listen_addr: 0.0.0.0:3023
//     tunnel_listen_addr: 0.0.0.0:3024
//     public_addr: proxy.example.com:3080  # or a list
//   auth_service:
//     enabled: false
//     listen_addr: 0.0.0.0:3025
//     cluster_name: example            # defaults to nodename
//     authentication:
//       second_factor: off             # off | otp
//   audit:                           # Vigil's own (issue 13)
//     retention: 90d                 # whole day files of the audit log older go; off unless set
//     recording_retention: 30d       # recordings older go; off unless set
//   ssh_service:
//     enabled: true
//     listen_addr: 0.0.0.0:3022           # IPv6 as [::]:3022
//     trusted_user_ca_keys: [/etc/vigil/user_ca.pub]
//     default_recording_kinds: [command, network]
//     login_grace_time: 60                # seconds, Vigil's own (sshd's LoginGraceTime)
//     enhanced_recording:
//       enabled: true
//       command_buffer_size: 1024  # pages (the guide: 8; raised to 32, one 72 KiB exec)
//       disk_buffer_size: 2048   # pages (the guide: 128)
//       network_buffer_size: 32  # pages (the guide: 8)
//       failed_execs: true       # Vigil's own: also record failed execs
//       leftover_processes: record   # Vigil's own: or kill
//       seal: true               # Vigil's own: refuse the calls recording cannot see
//       cgroup_path: /cgroup2
//       root_path: /vigil
//
// Rules, so that a typo never silently becomes a default:
// - unknown fields are errors (with a suggestion when one is close), and so
//   are fields given twice and files holding more than one YAML document;
// - booleans are true/false/yes/no/on/off in any letter case (YAML 1.1's
//   words, so Teleport files keep working; y/n are not accepted);
// - values are judged by their text: quoting does not change their meaning;
// - a section or list left empty is the same as an empty one ({} or []),
//   but a scalar field left empty is an error;
// - an empty file (or one holding only comments) yields the defaults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "event/event.hpp"

namespace vigil::config {

// Bounds on what a file can make the loader do, far above any real node file
// (a few hundred bytes, four levels deep, short words), so that a wrong or
// hostile file costs little: passing one is an error naming file:line.
inline constexpr size_t kMaxFileBytes = 1 << 20;
inline constexpr int kMaxNesting = 16;          // maps and lists inside each other
inline constexpr size_t kMaxNameBytes = 256;    // a field name (a map key)
inline constexpr size_t kMaxValueBytes = 4096;  // a value (paths are at most PATH_MAX)

// Ring buffer sizes are given in pages of this size.
inline constexpr uint32_t kPageSize = 4096;
inline constexpr uint32_t kMinBufferPages = 1;
inline constexpr uint32_t kMaxBufferPages = 65536;  // 256 MiB per ring

struct EnhancedRecording {
  // As in the guide: off unless a file says `enabled: true` (the embedded
  // defaults turn it on). Off, sessions keep their terminal recording and
  // audit events, and no BPF is loaded (a host without BTF runs the node).
  bool enabled = false;
  bool enabled_given = false;  // the file set it (else the guide's default applies)
  // Exec records carry their argv and paths in the ring: a typical exec is
  // 100 to 500 bytes, the largest 72 KiB. 1024 pages (4 MiB) hold a burst of
  // 10,000 or more; the engine raises a ring too small for the largest
  // record (the guide's 8 pages) to 32 and says so (docs/architecture.md,
  // "Delivery and loss").
  uint32_t command_buffer_size = 1024;   // pages
  // A storm of opens fills 128 pages (the guide's) in 3 ms, less than a busy
  // host keeps the reader off a CPU: 2048 pages (8 MiB) hold ~50 ms of it
  // (docs/architecture.md, "Delivery and loss").
  uint32_t disk_buffer_size = 2048;      // pages
  // Vigil records 2 events per TCP connect (its result too) and more kinds of
  // network events than the guide: 32 pages where the guide says 8.
  uint32_t network_buffer_size = 32;     // pages
  // Vigil's own: record execs that fail (ENOENT, EACCES...). They need
  // syscall exit tracepoints, which slow every syscall on the host a little
  // while a session records commands (docs/benchmarks.md); successful execs
  // are recorded either way.
  bool failed_execs = true;
  // Vigil's own: processes a session leaves running (`nohup x &`) stay
  // recorded under it until they exit ("record"), or are killed when its
  // first process ends ("kill", like logind's KillUserProcesses).
  std::string leftover_processes = "record";
  // Vigil's own: seal every session (engine/seal.hpp), refusing with EPERM
  // the ways into the kernel that the recording does not see (io_uring,
  // 32-bit and x32 syscalls, open_by_handle_at). Off, a user can open files
  // and connect unrecorded through them.
  bool seal = true;
  std::string cgroup_path = "/cgroup2";  // where cgroup v2 is mounted
  std::string root_path = "/vigil";      // this instance's directory inside it

  bool operator==(const EnhancedRecording&) const = default;
};

struct SshService {
  bool enabled = false;
  std::string listen_addr = "0.0.0.0:3022";
  EnhancedRecording enhanced_recording;
  std::vector<std::string> trusted_user_ca_keys;  // file paths
  // Vigil's own (sshd's LoginGraceTime): seconds a client has for the key
  // exchange and logging in.
  uint32_t login_grace_time = 60;
  // What a session records when none of the user's roles says (the guide's
  // rule for a role with an empty list).
  KindSet default_kinds = [] {
    KindSet kinds;
    kinds.add(Kind::command);
    kinds.add(Kind::network);
    return kinds;
  }();

  bool operator==(const SshService&) const = default;
};

// auth_service: (issue 10). enabled is Config::auth_enabled, cluster_name
// Config::cluster_name.
struct AuthServiceConfig {
  std::string listen_addr = "0.0.0.0:3025";
  std::string second_factor = "off";  // authentication.second_factor: off | otp
  bool operator==(const AuthServiceConfig&) const = default;
};

// proxy_service: (issue 10). enabled is Config::proxy_enabled.
struct ProxyServiceConfig {
  std::string web_listen_addr = "0.0.0.0:3080";
  std::string listen_addr = "0.0.0.0:3023";
  std::string tunnel_listen_addr = "0.0.0.0:3024";
  // host:port users and nodes reach the proxy at (a string or a list).
  std::vector<std::string> public_addr;
  // The web UI's built assets (issue 11), served under /web/ on the web
  // port. Empty: beside the binary (<bin>/../share/vigil/web).
  std::string web_assets_dir;
  bool operator==(const ProxyServiceConfig&) const = default;
};

// teleport.storage (issue 12): where the auth service keeps its state and
// audit events. Connection strings never carry a password (it comes from
// PGPASSWORD, a password file named by PGPASSFILE or ?passfile=).
struct StorageConfig {
  std::string type = "sqlite";  // sqlite (<data_dir>/cluster/state.db) | postgresql
  std::string conn_string;      // postgresql://user@host:port/db?sslmode=... (type postgresql)
  // Every event goes to each; searches use the first. postgresql://... or
  // file:///path/log (the day files of the data_dir /path). Empty: the day
  // files under data_dir.
  std::vector<std::string> audit_events_uri;
  bool operator==(const StorageConfig&) const = default;
};

// audit: (issue 13) what the audit log and recordings keep. 0: forever.
struct AuditConfig {
  int64_t retention_ns = 0;            // audit.retention: whole day files older go
  int64_t recording_retention_ns = 0;  // audit.recording_retention: recordings older go
  bool operator==(const AuditConfig&) const = default;
};

// "90d", "12h" into ns: a whole number of days or hours, 1h to 36500d.
Result<int64_t> parse_retention(std::string_view text);

struct Config {
  std::string version = "v3";
  std::string nodename;  // defaults to this host's name
  std::string data_dir = "/var/lib/vigil";
  std::string auth_token;
  std::string auth_server;
  std::string proxy_server;
  std::string cluster_name;  // defaults to nodename
  // teleport.ca_pin: "sha256:<64 hex digits>", the auth service's CA pin a
  // joining node checks before it trusts the service.
  std::string ca_pin;
  // teleport.diag_addr: host:port of the diagnostics listener (/metrics,
  // /healthz, /readyz; docs/operations.md); empty: off, as in Teleport.
  std::string diag_addr;
  bool proxy_enabled = false;
  bool auth_enabled = false;
  AuthServiceConfig auth;
  ProxyServiceConfig proxy;
  SshService ssh;
  StorageConfig storage;
  AuditConfig audit;
  std::string source;  // the file read, or "<embedded defaults>"

  bool operator==(const Config&) const = default;
};

// The configuration of a node started without a file.
Config defaults();

// Reads a node file's text (at most kMaxFileBytes). source_name names it in error messages
// ("node.yaml:14: ssh_service.enabled: ...") and becomes Config::source.
Result<Config> parse(std::string_view yaml_text, std::string_view source_name);

// Reads and parses the file at path; reads no more than kMaxFileBytes + 1
// bytes of it, so /dev/zero or a huge file given by mistake fails at once.
Result<Config> load_file(const std::string& path);

// Bytes of a BPF ring buffer of `pages` pages (kMinBufferPages to
// kMaxBufferPages). The kernel takes only a power-of-two number of bytes
// for a ring, so the page count is rounded up to the next power of two:
// 3 pages give 4 pages (16384 bytes), 8 give 32768, 128 give 524288.
uint32_t ring_bytes(uint32_t pages);

}  // namespace vigil::config
