// OpenSSH certificates signed by a cluster CA (PROTOCOL.certkeys): user
// certificates for logins, host certificates for nodes.
//
// What a user certificate says, and how the node reads it (src/sshcert):
//   key id      the Vigil user name (sshcert::Identity::user)
//   principals  the logins the user's roles allow
//   validity    [now - kClockSkew, now + ttl): a client whose clock is a
//               little ahead of the node's still gets in
//   extensions  permit-X11-forwarding, permit-agent-forwarding,
//               permit-port-forwarding, permit-pty, permit-user-rc (OpenSSH's
//               defaults), and vigil-recording@vigil.dev=<kinds> when the
//               roles say which events to record
// A host certificate: key id = the node's uuid, principals = its uuid, its
// name and its addresses; no extensions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ca/key.hpp"
#include "common/result.hpp"
#include "event/event.hpp"
#include "sshcert/keys.hpp"

namespace vigil::ca {

// How far back valid_after is set, for clocks that differ (Teleport's is a
// minute too).
inline constexpr int64_t kClockSkew = 60;

// Everything a certificate holds but the CA's key and signature.
struct SshCertificateSpec {
  sshcert::CertType type = sshcert::CertType::user;
  std::string public_key;               // the certified key's wire blob (a plain key)
  uint64_t serial = 0;
  std::string key_id;
  std::vector<std::string> principals;
  uint64_t valid_after = 0;             // unix seconds
  uint64_t valid_before = 0;            // sshcert::kForever: no end
  // Their data as it goes on the wire: for an option with a value, a string
  // holding it (option_value() builds that); empty for a flag. Sorted by
  // name when signed, as the format asks.
  std::vector<sshcert::CertOption> critical_options;
  std::vector<sshcert::CertOption> extensions;
};

// The data of an option or extension with a value.
std::string option_value(std::string_view value);

// The certificate blob, signed by ca. Refused (invalid_argument): a public
// key that does not parse or is itself a certificate, an empty key id, no
// principals or an empty one, more than sshcert::kMaxPrincipals, text that
// is not UTF-8, valid_after >= valid_before, an option name given twice.
Result<std::string> sign_ssh_certificate(const PrivateKey& ca, const SshCertificateSpec& spec);

// A random serial (never 0, which OpenSSH shows as "no serial").
uint64_t random_serial();

struct UserCertificateRequest {
  std::string public_key;                // the user's key (wire blob)
  std::string user;                      // key id
  std::vector<std::string> logins;       // principals
  int64_t now = 0;                       // unix seconds
  int64_t ttl = 0;                       // seconds, > 0
  uint64_t serial = 0;                   // 0: random_serial()
  std::optional<KindSet> recorded_kinds; // vigil-recording@vigil.dev
};
Result<SshCertificateSpec> user_certificate(const UserCertificateRequest& request);

struct HostCertificateRequest {
  std::string public_key;                // the node's host key (wire blob)
  std::string node_uuid;
  std::string node_name;
  std::vector<std::string> addresses;    // IPs or DNS names clients use
  int64_t now = 0;
  int64_t ttl = 0;
  uint64_t serial = 0;
};
Result<SshCertificateSpec> host_certificate(const HostCertificateRequest& request);

// "<type>-cert-v01@openssh.com <base64> [comment]", for a -cert.pub file.
std::string certificate_line(std::string_view blob, std::string_view comment = {});

}  // namespace vigil::ca
