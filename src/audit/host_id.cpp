#include "audit/host_id.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <fstream>

#include "audit/uuid.hpp"
#include "common/fd.hpp"

namespace vigil::audit {
namespace {

bool looks_like_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

Result<void> mkdir_p(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string part = path.substr(0, pos);
    if (mkdir(part.c_str(), 0750) != 0 && errno != EEXIST)
      return Error::sys("cannot create data_dir " + part);
  }
  return {};
}

}  // namespace

Result<std::string> load_or_create_host_uuid(const std::string& data_dir) {
  std::string path = data_dir + "/host_uuid";
  std::string id;
  if (std::ifstream in(path); in && std::getline(in, id)) {
    if (!looks_like_uuid(id))
      return Error{path + " does not hold a UUID (\"" + id.substr(0, 40) +
                   "\"): fix or remove it, and a new one is made"};
    return id;
  }
  if (auto r = mkdir_p(data_dir); !r) return r.error();
  // Written to a temporary name and linked into place: two first runs at
  // once agree on one id, and a crash never leaves half a file.
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  id = new_uuid();
  {
    Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    std::string line = id + "\n";
    if (!fd || write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
        fsync(fd.get()) != 0)
      return Error::sys("cannot write " + tmp);
  }
  if (link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
    Error e = Error::sys("cannot create " + path);
    unlink(tmp.c_str());
    return e;
  }
  unlink(tmp.c_str());
  std::ifstream in(path);
  std::getline(in, id);
  if (!looks_like_uuid(id)) return Error{path + " does not hold a UUID"};
  return id;
}

}  // namespace vigil::audit
