// vigil check: what this host supports for enhanced recording, and why not
// when it cannot. Loads and attaches every hook for real, then detaches.
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "commands.hpp"
#include "engine/host.hpp"
#include "engine/probe.hpp"
#include "engine/seal.hpp"

namespace vigil::cmd {
namespace {

constexpr long kCgroup2Magic = 0x63677270;
constexpr long kTracefsMagic = 0x74726163;

void print(const host::Check& c) {
  const char* mark = c.ok ? "ok  " : (c.required ? "FAIL" : "warn");
  std::printf("  %s  %-16s %s\n", mark, c.what.c_str(), c.detail.c_str());
}

bool fs_is(const std::string& path, long magic) {
  struct statfs st{};
  return statfs(path.c_str(), &st) == 0 && st.f_type == magic;
}

// The newest of what the engine needs: bpf_loop (5.17), bpf_task_pt_regs
// (5.15), cgroup.kill (5.14), bpf_get_current_task_btf and close_range's
// CLOEXEC (5.11), BPF ring buffers (5.8).
constexpr int kMinMajor = 5, kMinMinor = 17;

host::Check kernel_check() {
  utsname u{};
  uname(&u);
  int major = 0, minor = 0;
  std::sscanf(u.release, "%d.%d", &major, &minor);
  bool ok = major > kMinMajor || (major == kMinMajor && minor >= kMinMinor);
  return {"kernel", ok,
          std::string(u.release) +
              (ok ? "" : ": Linux 5.17 or newer is needed (bpf_loop, bpf_task_pt_regs, cgroup.kill)") +
              " (" + u.machine + ")"};
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// The session seal (engine/seal.hpp): whether it can be installed, what it
// refuses, and which of those ways into the kernel this one has at all.
void add_seal_checks(bool enabled, std::vector<host::Check>& checks) {
  std::string refuses = join(seal::refused(seal::for_session(true)));
  if (!enabled) {
    checks.push_back({"session seal", false,
                      "off (enhanced_recording.seal: false): sessions may use " + refuses +
                          " unrecorded",
                      false});
  } else {
    auto probe = seal::probe();
    checks.push_back({"session seal", probe.ok(),
                      probe ? "refuses " + refuses + " with EPERM (seccomp, inherited, setuid "
                                                     "programs keep working)"
                            : probe.error().message});
  }
  seal::KernelPaths paths = seal::kernel_paths();
  auto path_check = [&](const char* what, const seal::KernelPath& path) {
    std::string detail = path.detail;
    if (path.present)
      detail += enabled ? "; refused in sessions by the seal"
                        : "; NOT sealed: opens and connects through it are not recorded";
    checks.push_back({what, true, detail, false});
  };
  path_check("io_uring", paths.io_uring);
  path_check("32-bit syscalls", paths.compat_32bit);
  path_check("x32 syscalls", paths.x32);
}

}  // namespace

struct CheckArgs {
  std::string config_file;
};

int check(const CheckArgs& args) {
  auto cfg = load_config(args.config_file);
  if (!cfg) {
    std::fprintf(stderr, "vigil check: %s\n", cfg.error().message.c_str());
    return kVigilFailed;
  }
  const auto& er = cfg->ssh.enhanced_recording;
  std::vector<host::Check> checks;
  checks.push_back(kernel_check());

  struct stat st{};
  bool btf = stat("/sys/kernel/btf/vmlinux", &st) == 0;
  checks.push_back({"BTF", btf,
                    btf ? "/sys/kernel/btf/vmlinux"
                        : "/sys/kernel/btf/vmlinux is missing: the kernel needs "
                          "CONFIG_DEBUG_INFO_BTF for CO-RE"});

  auto privileges = host::require_bpf_privileges();
  checks.push_back({"privileges", privileges.ok(),
                    privileges ? "root (CAP_BPF, CAP_SYS_ADMIN)" : privileges.error().message});

  bool cg = fs_is(er.cgroup_path, kCgroup2Magic);
  bool cg_anywhere = fs_is("/sys/fs/cgroup", kCgroup2Magic) ||
                     fs_is("/sys/fs/cgroup/unified", kCgroup2Magic) ||
                     std::ifstream("/proc/filesystems").good();
  checks.push_back({"cgroup v2", cg || cg_anywhere,
                    cg ? "mounted at " + er.cgroup_path
                       : "not mounted at " + er.cgroup_path + "; vigil mounts it there on start"});

  bool tracefs = fs_is(host::kTracefs, kTracefsMagic);
  checks.push_back({"tracefs", true,
                    tracefs ? std::string("mounted at ") + host::kTracefs
                            : std::string("not mounted; vigil mounts it at ") + host::kTracefs +
                                  " when a session needs syscall or socket tracepoints"});

  bool loginuid = stat("/proc/self/loginuid", &st) == 0;
  host::Check audit{"audit sessions", false,
                    loginuid ? "not probed: the BPF object could not be loaded"
                             : "/proc/self/loginuid is missing (CONFIG_AUDIT)",
                    false};

  bool can_load = btf && privileges.ok();
  if (can_load) {
    // The network hooks attach at the cgroup v2 root: wherever it is mounted.
    ProbeOptions probe_options;
    for (const std::string& at : {er.cgroup_path, std::string("/sys/fs/cgroup/unified"),
                                  std::string("/sys/fs/cgroup")})
      if (fs_is(at, kCgroup2Magic)) {
        probe_options.cgroup_root = at;
        break;
      }
    auto probe = Probe::load(probe_options);
    checks.push_back({"BPF programs", probe.ok(),
                      probe ? "loaded (verifier accepted all programs)" : probe.error().message});
    if (probe) {
      audit.ok = loginuid && (*probe)->has_audit_session();
      audit.detail = audit.ok ? "task_struct.sessionid: processes leaving the session cgroup "
                                "stay recorded"
                              : "no audit session ids (CONFIG_AUDITSYSCALL): attribution by "
                                "cgroup only";
      auto marks = (*probe)->attach_marks();
      checks.push_back({"session mark", marks.ok(),
                        marks ? "tp_btf/sched_process_fork: every task a session's task starts "
                                "carries the session's mark (task storage), whatever cgroup or "
                                "audit session it moves to"
                              : marks.error().message});
      (*probe)->detach_marks();
      for (Kind kind : {Kind::command, Kind::disk, Kind::network}) {
        auto attached = (*probe)->attach(kind);
        checks.push_back({std::string(kind_name(kind)) + " events", attached.ok(),
                          attached ? join((*probe)->hooks(kind)) : attached.error().message});
        // Parts of a kind this kernel is too old for: said, not fatal.
        for (const std::string& missing : (*probe)->unsupported(kind))
          checks.push_back({std::string(kind_name(kind)) + " events", false, missing, false});
      }
      (*probe)->detach(KindSet::all());
    }
  }
  checks.push_back(audit);
  add_seal_checks(er.seal, checks);
  // A stated limit, true of every kernel Vigil runs on (docs/architecture.md).
  checks.push_back({"ptrace", false,
                    "not recorded: no tracepoint but the syscall ones shows an attach "
                    "(PTRACE_SEIZE sends no signal); code a session injects into another "
                    "process with ptrace is attributed to that process's session, or to none",
                    false});
  checks.push_back({"not used", true,
                    "kprobes, fentry/fexit and BPF-LSM (Vigil needs none of them)", false});

  std::printf("vigil check: enhanced recording on this host\n");
  bool ok = true;
  for (const auto& c : checks) {
    print(c);
    if (c.required && !c.ok) ok = false;
  }
  // What the configuration asks for, which the host checks above do not change.
  std::string config_says =
      er.enabled ? "on (" + cfg->source +
                       (args.config_file.empty() ? ": Vigil records when no file is given)"
                                                 : ": ssh_service.enhanced_recording.enabled: true)")
                 : "off (" + cfg->source + ": ssh_service.enhanced_recording.enabled " +
                       (er.enabled_given ? "is false" : "is not set; the guide's default is false") +
                       "): sessions get terminal recording only";
  std::printf("configuration: enhanced recording %s\n", config_says.c_str());
  // The ring sizes the engine will use for this configuration.
  if (auto rings = ring_pages_in_use(
          {er.command_buffer_size, er.disk_buffer_size, er.network_buffer_size})) {
    std::string line;
    for (int k = 0; k < kKindCount; ++k) {
      uint32_t asked = k == 0 ? er.command_buffer_size
                              : k == 1 ? er.disk_buffer_size : er.network_buffer_size;
      line += (k ? ", " : "") + std::string(kind_name(static_cast<Kind>(k))) + " " +
              std::to_string(rings->pages[k]) + " pages (" +
              std::to_string(rings->pages[k] * 4) + " KiB)";
      if (rings->raised[k])
        line += ", raised from " + std::to_string(asked) +
                ": one command of the largest size needs " + std::to_string(kMinCommandRingPages);
    }
    std::printf("ring buffers: %s\n", line.c_str());
  } else {
    std::printf("ring buffers: %s\n", rings.error().message.c_str());
    ok = false;
  }
  if (ok) {
    std::printf("enhanced recording: supported (command, disk, network)\n");
    return 0;
  }
  std::printf("enhanced recording: NOT available on this host (see FAIL above)\n");
  return 1;
}

Subcommand add_check(CLI::App& app) {
  auto args = std::make_shared<CheckArgs>();
  auto* sub = app.add_subcommand("check", "say what this host supports for enhanced recording");
  sub->add_option("-c,--config", args->config_file, "node config file")->check(CLI::ExistingFile);
  return {sub, [args] { return check(*args); }};
}

}  // namespace vigil::cmd
