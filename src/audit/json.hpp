// The hand-written JSON writer behind the audit encoders. It appends to the
// caller's buffer and allocates nothing of its own: the encoders run for
// every recorded event.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "event/event.hpp"

namespace vigil::audit {

// Appends s as a quoted JSON string. Valid UTF-8 passes through unchanged;
// each byte that is not part of a valid sequence becomes U+FFFD. Escapes
// '"', '\\' and every control byte below 0x20 (short forms where JSON has
// them). Returns false when s was not valid UTF-8, i.e. when the written
// string does not give back the exact bytes.
bool append_json_string(std::string& out, std::string_view s);

// One JSON object, written field by field in the order of the calls. The
// caller writes keys in alphabetical order, as Teleport's events have them;
// debug builds assert it.
class JsonObject {
 public:
  explicit JsonObject(std::string& out) : out_(out) { out_ += '{'; }
  JsonObject(const JsonObject&) = delete;
  JsonObject& operator=(const JsonObject&) = delete;

  void string(std::string_view key, std::string_view value);
  void int64(std::string_view key, int64_t value);
  void uint64(std::string_view key, uint64_t value);
  void boolean(std::string_view key, bool value);
  void time(std::string_view key, int64_t ns);  // RFC 3339, see timefmt.hpp
  void string_array(std::string_view key, const std::vector<std::string>& values);

  // Raw bytes that are usually text (paths, arguments): the readable string
  // under `key` and, only when it is not valid UTF-8, the exact bytes in
  // base64 under `base64_key` (one string per element for arrays).
  void bytes(std::string_view key, std::string_view base64_key, std::string_view value);
  void bytes_array(std::string_view key, std::string_view base64_key,
                   const std::vector<std::string>& values);

  // {"command":N,"disk":N,"network":N}
  void kind_counts(std::string_view key, const KindCounts& counts);
  // ["command","network"]: the kinds in the set, in kind order.
  void kind_names(std::string_view key, KindSet kinds);

  // Closes the object and ends the line: one event a line.
  void end() { out_ += "}\n"; }

 private:
  void key(std::string_view k);
  // Writes the array and returns whether every element was valid UTF-8.
  bool array_of_strings(const std::vector<std::string>& values);

  std::string& out_;
  bool first_ = true;
#ifndef NDEBUG
  std::string_view last_key_;
#endif
};

}  // namespace vigil::audit
