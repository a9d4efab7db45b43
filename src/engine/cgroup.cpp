#include "engine/cgroup.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "common/fd.hpp"

namespace vigil::cgroup {
namespace {

constexpr long kCgroup2Magic = 0x63677270;

bool is_cgroup2(const std::string& path) {
  struct statfs st{};
  return statfs(path.c_str(), &st) == 0 && st.f_type == kCgroup2Magic;
}

Result<void> mkdir_p(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string part = path.substr(0, pos);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      return Error::sys("cannot create " + part);
  }
  return {};
}

}  // namespace

Result<bool> ensure_mounted(const std::string& path) {
  if (is_cgroup2(path)) {
    // The root of the hierarchy has no cgroup.type; only a root lets the
    // session level be known from the path.
    struct stat st{};
    if (stat((path + "/cgroup.type").c_str(), &st) == 0)
      return Error{"cgroup_path " + path +
                   " is a cgroup v2 directory but not the root of the hierarchy: point "
                   "cgroup_path at a cgroup2 mount (e.g. /cgroup2)"};
    return false;
  }
  if (auto made = mkdir_p(path); !made) return made.error();
  if (mount("cgroup2", path.c_str(), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return Error::sys("cannot mount cgroup2 at " + path +
                      " (enhanced recording needs cgroup v2; set "
                      "ssh_service.enhanced_recording.cgroup_path to an existing cgroup2 mount)");
  return true;
}

Result<void> make_dirs(const std::string& path) { return mkdir_p(path); }

Result<uint64_t> id_of(const std::string& dir) {
  // cgroup2 file handles carry the 64-bit kernfs id the BPF helpers return.
  struct {
    file_handle fh;
    uint64_t id;
  } h{};
  h.fh.handle_bytes = sizeof(uint64_t);
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, dir.c_str(), &h.fh, &mount_id, 0) != 0)
    return Error::sys("cannot read the cgroup id of " + dir);
  uint64_t id = 0;
  std::memcpy(&id, h.fh.f_handle, sizeof(id));
  return id;
}

uint32_t level_below(const std::string& root, const std::string& dir) {
  uint32_t level = 0;
  bool in_part = false;
  for (size_t i = root.size(); i < dir.size(); ++i) {
    if (dir[i] == '/') {
      in_part = false;
    } else if (!in_part) {
      in_part = true;
      ++level;
    }
  }
  return level;
}

std::vector<pid_t> procs(const std::string& dir) {
  std::vector<pid_t> out;
  std::ifstream in(dir + "/cgroup.procs");
  pid_t pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

Result<bool> populated(const std::string& dir) {
  std::ifstream in(dir + "/cgroup.events");
  if (!in) return Error::sys("cannot read " + dir + "/cgroup.events");
  std::string key;
  int value = 0;
  while (in >> key >> value)
    if (key == "populated") return value != 0;
  return Error{dir + "/cgroup.events has no \"populated\" line"};
}

Result<size_t> kill_all(const std::string& dir) {
  size_t count = procs(dir).size();
  auto busy = populated(dir);
  if (!busy) return busy.error();
  if (!*busy) return count;
  {
    Fd kill(open((dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC));
    if (!kill || write(kill.get(), "1", 1) != 1)
      return Error::sys("cannot kill the processes of " + dir + " (cgroup.kill needs Linux 5.14)");
  }
  // SIGKILL is delivered at once, but a process exits only when it leaves
  // the kernel (a slow NFS read, a D state): wait for that, bounded.
  for (int i = 0; i < 1000; ++i) {
    busy = populated(dir);
    if (!busy) return busy.error();
    if (!*busy) return count;
    usleep(i < 100 ? 1000 : 10000);
  }
  return Error{"processes of " + dir + " were killed but had not exited after 10 s"};
}

Result<void> remove(const std::string& dir) {
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) return Error::sys("cannot remove cgroup " + dir);
  return {};
}

}  // namespace vigil::cgroup
