// What `vsh login` keeps for the commands after it: the proxy, the user,
// the keys and the short-lived certificates, under ~/.vsh (or $VSH_HOME),
// in files plain OpenSSH can use directly (`vsh config` points ssh at them).
//
//   ~/.vsh/                         0700
//     current-profile               the proxy of the profile in use ("host:port")
//     profiles/<proxy>.json         proxy, user, cluster, logins, kinds, expiry, trust
//     keys/<proxy>/                 0700
//       <user>                      Ed25519 private key, OpenSSH format, 0600
//       <user>.pub                  its public key line
//       <user>-cert.pub             the SSH user certificate (one line)
//       <user>-tls.key              P-256 private key, PKCS#8 PEM, 0600
//       <user>-x509.pem             the TLS user certificate
//       cas.pem                     the cluster's TLS CA certificates
//       known_hosts                 "@cert-authority" line(s) of the host CA
// where <proxy> is the proxy's address with ':' as '_' (a file name on any
// system). Every file is written atomically; key files are refused when
// group or others can read them, as ssh refuses them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ca/key.hpp"
#include "common/result.hpp"

namespace vigil::client {

struct Profile {
  std::string proxy;    // "host:port" of the proxy's web API
  uint16_t proxy_ssh_port = 3023;  // the proxy's SSH port (same host)
  std::string user;
  std::string cluster;
  std::vector<std::string> logins;
  std::vector<std::string> roles;
  std::vector<std::string> kinds;   // enhanced recording kinds in the certificate
  int64_t valid_until = 0;          // unix seconds: the certificates' expiry
  bool insecure = false;            // the proxy's certificate was not checked (--insecure)
  std::string ca_pin;               // "sha256:..." of the cluster's TLS CA
  bool operator==(const Profile&) const = default;
};

// The credentials of a login, as the auth service returned them plus the
// keys made for them on this machine.
struct Credentials {
  std::string ssh_private_key;      // OpenSSH text (a Secret's bytes)
  std::string ssh_public_key;       // "ssh-ed25519 AAAA... user"
  std::string ssh_certificate;      // "ssh-ed25519-cert-v01@openssh.com AAAA..."
  std::string tls_private_key;      // PKCS#8 PEM
  std::string tls_certificate;      // PEM
  std::string tls_cas;              // PEM, one or more
  std::string known_hosts;          // "@cert-authority ..." lines
};

// Where each file of a profile is.
struct ProfilePaths {
  std::string dir;  // keys/<proxy>
  std::string ssh_key, ssh_public_key, ssh_certificate;
  std::string tls_key, tls_certificate, tls_cas, known_hosts;
};

class ProfileStore {
 public:
  // $VSH_HOME, else $HOME/.vsh; created 0700 when missing. A directory that
  // group or others can write is refused (someone else could swap keys).
  static Result<ProfileStore> open_default();
  static Result<ProfileStore> open(std::string dir);

  const std::string& dir() const { return dir_; }
  ProfilePaths paths(const Profile& p) const;

  // Writes the credentials, then the profile, then makes it the current one.
  Result<void> save(const Profile& p, const Credentials& c);
  // The current profile: not_found (with "run vsh login") when there is none.
  Result<Profile> current() const;
  // Every profile kept, sorted by proxy.
  Result<std::vector<Profile>> list() const;
  // Deletes the profile of proxy (its keys and certificates); the current
  // one when proxy is empty. not_found when there is none.
  Result<Profile> remove(std::string_view proxy = {});

 private:
  explicit ProfileStore(std::string dir) : dir_(std::move(dir)) {}
  Result<Profile> load(std::string_view proxy) const;
  std::string dir_;
};

// "host:port" -> "host_port" (what the files of a profile are named by).
std::string profile_file_name(std::string_view proxy);

}  // namespace vigil::client
