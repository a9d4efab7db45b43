// OpenSSH keys and certificates as the node reads them (src/auth): the
// input is tried as a wire blob (plain key, certificate), as a one-line
// text form ("ssh-ed25519 AAAA... comment") and as a trusted CA file.
//
// Properties checked beyond not crashing: parsing is canonical (a key read
// from a blob re-encodes to that very blob), strict base64 round-trips, and
// every CA a file yields can be found by its blob.
#include <cstdint>
#include <string>
#include <string_view>

#include "sshcert/keys.hpp"
#include "sshcert/trusted_cas.hpp"
#include "sshcert/wire.hpp"
#include "check.hpp"

using namespace vigil::sshcert;
using vigil::fuzz::kMaxMessage;

namespace {

void as_blob(std::string_view data) {
  if (auto key = parse_public_key(data)) {
    FUZZ_CHECK(key->blob == data, "a plain key must re-encode to the blob it came from");
    FUZZ_CHECK(!key->fingerprint().empty(), "fingerprint");
  } else {
    FUZZ_CHECK(key.error().message.size() < kMaxMessage, key.error().message.substr(0, 200));
  }
  if (auto cert = parse_certificate(data)) {
    FUZZ_CHECK(cert->blob == data, "a certificate keeps its blob");
    FUZZ_CHECK(cert->signed_length < data.size(), "the signature follows the signed part");
    auto certified = parse_public_key(cert->key.blob);
    FUZZ_CHECK(certified && certified->blob == cert->key.blob,
               "the certified key's plain blob must parse back to itself");
    auto ca = parse_public_key(cert->signature_key.blob);
    FUZZ_CHECK(ca && ca->blob == cert->signature_key.blob, "the CA key's blob parses back");
  } else {
    FUZZ_CHECK(cert.error().message.size() < kMaxMessage, cert.error().message.substr(0, 200));
  }
}

void as_text(std::string_view text) {
  if (auto decoded = base64_decode(text))
    FUZZ_CHECK(base64_encode(*decoded) == text, "strict base64 has one encoding per blob");
  if (auto line = parse_key_line(text)) {
    FUZZ_CHECK(!line->type.empty(), "a key line names its type");
    as_blob(line->blob);
  }
  (void)parse_public_key_line(text);
  (void)parse_certificate_line(text);
  auto cas = TrustedCAs::parse(text, "fuzz.pub");
  if (cas) {
    FUZZ_CHECK(!cas->empty(), "a CA file that loads holds a key");
    for (const auto& ca : cas->cas()) FUZZ_CHECK(cas->find(ca.key.blob) == &ca, "find");
  } else {
    FUZZ_CHECK(cas.error().message.starts_with("fuzz.pub:"), "CA file errors name the file");
    FUZZ_CHECK(cas.error().message.size() < kMaxMessage, cas.error().message.substr(0, 200));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  as_blob(data);
  as_text(data);
  return 0;
}
