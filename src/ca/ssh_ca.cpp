#include "ca/ssh_ca.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <set>

#include "sshcert/authorize.hpp"
#include "sshcert/wire.hpp"

namespace vigil::ca {
namespace {

Error bad(std::string message) { return Error::of(Errc::invalid_argument, std::move(message)); }

std::string options_blob(std::vector<sshcert::CertOption> options) {
  std::sort(options.begin(), options.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  sshcert::WireWriter w;
  for (const auto& o : options) {
    w.bytes(o.name);
    w.bytes(o.data);
  }
  return w.data();
}

Result<void> check_options(const std::vector<sshcert::CertOption>& options, const char* what) {
  if (options.size() > sshcert::kMaxOptions)
    return bad(std::string("more ") + what + " than the " + std::to_string(sshcert::kMaxOptions) +
               " a certificate may hold");
  std::set<std::string> seen;
  for (const auto& o : options) {
    if (o.name.empty() || !sshcert::is_text(o.name))
      return bad(std::string(what) + ": a name is empty or not UTF-8 text");
    if (!seen.insert(o.name).second)
      return bad(std::string(what) + ": '" + o.name + "' is given twice");
  }
  return {};
}

Result<void> check_spec(const SshCertificateSpec& spec) {
  auto key = sshcert::parse_public_key(spec.public_key);
  if (!key) return bad("the key to certify: " + key.error().message);
  if (spec.key_id.empty() || !sshcert::is_text(spec.key_id))
    return bad("a certificate needs a key id (the user name or node uuid) in UTF-8 text");
  if (spec.principals.empty())
    return bad("a certificate needs at least one principal (a login or a host name): without "
               "one, OpenSSH would accept it for any");
  if (spec.principals.size() > sshcert::kMaxPrincipals)
    return bad("more than " + std::to_string(sshcert::kMaxPrincipals) + " principals");
  for (const auto& p : spec.principals)
    if (p.empty() || !sshcert::is_text(p))
      return bad("a principal is empty or not UTF-8 text");
  if (spec.valid_after >= spec.valid_before)
    return bad("the certificate's validity is empty (valid_after " +
               std::to_string(spec.valid_after) + " >= valid_before " +
               std::to_string(spec.valid_before) + ")");
  if (auto c = check_options(spec.critical_options, "critical options"); !c) return c;
  return check_options(spec.extensions, "extensions");
}

// [now - skew, now + ttl), unsigned.
std::pair<uint64_t, uint64_t> validity(int64_t now, int64_t ttl) {
  const int64_t after = std::max<int64_t>(0, now - kClockSkew);
  return {static_cast<uint64_t>(after), static_cast<uint64_t>(std::max<int64_t>(0, now + ttl))};
}

}  // namespace

std::string option_value(std::string_view value) {
  sshcert::WireWriter w;
  w.bytes(value);
  return w.data();
}

uint64_t random_serial() {
  uint64_t serial = 0;
  while (serial == 0)
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1) serial = 0;
  return serial;
}

Result<std::string> sign_ssh_certificate(const PrivateKey& ca, const SshCertificateSpec& spec) {
  if (auto ok = check_spec(spec); !ok) return ok.error();
  auto key = sshcert::parse_public_key(spec.public_key);

  std::string nonce(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), 32) != 1)
    return Error::of(Errc::internal, "OpenSSL's random generator failed");
  sshcert::WireWriter w;
  w.bytes(sshcert::cert_type_name(key->type));
  w.bytes(nonce);
  // The certified key's fields: its plain blob without the type name.
  sshcert::WireReader r(spec.public_key, "key");
  r.bytes("type");
  w.raw(std::string_view(spec.public_key).substr(r.offset()));
  w.u64(spec.serial);
  w.u32(static_cast<uint32_t>(spec.type));
  w.bytes(spec.key_id);
  sshcert::WireWriter principals;
  for (const auto& p : spec.principals) principals.bytes(p);
  w.bytes(principals.data());
  w.u64(spec.valid_after);
  w.u64(spec.valid_before);
  w.bytes(options_blob(spec.critical_options));
  w.bytes(options_blob(spec.extensions));
  w.bytes("");  // reserved
  w.bytes(ca.ssh_public_key().blob);
  auto sig = ca.sign_ssh(w.data());
  if (!sig) return sig.error();
  sshcert::WireWriter sig_blob;
  sig_blob.bytes(sig->algorithm);
  sig_blob.bytes(sig->bytes);
  w.bytes(sig_blob.data());
  return w.data();
}

Result<SshCertificateSpec> user_certificate(const UserCertificateRequest& request) {
  if (request.ttl <= 0) return bad("a user certificate needs a positive TTL");
  if (request.logins.empty())
    return bad("user '" + request.user + "' has no logins: give the user (or a role) logins");
  SshCertificateSpec spec;
  spec.type = sshcert::CertType::user;
  spec.public_key = request.public_key;
  spec.serial = request.serial ? request.serial : random_serial();
  spec.key_id = request.user;
  spec.principals = request.logins;
  std::tie(spec.valid_after, spec.valid_before) = validity(request.now, request.ttl);
  for (const char* name : {"permit-X11-forwarding", "permit-agent-forwarding",
                           "permit-port-forwarding", "permit-pty", "permit-user-rc"})
    spec.extensions.push_back({name, ""});
  if (request.recorded_kinds) {
    if (request.recorded_kinds->empty()) return bad("recorded kinds, when given, may not be empty");
    spec.extensions.push_back({std::string(sshcert::kRecordingExtension),
                               option_value(request.recorded_kinds->to_string())});
  }
  return spec;
}

Result<SshCertificateSpec> host_certificate(const HostCertificateRequest& request) {
  if (request.ttl <= 0) return bad("a host certificate needs a positive TTL");
  if (request.node_uuid.empty()) return bad("a host certificate needs the node's uuid");
  SshCertificateSpec spec;
  spec.type = sshcert::CertType::host;
  spec.public_key = request.public_key;
  spec.serial = request.serial ? request.serial : random_serial();
  spec.key_id = request.node_uuid;
  std::set<std::string> seen;
  auto add = [&](const std::string& name) {
    if (!name.empty() && seen.insert(name).second) spec.principals.push_back(name);
  };
  add(request.node_uuid);
  add(request.node_name);
  for (const auto& a : request.addresses) add(a);
  std::tie(spec.valid_after, spec.valid_before) = validity(request.now, request.ttl);
  return spec;
}

std::string certificate_line(std::string_view blob, std::string_view comment) {
  sshcert::WireReader r(blob, "certificate");
  std::string line = std::string(r.bytes("type")) + " " + sshcert::base64_encode(blob);
  if (!comment.empty()) line += " " + std::string(comment);
  return line;
}

}  // namespace vigil::ca
