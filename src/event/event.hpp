// The engine's decoded events: what user space knows about one command,
// file open or connection of a recorded session. Produced by decode.cpp
// from kernel records, by tests from hand-built values, and consumed by the
// audit encoder.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace vigil {

enum class Kind : uint8_t { command = 0, disk = 1, network = 2 };
inline constexpr int kKindCount = 3;

std::string_view kind_name(Kind k);
std::optional<Kind> parse_kind(std::string_view name);

// A set of kinds, e.g. what a session records.
class KindSet {
 public:
  constexpr KindSet() = default;
  constexpr explicit KindSet(uint32_t bits) : bits_(bits & 7u) {}
  static constexpr KindSet all() { return KindSet(7u); }
  constexpr bool has(Kind k) const { return bits_ & (1u << static_cast<int>(k)); }
  constexpr void add(Kind k) { bits_ |= 1u << static_cast<int>(k); }
  constexpr uint32_t bits() const { return bits_; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr bool operator==(const KindSet&) const = default;
  // "command,disk,network" (any order, no duplicates, not empty).
  static std::optional<KindSet> parse(std::string_view list, std::string* error = nullptr);
  std::string to_string() const;  // "command,network"

 private:
  uint32_t bits_ = 0;
};

// Who did it: the task as the kernel saw it when the event happened.
struct ProcessInfo {
  uint32_t pid = 0;            // thread group id
  uint32_t tid = 0;
  uint32_t ppid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t audit_session = 0;  // loginuid session id, 0xffffffff when unset
  uint64_t cgroup_id = 0;
  std::string program;         // kernel comm (16 bytes at most)
};

struct CommandEvent {
  std::string path;                // file name given to execve
  std::vector<std::string> argv;   // without argv[0]
  int32_t return_code = 0;         // 0 or -errno
  bool argv_truncated = false;     // argv was longer than the engine keeps
  bool path_truncated = false;
  bool args_lost = false;          // path/argv could not be delivered
  // (New fields go last, for aggregate initialisation elsewhere.)
  // The file the kernel ran, named from kernel memory (for a #! script its
  // interpreter; a memfd is /memfd:NAME (deleted)); empty for a failed exec.
  std::string kernel_path;
  bool kernel_path_truncated = false;
  std::vector<std::string> interpreter;  // #! script: the interpreter [, its argument]
  std::string argv0;               // argv[0] when it is not the program's name (exec -a)
};

struct DiskEvent {
  std::string path;                // as requested: read from the program's memory
  int32_t flags = 0;               // O_* flags
  uint32_t mode = 0;
  int32_t return_code = 0;         // 0 or -errno
  bool path_truncated = false;     // bytes of the requested path were cut
  // (New fields go last: code builds DiskEvent{path, flags, mode, return_code}.)
  // The file the new fd holds, named from kernel memory (dentries and mounts
  // walked to the root): what was opened, whatever the program's memory says
  // afterwards. Empty for a failed open, which opened nothing.
  std::string kernel_path;
  bool path_unreadable = false;    // the requested path was not readable
  bool kernel_path_truncated = false;  // kernel_path lacks its leading part
  bool kernel_path_missing = false;    // succeeded, but the fd held no file by the hook
};

// NetworkEvent::operation: the guide's 0 and 1, and Vigil's own.
namespace net_op {
inline constexpr int connect = 0;         // TCP SYN sent, UDP connect(), unix connect()
inline constexpr int send = 1;            // UDP datagram to a destination new for the process
inline constexpr int accept = 2;          // inbound TCP connection on a session's listener
inline constexpr int connect_result = 3;  // what became of a recorded TCP connect
}  // namespace net_op

enum class NetProtocol : uint8_t { tcp, udp, unix_socket };
// A connect_result's outcome.
enum class ConnectResult : uint8_t { none, established, refused, failed, closed };

struct NetworkEvent {
  int version = 4;                 // 4 or 6 (0 for a unix socket)
  std::string src_addr;            // accept: the peer that connected
  std::string dst_addr;            // accept: the session's local address
  uint16_t dst_port = 0;
  int operation = 0;               // net_op
  int action = 0;                  // 0 observed, 1 denied
  // (New fields go last: code builds NetworkEvent{version, src, dst, port}.)
  NetProtocol protocol = NetProtocol::tcp;
  uint32_t net_ns = 0;             // inode number of the socket's network namespace
  uint16_t src_port = 0;           // 0 when not bound yet
  std::string unix_path;           // unix: the address connected to (bytes, user-chosen)
  bool unix_abstract = false;      // unix_path is an abstract name (its leading NUL dropped)
  ConnectResult result = ConnectResult::none;  // connect_result only
  int32_t return_code = 0;         // connect_result: 0 or -errno (sk_err)
  // UDP: destinations this process's table (VIGIL_NET_REMEMBERED) had to
  // forget so far; a repeat to one of them is reported again.
  uint32_t forgotten_destinations = 0;
};

struct Event {
  uint32_t session = 0;            // engine slot of the session
  int64_t time_ns = 0;             // wall clock, ns since the Unix epoch
  ProcessInfo process;
  std::variant<CommandEvent, DiskEvent, NetworkEvent> body;

  Kind kind() const { return static_cast<Kind>(body.index()); }
};

// Per-kind counts a session reports at its end.
struct KindCounts {
  uint64_t v[kKindCount] = {0, 0, 0};
  uint64_t& operator[](Kind k) { return v[static_cast<int>(k)]; }
  uint64_t operator[](Kind k) const { return v[static_cast<int>(k)]; }
  uint64_t total() const { return v[0] + v[1] + v[2]; }
};

}  // namespace vigil
