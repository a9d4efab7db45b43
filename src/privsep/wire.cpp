#include "privsep/wire.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "audit/utf8.hpp"
#include "ca/proxy_header.hpp"

namespace vigil::privsep {
namespace {

class Writer {
 public:
  explicit Writer(Type t) { out_.push_back(static_cast<char>(t)); }
  Writer& u8(uint8_t v) { return put(v, 1); }
  Writer& u16(uint16_t v) { return put(v, 2); }
  Writer& u32(uint32_t v) { return put(v, 4); }
  Writer& u64(uint64_t v) { return put(v, 8); }
  Writer& str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  Writer& put(uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  std::string out_;
};

bool is_utf8(std::string_view s) {
  auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  while (n > 0) {
    char32_t cp;
    size_t len = audit::utf8_decode(p, n, &cp);
    if (len == 0) return false;
    p += len;
    n -= len;
  }
  return true;
}

// Reads one packet's fields in order; the first problem sticks and names
// the field.
class Reader {
 public:
  Reader(std::string_view packet, std::string_view what) : in_(packet), what_(what) {}
  uint8_t u8(const char* field) { return static_cast<uint8_t>(get(field, 1)); }
  uint16_t u16(const char* field) { return static_cast<uint16_t>(get(field, 2)); }
  uint32_t u32(const char* field) { return static_cast<uint32_t>(get(field, 4)); }
  uint64_t u64(const char* field) { return get(field, 8); }
  bool flag(const char* field) {
    uint8_t v = u8(field);
    if (v > 1) fail(field, "is neither 0 nor 1");
    return v == 1;
  }
  // Bytes (a blob): bounded only.
  std::string bytes(const char* field, size_t max) {
    uint32_t len = u32(field);
    if (!error_.empty()) return {};
    if (len > max) {
      fail(field, "is " + std::to_string(len) + " bytes, more than " + std::to_string(max));
      return {};
    }
    if (len > in_.size() - at_) {
      fail(field, "runs past the end of the message");
      return {};
    }
    std::string s(in_.substr(at_, len));
    at_ += len;
    return s;
  }
  // Text: bounded, UTF-8, no NUL.
  std::string text(const char* field, size_t max) {
    std::string s = bytes(field, max);
    if (error_.empty() && (!is_utf8(s) || s.find('\0') != std::string::npos))
      fail(field, "is not UTF-8 text");
    return s;
  }
  void fail(const char* field, const std::string& why) {
    if (error_.empty()) error_ = std::string(what_) + ": " + field + " " + why;
  }
  Result<void> done() {
    if (error_.empty() && at_ != in_.size())
      fail("message", "has " + std::to_string(in_.size() - at_) + " bytes after its last field");
    if (!error_.empty())
      return Error::of(Errc::invalid_argument, "malformed monitor message: " + error_);
    return {};
  }

 private:
  uint64_t get(const char* field, int n) {
    if (!error_.empty()) return 0;
    if (in_.size() - at_ < static_cast<size_t>(n)) {
      fail(field, "is cut short");
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(in_[at_ + i]);
    at_ += static_cast<size_t>(n);
    return v;
  }
  std::string_view in_;
  std::string_view what_;
  size_t at_ = 1;  // after the type
  std::string error_;
};

template <class... F>
struct Overload : F... {
  using F::operator()...;
};

}  // namespace

std::string_view type_name(Type type) {
  switch (type) {
    case Type::login: return "login";
    case Type::auth_refused: return "auth_refused";
    case Type::rejected: return "rejected";
    case Type::open_session: return "open_session";
    case Type::resize: return "resize";
    case Type::signal: return "signal";
    case Type::end_session: return "end_session";
    case Type::rate_check: return "rate_check";
    case Type::proxied: return "proxied";
    case Type::login_ok: return "login_ok";
    case Type::refused: return "refused";
    case Type::opened: return "opened";
    case Type::exited: return "exited";
    case Type::allowed: return "allowed";
    case Type::audited: return "audited";
  }
  return "unknown";
}

bool known_auth_reason(std::string_view r) {
  static constexpr std::string_view kReasons[] = {
      "malformed_certificate", "untrusted_ca", "weak_signature", "bad_signature",
      "not_user_certificate", "empty_key_id", "not_yet_valid", "expired", "no_principals",
      "principal_mismatch", "unknown_critical_option", "bad_critical_option",
      "source_address_mismatch", "bad_recording_extension", "rate_limited",
      "too_many_attempts", "no_certificate", "unknown_login", "bad_client_signature",
      "method_not_allowed"};
  return std::find(std::begin(kReasons), std::end(kReasons), r) != std::end(kReasons);
}

bool known_auth_method(std::string_view m) {
  // "": no method (a connection that used up its attempts).
  static constexpr std::string_view kMethods[] = {"", "publickey", "password", "keyboard-interactive",
                                                  "none", "hostbased", "gssapi-with-mic",
                                                  "unknown"};
  return std::find(std::begin(kMethods), std::end(kMethods), m) != std::end(kMethods);
}

bool known_rejection_reason(std::string_view r) {
  static constexpr std::string_view kReasons[] = {
      "channel_limit", "port_forwarding", "channel_type", "remote_port_forwarding",
      "x11_forwarding", "channel_request", "pty_refused", "pty_not_permitted",
      "env_not_allowed", "env_limit", "agent_forwarding", "subsystem_refused"};
  return std::find(std::begin(kReasons), std::end(kReasons), r) != std::end(kReasons);
}

std::string encode(const Request& request) {
  return std::visit(
      Overload{
          [](const Login& m) { return Writer(Type::login).str(m.cert_blob).str(m.login).take(); },
          [](const AuthRefused& m) {
            return Writer(Type::auth_refused).str(m.login).str(m.claimed_user).str(m.reason)
                .str(m.method).str(m.message).u8(static_cast<uint8_t>(m.counted)).take();
          },
          [](const Rejected& m) {
            return Writer(Type::rejected).str(m.reason).str(m.request).str(m.message).u64(m.max)
                .take();
          },
          [](const OpenSession& m) {
            Writer w(Type::open_session);
            w.u32(m.channel).u8(static_cast<uint8_t>(m.program)).str(m.command)
                .u8(m.pty ? 1 : 0).str(m.term).u16(m.cols).u16(m.rows)
                .u32(static_cast<uint32_t>(m.env.size()));
            for (const auto& e : m.env) w.str(e);
            return w.take();
          },
          [](const Resize& m) { return Writer(Type::resize).u32(m.channel).u16(m.cols).u16(m.rows).take(); },
          [](const Signal& m) { return Writer(Type::signal).u32(m.channel).str(m.name).take(); },
          [](const EndSession& m) { return Writer(Type::end_session).u32(m.channel).take(); },
          [](const RateCheck& m) {
            return Writer(Type::rate_check).u8(static_cast<uint8_t>(m.proof)).take();
          },
          [](const Proxied& m) { return Writer(Type::proxied).str(m.header).take(); },
      },
      request);
}

std::string encode(const Reply& reply) {
  return std::visit(
      Overload{
          [](const LoginOk& m) {
            return Writer(Type::login_ok).str(m.user).u8(m.kinds).u8(m.permit_pty ? 1 : 0)
                .u8(m.force_command ? 1 : 0).str(m.force_command.value_or(""))
                .u64(static_cast<uint64_t>(m.valid_before)).take();
          },
          [](const Refused& m) { return Writer(Type::refused).str(m.reason).str(m.message).take(); },
          [](const Opened& m) { return Writer(Type::opened).u32(m.channel).str(m.sid).take(); },
          [](const Exited& m) {
            return Writer(Type::exited).u32(m.channel).u32(static_cast<uint32_t>(m.wait_status))
                .take();
          },
          [](const Allowed& m) { return Writer(Type::allowed).u8(m.yes ? 1 : 0).take(); },
          [](const Audited&) { return Writer(Type::audited).take(); },
      },
      reply);
}

Result<Request> decode_request(std::string_view packet) {
  if (packet.empty()) return Error::of(Errc::invalid_argument, "malformed monitor message: empty");
  if (packet.size() > kMaxMessage)
    return Error::of(Errc::invalid_argument, "malformed monitor message: " +
                     std::to_string(packet.size()) + " bytes, more than " + std::to_string(kMaxMessage));
  const auto type = static_cast<Type>(packet[0]);
  Reader r(packet, type_name(type));
  Request out;
  switch (type) {
    case Type::login: {
      Login m;
      m.cert_blob = r.bytes("cert_blob", kMaxCertBlob);
      m.login = r.text("login", kMaxLogin);
      if (m.login.empty()) r.fail("login", "is empty");
      out = std::move(m);
      break;
    }
    case Type::auth_refused: {
      AuthRefused m;
      m.login = r.text("login", kMaxLogin);
      m.claimed_user = r.text("claimed_user", kMaxLogin);
      m.reason = r.text("reason", kMaxName);
      m.method = r.text("method", kMaxName);
      m.message = r.text("message", kMaxText);
      uint8_t counted = r.u8("counted");
      if (counted > 2) r.fail("counted", "is not 0, 1 or 2");
      m.counted = static_cast<Counted>(counted);
      if (!known_auth_reason(m.reason)) r.fail("reason", "is not one of the refusal reasons");
      if (!known_auth_method(m.method)) r.fail("method", "is not one of the methods");
      out = std::move(m);
      break;
    }
    case Type::rejected: {
      Rejected m;
      m.reason = r.text("reason", kMaxName);
      m.request = r.text("request", kMaxText);
      m.message = r.text("message", kMaxText);
      m.max = r.u64("max");
      if (!known_rejection_reason(m.reason)) r.fail("reason", "is not one of the rejection reasons");
      out = std::move(m);
      break;
    }
    case Type::open_session: {
      OpenSession m;
      m.channel = r.u32("channel");
      uint8_t program = r.u8("program");
      if (program > static_cast<uint8_t>(Program::sftp)) r.fail("program", "is not shell, exec or sftp");
      m.program = static_cast<Program>(program);
      m.command = r.text("command", kMaxCommand);
      if (m.program != Program::exec && !m.command.empty())
        r.fail("command", "is given for a shell or sftp");
      m.pty = r.flag("pty");
      m.term = r.text("term", kMaxName);
      m.cols = r.u16("cols");
      m.rows = r.u16("rows");
      uint32_t count = r.u32("env_count");
      if (count > kMaxEnvVars) {
        r.fail("env_count", "is " + std::to_string(count) + ", more than " + std::to_string(kMaxEnvVars));
        count = 0;
      }
      for (uint32_t i = 0; i < count; ++i) m.env.push_back(r.text("env", kMaxEnvVar));
      out = std::move(m);
      break;
    }
    case Type::resize: {
      Resize m;
      m.channel = r.u32("channel");
      m.cols = r.u16("cols");
      m.rows = r.u16("rows");
      out = m;
      break;
    }
    case Type::signal: {
      Signal m;
      m.channel = r.u32("channel");
      m.name = r.text("name", kMaxName);
      out = std::move(m);
      break;
    }
    case Type::end_session: {
      EndSession m;
      m.channel = r.u32("channel");
      out = m;
      break;
    }
    case Type::rate_check: {
      RateCheck m;
      uint8_t proof = r.u8("proof");
      if (proof != 1 && proof != 2) r.fail("proof", "is not 1 or 2");
      m.proof = static_cast<Counted>(proof);
      out = m;
      break;
    }
    case Type::proxied: {
      Proxied m;
      m.header = r.bytes("header", ca::kMaxProxyHeader);
      if (m.header.empty()) r.fail("header", "is empty");
      out = std::move(m);
      break;
    }
    default:
      return Error::of(Errc::invalid_argument, "malformed monitor message: type " +
                       std::to_string(static_cast<unsigned char>(packet[0])) +
                       " is not a request");
  }
  if (auto done = r.done(); !done) return done.error();
  return out;
}

Result<Reply> decode_reply(std::string_view packet) {
  if (packet.empty() || packet.size() > kMaxMessage)
    return Error::of(Errc::invalid_argument, "malformed monitor reply: empty or too long");
  const auto type = static_cast<Type>(packet[0]);
  Reader r(packet, type_name(type));
  Reply out;
  switch (type) {
    case Type::login_ok: {
      LoginOk m;
      m.user = r.text("user", kMaxLogin);
      m.kinds = r.u8("kinds");
      m.permit_pty = r.flag("permit_pty");
      bool force = r.flag("has_force");
      std::string command = r.text("force_command", kMaxCommand);
      if (force) m.force_command = std::move(command);
      m.valid_before = static_cast<int64_t>(r.u64("valid_before"));
      out = std::move(m);
      break;
    }
    case Type::refused: {
      Refused m;
      m.reason = r.text("reason", kMaxName);
      m.message = r.text("message", kMaxText);
      out = std::move(m);
      break;
    }
    case Type::opened: {
      Opened m;
      m.channel = r.u32("channel");
      m.sid = r.text("sid", kMaxSid);
      out = std::move(m);
      break;
    }
    case Type::exited: {
      Exited m;
      m.channel = r.u32("channel");
      m.wait_status = static_cast<int32_t>(r.u32("wait_status"));
      out = m;
      break;
    }
    case Type::allowed: {
      out = Allowed{r.flag("yes")};
      break;
    }
    case Type::audited:
      out = Audited{};
      break;
    default:
      return Error::of(Errc::invalid_argument, "malformed monitor reply: type " +
                       std::to_string(static_cast<unsigned char>(packet[0])) + " is not a reply");
  }
  if (auto done = r.done(); !done) return done.error();
  return out;
}

Result<void> send_packet(int fd, std::string_view packet, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(packet.data()), packet.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(packet.size())) return {};
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::sys("monitor socket: send");
    return Error::of(Errc::internal, "monitor socket: a packet was cut on send");
  }
}

Result<Packet> recv_packet(int fd, size_t max_fds) {
  Packet out;
  out.bytes.resize(kMaxMessage + 1);  // one more: a longer packet shows as cut
  iovec iov{out.bytes.data(), out.bytes.size()};
  // Room for a few more fds than allowed, so that extra ones are seen (and
  // closed) rather than silently dropped by the kernel with MSG_CTRUNC.
  std::vector<char> control(CMSG_SPACE(sizeof(int) * (max_fds + 4)));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Error::sys("monitor socket: receive");
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int got;
      std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      out.fds.push_back(got);
    }
  }
  auto refuse = [&](const std::string& why) -> Result<Packet> {
    for (int f : out.fds) close(f);
    return Error::of(Errc::invalid_argument, "monitor socket: " + why);
  };
  if (msg.msg_flags & MSG_TRUNC) return refuse("a packet longer than " + std::to_string(kMaxMessage) + " bytes");
  if ((msg.msg_flags & MSG_CTRUNC) || out.fds.size() > max_fds)
    return refuse("a packet came with more fds than its type carries");
  if (n == 0) {
    if (!out.fds.empty()) return refuse("an empty packet with fds");
    out.closed = true;
  }
  out.bytes.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace vigil::privsep
