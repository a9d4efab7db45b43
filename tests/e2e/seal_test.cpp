// End to end: the session seal as `vigil record` and `vigil check` show it.
// A sealed session says so in session.start and its programs are refused the
// calls the recording cannot see; `seal: false` in the node file turns both
// off; `vigil check` tells whether the seal works on this host.
#include <regex>

#include "fixture.hpp"

namespace e2e {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::ordered_json;

const std::string kHelper = VIGIL_SEAL_HELPER;
constexpr int kVigilFailed = 125;

class Seal : public VigilTest {
 protected:
  // The node file with `seal: <value>` in its enhanced_recording section.
  void write_config_with_seal(const std::string& value) {
    write_file(config_, node_yaml(data_dir()) + "    seal: " + value + "\n");
  }

  // `vigil record --user nobody -o FILE -- COMMAND`: the session's stdout and
  // the session.start it logged.
  std::pair<Outcome, json> record_as_nobody(const std::vector<std::string>& command) {
    const std::string file = path("events-" + std::to_string(++runs_) + ".json");
    Outcome o = run({.argv = record_argv({"--user", "nobody", "-o", file}, command)});
    Log log = read_log(file);
    auto starts = log.of("session.start");
    EXPECT_EQ(starts.size(), 1u) << log.text;
    return {o, starts.empty() ? json() : starts.front()};
  }

  int runs_ = 0;
};

const std::vector<std::string> kSealed = {"compat_32bit", "io_uring", "open_by_handle_at", "x32"};

TEST_F(Seal, ARecordedSessionIsSealedByDefault) {
  REQUIRE_ROOT();
  auto [o, start] = record_as_nobody({kHelper, "io_uring-open", "/etc/hostname"});
  EXPECT_EQ(o.out, "err:EPERM\n") << o.err;
  EXPECT_EQ(o.status, 1) << "vigil record exits with the command's status";
  EXPECT_EQ(start["sealed"], json(kSealed)) << start.dump();
  // In the encoder's alphabetical order: after namespace, before server_hostname.
  auto keys = keys_of(start);
  auto at = std::find(keys.begin(), keys.end(), "sealed");
  ASSERT_NE(at, keys.end());
  EXPECT_EQ(*(at - 1), "namespace");
  EXPECT_EQ(*(at + 1), "server_hostname");

  auto [o32, start32] = record_as_nobody({kHelper, "int80-open", "/etc/hostname"});
  EXPECT_EQ(o32.out, "err:EPERM\n") << o32.err;
}

TEST_F(Seal, SealFalseRecordsUnsealedAndSaysNothing) {
  REQUIRE_ROOT();
  write_config_with_seal("false");
  auto [o, start] = record_as_nobody({kHelper, "io_uring-open", "/etc/hostname"});
  EXPECT_EQ(o.out, "ok:" + read_file("/etc/hostname") + "\n") << o.err;
  EXPECT_EQ(o.status, 0);
  EXPECT_FALSE(start.contains("sealed")) << start.dump();
}

TEST_F(Seal, ABadSealValueIsAConfigError) {
  write_config_with_seal("maybe");
  auto o = record({}, {"true"});
  EXPECT_EQ(o.status, kVigilFailed);
  EXPECT_THAT(o.err, HasSubstr(config() + ":11: ssh_service.enhanced_recording.seal: expected "
                                          "true or false, got \"maybe\""));
}

bool has_line(const std::string& out, const std::string& pattern) {
  const std::regex line(pattern);
  for (const auto& l : split_lines(out))
    if (std::regex_match(l, line)) return true;
  return false;
}

TEST_F(Seal, CheckSaysTheSealWorksAndWhatItRefuses) {
  REQUIRE_ROOT();
  auto o = run({.argv = {kVigil, "check", "-c", config()}});
  EXPECT_EQ(o.status, 0) << o.out << o.err;
  EXPECT_TRUE(has_line(o.out, "  ok +session seal +refuses compat_32bit, io_uring, "
                              "open_by_handle_at, x32 with EPERM .*"))
      << o.out;
  // This kernel's own answers, whatever they are, each on its line.
  for (const char* what : {"io_uring", "32-bit syscalls", "x32 syscalls"})
    EXPECT_TRUE(has_line(o.out, std::string("  ok +") + what + " +.*")) << what << "\n" << o.out;
  EXPECT_FALSE(has_line(o.out, ".*NOT sealed.*")) << o.out;
}

TEST_F(Seal, CheckWarnsWhenTheSealIsOff) {
  REQUIRE_ROOT();
  write_config_with_seal("false");
  auto o = run({.argv = {kVigil, "check", "-c", config()}});
  EXPECT_EQ(o.status, 0) << o.out << o.err;
  EXPECT_TRUE(has_line(o.out, "  warn +session seal +off \\(enhanced_recording.seal: false\\).*"))
      << o.out;
}

}  // namespace
}  // namespace e2e
