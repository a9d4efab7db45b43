#include "proxy/host_auth.hpp"

#include <algorithm>

#include "sshcert/keys.hpp"
#include "sshcert/signature.hpp"

namespace vigil::proxy {

Result<std::string> authorize_node_certificate(std::string_view cert_blob,
                                               const sshcert::TrustedCAs& host_cas,
                                               int64_t now_unix) {
  auto cert = sshcert::parse_certificate(cert_blob);
  if (!cert)
    return Error::of(Errc::unauthenticated,
                     "malformed_certificate: " + cert.error().message);
  // The CA and its signature first: nothing the certificate says counts before.
  if (!host_cas.find(cert->signature_key.blob))
    return Error::of(Errc::unauthenticated,
                     "untrusted_ca: the certificate is not signed by this cluster's host CA "
                     "(a node of another cluster, or a user certificate?)");
  if (sshcert::is_sha1_algorithm(cert->signature.algorithm))
    return Error::of(Errc::unauthenticated, "weak_signature: signed with SHA-1 (ssh-rsa)");
  if (auto ok = sshcert::verify_signature(cert->signature_key, cert->signature, cert->signed_data()); !ok)
    return Error::of(Errc::unauthenticated, "bad_signature: " + ok.error().message);
  if (cert->type != sshcert::CertType::host)
    return Error::of(Errc::unauthenticated,
                     "not_host_certificate: a tunnel is held by a node with its host certificate; "
                     "this is a user certificate");
  if (cert->key_id.empty())
    return Error::of(Errc::unauthenticated, "empty_key_id: the certificate names no node");
  if (std::find(cert->principals.begin(), cert->principals.end(), cert->key_id) ==
      cert->principals.end())
    return Error::of(Errc::unauthenticated,
                     "principal_mismatch: the node's uuid (key id) is not among its principals");
  const auto now = static_cast<uint64_t>(std::max<int64_t>(now_unix, 0));
  if (now < cert->valid_after)
    return Error::of(Errc::unauthenticated, "not_yet_valid: the certificate is not valid yet");
  if (now >= cert->valid_before)
    return Error::of(Errc::unauthenticated,
                     "expired: the node's host certificate has expired; renew it");
  if (!cert->critical_options.empty())
    return Error::of(Errc::unauthenticated,
                     "unknown_critical_option: " + cert->critical_options.front().name);
  return cert->key_id;
}

}  // namespace vigil::proxy
