// The `vigil` subcommands. Each returns the process exit status.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"
#include "config/config.hpp"

namespace vigil::cmd {

// Exit status when vigil itself fails (bad input, host cannot record),
// distinct from any status of the recorded command.
inline constexpr int kVigilFailed = 125;

struct RecordArgs {
  std::string config_file;
  std::string events;        // "command,disk,network"; empty: config's defaults
  std::string output;        // empty: stderr
  std::string format = "json";
  std::string user;          // login to run as; empty: the caller
  std::vector<std::string> command;
};
int record(const RecordArgs& args);

struct CheckArgs {
  std::string config_file;
};
int check(const CheckArgs& args);

// The config file when given, else the embedded defaults.
Result<config::Config> load_config(const std::string& file);

}  // namespace vigil::cmd
