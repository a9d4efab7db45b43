#include "commands.hpp"

namespace vigil::cmd {

Result<config::Config> load_config(const std::string& file) {
  if (file.empty()) return config::defaults();
  return config::load_file(file);
}

}  // namespace vigil::cmd
