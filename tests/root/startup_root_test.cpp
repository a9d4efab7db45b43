// Root tier: what Engine::start does to the host before any session, as
// docs/architecture.md ("A session", step 1) says it: cgroup2 mounted where
// nothing is mounted, and session cgroups of a run that died removed (their
// processes killed: nothing a session started runs on unrecorded), while
// those of a live run stay.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "engine/cgroup.hpp"
#include "engine/engine.hpp"
#include "engine/launch.hpp"

using namespace vigil;

namespace {

bool is_dir(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_cgroup2_mount(const std::string& path) {
  struct statfs fs{};
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

void write_text(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size())) << path;
  close(fd);
}

class Startup : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the root tier needs root (cgroups, mount, BPF); run 'make test' "
                                "as root";
  }
};

}  // namespace

TEST_F(Startup, StaleSessionCgroupsOfADeadRunAreRemovedAndLiveOnesKept) {
  const std::string root_path = "/vigil-startup-" + std::to_string(getpid());
  const std::string root = "/cgroup2" + root_path;
  const std::string locks = "/run/vigil/sessions/cgroup2" + root_path;
  ASSERT_TRUE(cgroup::make_dirs(root + "/dead").ok());
  ASSERT_TRUE(cgroup::make_dirs(root + "/alive").ok());
  ASSERT_TRUE(cgroup::make_dirs(locks).ok());
  // A process left in the dead run's session, and a live run's lock held.
  pid_t left = fork();
  if (left == 0) {
    pause();
    _exit(0);
  }
  write_text(root + "/dead/cgroup.procs", std::to_string(left));
  int held = open((locks + "/alive.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(held, 0);
  ASSERT_EQ(flock(held, LOCK_EX | LOCK_NB), 0);

  EngineOptions options;
  options.root_path = root_path;
  auto engine = Engine::start(options);
  ASSERT_TRUE(engine.ok()) << engine.error().message;

  EXPECT_FALSE(is_dir(root + "/dead")) << "the dead run's session cgroup is still there";
  EXPECT_TRUE(is_dir(root + "/alive")) << "a live run's session cgroup was removed";
  // Killed by the engine: reaped here, by SIGKILL.
  int status = 0;
  ASSERT_EQ(waitpid(left, &status, 0), left);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the process of the dead session was not killed";

  engine->reset();
  close(held);
  rmdir((root + "/alive").c_str());
  rmdir((root + "/dead").c_str());
  rmdir(root.c_str());
  unlink((locks + "/alive.lock").c_str());
  unlink((locks + "/dead.lock").c_str());
  rmdir(locks.c_str());
}

TEST_F(Startup, Cgroup2IsMountedWhereNothingIsAndSessionsWorkThere) {
  char tmpl[] = "/tmp/vigil-cgroup2-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string mnt = tmpl;
  ASSERT_FALSE(is_cgroup2_mount(mnt));

  EngineOptions options;
  options.cgroup_path = mnt;
  options.root_path = "/vigil-mount-" + std::to_string(getpid());
  {
    auto engine = Engine::start(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message;
    EXPECT_TRUE(is_cgroup2_mount(mnt)) << "no cgroup2 mounted at " << mnt;
    EXPECT_TRUE(is_dir(mnt + options.root_path));

    // Sessions made below that mount are recorded.
    std::vector<CommandEvent> seen;
    std::mutex mu;
    auto session = (*engine)->open_session({"mounted", KindSet(1u)}, [&](const Event& e) {
      std::lock_guard lock(mu);
      if (auto* c = std::get_if<CommandEvent>(&e.body)) seen.push_back(*c);
    });
    ASSERT_TRUE(session.ok()) << session.error().message;
    LaunchSpec spec;
    spec.argv = {"/bin/true", "from-the-new-mount"};
    auto child = launch(**session, spec);
    ASSERT_TRUE(child.ok()) << child.error().message;
    int status = -1;
    waitpid(child->pid, &status, 0);
    EXPECT_EQ(status, 0);
    ASSERT_TRUE((*engine)->close_session(**session).ok());
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].argv, std::vector<std::string>{"from-the-new-mount"});
  }
  rmdir((mnt + options.root_path).c_str());
  rmdir(("/run/vigil/sessions" + mnt + options.root_path).c_str());
  rmdir(("/run/vigil/sessions" + mnt).c_str());
  umount2(mnt.c_str(), MNT_DETACH);
  rmdir(mnt.c_str());
}
