// The exports of `vigil play`: asciicast v2 lines exactly, UTF-8 characters
// split across output records, bytes that are not UTF-8, and the text form
// with its escape sequences removed and the commands marked in place.
#include <gtest/gtest.h>

#include "../recording/test_util.hpp"
#include "recording/asciicast.hpp"
#include "recording/terminal_text.hpp"

namespace vigil::recording {
namespace {

using namespace testing;

std::string cast_of(const std::vector<Record>& records, const Header& h = test_header()) {
  AsciicastExport cast(h);
  std::string out;
  cast.begin(out);
  for (const auto& r : records) cast.record(r, out);
  cast.finish(out);
  return out;
}

std::string text_of(const std::vector<Record>& records, bool commands = true) {
  TextExport text(test_header(), commands);
  std::string out;
  for (const auto& r : records) text.record(r, out);
  text.finish(out);
  return out;
}

std::string text_of_bytes(const std::vector<std::string>& pieces) {
  TerminalText t;
  std::string out;
  for (const auto& p : pieces) t.feed(p, out);
  t.finish(out);
  return out;
}

std::string command_event(const std::string& path, const std::string& argv_json,
                          int return_code = 0) {
  return R"({"argv":)" + argv_json +
         R"(,"code":"T4000I","ei":3,"event":"session.command","path":")" + path +
         R"(","pid":5007,"return_code":)" + std::to_string(return_code) + "}";
}

TEST(Asciicast, ExactLines) {
  const std::string cast = cast_of({
      output(kStart + 500 * kMs, "$ ls\r\n"),
      event(kStart + 600 * kMs, command_event("/bin/ls", "[]")),  // not in a cast
      resize(kStart + 1 * kSec, 100, 30),
      output(kStart + 1250 * kMs + 999, "\x1b[1mbold\x1b[0m\t\"q\" \\"),
      output(kStart + 3600 * kSec, "later"),
  });
  EXPECT_EQ(cast,
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1688488940}\n"
            "[0.500000,\"o\",\"$ ls\\r\\n\"]\n"
            "[1.000000,\"r\",\"100x30\"]\n"
            "[1.250000,\"o\",\"\\u001b[1mbold\\u001b[0m\\t\\\"q\\\" \\\\\"]\n"
            "[3600.000000,\"o\",\"later\"]\n");
}

TEST(Asciicast, CharacterSplitAcrossRecordsIsCarriedToTheNext) {
  // "é" is C3 A9, "€" is E2 82 AC, "😀" is F0 9F 98 80.
  const std::string cast = cast_of({
      output(kStart + 1 * kSec, "caf\xc3"),
      output(kStart + 2 * kSec, "\xa9 \xe2"),
      output(kStart + 3 * kSec, "\x82"),
      output(kStart + 4 * kSec, "\xac \xf0\x9f\x98"),
      output(kStart + 5 * kSec, "\x80!"),
  });
  EXPECT_EQ(cast,
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1688488940}\n"
            "[1.000000,\"o\",\"caf\"]\n"
            "[2.000000,\"o\",\"\xc3\xa9 \"]\n"
            "[4.000000,\"o\",\"\xe2\x82\xac \"]\n"
            "[5.000000,\"o\",\"\xf0\x9f\x98\x80!\"]\n");
}

TEST(Asciicast, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  const std::string cast = cast_of({
      output(kStart + 1 * kSec,
             "a\xff"
             "b\xc3(c"),                          // invalid byte; lead byte not continued
      output(kStart + 2 * kSec, "end \xe2\x82"),  // incomplete at the very end
  });
  EXPECT_EQ(cast,
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1688488940}\n"
            "[1.000000,\"o\",\"a\xef\xbf\xbd"
            "b\xef\xbf\xbd(c\"]\n"
            "[2.000000,\"o\",\"end \"]\n"
            "[2.000000,\"o\",\"\xef\xbf\xbd\xef\xbf\xbd\"]\n");
}

TEST(Asciicast, TimesNeverGoBackwards) {
  const std::string cast = cast_of({
      output(kStart - 5 * kSec, "before start"),
      output(kStart + 2 * kSec, "b"),
      output(kStart + 1 * kSec, "late"),
  });
  EXPECT_EQ(cast,
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1688488940}\n"
            "[0.000000,\"o\",\"before start\"]\n"
            "[2.000000,\"o\",\"b\"]\n"
            "[2.000000,\"o\",\"late\"]\n");
}

TEST(Asciicast, HeaderTakesTheInitialSize) {
  Header h = test_header(kStart);
  h.cols = 211;
  h.rows = 57;
  EXPECT_EQ(cast_of({}, h),
            "{\"version\":2,\"width\":211,\"height\":57,\"timestamp\":1688488940}\n");
}

TEST(TextExport, CommandsAreMarkedBetweenTheirOutput) {
  const std::string text = text_of({
      output(kStart + 100 * kMs, "\x1b]0;alice@node: ~\x07\x1b[01;32malice@node\x1b[00m:~$ "),
      output(kStart + 900 * kMs, "ls -la\r\n"),
      event(kStart + 1234 * kMs, command_event("/usr/bin/ls", R"(["-la"])")),
      output(kStart + 1300 * kMs, "total 0\r\n-rw-r--r-- 1 alice alice 0 a.txt\r\n"),
      event(kStart + 1400 * kMs, R"({"event":"session.disk","path":"/etc/passwd"})"),
      output(kStart + 2 * kSec, "alice@node:~$ "),
      event(kStart + 62'005 * kMs, command_event("/bin/sh", R"(["-c","echo 'hi there'; exit 3"])")),
      event(kStart + 62'006 * kMs, command_event("/nope", "[]", -2)),
      output(kStart + 63 * kSec, "exit\r\n"),
  });
  EXPECT_EQ(text,
            "alice@node:~$ ls -la\n"
            "[+1.234s] $ /usr/bin/ls -la\n"
            "total 0\n"
            "-rw-r--r-- 1 alice alice 0 a.txt\n"
            "alice@node:~$\n"
            "[+62.005s] $ /bin/sh -c 'echo '\\''hi there'\\''; exit 3'\n"
            "[+62.006s] $ /nope   # exec failed: ENOENT\n"
            "exit\n");
  EXPECT_EQ(text_of({output(kStart, "a\r\n"), event(kStart + 1, command_event("/bin/ls", "[]"))},
                    /*commands=*/false),
            "a\n");
}

TEST(TerminalText, LineEditingAndEscapes) {
  // Carriage return overwrites; backspace and erase in line edit the line.
  EXPECT_EQ(text_of_bytes({"[ 10%] Building\r[100%] Built target vigil\r\n"}),
            "[100%] Built target vigil\n");
  EXPECT_EQ(text_of_bytes({"lss\b \b -l\r\n"}), "ls -l\n");
  EXPECT_EQ(text_of_bytes({"abcdef\r\x1b[Kxyz\n"}), "xyz\n");
  EXPECT_EQ(text_of_bytes({"abc\x1b[2D\x1b[PZ\n"}), "aZ\n");
  EXPECT_EQ(text_of_bytes({"a\tb\r\n"}), "a       b\n");
  // An escape sequence split across records; private modes; a DCS string.
  EXPECT_EQ(text_of_bytes({"red \x1b", "[3", "1mtext\x1b[0m", "\x1b[?2004h$ \x1bP1$r\x1b\\ok\n"}),
            "red text$ ok\n");
  // Control characters draw nothing; C1 controls are dropped; \r\r\n ends a line once.
  EXPECT_EQ(text_of_bytes({"a\x07"
                           "b\x01\xc2\x9b"
                           "c\r\r\n\r\n"}),
            "abc\n\n");
  // Invalid bytes and a character split across records.
  EXPECT_EQ(text_of_bytes({"caf\xc3", "\xa9 \xff\n"}), "caf\xc3\xa9 \xef\xbf\xbd\n");
  EXPECT_EQ(text_of_bytes({"no newline at the end"}), "no newline at the end\n");
  EXPECT_EQ(text_of_bytes({"trailing   \r\n"}), "trailing\n");
}

}  // namespace
}  // namespace vigil::recording
