// Certificates as the API sends them: PEM text, one or several.
#pragma once

#include <string_view>
#include <vector>

#include "ca/tls_ca.hpp"
#include "common/result.hpp"

namespace vigil::client {

// Every "-----BEGIN CERTIFICATE-----" block of text, in order; at most 16,
// each read strictly. invalid_argument when there is none or one is bad.
Result<std::vector<ca::TlsCertificate>> split_pem_certificates(std::string_view text);

}  // namespace vigil::client
