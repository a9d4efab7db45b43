#include "commands.hpp"

namespace vigil::cmd {

Result<config::Config> load_config(const std::string& file) {
  if (file.empty()) return config::defaults();
  return config::load_file(file);
}

EngineOptions engine_options(const config::EnhancedRecording& recording) {
  EngineOptions options;
  options.cgroup_path = recording.cgroup_path;
  options.root_path = recording.root_path;
  options.ring_pages = {recording.command_buffer_size, recording.disk_buffer_size,
                        recording.network_buffer_size};
  options.failed_execs = recording.failed_execs;
  options.leftovers =
      recording.leftover_processes == "kill" ? LeftoverPolicy::kill : LeftoverPolicy::record;
  options.seal = recording.seal;
  return options;
}

void DataDirOptions::add_to(CLI::App* app) {
  app->add_option("-c,--config", config_file, "node config file (default: embedded defaults)")
      ->check(CLI::ExistingFile);
  app->add_option("--data-dir", data_dir, "data directory (overrides the config's data_dir)");
}

Result<config::Config> DataDirOptions::resolve() const {
  auto cfg = load_config(config_file);
  if (!cfg) return cfg;
  if (!data_dir.empty()) {
    if (data_dir.front() != '/')
      return Error{"--data-dir " + data_dir + ": give an absolute path"};
    cfg->data_dir = data_dir;
  }
  return cfg;
}

}  // namespace vigil::cmd
