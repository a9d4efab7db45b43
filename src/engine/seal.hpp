// The session seal: a seccomp filter that closes the ways into the kernel
// that Vigil's syscall tracepoints do not see, so a session cannot open a
// file or connect unrecorded through them:
//   - any syscall of a foreign ABI (int $0x80 from a 64-bit process, 32-bit
//     programs, AArch32): sys_enter/sys_exit tracepoints of the native table
//     never fire for them;
//   - x32 syscalls (amd64: nr with __X32_SYSCALL_BIT), another table;
//   - io_uring_setup, io_uring_enter, io_uring_register: IORING_OP_OPENAT and
//     IORING_OP_CONNECT run in the kernel (inline, in an iou-wrk worker or an
//     SQPOLL thread) without a syscall of their own;
//   - open_by_handle_at: opens a file by handle, through no open tracepoint.
// Each is refused with EPERM. name_to_handle_at is harmless and stays.
//
// The session's first process installs it while it is still root, before it
// drops to the login's user, and without PR_SET_NO_NEW_PRIVS: setuid
// programs (sudo, su, passwd) keep working. Every process of the session
// inherits it across fork and execve, and no process can remove it (a
// filter added later can only refuse more).
//
//   seal::Filter f = seal::build();   // before fork: nothing allocated after
//   ... in the child: if (!seal::install(f)) ... errno says why
#pragma once

#include <linux/filter.h>

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace vigil::seal {

// Enough room for the longest program (amd64: 10 instructions).
inline constexpr size_t kMaxInstructions = 16;

// A classic BPF program for seccomp, built in place: plain data, copied or
// kept anywhere, used in a child after fork without allocating.
struct Filter {
  std::array<sock_filter, kMaxInstructions> code{};
  unsigned short length = 0;
};

// The filter for this build's native architecture.
Filter build();

// The filter for a session when `enabled`, else null: built on the first
// call (make that call before fork) and kept for the life of the process.
const Filter* for_session(bool enabled);

// What a session sealed with `filter` (from build() or for_session()) is
// refused, as session.start's "sealed" lists it (alphabetical):
// "compat_32bit", "io_uring", "open_by_handle_at" and, on amd64, "x32".
// Empty when `filter` is null: an unsealed session.
std::vector<std::string> refused(const Filter* filter);

// Installs `filter` on the calling thread (and so on everything it starts).
// Async-signal-safe. The caller must have CAP_SYS_ADMIN: the filter is
// installed without no_new_privs. Returns false with errno set on failure.
bool install(const Filter& filter);

// Whether the seal can be installed here: a child process installs it and
// checks that io_uring_setup is refused and getpid still works. Needs root.
Result<void> probe();

// What the kernel itself offers of the paths the seal closes, for `vigil check`.
struct KernelPath {
  bool present = false;  // a process here could use it, if unsealed
  std::string detail;    // "available", "not in this kernel (CONFIG_IO_URING is off)", ...
};
struct KernelPaths {
  KernelPath io_uring;
  KernelPath compat_32bit;
  KernelPath x32;
};
KernelPaths kernel_paths();

}  // namespace vigil::seal
