#include "cluster_harness.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liboath/oath.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace cluster_test {

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

bool wait_until(const std::function<bool()>& done, int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return done();
}

std::string signup_token(const std::string& out) {
  std::istringstream lines(out);
  std::string line, token;
  while (std::getline(lines, line))
    if (line.find("vsh signup") != std::string::npos) token = line.substr(line.rfind(' ') + 1);
  return token;
}

std::string totp_secret(const std::string& out) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    auto at = line.find("Secret: ");
    if (at != std::string::npos) return line.substr(at + 8);
  }
  return "";
}

std::string totp_code(const std::string& base32_secret, int64_t unix_time) {
  static const bool ready = oath_init() == OATH_OK;
  if (!ready) throw std::runtime_error("liboath does not initialise");
  char* secret = nullptr;
  size_t secret_len = 0;
  if (oath_base32_decode(base32_secret.data(), base32_secret.size(), &secret, &secret_len) !=
      OATH_OK)
    throw std::runtime_error("not base32: " + base32_secret);
  char code[7] = {};
  int rc = oath_totp_generate(secret, secret_len, static_cast<time_t>(unix_time), 30, 0, 6, code);
  free(secret);
  if (rc != OATH_OK) throw std::runtime_error("oath_totp_generate failed");
  return code;
}

e2e::Outcome vigilctl(const std::string& config, std::vector<std::string> args,
                      std::optional<std::string> in) {
  e2e::Spawn s;
  s.argv = {kVigilctl, "-c", config};
  s.argv.insert(s.argv.end(), args.begin(), args.end());
  s.stdin_data = std::move(in);
  return e2e::run(s, 60000);
}

e2e::Outcome vsh_as(const std::string& dir, const std::string& who, std::vector<std::string> args,
                    std::optional<std::string> in) {
  e2e::Spawn s;
  s.argv = {kVsh};
  s.argv.insert(s.argv.end(), args.begin(), args.end());
  s.env.push_back("VSH_HOME=" + dir + "/home-" + who);
  s.env.push_back("HOME=" + dir);
  s.stdin_data = std::move(in);
  return e2e::run(s, 60000);
}

std::vector<nlohmann::json> events_in(const std::string& log_path, const std::string& name) {
  std::vector<nlohmann::json> out;
  std::istringstream lines(read_text(log_path));
  std::string line;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && (name.empty() || j.value("event", "") == name)) out.push_back(std::move(j));
  }
  return out;
}

::testing::AssertionResult make_user(const std::string& config, const std::string& dir,
                                     const std::string& proxy_flag, const std::string& name,
                                     const std::string& roles, const std::string& logins) {
  auto add = vigilctl(config, {"users", "add", name, "--roles=" + roles, "--logins=" + logins});
  if (add.status != 0) return ::testing::AssertionFailure() << "vigilctl users add: " << add.err;
  std::string token = signup_token(add.out);
  if (token.size() != 32u) return ::testing::AssertionFailure() << "no sign-up token in: " << add.out;
  auto signup = vsh_as(dir, name, {"signup", "--proxy=" + proxy_flag, "--insecure", "--password-stdin", token},
                       std::string(kPassword) + "\n");
  if (signup.status != 0) return ::testing::AssertionFailure() << "vsh signup: " << signup.err;
  auto login = vsh_as(dir, name, {"login", "--proxy=" + proxy_flag, "--user=" + name, "--insecure",
                                  "--password-stdin"},
                      std::string(kPassword) + "\n");
  if (login.status != 0) return ::testing::AssertionFailure() << "vsh login: " << login.err;
  return ::testing::AssertionSuccess();
}

VigilProcess::VigilProcess(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl);
  dir_ = tmpl;
  chmod(dir_.c_str(), 0755);
  config_ = dir_ + "/vigil.yaml";
}

VigilProcess::~VigilProcess() {
  stop();
  if (!getenv("VIGIL_KEEP")) std::filesystem::remove_all(dir_);
}

void VigilProcess::write_config(const std::string& yaml) const { std::ofstream(config_) << yaml; }

void VigilProcess::start(bool own_group) {
  pid_ = fork();
  if (pid_ == 0) {
    if (own_group) setpgid(0, 0);
    int log = open((dir_ + "/vigil.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(log, 1);
    dup2(log, 2);
    execl(e2e::kVigil.c_str(), e2e::kVigil.c_str(), "start", "-c", config_.c_str(), nullptr);
    _exit(127);
  }
}

bool VigilProcess::stop(int sig, bool group) {
  if (pid_ <= 0) return false;
  kill(group ? -pid_ : pid_, sig);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return true;
}

bool VigilProcess::running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

std::string VigilProcess::log_text() const { return read_text(dir_ + "/vigil.log"); }

e2e::Outcome VigilProcess::ctl(std::vector<std::string> args, std::optional<std::string> in) const {
  return vigilctl(config_, std::move(args), std::move(in));
}

e2e::Outcome VigilProcess::vsh(const std::string& who, std::vector<std::string> args,
                               std::optional<std::string> in) const {
  return vsh_as(dir_, who, std::move(args), std::move(in));
}

std::string VigilProcess::auth_log_text() const { return read_text(data_dir() + "/log/events.log"); }

std::vector<nlohmann::json> VigilProcess::auth_events(const std::string& name) const {
  return events_in(data_dir() + "/log/events.log", name);
}

}  // namespace cluster_test
