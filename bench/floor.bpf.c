// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's floor: one empty program on each tracepoint Vigil's
 * engine can attach (bpf/vigil.bpf.c), with the same section names.
 * engine_bench attaches, for a mode, the programs on exactly the hooks the
 * engine attaches for that mode's kinds (Probe::hooks), and runs the storms
 * outside every session: what remains is the cost of the hooks themselves
 * (the slow syscall path, the tracepoint's call into BPF), which no program
 * on these tracepoints can go below.
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
