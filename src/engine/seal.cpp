#include "engine/seal.hpp"

#include <linux/audit.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>

namespace vigil::seal {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_AARCH64;
#else
#error "the session seal knows amd64 and arm64 only"
#endif

constexpr uint32_t kRefuse = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);

// Writes the program front to back; every "refuse" jump points at the last
// instruction, so its offset is patched once the length is known.
class Writer {
 public:
  explicit Writer(Filter& f) : f_(f) {}

  void load(uint32_t offset) { emit(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset)); }
  void refuse_unless_equal(uint32_t k) { jump(BPF_JEQ, k, /*refuse_when=*/false); }
  void refuse_if_equal(uint32_t k) { jump(BPF_JEQ, k, true); }
  void refuse_if_at_least(uint32_t k) { jump(BPF_JGE, k, true); }

  void finish() {
    emit(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    unsigned short refuse_at = f_.length;
    emit(BPF_STMT(BPF_RET | BPF_K, kRefuse));
    for (size_t i = 0; i < jumps_; ++i) {
      sock_filter& ins = f_.code[jump_at_[i]];
      auto offset = static_cast<unsigned char>(refuse_at - jump_at_[i] - 1);
      (refuse_when_[i] ? ins.jt : ins.jf) = offset;
    }
  }

 private:
  void jump(uint16_t op, uint32_t k, bool refuse_when) {
    jump_at_[jumps_] = f_.length;
    refuse_when_[jumps_++] = refuse_when;
    emit(BPF_JUMP(BPF_JMP | op | BPF_K, k, 0, 0));
  }
  void emit(sock_filter ins) {
    // A bug, not an input: the program is fixed at compile time.
    if (f_.length == kMaxInstructions) __builtin_trap();
    f_.code[f_.length++] = ins;
  }

  Filter& f_;
  std::array<unsigned short, kMaxInstructions> jump_at_{};
  std::array<bool, kMaxInstructions> refuse_when_{};
  size_t jumps_ = 0;
};

}  // namespace

Filter build() {
  Filter f;
  Writer w(f);
  // A foreign ABI first: its syscall numbers mean other calls, so nothing
  // below may be judged by nr until the arch is known to be the native one.
  w.load(offsetof(seccomp_data, arch));
  w.refuse_unless_equal(kNativeArch);
  w.load(offsetof(seccomp_data, nr));
#if defined(__x86_64__)
  // x32 calls come with the native arch and this bit set in nr. Everything
  // at or above it is refused: no native call lives there.
  w.refuse_if_at_least(__X32_SYSCALL_BIT);
#endif
  w.refuse_if_equal(__NR_io_uring_setup);
  w.refuse_if_equal(__NR_io_uring_enter);
  w.refuse_if_equal(__NR_io_uring_register);
  w.refuse_if_equal(__NR_open_by_handle_at);
  w.finish();
  return f;
}

const Filter* for_session(bool enabled) {
  static const Filter filter = build();
  return enabled ? &filter : nullptr;
}

std::vector<std::string> refused(const Filter* filter) {
  if (!filter) return {};
#if defined(__x86_64__)
  return {"compat_32bit", "io_uring", "open_by_handle_at", "x32"};
#else
  return {"compat_32bit", "io_uring", "open_by_handle_at"};
#endif
}

bool install(const Filter& filter) {
  sock_fprog prog{filter.length, const_cast<sock_filter*>(filter.code.data())};
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0;
}

Result<void> probe() {
  // Exit statuses of the probing child.
  enum : int { works = 0, not_refused = 1, getpid_broken = 2, install_failed_base = 64 };
  Filter filter = build();
  pid_t pid = fork();
  if (pid < 0) return Error::sys("cannot fork to try the session seal");
  if (pid == 0) {
    if (!install(filter)) _exit(install_failed_base + (errno & 0x7f));
    io_uring_params params{};
    long fd = syscall(__NR_io_uring_setup, 1, &params);
    if (fd >= 0 || errno != EPERM) _exit(not_refused);
    if (syscall(__NR_getpid) <= 0) _exit(getpid_broken);
    _exit(works);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status))
    return Error{"the process trying the session seal died of signal " +
                 std::to_string(WTERMSIG(status))};
  int code = WEXITSTATUS(status);
  if (code == works) return {};
  if (code == not_refused)
    return Error{"the seal was installed but io_uring_setup was not refused: report this"};
  if (code == getpid_broken)
    return Error{"the seal refused getpid, which it must allow: report this"};
  int err = code - install_failed_base;
  if (err == EACCES || err == EPERM)
    return Error{"sealing a session needs root (CAP_SYS_ADMIN, to install a seccomp filter "
                 "without no_new_privs): run vigil as root",
                 err};
  if (err == EINVAL)
    return Error{"this kernel has no seccomp filters (CONFIG_SECCOMP_FILTER): sessions cannot "
                 "be sealed; set ssh_service.enhanced_recording.seal: false to record unsealed",
                 err};
  return Error{std::string("cannot install a seccomp filter: ") + std::strerror(err), err};
}

namespace {

KernelPath io_uring_path() {
  std::string disabled;
  std::ifstream("/proc/sys/kernel/io_uring_disabled") >> disabled;
  io_uring_params params{};
  long fd = syscall(__NR_io_uring_setup, 1, &params);
  int err = errno;
  if (fd >= 0) {
    close(static_cast<int>(fd));
    if (disabled == "1")
      return {true, "available (kernel.io_uring_disabled=1: to root and io_uring_group only)"};
    return {true, "available"};
  }
  if (err == ENOSYS) return {false, "not in this kernel (CONFIG_IO_URING is off)"};
  if (err == EPERM && disabled == "2") return {false, "disabled (kernel.io_uring_disabled=2)"};
  return {false, std::string("io_uring_setup fails here: ") + std::strerror(err)};
}

#if defined(__x86_64__)
KernelPath x32_path() {
  long pid = syscall(__X32_SYSCALL_BIT | __NR_getpid);
  if (pid == getpid()) return {true, "available (CONFIG_X86_X32_ABI)"};
  if (pid < 0 && errno == ENOSYS) return {false, "not in this kernel (CONFIG_X86_X32_ABI is off)"};
  return {false, std::string("x32 getpid fails here: ") + std::strerror(errno)};
}

KernelPath compat_32bit_path() {
  // In a child: where the kernel has no IA32 emulation, int $0x80 may end
  // the process with a signal instead of failing.
  pid_t pid = fork();
  if (pid < 0) return {true, std::string("not probed: fork: ") + std::strerror(errno)};
  if (pid == 0) {
    long ret = 20;  // the i386 getpid
    asm volatile("int $0x80" : "+a"(ret) : : "memory", "r8", "r9", "r10", "r11");
    _exit(ret == syscall(__NR_getpid) ? 0 : 1);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return {true, "available (IA32 emulation: int $0x80 and 32-bit programs run)"};
  return {false, "not available (no IA32 emulation)"};
}
#endif

}  // namespace

KernelPaths kernel_paths() {
  KernelPaths out;
  out.io_uring = io_uring_path();
#if defined(__x86_64__)
  out.x32 = x32_path();
  out.compat_32bit = compat_32bit_path();
#else
  out.x32 = {false, "not an arm64 ABI"};
  out.compat_32bit = {true, "not probed (AArch32 depends on the CPU)"};
#endif
  return out;
}

}  // namespace vigil::seal
