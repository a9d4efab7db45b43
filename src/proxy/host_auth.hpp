// Who a reverse tunnel belongs to: a node proves it with its OpenSSH host
// certificate (ca::host_certificate: key id = the node's uuid, which is also
// among its principals), signed by the cluster's host CA. A user
// certificate, a host CA of another cluster, an expired certificate or a
// plain key: refused, each with its own message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "sshcert/trusted_cas.hpp"

namespace vigil::proxy {

// The node uuid the certificate (wire blob) was issued to.
Result<std::string> authorize_node_certificate(std::string_view cert_blob,
                                               const sshcert::TrustedCAs& host_cas,
                                               int64_t now_unix);

}  // namespace vigil::proxy
