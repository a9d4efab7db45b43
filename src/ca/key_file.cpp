#include "ca/key_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "common/fd.hpp"

namespace vigil::ca {
namespace {

std::string octal(unsigned mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", mode & 07777);
  return text;
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Result<void> write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::sys("cannot write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

Result<void> write_file_atomic(const std::string& path, std::string_view contents, unsigned mode) {
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." +
                          std::to_string(counter.fetch_add(1));
  // O_EXCL: never reuse (or follow a link planted at) the temporary name.
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777));
  if (!fd) return Error::sys("cannot create " + tmp);
  auto written = [&]() -> Result<void> {
    if (::fchmod(fd.get(), mode & 0777) != 0) return Error::sys("cannot chmod " + tmp);
    if (auto w = write_all(fd.get(), contents, tmp); !w) return w;
    if (::fsync(fd.get()) != 0) return Error::sys("cannot sync " + tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return Error::sys("cannot rename " + tmp + " to " + path);
    return {};
  }();
  if (!written) {
    ::unlink(tmp.c_str());
    return written;
  }
  // The rename itself must survive a crash too.
  const std::string dir = directory_of(path);
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd || ::fsync(dfd.get()) != 0) return Error::sys("cannot sync directory " + dir);
  return {};
}

Result<Secret> read_private_file(const std::string& path, size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    if (errno == ELOOP)
      return Error::of(Errc::permission_denied,
                       "key file " + path + " is a symbolic link; point the configuration at the "
                       "file itself");
    return Error::sys("cannot open key file " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::sys("cannot stat key file " + path);
  if (!S_ISREG(st.st_mode))
    return Error::of(Errc::invalid_argument, "key file " + path + " is not a regular file");
  if (st.st_uid != ::geteuid())
    return Error::of(Errc::permission_denied,
                     "key file " + path + " belongs to uid " + std::to_string(st.st_uid) +
                         ", not to this process's user (uid " + std::to_string(::geteuid()) +
                         "): chown it to the user Vigil runs as");
  if (st.st_mode & 077)
    return Error::of(Errc::permission_denied,
                     "key file " + path + " is open to group or others (mode " +
                         octal(st.st_mode) + "): run chmod 600 " + path);
  if (static_cast<size_t>(st.st_size) > max_bytes)
    return Error::of(Errc::invalid_argument, "key file " + path + " is " +
                                                 std::to_string(st.st_size) +
                                                 " bytes, more than a key can be");
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');  // +1: sees a file that grew
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Secret wipe(std::move(text));
      return Error::sys("cannot read key file " + path);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > max_bytes) {
    Secret wipe(std::move(text));
    return Error::of(Errc::invalid_argument, "key file " + path + " grew while it was read");
  }
  text.resize(got);
  return Secret(std::move(text));
}

Result<void> save_private_key(const std::string& path, const PrivateKey& key,
                              std::string_view comment) {
  auto text = key.algorithm() == KeyAlgorithm::ed25519 ? key.to_openssh(comment) : key.to_pem();
  if (!text) return text.error();
  return write_file_atomic(path, text->view(), 0600);
}

Result<PrivateKey> load_private_key(const std::string& path) {
  auto text = read_private_file(path);
  if (!text) return text.error();
  auto key = PrivateKey::parse(text->view());
  if (!key) {
    Error e = key.error();
    e.message = "key file " + path + ": " + e.message;
    return e;
  }
  return key;
}

}  // namespace vigil::ca
