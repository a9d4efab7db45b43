#include "engine/engine.hpp"
#include "common/clock.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <linux/types.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
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


uint32_t round_up_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

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

bool valid_session_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace

Result<void> Session::bind_audit_session(uint32_t audit_session) {
  if (audit_session == 0 || audit_session == UINT32_MAX)
    return Error{"audit session id " + std::to_string(audit_session) + " is not a real session"};
  std::lock_guard lock(engine_->mu_);
  if (closed_) return Error{"session " + id_ + " is closed"};
  if (bpf_map_update_elem(engine_->probe_->audit_sessions_fd(), &audit_session, &slot_, BPF_ANY))
    return Error::sys("cannot register audit session " + std::to_string(audit_session));
  audit_sessions_.push_back(audit_session);
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
  probe_options.exec_args_entries = options_.exec_args_entries;
  probe_options.session_cgroup_level = cgroup::level_below(options_.cgroup_path, root_dir_) + 1;
  for (int k = 0; k < kKindCount; ++k) {
    uint32_t pages = options_.ring_pages[k];
    if (pages == 0 || pages > 65536)
      return Error{"ring buffer of " + std::to_string(pages) + " pages for " +
                   std::string(kind_name(static_cast<Kind>(k))) +
                   " events: use 1 to 65536 pages"};
    probe_options.ring_bytes[k] = round_up_pow2(pages) * 4096u;
  }
  auto probe = Probe::load(probe_options);
  if (!probe) return probe.error();
  probe_ = std::move(probe.value());
  sessions_.resize(VIGIL_MAX_SESSIONS);
  args_buf_.resize(sizeof(vigil_exec_args));
  cleanup_stale_sessions();

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
  return {};
}

Engine::~Engine() {
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
  // Left when empty only: another instance may share them, and leftover
  // processes may live in the root cgroup.
  if (!lock_dir_.empty()) rmdir(lock_dir_.c_str());
  if (!root_dir_.empty()) rmdir(root_dir_.c_str());
}

bool Engine::has_audit_session() const { return probe_->has_audit_session(); }

bool Engine::attached(Kind kind) const {
  std::lock_guard lock(attach_mu_);
  return probe_->attached(kind);
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
    detach_pending_ = false;
    attach_cv_.notify_all();
  }
}

void Engine::cleanup_stale_sessions() {
  // A session directory whose lock nobody holds belongs to a run that died:
  // move its processes out and remove it, so nothing leaks across runs.
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
    auto moved = cgroup::move_all(dir_path, root_dir_);
    if (auto r = cgroup::remove(dir_path); !r) {
      log::warn("stale session cgroup: " + r.error().message);
      continue;
    }
    unlink(lock_path.c_str());
    log::info("removed stale session cgroup " + dir_path +
              (moved && *moved ? " (" + std::to_string(*moved) + " processes moved out)" : ""));
  }
}

Result<uint32_t> Engine::alloc_slot() {
  // Round robin: a slot is reused as late as possible.
  for (uint32_t i = 0; i < VIGIL_MAX_SESSIONS - 1; ++i) {
    uint32_t slot = next_slot_;
    next_slot_ = next_slot_ + 1 >= VIGIL_MAX_SESSIONS ? 1 : next_slot_ + 1;
    if (!sessions_[slot]) return slot;
  }
  return Error{"too many live sessions (" + std::to_string(VIGIL_MAX_SESSIONS - 1) +
               "): close some first"};
}

Result<void> Engine::retain(KindSet kinds) {
  std::lock_guard lock(attach_mu_);
  for (int k = 0; k < kKindCount; ++k) {
    Kind kind = static_cast<Kind>(k);
    if (!kinds.has(kind)) continue;
    if (auto r = probe_->attach(kind); !r) {  // no-op when attached
      for (int j = 0; j < k; ++j)
        if (kinds.has(static_cast<Kind>(j))) --kind_users_[j];
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
  vigil_session_state state{};
  state.kinds = spec.kinds.bits();
  if (bpf_map_update_elem(probe_->sessions_fd(), &s->slot_, &state, BPF_ANY) ||
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

Result<SessionSummary> Engine::close_session(Session& s) {
  {
    std::lock_guard lock(mu_);
    if (s.closed_ || s.engine_ != this) return Error{"session " + s.id_ + " is not open"};
  }
  SessionSummary summary;
  auto moved = cgroup::move_all(s.cgroup_dir_, root_dir_);
  if (!moved) log::warn("session " + s.id_ + ": " + moved.error().message);
  summary.leftover_processes = moved ? *moved : 0;

  {
    std::lock_guard lock(mu_);
    bpf_map_delete_elem(probe_->session_cgroups_fd(), &s.cgroup_id_);
    for (uint32_t ses : s.audit_sessions_) bpf_map_delete_elem(probe_->audit_sessions_fd(), &ses);
  }
  wait_for_inflight_programs();
  drain();

  vigil_session_state state{};
  bpf_map_lookup_elem(probe_->sessions_fd(), &s.slot_, &state);
  vigil_session_state cleared{};
  bpf_map_update_elem(probe_->sessions_fd(), &s.slot_, &cleared, BPF_ANY);
  {
    std::lock_guard lock(mu_);
    s.closed_ = true;
    sessions_[s.slot_].reset();
    --live_sessions_;
  }
  release(s.kinds_);
  for (int k = 0; k < kKindCount; ++k) {
    uint64_t delivered = s.delivered_.v[k];
    summary.recorded.v[k] = delivered;
    // Whatever the kernel handed over but did not arrive whole is lost too.
    summary.lost.v[k] = state.lost[k] + (state.emitted[k] > delivered ? state.emitted[k] - delivered : 0);
    if (summary.lost.v[k])
      log::warn("session " + s.id_ + ": " + std::to_string(summary.lost.v[k]) + " " +
                std::string(kind_name(static_cast<Kind>(k))) + " events lost");
  }
  if (auto r = cgroup::remove(s.cgroup_dir_); !r) log::warn(r.error().message);
  unlink(join_path(lock_dir_, s.id_ + ".lock").c_str());
  s.lock_.reset();
  return summary;
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
      reading_.read_boot_ns = static_cast<uint64_t>(clock::ns(CLOCK_BOOTTIME));
      int r = ring_buffer__consume(rings_);
      if (r < 0) log::error("reading the rings failed: " + std::string(strerror(-r)));
      std::lock_guard queue(queue_mu_);
      if (inbox_.items.empty()) {
        std::swap(inbox_, reading_);
      } else {
        size_t base = inbox_.bytes.size();
        inbox_.bytes.insert(inbox_.bytes.end(), reading_.bytes.begin(), reading_.bytes.end());
        for (Queued q : reading_.items) {
          q.offset += base;
          if (q.args_offset != std::string::npos) q.args_offset += base;
          inbox_.items.push_back(q);
        }
        inbox_.read_boot_ns = reading_.read_boot_ns;
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
  Batch batch;
  uint64_t done_ticket = 0;
  for (;;) {
    uint64_t ticket;
    bool stopping;
    {
      std::unique_lock lock(queue_mu_);
      auto ready = [&] {
        return !inbox_.items.empty() || inbox_ticket_ > done_ticket || worker_stop_;
      };
      // Events held back for ordering are delivered when their window ends,
      // even if nothing new arrives.
      if (pending_.empty()) queue_cv_.wait(lock, ready);
      else queue_cv_.wait_for(lock, std::chrono::nanoseconds(kReorderWindowNs), ready);
      std::swap(batch, inbox_);
      ticket = inbox_ticket_;
      stopping = worker_stop_;
    }
    decode::TimeBase time = decode::TimeBase::now();
    for (const Queued& q : batch.items) {
      std::span<const std::byte> record(batch.bytes.data() + q.offset, q.size);
      auto head = decode::head(record);
      Result<Event> event = Error{""};
      switch (head->kind) {
        case Kind::command: {
          decode::ExecArgs args, *have = nullptr;
          if (q.args_offset != std::string::npos) {
            const std::byte* p = batch.bytes.data() + q.args_offset;
            uint32_t fields[3];
            std::memcpy(fields, p, sizeof(fields));
            const char* text = reinterpret_cast<const char*>(p + sizeof(fields));
            args = {fields[0], std::string_view(text, fields[1]),
                    std::string_view(text + fields[1], fields[2])};
            have = &args;
          }
          event = decode::exec(record, have, time);
          break;
        }
        case Kind::disk: event = decode::open(record, time); break;
        case Kind::network: event = decode::connect(record, time); break;
      }
      if (!event) {
        log::warn("session " + q.session->id_ + ": dropped a " +
                  std::string(kind_name(head->kind)) + " record: " + event.error().message);
        continue;  // counted as lost at close: emitted but not delivered
      }
      pending_.push_back({q.session, std::move(event.value())});
    }
    uint64_t watermark_boot = batch.items.empty() ? static_cast<uint64_t>(clock::ns(CLOCK_BOOTTIME))
                                                  : batch.read_boot_ns;
    batch.clear();
    bool flush_all = ticket > done_ticket || stopping;
    deliver(flush_all ? INT64_MAX : time.to_realtime(watermark_boot - kReorderWindowNs));
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
  // Fetch (and free) a command's argument store first, even for a session
  // that is gone: the store is small.
  const vigil_exec_args* args = nullptr;
  if (head->kind == Kind::command) {
    vigil_exec_record rec{};
    std::memcpy(&rec, data, std::min(size, sizeof(rec)));
    if (rec.args_id &&
        bpf_map_lookup_and_delete_elem(probe_->exec_args_fd(), &rec.args_id, args_buf_.data()) == 0)
      args = reinterpret_cast<const vigil_exec_args*>(args_buf_.data());
  }
  auto& session = head->session < sessions_.size() ? sessions_[head->session] : sessions_[0];
  if (!session) {
    ++late_records_;
    return 0;
  }
  decode::ExecArgs view;
  if (args) view = decode::exec_args_view(*args);
  size_t need = size + (args ? 12 + view.path.size() + view.argv.size() : 0);
  {
    std::lock_guard queue(queue_mu_);
    if (inbox_.bytes.size() + reading_.bytes.size() + need > options_.max_queued_bytes) {
      // Counted as lost at close (emitted, never delivered); said once a streak.
      if (queue_dropped_++ == 0)
        log::warn("the engine's queue is full (" + std::to_string(options_.max_queued_bytes) +
                  " bytes): records are being dropped and counted as lost");
      return 0;
    }
    queue_dropped_ = 0;
  }
  Queued q{session.get(), reading_.bytes.size(), size, std::string::npos};
  auto* bytes = static_cast<const std::byte*>(data);
  reading_.bytes.insert(reading_.bytes.end(), bytes, bytes + size);
  if (args) {
    q.args_offset = reading_.bytes.size();
    uint32_t fields[3] = {view.flags, static_cast<uint32_t>(view.path.size()),
                          static_cast<uint32_t>(view.argv.size())};
    auto* f = reinterpret_cast<const std::byte*>(fields);
    reading_.bytes.insert(reading_.bytes.end(), f, f + sizeof(fields));
    auto* p = reinterpret_cast<const std::byte*>(view.path.data());
    reading_.bytes.insert(reading_.bytes.end(), p, p + view.path.size());
    auto* a = reinterpret_cast<const std::byte*>(view.argv.data());
    reading_.bytes.insert(reading_.bytes.end(), a, a + view.argv.size());
  }
  reading_.items.push_back(q);
  return 0;
}

void Engine::deliver(int64_t until_ns) {
  // Each ring is in order; across rings, order by time. Events newer than
  // the window may still have older peers on their way, so they wait for
  // the next pass (a drain delivers everything).
  // Sorted by index, not by moving Events (strings and vectors): a storm
  // brings thousands per pass.
  order_.clear();
  for (uint32_t i = 0; i < pending_.size(); ++i) order_.push_back({pending_[i].event.time_ns, i});
  std::stable_sort(order_.begin(), order_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t n = 0;
  for (; n < order_.size() && order_[n].first <= until_ns; ++n) {
    Session* session = pending_[order_[n].second].session;
    const Event& event = pending_[order_[n].second].event;
    // A command without its arguments is passed on but counted as lost: the
    // kernel counted it so when its store was full, and an emitted record
    // that is not delivered whole shows as lost at close.
    bool whole = !(event.kind() == Kind::command && std::get<CommandEvent>(event.body).args_lost);
    if (whole) ++session->delivered_[event.kind()];
    session->sink_(event);
    if (!session->touched_) {
      session->touched_ = true;
      touched_.push_back(session);
    }
  }
  if (n == pending_.size()) {
    pending_.clear();
  } else {
    std::vector<Pending> rest;  // what waits for the next pass, in time order
    rest.reserve(pending_.size() - n);
    for (size_t k = n; k < order_.size(); ++k) rest.push_back(std::move(pending_[order_[k].second]));
    pending_.swap(rest);
  }
  for (Session* s : touched_) {
    s->touched_ = false;
    if (s->on_batch_) s->on_batch_();
  }
  touched_.clear();
}

}  // namespace vigil
