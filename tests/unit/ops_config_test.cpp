// The settings of issue 13 (run it like a service): diag_addr.
#include <gtest/gtest.h>

#include "config/config.hpp"

using namespace vigil;

TEST(OpsConfig, DiagAddrIsOffUnlessSetAndCheckedAsHostPort) {
  auto none = config::parse("teleport:\n  nodename: n\n", "node.yaml");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->diag_addr, "");
  auto set = config::parse("teleport:\n  diag_addr: 127.0.0.1:3000\n", "node.yaml");
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->diag_addr, "127.0.0.1:3000");
  auto bad = config::parse("teleport:\n  diag_addr: 127.0.0.1\n", "node.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("node.yaml:2"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("diag_addr"), std::string::npos) << bad.error().message;
}
