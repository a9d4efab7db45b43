// The SSH wire encoding (RFC 4251 section 5) of keys, certificates and
// signatures, and the base64 of their one-line text form.
//
// Everything here reads bytes a client chose: every length is checked
// against what is left before it is used, so no input can read out of
// bounds, and the first problem is kept as an Error that names the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.hpp"

namespace vigil::sshcert {

// Reads fields in order from a blob. Once a read fails the reader is
// "failed": later reads return empty values and the first error is kept,
// so a parser can read a group of fields and check once.
class WireReader {
 public:
  // what: names the blob in errors ("certificate", "signature").
  WireReader(std::string_view data, std::string what) : data_(data), what_(std::move(what)) {}

  uint32_t u32(std::string_view field);
  uint64_t u64(std::string_view field);
  std::string_view bytes(std::string_view field);   // string: uint32 length, then bytes
  std::string_view text(std::string_view field);    // a string that must be UTF-8 without NUL
  // mpint holding a positive number: its big-endian magnitude without the
  // sign byte. Negative numbers, zero and non-minimal encodings are refused
  // (OpenSSH never writes them), so one number has one encoding and key
  // blobs can be compared byte for byte.
  std::string_view positive_mpint(std::string_view field, size_t max_bytes);

  // Fails unless every byte was read: trailing bytes are an error.
  void expect_end();
  // Records a problem found by the caller (e.g. a value out of range).
  void fail(std::string_view field, std::string_view problem);

  bool ok() const { return !error_; }
  bool at_end() const { return pos_ == data_.size(); }
  size_t offset() const { return pos_; }
  const Error& error() const { return *error_; }

 private:
  bool take(std::string_view field, size_t n, std::string_view* out);

  std::string_view data_;
  std::string what_;
  size_t pos_ = 0;
  std::optional<Error> error_;
};

// Builds a blob: re-encoding a certified key here, whole certificates and
// private key files in src/ca.
class WireWriter {
 public:
  void u32(uint32_t v);
  void u64(uint64_t v);
  void raw(std::string_view s) { out_.append(s); }  // bytes as they are, no length
  void bytes(std::string_view s);
  void positive_mpint(std::string_view magnitude);  // as read by WireReader
  const std::string& data() const { return out_; }
  std::string& data() { return out_; }

 private:
  std::string out_;
};

// Valid UTF-8 with no NUL byte: what the certificate format calls text.
bool is_text(std::string_view s);

// Standard base64 with padding (RFC 4648), strictly: no whitespace inside,
// no bits left over. nullopt when s is not that.
std::optional<std::string> base64_decode(std::string_view s);
std::string base64_encode(std::string_view bytes, bool pad = true);

}  // namespace vigil::sshcert
