#include "sshcert/address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace vigil::sshcert {

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  const std::string s(text);  // inet_pton wants a NUL-terminated string
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.version = 4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  a.version = 6;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.bytes.data(), kMapped, sizeof kMapped) == 0) {
    IpAddress v4;
    std::memcpy(v4.bytes.data(), a.bytes.data() + 12, 4);
    return v4;
  }
  return a;
}

bool same_prefix(const IpAddress& a, const IpAddress& b, int length) {
  if (a.version != b.version) return false;
  int i = 0;
  for (; length >= 8; length -= 8, ++i)
    if (a.bytes[i] != b.bytes[i]) return false;
  if (length == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - length));
  return (a.bytes[i] & mask) == (b.bytes[i] & mask);
}

Result<std::vector<IpPrefix>> parse_prefix_list(std::string_view list) {
  std::vector<IpPrefix> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string_view::npos) comma = list.size();
    const std::string_view entry = list.substr(pos, comma - pos);
    pos = comma + 1;
    auto bad = [&](std::string_view why) {
      return Error{"source-address entry '" + std::string(entry) + "' " + std::string(why)};
    };
    const size_t slash = entry.find('/');
    auto address = parse_ip(entry.substr(0, slash));
    if (!address) return bad("is not an IP address or prefix");
    IpPrefix prefix{*address, address->bits()};
    if (slash != std::string_view::npos) {
      const std::string_view digits = entry.substr(slash + 1);
      int length = -1;
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
          length < 0 || length > address->bits())
        return bad("has an invalid prefix length");
      prefix.length = length;
      // Bits past the prefix must be zero: "10.1.2.3/8" is probably a typo.
      IpAddress network = *address;
      for (int bit = length; bit < address->bits(); ++bit)
        network.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
      if (!(network == *address)) return bad("has bits set past its prefix length");
    }
    out.push_back(prefix);
  }
  return out;
}

bool matches_any(const IpAddress& address, const std::vector<IpPrefix>& prefixes) {
  for (const auto& p : prefixes)
    if (same_prefix(address, p.network, p.length)) return true;
  return false;
}

}  // namespace vigil::sshcert
