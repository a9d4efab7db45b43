// The cluster's keys of a node file (issue 10 §1): auth_service,
// proxy_service and teleport.ca_pin, with the strictness of every other key
// (file:line, did you mean, what is valid).
#include <gtest/gtest.h>

#include "config/config.hpp"

namespace vigil::config {
namespace {

std::string error_of(std::string_view yaml) {
  Result<Config> config = parse(yaml, "node.yaml");
  return config ? "(parsed without error)" : config.error().message;
}

const std::string kPin = "sha256:" + std::string(64, 'a');

TEST(ConfigCluster, DefaultsAreTeleportsPorts) {
  Result<Config> c = parse("", "node.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->auth.listen_addr, "0.0.0.0:3025");
  EXPECT_EQ(c->auth.second_factor, "off");
  EXPECT_EQ(c->proxy.web_listen_addr, "0.0.0.0:3080");
  EXPECT_EQ(c->proxy.listen_addr, "0.0.0.0:3023");
  EXPECT_EQ(c->proxy.tunnel_listen_addr, "0.0.0.0:3024");
  EXPECT_TRUE(c->proxy.public_addr.empty());
  EXPECT_TRUE(c->ca_pin.empty());
  EXPECT_FALSE(c->auth_enabled);
  EXPECT_FALSE(c->proxy_enabled);
}

TEST(ConfigCluster, EveryKeyIsRead) {
  Result<Config> c = parse(
      "version: v3\n"
      "teleport:\n"
      "  nodename: auth-1\n"
      "  auth_token: 0123456789abcdef0123456789abcdef\n"
      "  auth_server: 10.0.0.1:3025\n"
      "  proxy_server: proxy.example.com:3080\n"
      "  ca_pin: " + kPin + "\n"
      "  data_dir: /var/lib/vigil\n"
      "auth_service:\n"
      "  enabled: true\n"
      "  listen_addr: 10.0.0.1:3025\n"
      "  cluster_name: purple\n"
      "  authentication:\n"
      "    second_factor: otp\n"
      "proxy_service:\n"
      "  enabled: yes\n"
      "  web_listen_addr: '[::]:443'\n"
      "  listen_addr: 0.0.0.0:3023\n"
      "  tunnel_listen_addr: 0.0.0.0:3024\n"
      "  public_addr: proxy.example.com:443\n",
      "node.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->nodename, "auth-1");
  EXPECT_EQ(c->auth_server, "10.0.0.1:3025");
  EXPECT_EQ(c->proxy_server, "proxy.example.com:3080");
  EXPECT_EQ(c->ca_pin, kPin);
  EXPECT_TRUE(c->auth_enabled);
  EXPECT_EQ(c->auth.listen_addr, "10.0.0.1:3025");
  EXPECT_EQ(c->cluster_name, "purple");
  EXPECT_EQ(c->auth.second_factor, "otp");
  EXPECT_TRUE(c->proxy_enabled);
  EXPECT_EQ(c->proxy.web_listen_addr, "[::]:443");
  EXPECT_EQ(c->proxy.public_addr, std::vector<std::string>{"proxy.example.com:443"});
}

TEST(ConfigCluster, PublicAddrTakesAList) {
  Result<Config> c = parse("proxy_service:\n  public_addr: [a.example.com:443, b.example.com:3080]\n",
                           "node.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->proxy.public_addr,
            (std::vector<std::string>{"a.example.com:443", "b.example.com:3080"}));
  EXPECT_EQ(error_of("proxy_service:\n  public_addr: [a.example.com]\n"),
            "node.yaml:2: proxy_service.public_addr[0]: expected host:port users reach the proxy "
            "at, like proxy.example.com:3080, got \"a.example.com\"");
}

TEST(ConfigCluster, SecondFactorIsOffOrOtp) {
  Result<Config> off = parse("auth_service:\n  authentication:\n    second_factor: off\n", "n");
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_EQ(off->auth.second_factor, "off");
  EXPECT_EQ(error_of("auth_service:\n  authentication:\n    second_factor: webauthn\n"),
            "node.yaml:3: auth_service.authentication.second_factor: expected off or otp (Vigil "
            "has no WebAuthn yet: on, webauthn and optional are not supported), got "
            "\"webauthn\"");
  EXPECT_EQ(error_of("auth_service:\n  authentication:\n    second_factr: otp\n"),
            "node.yaml:3: unknown field auth_service.authentication.second_factr; did you mean "
            "second_factor?");
}

TEST(ConfigCluster, AddressesAreHostPort) {
  EXPECT_EQ(error_of("auth_service:\n  listen_addr: 3025\n"),
            "node.yaml:2: auth_service.listen_addr: expected host:port with a port from 1 to "
            "65535, like 0.0.0.0:3080 or [::]:3080, got \"3025\"");
  for (const char* key : {"web_listen_addr", "listen_addr", "tunnel_listen_addr"}) {
    std::string yaml = std::string("proxy_service:\n  ") + key + ": 0.0.0.0:99999\n";
    EXPECT_NE(error_of(yaml).find(std::string("node.yaml:2: proxy_service.") + key +
                                  ": expected host:port"),
              std::string::npos)
        << error_of(yaml);
  }
}

TEST(ConfigCluster, CaPinIsSha256AndSixtyFourHexDigits) {
  for (std::string bad : {std::string("sha256:abc"), "md5:" + std::string(64, 'a'),
                          "sha256:" + std::string(63, 'a') + "g"}) {
    EXPECT_EQ(error_of("teleport:\n  ca_pin: " + bad + "\n"),
              "node.yaml:2: teleport.ca_pin: expected the auth service's CA pin, sha256: and 64 "
              "hex digits, as vigilctl status prints it, got \"" + bad + "\"");
  }
}

TEST(ConfigCluster, TheClusterNameIsSetOnce) {
  EXPECT_EQ(error_of("vigil:\n  cluster_name: a\nauth_service:\n  cluster_name: b\n"),
            "node.yaml:4: auth_service.cluster_name: the cluster name is already set at line 2; "
            "set it once");
  Result<Config> c = parse("teleport:\n  nodename: n1\nauth_service:\n  cluster_name: b\n", "x");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->cluster_name, "b");
}

TEST(ConfigCluster, UnknownKeysSuggestTheKnownOnes) {
  EXPECT_EQ(error_of("proxy_service:\n  public_adr: a:1\n"),
            "node.yaml:2: unknown field proxy_service.public_adr; did you mean public_addr?");
  EXPECT_EQ(error_of("auth_service:\n  tokens: [a]\n"),
            "node.yaml:2: unknown field auth_service.tokens; expected one of: enabled, "
            "listen_addr, cluster_name, authentication");
  EXPECT_EQ(error_of("teleport:\n  ca_pn: x\n"),
            "node.yaml:2: unknown field teleport.ca_pn; did you mean ca_pin?");
}

}  // namespace
}  // namespace vigil::config
