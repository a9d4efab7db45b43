#include "engine/probe.hpp"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/types.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <string>
#include <thread>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "engine/host.hpp"
#include "vigil.skel.h"

extern "C" {
#include "vigil_events.h"
}

namespace vigil {
namespace {

int libbpf_log(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && log::level() > log::Level::debug) return 0;
  if (level == LIBBPF_INFO && log::level() > log::Level::info) return 0;
  // The verifier's log arrives as one large message: size it first.
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string line(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(line.data(), line.size(), fmt, args);
  line.resize(n);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  log::write(level == LIBBPF_WARN ? log::Level::warn : log::Level::debug, line);
  return 0;
}

// task_struct.sessionid exists only with CONFIG_AUDITSYSCALL.
bool kernel_has_audit_session() {
  struct btf* btf = btf__load_vmlinux_btf();
  if (!btf) return false;
  bool found = false;
  int id = btf__find_by_name_kind(btf, "task_struct", BTF_KIND_STRUCT);
  if (id > 0) {
    const struct btf_type* t = btf__type_by_id(btf, id);
    const struct btf_member* m = btf_members(t);
    for (int i = 0; i < btf_vlen(t) && !found; ++i, ++m)
      found = std::string_view(btf__name_by_offset(btf, m->name_off)) == "sessionid";
  }
  btf__free(btf);
  return found;
}

// What the kernel's BTF says it has, for hooks newer than the minimum kernel.
struct KernelNetFeatures {
  bool cast_to_kern_ctx = false;  // kfunc bpf_cast_to_kern_ctx (6.2)
  int unix_connect = -1;          // value of BPF_CGROUP_UNIX_CONNECT (6.7), -1: none
};

KernelNetFeatures kernel_net_features() {
  KernelNetFeatures f;
  struct btf* btf = btf__load_vmlinux_btf();
  if (!btf) return f;
  f.cast_to_kern_ctx = btf__find_by_name_kind(btf, "bpf_cast_to_kern_ctx", BTF_KIND_FUNC) > 0;
  int id = btf__find_by_name_kind(btf, "bpf_attach_type", BTF_KIND_ENUM);
  if (id > 0) {
    const struct btf_type* t = btf__type_by_id(btf, id);
    const struct btf_enum* e = btf_enum(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++e)
      if (std::string_view(btf__name_by_offset(btf, e->name_off)) == "BPF_CGROUP_UNIX_CONNECT")
        f.unix_connect = e->val;
  }
  btf__free(btf);
  return f;
}

// Programs attached to the cgroup v2 root rather than to a tracepoint.
bool is_cgroup_program(bpf_program* prog) {
  switch (bpf_program__type(prog)) {
    case BPF_PROG_TYPE_SOCK_OPS:
    case BPF_PROG_TYPE_CGROUP_SOCK_ADDR:
      return true;
    default:
      return false;
  }
}

// The kernel has a function (a kfunc) of this name in its BTF.
bool kernel_has_function(const char* name) {
  struct btf* btf = btf__load_vmlinux_btf();
  if (!btf) return false;
  bool found = btf__find_by_name_kind(btf, name, BTF_KIND_FUNC) > 0;
  btf__free(btf);
  return found;
}

std::vector<bpf_program*> programs_of(vigil_bpf* s, Kind kind) {
  switch (kind) {
    case Kind::command:
      return {s->progs.vigil_exec, s->progs.vigil_exec_fail, s->progs.vigil_execat_fail};
    case Kind::disk:
      return {s->progs.vigil_open, s->progs.vigil_openat, s->progs.vigil_openat2,
              s->progs.vigil_creat};
    case Kind::network:
      return {s->progs.vigil_connect,       s->progs.vigil_sockops,
              s->progs.vigil_udp_connect4,  s->progs.vigil_udp_connect6,
              s->progs.vigil_udp_sendmsg4,  s->progs.vigil_udp_sendmsg6,
              s->progs.vigil_unix_connect};
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<Probe>> Probe::load(const ProbeOptions& options) {
  static const bool print_set = (libbpf_set_print(libbpf_log), true);
  (void)print_set;
  if (auto caps = host::require_bpf_privileges(); !caps) return caps.error();
  // Sizes are checked first: a second load would not fix them.
  for (int k = 0; k < kKindCount; ++k) {
    uint32_t bytes = options.ring_bytes[k];
    if (bytes < 4096 || (bytes & (bytes - 1)))
      return Error{"ring size " + std::to_string(bytes) + " for " +
                   std::string(kind_name(static_cast<Kind>(k))) +
                   " events is not a power-of-two number of pages"};
    if (k == static_cast<int>(Kind::command) && bytes < sizeof(vigil_exec_record) + 8)
      return Error::of(Errc::invalid_argument,
                       "a command ring of " + std::to_string(bytes) +
                           " bytes cannot hold one command of the largest size (" +
                           std::to_string(sizeof(vigil_exec_record) + 8) +
                           " bytes); give it more pages");
  }
  // Kernels before 6.2 have no bpf_rdonly_cast: the same programs with the
  // kernel path read through probe reads. One that has it but refuses it
  // in tracepoint programs gets them too, after a first try.
  ProbeOptions fallback = options;
  fallback.kpath_plain_loads = false;
  if (!options.kpath_plain_loads || !kernel_has_function("bpf_rdonly_cast"))
    return load_once(fallback);
  auto probe = load_once(options);
  if (probe) return probe;
  log::warn("the kernel refused the kernel path walk with plain loads (" +
            probe.error().message + "); loading it with probe reads");
  return load_once(fallback);
}

Result<std::unique_ptr<Probe>> Probe::load_once(const ProbeOptions& options) {

  std::unique_ptr<Probe> probe(new Probe());
  probe->skel_ = vigil_bpf__open();
  if (!probe->skel_) return Error::sys("cannot open the BPF object");
  vigil_bpf* s = probe->skel_;

  probe->has_audit_session_ = kernel_has_audit_session();
  s->rodata->session_cgroup_level = options.session_cgroup_level;
  s->rodata->have_audit_session = probe->has_audit_session_;
  s->rodata->kpath_plain_loads = probe->kpath_plain_loads_ = options.kpath_plain_loads;
  bpf_map* rings[kKindCount] = {s->maps.command_ring, s->maps.disk_ring, s->maps.network_ring};
  for (int k = 0; k < kKindCount; ++k) {
    bpf_map__set_max_entries(rings[k], options.ring_bytes[k]);
    // Wake the reader at a quarter full: it still polls on a timer, so a
    // quiet session is read within the poll interval.
    s->rodata->wakeup_bytes[k] = options.ring_bytes[k] / 4;
  }
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Error{"cannot count the possible CPUs", -cpus};
  bpf_map__set_max_entries(s->maps.exec_scratch, cpus);
  bpf_map__set_max_entries(s->maps.open_scratch, cpus);

  // Programs for syscalls this architecture lacks (open, creat on arm64)
  // are not loaded at all.
  for (auto [prog, tp] : {std::pair{s->progs.vigil_open, "sys_exit_open"},
                          std::pair{s->progs.vigil_creat, "sys_exit_creat"}}) {
    if (!host::tracepoint_exists("syscalls", tp)) bpf_program__set_autoload(prog, false);
  }
  // UDP and unix sockets need the socket and address behind the hook's
  // context (bpf_cast_to_kern_ctx); unix connects their own hook.
  probe->cgroup_root_ = options.cgroup_root;
  KernelNetFeatures net = kernel_net_features();
  auto& net_missing = probe->unsupported_[static_cast<int>(Kind::network)];
  if (!net.cast_to_kern_ctx) {
    for (bpf_program* p : {s->progs.vigil_udp_connect4, s->progs.vigil_udp_connect6,
                           s->progs.vigil_udp_sendmsg4, s->progs.vigil_udp_sendmsg6,
                           s->progs.vigil_unix_connect})
      bpf_program__set_autoload(p, false);
    net_missing.push_back("UDP and unix socket connects are not recorded: the kernel lacks the "
                          "bpf_cast_to_kern_ctx kfunc (Linux 6.2+)");
  } else if (net.unix_connect < 0) {
    bpf_program__set_autoload(s->progs.vigil_unix_connect, false);
    net_missing.push_back("unix socket connects are not recorded: the kernel lacks "
                          "cgroup/connect_unix (Linux 6.7+)");
  } else {
    bpf_program__set_expected_attach_type(s->progs.vigil_unix_connect,
                                          static_cast<bpf_attach_type>(net.unix_connect));
  }
  if (!options.failed_execs) {
    bpf_program__set_autoload(s->progs.vigil_exec_fail, false);
    bpf_program__set_autoload(s->progs.vigil_execat_fail, false);
  }

  if (int err = vigil_bpf__load(s); err)
    return Error{"the kernel refused Vigil's BPF programs (" + std::string(strerror(-err)) +
                     "); run 'vigil check' for what this host supports, and -v for the "
                     "verifier's log",
                 -err};
  return probe;
}

Probe::~Probe() {
  detach(KindSet::all());
  detach_marks();
  vigil_bpf__destroy(skel_);
}

Result<void> Probe::attach(Kind kind) {
  if (attached(kind)) return {};
  // libbpf finds a tracepoint's id in tracefs; every kind uses one.
  if (auto t = host::ensure_tracefs(); !t) return t.error();
  auto& links = links_[static_cast<int>(kind)];
  // The cgroup programs attach once at the root of the hierarchy (a link:
  // other programs there keep running, as with BPF_F_ALLOW_MULTI).
  Fd root;
  for (bpf_program* prog : programs_of(skel_, kind)) {
    if (!bpf_program__autoload(prog)) continue;
    bpf_link* link = nullptr;
    if (is_cgroup_program(prog)) {
      if (!root) root.reset(open(cgroup_root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!root) {
        int err = errno;
        detach(KindSet(1u << static_cast<int>(kind)));
        return Error{"cannot open the cgroup v2 root " + cgroup_root_ + " for " +
                         std::string(kind_name(kind)) + " events: " + strerror(err),
                     err};
      }
      link = bpf_program__attach_cgroup(prog, root.get());
    } else {
      link = bpf_program__attach(prog);
    }
    if (!link) {
      int err = errno;
      detach(KindSet(1u << static_cast<int>(kind)));
      return Error{"cannot attach " + std::string(bpf_program__name(prog)) + " (" +
                       bpf_program__section_name(prog) + ") for " + std::string(kind_name(kind)) +
                       " events: " + strerror(err) + "; run 'vigil check'",
                   err};
    }
    links.push_back(link);
  }
  return {};
}

void Probe::detach(KindSet kinds) {
  std::vector<std::thread> closers;
  for (int k = 0; k < kKindCount; ++k) {
    if (!kinds.has(static_cast<Kind>(k))) continue;
    for (bpf_link* link : links_[k]) closers.emplace_back([link] { bpf_link__destroy(link); });
    links_[k].clear();
  }
  for (auto& t : closers) t.join();
}

Result<void> Probe::attach_marks() {
  if (marks_link_) return {};
  marks_link_ = bpf_program__attach(skel_->progs.vigil_fork);
  if (!marks_link_) {
    int err = errno;
    return Error{"cannot attach vigil_fork (" +
                     std::string(bpf_program__section_name(skel_->progs.vigil_fork)) +
                     "), which marks the tasks a session starts: " + strerror(err) +
                     "; run 'vigil check'",
                 err};
  }
  return {};
}

void Probe::detach_marks() {
  if (marks_link_) bpf_link__destroy(marks_link_);
  marks_link_ = nullptr;
}

std::vector<std::string> Probe::hooks(Kind kind) const {
  std::vector<std::string> out;
  for (bpf_program* prog : programs_of(skel_, kind)) {
    if (!bpf_program__autoload(prog)) continue;
    // Loaded under another section name (libbpf 1.1 lacks this one).
    out.emplace_back(prog == skel_->progs.vigil_unix_connect ? "cgroup/connect_unix"
                                                             : bpf_program__section_name(prog));
  }
  return out;
}

int Probe::unix_connect_attach_type() const {
  if (!bpf_program__autoload(skel_->progs.vigil_unix_connect)) return -1;
  return static_cast<int>(bpf_program__expected_attach_type(skel_->progs.vigil_unix_connect));
}

int Probe::ring_fd(Kind kind) const {
  switch (kind) {
    case Kind::command: return bpf_map__fd(skel_->maps.command_ring);
    case Kind::disk: return bpf_map__fd(skel_->maps.disk_ring);
    case Kind::network: return bpf_map__fd(skel_->maps.network_ring);
  }
  return -1;
}
int Probe::sessions_fd() const { return bpf_map__fd(skel_->maps.sessions); }
int Probe::session_cgroups_fd() const { return bpf_map__fd(skel_->maps.session_cgroups); }
int Probe::audit_sessions_fd() const { return bpf_map__fd(skel_->maps.audit_sessions); }
int Probe::session_counters_fd() const { return bpf_map__fd(skel_->maps.session_counters); }
int Probe::session_marks_fd() const { return bpf_map__fd(skel_->maps.session_marks); }

}  // namespace vigil
