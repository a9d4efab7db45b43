#include "client/admin.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>

#include "client/pem.hpp"
#include "config/config.hpp"

namespace vigil::client {

namespace {

constexpr size_t kMaxFile = 256 * 1024;

// A file of the admin identity: regular, not a link, at most kMaxFile;
// with `secret`, closed to group and others and owned by the caller or the
// caller is root (vigilctl as root reads the service user's files).
Result<std::string> read_identity_file(const std::string& path, bool secret) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT)
      return Error::of(Errc::not_found,
                       path + " is missing: start the auth service on this host first "
                              "(vigil start), it writes vigilctl's identity there");
    return Error::sys("read " + path);
  }
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error::of(Errc::permission_denied, path + " is not a regular file");
  }
  if (secret && (st.st_mode & 077)) {
    ::close(fd);
    return Error::of(Errc::permission_denied,
                     path + " is open to group or others: chmod 600 " + path);
  }
  if (secret && st.st_uid != geteuid() && geteuid() != 0) {
    ::close(fd);
    return Error::of(Errc::permission_denied,
                     path + " belongs to another user: run vigilctl as root or as that user");
  }
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFile) break;
  }
  ::close(fd);
  if (out.size() > kMaxFile) return Error::of(Errc::data_loss, path + " is too large");
  return out;
}

std::string loopback_if_wildcard(const std::string& addr) {
  for (const char* any : {"0.0.0.0:", "[::]:"}) {
    std::string prefix = any;
    if (addr.rfind(prefix, 0) == 0)
      return (prefix[0] == '[' ? "[::1]:" : "127.0.0.1:") + addr.substr(prefix.size());
  }
  return addr;
}

}  // namespace

Result<AdminTarget> admin_target(const std::string& config_file, bool given) {
  Result<config::Config> cfg = config::defaults();
  if (given || access(config_file.c_str(), F_OK) == 0) cfg = config::load_file(config_file);
  if (!cfg) return cfg.error();
  AdminTarget t;
  t.auth_address = loopback_if_wildcard(cfg->auth.listen_addr);
  t.admin_dir = cfg->data_dir + "/admin";
  t.cluster = cfg->cluster_name;
  if (!cfg->proxy.public_addr.empty()) {
    t.proxy_address = cfg->proxy.public_addr.front();
  } else {
    auto web = cfg->proxy.web_listen_addr;
    t.proxy_address = cfg->nodename + web.substr(web.rfind(':'));
  }
  return t;
}

Result<std::unique_ptr<api::Client>> connect_as_admin(const AdminTarget& target) {
  auto key_text = read_identity_file(target.admin_dir + "/key.pem", true);
  if (!key_text) return key_text.error();
  auto cert_text = read_identity_file(target.admin_dir + "/cert.pem", false);
  if (!cert_text) return cert_text.error();
  auto ca_text = read_identity_file(target.admin_dir + "/ca.pem", false);
  if (!ca_text) return ca_text.error();
  auto key = ca::PrivateKey::parse(*key_text);
  if (!key) return key.error();
  auto cert = ca::TlsCertificate::from_pem(*cert_text);
  if (!cert) return cert.error();
  auto cas = split_pem_certificates(*ca_text);
  if (!cas) return cas.error();
  api::ClientOptions o;
  o.address = target.auth_address;
  o.trusted = std::move(*cas);
  o.cluster = target.cluster;
  o.key = &*key;
  o.certificate = std::move(*cert);
  auto c = api::Client::connect(std::move(o));
  if (!c)
    return Error::of(c.error().kind(), "cannot reach the auth service at " + target.auth_address +
                                           " (is vigil start running?): " + c.error().message);
  // "auth": authsvc::kAuthServerRole (a node's certificate lacks it).
  if (auto r = api::require_server_role(**c, target.auth_address, "auth"); !r) return r.error();
  return c;
}

std::string format_api_time(const std::string& rfc3339) {
  std::tm tm{};
  const char* end = strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return rfc3339;
  char buf[64];
  std::strftime(buf, sizeof buf, "%d %b %y %H:%M UTC", &tm);
  return buf;
}

std::string proxy_of_url(const std::string& url) {
  std::string rest = url;
  if (auto scheme = rest.find("://"); scheme != std::string::npos) rest = rest.substr(scheme + 3);
  return rest.substr(0, rest.find('/'));
}

}  // namespace vigil::client
