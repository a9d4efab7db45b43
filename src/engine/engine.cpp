#include "engine/engine.hpp"
#include "common/clock.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/membarrier.h>
#include <linux/types.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <span>

#include "common/log.hpp"
#include "engine/cgroup.hpp"
#include "engine/decode.hpp"
#include "engine/host.hpp"
#include "engine/probe.hpp"

extern "C" {
#include "vigil_events.h"
}

namespace vigil {
namespace {

constexpr const char* kLockRoot = "/run/vigil/sessions";

// How long an event waits for older events of other kinds still in flight.
constexpr uint64_t kReorderWindowNs = 2'000'000;


constexpr uint32_t round_up_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

// The most a command record takes in the ring: the record and its header.
constexpr uint32_t kMaxCommandRecordBytes = sizeof(vigil_exec_record) + 8;

std::string join_path(const std::string& a, const std::string& b) {
  std::string out = a;
  while (!out.empty() && out.back() == '/') out.pop_back();
  size_t i = 0;
  while (i < b.size() && b[i] == '/') ++i;
  return out + "/" + b.substr(i);
}

// Waits until every BPF program that may have read the old session maps has
// finished: they run inside RCU read-side sections, and this is a grace period.
void wait_for_inflight_programs() {
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0) return;
  // nohz_full hosts refuse MEMBARRIER_CMD_GLOBAL; a map-in-map-free kernel
  // path that also waits for a grace period is freeing a map.
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "vigil_rcu", 4, 4, 1, nullptr);
  if (fd >= 0) close(fd);
}

// The guard process (see Engine::start_guard). Async-signal-safe only: it
// is forked from a process that may have other threads.
constexpr char kGuardQuit = 'q';

size_t c_len(const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  return n;
}

// dst = a + "/" + b + c, cut to fit.
void c_join(char* dst, size_t cap, const char* a, const char* b, const char* c) {
  size_t n = 0;
  for (const char* part : {a, "/", b, c})
    for (size_t i = 0; part[i] && n + 1 < cap; ++i) dst[n++] = part[i];
  dst[n] = 0;
}

[[noreturn]] void guard_main(int pipe_fd, pid_t owner, const char* root_dir, const char* lock_dir) {
  // Nothing of the owner's may stay open here: a listening socket or a pipe
  // held by the guard would outlive the owner.
  if (pipe_fd != 3) {
    dup2(pipe_fd, 3);
    pipe_fd = 3;
  }
  syscall(SYS_close_range, 4u, ~0u, 0u);
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd <= 2; ++fd) dup2(null_fd, fd);
  if (null_fd > 3) close(null_fd);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP}) signal(sig, SIG_IGN);
  prctl(PR_SET_NAME, "vigil-guard", 0, 0, 0);
  char c = 0;
  ssize_t n;
  while ((n = read(pipe_fd, &c, 1)) < 0 && errno == EINTR) {
  }
  if (n == 1 && c == kGuardQuit) _exit(0);  // the owner closed its sessions itself
  // The owner died. Its session locks are free once all its files are
  // closed, which is done before it is reaped: wait for that (bounded).
  for (int i = 0; i < 5000 && getppid() == owner; ++i) usleep(1000);
  int dir = open(root_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) _exit(1);
  alignas(8) char buf[4096];
  long got;
  while ((got = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
    for (long off = 0; off < got;) {
      struct Dirent64 {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      auto* e = reinterpret_cast<Dirent64*>(buf + off);
      off += e->reclen;
      if (e->type != DT_DIR || e->name[0] == '.' || c_len(e->name) > 200) continue;
      char path[4608];
      c_join(path, sizeof(path), lock_dir, e->name, ".lock");
      int lock = open(path, O_RDWR | O_CLOEXEC);
      if (lock < 0) continue;
      // A live engine (another instance sharing the root) holds its lock.
      if (flock(lock, LOCK_EX | LOCK_NB) == 0) {
        c_join(path, sizeof(path), root_dir, e->name, "/cgroup.kill");
        int kill_fd = open(path, O_WRONLY | O_CLOEXEC);
        if (kill_fd >= 0) {
          (void)!write(kill_fd, "1", 1);
          close(kill_fd);
        }
      }
      close(lock);
    }
  }
  _exit(0);
}

bool valid_session_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace

// The smallest power of two of pages that holds the largest record.
static_assert(kMinCommandRingPages * 4096u >= kMaxCommandRecordBytes &&
              kMinCommandRingPages * 4096u / 2 < kMaxCommandRecordBytes);

Result<RingPages> ring_pages_in_use(const std::array<uint32_t, kKindCount>& requested) {
  RingPages out;
  for (int k = 0; k < kKindCount; ++k) {
    uint32_t pages = requested[k];
    if (pages == 0 || pages > 65536)
      return Error::of(Errc::invalid_argument,
                       "ring buffer of " + std::to_string(pages) + " pages for " +
                           std::string(kind_name(static_cast<Kind>(k))) +
                           " events: use 1 to 65536 pages");
    out.pages[k] = round_up_pow2(pages);
    if (static_cast<Kind>(k) == Kind::command && out.pages[k] < kMinCommandRingPages) {
      out.pages[k] = kMinCommandRingPages;
      out.raised[k] = true;
    }
  }
  return out;
}

Result<void> Session::bind_audit_session(uint32_t audit_session) {
  if (audit_session == 0 || audit_session == UINT32_MAX)
    return Error{"audit session id " + std::to_string(audit_session) + " is not a real session"};
  std::lock_guard lock(engine_->mu_);
  if (state_ == State::closing || state_ == State::closed)
    return Error{"session " + id_ + " is closed"};
  if (bpf_map_update_elem(engine_->probe_->audit_sessions_fd(), &audit_session, &slot_, BPF_ANY))
    return Error::sys("cannot register audit session " + std::to_string(audit_session));
  audit_sessions_.push_back(audit_session);
  return {};
}

Result<void> Session::mark_process(pid_t pid) {
  std::lock_guard lock(engine_->mu_);
  if (state_ == State::closing || state_ == State::closed)
    return Error{"session " + id_ + " is closed"};
  Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return Error::sys("cannot open a pidfd for process " + std::to_string(pid));
  vigil_session_mark mark{slot_, generation_};
  int key = pidfd.get();
  if (bpf_map_update_elem(engine_->probe_->session_marks_fd(), &key, &mark, BPF_ANY))
    return Error::sys("cannot mark process " + std::to_string(pid) + " for session " + id_);
  return {};
}

Result<std::unique_ptr<Engine>> Engine::start(const EngineOptions& options) {
  std::unique_ptr<Engine> engine(new Engine());
  engine->options_ = options;
  if (auto r = engine->setup(); !r) return r.error();
  return engine;
}

Result<void> Engine::setup() {
  // Said first and plainly: everything below needs it.
  if (auto r = host::require_bpf_privileges(); !r) return r.error();
  auto mounted = cgroup::ensure_mounted(options_.cgroup_path);
  if (!mounted) return mounted.error();
  if (*mounted) log::info("mounted cgroup2 at " + options_.cgroup_path);
  root_dir_ = join_path(options_.cgroup_path, options_.root_path);
  if (auto r = cgroup::make_dirs(root_dir_); !r) return r.error();
  lock_dir_ = join_path(kLockRoot, root_dir_);
  if (auto r = cgroup::make_dirs(lock_dir_); !r) return r.error();

  ProbeOptions probe_options;
  probe_options.failed_execs = options_.failed_execs;
  probe_options.cgroup_root = options_.cgroup_path;
  probe_options.kpath_plain_loads = options_.kernel_path_plain_loads;
  probe_options.session_cgroup_level = cgroup::level_below(options_.cgroup_path, root_dir_) + 1;
  auto rings = ring_pages_in_use(options_.ring_pages);
  if (!rings) return rings.error();
  ring_pages_ = rings->pages;
  for (int k = 0; k < kKindCount; ++k) {
    probe_options.ring_bytes[k] = rings->pages[k] * 4096u;
    if (rings->raised[k])
      log::warn("the " + std::string(kind_name(static_cast<Kind>(k))) + " ring of " +
                std::to_string(options_.ring_pages[k]) +
                " pages cannot hold one command of the largest size (" +
                std::to_string(kMaxCommandRecordBytes) + " bytes: 64 KiB of argv and two "
                "4 KiB paths); using " + std::to_string(rings->pages[k]) +
                " pages (command_buffer_size)");
  }
  if (options_.max_sessions == 0 || options_.max_sessions > VIGIL_MAX_SESSIONS - 1)
    return Error{"max_sessions " + std::to_string(options_.max_sessions) + ": use 1 to " +
                 std::to_string(VIGIL_MAX_SESSIONS - 1)};
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Error{"cannot count the possible CPUs", -cpus};
  cpus_ = static_cast<size_t>(cpus);
  auto probe = Probe::load(probe_options);
  if (!probe) return probe.error();
  probe_ = std::move(probe.value());
  sessions_.resize(VIGIL_MAX_SESSIONS);
  cleanup_stale_sessions();
  if (auto r = start_guard(); !r) return r.error();
  inotify_.reset(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  reaper_wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!inotify_ || !reaper_wake_) return Error::sys("cannot create the reaper's inotify/eventfd");

  rings_ = ring_buffer__new(probe_->ring_fd(Kind::command), ring_callback, this, nullptr);
  if (!rings_) return Error::sys("cannot set up the command ring buffer");
  for (Kind k : {Kind::disk, Kind::network})
    if (ring_buffer__add(rings_, probe_->ring_fd(k), ring_callback, this))
      return Error::sys("cannot set up the " + std::string(kind_name(k)) + " ring buffer");

  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epoll_ || !wake_) return Error::sys("cannot create the reader's epoll/eventfd");
  for (int fd : {ring_buffer__epoll_fd(rings_), wake_.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev)) return Error::sys("epoll_ctl");
  }
  reader_ = std::thread([this] { reader_loop(); });
  worker_ = std::thread([this] { worker_loop(); });
  detacher_ = std::thread([this] { detacher_loop(); });
  reaper_ = std::thread([this] { reaper_loop(); });
  return {};
}

// A process of its own that outlives this one by design: if this process
// dies without closing its sessions (kill -9, a crash), nothing would record
// what they still run, so the guard kills them. Sessions are found as the
// stale-session cleanup finds them: a session directory whose lock is free.
Result<void> Engine::start_guard() {
  int p[2];
  if (pipe2(p, O_CLOEXEC)) return Error::sys("cannot create the guard's pipe");
  Fd read_end(p[0]), write_end(p[1]);
  std::string root = root_dir_, locks = lock_dir_;  // no allocation after fork
  pid_t owner = getpid();
  pid_t pid = fork();
  if (pid < 0) return Error::sys("cannot start the guard process");
  if (pid == 0) guard_main(read_end.get(), owner, root.c_str(), locks.c_str());
  guard_pid_ = pid;
  guard_pipe_ = std::move(write_end);
  return {};
}

Engine::~Engine() {
  if (reaper_.joinable()) {
    {
      std::lock_guard lock(mu_);
      reaper_stop_ = true;
    }
    uint64_t one = 1;
    (void)!write(reaper_wake_.get(), &one, sizeof(one));
    reaper_.join();
  }
  // What still runs (sessions not closed, leftovers still recorded) cannot
  // be recorded once this engine is gone: it is killed, and lingering
  // sessions get their on_finished.
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(mu_);
    for (auto& s : sessions_)
      if (s) open.push_back(s);
  }
  for (auto& s : open) {
    if (auto r = close_session(*s); !r)
      log::warn("closing session " + s->id() + " at shutdown: " + r.error().message);
  }
  if (guard_pid_ > 0) {
    char quit = kGuardQuit;
    (void)!write(guard_pipe_.get(), &quit, 1);
    guard_pipe_.reset();
    while (waitpid(guard_pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (detacher_.joinable()) {
    {
      std::lock_guard lock(attach_mu_);
      detacher_stop_ = true;
    }
    attach_cv_.notify_all();
    detacher_.join();
  }
  if (reader_.joinable()) {
    {
      std::lock_guard lock(drain_mu_);
      stop_ = true;
    }
    uint64_t one = 1;
    (void)!write(wake_.get(), &one, sizeof(one));
    reader_.join();
  }
  if (worker_.joinable()) {
    {
      std::lock_guard lock(queue_mu_);
      worker_stop_ = true;
    }
    queue_cv_.notify_one();
    worker_.join();
  }
  if (rings_) ring_buffer__free(rings_);
  // Left when empty only: another instance may share them.
  if (!lock_dir_.empty()) rmdir(lock_dir_.c_str());
  if (!root_dir_.empty()) rmdir(root_dir_.c_str());
}

bool Engine::has_audit_session() const { return probe_->has_audit_session(); }

bool Engine::kernel_path_plain_loads() const { return probe_->kpath_plain_loads(); }

bool Engine::attached(Kind kind) const {
  std::lock_guard lock(attach_mu_);
  return probe_->attached(kind);
}

uint64_t Engine::ring_used_bytes(Kind kind) const {
  // A BPF ring buffer map's first page is the consumer position, its
  // second the producer's; read-only mappings of them change nothing.
  const long page = sysconf(_SC_PAGESIZE);
  const int fd = probe_->ring_fd(kind);
  void* consumer = mmap(nullptr, static_cast<size_t>(page), PROT_READ, MAP_SHARED, fd, 0);
  if (consumer == MAP_FAILED) return 0;
  void* producer = mmap(nullptr, static_cast<size_t>(page), PROT_READ, MAP_SHARED, fd, page);
  uint64_t used = 0;
  if (producer != MAP_FAILED) {
    uint64_t c = __atomic_load_n(static_cast<const uint64_t*>(consumer), __ATOMIC_ACQUIRE);
    uint64_t p = __atomic_load_n(static_cast<const uint64_t*>(producer), __ATOMIC_ACQUIRE);
    used = p > c ? p - c : 0;
    munmap(producer, static_cast<size_t>(page));
  }
  munmap(consumer, static_cast<size_t>(page));
  return used;
}

Engine::Queued Engine::queued() {
  std::lock_guard lock(queue_mu_);
  return {inbox_.bytes.size(), inbox_.items.size()};
}

bool Engine::marks_attached() const {
  std::lock_guard lock(attach_mu_);
  return probe_->marks_attached();
}

void Engine::settle() {
  std::unique_lock lock(attach_mu_);
  attach_cv_.wait(lock, [&] { return !detach_pending_; });
}

void Engine::detacher_loop() {
  std::unique_lock lock(attach_mu_);
  for (;;) {
    attach_cv_.wait(lock, [&] { return detach_pending_ || detacher_stop_; });
    if (detacher_stop_) return;
    KindSet idle;
    for (int k = 0; k < kKindCount; ++k)
      if (kind_users_[k] == 0 && probe_->attached(static_cast<Kind>(k))) idle.add(static_cast<Kind>(k));
    // Held while detaching: a session opening meanwhile waits, then attaches anew.
    probe_->detach(idle);
    if (mark_users_ == 0) probe_->detach_marks();
    detach_pending_ = false;
    attach_cv_.notify_all();
  }
}

void Engine::cleanup_stale_sessions() {
  // A session directory whose lock nobody holds belongs to a run that died:
  // kill what still runs there (the dead run's guard normally did) and
  // remove it, so nothing runs on unrecorded and nothing leaks across runs.
  DIR* dir = opendir(root_dir_.c_str());
  if (!dir) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(dir))
    if (e->d_type == DT_DIR && e->d_name[0] != '.') names.emplace_back(e->d_name);
  closedir(dir);
  for (const auto& name : names) {
    std::string lock_path = join_path(lock_dir_, name + ".lock");
    Fd lock(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock || flock(lock.get(), LOCK_EX | LOCK_NB) != 0) continue;  // alive
    std::string dir_path = join_path(root_dir_, name);
    auto killed = cgroup::kill_all(dir_path);
    if (!killed) log::warn("stale session cgroup: " + killed.error().message);
    if (auto r = cgroup::remove(dir_path); !r) {
      log::warn("stale session cgroup: " + r.error().message);
      continue;
    }
    unlink(lock_path.c_str());
    log::info("removed stale session cgroup " + dir_path +
              (killed && *killed ? " (" + std::to_string(*killed) + " processes killed)" : ""));
  }
}

Result<uint32_t> Engine::alloc_slot() {
  // Round robin: a slot is reused as late as possible.
  for (uint32_t i = 0; i < options_.max_sessions; ++i) {
    uint32_t slot = next_slot_;
    next_slot_ = next_slot_ + 1 > options_.max_sessions ? 1 : next_slot_ + 1;
    if (!sessions_[slot]) return slot;
  }
  return Error{"too many live sessions (" + std::to_string(options_.max_sessions) +
               "): close some first"};
}

Result<void> Engine::retain(KindSet kinds) {
  std::lock_guard lock(attach_mu_);
  // Marks first: the session's first process must not fork unmarked.
  if (auto r = probe_->attach_marks(); !r) return r.error();  // no-op when attached
  ++mark_users_;
  for (int k = 0; k < kKindCount; ++k) {
    Kind kind = static_cast<Kind>(k);
    if (!kinds.has(kind)) continue;
    if (auto r = probe_->attach(kind); !r) {  // no-op when attached
      for (int j = 0; j < k; ++j)
        if (kinds.has(static_cast<Kind>(j))) --kind_users_[j];
      --mark_users_;
      detach_pending_ = true;
      attach_cv_.notify_all();
      return r.error();
    }
    ++kind_users_[k];
  }
  return {};
}

void Engine::release(KindSet kinds) {
  std::lock_guard lock(attach_mu_);
  if (--mark_users_ == 0) detach_pending_ = true;
  for (int k = 0; k < kKindCount; ++k) {
    if (!kinds.has(static_cast<Kind>(k))) continue;
    if (--kind_users_[k] == 0) detach_pending_ = true;
  }
  attach_cv_.notify_all();
}

Result<std::shared_ptr<Session>> Engine::open_session(const SessionSpec& spec, EventSink sink,
                                                      std::function<void()> on_batch) {
  if (!valid_session_id(spec.id))
    return Error{"session id '" + spec.id +
                 "' must be 1-128 letters, digits, '-', '_' or '.' (it names a cgroup)"};
  if (spec.kinds.empty()) return Error{"a session must record at least one event kind"};
  auto s = std::shared_ptr<Session>(new Session());
  s->engine_ = this;
  s->id_ = spec.id;
  s->kinds_ = spec.kinds;
  s->sink_ = std::move(sink);
  s->on_batch_ = std::move(on_batch);
  s->cgroup_dir_ = join_path(root_dir_, spec.id);

  std::string lock_path = join_path(lock_dir_, spec.id + ".lock");
  s->lock_.reset(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!s->lock_ || flock(s->lock_.get(), LOCK_EX | LOCK_NB) != 0)
    return Error{"session " + spec.id + " is already open (lock " + lock_path + ")"};
  if (mkdir(s->cgroup_dir_.c_str(), 0755) != 0)
    return Error::sys("cannot create session cgroup " + s->cgroup_dir_ +
                      (errno == EEXIST ? " (a session with this id exists)" : ""));
  auto fail = [&](Error e) -> Result<std::shared_ptr<Session>> {
    (void)cgroup::remove(s->cgroup_dir_);
    unlink(lock_path.c_str());
    return e;
  };
  auto id = cgroup::id_of(s->cgroup_dir_);
  if (!id) return fail(id.error());
  s->cgroup_id_ = *id;

  if (auto r = retain(spec.kinds); !r) return fail(r.error());
  std::lock_guard lock(mu_);
  auto slot = alloc_slot();
  if (!slot) {
    release(spec.kinds);
    return fail(slot.error());
  }
  s->slot_ = *slot;
  s->generation_ = next_generation_;
  next_generation_ = next_generation_ == UINT32_MAX ? 1 : next_generation_ + 1;
  // Counters from zero before the slot is live (the last session that held
  // it was unregistered and waited out in finish()).
  std::vector<std::byte> zeros(decode::per_cpu_counters_size(cpus_));
  vigil_session_state state{};
  state.kinds = spec.kinds.bits();
  state.generation = s->generation_;
  state.slot = s->slot_;
  if (bpf_map_update_elem(probe_->session_counters_fd(), &s->slot_, zeros.data(), BPF_ANY) ||
      bpf_map_update_elem(probe_->sessions_fd(), &s->slot_, &state, BPF_ANY) ||
      bpf_map_update_elem(probe_->session_cgroups_fd(), &s->cgroup_id_, &s->slot_, BPF_ANY)) {
    Error e = Error::sys("cannot register session " + spec.id + " with the kernel");
    release(spec.kinds);
    return fail(e);
  }
  sessions_[s->slot_] = s;
  ++live_sessions_;
  uint64_t one = 1;  // the reader switches from waiting to polling
  (void)!write(wake_.get(), &one, sizeof(one));
  return s;
}

Result<Session::State> Engine::begin_closing(Session& s) {
  std::lock_guard lock(mu_);
  if (s.engine_ != this || (s.state_ != Session::State::open && s.state_ != Session::State::lingering))
    return Error{"session " + s.id_ + " is not open"};
  Session::State was = s.state_;
  s.state_ = Session::State::closing;
  if (s.watch_ >= 0) {
    inotify_rm_watch(inotify_.get(), s.watch_);
    s.watch_ = -1;
  }
  return was;
}

Result<SessionSummary> Engine::end_session(Session& s, FinishedSink on_finished) {
  {
    std::lock_guard lock(mu_);
    if (s.engine_ != this || s.state_ != Session::State::open)
      return Error{"session " + s.id_ + " is not open"};
  }
  auto busy = cgroup::populated(s.cgroup_dir_);
  if (!busy) log::warn("session " + s.id_ + ": " + busy.error().message);
  // What is left: the cgroup's processes and those carrying the session's
  // mark that moved out of it (a process in both counts once).
  std::vector<pid_t> in_cgroup = busy && *busy ? cgroup::procs(s.cgroup_dir_) : std::vector<pid_t>{};
  std::vector<pid_t> marked = marked_processes(s, false);
  size_t left = in_cgroup.size();
  for (pid_t p : marked)
    if (std::find(in_cgroup.begin(), in_cgroup.end(), p) == in_cgroup.end()) ++left;
  if (busy && *busy) left = std::max<size_t>(left, 1);
  if (!marked.empty() || marked_alive(s)) left = std::max<size_t>(left, 1);
  if (left == 0 || options_.leftovers == LeftoverPolicy::kill || !busy) {
    if (auto r = begin_closing(s); !r) return r.error();
    size_t killed = 0;
    if (left) {
      auto k = cgroup::kill_all(s.cgroup_dir_);
      if (!k) log::warn("session " + s.id_ + ": " + k.error().message);
      size_t outside = kill_marked(s);
      killed = std::max((k ? *k : 0) + outside, left);
    }
    SessionSummary summary = finish(s);
    summary.leftover_processes = killed;
    summary.leftovers = killed ? SessionSummary::Leftovers::killed : SessionSummary::Leftovers::none;
    return summary;
  }
  // Leftovers stay recorded. What the session did so far is delivered and
  // counted; the rest follows in on_finished.
  drain();
  SessionSummary summary;
  decode::SessionCounters counters = kernel_counters(s);
  {
    std::lock_guard lock(mu_);
    for (int k = 0; k < kKindCount; ++k) {
      summary.recorded.v[k] = s.delivered_[k].load(std::memory_order_relaxed);
      summary.lost.v[k] = counters.lost.v[k] + s.user_lost_[k].load(std::memory_order_relaxed);
    }
    s.state_ = Session::State::lingering;
    s.leftover_processes_ = left;
    s.on_finished_ = std::move(on_finished);
    // A modification of cgroup.events is how the kernel says "populated" changed.
    s.watch_ = inotify_add_watch(inotify_.get(), (s.cgroup_dir_ + "/cgroup.events").c_str(),
                                 IN_MODIFY);
    if (s.watch_ < 0) log::warn("session " + s.id_ + ": cannot watch cgroup.events; checking it by polling");
  }
  uint64_t one = 1;  // the reaper checks at once: the last one may be gone already
  (void)!write(reaper_wake_.get(), &one, sizeof(one));
  summary.leftover_processes = left;
  summary.leftovers = SessionSummary::Leftovers::running;
  return summary;
}

Result<SessionSummary> Engine::close_session(Session& s) {
  auto was = begin_closing(s);
  if (!was) return was.error();
  auto killed = cgroup::kill_all(s.cgroup_dir_);
  if (!killed) log::warn("session " + s.id_ + ": " + killed.error().message);
  size_t outside = kill_marked(s);
  SessionSummary summary = finish(s);
  if (*was == Session::State::lingering) {
    summary.leftover_processes = s.leftover_processes_;
    summary.leftovers = SessionSummary::Leftovers::killed;
    if (auto done = std::move(s.on_finished_)) done(summary);
  } else {
    summary.leftover_processes = (killed ? *killed : 0) + outside;
    summary.leftovers = summary.leftover_processes ? SessionSummary::Leftovers::killed
                                                   : SessionSummary::Leftovers::none;
  }
  return summary;
}

void Engine::reaper_loop() {
  pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {reaper_wake_.get(), POLLIN, 0}};
  alignas(inotify_event) char buf[4096];
  for (;;) {
    bool lingering = false;
    {
      std::lock_guard lock(mu_);
      if (reaper_stop_) return;
      for (auto& s : sessions_)
        if (s && s->state_ == Session::State::lingering) lingering = true;
    }
    // Polled as well as watched: a watch that could not be added, or an
    // event lost to a full inotify queue, delays the end by a second at most.
    int n = poll(fds, 2, lingering ? 1000 : -1);
    if (n < 0 && errno != EINTR) {
      log::error("the engine's reaper: poll: " + std::string(strerror(errno)));
      return;
    }
    while (read(inotify_.get(), buf, sizeof(buf)) > 0) {
    }
    uint64_t v;
    (void)!read(reaper_wake_.get(), &v, sizeof(v));

    std::vector<std::shared_ptr<Session>> candidates;
    {
      std::lock_guard lock(mu_);
      if (reaper_stop_) return;
      for (auto& s : sessions_)
        if (s && s->state_ == Session::State::lingering) candidates.push_back(s);
    }
    for (auto& s : candidates) {
      auto busy = cgroup::populated(s->cgroup_dir_);
      if (busy && *busy) continue;
      // Processes that left the cgroup but carry the mark keep it open.
      if (marked_alive(*s)) continue;
      if (!begin_closing(*s)) continue;  // closed meanwhile
      SessionSummary summary = finish(*s);
      summary.leftover_processes = s->leftover_processes_;
      summary.leftovers = SessionSummary::Leftovers::exited;
      if (auto done = std::move(s->on_finished_)) done(summary);
    }
  }
}

SessionSummary Engine::finish(Session& s) {
  SessionSummary summary;
  {
    std::lock_guard lock(mu_);
    // Generation 0 first: the session's marks stop matching at once.
    vigil_session_state cleared{};
    bpf_map_update_elem(probe_->sessions_fd(), &s.slot_, &cleared, BPF_ANY);
    bpf_map_delete_elem(probe_->session_cgroups_fd(), &s.cgroup_id_);
    for (uint32_t ses : s.audit_sessions_) bpf_map_delete_elem(probe_->audit_sessions_fd(), &ses);
  }
  wait_for_inflight_programs();
  drain();

  // Nothing counts into the slot any more: the programs that could have
  // are past the grace period.
  decode::SessionCounters counters = kernel_counters(s);
  if (counters.unmarked_forks)
    log::warn("session " + s.id_ + ": " + std::to_string(counters.unmarked_forks) +
              " tasks could not be marked (task storage full)");
  {
    std::lock_guard lock(mu_);
    s.state_ = Session::State::closed;
    sessions_[s.slot_].reset();
    --live_sessions_;
  }
  release(s.kinds_);
  for (int k = 0; k < kKindCount; ++k) {
    uint64_t delivered = s.delivered_[k].load(std::memory_order_relaxed);
    uint64_t user_lost = s.user_lost_[k].load(std::memory_order_relaxed);
    summary.recorded.v[k] = delivered;
    // Whatever the kernel handed over but did not arrive whole is lost too.
    uint64_t emitted = counters.emitted.v[k];
    uint64_t undelivered = emitted > delivered ? emitted - delivered : 0;
    summary.lost.v[k] = counters.lost.v[k] + std::max(undelivered, user_lost);
    if (summary.lost.v[k])
      log::warn("session " + s.id_ + ": " + std::to_string(summary.lost.v[k]) + " " +
                std::string(kind_name(static_cast<Kind>(k))) + " events lost");
  }
  if (auto r = cgroup::remove(s.cgroup_dir_); !r) log::warn(r.error().message);
  unlink(join_path(lock_dir_, s.id_ + ".lock").c_str());
  s.lock_.reset();
  return summary;
}

decode::SessionCounters Engine::kernel_counters(const Session& s) const {
  std::vector<std::byte> per_cpu(decode::per_cpu_counters_size(cpus_));
  uint32_t slot = s.slot_;
  if (bpf_map_lookup_elem(probe_->session_counters_fd(), &slot, per_cpu.data())) {
    log::warn("session " + s.id_ + ": cannot read its kernel counters: " + strerror(errno));
    return {};
  }
  return decode::sum_counters(per_cpu, cpus_);
}

namespace {

// Whether process `pid` still runs: not a zombie, or a zombie leader whose
// other threads run on.
bool process_runs(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  Fd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[512];
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0) return false;
  buf[n] = 0;
  const char* close_paren = strrchr(buf, ')');  // comm may hold anything, ')' included
  if (!close_paren || close_paren[1] != ' ') return false;
  char state = close_paren[2];
  if (state != 'Z' && state != 'X') return true;
  snprintf(path, sizeof(path), "/proc/%d/task", pid);
  DIR* tasks = opendir(path);
  if (!tasks) return false;
  size_t count = 0;
  while (dirent* e = readdir(tasks))
    if (e->d_name[0] != '.') ++count;
  closedir(tasks);
  return count > 1;
}

}  // namespace

std::vector<pid_t> Engine::marked_processes(const Session& s, bool kill) const {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (!proc) {
    log::warn("session " + s.id_ + ": cannot list /proc: " + strerror(errno));
    return out;
  }
  pid_t self = getpid();
  int marks = probe_->session_marks_fd();
  while (dirent* e = readdir(proc)) {
    char* end = nullptr;
    long pid = strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end || pid == self) continue;
    Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0)));
    if (!pidfd) continue;  // gone
    vigil_session_mark mark{};
    int key = pidfd.get();
    if (bpf_map_lookup_elem(marks, &key, &mark)) continue;  // no mark
    if (mark.slot != s.slot_ || mark.generation != s.generation_) continue;
    if (!process_runs(static_cast<pid_t>(pid))) continue;
    out.push_back(static_cast<pid_t>(pid));
    if (kill) syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
  }
  closedir(proc);
  return out;
}

bool Engine::marked_alive(const Session& s) const {
  // A process could fork and exit behind the scan (the child with a pid
  // the scan had passed); then the session's marked fork count moved.
  for (int attempt = 0; attempt < 8; ++attempt) {
    uint64_t before = kernel_counters(s).marked_forks;
    if (!marked_processes(s, false).empty()) return true;
    if (kernel_counters(s).marked_forks == before) return false;
  }
  return true;  // forks all along: something runs
}

size_t Engine::kill_marked(const Session& s) const {
  std::vector<pid_t> signalled;
  for (int round = 0; round < 64; ++round) {
    uint64_t before = kernel_counters(s).marked_forks;
    auto found = marked_processes(s, true);
    for (pid_t p : found)
      if (std::find(signalled.begin(), signalled.end(), p) == signalled.end()) signalled.push_back(p);
    if (found.empty() && kernel_counters(s).marked_forks == before) break;
    if (!found.empty()) usleep(1000);  // let SIGKILL land before the next scan
  }
  return signalled.size();
}

std::string Engine::session_of_process(pid_t pid) const {
  Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return {};
  vigil_session_mark mark{};
  int key = pidfd.get();
  if (bpf_map_lookup_elem(probe_->session_marks_fd(), &key, &mark)) return {};
  std::lock_guard lock(mu_);
  if (mark.slot == 0 || mark.slot >= sessions_.size()) return {};
  const auto& session = sessions_[mark.slot];
  if (!session || session->generation_ != mark.generation) return {};
  return session->id_;
}

void Engine::drain() {
  uint64_t ticket;
  {
    std::lock_guard lock(drain_mu_);
    ticket = ++drain_requested_;
  }
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof(one));
  std::unique_lock lock(drain_mu_);
  drained_.wait(lock, [&] { return drain_done_ >= ticket || stop_; });
}

void Engine::reader_loop() {
  // The reader only copies records out of the rings, and a ring it does not
  // empty in time loses events: it runs before any ordinary task, as the
  // lowest real-time priority (SCHED_FIFO 1; the kernel's RT throttling
  // keeps 5% of each CPU for others). A node with 1,000 sessions starting
  // programs at once (two thousand runnable tasks) left a nice-0 reader off
  // the CPU long enough to lose 10,176 opens from an 8 MiB disk ring. Where
  // real-time scheduling is not allowed, the highest ordinary priority.
  prctl(PR_SET_NAME, "vigil-reader", 0, 0, 0);
  sched_param rt{};
  rt.sched_priority = 1;
  if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &rt) != 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), -20);
    log::warn("the engine's ring reader cannot run as real-time (SCHED_FIFO refused); it runs "
              "at nice -20, and a host busy with many sessions may make it lose events (counted)");
  }
  epoll_event events[4];
  for (;;) {
    int timeout;
    {
      std::lock_guard lock(mu_);
      timeout = live_sessions_ ? options_.poll_interval_ms : -1;
    }
    int n = epoll_wait(epoll_.get(), events, 4, timeout);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == wake_.get()) {
        uint64_t v;
        (void)!read(wake_.get(), &v, sizeof(v));
      }
    }
    uint64_t target;
    bool stopping;
    {
      std::lock_guard lock(drain_mu_);
      target = drain_requested_;
      stopping = stop_;
    }
    {
      std::lock_guard lock(mu_);
      {
        // The queue's room for this pass, taken once: the worker only
        // empties the inbox meanwhile, so it never grows past the bound, and
        // the reader takes no lock per record.
        std::lock_guard queue(queue_mu_);
        size_t queued = inbox_.bytes.size();
        reading_budget_ = options_.max_queued_bytes > queued ? options_.max_queued_bytes - queued : 0;
      }
      reading_.read_boot_ns = static_cast<uint64_t>(clock::ns(CLOCK_BOOTTIME));
      int r = ring_buffer__consume(rings_);
      if (r < 0) log::error("reading the rings failed: " + std::string(strerror(-r)));
      std::lock_guard queue(queue_mu_);
      if (inbox_.items.empty()) {
        // The inbox comes back empty with its capacity (the worker recycles
        // batches it has delivered): the next pass allocates nothing.
        std::swap(inbox_, reading_);
      } else {
        inbox_.append(reading_);  // the worker is behind: one batch grows
      }
      reading_.clear();
      inbox_ticket_ = std::max(inbox_ticket_, target);
    }
    queue_cv_.notify_one();
    if (stopping) return;
  }
}

void Engine::worker_loop() {
  // The reader must win the CPU when a ring fills: it only copies, and a
  // full ring loses events, while a late worker only grows the queue.
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
  prctl(PR_SET_NAME, "vigil-worker", 0, 0, 0);
  RecordBatch batch;
  uint64_t done_ticket = 0;
  for (;;) {
    uint64_t ticket;
    bool stopping;
    order_.recycle(batch);  // an emptied batch with room goes back to the reader
    {
      std::unique_lock lock(queue_mu_);
      auto ready = [&] {
        return !inbox_.items.empty() || inbox_ticket_ > done_ticket || worker_stop_;
      };
      // Events held back for ordering are delivered when their window ends,
      // even if nothing new arrives.
      if (order_.held() == 0) queue_cv_.wait(lock, ready);
      else queue_cv_.wait_for(lock, std::chrono::nanoseconds(kReorderWindowNs), ready);
      std::swap(batch, inbox_);
      ticket = inbox_ticket_;
      stopping = worker_stop_;
    }
    decode::TimeBase time = decode::TimeBase::now();
    uint64_t watermark_boot = batch.items.empty() ? static_cast<uint64_t>(clock::ns(CLOCK_BOOTTIME))
                                                  : batch.read_boot_ns;
    order_.take(std::move(batch));
    batch = RecordBatch();
    bool flush_all = ticket > done_ticket || stopping;
    uint64_t until = watermark_boot > kReorderWindowNs ? watermark_boot - kReorderWindowNs : 0;
    deliver(flush_all ? UINT64_MAX : until, time);
    if (ticket > done_ticket) {
      done_ticket = ticket;
      {
        std::lock_guard lock(drain_mu_);
        drain_done_ = std::max(drain_done_, ticket);
      }
      drained_.notify_all();
    }
    if (stopping) return;
  }
}

int Engine::ring_callback(void* ctx, void* data, size_t size) {
  return static_cast<Engine*>(ctx)->on_record(data, size);
}

int Engine::on_record(const void* data, size_t size) {
  std::span<const std::byte> record(static_cast<const std::byte*>(data), size);
  auto head = decode::head(record);
  if (!head) {
    log::error(head.error().message);
    ++undecodable_;
    return 0;
  }
  auto& session = head->session < sessions_.size() ? sessions_[head->session] : sessions_[0];
  if (!session) {
    ++late_records_;
    return 0;
  }
  if (reading_.bytes.size() + size > reading_budget_) {
    // Counted as lost (emitted, never delivered); said once a streak.
    session->user_lost_[static_cast<int>(head->kind)].fetch_add(1, std::memory_order_relaxed);
    if (queue_dropped_++ == 0)
      log::warn("the engine's queue is full (" + std::to_string(options_.max_queued_bytes) +
                " bytes): records are being dropped and counted as lost");
    return 0;
  }
  queue_dropped_ = 0;
  reading_.add(session.get(), record);
  return 0;
}

// The worker's deliveries into sessions: counts, sink, and which sessions
// to tell that a pass ended.
class Engine::Delivery final : public RecordOrder::Handler {
 public:
  explicit Delivery(std::vector<Session*>& touched) : touched_(touched) {}

  void deliver(void* owner, const Event& event) override {
    auto* session = static_cast<Session*>(owner);
    // A command whose argv could not be read from memory is passed on but
    // counted as lost: an emitted record that is not delivered whole shows
    // as lost at close.
    bool whole = !(event.kind() == Kind::command && std::get<CommandEvent>(event.body).args_lost);
    if (whole)
      session->delivered_[static_cast<int>(event.kind())].fetch_add(1, std::memory_order_relaxed);
    session->sink_(event);
    if (!session->touched_) {
      session->touched_ = true;
      touched_.push_back(session);
    }
  }

  void undecodable(void* owner, Kind kind, const std::string& why) override {
    auto* session = static_cast<Session*>(owner);
    log::warn("session " + session->id_ + ": dropped a " + std::string(kind_name(kind)) +
              " record: " + why);
    session->user_lost_[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::vector<Session*>& touched_;
};

void Engine::deliver(uint64_t until_boot_ns, const decode::TimeBase& time) {
  // Each ring is in order; across rings, order by time. Events newer than
  // the window may still have older peers on their way, so they wait for
  // the next pass (a drain delivers everything).
  Delivery delivery(touched_);
  order_.release(until_boot_ns, time, delivery);
  for (Session* s : touched_) {
    s->touched_ = false;
    if (s->on_batch_) s->on_batch_();
  }
  touched_.clear();
}

}  // namespace vigil
