#include "audit/json.hpp"

#include <array>
#include <cassert>
#include <charconv>
#include <cstring>

#include "audit/base64.hpp"
#include "audit/timefmt.hpp"
#include "audit/utf8.hpp"

namespace vigil::audit {
namespace {

// Bytes copied as they are: printable ASCII except the quote and backslash.
// Bytes from 0x80 up are checked as UTF-8 separately.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

void append_escape(std::string& out, unsigned char c) {
  switch (c) {
    case '"': out += "\\\""; return;
    case '\\': out += "\\\\"; return;
    case '\b': out += "\\b"; return;
    case '\f': out += "\\f"; return;
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
  out.append(esc, sizeof esc);
}

template <typename Int>
void append_integer(std::string& out, Int value) {
  char buf[24];
  const auto res = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, res.ptr);
}

}  // namespace

bool append_json_string(std::string& out, std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  bool valid = true;
  out += '"';
  size_t pending = 0;  // start of the bytes not yet copied
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (kPlain[c]) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      char32_t cp;
      const size_t len = utf8_decode(p + i, n - i, &cp);
      if (len > 0) {
        i += len;
        continue;
      }
    }
    out.append(s.data() + pending, i - pending);
    if (c >= 0x80) {
      out += kReplacementChar;
      valid = false;
    } else {
      append_escape(out, c);
    }
    pending = ++i;
  }
  out.append(s.data() + pending, n - pending);
  out += '"';
  return valid;
}

void JsonObject::key(std::string_view k) {
#ifndef NDEBUG
  assert((first_ || last_key_ < k) && "audit event keys must be in alphabetical order");
  last_key_ = k;
#endif
  // One append per key, not four: an event has some 25 keys, and this is
  // the hot path of an open storm's encoding.
  char buf[64];
  if (k.size() + 4 <= sizeof(buf)) {
    size_t n = 0;
    if (!first_) buf[n++] = ',';
    buf[n++] = '"';
    std::memcpy(buf + n, k.data(), k.size());
    n += k.size();
    buf[n++] = '"';
    buf[n++] = ':';
    first_ = false;
    out_.append(buf, n);
    return;
  }
  if (!first_) out_ += ',';
  first_ = false;
  out_ += '"';
  out_ += k;
  out_ += "\":";
}

void JsonObject::string(std::string_view k, std::string_view value) {
  key(k);
  append_json_string(out_, value);
}

void JsonObject::int64(std::string_view k, int64_t value) {
  key(k);
  append_integer(out_, value);
}

void JsonObject::uint64(std::string_view k, uint64_t value) {
  key(k);
  append_integer(out_, value);
}

void JsonObject::boolean(std::string_view k, bool value) {
  key(k);
  out_ += value ? "true" : "false";
}

void JsonObject::time(std::string_view k, int64_t ns) {
  key(k);
  out_ += '"';
  append_time(out_, ns);
  out_ += '"';
}

bool JsonObject::array_of_strings(const std::vector<std::string>& values) {
  bool valid = true;
  out_ += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out_ += ',';
    valid &= append_json_string(out_, values[i]);
  }
  out_ += ']';
  return valid;
}

void JsonObject::string_array(std::string_view k, const std::vector<std::string>& values) {
  key(k);
  array_of_strings(values);
}

void JsonObject::bytes(std::string_view k, std::string_view base64_key, std::string_view value) {
  key(k);
  if (append_json_string(out_, value)) return;
  key(base64_key);
  out_ += '"';
  append_base64(out_, value);
  out_ += '"';
}

void JsonObject::bytes_array(std::string_view k, std::string_view base64_key,
                             const std::vector<std::string>& values) {
  key(k);
  if (array_of_strings(values)) return;
  key(base64_key);
  out_ += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out_ += ',';
    out_ += '"';
    append_base64(out_, values[i]);
    out_ += '"';
  }
  out_ += ']';
}

void JsonObject::kind_counts(std::string_view k, const KindCounts& counts) {
  key(k);
  // Kinds in enum order are in alphabetical order too (command, disk,
  // network), so the inner keys need no sorting.
  char sep = '{';
  for (int i = 0; i < kKindCount; ++i) {
    const auto kind = static_cast<Kind>(i);
    out_ += sep;
    sep = ',';
    out_ += '"';
    out_ += kind_name(kind);
    out_ += "\":";
    append_integer(out_, counts[kind]);
  }
  out_ += '}';
}

void JsonObject::kind_names(std::string_view k, KindSet kinds) {
  key(k);
  out_ += '[';
  bool first = true;
  for (int i = 0; i < kKindCount; ++i) {
    const auto kind = static_cast<Kind>(i);
    if (!kinds.has(kind)) continue;
    if (!first) out_ += ',';
    first = false;
    out_ += '"';
    out_ += kind_name(kind);
    out_ += '"';
  }
  out_ += ']';
}

}  // namespace vigil::audit
