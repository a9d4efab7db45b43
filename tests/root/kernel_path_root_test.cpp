// Root tier: the kernel path of an open (DiskEvent::kernel_path) names the
// file the kernel opened, whatever the program's memory says by the time the
// exit hook reads it, for every way of naming a file; the requested path is
// kept, and cut only when bytes were cut.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/cgroup.hpp"
#include "engine/engine.hpp"
#include "engine_env.hpp"
#include "engine/launch.hpp"

using namespace vigil;

namespace {

const std::string kHelper = VIGIL_KPATH_HELPER;

using vigil::testing::g_engine;
using vigil::testing::g_start_error;

// kernel_path_probe_reads_root_test.cpp runs these tests again on the walk
// of kernels without bpf_rdonly_cast (every field a probe read).
#ifdef VIGIL_KPATH_PROBE_READS
constexpr bool kPlainLoads = false;
#else
constexpr bool kPlainLoads = true;
#endif

VIGIL_ROOT_ENGINE("kpath", [](EngineOptions& options) {
  // 8 MiB for disk records: the race's 4,000 opens fit even if the reader
  // gets no CPU meanwhile (a loaded CI machine), so the counts can match.
  options.ring_pages = {8, 2048, 8};
  options.kernel_path_plain_loads = kPlainLoads;
});

struct Recorded {
  std::vector<DiskEvent> opens;
  std::vector<CommandEvent> commands;
  SessionSummary summary;
  int exit_status = -1;

  // The opens that requested exactly `path`.
  std::vector<DiskEvent> requested(const std::string& path) const {
    std::vector<DiskEvent> out;
    for (const auto& d : opens)
      if (d.path == path) out.push_back(d);
    return out;
  }
  // The one open that requested `path`.
  std::optional<DiskEvent> one(const std::string& path) const {
    auto all = requested(path);
    EXPECT_EQ(all.size(), 1u) << "opens requesting " << path;
    if (all.size() != 1) return std::nullopt;
    return all[0];
  }
};

int g_sessions = 0;

// Runs the helper with `ops` as the first process of a session recording disk.
Recorded run(std::vector<std::string> ops,
             KindSet kinds = KindSet(1u << static_cast<int>(Kind::disk)), int exit_code = 0) {
  Recorded out;
  std::mutex mu;
  std::string id = "k" + std::to_string(getpid()) + "-" + std::to_string(++g_sessions);
  auto session = g_engine->open_session({id, kinds}, [&](const Event& e) {
    std::lock_guard lock(mu);
    if (auto* d = std::get_if<DiskEvent>(&e.body)) out.opens.push_back(*d);
    if (auto* c = std::get_if<CommandEvent>(&e.body)) out.commands.push_back(*c);
  });
  EXPECT_TRUE(session.ok()) << session.error().message;
  if (!session.ok()) return out;
  LaunchSpec spec;
  spec.argv = {kHelper};
  spec.argv.insert(spec.argv.end(), ops.begin(), ops.end());
  auto child = launch(**session, spec);
  EXPECT_TRUE(child.ok()) << child.error().message;
  if (child.ok()) waitpid(child->pid, &out.exit_status, 0);
  auto summary = g_engine->close_session(**session);
  EXPECT_TRUE(summary.ok()) << summary.error().message;
  if (summary.ok()) out.summary = *summary;
  EXPECT_TRUE(WIFEXITED(out.exit_status) && WEXITSTATUS(out.exit_status) == exit_code)
      << "the helper's status " << out.exit_status << "; see its stderr";
  return out;
}

// A fresh directory with a "secret" file, named by its real path (no
// symbolic link on the way: that is what the kernel path must say).
class KernelPath : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_FAIL() << "the root tier needs root";
    ASSERT_NE(g_engine, nullptr) << "engine did not start: " << g_start_error;
    char tmpl[] = "/tmp/vigil-kpath-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    char real[PATH_MAX];
    ASSERT_NE(realpath(tmpl, real), nullptr);
    dir_ = real;
    secret_ = dir_ + "/secret";
    write(secret_, "s");
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }

  std::string dir_;
  std::string secret_;
};

// This kernel (6.2+) takes the plain loads; the probe-read binary asked
// for the other walk and must have it, or it tests nothing new.
TEST_F(KernelPath, TheWalkReadsAsAsked) {
  EXPECT_EQ(g_engine->kernel_path_plain_loads(), kPlainLoads);
}

TEST_F(KernelPath, AbsoluteRelativeDirfdSymlinkAndProcFd) {
  ASSERT_EQ(symlink("secret", (dir_ + "/link").c_str()), 0);
  Recorded r = run({"open:" + secret_, "chdir:" + dir_, "open:secret", "openat:" + dir_ + ":./secret",
                    "open:" + dir_ + "/link", "procfd:" + dir_ + "/./secret"});
  for (const char* requested : {"secret", "./secret"}) {
    std::optional<DiskEvent> d = r.one(requested);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->kernel_path, secret_) << requested;
  }
  for (const std::string& requested : {secret_, dir_ + "/link", dir_ + "/./secret"}) {
    std::optional<DiskEvent> d = r.one(requested);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->return_code, 0);
    EXPECT_EQ(d->kernel_path, secret_) << requested;
    EXPECT_FALSE(d->kernel_path_truncated);
    EXPECT_FALSE(d->path_truncated);
  }
  // The directory the openat was relative to is named too.
  for (const auto& d : r.opens)
    if (d.path == dir_ && d.return_code == 0) {
      EXPECT_EQ(d.kernel_path, dir_);
    }
  int proc = 0;
  for (const auto& d : r.opens)
    if (d.path.rfind("/proc/self/fd/", 0) == 0) {
      ++proc;
      EXPECT_EQ(d.kernel_path, secret_) << d.path;
    }
  EXPECT_EQ(proc, 1);
}

TEST_F(KernelPath, Openat2ResolveInRoot) {
  // "/secret" resolved inside dir_: the file is dir_/secret, not /secret.
  Recorded r = run({"inroot:" + dir_ + ":/secret"});
  std::optional<DiskEvent> d = r.one("/secret");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kernel_path, secret_);
}

TEST_F(KernelPath, RootDirectoryIsSlash) {
  Recorded r = run({"open:/", "open:/proc/self/status"});
  std::optional<DiskEvent> root = r.one("/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->kernel_path, "/");
  // Across a mount of another filesystem (proc), through a magic link.
  std::optional<DiskEvent> status = r.one("/proc/self/status");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->kernel_path.rfind("/proc/", 0), 0u) << status->kernel_path;
  EXPECT_NE(status->kernel_path.find("/status"), std::string::npos) << status->kernel_path;
  EXPECT_EQ(status->kernel_path.find("self"), std::string::npos) << status->kernel_path;
}

TEST_F(KernelPath, BindMountInAPrivateNamespaceNamesTheSource) {
  const std::string target = dir_ + "/harmless";
  write(target, "");
  Recorded r = run({"bind:" + secret_ + ":" + target});
  std::optional<DiskEvent> d = r.one(target);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->return_code, 0);
  EXPECT_EQ(d->kernel_path, secret_);
}

TEST_F(KernelPath, TmpfileThenLinkat) {
  const std::string linked = dir_ + "/linked";
  Recorded r = run({"tmpfile:" + dir_ + ":" + linked});
  struct stat st {};
  ASSERT_EQ(stat(linked.c_str(), &st), 0);
  // Unnamed, the kernel calls it "#<inode>" in its directory, and it is not
  // linked: " (deleted)", as /proc/PID/fd shows it.
  std::optional<DiskEvent> tmp = r.one(dir_);
  ASSERT_TRUE(tmp);
  EXPECT_EQ(tmp->kernel_path, dir_ + "/#" + std::to_string(st.st_ino) + " (deleted)");
  EXPECT_NE(tmp->flags & O_TMPFILE, 0);
  std::optional<DiskEvent> again = r.one(linked);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->kernel_path, linked);
}

// A memfd reopened through /proc/self/fd is named as the kernel names it.
TEST_F(KernelPath, MemfdThroughProcFd) {
  Recorded r = run({"memfd:vigil-secret"});
  int proc = 0;
  for (const auto& d : r.opens)
    if (d.path.rfind("/proc/self/fd/", 0) == 0) {
      ++proc;
      EXPECT_EQ(d.kernel_path, "/memfd:vigil-secret (deleted)");
      EXPECT_FALSE(d.kernel_path_truncated);
    }
  EXPECT_EQ(proc, 1);
}

TEST_F(KernelPath, FailedOpenKeepsOnlyTheRequestedPath) {
  const std::string missing = dir_ + "/missing";
  Recorded r = run({"open:" + missing});
  std::optional<DiskEvent> d = r.one(missing);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->return_code, -ENOENT);
  EXPECT_EQ(d->kernel_path, "");
  EXPECT_FALSE(d->kernel_path_missing);
  EXPECT_FALSE(d->kernel_path_truncated);
}

// A requested path of 4,095 bytes is whole (the kernel takes it); one of
// 4,096 is cut to 4,095 and flagged (the kernel refuses it).
TEST_F(KernelPath, RequestedPathTruncationBoundary) {
  std::string whole = dir_ + "/";
  while (whole.size() + 2 + 6 <= 4095) whole += "./";
  while (whole.size() + 6 < 4095) whole += "/";  // "//" is "/" to the kernel
  whole += "secret";
  ASSERT_EQ(whole.size(), 4095u);
  const std::string longer = "/" + whole;
  Recorded r = run({"open:" + whole, "open:" + longer});
  std::optional<DiskEvent> d = r.one(whole);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->return_code, 0);
  EXPECT_FALSE(d->path_truncated);
  EXPECT_EQ(d->kernel_path, secret_);

  // The 4,096-byte one arrives as its first 4,095 bytes, which is `longer`
  // minus its last byte.
  std::optional<DiskEvent> cut = r.one(longer.substr(0, 4095));
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->return_code, -ENAMETOOLONG);
  EXPECT_TRUE(cut->path_truncated);
  EXPECT_EQ(cut->kernel_path, "");
}

// The kernel path is built from the leaf up; past 4,095 bytes its leading
// part is cut at a component and flagged.
TEST_F(KernelPath, KernelPathTruncationBoundary) {
  // Components of at most 200 bytes under dir_, so that the leaf's absolute
  // path is exactly `total` bytes long.
  auto chain_of = [&](size_t total, char tag) {
    const std::string leaf = "leaf";
    size_t rest = total - dir_.size() - 1 - leaf.size();  // bytes of "/name" components
    std::string chain;                                     // relative to dir_
    while (rest > 0) {
      size_t n = std::min<size_t>(200, rest - 1);
      if (rest - 1 - n == 1) --n;  // never leave 1 byte: "/" needs a name after it
      chain += tag + std::string(n - 1, 'x') + "/";
      rest -= n + 1;
    }
    return chain + leaf;
  };
  const std::string exact = chain_of(4095, 'e');
  const std::string over = chain_of(4096, 'o');
  ASSERT_EQ(dir_.size() + 1 + exact.size(), 4095u);
  ASSERT_EQ(dir_.size() + 1 + over.size(), 4096u);
  Recorded r = run({"deep:" + dir_ + ":" + exact, "deep:" + dir_ + ":" + over});
  std::vector<DiskEvent> leaves = r.requested("leaf");
  ASSERT_EQ(leaves.size(), 2u);
  EXPECT_EQ(leaves[0].kernel_path, dir_ + "/" + exact);
  EXPECT_FALSE(leaves[0].kernel_path_truncated);
  const std::string full = dir_ + "/" + over;
  EXPECT_TRUE(leaves[1].kernel_path_truncated);
  // What is kept is the path's tail from a '/' on, the first component that
  // no longer fit left out.
  ASSERT_GE(leaves[1].kernel_path.size(), 1u);
  EXPECT_LT(leaves[1].kernel_path.size(), full.size());
  EXPECT_EQ(leaves[1].kernel_path[0], '/');
  EXPECT_EQ(full.substr(full.size() - leaves[1].kernel_path.size()), leaves[1].kernel_path);
  EXPECT_EQ(full[full.size() - leaves[1].kernel_path.size()], '/');
}

TEST_F(KernelPath, KernelPathKeepsAtMost64Components) {
  std::string chain;
  for (int i = 0; i < 70; ++i) chain += "d/";
  chain += "leaf";
  Recorded r = run({"deep:" + dir_ + ":" + chain});
  std::optional<DiskEvent> d = r.one("leaf");
  ASSERT_TRUE(d);
  std::string tail;
  for (int i = 0; i < 63; ++i) tail += "/d";
  tail += "/leaf";
  EXPECT_TRUE(d->kernel_path_truncated);
  EXPECT_EQ(d->kernel_path, tail);

  // 64 components exactly are whole: dir_'s own components plus ours.
  size_t own = std::count(dir_.begin(), dir_.end(), '/');
  std::string fits;
  for (size_t i = 0; i + own + 1 < 64; ++i) fits += "f/";
  fits += "leaf";
  Recorded whole = run({"deep:" + dir_ + ":" + fits});
  std::optional<DiskEvent> w = whole.one("leaf");
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->kernel_path_truncated);
  EXPECT_EQ(w->kernel_path, dir_ + "/" + fits);
}

// The attack of issue 9: one thread opens a path buffer in a loop, another
// rewrites it between the secret's name and a decoy's. Whatever the buffer
// says at the exit hook, the kernel path names what was opened.
TEST_F(KernelPath, RacingThreadCannotRenameTheOpenedFile) {
  const std::string decoy = dir_ + "/decoy!";  // as long as "secret", so mixes fail
  ASSERT_EQ(decoy.size(), secret_.size());
  write(decoy, "d");
  const std::string counts = dir_ + "/counts";
  // The race needs both threads on a CPU at once: on a busy machine a run
  // can miss it, so it is run again (a few times at most) until it hits.
  // Every run must name every open right.
  Recorded r;
  long misnamed = 0;
  for (int attempt = 0; attempt < 5 && misnamed == 0; ++attempt) {
    r = run({"race:" + secret_ + ":" + decoy + ":4000:" + counts});
    long secrets = -1, decoys = -1;
    std::ifstream(counts) >> secrets >> decoys;
    ASSERT_GT(secrets, 0);
    ASSERT_GT(decoys, 0);
    ASSERT_EQ(r.summary.lost[Kind::disk], 0u) << "the disk ring lost events: counts cannot match";
    long seen_secret = 0, seen_decoy = 0;
    for (const auto& d : r.opens) {
      if (d.return_code != 0) continue;
      if (d.kernel_path == secret_) ++seen_secret;
      if (d.kernel_path == decoy) ++seen_decoy;
      if ((d.kernel_path == secret_ || d.kernel_path == decoy) && d.path != d.kernel_path) ++misnamed;
    }
    EXPECT_EQ(seen_secret, secrets);
    EXPECT_EQ(seen_decoy, decoys);
  }
  RecordProperty("opens_whose_requested_path_lied", static_cast<int>(misnamed));
  // The helper pins the two threads to two CPUs: then the race hits (here
  // hundreds of times a run), and the counts above are the proof.
  if (std::thread::hardware_concurrency() >= 2) {
    EXPECT_GT(misnamed, 0) << "the buffer never changed under an open: the test proved nothing";
  }
  // Every open with an empty requested path says it could not be read.
  for (const auto& d : r.opens)
    if (d.path.empty()) {
      EXPECT_TRUE(d.path_unreadable);
    }
}

// The buffer becomes unreadable between the kernel's copy and the hook: the
// requested path is flagged unreadable, and the kernel path still names it.
TEST_F(KernelPath, UnreadablePathIsFlaggedAndTheFileStillNamed) {
  long unreadable = 0, efault = 0;
  // Run again (a few times at most) when a busy machine kept the race from hitting.
  for (int attempt = 0; attempt < 5 && efault + unreadable == 0; ++attempt) {
    Recorded r = run({"unmap-race:" + secret_ + ":4000"});
    for (const auto& d : r.opens) {
      if (d.path.empty()) {
        EXPECT_TRUE(d.path_unreadable);
      }
      if (!d.path_unreadable) continue;
      ++unreadable;
      EXPECT_EQ(d.path, "");
      if (d.return_code == 0) {
        EXPECT_EQ(d.kernel_path, secret_);
      }
    }
    // Some opens failed with EFAULT (the kernel's copy met the unreadable
    // page; by the hook it may be readable again, so either flag can show):
    // they opened nothing and name nothing.
    for (const auto& d : r.opens)
      if (d.return_code == -EFAULT) {
        ++efault;
        EXPECT_EQ(d.kernel_path, "");
      }
  }
  RecordProperty("unreadable_paths", static_cast<int>(unreadable));
  EXPECT_GT(efault + unreadable, 0) << "the race never hit: the test proved nothing";
}

// Commands: the file the kernel ran, named from kernel memory.
const KindSet kCommands = KindSet(1u << static_cast<int>(Kind::command));

std::string real(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) ? buf : "";
}

TEST_F(KernelPath, FexecveOfAMemfdSaysMemfdAndItsName) {
  Recorded r = run({"fexecve-memfd:vigil-payload:/bin/true"}, kCommands);
  ASSERT_EQ(r.commands.size(), 2u);  // the helper, then the memfd
  const CommandEvent& c = r.commands[1];
  EXPECT_EQ(c.return_code, 0);
  EXPECT_EQ(c.path.rfind("/dev/fd/", 0), 0u) << c.path;
  EXPECT_EQ(c.kernel_path, "/memfd:vigil-payload (deleted)");
  EXPECT_EQ(r.commands[0].kernel_path, real(kHelper));
}

TEST_F(KernelPath, ScriptSaysItsInterpreterAndTheFileItRan) {
  const std::string script = dir_ + "/script";
  write(script, "#!/bin/sh -e\nexit 0\n");
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  Recorded r = run({"exec-as:" + script + ":" + script + ":one"}, kCommands);
  ASSERT_EQ(r.commands.size(), 2u);
  const CommandEvent& c = r.commands[1];
  EXPECT_EQ(c.path, script);
  EXPECT_EQ(c.interpreter, (std::vector<std::string>{"/bin/sh", "-e"}));
  EXPECT_EQ(c.argv, (std::vector<std::string>{"one"}));
  EXPECT_EQ(c.kernel_path, real("/bin/sh")) << "the kernel runs the interpreter";
  EXPECT_EQ(c.argv0, "");
}

TEST_F(KernelPath, ExecWithAnotherArgv0SaysIt) {
  Recorded r = run({"exec-as:sshd-lookalike:/bin/true"}, kCommands);
  ASSERT_EQ(r.commands.size(), 2u);
  EXPECT_EQ(r.commands[1].path, "/bin/true");
  EXPECT_EQ(r.commands[1].argv0, "sshd-lookalike");
  EXPECT_EQ(r.commands[1].kernel_path, real("/bin/true"));
  // The helper was started as itself: no argv0 to report.
  EXPECT_EQ(r.commands[0].argv0, "");
}

TEST_F(KernelPath, FailedExecHasNoKernelPath) {
  // The helper exits 1 after the failed exec: that is this test's point.
  Recorded r = run({"exec-as:x:" + dir_ + "/missing"}, kCommands, 1);
  ASSERT_EQ(r.commands.size(), 2u);
  EXPECT_EQ(r.commands[1].return_code, -ENOENT);
  EXPECT_EQ(r.commands[1].kernel_path, "");
}

}  // namespace
