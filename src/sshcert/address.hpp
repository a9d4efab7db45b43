// IP addresses as certificates' source-address option and the rate limiter
// need them: parsed from text, compared by prefix.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace vigil::sshcert {

struct IpAddress {
  int version = 4;                   // 4 or 6
  std::array<uint8_t, 16> bytes{};  // IPv4 uses the first 4

  int bits() const { return version == 4 ? 32 : 128; }
  bool operator==(const IpAddress&) const = default;
};

// "192.0.2.7" or "2001:db8::1". An IPv4-mapped IPv6 address
// ("::ffff:192.0.2.7") is taken as the IPv4 address it carries, as sshd does,
// so a dual-stack listener matches IPv4 rules.
std::optional<IpAddress> parse_ip(std::string_view text);

struct IpPrefix {
  IpAddress network;
  int length = 0;  // leading bits that must match
};

// True when the first `length` bits of a and b agree (same version only).
bool same_prefix(const IpAddress& a, const IpAddress& b, int length);

// A source-address list: "192.0.2.0/24,2001:db8::/32,198.51.100.7".
// An entry without "/n" is one address. Entries with bits set past their
// prefix length ("10.1.2.3/8") are refused as a likely mistake.
Result<std::vector<IpPrefix>> parse_prefix_list(std::string_view list);

bool matches_any(const IpAddress& address, const std::vector<IpPrefix>& prefixes);

}  // namespace vigil::sshcert
