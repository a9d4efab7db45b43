// Root tier: dropping root for a network-facing process
// (src/privsep/drop.*). Each test drops in a forked child and reports what
// the child could still do; the parent asserts it.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "../support/temp_dir.hpp"
#include "privsep/drop.hpp"

using namespace vigil;
using namespace vigil::privsep;

namespace {

std::string status_field(const std::string& name) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + ":", 0) == 0) {
      std::string v = line.substr(name.size() + 1);
      return v.substr(v.find_first_not_of(" \t"));
    }
  return "?";
}

// Runs `after` in a child that dropped with `options`; the child's report
// (one "key=value" line each) comes back through a kept pipe.
std::string in_dropped_child(const ServiceUser& who, DropOptions options,
                             const std::function<std::string()>& after) {
  int p[2];
  EXPECT_EQ(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    options.keep_fds.push_back(p[1]);
    auto dropped = drop_to(who, options);
    std::string report = dropped ? after() : "drop=" + dropped.error().message + "\n";
    (void)!write(p[1], report.data(), report.size());
    _exit(0);
  }
  close(p[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

class DropRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "dropping root needs root";
    bool created = false;
    auto who = ensure_service_user(kServiceUser, &created);
    ASSERT_TRUE(who) << who.error().message;
    who_ = *who;
    EXPECT_NE(who_.uid, 0u);
  }
  ServiceUser who_;
};

TEST_F(DropRoot, ServiceUserIsASystemUserWithoutShell) {
  passwd* pw = getpwnam(kServiceUser);
  ASSERT_NE(pw, nullptr);
  EXPECT_EQ(std::string(pw->pw_shell), "/usr/sbin/nologin");
  EXPECT_LT(pw->pw_uid, 1000u);  // --system
  // A second call finds it and creates nothing.
  bool created = true;
  auto again = ensure_service_user(kServiceUser, &created);
  ASSERT_TRUE(again);
  EXPECT_FALSE(created);
  EXPECT_EQ(again->uid, who_.uid);
}

TEST_F(DropRoot, RootCannotBeRegained) {
  std::string report = in_dropped_child(who_, {}, [] {
    std::ostringstream r;
    uid_t ru, eu, su;
    getresuid(&ru, &eu, &su);
    r << "uids=" << ru << "," << eu << "," << su << "\n";
    r << "setuid0=" << setuid(0) << "\n";
    r << "seteuid0=" << seteuid(0) << "\n";
    r << "setgid0=" << setgid(0) << "\n";
    gid_t groups[64];
    int n = getgroups(64, groups);
    r << "groups=" << n << ":" << (n > 0 ? groups[0] : 0) << "\n";
    r << "CapEff=" << status_field("CapEff") << "\n";
    r << "CapPrm=" << status_field("CapPrm") << "\n";
    r << "CapAmb=" << status_field("CapAmb") << "\n";
    r << "NoNewPrivs=" << status_field("NoNewPrivs") << "\n";
    r << "dumpable=" << prctl(PR_GET_DUMPABLE) << "\n";
    return r.str();
  });
  const std::string u = std::to_string(who_.uid);
  EXPECT_NE(report.find("uids=" + u + "," + u + "," + u + "\n"), std::string::npos) << report;
  EXPECT_NE(report.find("setuid0=-1\n"), std::string::npos) << report;
  EXPECT_NE(report.find("seteuid0=-1\n"), std::string::npos) << report;
  EXPECT_NE(report.find("setgid0=-1\n"), std::string::npos) << report;
  EXPECT_NE(report.find("groups=1:" + std::to_string(who_.gid) + "\n"), std::string::npos) << report;
  EXPECT_NE(report.find("CapEff=0000000000000000\n"), std::string::npos) << report;
  EXPECT_NE(report.find("CapPrm=0000000000000000\n"), std::string::npos) << report;
  EXPECT_NE(report.find("CapAmb=0000000000000000\n"), std::string::npos) << report;
  EXPECT_NE(report.find("NoNewPrivs=1\n"), std::string::npos) << report;
  EXPECT_NE(report.find("dumpable=0\n"), std::string::npos) << report;
}

TEST_F(DropRoot, RootFilesAndInheritedFdsAreOutOfReach) {
  test::TempDir dir;
  const std::string secret = dir.file("audit.log");
  { std::ofstream(secret) << "audit"; }
  chmod(secret.c_str(), 0600);
  // Open before the drop, not kept: must be closed by it.
  int inherited = open(secret.c_str(), O_RDONLY);
  ASSERT_GE(inherited, 0);
  std::string report = in_dropped_child(who_, {}, [&] {
    std::ostringstream r;
    errno = 0;
    r << "shadow=" << (open("/etc/shadow", O_RDONLY) < 0 ? errno : 0) << "\n";
    errno = 0;
    r << "secret=" << (open(secret.c_str(), O_RDONLY) < 0 ? errno : 0) << "\n";
    errno = 0;
    r << "inherited=" << (fcntl(inherited, F_GETFD) < 0 ? errno : 0) << "\n";
    return r.str();
  });
  close(inherited);
  EXPECT_NE(report.find("shadow=" + std::to_string(EACCES) + "\n"), std::string::npos) << report;
  EXPECT_NE(report.find("secret=" + std::to_string(EACCES) + "\n"), std::string::npos) << report;
  EXPECT_NE(report.find("inherited=" + std::to_string(EBADF) + "\n"), std::string::npos) << report;
}

TEST_F(DropRoot, KeptFdsStayUsable) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  DropOptions options;
  options.keep_fds = {p[1]};
  std::string report = in_dropped_child(who_, options, [&] {
    return std::string("kept=") + (write(p[1], "x", 1) == 1 ? "ok" : "closed") + "\n";
  });
  close(p[1]);
  char c = 0;
  EXPECT_EQ(read(p[0], &c, 1), 1);
  close(p[0]);
  EXPECT_NE(report.find("kept=ok\n"), std::string::npos) << report;
}

TEST_F(DropRoot, ChrootHidesEveryFileOfTheNode) {
  test::TempDir empty;
  chmod(empty.path().c_str(), 0755);
  DropOptions options;
  options.chroot_dir = empty.path();
  std::string report = in_dropped_child(who_, options, [] {
    std::ostringstream r;
    errno = 0;
    r << "passwd=" << (open("/etc/passwd", O_RDONLY) < 0 ? errno : 0) << "\n";
    char cwd[256] = "";
    r << "cwd=" << (getcwd(cwd, sizeof cwd) ? cwd : "?") << "\n";
    return r.str();
  });
  EXPECT_NE(report.find("passwd=" + std::to_string(ENOENT) + "\n"), std::string::npos) << report;
  EXPECT_NE(report.find("cwd=/\n"), std::string::npos) << report;
}

TEST_F(DropRoot, DroppingToRootIsRefused) {
  auto r = drop_to(ServiceUser{"root", 0, 0}, {});  // refused before anything changes
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("uid/gid 0"), std::string::npos);
  EXPECT_EQ(geteuid(), 0u);
}

}  // namespace
