// The monitor protocol: what an unprivileged front end may ask the root
// monitor, and what it hears back. One message per SOCK_SEQPACKET packet
// (never cut, never merged), at most kMaxMessage bytes. Every field is
// bounded and strictly parsed: a length past the packet, a text that is not
// UTF-8, a name outside its fixed set, a count over its bound or a byte left
// over is an error, and the monitor ends the front end that sent it.
//
//   packet  = type:u8 field*
//   u8/u16/u32/u64/i64: big-endian; str = len:u32 bytes[len]
//
// Front end -> monitor (the request types, each allowed in one state):
//   login          pre-auth   cert_blob:str login:str
//   auth_refused   pre-auth   login:str claimed_user:str reason:str method:str message:str
//                             counted:u8 (0 not, 1 as a probe, 2 as a signed attempt)
//   rate_check     pre-auth   proof:u8 (1 probe, 2 signed): may this source try now?
//   proxied        first      header:str (at most 4096 bytes): the PROXY v2 header the
//                             connection began with (ca/proxy_header.hpp); the monitor
//                             verifies it and takes its client address as the peer's, or
//                             refuses it (the front end then closes the connection)
//   rejected       logged in  reason:str request:str message:str max:u64
//   open_session   logged in  channel:u32 program:u8 command:str pty:u8 term:str cols:u16
//                             rows:u16 env_count:u32 env:str*
//   resize         logged in  channel:u32 cols:u16 rows:u16
//   signal         logged in  channel:u32 name:str
//   end_session    logged in  channel:u32
// Monitor -> front end:
//   login_ok       user:str kinds:u8 permit_pty:u8 has_force:u8 force_command:str valid_before:i64
//   refused        reason:str message:str          (a login or an open_session refused)
//   opened         channel:u32 sid:str + fds: 1 (pty) or 3 (stdin, stdout, stderr)
//   exited         channel:u32 wait_status:i32     (after session.end is written)
//   allowed        yes:u8                          (the answer to rate_check and to a
//                                                   proxied that was believed)
//   audited        (no fields)                     (auth_refused and rejected are on stable
//                                                   storage: only then does the client hear no)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.hpp"

namespace vigil::privsep {

inline constexpr size_t kMaxMessage = 64 * 1024;
inline constexpr size_t kMaxCertBlob = 16 * 1024;
inline constexpr size_t kMaxLogin = 256;
inline constexpr size_t kMaxName = 64;       // reasons, methods, signal names, TERM
inline constexpr size_t kMaxText = 1024;     // messages, requests
inline constexpr size_t kMaxCommand = 32 * 1024;
inline constexpr size_t kMaxEnvVars = 32;    // as the node's max_env_vars
inline constexpr size_t kMaxEnvVar = 4096;   // one NAME=value
inline constexpr size_t kMaxSid = 64;

enum class Type : uint8_t {
  login = 1,
  auth_refused = 2,
  rejected = 3,
  open_session = 4,
  resize = 5,
  signal = 6,
  end_session = 7,
  rate_check = 8,
  proxied = 9,
  login_ok = 100,
  refused = 101,
  opened = 102,
  exited = 103,
  allowed = 104,
  audited = 105,
};

std::string_view type_name(Type type);

enum class Program : uint8_t { shell = 0, exec = 1, sftp = 2 };

struct Login {
  std::string cert_blob;  // the certificate's wire blob, as the client offered it
  std::string login;
};
// How a refusal counts toward the source's rate limit (sshcert::Proof).
enum class Counted : uint8_t { no = 0, probe = 1, signature = 2 };
struct AuthRefused {
  std::string login, claimed_user, reason, method, message;
  Counted counted = Counted::no;
};
struct RateCheck {
  Counted proof = Counted::signature;  // probe or signature
};
struct Proxied {
  std::string header;  // PROXY protocol v2, as read off the connection
};
struct Rejected {
  std::string reason, request, message;
  uint64_t max = 0;
};
struct OpenSession {
  uint32_t channel = 0;
  Program program = Program::shell;
  std::string command;  // exec only
  bool pty = false;
  std::string term;
  uint16_t cols = 80, rows = 24;
  std::vector<std::string> env;  // NAME=value, as the client asked
};
struct Resize {
  uint32_t channel = 0;
  uint16_t cols = 0, rows = 0;
};
struct Signal {
  uint32_t channel = 0;
  std::string name;  // RFC 4254's: "INT", "TERM", ...
};
struct EndSession {
  uint32_t channel = 0;
};
struct LoginOk {
  std::string user;
  uint8_t kinds = 0;  // KindSet's bits
  bool permit_pty = false;
  std::optional<std::string> force_command;
  int64_t valid_before = 0;
};
struct Refused {
  std::string reason, message;
};
struct Opened {
  uint32_t channel = 0;
  std::string sid;
};
struct Exited {
  uint32_t channel = 0;
  int32_t wait_status = 0;
};
struct Allowed {
  bool yes = false;
};
struct Audited {};

using Request =
    std::variant<Login, AuthRefused, Rejected, OpenSession, Resize, Signal, EndSession, RateCheck,
                 Proxied>;
using Reply = std::variant<LoginOk, Refused, Opened, Exited, Allowed, Audited>;

std::string encode(const Request& request);
std::string encode(const Reply& reply);
// Strict: the whole packet or an error saying which field is wrong.
Result<Request> decode_request(std::string_view packet);
Result<Reply> decode_reply(std::string_view packet);

// The reasons and methods an auth_refused may name (what the front end's
// checks produce), and the reasons of a rejected: anything else is a
// protocol violation, so a front end cannot write free-form event kinds.
bool known_auth_reason(std::string_view reason);
bool known_auth_method(std::string_view method);
bool known_rejection_reason(std::string_view reason);

// One packet over a SOCK_SEQPACKET socket, with fds (SCM_RIGHTS) if any.
// recv_packet: the packet and the fds that came with it (at most
// `max_fds`; more, or a cut packet, is an error and none are kept); an
// empty packet with no error means the peer closed.
Result<void> send_packet(int fd, std::string_view packet, const std::vector<int>& fds = {});
struct Packet {
  std::string bytes;
  std::vector<int> fds;  // owned by the caller
  bool closed = false;
};
Result<Packet> recv_packet(int fd, size_t max_fds);

}  // namespace vigil::privsep
