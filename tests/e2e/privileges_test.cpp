// End to end: `vigil check` on this host, and what a user without root is
// told by `vigil check` and `vigil record`.
#include <sys/stat.h>

#include <regex>

#include "fixture.hpp"

namespace e2e {
namespace {

using ::testing::HasSubstr;

constexpr int kVigilFailed = 125;

// The line check prints for one item: "  ok    command events   ...".
bool has_check_line(const std::string& out, const std::string& mark, const std::string& what,
                    const std::string& detail_part = "") {
  const std::regex line("^  " + mark + " +" + what + " +(.*)$");
  for (const auto& l : split_lines(out)) {
    std::smatch m;
    if (std::regex_match(l, m, line) && m[1].str().find(detail_part) != std::string::npos)
      return true;
  }
  return false;
}

class Check : public VigilTest {};

TEST_F(Check, EveryKindIsOkOnThisHost) {
  REQUIRE_ROOT();
  auto o = run({.argv = {kVigil, "check", "-c", config()}});
  EXPECT_EQ(o.status, 0) << o.out << o.err;
  EXPECT_EQ(o.err, "");
  auto lines = split_lines(o.out);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front(), "vigil check: enhanced recording on this host");
  EXPECT_EQ(lines.back(), "enhanced recording: supported (command, disk, network)");
  EXPECT_TRUE(has_check_line(o.out, "ok", "privileges")) << o.out;
  EXPECT_TRUE(has_check_line(o.out, "ok", "BPF programs")) << o.out;
  EXPECT_TRUE(has_check_line(o.out, "ok", "command events", "sched_process_exec")) << o.out;
  EXPECT_TRUE(has_check_line(o.out, "ok", "disk events", "openat")) << o.out;
  EXPECT_TRUE(has_check_line(o.out, "ok", "network events", "inet_sock_set_state")) << o.out;
  EXPECT_TRUE(has_check_line(o.out, "ok", "session mark", "sched_process_fork")) << o.out;
  // The stated limit is said, as a warning, on every host.
  EXPECT_TRUE(has_check_line(o.out, "warn", "ptrace", "not recorded")) << o.out;
  for (const auto& l : lines) EXPECT_EQ(l.find("FAIL"), std::string::npos) << l;
}

TEST_F(Check, WithoutRootPrivilegesFail) {
  auto o = run({.argv = {kVigil, "check", "-c", config()}, .unprivileged = true});
  EXPECT_NE(o.status, 0);
  EXPECT_EQ(o.status, 1) << o.out << o.err;
  EXPECT_TRUE(has_check_line(o.out, "FAIL", "privileges", "run vigil as root")) << o.out;
  // Nothing is loaded without the privileges, so no kind is reported ok.
  for (const char* kind : {"command events", "disk events", "network events"})
    EXPECT_FALSE(has_check_line(o.out, "ok", kind)) << o.out;
  EXPECT_EQ(split_lines(o.out).back(),
            "enhanced recording: NOT available on this host (see FAIL above)");
}

class RecordWithoutRoot : public VigilTest {};

// The node's files are the user's own, so only the missing privileges stand
// in the way: vigil must say that, not what it failed to create.
TEST_F(RecordWithoutRoot, IsRefusedWithRunAsRoot) {
  give_dir_to_nobody();
  const std::string out = path("events.json");
  auto o = run({.argv = record_argv({"-o", out}, {"true"}), .unprivileged = true});
  EXPECT_EQ(o.status, kVigilFailed);
  EXPECT_EQ(o.out, "");
  EXPECT_THAT(o.err, HasSubstr("needs root"));
  EXPECT_THAT(o.err, HasSubstr("run vigil as root")) << "tell the user what to do";
  EXPECT_EQ(read_file(out), "") << "no session was recorded";
}

// With a data_dir the user cannot write (as the default /var/lib/vigil),
// the privileges are still what vigil names.
TEST_F(RecordWithoutRoot, IsRefusedWithRunAsRootBeforeTouchingTheDataDir) {
  chmod(dir_.c_str(), 0555);
  auto o = run({.argv = record_argv({}, {"true"}), .unprivileged = true});
  EXPECT_EQ(o.status, kVigilFailed);
  EXPECT_EQ(o.out, "");
  EXPECT_THAT(o.err, HasSubstr("run vigil as root")) << "tell the user what to do";
  EXPECT_FALSE(file_exists(data_dir()));
  chmod(dir_.c_str(), 0755);
}

}  // namespace
}  // namespace e2e
