// audit.retention as `vigil start` applies it: planted day files of an old
// day go at start, each with an audit.retention event in the node's log;
// today's file and a recent day stay.
#include <filesystem>

#include "../support/wait.hpp"
#include "node_fixture.hpp"

namespace e2e {
namespace {

using vigil::testing::eventually;

std::string day_name(int64_t days_ago) {
  time_t t = time(nullptr) - days_ago * 86400;
  struct tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%d.00:00:00.log", &tm);
  return buf;
}

class NodeRetention : public SshNodeTest {};

TEST_F(NodeRetention, StartRemovesTheExpiredDayFilesAndSaysSo) {
  std::string yaml = read_file(dir_ + "/node.yaml");
  write_file(dir_ + "/node.yaml", yaml + "audit:\n  retention: 30d\n");
  const std::string planted = dir_ + "/data/log/an-old-node";
  std::filesystem::create_directories(planted);
  for (int64_t ago : {400, 31, 30, 2}) write_file(planted + "/" + day_name(ago), "{}\n");
  start_node();
  ASSERT_TRUE(eventually([&] { return audit_log().count("audit.retention") == 2; }))
      << audit_log().text;
  EXPECT_FALSE(file_exists(planted + "/" + day_name(400)));
  EXPECT_FALSE(file_exists(planted + "/" + day_name(31)));
  // Day -30 ends 29 days and some hours ago: not yet 30 days old.
  EXPECT_TRUE(file_exists(planted + "/" + day_name(30)));
  EXPECT_TRUE(file_exists(planted + "/" + day_name(2)));
  for (const auto& e : audit_log().of("audit.retention")) {
    EXPECT_EQ(e["removed"], "audit_log_day");
    EXPECT_EQ(e["retention_hours"], 720);
  }
  stop_node();
}

}  // namespace
}  // namespace e2e
