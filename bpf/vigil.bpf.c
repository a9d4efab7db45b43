// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Vigil's kernel side: commands, file opens and TCP connects of the
 * processes that belong to a recorded session.
 *
 * Only hooks that work without kprobes, fentry or BPF-LSM:
 *   command  tp_btf/sched_process_exec (successful execs, argv read from the
 *            new image, the file run named from kernel memory)
 *            + tp/syscalls/sys_exit_execve{,at} (failed execs)
 *   disk     tp/syscalls/sys_exit_{open,openat,openat2,creat}: the requested
 *            path from user memory, and for a successful open the path of
 *            the file the new fd holds, from kernel memory
 *   network  tp/sock/inet_sock_set_state (CLOSE -> SYN_SENT: TCP connects);
 *            at the cgroup v2 root: sockops (a connect's answer, inbound
 *            connections on a session's listener), cgroup/connect4,6 and
 *            sendmsg4,6 (UDP, once per destination per process) and
 *            cgroup/connect_unix (unix sockets)
 * Syscall hooks read their arguments from the saved user registers at exit,
 * so each syscall costs one program run, not two.
 *
 * A task belongs to a session when it carries the session's mark (task
 * storage, set on the first process and inherited at fork: tp_btf/
 * sched_process_fork), or when its cgroup (at the session level) or its
 * audit session id is registered by user space; everything else returns
 * after three lookups and sends nothing.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "vigil_events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TCP_SYN_SENT_STATE 2
#define AF_INET_FAMILY 2
#define AF_INET6_FAMILY 10
#define IPPROTO_TCP_NUM 6
#define AUDIT_SID_UNSET ((__u32)-1)
#define O_WRONLY_FLAG 01
#define O_CREAT_FLAG 0100
#define O_TRUNC_FLAG 01000

/* Set by the loader between open and load. */
const volatile __u32 session_cgroup_level = 2;     /* depth of <root_path>/<sid> */
const volatile __u64 wakeup_bytes[VIGIL_KIND_COUNT] = {}; /* wake the reader past this fill */
const volatile bool have_audit_session = true;      /* task_struct has sessionid */

/* Ring sizes are set by the loader from *_buffer_size. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 8);
} command_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 128);
} disk_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 8);
} network_ring SEC(".maps");

/* Session slot -> state (kinds, generation). Slot 0 is never used. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIGIL_MAX_SESSIONS);
	__type(key, __u32);
	__type(value, struct vigil_session_state);
} sessions SEC(".maps");

/* Session slot -> counters, one copy per CPU: a storm never shares a line. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIGIL_MAX_SESSIONS);
	__type(key, __u32);
	__type(value, struct vigil_session_counters);
} session_counters SEC(".maps");

/* Task -> the session it belongs to, inherited at fork (vigil_fork). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vigil_session_mark);
} session_marks SEC(".maps");

/* Session cgroup id -> slot. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIGIL_MAX_SESSIONS);
	__type(key, __u64);
	__type(value, __u32);
} session_cgroups SEC(".maps");

/* Audit session id -> slot: follows a process that leaves the cgroup. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIGIL_MAX_SESSIONS);
	__type(key, __u32);
	__type(value, __u32);
} audit_sessions SEC(".maps");

/*
 * Per-CPU scratch (plain arrays: the values are too big for per-CPU maps).
 * max_entries is set to the number of possible CPUs by the loader. A command
 * record is built here whole and only its used bytes go to the ring. The
 * slack after it lets one argument of a failed exec be read at any offset
 * below VIGIL_ARGV_MAX with a bound the verifier can prove; what lands there
 * is never sent.
 */
struct exec_scratch_value {
	struct vigil_exec_record rec;
	char slack[VIGIL_ARGV_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_scratch_value);
} exec_scratch SEC(".maps");

/*
 * An open's record and the buffer its kernel path is built in, backwards
 * from walk[VIGIL_PATH_MAX - 1]; the second half of walk is slack so that a
 * name can be copied at any offset below VIGIL_PATH_MAX with a bound the
 * verifier can prove.
 */
struct open_scratch_value {
	struct vigil_open_record rec;
	char walk[2 * VIGIL_PATH_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_scratch_value);
} open_scratch SEC(".maps");

/* The live session `mark` names, or NULL when that session has ended. */
static __always_inline struct vigil_session_state *marked_session(struct vigil_session_mark *mark)
{
	__u32 slot = mark->slot;
	struct vigil_session_state *state = bpf_map_lookup_elem(&sessions, &slot);

	if (!state || !state->generation || state->generation != mark->generation)
		return NULL;
	return state;
}

/*
 * The session of the current task by cgroup (at the session level) or audit
 * session id: how a task that carries no mark is found.
 */
static __always_inline struct vigil_session_state *session_by_membership(void)
{
	__u64 cgroup = bpf_get_current_ancestor_cgroup_id(session_cgroup_level);
	__u32 *slot = NULL;

	if (cgroup)
		slot = bpf_map_lookup_elem(&session_cgroups, &cgroup);
	if (!slot && have_audit_session) {
		struct task_struct *task = bpf_get_current_task_btf();
		__u32 ses = BPF_CORE_READ(task, sessionid);

		if (ses != AUDIT_SID_UNSET && ses != 0)
			slot = bpf_map_lookup_elem(&audit_sessions, &ses);
	}
	if (!slot)
		return NULL;
	struct vigil_session_state *state = bpf_map_lookup_elem(&sessions, slot);
	if (!state || !state->generation)
		return NULL;
	return state;
}

/*
 * The session of the current task: its mark first (no system call changes
 * it: a process that left the session's cgroup and took a new audit session
 * id still carries it), then cgroup and audit session id. A mark of a live
 * session decides, even when the task moved into another session's cgroup.
 */
static __always_inline struct vigil_session_state *find_session(__u32 kind, __u32 *slot_out)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vigil_session_mark *mark = bpf_task_storage_get(&session_marks, task, 0, 0);
	struct vigil_session_state *state = NULL;

	if (mark)
		state = marked_session(mark);
	if (!state)
		state = session_by_membership();
	if (!state || !(state->kinds & (1u << kind)))
		return NULL;
	*slot_out = state->slot;
	return state;
}

static __always_inline void count(struct vigil_session_state *state, __u32 kind, bool delivered)
{
	__u32 slot = state->slot;
	struct vigil_session_counters *c = bpf_map_lookup_elem(&session_counters, &slot);

	if (!c || kind >= VIGIL_KIND_COUNT)
		return;
	/* This CPU's copy: atomic only against a preempting program on this CPU. */
	if (delivered)
		__sync_fetch_and_add(&c->emitted[kind], 1);
	else
		__sync_fetch_and_add(&c->lost[kind], 1);
}

/*
 * Every task a session's task forks or clones (threads too) gets its
 * session's mark; so does a task forked by one that is in a session by
 * cgroup or audit session id without a mark yet. What the mark costs the
 * host: one task storage lookup and, for a task with no mark, the two map
 * lookups of session_by_membership, on every fork while a session is live.
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(vigil_fork, struct task_struct *parent, struct task_struct *child)
{
	struct task_struct *task = bpf_get_current_task_btf(); /* the parent */
	struct vigil_session_mark *mark = bpf_task_storage_get(&session_marks, task, 0, 0);
	struct vigil_session_state *state = NULL;

	if (mark)
		state = marked_session(mark);
	if (!state)
		state = session_by_membership();
	if (!state)
		return 0;

	__u32 slot = state->slot;
	struct vigil_session_counters *c = bpf_map_lookup_elem(&session_counters, &slot);
	struct vigil_session_mark *m =
		bpf_task_storage_get(&session_marks, child, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!m) {
		if (c)
			__sync_fetch_and_add(&c->unmarked_forks, 1);
		return 0;
	}
	m->slot = slot;
	m->generation = state->generation;
	if (c)
		__sync_fetch_and_add(&c->marked_forks, 1);
	return 0;
}

/*
 * Wake the reader when this record takes the ring past a quarter full (it
 * also polls on a timer, and its poll is level-triggered, so one wake-up per
 * crossing is enough); past three quarters every record wakes it, in case a
 * crossing raced with another CPU. A wake-up per record would cost more
 * than the record: each is an irq_work and a self-interrupt.
 * `avail` is the ring's fill including this record.
 */
static __always_inline __u64 wake_flags(__u64 avail, __u64 size, __u32 kind)
{
	if (kind >= VIGIL_KIND_COUNT)
		return 0;
	__u64 quarter = wakeup_bytes[kind];
	if (avail >= 3 * quarter || (avail >= quarter && avail < quarter + size + 8))
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void fill_head(struct vigil_record_head *h, __u32 kind, __u32 slot)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	h->kind = kind;
	h->session = slot;
	h->ktime_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->audit_session = have_audit_session ? BPF_CORE_READ(task, sessionid) : AUDIT_SID_UNSET;
	h->uid = (__u32)uid_gid;
	h->gid = uid_gid >> 32;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/*
 * A string read into a buffer of `size` bytes fills it (n == size) both when
 * it is exactly size - 1 bytes long and when it is longer: it was cut only
 * if the source has no NUL at its last kept position.
 */
static __always_inline bool str_was_cut(const char *src, long n, __u32 size, bool user)
{
	char c = 1;

	if (n < (long)size)
		return false;
	if (user)
		bpf_probe_read_user(&c, 1, src + size - 1);
	else
		bpf_probe_read_kernel(&c, 1, src + size - 1);
	return c != 0;
}

static __always_inline struct vigil_exec_record *exec_scratch_rec(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct exec_scratch_value *v = bpf_map_lookup_elem(&exec_scratch, &cpu);

	return v ? &v->rec : NULL;
}

/* A bound the verifier can prove (mask), then the exact clamp. */
#define CLAMP(x, pow2_mask, max)                                                       \
	do {                                                                           \
		asm volatile("%[v] &= %[m]" : [v] "+r"(x) : [m] "i"(pow2_mask));        \
		if ((x) > (max))                                                       \
			(x) = (max);                                                   \
	} while (0)

#define EXEC_RECORD_FIXED offsetof(struct vigil_exec_record, data)

/*
 * Hands a filled command record to the ring: its fixed part and the bytes
 * its argv, path and kernel path use (a typical exec is a few hundred
 * bytes; the most is sizeof(struct vigil_exec_record)). A record the ring
 * refuses is counted lost for its session.
 */
static __always_inline void emit_exec(struct vigil_session_state *state, __u32 slot,
				      struct vigil_exec_record *rec, __s32 ret)
{
	__u64 size = EXEC_RECORD_FIXED + (__u64)rec->argv_len + rec->path_len + 1;

	if (rec->kernel_path_len)
		size += (__u64)rec->kernel_path_len + 1;
	CLAMP(size, 2 * VIGIL_ARGV_MAX - 1, sizeof(*rec)); /* < 2 * ARGV_MAX */
	fill_head(&rec->head, VIGIL_KIND_COMMAND, slot);
	rec->return_code = ret;
	__u64 avail = bpf_ringbuf_query(&command_ring, BPF_RB_AVAIL_DATA) + size + 8;
	count(state, VIGIL_KIND_COMMAND,
	      bpf_ringbuf_output(&command_ring, rec, size,
				 wake_flags(avail, size, VIGIL_KIND_COMMAND)) == 0);
}

/*
 * The kernel path of an open: the new fd's file, named by walking its dentry
 * up to the root of its mount, then across mounts (the mountpoint in the
 * parent mount) up to the root of the mount namespace, one step per
 * bpf_loop round. It is what the kernel opened, whatever user memory says
 * afterwards, and names the file outside any chroot.
 *
 * A bind mount is named by its source where the walk can see it: at the
 * root of a mount, the walk first looks for the nearest ancestor mount of
 * the same filesystem and goes on up the dentries in that mount's view (so
 * /etc/shadow bound onto /tmp/x reads /etc/shadow). When that view does not
 * reach the dentry (another subtree, e.g. a btrfs subvolume), it comes back
 * and names the mount where it is mounted.
 */
#define KPATH_STEPS (4 * VIGIL_KPATH_COMPONENTS)
#define KPATH_END (VIGIL_PATH_MAX - 1) /* index of the kernel path's NUL in walk */
#define DELETED_LEN 10                  /* strlen(" (deleted)") */

/*
 * The walk reads the kernel's structures with plain loads through
 * BTF-typed pointers, not with a bpf_probe_read_kernel() call per field:
 * bpf_rdonly_cast() (Linux 6.2+) types an address (the verifier turns the
 * call into a register move), and the verifier turns each load through it
 * into one that cannot fault (a bad address reads 0), as a probe read
 * would, for a few instructions instead of a helper call. Only the bytes of
 * each name (variable length) and the fd table's slot (a pointer to a
 * pointer, which has no struct type to cast to) go through the helper.
 * Field offsets are CO-RE relocated either way.
 *
 * The loader clears kpath_plain_loads when the kernel refuses the kfunc
 * (older kernels): every field is then a probe read, as BPF_CORE_READ does,
 * and the verifier drops the other branch (and the call with it) as dead
 * code.
 */
const volatile bool kpath_plain_loads = true;

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/*
 * Field `field` of the struct `type` at kernel address `addr`, as a number.
 * The address is taken into a local first: inside BPF_CORE_READ an
 * expression such as w->mnt would be relocated as a kernel type's field.
 */
#define KREAD(type, addr, field)                                                          \
	({                                                                                \
		__u64 kread_addr = (__u64)(addr);                                         \
		kpath_plain_loads                                                         \
			? (__u64)((type *)bpf_rdonly_cast((const void *)kread_addr,       \
							  bpf_core_type_id_kernel(type))) \
				  ->field                                                 \
			: (__u64)BPF_CORE_READ((type *)kread_addr, field);                \
	})

/* Kernel addresses are kept as numbers, typed where they are read (KREAD). */
struct kpath_walk {
	struct open_scratch_value *v; /* where the name is built */
	__u64 dentry;
	__u64 mnt;            /* struct mount */
	__u64 bind;           /* a mount at whose root the walk looks for a same-fs ancestor */
	__u64 bind_sb;        /* its superblock */
	__u64 cand;           /* the ancestor it looks at */
	__u64 jumped;         /* the last mount named through an ancestor, for the way back */
	__u32 jump_off;
	__u32 jump_components;
	__u32 off;            /* first byte of the name in walk */
	__u32 components;
	bool done;            /* the walk stopped by itself, at a root or cut */
	bool cut;
};

/* The struct mount around a vfsmount. */
static __always_inline __u64 real_mount(__u64 vfsmount)
{
	return vfsmount - bpf_core_field_offset(struct mount, mnt);
}

/* Name `bind` by where it is mounted. */
static __always_inline void cross_to_mountpoint(struct kpath_walk *w, __u64 bind)
{
	w->dentry = KREAD(struct mount, bind, mnt_mountpoint);
	w->mnt = KREAD(struct mount, bind, mnt_parent);
}

static long kpath_step(__u64 i, void *data)
{
	struct kpath_walk *w = data;

	if (w->bind) {
		if (KREAD(struct mount, w->cand, mnt.mnt_sb) == w->bind_sb) {
			w->jumped = w->bind;
			w->jump_off = w->off;
			w->jump_components = w->components;
			w->mnt = w->cand;
			w->bind = 0;
			return 0;
		}
		__u64 up = KREAD(struct mount, w->cand, mnt_parent);
		if (up == w->cand) {
			cross_to_mountpoint(w, w->bind);
			w->bind = 0;
			return 0;
		}
		w->cand = up;
		return 0;
	}

	if (w->dentry == KREAD(struct mount, w->mnt, mnt.mnt_root)) {
		w->jumped = 0; /* the view reached its root: the last jump holds */
		__u64 parent = KREAD(struct mount, w->mnt, mnt_parent);
		if (parent == w->mnt) {
			w->done = true; /* the root of the namespace (or of a detached tree) */
			return 1;
		}
		w->bind = w->mnt;
		w->bind_sb = KREAD(struct mount, w->mnt, mnt.mnt_sb);
		w->cand = parent;
		return 0;
	}
	__u64 up = KREAD(struct dentry, w->dentry, d_parent);
	__u32 len = KREAD(struct dentry, w->dentry, d_name.len);
	bool pseudo = false;
	if (up == w->dentry) {
		/* The top of the filesystem, outside this mount's view. */
		if (w->jumped) {
			w->off = w->jump_off;
			w->components = w->jump_components;
			cross_to_mountpoint(w, w->jumped);
			w->jumped = 0;
			return 0;
		}
		/*
		 * A file made without a name in any directory (memfd, anon
		 * inode) has a dentry of its own: the kernel names it "/NAME"
		 * (simple_dname). One without a stored name (a pipe, a socket)
		 * is named by a callback the walk cannot run: cut.
		 */
		if (w->components > 0 || len == 0) {
			w->done = w->cut = true;
			return 1;
		}
		pseudo = true;
	}

	struct open_scratch_value *v = w->v;
	if (!v || w->components >= VIGIL_KPATH_COMPONENTS || len + 1 > w->off) {
		w->done = w->cut = true;
		return 1;
	}
	__u32 off = w->off - len - 1;
	v->walk[off & (VIGIL_PATH_MAX - 1)] = '/';
	bpf_probe_read_kernel(&v->walk[(off + 1) & (VIGIL_PATH_MAX - 1)],
			      len & (VIGIL_PATH_MAX - 1),
			      (const void *)KREAD(struct dentry, w->dentry, d_name.name));
	w->off = off;
	w->components++;
	w->dentry = up;
	if (pseudo) {
		w->done = true;
		return 1;
	}
	return 0;
}

/* The file behind the calling task's descriptor fd, or NULL. */
static __always_inline struct file *file_of_fd(long fd)
{
	__u64 task = (__u64)bpf_get_current_task_btf();
	__u64 files = KREAD(struct task_struct, task, files);
	__u64 fdt = KREAD(struct files_struct, files, fdt);
	struct file *f = NULL;

	if (fd < 0 || fd >= KREAD(struct fdtable, fdt, max_fds))
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), (struct file **)KREAD(struct fdtable, fdt, fd) + fd);
	return f;
}

/*
 * Builds the kernel path of `file` in walk; returns the offset of its first
 * byte (the name ends at walk[KPATH_END], a NUL). A file no longer linked
 * (deleted, O_TMPFILE, memfd) ends in " (deleted)", as in /proc/PID/fd.
 */
static __always_inline __u32 kernel_path(struct open_scratch_value *v, struct file *file, bool *cut)
{
	__u64 leaf = KREAD(struct file, file, f_path.dentry);
	__u64 mnt = real_mount(KREAD(struct file, file, f_path.mnt));
	struct kpath_walk w = {
		.v = v,
		.dentry = leaf,
		.mnt = mnt,
		.off = KPATH_END,
	};

	v->walk[KPATH_END] = 0;
	/* Unhashed and not the root of its mount: unlinked, or never linked. */
	if (!KREAD(struct dentry, leaf, d_hash.pprev) &&
	    leaf != KREAD(struct mount, mnt, mnt.mnt_root)) {
		/* A literal, not a static array: clang turns it into immediate stores. */
		w.off -= DELETED_LEN;
		__builtin_memcpy(&v->walk[KPATH_END - DELETED_LEN], " (deleted)", DELETED_LEN);
	}
	__u32 named = w.off;
	bpf_loop(KPATH_STEPS, kpath_step, &w, 0);
	/* A walk that used every step without reaching a root was cut too. */
	if (!w.done)
		w.cut = true;
	if (w.off == named && w.off > 0)
		v->walk[--w.off & (VIGIL_PATH_MAX - 1)] = '/'; /* the root itself */
	*cut = w.cut;
	return w.off;
}

/*
 * The path given to execve into the record, after its argv (at `at`, which
 * is argv_len): from kernel memory (bprm->filename) or the caller's.
 * Returns the bytes taken, its NUL included.
 */
static __always_inline __u64 exec_path(struct vigil_exec_record *rec, __u64 at,
				       const char *filename, bool user)
{
	CLAMP(at, 2 * VIGIL_ARGV_MAX - 1, VIGIL_ARGV_MAX);
	char *path = &rec->data[at];
	long n = user ? bpf_probe_read_user_str(path, VIGIL_PATH_MAX, filename)
		      : bpf_probe_read_kernel_str(path, VIGIL_PATH_MAX, filename);

	if (n <= 0) {
		path[0] = 0;
		n = 1;
	} else if (str_was_cut(filename, n, VIGIL_PATH_MAX, user)) {
		rec->flags |= VIGIL_EXEC_PATH_TRUNCATED;
	}
	__u64 taken = n;
	CLAMP(taken, 2 * VIGIL_PATH_MAX - 1, VIGIL_PATH_MAX);
	rec->path_len = taken - 1;
	return taken;
}

/*
 * A successful exec. The new image's argv sits contiguously between
 * mm->arg_start and mm->arg_end, written by the kernel and not yet touched
 * by the program: read it whole in one copy, straight into the record.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct vigil_session_state *state;
	struct vigil_exec_record *rec;
	__u32 slot;

	state = find_session(VIGIL_KIND_COMMAND, &slot);
	if (!state)
		return 0;
	rec = exec_scratch_rec();
	if (!rec)
		return 0;

	/*
	 * The file the kernel runs, named from kernel memory like an open's,
	 * first: the walk's loop is verified with as little state live as
	 * possible. Its name waits in the walk buffer.
	 */
	struct file *file = BPF_CORE_READ(bprm, file);
	__u32 cpu = bpf_get_smp_processor_id();
	struct open_scratch_value *v = bpf_map_lookup_elem(&open_scratch, &cpu);
	bool kpath = file && v, cut = false;
	__u32 from = 0;

	rec->flags = 0;
	if (kpath)
		from = kernel_path(v, file, &cut);
	if (cut)
		rec->flags |= VIGIL_EXEC_KPATH_TRUNCATED;

	const char *filename = BPF_CORE_READ(bprm, filename);
	const char *interp = BPF_CORE_READ(bprm, interp);
	if (interp != filename)
		rec->flags |= VIGIL_EXEC_SCRIPT;
	rec->argc = BPF_CORE_READ(bprm, argc);

	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long end = BPF_CORE_READ(mm, arg_end);
	__u64 len = end > start ? end - start : 0;

	if (len > VIGIL_ARGV_MAX) {
		len = VIGIL_ARGV_MAX;
		rec->flags |= VIGIL_EXEC_ARGV_TRUNCATED;
	}
	CLAMP(len, 2 * VIGIL_ARGV_MAX - 1, VIGIL_ARGV_MAX);
	if (len && bpf_probe_read_user(rec->data, len, (const void *)start)) {
		rec->flags |= VIGIL_EXEC_ARGV_UNREADABLE;
		len = 0;
	}
	rec->argv_len = len;
	__u64 at = len + exec_path(rec, len, filename, false);

	rec->kernel_path_len = 0;
	if (kpath && v) {
		__u64 klen = KPATH_END - (from & (VIGIL_PATH_MAX - 1)); /* NUL excluded */

		CLAMP(klen, VIGIL_PATH_MAX - 1, VIGIL_PATH_MAX - 1);
		CLAMP(at, 2 * VIGIL_ARGV_MAX - 1, VIGIL_ARGV_MAX + VIGIL_PATH_MAX);
		bpf_probe_read_kernel(&rec->data[at], klen + 1, &v->walk[from & (VIGIL_PATH_MAX - 1)]);
		rec->kernel_path_len = klen;
	}
	emit_exec(state, slot, rec, 0);
	return 0;
}

/* Walks a user argv array for a failed exec (the old image is still there). */
struct argv_walk {
	const char *const *argv;
	struct vigil_exec_record *rec;
	__u32 off;
	__u32 argc;
};

static long read_one_arg(__u64 i, void *data)
{
	struct argv_walk *w = data;
	const char *arg = NULL;

	if (bpf_probe_read_user(&arg, sizeof(arg), &w->argv[i]) || !arg)
		return 1;
	__u32 off = w->off;
	if (off >= VIGIL_ARGV_MAX) {
		w->rec->flags |= VIGIL_EXEC_ARGV_TRUNCATED;
		return 1;
	}
	long n = bpf_probe_read_user_str(&w->rec->data[off & (VIGIL_ARGV_MAX - 1)],
					 VIGIL_ARGV_MAX - (off & (VIGIL_ARGV_MAX - 1)), arg);
	if (n <= 0) {
		w->rec->flags |= VIGIL_EXEC_ARGV_UNREADABLE;
		return 1;
	}
	w->argc++;
	w->off = off + n;
	if (w->off >= VIGIL_ARGV_MAX) {
		/* The last string was cut to fit; drop it whole. */
		w->rec->flags |= VIGIL_EXEC_ARGV_TRUNCATED;
		w->off = off;
		w->argc--;
		return 1;
	}
	return 0;
}

static __always_inline int failed_exec(struct trace_event_raw_sys_exit *ctx, bool at)
{
	struct vigil_session_state *state;
	struct vigil_exec_record *rec;
	__u32 slot;
	long ret = ctx->ret;

	if (ret >= 0)
		return 0; /* sched_process_exec reported it */
	state = find_session(VIGIL_KIND_COMMAND, &slot);
	if (!state)
		return 0;
	rec = exec_scratch_rec();
	if (!rec)
		return 0;

	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	const char *filename = (const char *)(at ? PT_REGS_PARM2_CORE_SYSCALL(regs)
						  : PT_REGS_PARM1_CORE_SYSCALL(regs));
	const char *const *argv = (const char *const *)(at ? PT_REGS_PARM3_CORE_SYSCALL(regs)
							   : PT_REGS_PARM2_CORE_SYSCALL(regs));

	rec->flags = 0;
	rec->kernel_path_len = 0; /* nothing ran */
	struct argv_walk w = { .argv = argv, .rec = rec };
	if (argv)
		bpf_loop(VIGIL_ARGV_MAX / 2, read_one_arg, &w, 0);
	rec->argv_len = w.off;
	rec->argc = w.argc;
	exec_path(rec, w.off, filename, true);
	emit_exec(state, slot, rec, (__s32)ret);
	return 0;
}

SEC("tp/syscalls/sys_exit_execve")
int vigil_exec_fail(struct trace_event_raw_sys_exit *ctx)
{
	return failed_exec(ctx, false);
}

SEC("tp/syscalls/sys_exit_execveat")
int vigil_execat_fail(struct trace_event_raw_sys_exit *ctx)
{
	return failed_exec(ctx, true);
}

struct open_how_user {
	__u64 flags;
	__u64 mode;
	__u64 resolve;
};

static __always_inline int on_open(struct trace_event_raw_sys_exit *ctx, __u32 call)
{
	struct vigil_session_state *state;
	struct open_scratch_value *v;
	struct vigil_open_record *rec;
	__u32 slot;

	state = find_session(VIGIL_KIND_DISK, &slot);
	if (!state)
		return 0;
	__u32 cpu = bpf_get_smp_processor_id();
	v = bpf_map_lookup_elem(&open_scratch, &cpu);
	if (!v)
		return 0;
	rec = &v->rec;

	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	const char *path;
	__s32 flags;
	__u32 mode;

	switch (call) {
	case VIGIL_OPEN_OPEN:
		path = (const char *)PT_REGS_PARM1_CORE_SYSCALL(regs);
		flags = PT_REGS_PARM2_CORE_SYSCALL(regs);
		mode = PT_REGS_PARM3_CORE_SYSCALL(regs);
		break;
	case VIGIL_OPEN_OPENAT:
		path = (const char *)PT_REGS_PARM2_CORE_SYSCALL(regs);
		flags = PT_REGS_PARM3_CORE_SYSCALL(regs);
		mode = PT_REGS_PARM4_CORE_SYSCALL(regs);
		break;
	case VIGIL_OPEN_OPENAT2: {
		struct open_how_user how = {};
		path = (const char *)PT_REGS_PARM2_CORE_SYSCALL(regs);
		bpf_probe_read_user(&how, sizeof(how), (void *)PT_REGS_PARM3_CORE_SYSCALL(regs));
		flags = how.flags;
		mode = how.mode;
		break;
	}
	default: /* creat(path, mode) is open(path, O_CREAT|O_WRONLY|O_TRUNC, mode) */
		path = (const char *)PT_REGS_PARM1_CORE_SYSCALL(regs);
		flags = O_CREAT_FLAG | O_WRONLY_FLAG | O_TRUNC_FLAG;
		mode = PT_REGS_PARM2_CORE_SYSCALL(regs);
		break;
	}

	long n = bpf_probe_read_user_str(rec->data, VIGIL_PATH_MAX, path);
	rec->flags = 0;
	if (n <= 0) {
		rec->flags |= VIGIL_OPEN_PATH_UNREADABLE;
		n = 1;
		rec->data[0] = 0;
	} else if (str_was_cut(path, n, VIGIL_PATH_MAX, true)) {
		rec->flags |= VIGIL_OPEN_PATH_TRUNCATED;
	}
	rec->path_len = n - 1;
	rec->kernel_path_len = 0;
	rec->_pad = 0;
	rec->return_code = ctx->ret < 0 ? (__s32)ctx->ret : 0;
	rec->open_flags = flags;
	rec->mode = mode;
	rec->call = call;
	fill_head(&rec->head, VIGIL_KIND_DISK, slot);

	__u64 size = offsetof(struct vigil_open_record, data) + n;
	if (ctx->ret >= 0) {
		struct file *f = file_of_fd(ctx->ret);
		bool cut = false;

		if (!f) {
			rec->flags |= VIGIL_OPEN_KPATH_MISSING;
		} else {
			__u32 from = kernel_path(v, f, &cut);
			__u64 klen = KPATH_END - (from & (VIGIL_PATH_MAX - 1)); /* NUL excluded */
			__u64 at = n;

			if (cut)
				rec->flags |= VIGIL_OPEN_KPATH_TRUNCATED;
			/* Power-of-two masks give the verifier bounds; the clamps are exact. */
			asm volatile("%[at] &= %[mask]" : [at] "+r"(at) : [mask] "i"(2 * VIGIL_PATH_MAX - 1));
			if (at > VIGIL_PATH_MAX)
				at = VIGIL_PATH_MAX;
			asm volatile("%[k] &= %[mask]" : [k] "+r"(klen) : [mask] "i"(VIGIL_PATH_MAX - 1));
			bpf_probe_read_kernel(&rec->data[at], klen + 1,
					      &v->walk[from & (VIGIL_PATH_MAX - 1)]);
			rec->kernel_path_len = klen;
			size += klen + 1;
		}
	}
	/* A power-of-two mask gives the verifier a bound; the clamp below is exact. */
	asm volatile("%[size] &= %[mask]" : [size] "+r"(size) : [mask] "i"(4 * VIGIL_PATH_MAX - 1));
	if (size > sizeof(*rec))
		size = sizeof(*rec);
	__u64 avail = bpf_ringbuf_query(&disk_ring, BPF_RB_AVAIL_DATA) + size + 8;
	count(state, VIGIL_KIND_DISK,
	      bpf_ringbuf_output(&disk_ring, rec, size, wake_flags(avail, size, VIGIL_KIND_DISK)) == 0);
	return 0;
}

SEC("tp/syscalls/sys_exit_open")
int vigil_open(struct trace_event_raw_sys_exit *ctx)
{
	return on_open(ctx, VIGIL_OPEN_OPEN);
}

SEC("tp/syscalls/sys_exit_openat")
int vigil_openat(struct trace_event_raw_sys_exit *ctx)
{
	return on_open(ctx, VIGIL_OPEN_OPENAT);
}

SEC("tp/syscalls/sys_exit_openat2")
int vigil_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return on_open(ctx, VIGIL_OPEN_OPENAT2);
}

SEC("tp/syscalls/sys_exit_creat")
int vigil_creat(struct trace_event_raw_sys_exit *ctx)
{
	return on_open(ctx, VIGIL_OPEN_CREAT);
}

/*
 * Network. Process-context hooks find the session of the calling task;
 * what happens later in softirq context (a connect's answer, an inbound
 * handshake) is tied to the socket instead, through sock_marks.
 */
#define TCP_ESTABLISHED_STATE 1
#define TCP_SYN_RECV_STATE 3
#define TCP_CLOSE_STATE 7
#define IPPROTO_UDP_NUM 17
#define AF_UNIX_FAMILY 1
#define ECONNREFUSED_NUM 111
#define NET_RECORD_FIXED offsetof(struct vigil_net_record, path)

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Who marked a socket, taken in process context (connect(), listen()). */
enum { MARK_CONNECT = 1, MARK_LISTEN = 2 };
struct sock_mark {
	struct vigil_record_head head;
	__u32 what;
	__u32 generation;    /* of the session in head.session when marked */
};

/*
 * Per socket, freed with it. BPF_F_CLONE: a listener's mark is copied to
 * each connection it accepts, so an inbound handshake (softirq, any task
 * current) still knows the session and the process that listened.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sock_mark);
} sock_marks SEC(".maps");

/* A UDP destination: address, then namespace, port, family. */
struct net_dest {
	__u64 addr[2];
	__u64 rest;
};

/*
 * The UDP destinations one process reported, on its thread group leader
 * (freed when the process is; a new process of a reused pid starts empty).
 * A ring of VIGIL_NET_REMEMBERED: past it the oldest is forgotten and
 * counted, so memory stays bounded and a repeat to a forgotten destination
 * is reported again rather than never. Reset when the process execs.
 */
struct udp_seen_value {
	struct bpf_spin_lock lock;
	__u32 count;     /* destinations ever remembered since exec */
	__u64 exec_id;   /* the leader's self_exec_id the table belongs to */
	struct net_dest d[VIGIL_NET_REMEMBERED];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct udp_seen_value);
} udp_seen SEC(".maps");

static __always_inline __u32 sock_net_ns(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline void submit_net(struct vigil_net_record *rec, __u64 size)
{
	bpf_ringbuf_submit(rec, wake_flags(bpf_ringbuf_query(&network_ring, BPF_RB_AVAIL_DATA),
					   size, VIGIL_KIND_NETWORK));
}

static __always_inline void clear_net(struct vigil_net_record *rec)
{
	rec->result = 0;
	rec->flags = 0;
	rec->forgotten = 0;
	rec->path_len = 0;
	rec->_pad = 0;
}

/*
 * TCP connect: the socket leaves CLOSE for SYN_SENT inside connect(), in the
 * caller's context, after the source address is chosen.
 */
SEC("tp/sock/inet_sock_set_state")
int vigil_connect(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct vigil_session_state *state;
	struct vigil_net_record *rec;
	__u32 slot;

	if (ctx->newstate != TCP_SYN_SENT_STATE || ctx->protocol != IPPROTO_TCP_NUM)
		return 0;
	state = find_session(VIGIL_KIND_NETWORK, &slot);
	if (!state)
		return 0;
	rec = bpf_ringbuf_reserve(&network_ring, NET_RECORD_FIXED, 0);
	if (!rec) {
		count(state, VIGIL_KIND_NETWORK, false);
		return 0;
	}
	fill_head(&rec->head, VIGIL_KIND_NETWORK, slot);
	clear_net(rec);
	rec->family = ctx->family;
	rec->operation = VIGIL_NET_CONNECT;
	rec->protocol = IPPROTO_TCP_NUM;
	rec->dport = ctx->dport;
	rec->sport = ctx->sport;
	rec->net_ns = sock_net_ns((struct sock *)ctx->skaddr);
	/* Array fields of a tracepoint context cannot be copied with direct
	 * loads at a computed offset; the helper reads them. */
	bpf_probe_read_kernel(rec->saddr4, 4, ctx->saddr);
	bpf_probe_read_kernel(rec->daddr4, 4, ctx->daddr);
	bpf_probe_read_kernel(rec->saddr6, 16, ctx->saddr_v6);
	bpf_probe_read_kernel(rec->daddr6, 16, ctx->daddr_v6);
	submit_net(rec, NET_RECORD_FIXED);
	count(state, VIGIL_KIND_NETWORK, true);
	return 0;
}

/*
 * The session a socket was marked for, if it is still live (the same
 * generation: a slot reused since belongs to another session) and records
 * network.
 */
static __always_inline struct vigil_session_state *state_of_slot(__u32 slot, __u32 generation)
{
	struct vigil_session_state *state = bpf_map_lookup_elem(&sessions, &slot);

	if (!state || !state->generation || state->generation != generation ||
	    !(state->kinds & (1u << VIGIL_KIND_NETWORK)))
		return NULL;
	return state;
}

/* connect() or listen() of a session task: mark the socket (process context). */
static __always_inline void mark_socket(struct bpf_sock_ops *skops, __u32 what)
{
	struct vigil_session_state *state;
	struct bpf_sock *sk = skops->sk;
	struct sock_mark *m;
	__u32 slot;

	if (!sk)
		return;
	state = find_session(VIGIL_KIND_NETWORK, &slot);
	if (!state)
		return;
	m = bpf_sk_storage_get(&sock_marks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!m) {
		/* The connect's result (or the listener's accepts) cannot be told. */
		count(state, VIGIL_KIND_NETWORK, false);
		return;
	}
	fill_head(&m->head, VIGIL_KIND_NETWORK, slot);
	m->what = what;
	m->generation = state->generation;
	if (what == MARK_CONNECT)
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						 BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* Fills the addresses of a sock_ops socket: s* local, d* remote, or swapped. */
static __always_inline void sockops_addrs(struct vigil_net_record *rec,
					  struct bpf_sock_ops *skops, bool peer_first)
{
	__u32 local4 = skops->local_ip4, remote4 = skops->remote_ip4;
	/* Context fields are read at constant offsets only: no loops. */
	__u32 local6[4] = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
			    skops->local_ip6[3] };
	__u32 remote6[4] = { skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2],
			     skops->remote_ip6[3] };
	__u16 lport = skops->local_port;
	__u16 rport = bpf_ntohl(skops->remote_port);
	rec->family = skops->family;
	rec->protocol = IPPROTO_TCP_NUM;
	if (peer_first) {
		__builtin_memcpy(rec->saddr4, &remote4, 4);
		__builtin_memcpy(rec->daddr4, &local4, 4);
		__builtin_memcpy(rec->saddr6, remote6, 16);
		__builtin_memcpy(rec->daddr6, local6, 16);
		rec->sport = rport;
		rec->dport = lport;
	} else {
		__builtin_memcpy(rec->saddr4, &local4, 4);
		__builtin_memcpy(rec->daddr4, &remote4, 4);
		__builtin_memcpy(rec->saddr6, local6, 16);
		__builtin_memcpy(rec->daddr6, remote6, 16);
		rec->sport = lport;
		rec->dport = rport;
	}
}

/*
 * An event of a marked socket, in whatever context: the process is the one
 * that marked it, the time is now.
 */
static __always_inline void emit_marked(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					struct sock_mark *m, __u8 op, __s32 result, __u32 flags)
{
	struct vigil_session_state *state = state_of_slot(m->head.session, m->generation);
	struct vigil_net_record *rec;

	if (!state)
		return;
	rec = bpf_ringbuf_reserve(&network_ring, NET_RECORD_FIXED, 0);
	if (!rec) {
		count(state, VIGIL_KIND_NETWORK, false);
		return;
	}
	__builtin_memcpy(&rec->head, &m->head, sizeof(rec->head));
	rec->head.ktime_ns = bpf_ktime_get_boot_ns();
	clear_net(rec);
	rec->operation = op;
	rec->result = result;
	rec->flags = flags;
	sockops_addrs(rec, skops, op == VIGIL_NET_ACCEPT);
	struct sock *full = (struct sock *)bpf_skc_to_tcp_sock(sk);
	rec->net_ns = full ? sock_net_ns(full) : 0;
	submit_net(rec, NET_RECORD_FIXED);
	count(state, VIGIL_KIND_NETWORK, true);
}

/* A marked connect got its answer: established (0) or closed (refused, failed, given up). */
static __always_inline void connect_result(struct bpf_sock_ops *skops, bool closed)
{
	struct bpf_sock *sk = skops->sk;
	struct sock_mark *m;

	if (!sk)
		return;
	m = bpf_sk_storage_get(&sock_marks, sk, 0, 0);
	if (!m || m->what != MARK_CONNECT)
		return;
	__s32 result = 0;
	__u32 flags = 0;
	if (closed) {
		struct sock *full = (struct sock *)bpf_skc_to_tcp_sock(sk);
		int err = full ? BPF_CORE_READ(full, sk_err) : 0;

		result = -err;
		if (!err)
			flags |= VIGIL_NET_CLOSED;
	}
	emit_marked(skops, sk, m, VIGIL_NET_CONNECT_RESULT, result, flags);
	bpf_sk_storage_delete(&sock_marks, sk);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
					 ~BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* An inbound connection completed its handshake on a session's listener. */
static __always_inline void accepted(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct sock_mark *m;

	if (!sk)
		return;
	m = bpf_sk_storage_get(&sock_marks, sk, 0, 0);
	if (!m)
		return;
	if (m->what == MARK_CONNECT) {
		connect_result(skops, false); /* simultaneous open: SYN_SENT -> SYN_RECV -> here */
		return;
	}
	emit_marked(skops, sk, m, VIGIL_NET_ACCEPT, 0, 0);
	bpf_sk_storage_delete(&sock_marks, sk); /* the child's copy of the listener's mark */
}

/*
 * TCP outcomes. Attached once at the cgroup v2 root, so every socket of the
 * host passes here; only marked sockets (and tasks of a session, for the
 * process-context callbacks) do more than a switch. Always allows.
 */
SEC("sockops")
int vigil_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		mark_socket(skops, MARK_CONNECT);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		mark_socket(skops, MARK_LISTEN);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		connect_result(skops, false);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		accepted(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if ((skops->args[0] == TCP_SYN_SENT_STATE || skops->args[0] == TCP_SYN_RECV_STATE) &&
		    skops->args[1] == TCP_CLOSE_STATE)
			connect_result(skops, true);
		break;
	}
	return 1;
}

/*
 * Whether the process has reported `d` since its last exec; remembers it
 * when not. Returns the slot it took (0..REMEMBERED-1), -1 when it was
 * known, and in *forgotten how many destinations the table dropped so far.
 */
static __always_inline int remember_dest(struct udp_seen_value *t, const struct net_dest *d,
					 __u64 exec_id, __u32 *forgotten)
{
	int taken = -1;
	bool known = false;

	bpf_spin_lock(&t->lock);
	if (t->exec_id != exec_id) {
		t->exec_id = exec_id;
		t->count = 0;
	}
	__u32 n = t->count < VIGIL_NET_REMEMBERED ? t->count : VIGIL_NET_REMEMBERED;
	for (__u32 i = 0; i < VIGIL_NET_REMEMBERED; i++) {
		if (i >= n)
			break;
		if (t->d[i].addr[0] == d->addr[0] && t->d[i].addr[1] == d->addr[1] &&
		    t->d[i].rest == d->rest) {
			known = true;
			break;
		}
	}
	if (!known) {
		taken = t->count & (VIGIL_NET_REMEMBERED - 1);
		t->d[taken] = *d;
		t->count++;
	}
	*forgotten = t->count > VIGIL_NET_REMEMBERED ? t->count - VIGIL_NET_REMEMBERED : 0;
	bpf_spin_unlock(&t->lock);
	return taken;
}

/* Undo remember_dest when the event could not be delivered: it must be retried. */
static __always_inline void forget_dest(struct udp_seen_value *t, int taken,
					const struct net_dest *d)
{
	bpf_spin_lock(&t->lock);
	__u32 i = taken & (VIGIL_NET_REMEMBERED - 1);
	if (t->d[i].addr[0] == d->addr[0] && t->d[i].addr[1] == d->addr[1] &&
	    t->d[i].rest == d->rest)
		t->d[i].rest = 0; /* family 0: matches nothing */
	bpf_spin_unlock(&t->lock);
}

/*
 * A UDP connect() or a datagram sent with an address (sendto, sendmsg,
 * sendmmsg: once per message), reported once per destination per process.
 * A v4-mapped destination on an IPv6 socket is reported (and remembered)
 * as the IPv4 address it is on the wire.
 */
static __always_inline int udp_contact(struct bpf_sock_addr *ctx, __u8 op, const bool v6)
{
	struct vigil_session_state *state;
	struct vigil_net_record *rec;
	__u32 slot;

	if (ctx->protocol != IPPROTO_UDP_NUM)
		return 1;
	state = find_session(VIGIL_KIND_NETWORK, &slot);
	if (!state)
		return 1;

	struct bpf_sock_addr_kern *kern = bpf_cast_to_kern_ctx(ctx);
	__u32 net_ns = sock_net_ns(kern->sk);
	/* A hook reads only its own family's fields (the verifier checks). */
	__u16 family = v6 ? AF_INET6_FAMILY : AF_INET_FAMILY;
	__u32 d6[4] = {};
	__u32 d4 = 0;
	if (!v6) {
		d4 = ctx->user_ip4;
	} else {
		d6[0] = ctx->user_ip6[0];
		d6[1] = ctx->user_ip6[1];
		d6[2] = ctx->user_ip6[2];
		d6[3] = ctx->user_ip6[3];
		if (d6[0] == 0 && d6[1] == 0 && d6[2] == bpf_htonl(0xffff)) {
			family = AF_INET_FAMILY;
			d4 = d6[3];
		}
	}
	__u16 dport = bpf_ntohs((__u16)ctx->user_port);

	struct net_dest d = {};
	if (family == AF_INET_FAMILY) {
		d.addr[0] = d4;
	} else {
		d.addr[0] = ((__u64)d6[1] << 32) | d6[0];
		d.addr[1] = ((__u64)d6[3] << 32) | d6[2];
	}
	d.rest = ((__u64)net_ns << 32) | ((__u64)dport << 16) | family;

	struct task_struct *task = bpf_get_current_task_btf();
	struct udp_seen_value *t = bpf_task_storage_get(&udp_seen, task->group_leader, 0,
							 BPF_LOCAL_STORAGE_GET_F_CREATE);
	__u32 forgotten = 0;
	int taken = -1;
	if (t) {
		taken = remember_dest(t, &d, task->self_exec_id, &forgotten);
		if (taken < 0)
			return 1; /* reported before */
	}
	rec = bpf_ringbuf_reserve(&network_ring, NET_RECORD_FIXED, 0);
	if (!rec) {
		if (t)
			forget_dest(t, taken, &d);
		count(state, VIGIL_KIND_NETWORK, false);
		return 1;
	}
	fill_head(&rec->head, VIGIL_KIND_NETWORK, slot);
	clear_net(rec);
	rec->operation = op;
	rec->protocol = IPPROTO_UDP_NUM;
	rec->family = family;
	rec->dport = dport;
	rec->net_ns = net_ns;
	rec->forgotten = forgotten;
	/* The socket's own address: 0 until bound (the kernel picks one per datagram). */
	struct bpf_sock *bs = ctx->sk;
	__u32 s4 = 0, s6[4] = {};
	if (bs) {
		rec->sport = bs->src_port;
		if (family == AF_INET_FAMILY && ctx->family == AF_INET_FAMILY) {
			s4 = bs->src_ip4;
		} else if (ctx->family == AF_INET6_FAMILY) {
			s6[0] = bs->src_ip6[0];
			s6[1] = bs->src_ip6[1];
			s6[2] = bs->src_ip6[2];
			s6[3] = bs->src_ip6[3];
			if (family == AF_INET_FAMILY)
				s4 = s6[3]; /* v4-mapped or unbound (::) */
		}
	}
	__builtin_memcpy(rec->saddr4, &s4, 4);
	__builtin_memcpy(rec->daddr4, &d4, 4);
	__builtin_memcpy(rec->saddr6, s6, 16);
	__builtin_memcpy(rec->daddr6, d6, 16);
	submit_net(rec, NET_RECORD_FIXED);
	count(state, VIGIL_KIND_NETWORK, true);
	return 1;
}

SEC("cgroup/connect4")
int vigil_udp_connect4(struct bpf_sock_addr *ctx)
{
	return udp_contact(ctx, VIGIL_NET_CONNECT, false);
}

SEC("cgroup/connect6")
int vigil_udp_connect6(struct bpf_sock_addr *ctx)
{
	return udp_contact(ctx, VIGIL_NET_CONNECT, true);
}

SEC("cgroup/sendmsg4")
int vigil_udp_sendmsg4(struct bpf_sock_addr *ctx)
{
	return udp_contact(ctx, VIGIL_NET_SEND, false);
}

SEC("cgroup/sendmsg6")
int vigil_udp_sendmsg6(struct bpf_sock_addr *ctx)
{
	return udp_contact(ctx, VIGIL_NET_SEND, true);
}

/*
 * connect() on an AF_UNIX socket (Linux 6.7+), stream or datagram, with the
 * address as the kernel copied it. libbpf 1.1 does not know the section
 * name cgroup/connect_unix: the loader sets the attach type
 * (BPF_CGROUP_UNIX_CONNECT) itself, and leaves the program out on kernels
 * without it.
 */
SEC("cgroup/connect4")
int vigil_unix_connect(struct bpf_sock_addr *ctx)
{
	struct vigil_session_state *state;
	struct vigil_net_record *rec;
	__u32 slot;

	state = find_session(VIGIL_KIND_NETWORK, &slot);
	if (!state)
		return 1;
	struct bpf_sock_addr_kern *kern = bpf_cast_to_kern_ctx(ctx);
	rec = bpf_ringbuf_reserve(&network_ring, sizeof(*rec), 0);
	if (!rec) {
		count(state, VIGIL_KIND_NETWORK, false);
		return 1;
	}
	fill_head(&rec->head, VIGIL_KIND_NETWORK, slot);
	clear_net(rec);
	rec->family = AF_UNIX_FAMILY;
	rec->operation = VIGIL_NET_CONNECT;
	rec->protocol = 0;
	rec->sport = 0;
	rec->dport = 0;
	rec->net_ns = sock_net_ns(kern->sk);
	__builtin_memset(rec->saddr4, 0, 4 + 4 + 16 + 16);
	__u32 len = kern->uaddrlen;
	struct sockaddr_un *sun = (struct sockaddr_un *)kern->uaddr;
	len = len > 2 ? len - 2 : 0; /* sun_family */
	len &= 127;                  /* a bound the verifier sees; the clamp is exact */
	if (len > sizeof(sun->sun_path))
		len = sizeof(sun->sun_path);
	rec->path_len = len;
	if (len) {
		bpf_probe_read_kernel(rec->path, len, sun->sun_path);
		if (rec->path[0] == 0)
			rec->flags |= VIGIL_NET_UNIX_ABSTRACT;
	}
	submit_net(rec, sizeof(*rec));
	count(state, VIGIL_KIND_NETWORK, true);
	return 1;
}
