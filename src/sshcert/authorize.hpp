// Deciding whether a user certificate lets someone log in, the way sshd
// does for TrustedUserCAKeys, and who they are if it does.
//
// The SSH server calls authorize_blob() with the certificate blob the client
// offered (after the SSH layer has checked that the client holds the
// certified key's private half) and the login it asked for. A refusal
// carries a reason from a fixed list, for the audit event, and a message
// for people.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sshcert/keys.hpp"
#include "sshcert/trusted_cas.hpp"
#include "common/result.hpp"
#include "event/event.hpp"

namespace vigil::sshcert {

// Vigil's certificate extension: which kinds of events a session of this
// user records, e.g. "command,disk" (any subset of command, disk, network).
inline constexpr std::string_view kRecordingExtension = "vigil-recording@vigil.dev";

enum class RefusalReason : uint8_t {
  malformed_certificate,    // the blob is not a certificate we can read
  untrusted_ca,             // signed by a key that is not a trusted CA
  weak_signature,           // signed with ssh-rsa (SHA-1)
  bad_signature,            // the CA's signature does not verify
  not_user_certificate,     // a host certificate
  empty_key_id,             // no Vigil user name to attribute the session to
  not_yet_valid,            // now < valid_after
  expired,                  // now >= valid_before
  no_principals,            // empty principal list: refused, as sshd does
  principal_mismatch,       // the login is not among the principals
  unknown_critical_option,  // a critical option Vigil does not implement
  bad_critical_option,      // force-command/source-address that cannot be read
  source_address_mismatch,  // the client's address is outside source-address
  bad_recording_extension,  // vigil-recording@vigil.dev that cannot be read
  rate_limited,             // too many failures from this address (AuthRateLimiter)
};

// "untrusted_ca", "bad_signature", ...: the reason as the audit log spells it.
std::string_view refusal_name(RefusalReason reason);

struct Refusal {
  RefusalReason reason = RefusalReason::malformed_certificate;
  std::string message;  // for people: what was wrong and, where it helps, what to do
};

// Who logged in, as the certificate says.
struct Identity {
  std::string user;                         // the key id: the Vigil user name
  std::string login;                        // the account asked for (one of principals)
  std::vector<std::string> principals;
  int64_t valid_before = 0;                 // the certificate's end; INT64_MAX for forever
  std::optional<KindSet> recorded_kinds;    // from vigil-recording@vigil.dev, if present
  std::optional<std::string> force_command; // the force-command critical option
  std::vector<std::string> extensions;      // names (permit-pty, ...): the server decides
  uint64_t serial = 0;
  std::string ca_fingerprint;               // "SHA256:..." of the signing CA
};

// An Identity or a Refusal.
class [[nodiscard]] AuthResult {
 public:
  AuthResult(Identity identity) : identity_(std::move(identity)) {}
  AuthResult(Refusal refusal) : refusal_(std::move(refusal)) {}

  bool ok() const { return identity_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Identity& value() const { return *identity_; }
  const Identity* operator->() const { return &*identity_; }
  const Identity& operator*() const { return *identity_; }
  const Refusal& refusal() const { return refusal_; }
  // The refusal as a plain Error: "<reason>: <message>".
  Error error() const;

 private:
  std::optional<Identity> identity_;
  Refusal refusal_;
};

// Checks, in this order, each with its own reason: the signing key is a
// trusted CA; its signature over the certificate verifies (not SHA-1); the
// certificate is a user certificate with a key id; valid_after <= now <
// valid_before; login is one of a non-empty principal list; every critical
// option is known and satisfied (source-address against client_address);
// the recording extension, if present, reads. The CA and signature come
// first so that nothing the certificate says is looked at before the CA is
// known to have said it.
//
// client_address: the peer's IP address as text ("192.0.2.7", "2001:db8::1").
AuthResult authorize(const Certificate& cert, const TrustedCAs& cas, const std::string& login,
                     int64_t now_unix, const std::string& client_address);

// The same for a certificate's wire blob; an unreadable blob is refused as
// malformed_certificate.
AuthResult authorize_blob(std::string_view cert_blob, const TrustedCAs& cas,
                          const std::string& login, int64_t now_unix,
                          const std::string& client_address);

// The text value of the certificate's extension `name` (its data holds one
// string); nullopt when it has none or its data is not one string.
std::optional<std::string> extension_text(const Certificate& cert, std::string_view name);

}  // namespace vigil::sshcert
