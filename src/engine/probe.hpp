// The BPF object: open, configure, load, and attach per kind on demand.
// Owns the skeleton and every link; move-only through unique_ptr.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "event/event.hpp"

struct vigil_bpf;
struct bpf_link;

namespace vigil {

struct ProbeOptions {
  uint32_t session_cgroup_level = 2;         // depth of <root_path>/<sid> in cgroup2
  // The command ring must hold one record of the largest size (72 KiB).
  std::array<uint32_t, kKindCount> ring_bytes = {1024 * 4096, 128 * 4096, 32 * 4096};
  bool failed_execs = true;  // attach the syscall exit hooks that see failed execs
  // Where the cgroup v2 hierarchy is mounted: the network hooks that are
  // cgroup programs attach once at its root, so every socket of the host
  // passes them and a process that left its session's cgroup is still seen.
  std::string cgroup_root = "/cgroup2";
  // Kernel path walk with plain loads (bpf_rdonly_cast, Linux 6.2+); when
  // the kernel refuses the object so, it is loaded again with probe reads.
  bool kpath_plain_loads = true;
};

class Probe {
 public:
  static Result<std::unique_ptr<Probe>> load(const ProbeOptions& options);
  ~Probe();
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  // Attaching a kind's hooks is what makes the host pay for it; the engine
  // attaches a kind only while a live session records it.
  Result<void> attach(Kind kind);
  // Closing a tracepoint link waits for an RCU grace period (tens of ms on
  // faultable syscall tracepoints): all links of `kinds` close in parallel.
  void detach(KindSet kinds);
  bool attached(Kind kind) const { return !links_[static_cast<int>(kind)].empty(); }
  // The fork hook that hands a session's mark to every task its tasks start
  // (whatever kinds the session records): attached while any session lives.
  Result<void> attach_marks();
  void detach_marks();
  bool marks_attached() const { return marks_link_ != nullptr; }

  bool has_audit_session() const { return has_audit_session_; }
  // Whether the kernel path walk reads with plain loads (else probe reads).
  bool kpath_plain_loads() const { return kpath_plain_loads_; }
  // The hooks (section names) a kind attaches, e.g. "tp/sock/inet_sock_set_state".
  std::vector<std::string> hooks(Kind kind) const;
  // The attach type the unix connect hook was loaded with (the value of
  // BPF_CGROUP_UNIX_CONNECT on this kernel), or -1 when it is not loaded;
  // and where the cgroup programs attach. For programs that shadow the
  // engine's (the benchmark's floor).
  int unix_connect_attach_type() const;
  const std::string& cgroup_root() const { return cgroup_root_; }
  // What of a kind this kernel cannot record, one sentence each (empty: all).
  std::vector<std::string> unsupported(Kind kind) const { return unsupported_[static_cast<int>(kind)]; }
  int ring_fd(Kind kind) const;
  int sessions_fd() const;
  int session_cgroups_fd() const;
  int audit_sessions_fd() const;
  int session_counters_fd() const;
  int session_marks_fd() const;

 private:
  Probe() = default;
  static Result<std::unique_ptr<Probe>> load_once(const ProbeOptions& options);
  vigil_bpf* skel_ = nullptr;
  bool has_audit_session_ = false;
  std::string cgroup_root_;
  std::array<std::vector<std::string>, kKindCount> unsupported_;
  bool kpath_plain_loads_ = false;
  std::array<std::vector<bpf_link*>, kKindCount> links_;
  bpf_link* marks_link_ = nullptr;
};

}  // namespace vigil
