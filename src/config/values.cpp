#include "config/values.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>
#include <vector>

namespace vigil::config {

namespace {

bool is_word_in_any_case(std::string_view text, std::string_view lowercase_word) {
  return text.size() == lowercase_word.size() &&
         std::equal(text.begin(), text.end(), lowercase_word.begin(), [](char t, char w) {
           return std::tolower(static_cast<unsigned char>(t)) == w;
         });
}

bool is_ip_address(int family, std::string_view text) {
  unsigned char buf[16];
  return inet_pton(family, std::string(text).c_str(), buf) == 1;
}

bool is_host_name(std::string_view host) {
  if (host.empty()) return false;
  bool only_digits_and_dots = true;
  for (char c : host) {
    bool digit_or_dot = std::isdigit(static_cast<unsigned char>(c)) || c == '.';
    if (!digit_or_dot && !std::isalpha(static_cast<unsigned char>(c)) && c != '-') return false;
    only_digits_and_dots &= digit_or_dot;
  }
  // "300.1.1.1" looks like an address, so it must be a valid one.
  return !only_digits_and_dots || is_ip_address(AF_INET, host);
}

}  // namespace

std::optional<bool> parse_bool(std::string_view text) {
  for (std::string_view word : {"true", "yes", "on"})
    if (is_word_in_any_case(text, word)) return true;
  for (std::string_view word : {"false", "no", "off"})
    if (is_word_in_any_case(text, word)) return false;
  return std::nullopt;
}

std::optional<uint32_t> parse_whole_number(std::string_view text, uint32_t min, uint32_t max) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
    if (value > max) return std::nullopt;  // also keeps value from overflowing
  }
  if (value < min) return std::nullopt;
  return static_cast<uint32_t>(value);
}

bool is_clean_absolute_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  if (path == "/") return true;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string_view::npos) return true;
    path.remove_prefix(slash + 1);
  }
}

bool is_host_port(std::string_view addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = addr.substr(0, colon);
  std::string_view port = addr.substr(colon + 1);
  if (!parse_whole_number(port, 1, 65535)) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    return is_ip_address(AF_INET6, host.substr(1, host.size() - 2));
  return is_host_name(host);
}

size_t edit_distance(std::string_view a, std::string_view b) {
  // Rows of the usual table, d(i, j) being the distance between the first i
  // letters of a and the first j of b; only the last three rows are needed
  // (a swap looks two back), each as long as the shorter word. So memory is
  // O(min(|a|, |b|)), whatever the longer word.
  if (a.size() < b.size()) std::swap(a, b);
  std::vector<size_t> before(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        current[j] = std::min(current[j], before[j - 2] + 1);
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string_view> closest(std::string_view word,
                                        const std::vector<std::string_view>& candidates,
                                        size_t max_distance) {
  std::optional<std::string_view> best;
  size_t best_distance = max_distance + 1;
  for (std::string_view candidate : candidates) {
    // Words whose lengths differ by more than max_distance are at least that
    // many edits apart: skipped unmeasured, so a long word in a config file
    // costs nothing here (only candidate-sized words are ever compared).
    const size_t length_gap = word.size() > candidate.size() ? word.size() - candidate.size()
                                                             : candidate.size() - word.size();
    if (length_gap > max_distance) continue;
    size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace vigil::config
