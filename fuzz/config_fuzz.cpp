// The node YAML through config::parse(), the whole path a file takes at
// start-up: yaml-cpp, the schema, every value check and the "did you mean"
// suggestions. Also closest() on its own, with the input split at its first
// NUL into a word and the candidates.
//
// Properties: an error names the file and a line ("fuzz.yaml:N: ...") and
// stays short whatever the input echoes; a file that loads has the values
// the checks allow.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "check.hpp"
#include "config/config.hpp"
#include "config/values.hpp"

using namespace vigil::config;
using vigil::fuzz::kMaxMessage;

namespace {

void check_suggestions(std::string_view data) {
  const size_t nul = data.find('\0');
  if (nul == std::string_view::npos) return;
  const std::string_view word = data.substr(0, nul);
  std::vector<std::string_view> candidates;
  std::string_view rest = data.substr(nul + 1);
  while (!rest.empty() && candidates.size() < 16) {
    const size_t end = std::min(rest.find('\0'), rest.size());
    candidates.push_back(rest.substr(0, end));
    rest.remove_prefix(std::min(end + 1, rest.size()));
  }
  if (auto best = closest(word, candidates)) {
    FUZZ_CHECK(edit_distance(word, *best) <= 2, "a suggestion is within 2 edits");
    FUZZ_CHECK(edit_distance(*best, word) == edit_distance(word, *best), "distance is symmetric");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  auto config = parse(data, "fuzz.yaml");
  if (config) {
    FUZZ_CHECK(config->source == "fuzz.yaml", "source");
    FUZZ_CHECK(config->version == "v3", "only v3 loads");
    FUZZ_CHECK(is_clean_absolute_path(config->ssh.enhanced_recording.cgroup_path), "cgroup_path");
    FUZZ_CHECK(config->ssh.enhanced_recording.root_path != "/", "root_path is not /");
    for (uint32_t pages : {config->ssh.enhanced_recording.command_buffer_size,
                           config->ssh.enhanced_recording.disk_buffer_size,
                           config->ssh.enhanced_recording.network_buffer_size})
      FUZZ_CHECK(pages >= kMinBufferPages && pages <= kMaxBufferPages && ring_bytes(pages) > 0,
                 "pages");
    FUZZ_CHECK(is_host_port(config->ssh.listen_addr), "listen_addr");
    FUZZ_CHECK(!config->ssh.default_kinds.empty(), "default kinds");
  } else {
    const std::string& message = config.error().message;
    FUZZ_CHECK(message.starts_with("fuzz.yaml:"), "an error names the file: " + message.substr(0, 300));
    const size_t digits = message.find_first_not_of("0123456789", sizeof "fuzz.yaml:" - 1);
    FUZZ_CHECK(digits > sizeof "fuzz.yaml:" - 1 && digits != std::string::npos && message[digits] == ':',
               "an error names the line: " + message.substr(0, 300));
    FUZZ_CHECK(message.size() < kMaxMessage, "an error stays short: " + message.substr(0, 300));
  }
  check_suggestions(data);
  return 0;
}
