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
 *   network  tp/sock/inet_sock_set_state (CLOSE -> SYN_SENT)
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

/* Path and argv of a command, looked up (and deleted) by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, struct vigil_exec_args);
} exec_args SEC(".maps");

/*
 * Per-CPU scratch (plain arrays: the values are too big for per-CPU maps).
 * max_entries is set to the number of possible CPUs by the loader. The slack
 * after argv lets one argument be read at any offset below VIGIL_ARGV_MAX
 * with a bound the verifier can prove; what lands there is dropped.
 */
struct exec_scratch_value {
	struct vigil_exec_args args;
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

__u64 next_args_id = 0;

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

static __always_inline struct vigil_exec_args *exec_scratch_slot(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct exec_scratch_value *v = bpf_map_lookup_elem(&exec_scratch, &cpu);

	return v ? &v->args : NULL;
}

/* Hand a filled argument store to the map and the record to the ring. */
static __always_inline void emit_exec(struct vigil_session_state *state, __u32 slot,
				      struct vigil_exec_args *args, __s32 ret)
{
	struct vigil_exec_record *rec;
	__u64 id = __sync_fetch_and_add(&next_args_id, 1) + 1;
	__u32 flags = args->flags;

	if (bpf_map_update_elem(&exec_args, &id, args, BPF_NOEXIST)) {
		flags |= VIGIL_EXEC_ARGS_LOST;
		id = 0;
	}
	rec = bpf_ringbuf_reserve(&command_ring, sizeof(*rec), 0);
	if (!rec) {
		if (id)
			bpf_map_delete_elem(&exec_args, &id);
		count(state, VIGIL_KIND_COMMAND, false);
		return;
	}
	fill_head(&rec->head, VIGIL_KIND_COMMAND, slot);
	rec->args_id = id;
	rec->return_code = ret;
	rec->flags = flags;
	bpf_ringbuf_submit(rec, wake_flags(bpf_ringbuf_query(&command_ring, BPF_RB_AVAIL_DATA),
					   sizeof(*rec), VIGIL_KIND_COMMAND));
	/* A record without its arguments was not delivered whole. */
	count(state, VIGIL_KIND_COMMAND, !(flags & VIGIL_EXEC_ARGS_LOST));
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

struct kpath_walk {
	struct dentry *dentry;
	struct mount *mnt;
	struct mount *bind;     /* a mount at whose root the walk looks for a same-fs ancestor */
	struct mount *cand;     /* the ancestor it looks at */
	struct mount *jumped;   /* the last mount named through an ancestor, for the way back */
	__u32 jump_off;
	__u32 jump_components;
	__u32 off;              /* first byte of the name in walk */
	__u32 components;
	bool done;              /* the walk stopped by itself, at a root or cut */
	bool cut;
};

static __always_inline struct mount *real_mount(struct vfsmount *m)
{
	return (struct mount *)((char *)m - bpf_core_field_offset(struct mount, mnt));
}

/* Name `bind` by where it is mounted. */
static __always_inline void cross_to_mountpoint(struct kpath_walk *w, struct mount *bind)
{
	w->dentry = BPF_CORE_READ(bind, mnt_mountpoint);
	w->mnt = BPF_CORE_READ(bind, mnt_parent);
}

static long kpath_step(__u64 i, void *data)
{
	struct kpath_walk *w = data;

	/* Fields are copied to locals first: a CO-RE read of w->x would
	 * relocate kpath_walk itself, which the kernel's BTF does not have. */
	struct mount *bind = w->bind;
	struct mount *mnt = w->mnt;

	if (bind) {
		struct mount *c = w->cand;

		if (BPF_CORE_READ(c, mnt.mnt_sb) == BPF_CORE_READ(bind, mnt.mnt_sb)) {
			w->jumped = bind;
			w->jump_off = w->off;
			w->jump_components = w->components;
			w->mnt = c;
			w->bind = NULL;
			return 0;
		}
		struct mount *up = BPF_CORE_READ(c, mnt_parent);
		if (up == c) {
			cross_to_mountpoint(w, bind);
			w->bind = NULL;
			return 0;
		}
		w->cand = up;
		return 0;
	}

	struct dentry *d = w->dentry;
	if (d == BPF_CORE_READ(mnt, mnt.mnt_root)) {
		w->jumped = NULL; /* the view reached its root: the last jump holds */
		struct mount *parent = BPF_CORE_READ(mnt, mnt_parent);
		if (parent == mnt) {
			w->done = true; /* the root of the namespace (or of a detached tree) */
			return 1;
		}
		w->bind = mnt;
		w->cand = parent;
		return 0;
	}
	struct dentry *up = BPF_CORE_READ(d, d_parent);
	bool pseudo = false;
	if (up == d) {
		/* The top of the filesystem, outside this mount's view. */
		if (w->jumped) {
			w->off = w->jump_off;
			w->components = w->jump_components;
			cross_to_mountpoint(w, w->jumped);
			w->jumped = NULL;
			return 0;
		}
		/*
		 * A file made without a name in any directory (memfd, anon
		 * inode) has a dentry of its own: the kernel names it "/NAME"
		 * (simple_dname). One without a stored name (a pipe, a socket)
		 * is named by a callback the walk cannot run: cut.
		 */
		if (w->components > 0 || BPF_CORE_READ(d, d_name.len) == 0) {
			w->done = w->cut = true;
			return 1;
		}
		pseudo = true;
	}

	__u32 cpu = bpf_get_smp_processor_id();
	struct open_scratch_value *v = bpf_map_lookup_elem(&open_scratch, &cpu);
	if (!v) {
		w->done = w->cut = true;
		return 1;
	}
	__u32 len = BPF_CORE_READ(d, d_name.len);
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	if (w->components >= VIGIL_KPATH_COMPONENTS || len + 1 > w->off) {
		w->done = w->cut = true;
		return 1;
	}
	__u32 off = w->off - len - 1;
	v->walk[off & (VIGIL_PATH_MAX - 1)] = '/';
	bpf_probe_read_kernel(&v->walk[(off + 1) & (VIGIL_PATH_MAX - 1)],
			      len & (VIGIL_PATH_MAX - 1), name);
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
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/*
 * Builds the kernel path of `f` in walk; returns the offset of its first
 * byte (the name ends at walk[KPATH_END], a NUL). A file no longer linked
 * (deleted, O_TMPFILE, memfd) ends in " (deleted)", as in /proc/PID/fd.
 */
static __always_inline __u32 kernel_path(struct open_scratch_value *v, struct file *f, bool *cut)
{
	struct dentry *leaf = BPF_CORE_READ(f, f_path.dentry);
	struct mount *mnt = real_mount(BPF_CORE_READ(f, f_path.mnt));
	struct kpath_walk w = {
		.dentry = leaf,
		.mnt = mnt,
		.off = KPATH_END,
	};

	v->walk[KPATH_END] = 0;
	/* Unhashed and not the root of its mount: unlinked, or never linked. */
	if (!BPF_CORE_READ(leaf, d_hash.pprev) && leaf != BPF_CORE_READ(mnt, mnt.mnt_root)) {
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
 * A successful exec. The new image's argv sits contiguously between
 * mm->arg_start and mm->arg_end, written by the kernel and not yet touched
 * by the program: read it whole in one copy.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct vigil_session_state *state;
	struct vigil_exec_args *args;
	__u32 slot;

	state = find_session(VIGIL_KIND_COMMAND, &slot);
	if (!state)
		return 0;
	args = exec_scratch_slot();
	if (!args)
		return 0;

	const char *filename = BPF_CORE_READ(bprm, filename);
	const char *interp = BPF_CORE_READ(bprm, interp);
	long n = bpf_probe_read_kernel_str(args->path, sizeof(args->path), filename);

	args->flags = 0;
	args->path_len = n > 0 ? n - 1 : 0;
	if (str_was_cut(filename, n, sizeof(args->path), false))
		args->flags |= VIGIL_EXEC_PATH_TRUNCATED;
	if (interp != filename)
		args->flags |= VIGIL_EXEC_SCRIPT;
	args->argc = BPF_CORE_READ(bprm, argc);

	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long end = BPF_CORE_READ(mm, arg_end);
	__u64 len = end > start ? end - start : 0;

	if (len > VIGIL_ARGV_MAX) {
		len = VIGIL_ARGV_MAX;
		args->flags |= VIGIL_EXEC_ARGV_TRUNCATED;
	}
	asm volatile("%[len] &= %[mask]" : [len] "+r"(len) : [mask] "i"(2 * VIGIL_ARGV_MAX - 1));
	if (len > VIGIL_ARGV_MAX)
		len = VIGIL_ARGV_MAX;
	if (len && bpf_probe_read_user(args->argv, len, (const void *)start)) {
		args->flags |= VIGIL_EXEC_ARGV_UNREADABLE;
		len = 0;
	}
	args->argv_len = len;

	/* The file the kernel runs, named from kernel memory like an open's. */
	struct file *file = BPF_CORE_READ(bprm, file);
	__u32 cpu = bpf_get_smp_processor_id();
	struct open_scratch_value *v = bpf_map_lookup_elem(&open_scratch, &cpu);
	args->kernel_path_len = 0;
	args->_pad = 0;
	if (file && v) {
		bool cut = false;
		__u32 from = kernel_path(v, file, &cut);
		__u64 klen = KPATH_END - (from & (VIGIL_PATH_MAX - 1)); /* NUL excluded */

		asm volatile("%[k] &= %[mask]" : [k] "+r"(klen) : [mask] "i"(VIGIL_PATH_MAX - 1));
		bpf_probe_read_kernel(args->kernel_path, klen + 1, &v->walk[from & (VIGIL_PATH_MAX - 1)]);
		args->kernel_path_len = klen;
		if (cut)
			args->flags |= VIGIL_EXEC_KPATH_TRUNCATED;
	}
	emit_exec(state, slot, args, 0);
	return 0;
}

/* Walks a user argv array for a failed exec (the old image is still there). */
struct argv_walk {
	const char *const *argv;
	struct vigil_exec_args *args;
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
		w->args->flags |= VIGIL_EXEC_ARGV_TRUNCATED;
		return 1;
	}
	long n = bpf_probe_read_user_str(&w->args->argv[off & (VIGIL_ARGV_MAX - 1)],
					 VIGIL_ARGV_MAX - (off & (VIGIL_ARGV_MAX - 1)), arg);
	if (n <= 0) {
		w->args->flags |= VIGIL_EXEC_ARGV_UNREADABLE;
		return 1;
	}
	w->argc++;
	w->off = off + n;
	if (w->off >= VIGIL_ARGV_MAX) {
		/* The last string was cut to fit; drop it whole. */
		w->args->flags |= VIGIL_EXEC_ARGV_TRUNCATED;
		w->off = off;
		w->argc--;
		return 1;
	}
	return 0;
}

static __always_inline int failed_exec(struct trace_event_raw_sys_exit *ctx, bool at)
{
	struct vigil_session_state *state;
	struct vigil_exec_args *args;
	__u32 slot;
	long ret = ctx->ret;

	if (ret >= 0)
		return 0; /* sched_process_exec reported it */
	state = find_session(VIGIL_KIND_COMMAND, &slot);
	if (!state)
		return 0;
	args = exec_scratch_slot();
	if (!args)
		return 0;

	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	const char *filename = (const char *)(at ? PT_REGS_PARM2_CORE_SYSCALL(regs)
						  : PT_REGS_PARM1_CORE_SYSCALL(regs));
	const char *const *argv = (const char *const *)(at ? PT_REGS_PARM3_CORE_SYSCALL(regs)
							   : PT_REGS_PARM2_CORE_SYSCALL(regs));
	long n = bpf_probe_read_user_str(args->path, sizeof(args->path), filename);

	args->flags = 0;
	args->kernel_path_len = 0; /* nothing ran */
	args->_pad = 0;
	args->path_len = n > 0 ? n - 1 : 0;
	if (str_was_cut(filename, n, sizeof(args->path), true))
		args->flags |= VIGIL_EXEC_PATH_TRUNCATED;

	struct argv_walk w = { .argv = argv, .args = args };
	if (argv)
		bpf_loop(VIGIL_ARGV_MAX / 2, read_one_arg, &w, 0);
	args->argv_len = w.off;
	args->argc = w.argc;
	emit_exec(state, slot, args, (__s32)ret);
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
 * TCP connect: the socket leaves CLOSE for SYN_SENT inside connect(), in the
 * caller's context, after the source address is chosen.
 */
SEC("tp/sock/inet_sock_set_state")
int vigil_connect(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct vigil_session_state *state;
	struct vigil_connect_record *rec;
	__u32 slot;

	if (ctx->newstate != TCP_SYN_SENT_STATE || ctx->protocol != IPPROTO_TCP_NUM)
		return 0;
	state = find_session(VIGIL_KIND_NETWORK, &slot);
	if (!state)
		return 0;
	rec = bpf_ringbuf_reserve(&network_ring, sizeof(*rec), 0);
	if (!rec) {
		count(state, VIGIL_KIND_NETWORK, false);
		return 0;
	}
	fill_head(&rec->head, VIGIL_KIND_NETWORK, slot);
	rec->family = ctx->family;
	rec->dport = ctx->dport;
	rec->sport = ctx->sport;
	rec->_pad = 0;
	/* Array fields of a tracepoint context cannot be copied with direct
	 * loads at a computed offset; the helper reads them. */
	bpf_probe_read_kernel(rec->saddr4, 4, ctx->saddr);
	bpf_probe_read_kernel(rec->daddr4, 4, ctx->daddr);
	bpf_probe_read_kernel(rec->saddr6, 16, ctx->saddr_v6);
	bpf_probe_read_kernel(rec->daddr6, 16, ctx->daddr_v6);
	bpf_ringbuf_submit(rec, wake_flags(bpf_ringbuf_query(&network_ring, BPF_RB_AVAIL_DATA),
					   sizeof(*rec), VIGIL_KIND_NETWORK));
	count(state, VIGIL_KIND_NETWORK, true);
	return 0;
}
