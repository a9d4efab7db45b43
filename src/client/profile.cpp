#include "client/profile.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "ca/key_file.hpp"

namespace vigil::client {

namespace {

constexpr size_t kMaxProfileBytes = 64 * 1024;
constexpr size_t kMaxCredentialFile = 256 * 1024;

// A proxy address or user name becomes part of a path: only what cannot
// climb out of the directory or hide a file.
bool safe_component(std::string_view s) {
  if (s.empty() || s.size() > 255 || s.front() == '.' || s.front() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '@' || c == ':' ||
           c == '[' || c == ']';
  });
}

Result<void> make_private_dir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Error::sys("create " + path);
  struct stat st{};
  if (lstat(path.c_str(), &st) != 0) return Error::sys("stat " + path);
  if (!S_ISDIR(st.st_mode))
    return Error::of(Errc::failed_precondition,
                     path + " is not a directory: move it away and log in again");
  if (st.st_uid != geteuid())
    return Error::of(Errc::permission_denied,
                     path + " belongs to another user: use a directory of your own (VSH_HOME)");
  if (st.st_mode & 022)
    return Error::of(Errc::permission_denied,
                     path + " can be written by group or others, who could swap your keys: "
                            "chmod 700 " + path);
  return {};
}

Result<std::string> read_small(const std::string& path, size_t max, bool secret) {
  if (secret) {
    auto s = ca::read_private_file(path, max);
    if (!s) return s.error();
    return std::string(s->view());
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Error::sys("open " + path);
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return Error::sys("read " + path, e);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max) {
      ::close(fd);
      return Error::of(Errc::invalid_argument,
                       path + " is larger than " + std::to_string(max) +
                           " bytes: it is not a profile file; remove it and log in again");
    }
  }
  ::close(fd);
  return out;
}

nlohmann::json to_json(const Profile& p) {
  return {{"proxy", p.proxy},     {"user", p.user},   {"cluster", p.cluster},
          {"logins", p.logins},   {"roles", p.roles}, {"kinds", p.kinds},
          {"valid_until", p.valid_until}, {"insecure", p.insecure}, {"ca_pin", p.ca_pin},
          {"proxy_ssh_port", p.proxy_ssh_port}};
}

Result<Profile> from_json(const std::string& path, std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) {
    return Error::of(Errc::data_loss, path + ": " + what + ": remove it and log in again");
  };
  if (!j.is_object()) return bad("not a profile (not a JSON object)");
  Profile p;
  auto str = [&](const char* key, std::string& out) -> bool {
    if (!j.contains(key) || !j[key].is_string()) return false;
    out = j[key].get<std::string>();
    return true;
  };
  auto strs = [&](const char* key, std::vector<std::string>& out) -> bool {
    if (!j.contains(key) || !j[key].is_array()) return false;
    for (const auto& v : j[key]) {
      if (!v.is_string()) return false;
      out.push_back(v.get<std::string>());
    }
    return true;
  };
  if (!str("proxy", p.proxy) || !str("user", p.user) || !str("cluster", p.cluster) ||
      !str("ca_pin", p.ca_pin) || !strs("logins", p.logins) || !strs("roles", p.roles) ||
      !strs("kinds", p.kinds) || !j.contains("valid_until") ||
      !j["valid_until"].is_number_integer() || !j.contains("insecure") ||
      !j["insecure"].is_boolean() || !j.contains("proxy_ssh_port") ||
      !j["proxy_ssh_port"].is_number_unsigned() || j["proxy_ssh_port"].get<uint64_t>() == 0 ||
      j["proxy_ssh_port"].get<uint64_t>() > 65535)
    return bad("a field is missing or of the wrong type");
  p.proxy_ssh_port = static_cast<uint16_t>(j["proxy_ssh_port"].get<uint64_t>());
  p.valid_until = j["valid_until"].get<int64_t>();
  p.insecure = j["insecure"].get<bool>();
  if (!safe_component(p.proxy) || !safe_component(p.user))
    return bad("its proxy or user is not a valid name");
  return p;
}

}  // namespace

std::string profile_file_name(std::string_view proxy) {
  std::string out(proxy);
  std::replace(out.begin(), out.end(), ':', '_');
  return out;
}

Result<ProfileStore> ProfileStore::open_default() {
  if (const char* home = std::getenv("VSH_HOME"); home && *home) return open(home);
  const char* home = std::getenv("HOME");
  if (!home || !*home)
    return Error::of(Errc::failed_precondition,
                     "neither VSH_HOME nor HOME is set: set one to where vsh keeps its keys");
  return open(std::string(home) + "/.vsh");
}

Result<ProfileStore> ProfileStore::open(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (auto r = make_private_dir(dir); !r) return r.error();
  for (const char* sub : {"/profiles", "/keys"})
    if (auto r = make_private_dir(dir + sub); !r) return r.error();
  return ProfileStore(std::move(dir));
}

ProfilePaths ProfileStore::paths(const Profile& p) const {
  ProfilePaths out;
  out.dir = dir_ + "/keys/" + profile_file_name(p.proxy);
  std::string base = out.dir + "/" + p.user;
  out.ssh_key = base;
  out.ssh_public_key = base + ".pub";
  out.ssh_certificate = base + "-cert.pub";
  out.tls_key = base + "-tls.key";
  out.tls_certificate = base + "-x509.pem";
  out.tls_cas = out.dir + "/cas.pem";
  out.known_hosts = out.dir + "/known_hosts";
  return out;
}

Result<void> ProfileStore::save(const Profile& p, const Credentials& c) {
  if (!safe_component(p.proxy))
    return Error::of(Errc::invalid_argument,
                     "the proxy address '" + p.proxy + "' is not host:port");
  if (!safe_component(p.user))
    return Error::of(Errc::invalid_argument, "the user name '" + p.user + "' cannot name a file");
  ProfilePaths where = paths(p);
  if (auto r = make_private_dir(where.dir); !r) return r;
  const std::pair<const std::string*, std::pair<const std::string*, unsigned>> files[] = {
      {&where.ssh_key, {&c.ssh_private_key, 0600}},
      {&where.ssh_public_key, {&c.ssh_public_key, 0644}},
      {&where.ssh_certificate, {&c.ssh_certificate, 0644}},
      {&where.tls_key, {&c.tls_private_key, 0600}},
      {&where.tls_certificate, {&c.tls_certificate, 0644}},
      {&where.tls_cas, {&c.tls_cas, 0644}},
      {&where.known_hosts, {&c.known_hosts, 0644}},
  };
  for (const auto& [path, content] : files) {
    std::string text = *content.first;
    if (!text.empty() && text.back() != '\n') text += '\n';
    if (auto r = ca::write_file_atomic(*path, text, content.second); !r) return r;
  }
  std::string profile_path = dir_ + "/profiles/" + profile_file_name(p.proxy) + ".json";
  if (auto r = ca::write_file_atomic(profile_path, to_json(p).dump(2) + "\n", 0600); !r) return r;
  return ca::write_file_atomic(dir_ + "/current-profile", p.proxy + "\n", 0600);
}

Result<Profile> ProfileStore::load(std::string_view proxy) const {
  if (!safe_component(proxy))
    return Error::of(Errc::invalid_argument, "'" + std::string(proxy) + "' is not a proxy address");
  std::string path = dir_ + "/profiles/" + profile_file_name(proxy) + ".json";
  auto text = read_small(path, kMaxProfileBytes, /*secret=*/true);
  if (!text) {
    if (text.error().kind() == Errc::not_found)
      return Error::of(Errc::not_found, "not logged in to " + std::string(proxy) +
                                            ": run 'vsh login --proxy=" + std::string(proxy) +
                                            " --user=NAME'");
    return text.error();
  }
  return from_json(path, *text);
}

Result<Profile> ProfileStore::current() const {
  auto name = read_small(dir_ + "/current-profile", 1024, /*secret=*/true);
  if (!name) {
    if (name.error().kind() == Errc::not_found)
      return Error::of(Errc::not_found, "not logged in: run 'vsh login --proxy=HOST:3080 --user=NAME'");
    return name.error();
  }
  std::string proxy = *name;
  while (!proxy.empty() && (proxy.back() == '\n' || proxy.back() == ' ')) proxy.pop_back();
  return load(proxy);
}

Result<std::vector<Profile>> ProfileStore::list() const {
  std::vector<Profile> out;
  std::string dir = dir_ + "/profiles";
  DIR* d = opendir(dir.c_str());
  if (!d) return Error::sys("read " + dir);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0 && n[0] != '.')
      names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string path = dir + "/" + n;
    auto text = read_small(path, kMaxProfileBytes, /*secret=*/true);
    if (!text) return text.error();
    auto p = from_json(path, *text);
    if (!p) return p.error();
    out.push_back(std::move(*p));
  }
  return out;
}

Result<Profile> ProfileStore::remove(std::string_view proxy) {
  Result<Profile> p = proxy.empty() ? current() : load(proxy);
  if (!p) return p;
  ProfilePaths where = paths(*p);
  for (const std::string* f : {&where.ssh_key, &where.ssh_public_key, &where.ssh_certificate,
                               &where.tls_key, &where.tls_certificate, &where.tls_cas,
                               &where.known_hosts}) {
    if (unlink(f->c_str()) != 0 && errno != ENOENT) return Error::sys("remove " + *f);
  }
  (void)rmdir(where.dir.c_str());  // not empty when another user of this proxy logged in
  std::string profile_path = dir_ + "/profiles/" + profile_file_name(p->proxy) + ".json";
  if (unlink(profile_path.c_str()) != 0 && errno != ENOENT) return Error::sys("remove " + profile_path);
  auto current_name = read_small(dir_ + "/current-profile", 1024, /*secret=*/true);
  if (current_name) {
    std::string c = *current_name;
    while (!c.empty() && (c.back() == '\n' || c.back() == ' ')) c.pop_back();
    if (c == p->proxy) (void)unlink((dir_ + "/current-profile").c_str());
  }
  return p;
}

}  // namespace vigil::client
