// The signals an SSH `signal` request and `exit-signal` name (RFC 4254
// 6.9), without their "SIG": what the node's channel (src/ssh) and the
// privsep monitor both translate.
#pragma once

#include <csignal>
#include <string_view>

namespace vigil {

struct SshSignal {
  std::string_view name;
  int number;
};

inline constexpr SshSignal kSshSignals[] = {
    {"ABRT", SIGABRT}, {"ALRM", SIGALRM}, {"FPE", SIGFPE},   {"HUP", SIGHUP},   {"ILL", SIGILL},
    {"INT", SIGINT},   {"KILL", SIGKILL}, {"PIPE", SIGPIPE}, {"QUIT", SIGQUIT}, {"SEGV", SIGSEGV},
    {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};

// The number of an RFC 4254 signal name; 0 for any other name.
inline int ssh_signal_number(std::string_view name) {
  for (const auto& s : kSshSignals)
    if (s.name == name) return s.number;
  return 0;
}

// The RFC 4254 name of a signal; "KILL" for those it has no name for (the
// client still sees a death by signal).
inline std::string_view ssh_signal_name(int number) {
  for (const auto& s : kSshSignals)
    if (s.number == number) return s.name;
  return "KILL";
}

}  // namespace vigil
