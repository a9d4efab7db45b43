// The per-test set-up of the end-to-end tier: a temporary directory with a
// node file of its own (its own data_dir, so no test touches
// /var/lib/vigil) and a session cgroup root unique to this test process.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "harness.hpp"

namespace e2e {

// Tests that start a recording need what vigil needs: root.
#define REQUIRE_ROOT()                                                                      \
  do {                                                                                      \
    if (geteuid() != 0)                                                                     \
      GTEST_SKIP() << "SKIPPED: needs root (vigil record loads BPF programs and makes "     \
                      "session cgroups); run the e2e tests as root";                        \
  } while (0)

// The node's names as the config file gives them; every event repeats them.
inline constexpr const char* kNodeName = "e2e-node";
inline constexpr const char* kClusterName = "e2e-cluster";

// Where this process's sessions live under the cgroup v2 mount.
std::string root_path();

// A node file in Vigil's own spelling (`vigil:` allows cluster_name).
std::string node_yaml(const std::string& data_dir);

class VigilTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& config() const { return config_; }
  std::string data_dir() const { return path("data"); }
  // The server_id this node's data_dir holds (after a first recording).
  std::string host_uuid() const;

  // argv for `vigil record -c <config> OPTIONS -- COMMAND...`.
  std::vector<std::string> record_argv(const std::vector<std::string>& options,
                                       const std::vector<std::string>& command) const;
  Outcome record(const std::vector<std::string>& options,
                 const std::vector<std::string>& command) const;

  // Lets `nobody` write into the test directory (for unprivileged runs).
  void give_dir_to_nobody() const;

  std::string dir_;
  std::string config_;
};

}  // namespace e2e
