#include "engine/host.hpp"

#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

namespace vigil::host {
namespace {

constexpr long kTracefsMagic = 0x74726163;

bool has_cap(const __user_cap_data_struct (&data)[2], int cap) {
  return data[cap / 32].effective & (1u << (cap % 32));
}

}  // namespace

Result<void> require_bpf_privileges() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) return Error::sys("cannot read capabilities");
  std::string missing;
  if (!has_cap(data, CAP_SYS_ADMIN)) missing += " CAP_SYS_ADMIN";
  if (!has_cap(data, CAP_BPF) && !has_cap(data, CAP_SYS_ADMIN)) missing += " CAP_BPF";
  if (!missing.empty())
    return Error{"enhanced recording needs root (missing" + missing +
                     "): run vigil as root, e.g. with sudo",
                 EPERM};
  return {};
}

Result<void> ensure_tracefs() {
  struct statfs st{};
  if (statfs(kTracefs, &st) == 0 && st.f_type == kTracefsMagic) return {};
  if (mkdir(kTracefs, 0700) != 0 && errno != EEXIST)
    return Error::sys(std::string("cannot create ") + kTracefs + " to mount tracefs");
  if (mount("tracefs", kTracefs, "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return Error::sys(std::string("cannot mount tracefs at ") + kTracefs +
                      " (syscall and socket tracepoints need it)");
  return {};
}

bool tracepoint_exists(const std::string& category, const std::string& name) {
  if (!ensure_tracefs()) return false;
  struct stat st{};
  return stat((std::string(kTracefs) + "/events/" + category + "/" + name).c_str(), &st) == 0;
}

}  // namespace vigil::host
