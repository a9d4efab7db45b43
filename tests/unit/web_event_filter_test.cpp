// The audit log's text and node filters (web/event_filter.hpp).
#include <gtest/gtest.h>

#include "web/event_filter.hpp"

namespace vigil::web {
namespace {

using nlohmann::json;

const json kCurl = {{"event", "session.command"}, {"program", "curl"}, {"path", "/usr/bin/curl"},
                    {"argv", {"http://127.0.0.1:31001/"}}, {"server_hostname", "node1"},
                    {"server_id", "6a4f1995-e913-47a4-a67e-34a19af6ed48"}};
const json kOpen = {{"event", "session.disk"}, {"program", "cat"}, {"path", "secret.txt"},
                    {"kernel_path", "/etc/shadow"}, {"server_hostname", "node2"}};

TEST(WebEventFilter, TextMatchesTheCommandLineAndThePaths) {
  EXPECT_TRUE((EventFilter{"curl http://127.0.0.1", ""}.matches(kCurl)));
  EXPECT_TRUE((EventFilter{"/usr/bin/curl", ""}.matches(kCurl)));
  EXPECT_FALSE((EventFilter{"wget", ""}.matches(kCurl)));
  EXPECT_TRUE((EventFilter{"/etc/shadow", ""}.matches(kOpen)));  // the kernel's name
  EXPECT_TRUE((EventFilter{"secret", ""}.matches(kOpen)));
  EXPECT_FALSE((EventFilter{"CURL", ""}.matches(kCurl)));  // case-sensitive
  // Other fields are not searched: a user name is not a command line.
  EXPECT_FALSE((EventFilter{"node1", ""}.matches(kCurl)));
}

TEST(WebEventFilter, NodeIsTheHostNameOrTheServerIdExactly) {
  EXPECT_TRUE((EventFilter{"", "node1"}.matches(kCurl)));
  EXPECT_TRUE((EventFilter{"", "6a4f1995-e913-47a4-a67e-34a19af6ed48"}.matches(kCurl)));
  EXPECT_FALSE((EventFilter{"", "node"}.matches(kCurl)));
  EXPECT_FALSE((EventFilter{"", "node1"}.matches(kOpen)));
  EXPECT_FALSE((EventFilter{"curl", "node2"}.matches(kCurl)));
  EXPECT_TRUE(EventFilter{}.matches(kOpen));
  EXPECT_FALSE(EventFilter{}.matches(json::array()));
}

}  // namespace
}  // namespace vigil::web
