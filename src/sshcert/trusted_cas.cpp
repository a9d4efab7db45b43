#include "sshcert/trusted_cas.hpp"

#include <fstream>
#include <sstream>

namespace vigil::sshcert {

Result<void> TrustedCAs::add_text(std::string_view text, std::string_view source) {
  size_t found = 0;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#') continue;

    const std::string where = std::string(source) + ":" + std::to_string(line_number);
    auto parsed = parse_key_line(line);
    if (!parsed) return Error{where + ": " + parsed.error().message};
    auto key = parse_public_key(parsed->blob);
    if (!key) return Error{where + ": " + key.error().message};
    ++found;
    if (find(key->blob)) continue;
    cas_.push_back(CA{std::move(*key), where, std::move(parsed->comment)});
  }
  if (found == 0)
    return Error{std::string(source) + ": holds no CA public key (expected lines like "
                                       "'ssh-ed25519 AAAA... comment')"};
  return {};
}

Result<TrustedCAs> TrustedCAs::parse(std::string_view text, std::string_view source) {
  TrustedCAs cas;
  if (auto added = cas.add_text(text, source); !added) return added.error();
  return cas;
}

Result<TrustedCAs> TrustedCAs::load(const std::vector<std::string>& files) {
  TrustedCAs cas;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return Error::sys("cannot read trusted user CA file " + file);
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return Error::sys("cannot read trusted user CA file " + file);
    if (auto added = cas.add_text(text.str(), file); !added) return added.error();
  }
  return cas;
}

const TrustedCAs::CA* TrustedCAs::find(std::string_view key_blob) const {
  for (const auto& ca : cas_)
    if (ca.key.blob == key_blob) return &ca;
  return nullptr;
}

}  // namespace vigil::sshcert
