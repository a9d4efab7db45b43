// The list of recordings (recording/listing.hpp): the table `vigil
// recordings` and `vsh recordings ls` print, from the JSON rows a node's
// store or the auth service gives; rows from elsewhere cannot shift its
// columns or reach the terminal as control bytes.
#include <gtest/gtest.h>

#include "recording/listing.hpp"

namespace vigil::recording {
namespace {

using Json = nlohmann::ordered_json;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    out.push_back(text.substr(at, nl - at));
    at = nl == std::string::npos ? text.size() : nl + 1;
  }
  return out;
}

Summary summary() {
  Summary s;
  s.header.sid = "9b825e22-744d-4130-94c5-dea49198ae3d";
  s.header.server_id = "node-uuid";
  s.header.user = "alice";
  s.header.login = "root";
  s.header.start_ns = 1'688'488'940'540'123'000;  // 2023-07-04T16:42:20.540123Z
  s.header.interactive = true;
  s.end_ns = s.header.start_ns + 725'000'000'000;  // 12m05s
  s.ended = true;
  s.enhanced = true;
  s.events[Kind::command] = 3;
  s.events[Kind::network] = 1;
  s.output_bytes = 10;
  return s;
}

TEST(RecordingListing, TheTableFromASummarysRow) {
  Json row;
  append_listing_fields(row, summary());
  EXPECT_EQ(row["status"], "ended");
  EXPECT_EQ(row["duration_ms"], 725'000);
  auto lines = lines_of(listing_table({row}));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("START (UTC)", 0), 0u);
  EXPECT_EQ(lines[1],
            "2023-07-04 16:42:20Z  12m05s    9b825e22-744d-4130-94c5-dea49198ae3d  alice  root   "
            "interactive  yes       command=3 disk=0 network=1  ended");
}

TEST(RecordingListing, DamageAndProgressAreSaid) {
  Summary s = summary();
  s.in_progress = true;
  Json a;
  append_listing_fields(a, s);
  EXPECT_EQ(a["status"], "in progress");
  s.damage = Damage{Damage::Kind::truncated, 4096, "cut"};
  Json b;
  append_listing_fields(b, s);
  EXPECT_EQ(b["status"], "damaged");
  auto lines = lines_of(listing_table({a, b}));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[1].find("  in progress"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("damaged at offset 4096 (truncated)"), std::string::npos) << lines[2];
}

TEST(RecordingListing, HostileRowsCannotShiftColumnsOrSendControlBytes) {
  Json good;
  append_listing_fields(good, summary());
  Json bad = good;
  bad["user"] = "x login=root\x1b[2J";
  bad["start"] = "\x1b]0;pwned\x07";
  bad["status"] = "ended\x1b[31m";
  bad["events"] = "not an object";
  bad["duration_ms"] = "forever";
  bad["interactive"] = 1;
  Json error_row = {{"path", "/x"}, {"error", "unreadable"}};
  auto text = listing_table({good, bad, error_row, Json("not an object")});
  for (char c : text) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 && c != '\n') << text;
  auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 3u) << text;  // the error row and the non-object are left out
  EXPECT_NE(lines[2].find("'x login=root"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("command=0 disk=0 network=0"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("  0s  "), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("  command  "), std::string::npos) << lines[2];
}

}  // namespace
}  // namespace vigil::recording
