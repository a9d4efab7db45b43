#include "ssh/host_key.hpp"

#include <fcntl.h>
#include <libssh/libssh.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vigil::ssh {

Result<void> ensure_host_key(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) == 0) {
    if (st.st_mode & 077)
      return Error{path + ": the host key is open to group or others; chmod 600 it"};
    ssh_key key = nullptr;
    if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK)
      return Error{path + ": cannot read the host key (not an OpenSSH private key?)"};
    ssh_key_free(key);
    return {};
  }
  if (errno != ENOENT) return Error::sys("cannot stat " + path);

  ssh_key key = nullptr;
  if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK)
    return Error{"cannot generate an ed25519 host key"};
  // Written under a temporary name with mode 0600 from the start, then
  // renamed: a crash never leaves a half-written or world-readable key.
  std::string tmp = path + ".tmp";
  unlink(tmp.c_str());
  mode_t old = umask(077);
  int rc = ssh_pki_export_privkey_file(key, nullptr, nullptr, nullptr, tmp.c_str());
  umask(old);
  ssh_key_free(key);
  if (rc != SSH_OK) return Error{"cannot write the host key to " + tmp};
  if (chmod(tmp.c_str(), 0600) || rename(tmp.c_str(), path.c_str()))
    return Error::sys("cannot install the host key at " + path);
  return {};
}

}  // namespace vigil::ssh

namespace vigil::ssh {

Result<std::string> host_public_key_line(const std::string& path) {
  ssh_key key = nullptr;
  if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK)
    return Error{path + ": cannot read the host key (not an OpenSSH private key?)"};
  char* b64 = nullptr;
  int rc = ssh_pki_export_pubkey_base64(key, &b64);
  std::string type = ssh_key_type_to_char(ssh_key_type(key));
  ssh_key_free(key);
  if (rc != SSH_OK || !b64) return Error{path + ": cannot write out the host key's public half"};
  std::string line = type + " " + b64;
  ssh_string_free_char(b64);
  return line;
}

}  // namespace vigil::ssh
