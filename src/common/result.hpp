// Result<T>: a value or an Error a person can act on. Expected failures
// (a missing kernel feature, bad config, a refused login) travel as values;
// bugs are assertions.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vigil {

// What kind of failure an Error is, so that a caller (an API mapping it to
// a status, a CLI choosing an exit code, a retry loop) can act on it without
// reading the message. The names follow the usual RPC status codes.
enum class Errc {
  unspecified = 0,      // not classified: derived from err (errno) if set
  invalid_argument,     // the caller's input is wrong (config, request, flag)
  not_found,            // what was named does not exist
  already_exists,       // what was to be created exists
  permission_denied,    // authenticated, but not allowed
  unauthenticated,      // no valid credential (bad password, forged/expired cert)
  failed_precondition,  // the system is not in a state that allows it (kernel lacks a feature)
  resource_exhausted,   // a limit or quota was reached (disk full, too many sessions)
  unavailable,          // transient: retry later (peer down, connection refused)
  deadline_exceeded,    // it took too long
  data_loss,            // stored data is corrupt or cut
  internal,             // a failure of ours or of the system not covered above
};

std::string_view errc_name(Errc c);

// The class of an errno value.
constexpr Errc errc_from_errno(int e) {
  switch (e) {
    case 0: return Errc::unspecified;
    case ENOENT: case ESRCH: case ENXIO: return Errc::not_found;
    case EEXIST: return Errc::already_exists;
    case EACCES: case EPERM: case EROFS: return Errc::permission_denied;
    case EINVAL: case ENAMETOOLONG: case E2BIG: case ENOTDIR: case EISDIR: return Errc::invalid_argument;
    case ENOSPC: case EDQUOT: case EMFILE: case ENFILE: case ENOMEM: case EMLINK: return Errc::resource_exhausted;
    case EAGAIN: case EBUSY: case ECONNREFUSED: case ECONNRESET: case EHOSTUNREACH: case ENETUNREACH:
    case EPIPE: case EINTR: return Errc::unavailable;
    case ETIMEDOUT: return Errc::deadline_exceeded;
    case ENOSYS: case EOPNOTSUPP: return Errc::failed_precondition;
    default: return Errc::internal;
  }
}

struct Error {
  std::string message;  // what went wrong and what to do about it
  int err = 0;          // errno when a system call failed, else 0
  Errc code = Errc::unspecified;  // set where the kind is known; see kind()

  static Error sys(std::string what, int e = errno) {
    return Error{std::move(what) + ": " + std::strerror(e), e};
  }
  static Error of(Errc c, std::string what) { return Error{std::move(what), 0, c}; }

  // The error's class: the code given, else the errno's class, else internal.
  Errc kind() const {
    if (code != Errc::unspecified) return code;
    Errc from = errc_from_errno(err);
    return from == Errc::unspecified ? Errc::internal : from;
  }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool ok_ = true;
};

}  // namespace vigil
