// The ssh_config vsh writes, read back by OpenSSH itself (`ssh -G` prints
// the configuration ssh would use for a host, without connecting).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "client/ssh_config.hpp"

namespace vigil::client {
namespace {

Profile profile() {
  Profile p;
  p.proxy = "127.0.0.1:3080";
  p.proxy_ssh_port = 3023;
  p.user = "alice@example.com";
  p.cluster = "purple";
  return p;
}

ProfilePaths paths() {
  ProfilePaths p;
  p.ssh_key = "/home/alice/.vsh/keys/127.0.0.1_3080/alice@example.com";
  p.ssh_certificate = p.ssh_key + "-cert.pub";
  p.known_hosts = "/home/alice/.vsh/keys/127.0.0.1_3080/known_hosts";
  return p;
}

// `ssh -G` of host with config text: option -> value (lower-case names).
std::multimap<std::string, std::string> resolved(const std::string& config,
                                                 const std::string& host) {
  std::string file = std::filesystem::temp_directory_path() / "vigil-ssh-config-test";
  {
    std::ofstream out(file);
    out << config;
  }
  std::string cmd = "ssh -G -F " + file + " " + host + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string text;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) text.append(buf.data(), n);
  EXPECT_EQ(pclose(p), 0) << text;
  std::filesystem::remove(file);
  std::multimap<std::string, std::string> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    auto sp = line.find(' ');
    if (sp != std::string::npos) out.emplace(line.substr(0, sp), line.substr(sp + 1));
  }
  return out;
}

std::string one(const std::multimap<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? "" : it->second;
}

TEST(ClientSshConfig, VshConfigSendsEveryNodeThroughTheProxyWithTheCertificate) {
  std::string text = ssh_config_for_vsh(profile(), paths(), ssh_target(profile()));
  auto node = resolved(text, "root@web1");
  EXPECT_EQ(one(node, "hostname"), "web1");
  EXPECT_EQ(one(node, "port"), "3022");
  EXPECT_EQ(one(node, "user"), "root");
  EXPECT_EQ(one(node, "proxyjump"), "vigil-proxy.purple");
  EXPECT_EQ(one(node, "certificatefile"), paths().ssh_certificate);
  EXPECT_EQ(one(node, "stricthostkeychecking"), "true");
  EXPECT_EQ(one(node, "userknownhostsfile"), paths().known_hosts);
  EXPECT_EQ(one(node, "identitiesonly"), "yes");
  auto proxy = resolved(text, "vigil-proxy.purple");
  EXPECT_EQ(one(proxy, "hostname"), "127.0.0.1");
  EXPECT_EQ(one(proxy, "port"), "3023");
  EXPECT_EQ(one(proxy, "proxyjump"), "");  // the proxy itself is reached directly
  EXPECT_EQ(one(proxy, "certificatefile"), paths().ssh_certificate);
}

TEST(ClientSshConfig, UserConfigReachesNodesByTheClusterSuffixOnly) {
  std::string text = ssh_config_for_user(profile(), paths(), ssh_target(profile()));
  auto node = resolved(text, "root@web1.purple");
  EXPECT_EQ(one(node, "port"), "3022");
  EXPECT_EQ(one(node, "proxyjump"), "vigil-proxy.purple");
  EXPECT_EQ(one(node, "certificatefile"), paths().ssh_certificate);
  auto proxy = resolved(text, "vigil-proxy.purple");
  EXPECT_EQ(one(proxy, "hostname"), "127.0.0.1");
  EXPECT_EQ(one(proxy, "port"), "3023");
  EXPECT_EQ(one(proxy, "proxyjump"), "");
  // Other hosts of the user's are left alone.
  auto other = resolved(text, "github.com");
  EXPECT_EQ(one(other, "proxyjump"), "");
  EXPECT_EQ(one(other, "certificatefile"), "");
}

TEST(ClientSshConfig, ProxyFlagTakesWebAndSshPorts) {
  auto a = parse_proxy_flag("proxy.example.com:3080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, "proxy.example.com:3080");
  EXPECT_EQ(a->second.proxy_host, "proxy.example.com");
  EXPECT_EQ(a->second.proxy_ssh_port, 3023);
  auto b = parse_proxy_flag("proxy.example.com:443,22");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->first, "proxy.example.com:443");
  EXPECT_EQ(b->second.proxy_ssh_port, 22);
  auto c = parse_proxy_flag("[::1]:3080");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, "[::1]:3080");
  EXPECT_EQ(c->second.proxy_host, "::1");
  auto d = parse_proxy_flag("proxy");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->first, "proxy:3080");
  for (const char* bad : {"", ":3080", "host:0", "host:99999", "host:x", "host:3080,",
                          "a b:3080", "host\n:3080", "[::1:3080", "ho\"st:3080"}) {
    auto r = parse_proxy_flag(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().kind(), Errc::invalid_argument) << bad;
    }
  }
}

}  // namespace
}  // namespace vigil::client
