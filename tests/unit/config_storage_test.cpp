// teleport.storage (issue 12): the back ends' keys, and that a password in
// a connection string is refused without being repeated.
#include <gtest/gtest.h>

#include "config/config.hpp"

namespace vigil::config {
namespace {

std::string error_of(std::string_view yaml) {
  Result<Config> config = parse(yaml, "node.yaml");
  return config ? "(parsed without error)" : config.error().message;
}

TEST(ConfigStorage, DefaultIsSqliteAndDayFiles) {
  Result<Config> c = parse("", "node.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->storage.type, "sqlite");
  EXPECT_TRUE(c->storage.conn_string.empty());
  EXPECT_TRUE(c->storage.audit_events_uri.empty());
}

TEST(ConfigStorage, TeleportsKeysAreRead) {
  Result<Config> c = parse(
      "teleport:\n"
      "  storage:\n"
      "    type: postgresql\n"
      "    conn_string: postgresql://vigil@db:5432/vigil_backend?sslmode=verify-full\n"
      "    audit_events_uri: ['postgresql://vigil@db:5432/vigil_audit', "
      "'file:///var/lib/vigil/log']\n",
      "node.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->storage.type, "postgresql");
  EXPECT_EQ(c->storage.conn_string, "postgresql://vigil@db:5432/vigil_backend?sslmode=verify-full");
  EXPECT_EQ(c->storage.audit_events_uri,
            (std::vector<std::string>{"postgresql://vigil@db:5432/vigil_audit",
                                      "file:///var/lib/vigil/log"}));
  // One URI without a list.
  c = parse("teleport:\n  storage:\n    audit_events_uri: postgresql://v@db/a\n", "node.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->storage.audit_events_uri, std::vector<std::string>{"postgresql://v@db/a"});
}

TEST(ConfigStorage, APasswordInAUriIsRefusedAndNotRepeated) {
  for (const char* yaml :
       {"teleport:\n  storage:\n    type: postgresql\n    conn_string: postgresql://v:Hunter2x@db/b\n",
        "teleport:\n  storage:\n    type: postgresql\n    conn_string: postgresql://v@db/b?sslmode=require&password=Hunter2x\n",
        "teleport:\n  storage:\n    audit_events_uri: ['postgresql://v:Hunter2x@db/a']\n",
        "teleport:\n  storage:\n    audit_events_uri: ['postgres://v@db/a?PASSWORD=Hunter2x']\n"}) {
    const std::string e = error_of(yaml);
    EXPECT_NE(e.find("password"), std::string::npos) << e;
    EXPECT_EQ(e.rfind("node.yaml:", 0), 0u) << e;
    EXPECT_EQ(e.find("Hunter2x"), std::string::npos) << e;
  }
}

TEST(ConfigStorage, MistakesSayWhatToWrite) {
  EXPECT_NE(error_of("teleport:\n  storage:\n    type: postgresql\n").find("needs conn_string"),
            std::string::npos);
  EXPECT_NE(error_of("teleport:\n  storage:\n    conn_string: postgresql://v@db/b\n")
                .find("set the type too"),
            std::string::npos);
  EXPECT_NE(error_of("teleport:\n  storage:\n    type: dynamodb\n").find("sqlite"), std::string::npos);
  EXPECT_NE(error_of("teleport:\n  storage:\n    conn_string: mysql://db/b\n").find("postgresql://"),
            std::string::npos);
  EXPECT_NE(error_of("teleport:\n  storage:\n    audit_events_uri: [s3://bucket/x]\n")
                .find("file:///data_dir/log"),
            std::string::npos);
  EXPECT_NE(error_of("teleport:\n  storage:\n    audit_events_uri: [file://relative/log]\n")
                .find("file:///var/lib/vigil/log"),
            std::string::npos);
}

}  // namespace
}  // namespace vigil::config
