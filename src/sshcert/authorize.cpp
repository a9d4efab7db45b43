#include "sshcert/authorize.hpp"

#include <algorithm>
#include <ctime>
#include <limits>

#include "sshcert/address.hpp"
#include "sshcert/signature.hpp"
#include "sshcert/wire.hpp"

namespace vigil::sshcert {
namespace {

Refusal refuse(RefusalReason reason, std::string message) { return {reason, std::move(message)}; }

// "2024-05-01T12:00:00Z", or "forever" for the format's no-end value.
std::string format_time(uint64_t t) {
  if (t == kForever) return "forever";
  constexpr uint64_t kYear9999 = 253402300799;
  if (t > kYear9999) return std::to_string(t) + " (seconds since 1970)";
  const auto seconds = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&seconds, &tm);
  char text[32];
  strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// An option's data holds one string: its value. Nothing may follow it.
std::optional<std::string> option_value(const CertOption& option) {
  WireReader r(option.data, option.name);
  std::string_view value = r.text("value");
  r.expect_end();
  if (!r.ok()) return std::nullopt;
  return std::string(value);
}

// Applies the critical options to identity; a refusal if one fails.
std::optional<Refusal> apply_critical_options(const Certificate& cert,
                                              const std::string& client_address,
                                              Identity* identity) {
  for (const auto& option : cert.critical_options) {
    if (option.name == "force-command") {
      auto command = option_value(option);
      if (!command)
        return refuse(RefusalReason::bad_critical_option,
                      "the force-command critical option does not hold one text value");
      identity->force_command = std::move(*command);
    } else if (option.name == "source-address") {
      auto list = option_value(option);
      if (!list)
        return refuse(RefusalReason::bad_critical_option,
                      "the source-address critical option does not hold one text value");
      auto prefixes = parse_prefix_list(*list);
      if (!prefixes)
        return refuse(RefusalReason::bad_critical_option,
                      "the certificate's " + prefixes.error().message);
      auto address = parse_ip(client_address);
      if (!address || !matches_any(*address, *prefixes))
        return refuse(RefusalReason::source_address_mismatch,
                      "the certificate may only be used from " + *list + ", not from '" +
                          client_address + "'");
    } else {
      // A critical option we do not implement would be silently dropped:
      // the format says to refuse instead.
      return refuse(RefusalReason::unknown_critical_option,
                    "the certificate has the critical option '" + option.name +
                        "', which Vigil does not implement (it knows force-command and "
                        "source-address)");
    }
  }
  return std::nullopt;
}

// Reads the extensions into identity (unknown ones are ignored, as the
// format says, but their names are kept for the server).
std::optional<Refusal> apply_extensions(const Certificate& cert, Identity* identity) {
  for (const auto& extension : cert.extensions) {
    identity->extensions.push_back(extension.name);
    if (extension.name != kRecordingExtension) continue;
    auto value = option_value(extension);
    if (!value)
      return refuse(RefusalReason::bad_recording_extension,
                    std::string(kRecordingExtension) + " does not hold one text value "
                    "(sign with -O extension:" + std::string(kRecordingExtension) +
                    "=command,disk,network)");
    std::string why;
    auto kinds = KindSet::parse(*value, &why);
    if (!kinds)
      return refuse(RefusalReason::bad_recording_extension,
                    std::string(kRecordingExtension) + "='" + *value + "': " + why);
    identity->recorded_kinds = *kinds;
  }
  return std::nullopt;
}

}  // namespace

std::string_view refusal_name(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::malformed_certificate: return "malformed_certificate";
    case RefusalReason::untrusted_ca: return "untrusted_ca";
    case RefusalReason::weak_signature: return "weak_signature";
    case RefusalReason::bad_signature: return "bad_signature";
    case RefusalReason::not_user_certificate: return "not_user_certificate";
    case RefusalReason::empty_key_id: return "empty_key_id";
    case RefusalReason::not_yet_valid: return "not_yet_valid";
    case RefusalReason::expired: return "expired";
    case RefusalReason::no_principals: return "no_principals";
    case RefusalReason::principal_mismatch: return "principal_mismatch";
    case RefusalReason::unknown_critical_option: return "unknown_critical_option";
    case RefusalReason::bad_critical_option: return "bad_critical_option";
    case RefusalReason::source_address_mismatch: return "source_address_mismatch";
    case RefusalReason::bad_recording_extension: return "bad_recording_extension";
    case RefusalReason::rate_limited: return "rate_limited";
  }
  return "unknown";
}

Error AuthResult::error() const {
  return Error{std::string(refusal_name(refusal_.reason)) + ": " + refusal_.message, 0,
               Errc::unauthenticated};
}

AuthResult authorize(const Certificate& cert, const TrustedCAs& cas, const std::string& login,
                     int64_t now_unix, const std::string& client_address) {
  const TrustedCAs::CA* ca = cas.find(cert.signature_key.blob);
  if (!ca)
    return refuse(RefusalReason::untrusted_ca,
                  "the certificate is signed by " +
                      std::string(key_type_name(cert.signature_key.type)) + " key " +
                      cert.signature_key.fingerprint() +
                      ", which is not in ssh_service.trusted_user_ca_keys");
  if (is_sha1_algorithm(cert.signature.algorithm))
    return refuse(RefusalReason::weak_signature,
                  "the certificate is signed with ssh-rsa (RSA with SHA-1), which is refused: "
                  "have the CA re-sign it with rsa-sha2-512 (ssh-keygen -t rsa-sha2-512 -s ...)");
  if (auto verified = verify_signature(ca->key, cert.signature, cert.signed_data()); !verified)
    return refuse(RefusalReason::bad_signature,
                  "the CA signature on the certificate is not valid: " +
                      verified.error().message);

  if (cert.type != CertType::user)
    return refuse(RefusalReason::not_user_certificate,
                  "this is a host certificate; logging in needs a user certificate");
  if (cert.key_id.empty())
    return refuse(RefusalReason::empty_key_id,
                  "the certificate has an empty key id, which Vigil uses as the user name "
                  "(sign with ssh-keygen -I <user>)");

  // Certificates speak in unsigned seconds; a clock before 1970 counts as 1970.
  const uint64_t now = now_unix < 0 ? 0 : static_cast<uint64_t>(now_unix);
  if (now < cert.valid_after)
    return refuse(RefusalReason::not_yet_valid,
                  "the certificate is valid from " + format_time(cert.valid_after) +
                      " on; it is now " + format_time(now));
  if (now >= cert.valid_before)
    return refuse(RefusalReason::expired, "the certificate expired at " +
                                              format_time(cert.valid_before) + "; it is now " +
                                              format_time(now));

  if (cert.principals.empty())
    return refuse(RefusalReason::no_principals,
                  "the certificate lists no principals, so it allows no login "
                  "(sign with ssh-keygen -n <login,...>)");
  bool listed = false;
  for (const auto& principal : cert.principals) listed = listed || principal == login;
  if (!listed)
    return refuse(RefusalReason::principal_mismatch,
                  "login '" + login + "' is not among the certificate's principals (" +
                      joined(cert.principals) + ")");

  Identity identity;
  identity.user = cert.key_id;
  identity.login = login;
  identity.principals = cert.principals;
  constexpr auto kMaxTime = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  identity.valid_before = static_cast<int64_t>(std::min(cert.valid_before, kMaxTime));
  identity.serial = cert.serial;
  identity.ca_fingerprint = ca->key.fingerprint();
  if (auto refusal = apply_critical_options(cert, client_address, &identity)) return *refusal;
  if (auto refusal = apply_extensions(cert, &identity)) return *refusal;
  return identity;
}

AuthResult authorize_blob(std::string_view cert_blob, const TrustedCAs& cas,
                          const std::string& login, int64_t now_unix,
                          const std::string& client_address) {
  auto cert = parse_certificate(cert_blob);
  if (!cert) return refuse(RefusalReason::malformed_certificate, cert.error().message);
  return authorize(*cert, cas, login, now_unix, client_address);
}

std::optional<std::string> extension_text(const Certificate& cert, std::string_view name) {
  for (const auto& extension : cert.extensions)
    if (extension.name == name) return option_value(extension);
  return std::nullopt;
}

}  // namespace vigil::sshcert
