// engine_bench: what recording costs the recorded processes and everyone
// else, measured in one run (`make bench`, as root).
//
// Five storms of bench/storm.c, each a separate process:
//   exec     N × fork + execve /bin/true + wait
//   fork     N × fork + _exit + wait
//   open     N × open + close of one file
//   uring    N × io_uring IORING_OP_OPENAT of that file + close
//   connect  N × TCP connect to this driver's listener on 127.0.0.1 + close
// are timed (by the storm itself, around its loop) in these modes:
//   bare          no engine at all
//   idle          engine started, BPF loaded, no session: nothing attached
//   inside        the storm is the first process of a session recording every
//                 kind, sealed as `vigil record` seals it; the sink encodes
//                 each event as the audit log does
//   unsealed      the same with `seal: false` (the uring storm only: sealed,
//                 io_uring_setup is refused and the storm falls back to openat)
//   outside       a session recording command+network is live (`sleep` in it)
//                 while the storm runs outside every session
//   outside+disk  the same with a session that also records disk
//   floor         no engine; empty BPF programs (bench/floor.bpf.c) on exactly
//                 the hooks the engine attaches for command+network
//   floor+disk    the same on the hooks of all three kinds
// In each repetition a storm goes through its modes back to back, so drift
// hits all modes alike; the report gives the median per storm and mode, and
// its ratio to the bare median of the same run.
//
// Exit status: 0 when every measurement was made (targets met or not),
// 1 when the benchmark itself broke, 2 on bad usage.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "audit/encode.hpp"
#include "audit/uuid.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "engine/engine.hpp"
#include "engine/launch.hpp"
#include "engine/probe.hpp"
#include "engine/seal.hpp"
#include "floor.skel.h"

extern "C" {
#include <linux/types.h>

#include "vigil_events.h"
}

using namespace vigil;

namespace {

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
  va_list args, copy;
  va_start(args, format);
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string out(n > 0 ? n : 0, '\0');
  vsnprintf(out.data(), out.size() + 1, format, args);
  va_end(args);
  return out;
}

// 1000000 -> "1,000,000"
std::string grouped(uint64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// The first line of `file` that starts with `prefix`, or "".
std::string read_first_line_with(const char* file, const std::string& prefix) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return line;
  return {};
}

// Set by SIGINT/SIGTERM/SIGHUP, which also end the storm that runs, so an
// interrupted run stops at once and still closes its sessions.
std::atomic<bool> g_interrupted{false};
std::atomic<pid_t> g_running_storm{0};

void on_interrupt(int) {
  g_interrupted = true;
  if (pid_t pid = g_running_storm.load(); pid > 0) kill(pid, SIGKILL);
}

// ---------------------------------------------------------------- workload

enum StormId { kExec, kFork, kOpen, kUring, kConnect, kStormCount };
enum ModeId {
  kBare,
  kIdle,
  kInside,
  kUnsealed,
  kOutside,
  kOutsideDisk,
  kFloor,
  kFloorDisk,
  kModeCount
};

constexpr const char* kStormNames[kStormCount] = {"exec", "fork", "open", "uring", "connect"};
// The storms every mode runs; the uring storm runs in fewer (Bench::runs).
const std::vector<int> kSyscallStorms = {kExec, kFork, kOpen, kConnect};
// The kind of event each operation of a storm is, inside a session: a fork
// alone is none, an io_uring open is a disk event only through the fallback.
constexpr int kNoKind = -1;
constexpr int kStormKind[kStormCount] = {static_cast<int>(Kind::command), kNoKind,
                                         static_cast<int>(Kind::disk),
                                         static_cast<int>(Kind::disk),
                                         static_cast<int>(Kind::network)};
constexpr const char* kModeNames[kModeCount] = {"bare",    "idle",         "inside",
                                                "unsealed", "outside",     "outside+disk",
                                                "floor",   "floor+disk"};
constexpr KindSet kCommandNetwork = [] {
  KindSet kinds;
  kinds.add(Kind::command);
  kinds.add(Kind::network);
  return kinds;
}();

// Accepts and closes loopback connections for the connect storm, on its own
// thread, for the whole run (the listener is not part of what is measured).
class LoopbackListener {
 public:
  static Result<std::unique_ptr<LoopbackListener>> start() {
    std::unique_ptr<LoopbackListener> l(new LoopbackListener());
    l->sock_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!l->sock_) return Error::sys("listener socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    // A deep backlog: a full accept queue drops SYNs, and a dropped SYN
    // costs the storm a one-second retransmit, not CPU.
    if (bind(l->sock_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) ||
        listen(l->sock_.get(), 4096) ||
        getsockname(l->sock_.get(), reinterpret_cast<sockaddr*>(&addr), &len))
      return Error::sys("listener on 127.0.0.1");
    l->port_ = ntohs(addr.sin_port);
    l->thread_ = std::thread([p = l.get()] { p->serve(); });
    return l;
  }
  ~LoopbackListener() {
    shutdown(sock_.get(), SHUT_RDWR);  // wakes accept() with an error
    thread_.join();
  }
  int port() const { return port_; }

 private:
  LoopbackListener() = default;
  void serve() {
    for (;;) {
      int fd = accept4(sock_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0)
        close(fd);
      else if (errno != EINTR && errno != ECONNABORTED)
        return;
    }
  }
  Fd sock_;
  int port_ = 0;
  std::thread thread_;
};

// A child whose stdout is a pipe to us.
struct Child {
  pid_t pid = -1;
  Fd out;
};

// Runs in a freshly forked child (the parent has threads): only
// async-signal-safe calls. The child dies with the driver, so an
// interrupted run leaves nothing behind in a session cgroup.
void prepare_child(int out_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  dup2(out_fd, STDOUT_FILENO);
}

Result<Child> spawn_outside(const std::vector<std::string>& argv) {
  int p[2];
  if (pipe2(p, O_CLOEXEC)) return Error::sys("pipe");
  Fd read_end(p[0]), write_end(p[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return Error::sys("fork");
  if (pid == 0) {
    prepare_child(write_end.get());
    execv(args[0], args.data());
    _exit(127);
  }
  return Child{pid, std::move(read_end)};
}

// `seal`: seal::for_session(true) as `vigil record` seals by default, or
// null for `seal: false`.
Result<Child> spawn_inside(Session& session, const std::vector<std::string>& argv,
                           const seal::Filter* seal) {
  int p[2];
  if (pipe2(p, O_CLOEXEC)) return Error::sys("pipe");
  Fd read_end(p[0]), write_end(p[1]);
  LaunchSpec spec;
  spec.argv = argv;
  spec.seal = seal;
  spec.child_setup = [fd = write_end.get()] { prepare_child(fd); };
  auto launched = launch(session, spec);
  if (!launched) return launched.error();
  return Child{launched->pid, std::move(read_end)};
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

double seconds_of(timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

struct StormTime {
  double wall = 0;  // the storm's loop, as it timed it
  double cpu = 0;   // user+sys of the storm and the children it waited for
  std::string fallback;  // the uring storm: why it opened with openat instead
};

// Waits for a storm and returns what it took.
Result<StormTime> wait_storm(Child child, const std::string& what) {
  g_running_storm = child.pid;
  if (g_interrupted) kill(child.pid, SIGKILL);  // the signal came before the line above
  std::string text;
  char buf[64];
  for (;;) {
    ssize_t n = read(child.out.get(), buf, sizeof(buf));
    if (n > 0)
      text.append(buf, n);
    else if (n == 0 || errno != EINTR)
      break;
  }
  int status = 0;
  rusage usage{};
  while (wait4(child.pid, &status, 0, &usage) < 0)
    if (errno != EINTR) return Error::sys("wait4 for " + what);
  g_running_storm = 0;
  if (g_interrupted) return Error{"interrupted"};
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Error{what + " failed (" + describe_status(status) + "; its error is above)"};
  char* end = nullptr;
  long long ns = strtoll(text.c_str(), &end, 10);
  if (end == text.c_str() || ns <= 0) return Error{what + " printed no time: '" + text + "'"};
  StormTime t{ns / 1e9, seconds_of(usage.ru_utime) + seconds_of(usage.ru_stime), {}};
  std::string rest(end);
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.pop_back();
  if (rest.rfind(" fallback ", 0) == 0)
    t.fallback = rest.substr(10);
  else if (!rest.empty())
    return Error{what + " printed more than its time: '" + text + "'"};
  return t;
}

// ---------------------------------------------------------------- the floor

// Empty programs (bench/floor.bpf.c) on the hooks the engine attaches: the
// cost of the tracepoints themselves, below which no recorder on them goes.
// Which hooks a kind attaches is asked of the engine's own BPF object
// (Probe::hooks, with the same failed-exec setting), so the floor follows
// the engine when its hooks change; a hook with no empty program here
// stops the benchmark rather than measuring a different floor.
class Floor {
 public:
  static Result<std::unique_ptr<Floor>> load(bool failed_execs) {
    ProbeOptions options;
    options.failed_execs = failed_execs;
    auto probe = Probe::load(options);
    if (!probe) return Error{"cannot load the engine's BPF object: " + probe.error().message};
    std::unique_ptr<Floor> f(new Floor());
    for (int k = 0; k < kKindCount; ++k) f->hooks_[k] = (*probe)->hooks(static_cast<Kind>(k));
    f->skel_ = floor_bpf__open();
    if (!f->skel_) return Error::sys("cannot open the floor's BPF object");
    f->cgroup_root_ = (*probe)->cgroup_root();
    std::set<std::string> wanted;
    for (const auto& hooks : f->hooks_) wanted.insert(hooks.begin(), hooks.end());
    bpf_program* prog;
    bpf_object__for_each_program(prog, f->skel_->obj) {
      bool needed = wanted.erase(hook_name(f->skel_, prog)) > 0;
      bpf_program__set_autoload(prog, needed);
    }
    if (!wanted.empty())
      return Error{"bench/floor.bpf.c has no empty program for the engine's hook " +
                   *wanted.begin() + ": add one with that section name"};
    if (bpf_program__autoload(f->skel_->progs.floor_unix_connect))
      bpf_program__set_expected_attach_type(
          f->skel_->progs.floor_unix_connect,
          static_cast<bpf_attach_type>((*probe)->unix_connect_attach_type()));
    if (int err = floor_bpf__load(f->skel_))
      return Error::sys("the kernel refused the floor's empty programs", -err);
    return f;
  }
  ~Floor() {
    detach();
    floor_bpf__destroy(skel_);
  }
  Floor(const Floor&) = delete;
  Floor& operator=(const Floor&) = delete;

  // Attaches the empty programs on the hooks of `kinds`.
  Result<void> attach(KindSet kinds) {
    std::set<std::string> sections;
    for (int k = 0; k < kKindCount; ++k)
      if (kinds.has(static_cast<Kind>(k))) sections.insert(hooks_[k].begin(), hooks_[k].end());
    bpf_program* prog;
    Fd root;
    bpf_object__for_each_program(prog, skel_->obj) {
      if (!bpf_program__autoload(prog) || !sections.count(hook_name(skel_, prog))) continue;
      bpf_link* link = nullptr;
      switch (bpf_program__type(prog)) {
        case BPF_PROG_TYPE_SOCK_OPS:
        case BPF_PROG_TYPE_CGROUP_SOCK_ADDR:
          // At the cgroup v2 root, as the engine attaches its own.
          if (!root) root.reset(open(cgroup_root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
          if (!root) {
            int err = errno;
            detach();
            return Error::sys("cannot open the cgroup v2 root " + cgroup_root_, err);
          }
          link = bpf_program__attach_cgroup(prog, root.get());
          break;
        default:
          link = bpf_program__attach(prog);
      }
      if (!link) {
        int err = errno;
        detach();
        return Error::sys(std::string("cannot attach the floor's ") +
                              bpf_program__section_name(prog),
                          err);
      }
      links_.push_back(link);
    }
    return {};
  }
  void detach() {
    for (bpf_link* link : links_) bpf_link__destroy(link);
    links_.clear();
  }
  // "tp_btf/sched_process_exec, tp/syscalls/sys_exit_execve, ..."
  std::string hooks_of(KindSet kinds) const {
    std::string out;
    for (int k = 0; k < kKindCount; ++k)
      if (kinds.has(static_cast<Kind>(k)))
        for (const auto& h : hooks_[k]) out += (out.empty() ? "" : ", ") + h;
    return out;
  }

 private:
  Floor() = default;
  // The hook a program stands for (its section name, but for the unix
  // connect program, loaded under another).
  static std::string hook_name(floor_bpf* skel, bpf_program* prog) {
    return prog == skel->progs.floor_unix_connect ? "cgroup/connect_unix"
                                                  : bpf_program__section_name(prog);
  }
  floor_bpf* skel_ = nullptr;
  std::string cgroup_root_;
  std::array<std::vector<std::string>, kKindCount> hooks_;
  std::vector<bpf_link*> links_;
};

// ---------------------------------------------------------------- the sink

// What `vigil record` does per event: encode it as an audit JSON line into
// a reused buffer, written out in 64 KiB blocks and after each batch. The
// output goes to /dev/null: the cost of the write() stays, a disk's does not.
class AuditSink {
 public:
  AuditSink() : devnull_(open("/dev/null", O_WRONLY | O_CLOEXEC)) {
    meta_.cluster_name = "bench";
    meta_.server_hostname = "bench-host";
    meta_.server_id = audit::new_uuid();
    meta_.sid = audit::new_uuid();
    meta_.login = "root";
    meta_.user = "bench";
  }
  void event(const Event& ev) {
    uid_.clear();
    audit::append_uuid(uid_);
    audit::encode_event(ev, meta_, index_++, uid_, buf_);
    if (buf_.size() >= kFlushBytes) flush();
  }
  void flush() {
    if (!buf_.empty()) (void)!write(devnull_.get(), buf_.data(), buf_.size());
    bytes_ += buf_.size();
    buf_.clear();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  static constexpr size_t kFlushBytes = 1 << 16;
  Fd devnull_;
  audit::SessionMeta meta_;
  std::string buf_, uid_;
  uint64_t index_ = 0;
  uint64_t bytes_ = 0;
};

struct OpenSession {
  std::shared_ptr<Session> session;
  std::unique_ptr<AuditSink> sink;
};

Result<OpenSession> open_session(Engine& engine, const std::string& id, KindSet kinds) {
  OpenSession s;
  s.sink = std::make_unique<AuditSink>();
  AuditSink* sink = s.sink.get();
  auto session = engine.open_session(
      {id, kinds}, [sink](const Event& ev) { sink->event(ev); }, [sink] { sink->flush(); });
  if (!session) return Error{"cannot open session " + id + ": " + session.error().message};
  s.session = std::move(session.value());
  return s;
}

double cpu_seconds_of_this_process() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return seconds_of(ru.ru_utime) + seconds_of(ru.ru_stime);
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// The sink alone, per event, on a synthetic open like the storm's: splits
// the engine's CPU time in user space between the engine and the sink.
double sink_us_per_open_event(const std::string& path) {
  Event ev;
  ev.session = 1;
  ev.time_ns = 1'800'000'000'000'000'000;
  ev.process = {.pid = 4242,
                .tid = 4242,
                .ppid = 4241,
                .uid = 0,
                .gid = 0,
                .audit_session = 7,
                .cgroup_id = 12345,
                .program = "storm"};
  ev.body = DiskEvent{.path = path, .flags = O_RDONLY};
  AuditSink sink;
  constexpr int kEvents = 200000;
  double start = thread_cpu_seconds();
  for (int i = 0; i < kEvents; ++i) sink.event(ev);
  sink.flush();
  return (thread_cpu_seconds() - start) / kEvents * 1e6;
}

// BPF links on the host that this process does not hold: someone else's
// tracing (another Vigil, a test run), which may slow what is measured: a
// syscall hook alone slows every syscall of every task. Ours are the links
// whose fds this process has (their fdinfo names the link id).
int foreign_bpf_links() {
  std::set<uint32_t> own;
  if (DIR* dir = opendir("/proc/self/fdinfo")) {
    while (dirent* e = readdir(dir)) {
      std::string line =
          read_first_line_with((std::string("/proc/self/fdinfo/") + e->d_name).c_str(), "link_id:");
      if (!line.empty()) own.insert(std::stoul(line.substr(8)));
    }
    closedir(dir);
  }
  int n = 0;
  for (__u32 id = 0; bpf_link_get_next_id(id, &id) == 0;) n += !own.count(id);
  return n;
}

// Waits up to 30 s for other programs' BPF links to go, so that they do not
// slow a storm; returns how many are still there.
int wait_for_foreign_links_to_go() {
  int n = foreign_bpf_links();
  for (int i = 0; i < 120 && n > 0 && !g_interrupted; ++i) {
    usleep(250'000);
    n = foreign_bpf_links();
  }
  return n;
}

double monotonic_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// ---------------------------------------------------------------- results

struct Sample {
  double seconds = 0;     // the storm's loop, as it timed it
  double storm_cpu = 0;   // the storm's own CPU time, its children's included
  double driver_cpu = 0;  // this process (engine threads, sink, listener) during the storm
  // Session modes: the session that was live during the storm (the storm's
  // own inside, the bystander's outside).
  KindCounts recorded, lost;
  double drain_seconds = 0;  // inside: close_session after the storm exited
  uint64_t audit_bytes = 0;  // inside: JSON lines the sink wrote
  int foreign_links = 0;     // other programs' BPF links seen before or after the storm
  std::string fallback;      // the uring storm: why it opened with openat instead
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

void add(KindCounts& to, const KindCounts& c) {
  for (int k = 0; k < kKindCount; ++k) to.v[k] += c.v[k];
}

std::string counts_text(const KindCounts& c) {
  return grouped(c.v[0]) + " / " + grouped(c.v[1]) + " / " + grouped(c.v[2]);
}

struct Config {
  int repeat = 3;
  long count[kStormCount] = {5000, 10000, 1000000, 200000, 5000};
  std::set<int> storms = {kExec, kFork, kOpen, kUring, kConnect};
  std::set<int> modes = {kBare,    kIdle,        kInside, kUnsealed,
                         kOutside, kOutsideDisk, kFloor,  kFloorDisk};
  std::string storm = VIGIL_BENCH_STORM;
  std::string markdown;
  std::string before;  // the report of an earlier run, for a "before" column
  uint32_t disk_ring_pages = EngineOptions{}.ring_pages[1];
  bool failed_execs = EngineOptions{}.failed_execs;
  std::string command_line;
};

// The ratios of an earlier report (its "Wall time" table), to show beside
// this run's: storm name -> mode name -> ratio to bare.
struct Before {
  std::string source;  // the file, and the commit its header names
  std::string date;
  std::map<std::string, std::map<std::string, double>> ratios;
};

// Reads the "## Wall time" table of a report engine_bench wrote earlier:
// a header row naming the modes, then one row a storm whose cells read
// "SECONDS (RATIOx)". A "- Commit: " line names what it measured.
Result<Before> read_before(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error::sys("cannot read the earlier report " + path);
  Before b;
  b.source = "`" + path + "`";
  std::string line;
  std::vector<std::string> modes;
  bool in_wall = false;
  auto cells = [](const std::string& row) {
    std::vector<std::string> out;
    size_t from = row.find('|');
    while (from != std::string::npos) {
      size_t to = row.find('|', from + 1);
      if (to == std::string::npos) break;
      std::string cell = row.substr(from + 1, to - from - 1);
      while (!cell.empty() && cell.front() == ' ') cell.erase(0, 1);
      while (!cell.empty() && cell.back() == ' ') cell.pop_back();
      out.push_back(cell);
      from = to;
    }
    return out;
  };
  for (int lines = 0; std::getline(in, line) && lines < 10000; ++lines) {
    if (line.rfind("- Date: ", 0) == 0 && b.date.empty()) b.date = line.substr(8);
    if (line.rfind("- Commit: ", 0) == 0) b.source += " (" + line.substr(10) + ")";
    if (line.rfind("## ", 0) == 0) {
      if (in_wall) break;
      in_wall = line == "## Wall time";
      continue;
    }
    if (!in_wall || line.rfind("|", 0) != 0) continue;
    auto row = cells(line);
    if (row.empty() || row[0].rfind("---", 0) == 0) continue;
    if (row[0] == "Storm") {
      modes = row;
      continue;
    }
    std::string storm = row[0].substr(0, row[0].find(' '));
    for (size_t i = 1; i < row.size() && i < modes.size(); ++i) {
      size_t open = row[i].find('(');
      if (open == std::string::npos) continue;
      char* end = nullptr;
      double r = strtod(row[i].c_str() + open + 1, &end);
      if (end && *end == 'x' && r > 0) b.ratios[storm][modes[i]] = r;
    }
  }
  if (b.ratios.empty())
    return Error{path + " has no \"## Wall time\" table with ratios: pass a report "
                 "engine_bench wrote"};
  return b;
}

class Bench {
 public:
  Bench(Config config, Before before, std::string open_target, int port)
      : cfg_(std::move(config)),
        before_(std::move(before)),
        open_target_(std::move(open_target)),
        port_(port) {}

  Result<void> run() {
    sink_us_ = sink_us_per_open_event(open_target_);
    if (cfg_.modes.count(kFloor) || cfg_.modes.count(kFloorDisk)) {
      auto floor = Floor::load(cfg_.failed_execs);
      if (!floor) return floor.error();
      floor_ = std::move(floor.value());
    }
    for (int rep = 0; rep < cfg_.repeat; ++rep)
      for (int storm : cfg_.storms)
        if (auto r = every_mode(rep, storm); !r) return r;
    return {};
  }

  std::string report(const std::string& started, const std::string& load_before) const;

 private:
  // Whether `mode` runs `storm`. The uring storm runs where it tells
  // something: bare, inside sealed and unsealed, and on the floor of all
  // hooks; `unsealed` runs only the uring storm (every other storm does
  // the same with the seal or without, bar the seal's own filter).
  bool runs(int mode, int storm) const {
    if (!cfg_.modes.count(mode) || !cfg_.storms.count(storm)) return false;
    if (storm == kUring)
      return mode == kBare || mode == kInside || mode == kUnsealed || mode == kFloorDisk;
    return mode != kUnsealed;
  }

  // One storm in every mode, back to back: the modes compared see the host
  // in the same state, whatever else runs on it.
  Result<void> every_mode(int rep, int storm) {
    if (auto r = keep(rep, kBare, storm, outside(storm)); !r) return r;
    if (auto r = engine_modes(rep, storm); !r) return r;
    for (int mode : {kFloor, kFloorDisk}) {
      if (!runs(mode, storm)) continue;
      KindSet kinds = mode == kFloor ? kCommandNetwork : KindSet::all();
      if (auto r = floor_->attach(kinds); !r) return r;
      auto sample = outside(storm);
      floor_->detach();
      if (auto r = keep(rep, mode, storm, std::move(sample)); !r) return r;
    }
    return {};
  }

  // The modes with an engine, one engine for all of them.
  Result<void> engine_modes(int rep, int storm) {
    bool any = false;
    for (int mode : {kIdle, kInside, kUnsealed, kOutside, kOutsideDisk})
      any = any || runs(mode, storm);
    if (!any) return {};
    EngineOptions options;
    // Sessions below a cgroup of their own, apart from any other Vigil's.
    options.root_path = "/vigil-bench-" + std::to_string(getpid());
    options.ring_pages[static_cast<int>(Kind::disk)] = cfg_.disk_ring_pages;
    options.failed_execs = cfg_.failed_execs;
    auto started = Engine::start(options);
    if (!started) return Error{"cannot start the engine: " + started.error().message};
    Engine& engine = **started;
    for (int k = 0; k < kKindCount; ++k)
      if (engine.attached(static_cast<Kind>(k)))
        return Error{"hooks are attached with no session open: the idle mode would not be idle"};

    if (runs(kIdle, storm))
      if (auto r = keep(rep, kIdle, storm, outside(storm)); !r) return r;
    for (int mode : {kInside, kUnsealed})
      if (runs(mode, storm))
        if (auto r = keep(rep, mode, storm, inside(engine, rep, storm, mode)); !r) return r;
    for (int mode : {kOutside, kOutsideDisk})
      if (runs(mode, storm))
        if (auto r = keep(rep, mode, storm, beside(engine, rep, storm, mode)); !r) return r;
    return {};
  }

  static bool has_session(int mode) { return mode >= kInside && mode <= kOutsideDisk; }

  Result<void> keep(int rep, int mode, int storm, Result<Sample> sample) {
    if (!sample) return sample.error();
    samples_[mode][storm].push_back(*sample);
    std::string events;
    if (has_session(mode))
      events = "  session recorded " + counts_text(sample->recorded) + " lost " +
               counts_text(sample->lost);
    if (!sample->fallback.empty()) events += "  fell back: " + sample->fallback;
    std::fprintf(stderr, "bench: run %d/%d %-7s %-12s %7.3f s%s\n", rep + 1, cfg_.repeat,
                 kStormNames[storm], kModeNames[mode], sample->seconds, events.c_str());
    return {};
  }

  std::vector<std::string> storm_argv(int storm) const {
    std::vector<std::string> argv = {cfg_.storm, kStormNames[storm],
                                     std::to_string(cfg_.count[storm])};
    if (storm == kOpen || storm == kUring) argv.push_back(open_target_);
    if (storm == kConnect) argv.push_back(std::to_string(port_));
    return argv;
  }

  std::string label(int storm) const {
    switch (storm) {
      case kExec:
        return "exec " + grouped(cfg_.count[kExec]) + " × /bin/true";
      case kFork:
        return "fork " + grouped(cfg_.count[kFork]) + " × _exit";
      case kOpen:
        return "open " + grouped(cfg_.count[kOpen]) + " × one file";
      case kUring:
        return "uring " + grouped(cfg_.count[kUring]) + " × io_uring open";
      default:
        return "connect " + grouped(cfg_.count[kConnect]) + " × 127.0.0.1";
    }
  }

  // The storm as a child of this process, in no session (bare, idle, outside).
  Result<Sample> outside(int storm) {
    if (g_interrupted) return Error{"interrupted"};
    int foreign = wait_for_foreign_links_to_go();
    auto child = spawn_outside(storm_argv(storm));
    if (!child) return child.error();
    double cpu = cpu_seconds_of_this_process();
    auto time = wait_storm(std::move(child.value()), std::string("storm ") + kStormNames[storm]);
    if (!time) return time.error();
    Sample s;
    s.seconds = time->wall;
    s.storm_cpu = time->cpu;
    s.driver_cpu = cpu_seconds_of_this_process() - cpu;
    s.foreign_links = std::max(foreign, foreign_bpf_links());
    s.fallback = time->fallback;
    return s;
  }

  // The storm as the first process of a session recording every kind,
  // sealed (inside) or not (unsealed).
  Result<Sample> inside(Engine& engine, int rep, int storm, int mode) {
    if (g_interrupted) return Error{"interrupted"};
    auto s = open_session(engine, fmt("bench-%d-%s-%s", rep, kStormNames[storm], kModeNames[mode]),
                          KindSet::all());
    if (!s) return s.error();
    engine.settle();  // hooks nobody needs may still be detaching in the background
    int foreign = wait_for_foreign_links_to_go();
    double cpu = cpu_seconds_of_this_process();
    auto child = spawn_inside(*s->session, storm_argv(storm),
                              seal::for_session(mode == kInside));
    auto time =
        child ? wait_storm(std::move(child.value()), std::string("storm ") + kStormNames[storm])
              : Result<StormTime>(Error{"cannot launch the storm: " + child.error().message});
    foreign = std::max(foreign, foreign_bpf_links());
    double closing = monotonic_seconds();
    auto summary = engine.close_session(*s->session);
    if (!time) return time.error();
    if (!summary) return Error{"closing the session: " + summary.error().message};
    Sample sample;
    sample.seconds = time->wall;
    sample.storm_cpu = time->cpu;
    sample.drain_seconds = monotonic_seconds() - closing;
    sample.driver_cpu = cpu_seconds_of_this_process() - cpu;
    sample.recorded = summary->recorded;
    sample.lost = summary->lost;
    sample.audit_bytes = s->sink->bytes();
    sample.foreign_links = foreign;
    sample.fallback = time->fallback;
    return sample;
  }

  // The storm outside every session while a bystander session is live: its
  // first process sleeps in it until the storm is done.
  Result<Sample> beside(Engine& engine, int rep, int storm, int mode) {
    KindSet kinds = mode == kOutside ? kCommandNetwork : KindSet::all();
    auto s = open_session(engine,
                          fmt("bench-%d-%s-%s", rep, kStormNames[storm],
                              mode == kOutside ? "outside" : "outside-disk"),
                          kinds);
    if (!s) return s.error();
    LaunchSpec spec;
    spec.argv = {"sleep", "3600"};
    spec.child_setup = [] { prctl(PR_SET_PDEATHSIG, SIGKILL); };
    auto sleeper = launch(*s->session, spec);
    if (!sleeper) {
      (void)engine.close_session(*s->session);
      return Error{"cannot launch sleep in a session: " + sleeper.error().message};
    }
    engine.settle();
    Result<Sample> sample = Error{"disk hooks are not in the state this mode needs"};
    if (engine.attached(Kind::disk) == kinds.has(Kind::disk)) sample = outside(storm);
    kill(sleeper->pid, SIGKILL);
    int status;
    while (waitpid(sleeper->pid, &status, 0) < 0 && errno == EINTR) {
    }
    auto summary = engine.close_session(*s->session);
    if (!sample) return sample;
    if (!summary) return Error{"closing the session: " + summary.error().message};
    sample->recorded = summary->recorded;
    sample->lost = summary->lost;
    return sample;
  }

  double median_seconds(int mode, int storm) const {
    return median_of(mode, storm, &Sample::seconds);
  }
  // Median of a mode over the bare median; wall time unless told otherwise.
  double ratio(int mode, int storm, double Sample::*field = &Sample::seconds) const {
    double bare = median_of(kBare, storm, field);
    return bare > 0 ? median_of(mode, storm, field) / bare : 0;
  }
  // "exec 1.01x, open 1.08x": the ratios of some storms in one mode.
  std::string ratio_list(int mode, const std::vector<int>& storms,
                         double Sample::*field = &Sample::seconds) const {
    std::string text;
    for (int storm : storms)
      text += fmt("%s%s %.2fx", text.empty() ? "" : ", ", kStormNames[storm],
                  ratio(mode, storm, field));
    return text;
  }
  // What a mode adds to one operation of the storm, from the medians.
  double added_us_per_op(int mode, int storm) const {
    return (median_seconds(mode, storm) - median_seconds(kBare, storm)) / cfg_.count[storm] * 1e6;
  }
  // Slowest over fastest bare run, minus one: how finely this run resolves a ratio.
  double bare_spread(int storm) const {
    double lo = 1e300, hi = 0;
    for (const auto& s : samples_[kBare][storm]) {
      lo = std::min(lo, s.seconds);
      hi = std::max(hi, s.seconds);
    }
    return hi > 0 ? hi / lo - 1 : 0;
  }
  KindCounts total(int mode, int storm, KindCounts Sample::*field) const {
    KindCounts sum;
    for (const auto& s : samples_[mode][storm]) add(sum, s.*field);
    return sum;
  }
  double median_of(int mode, int storm, double Sample::*field) const {
    std::vector<double> v;
    for (const auto& s : samples_[mode][storm]) v.push_back(s.*field);
    return median(v);
  }

  bool have(int mode, int storm) const { return !samples_[mode][storm].empty(); }
  // The storms that ran in `mode`.
  std::vector<int> storms_run(int mode) const {
    std::vector<int> out;
    for (int storm : cfg_.storms)
      if (have(mode, storm) && have(kBare, storm)) out.push_back(storm);
    return out;
  }
  std::vector<int> modes_run() const;
  bool recorded_op(int mode, int storm) const;
  std::string before_list(int mode, const std::vector<int>& storms) const;
  std::string time_table(double Sample::*field) const;
  std::string targets() const;
  std::string events() const;
  std::string how() const;
  std::string before_section() const;

  Config cfg_;
  Before before_;
  std::string open_target_;
  int port_;
  std::unique_ptr<Floor> floor_;
  std::array<std::array<std::vector<Sample>, kStormCount>, kModeCount> samples_;
  double sink_us_ = 0;  // the sink alone, per open event
};

// ---------------------------------------------------------------- the report

std::string cpu_model() {
  std::string line = read_first_line_with("/proc/cpuinfo", "model name");
  size_t colon = line.find(':');
  return colon == std::string::npos ? "unknown" : line.substr(colon + 2);
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

std::string utc_now() {
  time_t t = time(nullptr);
  tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

// The modes that ran at least one storm, in table order.
std::vector<int> Bench::modes_run() const {
  std::vector<int> out;
  for (int mode = 0; mode < kModeCount; ++mode)
    for (int storm = 0; storm < kStormCount; ++storm)
      if (have(mode, storm)) {
        out.push_back(mode);
        break;
      }
  return out;
}

// Storms by modes: the median of `field` and its ratio to bare.
std::string Bench::time_table(double Sample::*field) const {
  std::vector<int> modes = modes_run();
  std::string md = "| Storm |", rule = "|---|";
  for (int mode : modes) {
    md += std::string(" ") + kModeNames[mode] + " |";
    rule += "---|";
  }
  md += "\n" + rule + "\n";
  for (int storm : cfg_.storms) {
    md += "| " + label(storm) + " |";
    for (int mode : modes) {
      if (!have(mode, storm))
        md += " — |";
      else if (mode == kBare)
        md += fmt(" %.3f |", median_of(mode, storm, field));
      else
        md += fmt(" %.3f (%.2fx) |", median_of(mode, storm, field), ratio(mode, storm, field));
    }
    md += "\n";
  }
  return md;
}

// "open 1.64x" from the earlier report, or "—" when it has no such figure.
std::string Bench::before_list(int mode, const std::vector<int>& storms) const {
  std::string text;
  for (int storm : storms) {
    auto s = before_.ratios.find(kStormNames[storm]);
    if (s == before_.ratios.end()) continue;
    auto m = s->second.find(kModeNames[mode]);
    if (m == s->second.end()) continue;
    text += fmt("%s%s %.2fx", text.empty() ? "" : ", ", kStormNames[storm], m->second);
  }
  return text.empty() ? "—" : text;
}

std::string Bench::targets() const {
  std::string out =
      "Judged on wall time, as the targets are set. The same ratios of the storm's CPU time "
      "(below) are given for comparison: on a busy host they are the steadier. *Before* is "
      "the same ratio in the report this issue started from (see \"Before this issue\").\n\n"
      "| Target | Before | Wall time | CPU time | Result |\n|---|---|---|---|---|\n";
  auto storms_of = [&](int mode, const std::vector<int>& wanted) {
    std::vector<int> storms;
    for (int storm : wanted)
      if (have(mode, storm)) storms.push_back(storm);
    return storms;
  };
  auto row = [&](const std::string& target, int mode, const std::vector<int>& wanted,
                 double limit, const std::string& extra = "", bool extra_ok = true) {
    std::vector<int> storms = storms_of(mode, wanted);
    if (storms.empty() || !have(kBare, storms[0])) return;
    bool pass = extra_ok;
    for (int storm : storms) pass = pass && ratio(mode, storm) <= limit;
    out += "| " + target + " | " + before_list(mode, storms) + " | " + ratio_list(mode, storms) +
           extra + " | " + ratio_list(mode, storms, &Sample::storm_cpu) + " | " +
           (pass ? "PASS" : "**MISS**") + " |\n";
  };
  row("exec storm inside a session ≤ 1.02x", kInside, {kExec}, 1.02);
  uint64_t open_lost = total(kInside, kOpen, &Sample::lost).total();
  std::string aim = have(kInside, kOpen) ? (ratio(kInside, kOpen) <= 1.25 ? ", aim met" : ", aim not met") : "";
  row("open storm inside a session ≤ 1.5x with 0 lost (aim: 1.25x)", kInside, {kOpen}, 1.5,
      ", " + grouped(open_lost) + " lost" + aim, open_lost == 0);
  row("every storm outside a live command+network session ≤ 1.02x", kOutside, kSyscallStorms,
      1.02);
  if (have(kOutsideDisk, kOpen) && have(kFloorDisk, kOpen)) {
    auto gap = [&](double Sample::*field) {
      return fmt("open %.2fx, floor %.2fx: %+.2f", ratio(kOutsideDisk, kOpen, field),
                 ratio(kFloorDisk, kOpen, field),
                 ratio(kOutsideDisk, kOpen, field) - ratio(kFloorDisk, kOpen, field));
    };
    bool pass = ratio(kOutsideDisk, kOpen) - ratio(kFloorDisk, kOpen) <= 0.05;
    out += "| open storm outside a live disk session within 0.05 of the empty-program floor | " +
           before_list(kOutsideDisk, {kOpen}) + " (no floor measured) | " +
           gap(&Sample::seconds) + " | " + gap(&Sample::storm_cpu) + " | " +
           (pass ? "PASS" : "**MISS**") + " |\n";
  }
  row("every storm while no session is live (idle) ≤ 1.02x", kIdle, kSyscallStorms, 1.02);
  return out;
}

// How many of a storm's operations a session sees as events of its kind:
// all of them, except a fork (no event) and an io_uring open that really
// went through io_uring (the seal off: no syscall tracepoint sees it).
bool Bench::recorded_op(int mode, int storm) const {
  if (kStormKind[storm] == kNoKind) return false;
  if (storm != kUring) return true;
  for (const auto& s : samples_[mode][storm])
    if (s.fallback.empty()) return false;
  return true;
}

std::string Bench::events() const {
  std::string md = "## Events and losses\n\n";
  md +=
      fmt("What the session live during each storm recorded and lost (bare, idle and the "
          "floors have none), totals over the %d runs, as command / disk / network. Every event "
          "reached a sink doing what `vigil record` does: encode it as an audit JSON line "
          "(vigil::audit::encode_event, a fresh uid each) into a reused buffer, written to "
          "/dev/null in 64 KiB blocks and after each batch. Drain: close_session after the "
          "storm exited (median). Driver CPU: this process (the engine's threads, sink, listener) "
          "from the storm's start until its session was closed (median).\n\n",
          cfg_.repeat);
  md +=
      "| Storm | Mode | Session | Recorded | Lost | Drain | Driver CPU |\n"
      "|---|---|---|---|---|---|---|\n";
  std::string unaccounted, uring_notes;
  for (int storm : cfg_.storms) {
    for (int mode = kInside; mode <= kOutsideDisk; ++mode) {
      if (!have(mode, storm)) continue;
      std::string row = "| " + std::string(kStormNames[storm]) + " | " + kModeNames[mode] + " | ";
      KindCounts recorded = total(mode, storm, &Sample::recorded);
      KindCounts lost = total(mode, storm, &Sample::lost);
      const char* session = mode == kInside     ? "the storm's, all kinds, sealed"
                            : mode == kUnsealed ? "the storm's, all kinds, `seal: false`"
                            : mode == kOutside  ? "`sleep`'s, command+network"
                                                : "`sleep`'s, all kinds";
      bool own = mode == kInside || mode == kUnsealed;
      std::string drain = own ? fmt("%.3f s", median_of(mode, storm, &Sample::drain_seconds)) : "—";
      md += row + session + " | " + counts_text(recorded) + " | " + counts_text(lost) + " | " +
            drain + fmt(" | %.2f s |\n", median_of(mode, storm, &Sample::driver_cpu));
      int k = kStormKind[storm];
      uint64_t expected = uint64_t(cfg_.count[storm]) * samples_[mode][storm].size();
      // Inside, each operation the session's hooks see is one event of its
      // kind, delivered or counted as lost: anything short was dropped silently.
      if (own && recorded_op(mode, storm) && recorded.v[k] + lost.v[k] < expected)
        unaccounted += "- " + label(storm) + " (" + kModeNames[mode] + "): " +
                       grouped(expected - recorded.v[k] - lost.v[k]) + " " +
                       std::string(kind_name(static_cast<Kind>(k))) +
                       " events neither delivered nor counted as lost\n";
      if (storm == kUring && own) {
        std::set<std::string> why;
        for (const auto& s : samples_[mode][storm]) why.insert(s.fallback.empty() ? "" : s.fallback);
        for (const auto& w : why)
          uring_notes += fmt(
              "- **uring, %s**: %s %s disk events recorded for %s io_uring opens asked.\n",
              kModeNames[mode],
              w.empty() ? "io_uring worked: the opens went through IORING_OP_OPENAT, which no "
                          "syscall tracepoint sees, so they are **not recorded** (only the "
                          "storm's own start is);"
                        : ("the kernel refused io_uring (" + w +
                           ") and the storm fell back to openat(2), whose opens are recorded:")
                              .c_str(),
              grouped(recorded.v[k]).c_str(), grouped(expected).c_str());
      }
    }
  }
  // A bystander session records its `sleep` only, unless the kernel-side
  // filter let the storm's events through.
  bool leaked = false;
  for (int mode : {kOutside, kOutsideDisk})
    for (int storm : cfg_.storms)
      if (kStormKind[storm] != kNoKind)
        for (const auto& s : samples_[mode][storm])
          leaked = leaked || s.recorded.v[kStormKind[storm]] >= uint64_t(cfg_.count[storm]);
  md +=
      "\nInside, a storm's own start (exec of storm, its loader's opens) and each "
      "/bin/true's loader opens (ld.so.cache, libc) are recorded too. ";
  md += leaked ? "**Outside, the live session recorded the storms' events**: the kernel-side "
                 "filter let events of processes outside the session through.\n\n"
               : "Outside, the live session recorded only its `sleep`: the storms' events "
                 "never left the kernel.\n\n";
  if (!uring_notes.empty()) md += uring_notes + "\n";
  if (!unaccounted.empty())
    md += "**Events dropped without being counted:**\n\n" + unaccounted + "\n";
  return md;
}

std::string Bench::how() const {
  // "+0.13 µs per open+close": what a mode adds to one operation, flagged
  // when the ratio lies within the spread of the bare runs.
  auto op_name = [](int storm) -> std::string {
    switch (storm) {
      case kExec: return "exec";
      case kFork: return "fork";
      case kOpen: return "open+close";
      case kUring: return "io_uring open+close";
      default: return "connect";
    }
  };
  auto added = [&](int mode, int storm) -> std::string {
    if (!have(mode, storm) || !have(kBare, storm)) return "not measured";
    bool noise = std::abs(ratio(mode, storm) - 1) <= bare_spread(storm);
    double us = added_us_per_op(mode, storm);
    return fmt(std::abs(us) < 10 ? "%+.2f µs per %s%s" : "%+.0f µs per %s%s", us,
               op_name(storm).c_str(), noise ? ", within this run's noise" : "");
  };
  // What `mode` adds over `base` per operation: Vigil's programs beyond the hooks.
  auto above = [&](int mode, int base, int storm) -> std::string {
    if (!have(mode, storm) || !have(base, storm)) return "not measured";
    return fmt("%+.2f µs per %s",
               (median_seconds(mode, storm) - median_seconds(base, storm)) / cfg_.count[storm] *
                   1e6,
               op_name(storm).c_str());
  };
  auto per_op_us = [&](int storm) {
    return median_seconds(kBare, storm) / cfg_.count[storm] * 1e6;
  };

  std::string md = "## How\n\n";
  if (cfg_.repeat > 1) {
    md += "How precise: the slowest bare run of a storm was ";
    std::string spreads;
    for (int storm : cfg_.storms)
      if (have(kBare, storm))
        spreads += fmt("%s%.0f%% (%s)", spreads.empty() ? "" : ", ", bare_spread(storm) * 100,
                       kStormNames[storm]);
    md += spreads +
          " slower than the fastest, on a host that other work shares; a ratio closer to 1 "
          "than that is noise. ";
  } else {
    md += "How precise: one run per mode gives no spread to judge the noise by. ";
  }
  std::string bare_costs;
  for (int storm : cfg_.storms)
    if (have(kBare, storm))
      bare_costs += fmt(per_op_us(storm) < 10 ? "%s%s %.2f µs" : "%s%s %.0f µs",
                        bare_costs.empty() ? "" : ", ", op_name(storm).c_str(), per_op_us(storm));
  md += "Bare, one operation takes: " + bare_costs + ".\n\n";

  if (!storms_run(kIdle).empty())
    md +=
        fmt("- **Idle** (%s): Engine::start loads and verifies the programs but attaches none. "
            "Hooks are attached per kind when the first session recording the kind opens and "
            "detached after the last one closes, and the engine's threads sleep without a "
            "timeout while no session is live. Nothing of Vigil runs per syscall: idle differs "
            "from bare by noise only.\n",
            ratio_list(kIdle, storms_run(kIdle)).c_str());

  const char* command_hooks =
      cfg_.failed_execs
          ? "command capture attaches tp_btf/sched_process_exec, which runs once per exec, and "
            "tp/syscalls/sys_exit_execve{,at} for failed execs. Attaching any syscall "
            "tracepoint sets TIF_SYSCALL_TRACEPOINT on every task: every syscall of every "
            "process on the host then takes the kernel's slow syscall path, before any "
            "program decides the process is not recorded (`engine_bench --failed-execs false` "
            "measures the engine without those two hooks)."
          : "failed execs are not recorded, so command capture attaches only "
            "tp_btf/sched_process_exec, which runs once per exec, and no syscall tracepoint.";
  if (!storms_run(kOutside).empty())
    md += fmt(
        "- **Outside a command+network session** (%s): %s The open storm, nothing but short "
        "syscalls, shows a per-syscall cost most: %s; a fork: %s. The exec storm spends its "
        "time in fork, exec and page faults (%s); network capture "
        "(tp/sock/inet_sock_set_state) runs only when a TCP socket changes state (%s). For a "
        "process outside every session each program returns after a cgroup lookup (and an "
        "audit-session lookup when the process has one) and sends nothing.\n",
        ratio_list(kOutside, storms_run(kOutside)).c_str(), command_hooks,
        added(kOutside, kOpen).c_str(), added(kOutside, kFork).c_str(),
        added(kOutside, kExec).c_str(), added(kOutside, kConnect).c_str());

  if (floor_ && (!storms_run(kFloor).empty() || !storms_run(kFloorDisk).empty())) {
    md += "- **The floor** (no engine; bench/floor.bpf.c's empty programs, `return 0`, on "
          "exactly the engine's hooks). ";
    if (!storms_run(kFloor).empty())
      md += fmt("On the command+network hooks (%s): %s; Vigil's programs outside a "
                "command+network session add to that: open %s, exec %s. ",
                floor_->hooks_of(kCommandNetwork).c_str(),
                ratio_list(kFloor, storms_run(kFloor)).c_str(),
                above(kOutside, kFloor, kOpen).c_str(), above(kOutside, kFloor, kExec).c_str());
    if (!storms_run(kFloorDisk).empty())
      md += fmt("On the hooks of all three kinds (%s): %s; Vigil's programs outside a disk "
                "session add to that: %s (the session lookup of each open, which finds "
                "nothing). ",
                floor_->hooks_of(KindSet::all()).c_str(),
                ratio_list(kFloorDisk, storms_run(kFloorDisk)).c_str(),
                above(kOutsideDisk, kFloorDisk, kOpen).c_str());
    md += "A recorder on these tracepoints cannot cost less than its floor: the distance "
          "between a mode and its floor is what Vigil's own programs cost.\n";
  }

  if (!storms_run(kOutsideDisk).empty())
    md += fmt(
        "- **Outside a disk session** (%s): the four tp/syscalls/sys_exit_open* programs now "
        "run for every open on the host, each looking up the caller's session-level cgroup "
        "before it returns: %s (the slow syscall path alone, outside a command+network "
        "session: %s).\n",
        ratio_list(kOutsideDisk, storms_run(kOutsideDisk)).c_str(),
        added(kOutsideDisk, kOpen).c_str(), added(kOutside, kOpen).c_str());

  if (have(kInside, kOpen)) {
    size_t open_runs = std::max<size_t>(1, samples_[kInside][kOpen].size());
    double events = double(total(kInside, kOpen, &Sample::recorded).total()) / open_runs;
    uint64_t lost = total(kInside, kOpen, &Sample::lost).total();
    double engine_cpu = median_of(kInside, kOpen, &Sample::driver_cpu);
    double storm_seconds = median_seconds(kInside, kOpen);
    double audit_bytes = 0;
    for (const auto& s : samples_[kInside][kOpen]) audit_bytes += s.audit_bytes;
    audit_bytes /= open_runs;
    uint32_t disk_pages = 1;
    while (disk_pages < cfg_.disk_ring_pages) disk_pages <<= 1;  // as the engine rounds
    md += fmt(
        "- **Inside** (%s): the session is sealed as `vigil record` seals it (a seccomp filter "
        "of ten classic-BPF instructions on every syscall of the storm). For a recorded open "
        "the program also reads the path from user memory, fills the record head (pids, ids, "
        "comm, cgroup, boot time), names the file the new fd holds from kernel memory (the "
        "dentry and mount walk, `kernel_path`) and copies the record into the disk ring: %s "
        "(%s above the floor of all hooks). ",
        ratio_list(kInside, storms_run(kInside)).c_str(), added(kInside, kOpen).c_str(),
        above(kInside, kFloorDisk, kOpen).c_str());
    md += fmt(
        "In user space the engine's threads empty the rings, decode, order and hand every event "
        "to the sink, on the other CPU when one is free: %.2f s of CPU per run for %s events, "
        "%.2f µs each, of which the sink (encode and write, timed alone on a synthetic open "
        "event) takes %.2f µs and the engine the rest. The storm ran %.2f s, so that is %.0f%% "
        "of a CPU; the sink wrote %.0f MB of audit JSON per run (%.0f bytes an event). ",
        engine_cpu, grouped(uint64_t(events)).c_str(),
        events > 0 ? engine_cpu / events * 1e6 : 0.0, sink_us_, storm_seconds,
        100 * engine_cpu / std::max(1e-9, storm_seconds), audit_bytes / 1e6,
        events > 0 ? audit_bytes / events : 0.0);
    // A ring record is an 8-byte header and the record, rounded up to 8 bytes;
    // an open's record carries the requested path and the kernel path, here
    // the same file name (the storm opens it by its absolute path).
    size_t record_bytes =
        (offsetof(vigil_open_record, data) + 2 * (open_target_.size() + 1) + 7) / 8 * 8 + 8;
    size_t ring_records = size_t(disk_pages) * 4096 / record_bytes;
    md += fmt(
        "The disk ring of %u pages (%u KiB) holds %s records of this storm, %.0f ms of it at "
        "the rate inside a session; user space is woken when a quarter is full and every %d ms. "
        "Lost over all runs: %s. ",
        disk_pages, disk_pages * 4, grouped(ring_records).c_str(),
        events > 0 ? ring_records / (events / storm_seconds) * 1e3 : 0.0,
        EngineOptions{}.poll_interval_ms, grouped(lost).c_str());
    md += lost ? "Events were lost (\"Every run\" says in which run and of which kind): the ring "
                 "fills when the thread that empties it is kept off a CPU for longer than the "
                 "ring holds, and the engine's own queue fills when its consumer falls behind "
                 "for good. A larger disk ring (disk_buffer_size) rides out longer stalls; only "
                 "a faster engine or sink keeps up with a storm that never pauses. "
               : "Had the thread that empties the ring been kept off a CPU for longer than the "
                 "ring holds (a busier host), events would have been lost, and counted. ";
    md += fmt(
        "An exec, the argv copy, the kernel path of the file run and its record's copy into "
        "the ring included, is dominated by fork and exec themselves: %s; a fork, which no "
        "program of Vigil sees, pays only the seal and the slow syscall path: %s; a connect "
        "by the loopback handshake: %s.\n",
        added(kInside, kExec).c_str(), added(kInside, kFork).c_str(),
        added(kInside, kConnect).c_str());
  }

  if (have(kBare, kUring) && (have(kInside, kUring) || have(kUnsealed, kUring)))
    md += fmt(
        "- **io_uring** (uring storm: inside %s, unsealed %s, floor of all hooks %s): each "
        "open is an IORING_OP_OPENAT submitted alone and waited for, so it costs an "
        "io_uring_enter instead of an openat. In a sealed session io_uring_setup is refused "
        "with EPERM and the storm falls back to openat(2), recorded like any open (what a "
        "program without a fallback does: fail). With `seal: false` io_uring works and its "
        "opens are not recorded at all, so that figure is the cost of an unrecorded session, "
        "not of recording (see \"Events and losses\").\n",
        have(kInside, kUring) ? fmt("%.2fx", ratio(kInside, kUring)).c_str() : "not measured",
        have(kUnsealed, kUring) ? fmt("%.2fx", ratio(kUnsealed, kUring)).c_str()
                                : "not measured",
        have(kFloorDisk, kUring) ? fmt("%.2fx", ratio(kFloorDisk, kUring)).c_str()
                                 : "not measured");
  md += "\n";
  return md;
}

std::string Bench::before_section() const {
  if (before_.ratios.empty()) return {};
  std::string md =
      "## Before this issue\n\nRatios to bare (wall time) from " + before_.source +
      (before_.date.empty() ? "" : ", measured " + before_.date) +
      ", the report this issue started from: the same storms, before the kernel path walk, "
      "the fork, uring and floor storms and modes existed; its inside sessions were not "
      "sealed.\n\n| Storm | Mode | Before | Now |\n|---|---|---|---|\n";
  for (int storm : cfg_.storms) {
    auto s = before_.ratios.find(kStormNames[storm]);
    if (s == before_.ratios.end()) continue;
    for (int mode = 0; mode < kModeCount; ++mode) {
      auto m = s->second.find(kModeNames[mode]);
      if (m == s->second.end()) continue;
      md += fmt("| %s | %s | %.2fx | %s |\n", kStormNames[storm], kModeNames[mode], m->second,
                have(mode, storm) ? fmt("%.2fx", ratio(mode, storm)).c_str() : "—");
    }
  }
  return md + "\n";
}

std::string Bench::report(const std::string& started, const std::string& load_before) const {
  utsname u{};
  uname(&u);
  std::string md;
  md += "# Engine benchmarks\n\n";
  md +=
      "Written by `make bench` (bench/run.sh, as root); run it again rather than editing "
      "this file.\n\n";
  md += "- Date: " + started + "\n";
  md += fmt("- Machine: %ld CPUs (nproc), %s, Linux %s %s\n", sysconf(_SC_NPROCESSORS_ONLN),
            cpu_model().c_str(), u.release, u.machine);
  md += "- Load average (1/5/15 min) before the run: " + load_before +
        "; after: " + load_average() +
        fmt("; the benchmark ran at nice %d\n", getpriority(PRIO_PROCESS, 0));
  md += "- Command: `" + cfg_.command_line + "`\n";
  md +=
      fmt("- Each storm is one process of bench/storm.c that times its own loop. Median of %d "
          "runs; in each run a storm goes through its modes back to back, bare first.\n",
          cfg_.repeat);
  md +=
      fmt("- Engine options: ring pages command/disk/network %u/%u/%u, failed execs %s "
          "(the engine's defaults unless the command sets them).\n",
          EngineOptions{}.ring_pages[0], cfg_.disk_ring_pages, EngineOptions{}.ring_pages[2],
          cfg_.failed_execs ? "recorded" : "not recorded");
  int tainted = 0, runs = 0;
  for (const auto& mode : samples_)
    for (const auto& storm : mode)
      for (const auto& sample : storm) {
        ++runs;
        tainted += sample.foreign_links > 0;
      }
  md += tainted ? fmt("- **Warning**: another program's BPF links (another Vigil, a tracer) "
                      "were attached on the host just before or after %d of the %d storms, "
                      "despite a wait of up to 30 s for them to go; they may have slowed those "
                      "storms (marked in \"Every run\").\n\n",
                      tainted, runs)
                : "- No other program's BPF links were attached on the host around any storm "
                  "(the benchmark waits up to 30 s for them to go).\n\n";
  md += "## Targets\n\n" + targets() + "\n";

  md +=
      "## Wall time\n\nMedian seconds of the storm's loop; in brackets the ratio to the bare "
      "median.\n\n";
  md += time_table(&Sample::seconds);
  const char* meaning[kModeCount] = {
      "no engine.",
      "engine started (BPF loaded), no session open.",
      "the storm is the first process of a session recording command, disk and network, "
      "sealed as `vigil record` seals it (`seal: true`, the default).",
      "the same with `seal: false` (the uring storm only).",
      "the storm runs outside every session while a session recording command and network "
      "is live.",
      "the same beside a session recording all three kinds.",
      "no engine; empty BPF programs on exactly the hooks the engine attaches for "
      "command+network.",
      "the same on the hooks of all three kinds (what inside and outside+disk attach)."};
  md += "\n";
  for (int mode : modes_run())
    md += std::string("- **") + kModeNames[mode] + "**: " + meaning[mode] + "\n";
  md += "\n";
  md +=
      "## CPU time of the storm\n\nMedian user+system seconds of the storm process and the "
      "children it waited for; in brackets the ratio to bare. Time spent waiting for a CPU is "
      "not in it, so other work on the host disturbs it less than the wall time. The BPF "
      "programs run in the storm's context and count here; the engine's threads do not.\n\n";
  md += time_table(&Sample::storm_cpu);
  md += "\n";

  md += events();
  md += how();
  md += before_section();

  md +=
      "## Every run\n\nSeconds, in run order; notes name the run (1, 2, ...) they are "
      "about.\n\n| Storm | Mode | Wall | CPU | Notes |\n|---|---|---|---|---|\n";
  for (int storm : cfg_.storms)
    for (int mode = 0; mode < kModeCount; ++mode) {
      if (!have(mode, storm)) continue;
      std::string wall, cpu, notes;
      const auto& runs = samples_[mode][storm];
      for (size_t i = 0; i < runs.size(); ++i) {
        const Sample& s = runs[i];
        wall += fmt("%s%.3f", i ? ", " : "", s.seconds);
        cpu += fmt("%s%.3f", i ? ", " : "", s.storm_cpu);
        for (int k = 0; k < kKindCount; ++k)
          if (s.lost.v[k])
            notes += fmt("%s%zu: %s %s events lost", notes.empty() ? "" : "; ", i + 1,
                         grouped(s.lost.v[k]).c_str(),
                         std::string(kind_name(static_cast<Kind>(k))).c_str());
        if (s.foreign_links)
          notes +=
              fmt("%s%zu: %d foreign BPF links", notes.empty() ? "" : "; ", i + 1, s.foreign_links);
      }
      if (!runs.empty() && !runs[0].fallback.empty())
        notes += (notes.empty() ? "fell back: " : "; fell back: ") + runs[0].fallback;
      md += std::string("| ") + kStormNames[storm] + " | " + kModeNames[mode] + " | " + wall +
            " | " + cpu + " | " + notes + " |\n";
    }
  return md;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{
      "engine_bench: wall time of exec/fork/open/uring/connect storms with and without Vigil"};
  app.add_option("--repeat", cfg.repeat, "runs per storm and mode; the median is reported")
      ->check(CLI::Range(1, 100));
  app.add_option("--exec", cfg.count[kExec], "execs of /bin/true in the exec storm")
      ->check(CLI::Range(1L, 1000000000L));
  app.add_option("--fork", cfg.count[kFork], "forks in the fork storm")
      ->check(CLI::Range(1L, 1000000000L));
  app.add_option("--open", cfg.count[kOpen], "opens in the open storm")
      ->check(CLI::Range(1L, 1000000000L));
  app.add_option("--uring", cfg.count[kUring], "io_uring opens in the uring storm")
      ->check(CLI::Range(1L, 1000000000L));
  app.add_option("--connect", cfg.count[kConnect], "connects in the connect storm")
      ->check(CLI::Range(1L, 1000000000L));
  app.add_option("--storm", cfg.storm, "the storm program (bench/storm.c)");
  app.add_option("--markdown", cfg.markdown, "also write the report to this file");
  app.add_option("--disk-ring-pages", cfg.disk_ring_pages,
                 "disk ring size in pages (default: the engine's)");
  app.add_option("--failed-execs", cfg.failed_execs,
                 "record failed execs (attaches the execve exit hooks; default: the engine's)");
  std::vector<std::string> storms, modes;
  app.add_option("--storms", storms, "the storms to run (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(std::vector<std::string>(kStormNames, kStormNames + kStormCount)));
  app.add_option("--modes", modes, "the modes to run besides bare (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(std::vector<std::string>(kModeNames, kModeNames + kModeCount)));
  app.add_option("--before", cfg.before,
                 "an earlier report (its Wall time table) to show beside this run's ratios");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is not an error
  }
  auto index_of = [](const char* const* names, int n, const std::string& name) {
    return int(std::find(names, names + n, name) - names);
  };
  if (!storms.empty()) {
    cfg.storms.clear();
    for (const auto& name : storms) cfg.storms.insert(index_of(kStormNames, kStormCount, name));
  }
  if (!modes.empty()) {
    cfg.modes = {kBare};  // every ratio is to bare
    for (const auto& name : modes) cfg.modes.insert(index_of(kModeNames, kModeCount, name));
  }
  Before before;
  if (!cfg.before.empty()) {
    auto read = read_before(cfg.before);
    if (!read) {
      std::fprintf(stderr, "engine_bench: %s\n", read.error().message.c_str());
      return 2;
    }
    before = std::move(read.value());
  }
  for (int i = 0; i < argc; ++i) cfg.command_line += (i ? " " : "") + std::string(argv[i]);

  if (geteuid() != 0) {
    std::fprintf(stderr, "engine_bench: needs root (it loads BPF programs and makes cgroups)\n");
    return 1;
  }
  if (access(cfg.storm.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "engine_bench: cannot run the storm program %s: %s\n", cfg.storm.c_str(),
                 strerror(errno));
    return 1;
  }
  log::set_level(log::Level::error);  // lost events are reported in the table, not per session
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The file of the open storm: the driver's own, removed at the end.
  char open_target[] = "/tmp/vigil-bench-open-XXXXXX";
  int fd = mkstemp(open_target);
  if (fd < 0) {
    std::perror("engine_bench: mkstemp");
    return 1;
  }
  close(fd);
  struct Unlink {
    const char* path;
    ~Unlink() { unlink(path); }
  } unlink_target{open_target};

  // The seal is built before any fork (the child only installs it).
  (void)seal::for_session(true);

  auto listener = LoopbackListener::start();
  if (!listener) {
    std::fprintf(stderr, "engine_bench: %s\n", listener.error().message.c_str());
    return 1;
  }

  std::string started = utc_now(), load_before = load_average();
  Bench bench(cfg, std::move(before), open_target, (*listener)->port());
  auto result = bench.run();
  if (!result) {
    std::fprintf(stderr, "engine_bench: the benchmark broke: %s\n", result.error().message.c_str());
    return 1;
  }
  std::string md = bench.report(started, load_before);
  std::fwrite(md.data(), 1, md.size(), stdout);
  if (!cfg.markdown.empty()) {
    std::string tmp = cfg.markdown + ".tmp";
    std::ofstream out(tmp);
    out << md;
    out.close();
    if (!out || rename(tmp.c_str(), cfg.markdown.c_str()) != 0) {
      std::fprintf(stderr, "engine_bench: cannot write %s\n", cfg.markdown.c_str());
      return 1;
    }
  }
  return 0;
}
