#include "engine/account.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace vigil {
namespace {

// NSS entries are small; a buffer that still does not fit at this size
// means a broken NSS module, not an account.
constexpr size_t kMaxEntryBuffer = 1 << 20;
// More groups than Linux's NGROUPS_MAX (65536) cannot be set anyway.
constexpr int kMaxGroups = 65536;

Result<Credentials> from_passwd(const passwd& pw) {
  Credentials c;
  c.uid = pw.pw_uid;
  c.gid = pw.pw_gid;
  c.name = pw.pw_name;
  c.home = pw.pw_dir && *pw.pw_dir ? pw.pw_dir : "/";
  c.shell = pw.pw_shell && *pw.pw_shell ? pw.pw_shell : "/bin/sh";
  // getgrouplist is MT-safe in glibc (it keeps no static state); it says
  // how many groups there are when the array is too small.
  int n = 64;
  c.groups.resize(n);
  while (getgrouplist(pw.pw_name, pw.pw_gid, c.groups.data(), &n) < 0) {
    if (n <= static_cast<int>(c.groups.size()) || n > kMaxGroups)
      return Error{"cannot read the groups of " + c.name};
    c.groups.resize(n);
  }
  c.groups.resize(n);
  return c;
}

// getpwnam_r or getpwuid_r with a buffer grown until the entry fits.
template <class Lookup>
Result<Credentials> lookup(const std::string& what, Lookup&& call) {
  long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<size_t>(hint) : 4096);
  for (;;) {
    passwd pw{};
    passwd* found = nullptr;
    int rc = call(&pw, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < kMaxEntryBuffer) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0) return Error{"cannot look up " + what + ": " + std::strerror(rc), rc};
    if (!found) return Error{"no such user: " + what};
    return from_passwd(pw);
  }
}

}  // namespace

Result<Credentials> credentials_for(const std::string& login) {
  return lookup(login, [&](passwd* pw, char* buf, size_t size, passwd** found) {
    return getpwnam_r(login.c_str(), pw, buf, size, found);
  });
}

Result<Credentials> current_credentials() {
  uid_t uid = getuid();
  return lookup("uid " + std::to_string(uid), [&](passwd* pw, char* buf, size_t size, passwd** found) {
    return getpwuid_r(uid, pw, buf, size, found);
  });
}

}  // namespace vigil
