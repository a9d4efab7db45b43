// The value checks behind the config file, one rule at a time.
#include <gtest/gtest.h>

#include "config/values.hpp"

namespace vigil::config {
namespace {

TEST(ConfigValues, ParseBool) {
  EXPECT_EQ(parse_bool("tRuE"), true);
  EXPECT_EQ(parse_bool("oFF"), false);
  for (std::string_view bad : {"", "y", "n", "1", "0", "truee", " true", "enabled"})
    EXPECT_EQ(parse_bool(bad), std::nullopt) << bad;
}

TEST(ConfigValues, ParseWholeNumber) {
  EXPECT_EQ(parse_whole_number("1", 1, 10), 1u);
  EXPECT_EQ(parse_whole_number("010", 1, 10), 10u) << "decimal, not octal";
  EXPECT_EQ(parse_whole_number("4294967295", 0, 4294967295u), 4294967295u);
  for (std::string_view bad : {"", "0", "11", "+5", "5 ", "0x5", "1e1", "4294967296"})
    EXPECT_EQ(parse_whole_number(bad, 1, 10), std::nullopt) << bad;
}

TEST(ConfigValues, CleanAbsolutePath) {
  for (std::string_view good : {"/", "/a", "/a/b", "/a.b/..c/...", "/cgroup2"})
    EXPECT_TRUE(is_clean_absolute_path(good)) << good;
  for (std::string_view bad :
       {"", "a", "a/b", "//", "/a/", "/a//b", "/.", "/a/./b", "/..", "/a/.."})
    EXPECT_FALSE(is_clean_absolute_path(bad)) << bad;
}

TEST(ConfigValues, HostPort) {
  for (std::string_view good :
       {"0.0.0.0:3022", "[::]:3022", "[fe80::1]:22", "localhost:1", "a-b.example:65535"})
    EXPECT_TRUE(is_host_port(good)) << good;
  for (std::string_view bad :
       {"", "3022", ":3022", "host:", "host:0", "host:65536", "host:22a", "::1:22", "[::1]",
        "[nonsense]:22", "[1.2.3.4]:22", "300.1.1.1:22", "bad_host:22", "a b:22"})
    EXPECT_FALSE(is_host_port(bad)) << bad;
}

TEST(ConfigValues, EditDistance) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("enabled", "enabled"), 0u);
  EXPECT_EQ(edit_distance("enhanced_recordng", "enhanced_recording"), 1u);
  EXPECT_EQ(edit_distance("enalbed", "enabled"), 1u) << "a swap counts one";
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(ConfigValues, Closest) {
  std::vector<std::string_view> keys = {"enabled", "listen_addr", "enhanced_recording"};
  EXPECT_EQ(closest("enabld", keys), "enabled");
  EXPECT_EQ(closest("listen_adr", keys), "listen_addr");
  EXPECT_EQ(closest("listen", keys), std::nullopt);
  EXPECT_EQ(closest("disk", {"dusk", "desk"}), "dusk") << "the first of a tie";
}

}  // namespace
}  // namespace vigil::config
