// Root tier: the session seal, attacked from inside real recorded sessions.
// Each way around the syscall tracepoints (int $0x80, x32, io_uring,
// open_by_handle_at) is tried by vigil_seal_helper in a sealed session, where
// it must be refused with EPERM, and in an unsealed one, where it must work:
// so a test that passes is one that could see the difference.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>

#include "engine/engine.hpp"
#include "engine_env.hpp"
#include "engine/launch.hpp"
#include "engine/seal.hpp"

using namespace vigil;

namespace {

const std::string kHelper = VIGIL_SEAL_HELPER;

using vigil::testing::g_engine;
using vigil::testing::g_start_error;

VIGIL_ROOT_ENGINE("seal", [](EngineOptions&) {});

#define REQUIRE_ROOT()                                                                    \
  do {                                                                                    \
    if (geteuid() != 0)                                                                   \
      GTEST_SKIP() << "SKIPPED: needs root (BPF, cgroups, and installing the seal before " \
                      "dropping privileges); run 'make test' as root";                    \
    ASSERT_NE(g_engine, nullptr) << "the engine did not start: " << g_start_error;        \
  } while (0)

enum class Sealed { yes, no };

struct Ran {
  std::string out;  // the session's stdout
  int exit_code = -1;
  std::string launch_error;
};

std::optional<Credentials> nobody() {
  auto c = credentials_for("nobody");
  EXPECT_TRUE(c.ok()) << c.error().message;
  return c.ok() ? std::optional<Credentials>(*c) : std::nullopt;
}

// Runs argv as the first process of a new recorded session, sealed or not,
// as `user` (root when unset), and returns what it printed.
int sessions = 0;

Ran run(Sealed sealed, std::vector<std::string> argv,
        std::optional<Credentials> user = std::nullopt,
        const seal::Filter* filter = seal::for_session(true)) {
  Ran ran;
  auto session = g_engine->open_session(
      {"seal-" + std::to_string(getpid()) + "-" + std::to_string(++sessions), KindSet::all()},
      [](const Event&) {});
  EXPECT_TRUE(session.ok()) << session.error().message;
  if (!session.ok()) return ran;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return ran;
  }
  LaunchSpec spec;
  spec.argv = std::move(argv);
  spec.credentials = std::move(user);
  spec.cwd = "/";
  spec.seal = sealed == Sealed::yes ? filter : nullptr;
  int out_w = out[1];
  spec.child_setup = [out_w] { dup2(out_w, STDOUT_FILENO); };
  auto child = launch(**session, spec);
  close(out[1]);
  if (child.ok()) {
    char buf[4096];
    ssize_t n;
    while ((n = read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) ran.out.append(buf, n);
    int status = 0;
    waitpid(child->pid, &status, 0);
    ran.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    ran.launch_error = child.error().message;
  }
  close(out[0]);
  auto summary = g_engine->close_session(**session);
  EXPECT_TRUE(summary.ok()) << summary.error().message;
  return ran;
}

// A file any user may read, so that only the seal stands between a session
// of `nobody` and its content.
class SealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/vigil-seal-test-" + std::to_string(getpid());
    mkdir(dir_.c_str(), 0755);
    secret_ = dir_ + "/secret";
    content_ = "secret-" + std::to_string(getpid());
    std::ofstream(secret_) << content_;
    chmod(secret_.c_str(), 0644);
  }
  void TearDown() override {
    unlink(secret_.c_str());
    unlink((dir_ + "/suid-helper").c_str());
    rmdir(dir_.c_str());
  }

  std::string dir_, secret_, content_;
};

TEST_F(SealTest, Int80OpenOfASecretIsRefused) {
  REQUIRE_ROOT();
  Ran sealed = run(Sealed::yes, {kHelper, "int80-open", secret_}, nobody());
  EXPECT_EQ(sealed.launch_error, "");
  EXPECT_EQ(sealed.out, "err:EPERM\n");
  EXPECT_EQ(sealed.exit_code, 1);
  EXPECT_EQ(sealed.out.find(content_), std::string::npos);

  Ran unsealed = run(Sealed::no, {kHelper, "int80-open", secret_}, nobody());
  EXPECT_EQ(unsealed.out, "ok:" + content_ + "\n")
      << "without the seal the i386 open must work, or this test proves nothing";
}

TEST_F(SealTest, IoUringIsRefused) {
  REQUIRE_ROOT();
  EXPECT_EQ(run(Sealed::yes, {kHelper, "io_uring-setup"}, nobody()).out, "err:EPERM\n");
  Ran sealed = run(Sealed::yes, {kHelper, "io_uring-open", secret_}, nobody());
  EXPECT_EQ(sealed.out, "err:EPERM\n");
  EXPECT_EQ(sealed.exit_code, 1);

  Ran unsealed = run(Sealed::no, {kHelper, "io_uring-open", secret_}, nobody());
  EXPECT_EQ(unsealed.out, "ok:" + content_ + "\n")
      << "without the seal IORING_OP_OPENAT must work, or this test proves nothing";
}

// open_by_handle_at needs CAP_DAC_READ_SEARCH: the session runs as root, the
// one who could use it.
TEST_F(SealTest, OpenByHandleAtIsRefused) {
  REQUIRE_ROOT();
  Ran sealed = run(Sealed::yes, {kHelper, "handle-open", secret_});
  EXPECT_EQ(sealed.out, "err:EPERM\n");
  Ran unsealed = run(Sealed::no, {kHelper, "handle-open", secret_});
  EXPECT_EQ(unsealed.out, "ok:" + content_ + "\n");
}

TEST_F(SealTest, X32IsRefusedWhetherOrNotTheKernelHasIt) {
  REQUIRE_ROOT();
  EXPECT_EQ(run(Sealed::yes, {kHelper, "x32-getpid"}, nobody()).out, "err:EPERM\n");
  // Unsealed: a pid where the kernel has x32, ENOSYS where it does not.
  std::string unsealed = run(Sealed::no, {kHelper, "x32-getpid"}, nobody()).out;
  EXPECT_TRUE(unsealed == "err:ENOSYS\n" || unsealed.starts_with("ok:")) << unsealed;
}

TEST_F(SealTest, ForkedAndExecedChildrenAreSealedToo) {
  REQUIRE_ROOT();
  EXPECT_EQ(run(Sealed::yes, {kHelper, "fork", "io_uring-open", secret_}, nobody()).out,
            "err:EPERM\n");
  EXPECT_EQ(run(Sealed::yes, {kHelper, "fork", "fork", "int80-open", secret_}, nobody()).out,
            "err:EPERM\n");
  EXPECT_EQ(run(Sealed::yes, {"/bin/sh", "-c", kHelper + " int80-open " + secret_ + "; " +
                                                   kHelper + " fork io_uring-setup"},
                nobody())
                .out,
            "err:EPERM\nerr:EPERM\n");
  // The control: the same forked child, unsealed, gets through.
  EXPECT_EQ(run(Sealed::no, {kHelper, "fork", "io_uring-open", secret_}, nobody()).out,
            "ok:" + content_ + "\n");
}

// A filter the user stacks on top can only refuse more: an allow-everything
// one does not lift the seal.
TEST_F(SealTest, AStackedAllowAllFilterDoesNotLiftIt) {
  REQUIRE_ROOT();
  EXPECT_EQ(run(Sealed::yes, {kHelper, "allow-all", "io_uring-open", secret_}, nobody()).out,
            "err:EPERM\n");
  EXPECT_EQ(run(Sealed::no, {kHelper, "allow-all", "io_uring-open", secret_}, nobody()).out,
            "ok:" + content_ + "\n");
}

// Installed without no_new_privs: a setuid program still gains its owner's
// rights in a sealed session, and ordinary programs run as before.
TEST_F(SealTest, SetuidAndOrdinaryProgramsStillWork) {
  REQUIRE_ROOT();
  std::string suid = dir_ + "/suid-helper";
  {
    std::ifstream in(kHelper, std::ios::binary);
    std::ofstream out(suid, std::ios::binary);
    out << in.rdbuf();
  }
  ASSERT_EQ(chown(suid.c_str(), 0, 0), 0);
  ASSERT_EQ(chmod(suid.c_str(), 04755), 0);
  // passwd -S reads /etc/shadow (root only) when it runs setuid root, and
  // says "-1" for every field it could not read otherwise.
  std::string expected_passwd;
  if (FILE* p = popen("passwd -S nobody", "r")) {
    char line[256];
    while (fgets(line, sizeof line, p)) expected_passwd += line;
    pclose(p);
  }
  ASSERT_NE(expected_passwd, "") << "passwd -S nobody printed nothing";

  std::string script = suid + " euid; passwd -S; cat " + secret_ + "; echo; id -u";
  Ran sealed = run(Sealed::yes, {"/bin/sh", "-c", script}, nobody());
  EXPECT_EQ(sealed.launch_error, "");
  EXPECT_EQ(sealed.out, "ok:0\n" + expected_passwd + content_ + "\n65534\n");
  EXPECT_EQ(sealed.exit_code, 0);
}

// A filter the kernel refuses (here: an empty program) stops the launch with
// a message naming the step: nothing runs unsealed.
TEST_F(SealTest, AFilterThatCannotBeInstalledStopsTheLaunch) {
  REQUIRE_ROOT();
  seal::Filter empty;
  Ran ran = run(Sealed::yes, {"/bin/echo", "ran"}, nobody(), &empty);
  EXPECT_EQ(ran.out, "");
  EXPECT_EQ(ran.launch_error, "cannot seal the session (seccomp) /bin/echo: Invalid argument");
}

TEST(SealProbe, TheSealCanBeInstalledHere) {
  REQUIRE_ROOT();
  auto probe = seal::probe();
  EXPECT_TRUE(probe.ok()) << probe.error().message;
}

}  // namespace
