// The byte-level pieces of the encoder: UTF-8 checking, JSON strings, base64.
#include <gtest/gtest.h>

#include <string>

#include "audit/base64.hpp"
#include "audit/json.hpp"
#include "audit/utf8.hpp"

namespace vigil::audit {
namespace {

std::string base64(std::string_view bytes) {
  std::string out;
  append_base64(out, bytes);
  return out;
}

size_t decoded_length(std::string_view s, char32_t* cp) {
  return utf8_decode(reinterpret_cast<const unsigned char*>(s.data()), s.size(), cp);
}

TEST(AuditBase64, Rfc4648Vectors) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
}

TEST(AuditBase64, AllByteValuesAndAppend) {
  EXPECT_EQ(base64(std::string("\x00\x01\xff", 3)), "AAH/");
  EXPECT_EQ(base64("\xfb\xff"), "+/8=");
  std::string out = "x";
  append_base64(out, "ab");
  EXPECT_EQ(out, "xYWI=");
}

TEST(AuditBase64, DecodesStrictlyWithAndWithoutPadding) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t len = 0; len <= 7; ++len) {
    std::string bytes = all.substr(100, len), padded, bare;
    append_base64(padded, bytes);
    append_base64(bare, bytes, /*pad=*/false);
    EXPECT_EQ(decode_base64(padded), bytes);
    EXPECT_EQ(decode_base64(bare, /*padded=*/false), bytes);
    EXPECT_EQ(bare.find('='), std::string::npos);
  }
  EXPECT_EQ(decode_base64("Zm9vYg=="), "foob");
  EXPECT_FALSE(decode_base64("Zm9vYg="));          // padded length not a multiple of 4
  EXPECT_FALSE(decode_base64("Zm9vYh=="));         // bits left over
  EXPECT_FALSE(decode_base64("Zm9v YQ=="));        // whitespace
  EXPECT_FALSE(decode_base64("Zm9vY", false));     // 1 more than a multiple of 4
  EXPECT_FALSE(decode_base64("Zm9vYg==", false));  // '=' where none may be
  EXPECT_FALSE(decode_base64("Zm9v-_", false));    // the URL-safe alphabet is not this one
}

TEST(AuditUtf8, DecodesWellFormedSequences) {
  char32_t cp = 0;
  EXPECT_EQ(decoded_length("A", &cp), 1u);
  EXPECT_EQ(cp, U'A');
  EXPECT_EQ(decoded_length("\xc3\xa9", &cp), 2u);
  EXPECT_EQ(cp, U'\u00e9');
  EXPECT_EQ(decoded_length("\xe2\x80\xae", &cp), 3u);
  EXPECT_EQ(cp, U'\u202e');
  EXPECT_EQ(decoded_length("\xef\xbf\xbd", &cp), 3u);
  EXPECT_EQ(cp, U'\ufffd');
  EXPECT_EQ(decoded_length("\xf0\x9f\x94\x91", &cp), 4u);
  EXPECT_EQ(cp, U'\U0001f511');
  EXPECT_EQ(decoded_length("\xf4\x8f\xbf\xbf", &cp), 4u);
  EXPECT_EQ(cp, U'\U0010ffff');
}

TEST(AuditUtf8, RejectsIllFormedSequences) {
  char32_t cp = 0;
  for (std::string_view bad : {"\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x9f\xbf",
                               "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x8f\xbf\xbf",
                               "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\xc3",
                               "\xe2\x82", "\xf0\x9f\x94", "\xc3(", "\xe2\x82("}) {
    EXPECT_EQ(decoded_length(bad, &cp), 0u) << testing::PrintToString(std::string(bad));
  }
}

TEST(AuditJsonString, ReportsWhetherTheBytesSurvive) {
  std::string out;
  EXPECT_TRUE(append_json_string(out, "caf\xc3\xa9 \"q\"\n"));
  EXPECT_EQ(out, "\"caf\xc3\xa9 \\\"q\\\"\\n\"");
  out.clear();
  EXPECT_FALSE(append_json_string(out, "a\xff"));
  EXPECT_EQ(out, "\"a\xef\xbf\xbd\"");
  out.clear();
  EXPECT_TRUE(append_json_string(out, ""));
  EXPECT_EQ(out, "\"\"");
}

TEST(AuditJsonString, EveryControlByte) {
  const char* expected[32] = {
      "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
      "\\b",     "\\t",     "\\n",     "\\u000b", "\\f",     "\\r",     "\\u000e", "\\u000f",
      "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
      "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f"};
  for (int c = 0; c < 32; ++c) {
    std::string out;
    append_json_string(out, std::string(1, static_cast<char>(c)));
    EXPECT_EQ(out, std::string("\"") + expected[c] + "\"") << "byte " << c;
  }
  std::string del;
  append_json_string(del, "\x7f/");
  EXPECT_EQ(del, "\"\x7f/\"");  // DEL and '/' need no escape in JSON
}

}  // namespace
}  // namespace vigil::audit
