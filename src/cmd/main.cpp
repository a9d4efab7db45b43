// vigil: SSH access with enhanced session recording.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "commands.hpp"
#include "common/log.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Vigil: every command, file and connection of a session, recorded in the kernel"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "log what the engine does (libbpf and verifier included)");

  vigil::cmd::RecordArgs rec;
  auto* record = app.add_subcommand("record", "run a command in a new recorded session");
  record->add_option("-c,--config", rec.config_file, "node config file (default: embedded defaults)")
      ->check(CLI::ExistingFile);
  record->add_option("--events", rec.events,
                     "kinds to record, comma-separated: command, disk, network "
                     "(default: command,network)");
  record->add_option("-o,--output", rec.output, "write events to FILE (appended); default stderr");
  record->add_option("--format", rec.format, "json (one event a line) or text (for people)")
      ->check(CLI::IsMember({"json", "text"}));
  record->add_option("--user", rec.user, "run the command as this local login");
  record->add_option("command", rec.command, "the command and its arguments, after --")
      ->required();
  record->positionals_at_end();

  vigil::cmd::CheckArgs chk;
  auto* check = app.add_subcommand("check", "say what this host supports for enhanced recording");
  check->add_option("-c,--config", chk.config_file, "node config file")->check(CLI::ExistingFile);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : vigil::cmd::kVigilFailed;
  }
  vigil::log::set_level(verbose ? vigil::log::Level::debug : vigil::log::Level::warn);
  if (*record) return vigil::cmd::record(rec);
  if (*check) return vigil::cmd::check(chk);
  return vigil::cmd::kVigilFailed;
}
