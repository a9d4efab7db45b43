// The `vigil` subcommands. Each file adds its own subcommand to the CLI and
// returns how to run it; main() runs the one that was given.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "config/config.hpp"
#include "engine/engine.hpp"

namespace vigil::cmd {

// Exit status when vigil itself fails (bad input, host cannot record),
// distinct from any status of the recorded command.
inline constexpr int kVigilFailed = 125;

struct Subcommand {
  CLI::App* app = nullptr;
  std::function<int()> run;  // the process exit status
};

Subcommand add_record(CLI::App& app);   // record.cpp
Subcommand add_check(CLI::App& app);    // check.cpp
Subcommand add_start(CLI::App& app);    // start.cpp
Subcommand add_ssh_frontend(CLI::App& app);  // start.cpp: a connection's unprivileged front end
Subcommand add_cluster_services(CLI::App& app);  // start_cluster.cpp: the auth service and proxy, unprivileged
Subcommand add_events(CLI::App& app);   // events.cpp
Subcommand add_play(CLI::App& app);        // play.cpp
Subcommand add_recordings(CLI::App& app);  // recordings.cpp

// The config file when given, else the embedded defaults.
Result<config::Config> load_config(const std::string& file);

// The engine's options as the config's enhanced_recording section says.
EngineOptions engine_options(const config::EnhancedRecording& recording);

// Adds -c/--config and --data-dir to a subcommand that reads or writes
// data_dir; resolve() gives the config with --data-dir applied.
struct DataDirOptions {
  std::string config_file;
  std::string data_dir;
  void add_to(CLI::App* app);
  Result<config::Config> resolve() const;
};

}  // namespace vigil::cmd
