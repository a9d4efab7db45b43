#include "fixture.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace e2e {

std::string root_path() { return "/vigil-e2e-" + std::to_string(getpid()); }

std::string node_yaml(const std::string& data_dir) {
  return "version: v3\n"
         "vigil:\n"
         "  nodename: " + std::string(kNodeName) + "\n"
         "  cluster_name: " + std::string(kClusterName) + "\n"
         "  data_dir: " + data_dir + "\n"
         "ssh_service:\n"
         "  enabled: true\n"
         "  enhanced_recording:\n"
         "    enabled: true\n"
         "    root_path: " + root_path() + "\n";
}

void VigilTest::SetUp() {
  char tmpl[] = "/tmp/vigil-e2e-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr) << "mkdtemp: " << strerror(errno);
  dir_ = tmpl;
  // Readable by nobody, for the unprivileged runs.
  chmod(dir_.c_str(), 0755);
  config_ = path("node.yaml");
  write_file(config_, node_yaml(data_dir()));
  chmod(config_.c_str(), 0644);
}

void VigilTest::TearDown() {
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  // What the engine leaves behind once every session is closed: its root
  // cgroup and its lock directory, both empty.
  rmdir(("/cgroup2" + root_path()).c_str());
  rmdir(("/run/vigil/sessions/cgroup2" + root_path()).c_str());
}

std::string VigilTest::host_uuid() const {
  std::string id = read_file(data_dir() + "/host_uuid");
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

std::vector<std::string> VigilTest::record_argv(const std::vector<std::string>& options,
                                                const std::vector<std::string>& command) const {
  std::vector<std::string> argv = {kVigil, "record", "-c", config_};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

Outcome VigilTest::record(const std::vector<std::string>& options,
                          const std::vector<std::string>& command) const {
  return run({.argv = record_argv(options, command)});
}

void VigilTest::give_dir_to_nobody() const {
  if (geteuid() == 0) {
    ASSERT_EQ(chown(dir_.c_str(), nobody_uid(), nobody_gid()), 0);
  }
}

}  // namespace e2e
