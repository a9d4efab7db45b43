/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The records the kernel side hands to user space, shared verbatim by
 * bpf/vigil.bpf.c and the C++ decoder (src/engine/decode.cpp).
 * Plain fixed-width data only: no pointers, no compiler-dependent layout.
 * The C++ side static_asserts every size, so a mismatch fails the build.
 * Bump VIGIL_SCHEMA_VERSION whenever a record changes shape.
 */
#ifndef VIGIL_EVENTS_H
#define VIGIL_EVENTS_H

#define VIGIL_SCHEMA_VERSION 4

#define VIGIL_COMM_LEN 16
#define VIGIL_PATH_MAX 4096        /* bytes of a path we keep, NUL included */
#define VIGIL_ARGV_MAX 65536       /* bytes of argv we keep, NULs included (power of two) */
#define VIGIL_MAX_SESSIONS 4096    /* live sessions one engine can track */
#define VIGIL_KPATH_COMPONENTS 64  /* names a kernel path walk takes at most */
#define VIGIL_UNIX_PATH_MAX 112    /* sun_path (108 bytes) and room for a NUL */
#define VIGIL_NET_REMEMBERED 64    /* UDP destinations one process's table remembers */

/* Event kinds; also the bit positions of a session's kinds mask. */
enum vigil_kind {
	VIGIL_KIND_COMMAND = 0,
	VIGIL_KIND_DISK = 1,
	VIGIL_KIND_NETWORK = 2,
	VIGIL_KIND_COUNT = 3,
};

/* Flags of a command record. */
#define VIGIL_EXEC_ARGV_TRUNCATED (1u << 0) /* argv longer than VIGIL_ARGV_MAX */
#define VIGIL_EXEC_PATH_TRUNCATED (1u << 1) /* path longer than VIGIL_PATH_MAX */
/* (1u << 2) was VIGIL_EXEC_ARGS_LOST, the argument store of schema 3 and before */
#define VIGIL_EXEC_SCRIPT         (1u << 3) /* ran through an interpreter (#!, binfmt_misc) */
#define VIGIL_EXEC_ARGV_UNREADABLE (1u << 4) /* argv could not be read from user memory */
#define VIGIL_EXEC_KPATH_TRUNCATED (1u << 5) /* the kernel path lacks its leading part */

/* Flags of a disk record. */
#define VIGIL_OPEN_PATH_TRUNCATED (1u << 0)  /* the requested path was cut */
#define VIGIL_OPEN_PATH_UNREADABLE (1u << 1) /* the requested path was not readable */
#define VIGIL_OPEN_KPATH_TRUNCATED (1u << 2) /* the kernel path lacks its leading part */
#define VIGIL_OPEN_KPATH_MISSING (1u << 3)   /* success, but the new fd held no file */

/* Which syscall a disk record came from. */
enum vigil_open_call {
	VIGIL_OPEN_OPEN = 0,
	VIGIL_OPEN_OPENAT = 1,
	VIGIL_OPEN_OPENAT2 = 2,
	VIGIL_OPEN_CREAT = 3,
};

/*
 * Per-session state, keyed by the session's slot id. Written by user space
 * only (programs read it): no cache line bounces between CPUs under storms.
 * `generation` is new each time a slot is given to a session, and 0 when
 * the slot is free: a process mark carries it (struct vigil_session_mark),
 * so a process left over from an ended session is never taken for the next
 * session in the same slot.
 */
struct vigil_session_state {
	__u32 kinds;                        /* bit (1 << vigil_kind) per recorded kind */
	__u32 generation;                   /* 0: the slot is free */
	__u32 slot;                         /* the key, for count() */
	__u32 _pad;
};

/*
 * Per-session counters, one copy per CPU (a per-CPU array keyed by slot):
 * user space sums the copies. Reset when the slot is given to a session.
 */
struct vigil_session_counters {
	__u64 emitted[VIGIL_KIND_COUNT];    /* records handed to a ring */
	__u64 lost[VIGIL_KIND_COUNT];       /* records a full ring or store refused */
	__u64 marked_forks;                 /* tasks that got the session's mark at fork */
	__u64 unmarked_forks;               /* tasks of the session the kernel could not mark */
};

/*
 * The mark of a session's task (task storage): set by user space on the
 * first process (through a pidfd) and copied to every task it forks or
 * clones. No system call changes it; it goes with the task.
 */
struct vigil_session_mark {
	__u32 slot;
	__u32 generation;
};

/* Common head of every ring record. */
struct vigil_record_head {
	__u32 kind;          /* enum vigil_kind */
	__u32 session;       /* slot id the engine gave the session */
	__u64 ktime_ns;      /* bpf_ktime_get_boot_ns() when the event happened */
	__u64 cgroup_id;     /* cgroup v2 id of the task */
	__u32 pid;           /* tgid */
	__u32 tid;
	__u32 ppid;          /* tgid of the real parent */
	__u32 audit_session; /* audit session id (loginuid session), or -1 */
	__u32 uid;
	__u32 gid;
	char comm[VIGIL_COMM_LEN];
};

/*
 * A command (execve/execveat), variable length in the ring: the fixed part,
 * then argv (argv_len bytes, each argument NUL-terminated, argv[0] first),
 * then the path given to execve (path_len bytes and a NUL), then, for a
 * successful exec, the kernel path of the file the kernel runs (bprm->file:
 * for a #! script, its interpreter; kernel_path_len bytes and a NUL).
 * kernel_path_len is 0 when there is none (a failed exec). argv comes first
 * so that it is read at a fixed offset; the ring gets only the bytes used.
 */
struct vigil_exec_record {
	struct vigil_record_head head;
	__s32 return_code;   /* 0 or -errno */
	__u32 flags;         /* VIGIL_EXEC_* */
	__u32 argc;          /* arguments the kernel counted (may exceed those kept) */
	__u32 argv_len;      /* bytes of argv, NULs included */
	__u32 path_len;      /* bytes of path, NUL excluded */
	__u32 kernel_path_len; /* bytes of kernel path, NUL excluded; 0: none */
	char data[VIGIL_ARGV_MAX + 2 * VIGIL_PATH_MAX];
};

/*
 * A file open. In the ring, the fixed part is followed by the requested path
 * (path_len bytes and a NUL) and then, for a successful open, the kernel path
 * (kernel_path_len bytes and a NUL): the absolute name of the file the new fd
 * holds, walked from its dentry and mount. kernel_path_len is 0 when there is
 * none (a failed open, or VIGIL_OPEN_KPATH_MISSING).
 */
struct vigil_open_record {
	struct vigil_record_head head;
	__s32 return_code;   /* fd (reported as 0) or -errno */
	__u32 flags;         /* VIGIL_OPEN_* */
	__s32 open_flags;    /* O_* as passed */
	__u32 mode;
	__u32 call;          /* enum vigil_open_call */
	__u32 path_len;      /* bytes of requested path, NUL excluded */
	__u32 kernel_path_len; /* bytes of kernel path, NUL excluded */
	__u32 _pad;
	char data[2 * VIGIL_PATH_MAX];
};

/* What a network record reports (the guide's `operation`, extended). */
enum vigil_net_op {
	VIGIL_NET_CONNECT = 0,        /* TCP SYN sent, UDP connect(), unix connect() */
	VIGIL_NET_SEND = 1,           /* UDP datagram to a destination new for the process */
	VIGIL_NET_ACCEPT = 2,         /* inbound TCP connection established on a session listener */
	VIGIL_NET_CONNECT_RESULT = 3, /* what became of a recorded TCP connect */
};

/* Flags of a network record. */
#define VIGIL_NET_UNIX_ABSTRACT (1u << 0) /* path is an abstract name (no leading NUL kept) */
#define VIGIL_NET_CLOSED (1u << 1)        /* result: closed before an answer, no error set */

/*
 * A network event. Both address forms are kept raw; the decoder picks the
 * right one (an IPv6 socket talking to a v4-mapped peer fills both). For an
 * accept, s* is the peer that connected and d* the session's local address
 * and port. An AF_UNIX record
 * is followed by path_len bytes of sun_path (path); the others end before
 * path (the ring record is offsetof(path) bytes).
 */
struct vigil_net_record {
	struct vigil_record_head head;
	__u16 family;        /* AF_INET, AF_INET6 (of the socket) or AF_UNIX */
	__u8 operation;      /* enum vigil_net_op */
	__u8 protocol;       /* IPPROTO_TCP or IPPROTO_UDP; 0 for AF_UNIX */
	__u16 dport;         /* host byte order */
	__u16 sport;         /* host byte order, 0 when not yet bound */
	__u32 net_ns;        /* inode number of the socket's network namespace */
	__s32 result;        /* CONNECT_RESULT: 0 established or -errno */
	__u32 flags;         /* VIGIL_NET_* */
	__u32 forgotten;     /* SEND/UDP CONNECT: destinations the process's table forgot */
	__u8 saddr4[4];
	__u8 daddr4[4];
	__u8 saddr6[16];
	__u8 daddr6[16];
	__u32 path_len;      /* AF_UNIX: bytes of path */
	__u32 _pad;
	char path[VIGIL_UNIX_PATH_MAX];
};

#endif /* VIGIL_EVENTS_H */
