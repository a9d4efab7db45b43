#include "sshcert/wire.hpp"

#include "audit/base64.hpp"
#include "audit/utf8.hpp"

namespace vigil::sshcert {

bool WireReader::take(std::string_view field, size_t n, std::string_view* out) {
  if (error_) return false;
  const size_t left = data_.size() - pos_;
  if (n > left) {
    fail(field, "needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
                    " but only " + std::to_string(left) + " are left");
    return false;
  }
  *out = data_.substr(pos_, n);
  pos_ += n;
  return true;
}

uint32_t WireReader::u32(std::string_view field) {
  std::string_view b;
  if (!take(field, 4, &b)) return 0;
  uint32_t v = 0;
  for (unsigned char c : b) v = (v << 8) | c;
  return v;
}

uint64_t WireReader::u64(std::string_view field) {
  std::string_view b;
  if (!take(field, 8, &b)) return 0;
  uint64_t v = 0;
  for (unsigned char c : b) v = (v << 8) | c;
  return v;
}

std::string_view WireReader::bytes(std::string_view field) {
  const uint32_t len = u32(field);
  std::string_view b;
  if (!take(field, len, &b)) return {};
  return b;
}

std::string_view WireReader::text(std::string_view field) {
  std::string_view s = bytes(field);
  if (ok() && !is_text(s)) {
    fail(field, "is not valid UTF-8 text (or holds a NUL byte)");
    return {};
  }
  return s;
}

std::string_view WireReader::positive_mpint(std::string_view field, size_t max_bytes) {
  std::string_view b = bytes(field);
  if (!ok()) return {};
  auto byte = [&](size_t i) { return static_cast<unsigned char>(b[i]); };
  if (b.empty()) {
    fail(field, "is zero");
    return {};
  }
  if (byte(0) & 0x80) {
    fail(field, "is negative");
    return {};
  }
  if (byte(0) == 0) {
    // A leading zero is only there to keep a set top bit from meaning "negative".
    if (b.size() == 1 || !(byte(1) & 0x80)) {
      fail(field, "has a leading zero byte it does not need");
      return {};
    }
    b.remove_prefix(1);
  }
  if (b.size() > max_bytes) {
    fail(field, "is " + std::to_string(b.size() * 8) + " bits long, more than the " +
                    std::to_string(max_bytes * 8) + " allowed");
    return {};
  }
  return b;
}

void WireReader::expect_end() {
  if (ok() && !at_end())
    fail("end", std::to_string(data_.size() - pos_) + " unexpected trailing bytes at offset " +
                    std::to_string(pos_));
}

void WireReader::fail(std::string_view field, std::string_view problem) {
  if (error_) return;
  error_ = Error{what_ + ": " + std::string(field) + ": " + std::string(problem)};
}

void WireWriter::u32(uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out_ += static_cast<char>((v >> shift) & 0xff);
}

void WireWriter::u64(uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out_ += static_cast<char>((v >> shift) & 0xff);
}

void WireWriter::bytes(std::string_view s) {
  u32(static_cast<uint32_t>(s.size()));
  out_.append(s);
}

void WireWriter::positive_mpint(std::string_view magnitude) {
  if (!magnitude.empty() && (static_cast<unsigned char>(magnitude[0]) & 0x80)) {
    bytes(std::string(1, '\0') + std::string(magnitude));
  } else {
    bytes(magnitude);
  }
}

bool is_text(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    const size_t len = audit::utf8_decode(p + i, s.size() - i, &cp);
    if (len == 0 || cp == 0) return false;
    i += len;
  }
  return true;
}

std::optional<std::string> base64_decode(std::string_view s) { return audit::decode_base64(s); }

std::string base64_encode(std::string_view bytes, bool pad) {
  std::string out;
  audit::append_base64(out, bytes, pad);
  return out;
}

}  // namespace vigil::sshcert
