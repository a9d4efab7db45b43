// End-to-end tier: what the tests need to run the real `vigil` binary and
// read what it wrote. Nothing here knows Vigil's internals: the binary is
// driven through its command line and judged by its output alone.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace e2e {

// The binary under test, set by CMake.
inline const std::string kVigil = VIGIL_BIN;

// The environment every run starts from: a fixed PATH, so the paths that
// execve is given (and the events carry) are the same on every host.
std::vector<std::string> base_environment();

struct Spawn {
  std::vector<std::string> argv;
  std::vector<std::string> env = base_environment();
  std::optional<std::string> stdin_data;  // nullopt: stdin is /dev/null
  bool unprivileged = false;              // run as nobody (when we are root)
  std::string cwd;                        // empty: the test's own
};

struct Outcome {
  int status = -1;       // exit status, or 128 + signal as a shell says it
  std::string out, err;  // everything written to stdout and stderr
  bool timed_out = false;
};

// A started process whose stdio the harness holds. wait() feeds stdin,
// drains stdout and stderr and reaps it; a run longer than the timeout is
// killed and reported as a failure.
class Process {
 public:
  explicit Process(const Spawn& spawn);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  Outcome wait(int timeout_ms = 20000);

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string stdin_data_;
  bool reaped_ = false;
};

Outcome run(const Spawn& spawn, int timeout_ms = 20000);

// The uid and gid of `nobody`, whom unprivileged runs become.
uid_t nobody_uid();
gid_t nobody_gid();

// One audit log: its raw lines and each parsed in the order of its keys.
struct Log {
  std::string text;
  std::vector<std::string> lines;
  std::vector<nlohmann::ordered_json> events;

  // Events whose "event" field is `name`, in file order.
  std::vector<nlohmann::ordered_json> of(const std::string& name) const;
  size_t count(const std::string& name) const { return of(name).size(); }
};

// Parses JSON lines; each line that is not one JSON object is a test
// failure (so is a last line without its '\n').
Log parse_log(const std::string& text);
Log read_log(const std::string& path);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);
bool file_exists(const std::string& path);

// Keys of an object in the order they were written.
std::vector<std::string> keys_of(const nlohmann::ordered_json& object);

// Splits at '\n'; a trailing '\n' does not make an empty last line.
std::vector<std::string> split_lines(const std::string& text);

bool is_uuid(const std::string& s);

// Nanoseconds since the epoch of an RFC 3339 UTC time with 1 to 9 digits
// of fraction ("2023-07-04T16:42:20.54Z"); nullopt when `s` is not one.
std::optional<int64_t> parse_rfc3339_utc(const std::string& s);

int64_t now_ns();

}  // namespace e2e
