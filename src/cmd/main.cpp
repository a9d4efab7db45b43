// vigil: SSH access with enhanced session recording.
#include <CLI/CLI.hpp>

#include "common/version.hpp"
#include "commands.hpp"
#include "tunnel.hpp"
#include "common/log.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Vigil: every command, file and connection of a session, recorded in the kernel"};
  app.set_version_flag("--version", std::string(vigil::kVersion));
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "log what the engine does (libbpf and verifier included)");

  std::vector<vigil::cmd::Subcommand> commands = {
      vigil::cmd::add_record(app),
      vigil::cmd::add_check(app),
      vigil::cmd::add_start(app),
      vigil::cmd::add_ssh_frontend(app),
      vigil::cmd::add_cluster_services(app),
      vigil::cmd::add_tunnel_agent(app),
      vigil::cmd::add_events(app),
      vigil::cmd::add_play(app),
      vigil::cmd::add_recordings(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : vigil::cmd::kVigilFailed;
  }
  vigil::log::set_level(verbose ? vigil::log::Level::debug : vigil::log::Level::warn);
  for (auto& c : commands)
    if (c.app->parsed()) return c.run();
  return vigil::cmd::kVigilFailed;
}
