// Where a node that names only proxy_server sends its reverse tunnel: the
// host it reached the proxy's web port at, the port the proxy's find says
// (services::tunnel_address).
#include <gtest/gtest.h>

#include "services/node_join.hpp"

namespace vigil::services {
namespace {

TEST(TunnelAddress, KeepsTheProxyHostTheNodeReachedAndTakesTheTunnelPort) {
  auto a = tunnel_address("proxy.example.com:3080", "0.0.0.0:3024");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(*a, "proxy.example.com:3024");
  // The proxy's own listen host (behind NAT, a private address) is not used.
  auto b = tunnel_address("203.0.113.7:443", "10.0.0.5:3024");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(*b, "203.0.113.7:3024");
}

TEST(TunnelAddress, Ipv6HostsKeepTheirBrackets) {
  auto a = tunnel_address("[2001:db8::1]:3080", "[::]:3024");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(*a, "[2001:db8::1]:3024");
}

TEST(TunnelAddress, AProxyWithNoTunnelPortIsAClearError) {
  for (const char* none : {"", "0.0.0.0:0", "garbage"}) {
    auto a = tunnel_address("proxy:3080", none);
    ASSERT_FALSE(a) << none;
    EXPECT_EQ(a.error().kind(), Errc::failed_precondition) << none;
    EXPECT_NE(a.error().message.find("tunnel_listen_addr"), std::string::npos) << a.error().message;
  }
  auto bad = tunnel_address("no-port", "0.0.0.0:3024");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind(), Errc::invalid_argument);
  EXPECT_NE(bad.error().message.find("teleport.proxy_server"), std::string::npos);
}

}  // namespace
}  // namespace vigil::services
