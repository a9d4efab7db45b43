#include "audit/syscall_names.hpp"

#include <fcntl.h>

#include <cerrno>
#include <charconv>

namespace vigil::audit {
namespace {

struct Name {
  int value;
  std::string_view name;
};

constexpr Name kErrnos[] = {
    {EPERM, "EPERM"},
    {ENOENT, "ENOENT"},
    {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},
    {EIO, "EIO"},
    {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},
    {ENOEXEC, "ENOEXEC"},
    {EBADF, "EBADF"},
    {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"},
    {ENODEV, "ENODEV"},
    {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},
    {ENFILE, "ENFILE"},
    {EMFILE, "EMFILE"},
    {ETXTBSY, "ETXTBSY"},
    {EFBIG, "EFBIG"},
    {ENOSPC, "ENOSPC"},
    {EROFS, "EROFS"},
    {EMLINK, "EMLINK"},
    {ENAMETOOLONG, "ENAMETOOLONG"},
    {ENOSYS, "ENOSYS"},
    {ELOOP, "ELOOP"},
    {EOVERFLOW, "EOVERFLOW"},
    {ELIBBAD, "ELIBBAD"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {EAFNOSUPPORT, "EAFNOSUPPORT"},
    {EADDRINUSE, "EADDRINUSE"},
    {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
    {ENETUNREACH, "ENETUNREACH"},
    {ECONNRESET, "ECONNRESET"},
    {EISCONN, "EISCONN"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ECONNREFUSED, "ECONNREFUSED"},
    {EHOSTUNREACH, "EHOSTUNREACH"},
    {EALREADY, "EALREADY"},
    {EINPROGRESS, "EINPROGRESS"},
    {EDQUOT, "EDQUOT"},
};

// Checked in this order, each clearing its bits: a flag made of several
// bits (O_SYNC holds O_DSYNC, O_TMPFILE holds O_DIRECTORY) comes before
// its parts so that they are not named twice.
constexpr Name kOpenFlags[] = {
    {O_CREAT, "O_CREAT"},
    {O_EXCL, "O_EXCL"},
    {O_NOCTTY, "O_NOCTTY"},
    {O_TRUNC, "O_TRUNC"},
    {O_APPEND, "O_APPEND"},
    {O_NONBLOCK, "O_NONBLOCK"},
    {O_SYNC, "O_SYNC"},
    {O_DSYNC, "O_DSYNC"},
    {O_ASYNC, "O_ASYNC"},
    {O_DIRECT, "O_DIRECT"},
    {O_TMPFILE, "O_TMPFILE"},
    {O_DIRECTORY, "O_DIRECTORY"},
    {O_NOFOLLOW, "O_NOFOLLOW"},
    {O_NOATIME, "O_NOATIME"},
    {O_CLOEXEC, "O_CLOEXEC"},
    {O_PATH, "O_PATH"},
};

}  // namespace

std::string_view errno_name(int err) {
  for (const Name& e : kErrnos)
    if (e.value == err) return e.name;
  return {};
}

void append_open_flags(std::string& out, int32_t flags) {
  auto bits = static_cast<uint32_t>(flags);
  switch (bits & O_ACCMODE) {
    case O_RDONLY: out += "O_RDONLY"; break;
    case O_WRONLY: out += "O_WRONLY"; break;
    case O_RDWR: out += "O_RDWR"; break;
    default: out += "O_ACCMODE"; break;  // 3: neither read nor write, for ioctls only
  }
  bits &= ~static_cast<uint32_t>(O_ACCMODE);
  for (const Name& f : kOpenFlags) {
    const auto value = static_cast<uint32_t>(f.value);
    if ((bits & value) != value) continue;
    out += '|';
    out += f.name;
    bits &= ~value;
  }
  if (bits != 0) {
    char hex[16];
    const auto res = std::to_chars(hex, hex + sizeof hex, bits, 16);
    out += "|0x";
    out.append(hex, res.ptr);
  }
}

}  // namespace vigil::audit
