// Audit event lines for the relay's tests: numbered, so a test can tell
// which arrived, how often and in which order.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vigil::test {

// {"event":"test.event","n":N,"server_id":...,"time":"2026-11-28T03:00:00.<N>Z"}\n
inline std::string numbered_event(uint64_t n, const std::string& server_id = "") {
  char frac[16];
  std::snprintf(frac, sizeof frac, "%06llu", static_cast<unsigned long long>(n % 1000000));
  std::string line = "{\"event\":\"test.event\",\"n\":" + std::to_string(n);
  if (!server_id.empty()) line += ",\"server_id\":\"" + server_id + "\"";
  line += ",\"time\":\"2026-11-28T03:00:00." + std::string(frac) + "Z\"}\n";
  return line;
}

// The "n" of each stored line, in the order given.
inline std::vector<uint64_t> numbers_of(const std::vector<std::string>& lines) {
  std::vector<uint64_t> out;
  for (const auto& l : lines) {
    auto j = nlohmann::json::parse(l, nullptr, false);
    if (j.is_object() && j.contains("n")) out.push_back(j["n"].get<uint64_t>());
  }
  return out;
}

}  // namespace vigil::test
