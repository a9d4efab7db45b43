#include "client/pem.hpp"

namespace vigil::client {

Result<std::vector<ca::TlsCertificate>> split_pem_certificates(std::string_view text) {
  constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  constexpr size_t kMaxCertificates = 16;
  std::vector<ca::TlsCertificate> out;
  size_t at = 0;
  while ((at = text.find(kBegin, at)) != std::string_view::npos) {
    size_t end = text.find(kEnd, at);
    if (end == std::string_view::npos)
      return Error::of(Errc::invalid_argument, "a PEM certificate has no END line");
    if (out.size() == kMaxCertificates)
      return Error::of(Errc::invalid_argument, "more than 16 certificates where a CA set was expected");
    end += kEnd.size();
    auto cert = ca::TlsCertificate::from_pem(text.substr(at, end - at));
    if (!cert) return Error::of(Errc::invalid_argument, "a certificate does not read: " + cert.error().message);
    out.push_back(std::move(*cert));
    at = end;
  }
  if (out.empty()) return Error::of(Errc::invalid_argument, "no PEM certificate found");
  return out;
}

}  // namespace vigil::client
