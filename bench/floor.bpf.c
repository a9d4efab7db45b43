// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's floor: one empty program on each tracepoint Vigil's
 * engine can attach (bpf/vigil.bpf.c), with the same section names.
 * engine_bench attaches, for a mode, the programs on exactly the hooks the
 * engine attaches for that mode's kinds (Probe::hooks), and runs the storms
 * outside every session: what remains is the cost of the hooks themselves
 * (the slow syscall path, the tracepoint's call into BPF), which no program
 * on these tracepoints can go below.
 *
 * The cgroup programs (network) attach at the cgroup v2 root as the
 * engine's do, and allow what they see (return 1), as the engine's do.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sched_process_exec")
int floor_exec(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_exit_execve")
int floor_exec_fail(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_exit_execveat")
int floor_execat_fail(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_exit_open")
int floor_open(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_exit_openat")
int floor_openat(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_exit_openat2")
int floor_openat2(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_exit_creat")
int floor_creat(void *ctx)
{
	return 0;
}

SEC("tp/sock/inet_sock_set_state")
int floor_connect(void *ctx)
{
	return 0;
}

SEC("cgroup/connect4")
int floor_connect4(void *ctx)
{
	return 1;
}

SEC("cgroup/connect6")
int floor_connect6(void *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg4")
int floor_sendmsg4(void *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg6")
int floor_sendmsg6(void *ctx)
{
	return 1;
}

/* Loaded as the engine's unix connect hook is: libbpf 1.1 does not know
 * cgroup/connect_unix, so engine_bench sets the attach type. */
SEC("cgroup/connect4")
int floor_unix_connect(void *ctx)
{
	return 1;
}

SEC("sockops")
int floor_sockops(void *ctx)
{
	return 1;
}
