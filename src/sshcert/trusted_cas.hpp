// The CAs whose user certificates a node accepts: ssh_service.trusted_user_ca_keys,
// read like OpenSSH's TrustedUserCAKeys files.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sshcert/keys.hpp"
#include "common/result.hpp"

namespace vigil::sshcert {

class TrustedCAs {
 public:
  struct CA {
    PublicKey key;
    std::string source;   // "file:line" it was read from
    std::string comment;  // the rest of its line
  };

  // Each file holds public keys in OpenSSH's one-line form, one per line;
  // blank lines and lines starting with '#' are ignored. Any other line that
  // is not a plain public key is an error naming file:line, and so is a file
  // that holds no key. A key listed twice counts once.
  static Result<TrustedCAs> load(const std::vector<std::string>& files);
  // The same for text already read; source names it in errors.
  static Result<TrustedCAs> parse(std::string_view text, std::string_view source);

  // The CA whose key has this wire blob, or null.
  const CA* find(std::string_view key_blob) const;
  const std::vector<CA>& cas() const { return cas_; }
  bool empty() const { return cas_.empty(); }

 private:
  Result<void> add_text(std::string_view text, std::string_view source);

  std::vector<CA> cas_;
};

}  // namespace vigil::sshcert
