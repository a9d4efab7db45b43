#include "ca/authority.hpp"

#include <dirent.h>
#include <openssl/err.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "ca/key_file.hpp"

namespace vigil::ca {
namespace {

Result<void> ensure_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Error::of(Errc::invalid_argument, path + " exists and is not a directory");
    return {};
  }
  return Error::sys("cannot create " + path);
}

// key-<digits>, nothing else (no .crt, no temporary file).
std::optional<uint32_t> key_file_id(std::string_view name) {
  if (!name.starts_with("key-") || name.size() == 4 || name.size() > 4 + 9 || name[4] == '0')
    return std::nullopt;
  uint32_t id = 0;
  for (char c : name.substr(4)) {
    if (c < '0' || c > '9') return std::nullopt;
    id = id * 10 + static_cast<uint32_t>(c - '0');
  }
  return id;
}

Result<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::sys("cannot read " + path);
  std::string text(4096, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

}  // namespace

std::string_view ca_type_name(CaType type) {
  switch (type) {
    case CaType::ssh_user: return "ssh_user";
    case CaType::ssh_host: return "ssh_host";
    case CaType::tls: return "tls";
  }
  return "unknown";
}

Result<CertAuthority::Key> CertAuthority::new_key(uint32_t id, int64_t now) const {
  auto key = PrivateKey::generate(type_ == CaType::tls ? KeyAlgorithm::ecdsa_p256 : KeyAlgorithm::ed25519);
  if (!key) return key.error();
  Key k{id, std::move(*key), std::nullopt};
  if (type_ == CaType::tls) {
    auto cert = make_tls_ca_certificate(k.key, cluster_, now, kTlsCaValidity);
    if (!cert) return cert.error();
    k.certificate = std::move(*cert);
  }
  return k;
}

Result<CertAuthority> CertAuthority::create(CaType type, std::string cluster, int64_t now) {
  if (cluster.empty()) return Error::of(Errc::invalid_argument, "a CA needs a cluster name");
  CertAuthority ca(type, std::move(cluster));
  auto key = ca.new_key(1, now);
  if (!key) return key.error();
  ca.keys_.push_back(std::move(*key));
  ca.active_ = 1;
  return ca;
}

const CertAuthority::Key& CertAuthority::active() const {
  for (const auto& k : keys_)
    if (k.id == active_) return k;
  std::abort();  // the set always holds its active key (every change keeps it)
}

Result<uint32_t> CertAuthority::add_key(int64_t now) {
  if (keys_.size() >= kMaxCaKeys)
    return Error::of(Errc::resource_exhausted,
                     "the " + std::string(ca_type_name(type_)) + " CA already holds " +
                         std::to_string(kMaxCaKeys) + " keys: remove an old one first");
  uint32_t id = 0;
  for (const auto& k : keys_) id = std::max(id, k.id);
  auto key = new_key(id + 1, now);
  if (!key) return key.error();
  keys_.push_back(std::move(*key));
  return id + 1;
}

Result<void> CertAuthority::activate(uint32_t id) {
  for (const auto& k : keys_)
    if (k.id == id) {
      active_ = id;
      return {};
    }
  return Error::of(Errc::not_found, "the " + std::string(ca_type_name(type_)) + " CA has no key " +
                                        std::to_string(id));
}

Result<void> CertAuthority::remove_key(uint32_t id) {
  if (id == active_)
    return Error::of(Errc::failed_precondition,
                     "key " + std::to_string(id) + " is the active one: activate another first");
  auto it = std::find_if(keys_.begin(), keys_.end(), [&](const Key& k) { return k.id == id; });
  if (it == keys_.end())
    return Error::of(Errc::not_found, "the " + std::string(ca_type_name(type_)) + " CA has no key " +
                                          std::to_string(id));
  keys_.erase(it);
  return {};
}

std::string CertAuthority::trusted_keys_text() const {
  std::string out;
  for (const auto& k : keys_)
    out += k.key.ssh_public_key_line(cluster_ + "-" + std::string(ca_type_name(type_)) + "-ca-" +
                                     std::to_string(k.id)) +
           "\n";
  return out;
}

Result<sshcert::TrustedCAs> CertAuthority::trusted_ssh_cas() const {
  return sshcert::TrustedCAs::parse(trusted_keys_text(),
                                    "the cluster's " + std::string(ca_type_name(type_)) + " CA");
}

std::string CertAuthority::known_hosts_text(std::string_view hosts) const {
  std::string out;
  for (const auto& k : keys_) out += "@cert-authority " + std::string(hosts) + " " + k.key.ssh_public_key_line() + "\n";
  return out;
}

std::vector<TlsCertificate> CertAuthority::trusted_tls_certificates() const {
  std::vector<TlsCertificate> out;
  for (const auto& k : keys_)
    if (k.certificate) out.push_back(*k.certificate);
  return out;
}

std::string CertAuthority::pin() const {
  const Key& k = active();
  return k.certificate ? ca_pin(*k.certificate) : std::string();
}

Result<std::string> CertAuthority::sign_ssh(const SshCertificateSpec& spec) const {
  const bool fits = (type_ == CaType::ssh_user && spec.type == sshcert::CertType::user) ||
                    (type_ == CaType::ssh_host && spec.type == sshcert::CertType::host);
  if (!fits)
    return Error::of(Errc::invalid_argument,
                     "the " + std::string(ca_type_name(type_)) + " CA does not sign " +
                         (spec.type == sshcert::CertType::user ? "user" : "host") + " certificates");
  return sign_ssh_certificate(active().key, spec);
}

Result<TlsCertificate> CertAuthority::issue_tls(const TlsIssueRequest& request) const {
  if (type_ != CaType::tls)
    return Error::of(Errc::invalid_argument, "only the tls CA issues TLS certificates");
  return issue_tls_certificate(active().key, *active().certificate, request);
}

Result<void> CertAuthority::save(const std::string& dir) const {
  if (auto r = ensure_dir(dir); !r) return r;
  const std::string sub = dir + "/" + std::string(ca_type_name(type_));
  if (auto r = ensure_dir(sub); !r) return r;
  for (const auto& k : keys_) {
    const std::string path = sub + "/key-" + std::to_string(k.id);
    if (auto r = save_private_key(path, k.key, cluster_ + " " + std::string(ca_type_name(type_)) + " CA");
        !r)
      return r;
    if (k.certificate)
      if (auto r = write_file_atomic(path + ".crt", k.certificate->pem(), 0644); !r) return r;
  }
  if (auto r = write_file_atomic(sub + "/active", std::to_string(active_) + "\n", 0644); !r) return r;
  // Keys removed from the set go last, once nothing names them.
  DIR* d = ::opendir(sub.c_str());
  if (!d) return Error::sys("cannot list " + sub);
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    auto id = key_file_id(e->d_name);
    if (id && std::none_of(keys_.begin(), keys_.end(), [&](const Key& k) { return k.id == *id; }))
      stale.push_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& name : stale) {
    ::unlink((sub + "/" + name).c_str());
    ::unlink((sub + "/" + name + ".crt").c_str());
  }
  return {};
}

Result<CertAuthority> CertAuthority::load(const std::string& dir, CaType type, std::string cluster) {
  const std::string sub = dir + "/" + std::string(ca_type_name(type));
  auto active_text = read_small_file(sub + "/active");
  if (!active_text) return active_text.error();
  const std::string a = *active_text;
  auto active = key_file_id("key-" + a.substr(0, a.find('\n')));
  if (!active || a.find('\n') != a.size() - 1)
    return Error::of(Errc::data_loss, sub + "/active does not hold a key id");

  CertAuthority ca(type, std::move(cluster));
  DIR* d = ::opendir(sub.c_str());
  if (!d) return Error::sys("cannot list " + sub);
  std::vector<uint32_t> ids;
  while (dirent* e = ::readdir(d))
    if (auto id = key_file_id(e->d_name)) ids.push_back(*id);
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  if (ids.size() > kMaxCaKeys)
    return Error::of(Errc::invalid_argument, sub + " holds more than " + std::to_string(kMaxCaKeys) + " keys");
  for (uint32_t id : ids) {
    const std::string path = sub + "/key-" + std::to_string(id);
    auto key = load_private_key(path);
    if (!key) return key.error();
    Key k{id, std::move(*key), std::nullopt};
    if (type == CaType::tls) {
      auto pem = read_small_file(path + ".crt");
      if (!pem) return pem.error();
      auto cert = TlsCertificate::from_pem(*pem);
      if (!cert) return Error::of(Errc::data_loss, path + ".crt: " + cert.error().message);
      if (X509_check_private_key(cert->get(), k.key.get()) != 1) {
        ERR_clear_error();
        return Error::of(Errc::data_loss, path + ".crt is not the certificate of " + path);
      }
      // A store of another cluster (a data_dir reused under a new name).
      X509_NAME* subject = X509_get_subject_name(cert->get());
      const int o = X509_NAME_get_index_by_NID(subject, NID_organizationName, -1);
      const ASN1_STRING* org = o < 0 ? nullptr : X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, o));
      if (!org || std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(org)),
                                   static_cast<size_t>(ASN1_STRING_length(org))) != ca.cluster_)
        return Error::of(Errc::failed_precondition,
                         path + ".crt is the CA of another cluster than '" + ca.cluster_ +
                             "': check cluster_name and data_dir");
      k.certificate = std::move(*cert);
    }
    ca.keys_.push_back(std::move(k));
  }
  if (std::none_of(ca.keys_.begin(), ca.keys_.end(), [&](const Key& k) { return k.id == *active; }))
    return Error::of(Errc::data_loss, sub + "/active names key " + std::to_string(*active) +
                                          ", which is not there");
  ca.active_ = *active;
  return ca;
}

Result<ClusterCAs> ClusterCAs::load_or_create(const std::string& dir, const std::string& cluster,
                                              int64_t now) {
  auto one = [&](CaType type) -> Result<CertAuthority> {
    const std::string active = dir + "/" + std::string(ca_type_name(type)) + "/active";
    if (::access(active.c_str(), F_OK) == 0) return CertAuthority::load(dir, type, cluster);
    auto ca = CertAuthority::create(type, cluster, now);
    if (!ca) return ca.error();
    if (auto saved = ca->save(dir); !saved) return saved.error();
    return ca;
  };
  auto user = one(CaType::ssh_user);
  if (!user) return user.error();
  auto host = one(CaType::ssh_host);
  if (!host) return host.error();
  auto tls = one(CaType::tls);
  if (!tls) return tls.error();
  return ClusterCAs{std::move(*user), std::move(*host), std::move(*tls)};
}

}  // namespace vigil::ca
