// What the cluster suites share: one `vigil start` process with its own
// directory (config, data_dir, vsh homes, log), driven through vigilctl and
// vsh as people drive them, and judged by the auth service's audit log.
// Each suite owns a fixed range of loopback ports (docs/testing.md).
#pragma once

#include <sys/types.h>

#include <csignal>
#include <cstdint>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../e2e/harness.hpp"

namespace cluster_test {

inline const std::string kVigilctl = VIGILCTL_BIN;
inline const std::string kVsh = VSH_BIN;
inline constexpr const char* kPassword = "correct horse battery staple";
// The guide's obfuscated command: runs `curl http://www.example.com`.
inline constexpr const char* kObfuscated =
    "echo Y3VybCBodHRwOi8vd3d3LmV4YW1wbGUuY29tCg== | base64 --decode | sh; true";

// Polls done() every 200 ms for up to `seconds`.
bool wait_until(const std::function<bool()>& done, int seconds);

// The token `vigilctl users add` printed (the last word of its vsh line).
std::string signup_token(const std::string& vigilctl_out);

// The "Secret:" that `vsh signup` printed for a second factor, or "".
std::string totp_secret(const std::string& vsh_signup_out);

// The TOTP code of a base32 secret at `unix_time` (RFC 6238: SHA-1, 6 digits, 30 s).
std::string totp_code(const std::string& base32_secret, int64_t unix_time);

// vigilctl with a config file.
e2e::Outcome vigilctl(const std::string& config, std::vector<std::string> args,
                      std::optional<std::string> in = std::nullopt);
// vsh as a user whose ~/.vsh is <dir>/home-<who> (HOME=dir).
e2e::Outcome vsh_as(const std::string& dir, const std::string& who, std::vector<std::string> args,
                    std::optional<std::string> in = std::nullopt);
// The events named `name` (all with "") of an audit log file, parsed, in order.
std::vector<nlohmann::json> events_in(const std::string& log_path, const std::string& name = "");
// A user made with vigilctl (config), signed up and logged in with vsh
// through the proxy (proxy_flag: "host:web,ssh"), with kPassword.
::testing::AssertionResult make_user(const std::string& config, const std::string& dir,
                                     const std::string& proxy_flag, const std::string& name,
                                     const std::string& roles, const std::string& logins);

// One `vigil start` and everything it writes under a private directory.
class VigilProcess {
 public:
  // Makes /tmp/<prefix>-XXXXXX (0755: the service user passes through to
  // data_dir). The config is written by write_config.
  explicit VigilProcess(const std::string& prefix);
  ~VigilProcess();  // stops the process; removes the directory unless VIGIL_KEEP is set
  VigilProcess(const VigilProcess&) = delete;
  VigilProcess& operator=(const VigilProcess&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& config() const { return config_; }
  std::string data_dir() const { return dir_ + "/data"; }

  void write_config(const std::string& yaml) const;
  // Forks `vigil start -c config` with stdout and stderr in <dir>/vigil.log
  // (appended, so a restart keeps the first run's words); with own_group, in
  // a process group of its own, which stop(sig, true) signals whole.
  void start(bool own_group = false);
  // Sends `sig` (to the process group with group) and reaps; false when it
  // was not running.
  bool stop(int sig = SIGTERM, bool group = false);
  // Forgets a process reaped elsewhere.
  void forget() { pid_ = -1; }
  bool running() const;
  pid_t pid() const { return pid_; }
  std::string log_text() const;

  e2e::Outcome ctl(std::vector<std::string> args, std::optional<std::string> in = std::nullopt) const;
  // vsh as a user whose ~/.vsh is <dir>/home-<who>.
  e2e::Outcome vsh(const std::string& who, std::vector<std::string> args,
                   std::optional<std::string> in = std::nullopt) const;

  // The auth service's audit log (data_dir/log/events.log).
  std::string auth_log_text() const;
  std::vector<nlohmann::json> auth_events(const std::string& name) const;

 private:
  std::string dir_, config_;
  pid_t pid_ = -1;
};

}  // namespace cluster_test
