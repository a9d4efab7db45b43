// vigil_kpath_helper: the opens kernel_path_root_test.cpp records, one operation
// per argument, run in order inside a recorded session:
//
//   chdir:DIR                   chdir(DIR)
//   open:PATH                   open(PATH, O_RDONLY); a failure is fine (failed opens are tested)
//   openat:DIR:NAME             openat(open(DIR), NAME)
//   inroot:DIR:NAME             openat2(open(DIR), NAME, RESOLVE_IN_ROOT)
//   procfd:PATH                 open(PATH, O_PATH), then open("/proc/self/fd/N")
//   memfd:NAME                  memfd_create(NAME), then open("/proc/self/fd/N")
//   tmpfile:DIR:LINK            open(DIR, O_TMPFILE), linkat it to LINK, then open(LINK)
//   deep:BASE:A/B/.../LEAF      mkdirat each component under BASE, then openat(dir, LEAF, O_CREAT)
//   bind:SRC:TARGET             a private mount namespace, SRC bound onto TARGET, open(TARGET)
//   race:SECRET:DECOY:N:OUT     one thread opens a path buffer while another rewrites it
//                               between SECRET and DECOY, until N opens succeeded and both
//                               files were among them; writes "secret decoy" counts
//                               (by inode, what was really opened) to OUT
//   fexecve-memfd:NAME:PROG     copy PROG into memfd NAME and fexecve it (argv: NAME)
//   exec-as:ARGV0:PROG[:ARG]    execv(PROG, {ARGV0[, ARG]})
//   unmap-race:SECRET:N         one thread opens SECRET from a page another thread keeps
//                               making unreadable and readable again, N opens
//
// Any unexpected failure prints what failed and exits 1.
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char** environ;

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
  fprintf(stderr, "vigil_kpath_helper: %s: %s\n", what.c_str(), strerror(errno));
  _exit(1);
}

std::vector<std::string> split(const std::string& s, char sep, size_t max_parts) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (out.size() + 1 < max_parts) {
    size_t next = s.find(sep, pos);
    if (next == std::string::npos) break;
    out.push_back(s.substr(pos, next - pos));
    pos = next + 1;
  }
  out.push_back(s.substr(pos));
  return out;
}

int must_open(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) die("open " + path);
  return fd;
}

void openat_in(const std::string& dir, const std::string& name) {
  int dfd = must_open(dir, O_RDONLY | O_DIRECTORY);
  int fd = openat(dfd, name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("openat " + name);
  close(fd);
  close(dfd);
}

void in_root(const std::string& dir, const std::string& name) {
  int dfd = must_open(dir, O_RDONLY | O_DIRECTORY);
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT;
  int fd = static_cast<int>(syscall(SYS_openat2, dfd, name.c_str(), &how, sizeof(how)));
  if (fd < 0) die("openat2 " + name);
  close(fd);
  close(dfd);
}

void proc_fd(const std::string& path) {
  int fd = must_open(path, O_PATH);
  std::string again = "/proc/self/fd/" + std::to_string(fd);
  close(must_open(again, O_RDONLY));
  close(fd);
}

void memfd(const std::string& name) {
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) die("memfd_create " + name);
  close(must_open("/proc/self/fd/" + std::to_string(fd), O_RDONLY));
  close(fd);
}

void tmpfile(const std::string& dir, const std::string& link) {
  int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) die("open O_TMPFILE in " + dir);
  std::string self = "/proc/self/fd/" + std::to_string(fd);
  if (linkat(AT_FDCWD, self.c_str(), AT_FDCWD, link.c_str(), AT_SYMLINK_FOLLOW) != 0)
    die("linkat " + link);
  close(fd);
  close(must_open(link, O_RDONLY));
}

void deep(const std::string& base, const std::string& chain) {
  std::vector<std::string> names = split(chain, '/', SIZE_MAX);
  int dfd = must_open(base, O_RDONLY | O_DIRECTORY);
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    if (mkdirat(dfd, names[i].c_str(), 0700) != 0 && errno != EEXIST) die("mkdirat " + names[i]);
    int next = openat(dfd, names[i].c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (next < 0) die("openat " + names[i]);
    close(dfd);
    dfd = next;
  }
  int fd = openat(dfd, names.back().c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) die("openat " + names.back());
  close(fd);
  close(dfd);
}

void bind(const std::string& src, const std::string& target) {
  if (unshare(CLONE_NEWNS) != 0) die("unshare(CLONE_NEWNS)");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die("make / private");
  if (mount(src.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
    die("bind " + src + " onto " + target);
  close(must_open(target, O_RDONLY));
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) die("stat " + path);
  return st.st_ino;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) die("sched_getaffinity");
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) out.push_back(i);
  return out;
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) die("sched_setaffinity");
}

// The buffer the opener passes to open(), rewritten by another thread.
void race(const std::string& secret, const std::string& decoy, long n, const std::string& out) {
  const ino_t secret_ino = inode_of(secret);
  alignas(64) static char buf[4096];
  snprintf(buf, sizeof(buf), "%s", secret.c_str());
  std::atomic<bool> stop{false};
  std::atomic<long> flips{0};
  // On separate CPUs, so that the writer runs while the open is in the
  // kernel (on one CPU the two would take turns a time slice at a time).
  std::vector<int> cpus = allowed_cpus();
  if (cpus.size() >= 2) pin_to(cpus[0]);
  std::thread writer([&] {
    if (cpus.size() >= 2) pin_to(cpus[1]);
    for (bool which = false; !stop.load(std::memory_order_relaxed); which = !which) {
      const std::string& s = which ? secret : decoy;
      // Byte by byte through a volatile pointer: the opener sees every mix.
      volatile char* p = buf;
      for (size_t i = 0; i <= s.size(); ++i) p[i] = s[i];
      flips.fetch_add(1, std::memory_order_relaxed);
    }
  });
  while (flips.load() < 2) sched_yield();  // the writer runs before the first open
  // At least n successful opens, and both files among them (bounded: a
  // scheduler that never interleaves the threads ends it all the same).
  long secrets = 0, decoys = 0;
  for (long tries = 0; tries < 1000 * n; ++tries) {
    if (secrets + decoys >= n && secrets > 0 && decoys > 0) break;
    int fd = open(buf, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // a half-written name: a failed open, recorded as such
    struct stat st {};
    fstat(fd, &st);
    (st.st_ino == secret_ino ? secrets : decoys)++;
    close(fd);
  }
  stop = true;
  writer.join();
  FILE* f = fopen(out.c_str(), "we");
  if (!f) die("fopen " + out);
  fprintf(f, "%ld %ld\n", secrets, decoys);
  fclose(f);
}

void fexecve_memfd(const std::string& name, const std::string& prog) {
  int mfd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (mfd < 0) die("memfd_create " + name);
  int in = must_open(prog, O_RDONLY);
  char buf[65536];
  for (ssize_t n; (n = read(in, buf, sizeof(buf))) > 0;)
    if (::write(mfd, buf, n) != n) die("write memfd");
  close(in);
  char* const argv[] = {const_cast<char*>(name.c_str()), nullptr};
  fexecve(mfd, argv, environ);
  die("fexecve " + name);
}

void exec_as(const std::string& argv0, const std::string& prog, const std::string& arg) {
  std::vector<char*> argv = {const_cast<char*>(argv0.c_str())};
  if (!arg.empty()) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  execv(prog.c_str(), argv.data());
  die("execv " + prog);
}

void unmap_race(const std::string& secret, long n) {
  long page = sysconf(_SC_PAGESIZE);
  void* mem = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  auto* buf = static_cast<char*>(mem);
  snprintf(buf, page, "%s", secret.c_str());
  std::atomic<bool> stop{false};
  std::vector<int> cpus = allowed_cpus();
  if (cpus.size() >= 2) pin_to(cpus[0]);
  std::thread flipper([&] {
    if (cpus.size() >= 2) pin_to(cpus[1]);
    while (!stop.load(std::memory_order_relaxed)) {
      mprotect(mem, page, PROT_NONE);
      mprotect(mem, page, PROT_READ | PROT_WRITE);
    }
  });
  for (long i = 0; i < n; ++i) {
    int fd = open(buf, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) close(fd);
  }
  stop = true;
  flipper.join();
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string op = arg.substr(0, arg.find(':'));
    std::string rest = arg.find(':') == std::string::npos ? "" : arg.substr(arg.find(':') + 1);
    if (op == "chdir") {
      if (chdir(rest.c_str()) != 0) die("chdir " + rest);
    } else if (op == "open") {
      int fd = open(rest.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) close(fd);
    } else if (op == "openat") {
      auto p = split(rest, ':', 2);
      openat_in(p[0], p.at(1));
    } else if (op == "inroot") {
      auto p = split(rest, ':', 2);
      in_root(p[0], p.at(1));
    } else if (op == "procfd") {
      proc_fd(rest);
    } else if (op == "memfd") {
      memfd(rest);
    } else if (op == "tmpfile") {
      auto p = split(rest, ':', 2);
      tmpfile(p[0], p.at(1));
    } else if (op == "deep") {
      auto p = split(rest, ':', 2);
      deep(p[0], p.at(1));
    } else if (op == "bind") {
      auto p = split(rest, ':', 2);
      bind(p[0], p.at(1));
    } else if (op == "race") {
      auto p = split(rest, ':', 4);
      race(p[0], p.at(1), std::stol(p.at(2)), p.at(3));
    } else if (op == "fexecve-memfd") {
      auto p = split(rest, ':', 2);
      fexecve_memfd(p[0], p.at(1));
    } else if (op == "exec-as") {
      auto p = split(rest, ':', 3);
      exec_as(p[0], p.at(1), p.size() > 2 ? p[2] : "");
    } else if (op == "unmap-race") {
      auto p = split(rest, ':', 2);
      unmap_race(p[0], std::stol(p.at(1)));
    } else {
      fprintf(stderr, "vigil_kpath_helper: unknown operation %s\n", arg.c_str());
      return 2;
    }
  }
  return 0;
}
