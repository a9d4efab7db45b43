#include "audit/text_quote.hpp"

#include "audit/utf8.hpp"

namespace vigil::audit {
namespace {

// Format characters that reorder the text around them (the "Trojan Source"
// trick): a file name could otherwise display as a different name.
bool is_bidi_control(char32_t cp) {
  return cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

// Length of the character at p[0..n) when it can be shown as is; 0 when its
// first byte must be escaped. A refused multi-byte character has its other
// bytes refused too, as they cannot start a character.
size_t shown_length(const unsigned char* p, size_t n) {
  char32_t cp;
  const size_t len = utf8_decode(p, n, &cp);
  if (len == 0) return 0;
  if (cp < 0x20 || cp == 0x7f) return 0;
  if (cp >= 0x80 && cp < 0xa0) return 0;  // C1 controls: U+009B is CSI to some terminals
  if (is_bidi_control(cp)) return 0;
  return len;
}

void append_hex_escape(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char esc[] = {'\\', 'x', kHex[c >> 4], kHex[c & 0xf]};
  out.append(esc, sizeof esc);
}

// Copies s, escaping what a terminal must not see and the backslash; with
// `quote` set, also the single quote (inside $'...').
void append_escaped(std::string& out, std::string_view s, bool escape_quote) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    if (p[i] == '\\' || (escape_quote && p[i] == '\'')) {
      out += '\\';
      out += static_cast<char>(p[i++]);
      continue;
    }
    const size_t len = shown_length(p + i, n - i);
    if (len == 0) {
      append_hex_escape(out, p[i++]);
      continue;
    }
    out.append(s.data() + i, len);
    i += len;
  }
}

bool has_hidden_bytes(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    const size_t len = shown_length(p + i, s.size() - i);
    if (len == 0) return true;
    i += len;
  }
  return false;
}

// Characters bash gives no meaning to in a word. Any other ASCII byte (space,
// quotes, $, *, ;, |, ...) asks for quotes. Non-ASCII text is left bare.
bool is_shell_safe(unsigned char c) {
  if (c >= 0x80) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '@': case '%': case '+': case '=': case ':': case ',': case '.': case '/':
    case '-': case '_':
      return true;
  }
  return false;
}

// Characters that show as a blank or as nothing: a value holding one could
// look like two fields ("x\u00a0login=root").
bool is_unicode_space(char32_t cp) {
  return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200d) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x2060 ||
         cp == 0x3000 || cp == 0xfeff;
}

// Whether s (valid UTF-8: has_hidden_bytes(s) is false) holds one.
bool has_unicode_space(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    const size_t len = utf8_decode(p + i, s.size() - i, &cp);
    if (len == 0) return false;
    if (is_unicode_space(cp)) return true;
    i += len;
  }
  return false;
}

// Whether s can stand bare after "key=" (has_hidden_bytes(s) is false).
bool is_bare_value(std::string_view s) {
  if (s.empty() || has_unicode_space(s)) return false;
  for (char c : s)
    if (c == ' ' || c == '=' || c == '\'' || c == '"' || c == '`' || c == '\\') return false;
  return true;
}

// s in single quotes (bash's rule: a quote inside is '\'').
void append_single_quoted(std::string& out, std::string_view s) {
  out += '\'';
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";  // close the quotes, an escaped quote, reopen
    else
      out += c;
  }
  out += '\'';
}

void append_ansi_c_quoted(std::string& out, std::string_view s) {
  out += "$'";
  append_escaped(out, s, true);
  out += '\'';
}

}  // namespace

void append_printable(std::string& out, std::string_view s) {
  append_escaped(out, s, false);
}

void append_shell_word(std::string& out, std::string_view s) {
  if (has_hidden_bytes(s)) return append_ansi_c_quoted(out, s);
  bool safe = !s.empty();
  for (unsigned char c : s) safe = safe && is_shell_safe(c);
  if (safe && !has_unicode_space(s))
    out += s;
  else
    append_single_quoted(out, s);
}

void append_value(std::string& out, std::string_view s) {
  if (has_hidden_bytes(s))
    append_ansi_c_quoted(out, s);
  else if (is_bare_value(s))
    out += s;
  else
    append_single_quoted(out, s);
}

}  // namespace vigil::audit
