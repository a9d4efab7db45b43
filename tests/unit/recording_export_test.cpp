// The exports of `vigil play`: asciicast v2 lines exactly, UTF-8 characters
// split across output records, bytes that are not UTF-8, and the text form
// with its escape sequences removed and the commands marked in place.
#include <gtest/gtest.h>

#include <limits>

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

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

std::string text_in(size_t cols, const std::vector<std::string>& pieces) {
  TerminalText t(cols);
  std::string out;
  for (const auto& p : pieces) t.feed(p, out);
  t.finish(out);
  return out;
}

// Output is chosen by whoever was logged in. These are the attacks of
// issue 7: counts in escape sequences that asked for gigabytes or for
// quadratic time.
TEST(TerminalTextHostile, CursorForwardStopsAtTheRightMargin) {
  // 30,000 times "10,000 columns right" then one character: it lands in
  // the last column of the 80 (was: 300 MB of spaces before the x).
  EXPECT_EQ(text_in(80, {repeat("\x1b[10000C", 30'000) + "x\n"}), std::string(79, ' ') + "x\n");
  // Interleaved with text: each x overwrites the last column.
  EXPECT_EQ(text_in(80, {repeat("\x1b[10000Cx", 200'000) + "\n"}), std::string(79, ' ') + "x\n");
  // The same holds for the other ways right: HPR, HPA, CHA, tabs, CHT.
  for (const char* move : {"\x1b[9999a", "\x1b[9999`", "\x1b[9999G", "\t\t\t\t\t\t\t\t\t\t\t",
                           "\x1b[9999I"})
    EXPECT_EQ(text_in(80, {std::string(move) + "x\n"}), std::string(79, ' ') + "x\n")
        << ::testing::PrintToString(move);
}

TEST(TerminalTextHostile, InsertPushesCellsPastTheMarginOut) {
  EXPECT_EQ(text_in(80, {"abc\r\x1b[2@\n"}), "  abc\n");
  EXPECT_EQ(text_in(80, {"abc\r\x1b[78@\n"}), std::string(78, ' ') + "ab\n");
  // 1,000 inserts of 10,000 blanks made a line of 10 million cells (and
  // 200,000 of them ran for minutes): now the line is never wider than 80.
  EXPECT_EQ(text_in(80, {"abc\r" + repeat("\x1b[10000@", 1'000) + "x\n"}), "x\n");
  EXPECT_EQ(text_in(80, {"abc" + repeat("\x1b[10000D\x1b[10000@", 1'000) + "\n"}), "\n");
}

TEST(TerminalTextHostile, RepeatFillsTheLineAndNoMore) {
  EXPECT_EQ(text_in(80, {"ab\x1b[3b\n"}), "abbbb\n");
  EXPECT_EQ(text_in(80, {"x\x1b[10000b\n"}), std::string(80, 'x') + "\n");
  EXPECT_EQ(text_in(80, {repeat("x\x1b[10000b", 1'000) + "\n"}),
            repeat(std::string(80, 'x') + "\n", 1'000));
  EXPECT_EQ(text_in(80, {"\x1b[5b\n"}), "\n");  // nothing to repeat
}

TEST(TerminalTextHostile, TextWrapsAtTheRightMarginAsOnATerminal) {
  EXPECT_EQ(text_in(10, {"0123456789abc\n"}), "0123456789\nabc\n");
  // Exactly full: the line ends once, as the terminal's pending wrap does.
  EXPECT_EQ(text_in(10, {"0123456789\r\n"}), "0123456789\n");
  EXPECT_EQ(text_in(10, {"0123456789\rX\n"}), "X123456789\n");
}

TEST(TerminalTextHostile, TabStopsBackAndForth) {
  EXPECT_EQ(text_in(80, {"a\x1b[2Ib\n"}), "a               b\n");
  EXPECT_EQ(text_in(80, {"0123456789abcdefghij\x1b[ZX\n"}), "0123456789abcdefXhij\n");
  EXPECT_EQ(text_in(80, {"0123456789abcdefghij\x1b[9999ZX\n"}), "X123456789abcdefghij\n");
}

TEST(TerminalTextHostile, SequencesWithIntermediatesAreNotTheirPlainForm) {
  // ESC [ 5 SP @ scrolls left (not insert); ESC [ 2 SP q sets the cursor shape.
  EXPECT_EQ(text_in(80, {"abc\r\x1b[5 @\x1b[2 q\n"}), "abc\n");
}

TEST(TerminalTextHostile, OutputIsLinearInTheInput) {
  // The worst a byte can do is a line of the full width: a bound per input
  // byte of width / 3 + 4 (3 bytes of ESC [ @ for a width of blanks, or
  // one invalid byte for a 3-byte U+FFFD).
  const std::vector<std::string> attacks = {
      repeat("\x1b[1023Cx\n", 10'000),   repeat("x\r\x1b[1023@\n", 10'000),
      repeat("x\x1b[b\n", 10'000),       repeat("\xff", 100'000),
      repeat("\t\t\t\tx\n", 10'000),     repeat("\x1b[9999Ix\x1b[9999Z", 10'000),
      repeat("\xf0\x9f\x98\x80", 50'000), repeat("\x1b[10000Cx\n", 1'000),
  };
  for (const auto& input : attacks) {
    const std::string out = text_in(kMaxColumns, {input});
    EXPECT_LE(out.size(), input.size() * (kMaxColumns / 3 + 4)) << out.size();
  }
}

TEST(TextExportHostile, WidthComesFromTheRecordingAndItsResizes) {
  Header h = test_header();
  h.cols = 20;
  TextExport text(h);
  std::string out;
  text.record(output(kStart, "\x1b[999Cx\r\n"), out);
  text.record(resize(kStart + 1, 10, 5), out);
  text.record(output(kStart + 2, "\x1b[999Cy\r\n"), out);
  text.finish(out);
  EXPECT_EQ(out, std::string(19, ' ') + "x\n" + std::string(9, ' ') + "y\n");
}

TEST(TextExportHostile, DamagedWidthsTakeTheHardCap) {
  for (uint16_t cols : {uint16_t{0}, uint16_t{1025}, uint16_t{65535}}) {
    Header h = test_header();
    h.cols = cols;
    TextExport text(h);
    std::string out;
    text.record(output(kStart, repeat("\x1b[10000C", 1'000) + "x\n"), out);
    text.record(resize(kStart, cols, 1), out);
    text.record(output(kStart, repeat("\x1b[10000C", 1'000) + "y\n"), out);
    text.finish(out);
    EXPECT_EQ(out, std::string(kMaxColumns - 1, ' ') + "x\n" + std::string(kMaxColumns - 1, ' ') +
                       "y\n")
        << cols;
  }
}

std::string nested_array(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(TextExportHostile, DeeplyNestedEventIsReportedAndSkipped) {
  // 100,000 levels: parsing was fine, printing it (dump()) overflowed the stack.
  TextExport text(test_header());
  std::string out;
  text.record(output(kStart, "a\r\n"), out);
  text.record(event(kStart + 1 * kMs,
                    R"({"event":"session.command","path":"/bin/x","argv":[)" +
                        nested_array(100'000) + "]}"),
              out);
  EXPECT_EQ(text.take_warnings(),
            std::vector<std::string>{"record 2: skipped an event (nested deeper than 64 levels)"});
  text.record(event(kStart + 2 * kMs, command_event("/bin/ls", "[]")), out);
  text.record(output(kStart + 3 * kMs, "b\r\n"), out);
  text.finish(out);
  EXPECT_EQ(out, "a\n[+0.002s] $ /bin/ls\nb\n");
  EXPECT_TRUE(text.take_warnings().empty());
  // 64 levels are shown (argv is 1 of them).
  std::string mark;
  ASSERT_TRUE(format_command_mark(R"({"event":"session.command","path":"/bin/x","argv":[)" +
                                      nested_array(62) + "]}",
                                  kStart, kStart, mark));
  EXPECT_EQ(mark, "[+0.000s] $ /bin/x '" + nested_array(62) + "'\n");
  std::string why;
  EXPECT_FALSE(format_command_mark(R"({"event":"session.command","path":"/bin/x","argv":[)" +
                                       nested_array(63) + "]}",
                                   kStart, kStart, mark, &why));
  EXPECT_EQ(why, "nested deeper than 64 levels");
}

TEST(TextExportHostile, ExtremeTimesAndReturnCodes) {
  // Times and codes are the file's: they may be any int64 (UBSan caught
  // overflows in the differences and in negating INT64_MIN).
  std::string mark;
  ASSERT_TRUE(format_command_mark(
      R"({"event":"session.command","path":"/x","return_code":-9223372036854775808})",
      std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), mark));
  EXPECT_EQ(mark, "[+9223372036.854s] $ /x   # exec failed: -9223372036854775808\n");
  mark.clear();
  ASSERT_TRUE(format_command_mark(
      R"({"event":"session.command","path":"/x","return_code":9223372036854775807})",
      std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(), mark));
  EXPECT_EQ(mark, "[+0.000s] $ /x   # exec failed: 9223372036854775807\n");
}

TEST(AsciicastHostile, ExtremeTimesSaturate) {
  Header h = test_header(std::numeric_limits<int64_t>::min());
  const std::string cast = cast_of({output(std::numeric_limits<int64_t>::max(), "a"),
                                    output(std::numeric_limits<int64_t>::min(), "b")},
                                   h);
  EXPECT_EQ(cast,
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":-9223372037}\n"
            "[9223372036.854775,\"o\",\"a\"]\n"
            "[9223372036.854775,\"o\",\"b\"]\n");
}

}  // namespace
}  // namespace vigil::recording
