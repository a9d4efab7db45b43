#!/usr/bin/env python3
"""bench/session_scale.py: concurrent recorded sessions on one SSH node.

The real `vigil start` (a standalone node trusting a test CA, recording
command, network and disk) and the real OpenSSH `ssh`, one client process per
session, as a user would. For each count of --sessions (default 10,1000; the
first is the baseline of the same run), on a fresh node:

  1. set-up: every session is opened (at most --parallel handshakes under way
     at once) and waits at a barrier (a FIFO that the benchmark holds open; a
     shell builtin `read` blocks on it, no process is started while waiting);
  2. the peak: all sessions live at once; the node's RSS (the monitor and
     every connection's front end), its descriptors and processes are read;
  3. the workload: the barrier opens (one line per session) and every session
     runs, at the same time, --execs times `/bin/true scale-bench I` and
     --opens times `: < MARKER` (an open of a file the benchmark made);
  4. the check: after every session.end, the node is stopped and its audit
     log is read: each session must hold exactly --execs session.command
     events of /bin/true scale-bench and --opens session.disk events of the
     marker, and every session.end must report 0 lost events.

Reported: set-up rate (sessions/s), the node's CPU (user+sys seconds of the
monitor and front ends per session and per wall second, sampled from /proc
every 0.2 s), RSS, fds, events expected / found / lost. Ratios against the
baseline. Exit status 3 when an event is missing or lost.

Limits raised here (inherited by the node and the clients): RLIMIT_NOFILE to
1,048,576 and RLIMIT_NPROC unlimited, or to the hard limits where root may not
raise those (the report says which). Needs root (BPF, cgroups, switching users).

  bench/session_scale.py [--build build] [--sessions 10,1000] [--execs 20]
                         [--opens 20] [--parallel 50] [--port 28022]
                         [--stop-live] [--markdown docs/benchmarks-scale.md]

With --stop-live the workload is not run: once every session is live the node
gets SIGTERM, and every session must get its session.end with no session
process or cgroup left (exit status 3 otherwise); the stop's duration is
reported.
"""
import argparse
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

LOGIN = "vigiltest"


def die(msg):
    print("session_scale: " + msg, file=sys.stderr)
    sys.exit(1)


def sh(cmd, cwd=None):
    subprocess.run(cmd, shell=True, check=True, cwd=cwd)


def proc_stat(pid):
    """(utime+stime seconds, rss KiB) of one process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        fields = text[text.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
        return cpu, rss
    except (OSError, ValueError, IndexError):
        return None


def pss_kib(pids):
    """Proportional set size summed: shared pages (the binary, libraries) counted
    once over the processes that share them, unlike RSS."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def node_pids(monitor):
    """The monitor and its connections' front ends (children running ssh-frontend)."""
    pids = [monitor]
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if b"ssh-frontend" not in f.read():
                    continue
            with open(f"/proc/{name}/status") as f:
                if f"PPid:\t{monitor}\n" not in f.read():
                    continue
            pids.append(int(name))
        except OSError:
            pass
    return pids


class CpuMeter:
    """CPU seconds of the node's processes, from samples: the last value seen of
    each pid, summed (a front end that exits between samples loses at most
    one interval of its CPU, so the figure is a lower bound)."""

    def __init__(self, monitor):
        self.monitor = monitor
        self.last = {}

    def sample(self):
        rss = 0
        pids = node_pids(self.monitor)
        for pid in pids:
            st = proc_stat(pid)
            if st:
                self.last[pid] = st[0]
                rss += st[1]
        return rss, len(pids)

    def total(self):
        return sum(self.last.values())


class LogTail:
    def __init__(self, path):
        self.path, self.offset, self.buf = path, 0, b""
        self.counts = {}

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        self.offset += len(data)
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            for kind in (b'"session.start"', b'"session.end"'):
                if kind in line:
                    self.counts[kind] = self.counts.get(kind, 0) + 1

    def count(self, kind):
        return self.counts.get(f'"{kind}"'.encode(), 0)


def measure(args, n, work, port):
    data = os.path.join(work, f"data-{n}")
    root_path = f"/vigil-session-scale-{os.getpid()}-{n}"
    cfg = os.path.join(work, f"node-{n}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""vigil:
  nodename: session-scale
  data_dir: {data}
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:{port}
  trusted_user_ca_keys: [{work}/ca.pub]
  default_recording_kinds: [command, network, disk]
  enhanced_recording:
    enabled: true
    root_path: {root_path}
""")
    go = os.path.join(work, f"go-{n}")
    os.mkfifo(go, 0o666)
    os.chmod(go, 0o666)
    marker = os.path.join(work, f"marker-{n}")
    with open(marker, "w") as f:
        f.write("scale\n")
    os.chmod(marker, 0o644)
    # Held open read-write: opening the FIFO never blocks, and a session that
    # reaches its `read` late still finds its line.
    go_fd = os.open(go, os.O_RDWR)

    log = open(os.path.join(work, f"vigil-{n}.log"), "wb")
    node = subprocess.Popen([args.vigil, "start", "-c", cfg], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if node.poll() is not None:
                die(f"vigil start exited: see {work}/vigil-{n}.log")
            time.sleep(0.05)
    else:
        die("the node does not listen")

    events_log = os.path.join(data, "log", "events.log")
    tail = LogTail(events_log)
    meter = CpuMeter(node.pid)
    meter.sample()
    base_cpu = meter.total()
    command = (f"read -r _ < {go} && for ((i=0;i<{args.execs};i++)); do /bin/true scale-bench $i; done; "
               f"for ((i=0;i<{args.opens};i++)); do : < {marker}; done")
    client = ["ssh", "-p", str(port), "-i", f"{work}/user", "-o", f"CertificateFile={work}/user-cert.pub",
              "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
              "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
              f"{LOGIN}@127.0.0.1", command]
    errors = open(os.path.join(work, f"ssh-{n}.err"), "ab")
    procs = []
    t0 = time.monotonic()
    last_sample = 0
    peak_rss = 0
    while tail.count("session.start") < n:
        tail.poll()
        started = tail.count("session.start")
        while len(procs) < n and len(procs) - started < args.parallel:
            procs.append(subprocess.Popen(client, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=errors))
        failed = [p for p in procs if p.poll() is not None]
        if failed:
            node.terminate()
            die(f"{len(failed)} ssh clients exited before the barrier opened: see {work}/ssh-{n}.err")
        if time.monotonic() - last_sample > 0.2:
            peak_rss = max(peak_rss, meter.sample()[0])
            last_sample = time.monotonic()
        if time.monotonic() - t0 > 900:
            die(f"only {started} of {n} sessions started in 900 s")
        time.sleep(0.02)
    setup_s = time.monotonic() - t0
    time.sleep(1)  # every shell reaches its read
    rss, processes = meter.sample()
    peak_rss = max(peak_rss, rss)
    pss = pss_kib(node_pids(node.pid))
    fds = len(os.listdir(f"/proc/{node.pid}/fd"))
    setup_cpu = meter.total() - base_cpu
    # At rest: every session live and waiting, nothing to do but be there.
    idle_before = meter.total()
    time.sleep(5)
    meter.sample()
    idle_cpu_s = (meter.total() - idle_before) / 5

    if args.stop_live:
        # The node is stopped with every session live (waiting at the
        # barrier): each must get its session.end, nothing may run on.
        t1 = time.monotonic()
        node.send_signal(signal.SIGTERM)
        try:
            status = node.wait(timeout=600)
        except subprocess.TimeoutExpired:
            die(f"the node did not stop in 600 s: see {work}/vigil-{n}.log")
        stop_s = time.monotonic() - t1
        os.close(go_fd)
        tail.poll()
        cgroups = f"/cgroup2{root_path}"
        left = [d for d in os.listdir(cgroups)] if os.path.isdir(cgroups) else []
        running = 0
        for d in left:
            try:
                with open(os.path.join(cgroups, d, "cgroup.procs")) as f:
                    running += len(f.read().split())
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        return {
            "n": n, "setup_s": setup_s, "rss": rss, "pss": pss, "stop_s": stop_s, "idle": idle_cpu_s,
            "status": status, "ends": tail.count("session.end"), "cgroups_left": len(left),
            "running": running,
        }

    # The workload, all sessions at once.
    cpu_before = meter.total()
    t1 = time.monotonic()
    os.write(go_fd, b"go\n" * n)
    while any(p.poll() is None for p in procs):
        if time.monotonic() - last_sample > 0.2:
            peak_rss = max(peak_rss, meter.sample()[0])
            last_sample = time.monotonic()
        if time.monotonic() - t1 > 1800:
            die("the sessions did not finish in 1800 s")
        time.sleep(0.05)
    work_s = time.monotonic() - t1
    meter.sample()
    work_cpu = meter.total() - cpu_before
    ssh_failures = sum(1 for p in procs if p.returncode != 0)
    deadline = time.monotonic() + 120
    while tail.count("session.end") < n and time.monotonic() < deadline:
        tail.poll()
        time.sleep(0.1)
    node.send_signal(signal.SIGTERM)
    node.wait(timeout=120)
    os.close(go_fd)

    # Every session's events.
    per = {}
    lost = 0
    ends = 0
    with open(events_log) as f:
        for line in f:
            e = json.loads(line)
            sid = e.get("sid")
            kind = e.get("event")
            s = per.setdefault(sid, {"commands": 0, "opens": 0})
            # argv without argv[0], as Teleport's session.command has it.
            if kind == "session.command" and e.get("path") == "/bin/true" and \
                    (e.get("argv") or [None])[:1] == ["scale-bench"]:
                s["commands"] += 1
            elif kind == "session.disk" and e.get("path") == marker:
                s["opens"] += 1
            elif kind == "session.end":
                ends += 1
                lost += sum((e.get("lost_events") or {}).values())
    sessions = [s for s in per.values() if s["commands"] or s["opens"]]
    short = sum(1 for s in sessions if s["commands"] != args.execs or s["opens"] != args.opens)
    found = sum(s["commands"] + s["opens"] for s in sessions)
    return {
        "n": n, "setup_s": setup_s, "setup_cpu": setup_cpu, "idle": idle_cpu_s, "peak_rss": peak_rss, "rss": rss, "pss": pss,
        "processes": processes, "fds": fds, "work_s": work_s, "work_cpu": work_cpu,
        "expected": n * (args.execs + args.opens), "found": found, "lost": lost, "ends": ends,
        "sessions_short": short + (n - len(sessions)), "ssh_failures": ssh_failures,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--sessions", default="10,1000")
    p.add_argument("--execs", type=int, default=20)
    p.add_argument("--opens", type=int, default=20)
    p.add_argument("--parallel", type=int, default=50)
    p.add_argument("--port", type=int, default=28022)
    p.add_argument("--stop-live", action="store_true",
                   help="stop the node (SIGTERM) with every session live instead of the "
                        "workload: every session must get its session.end, and no session "
                        "process or cgroup may be left")
    p.add_argument("--markdown")
    args = p.parse_args()
    if os.geteuid() != 0:
        die("needs root (BPF, cgroups, switching users)")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args.vigil = os.path.join(repo, args.build, "bin", "vigil")
    if not os.access(args.vigil, os.X_OK):
        die(f"{args.vigil} is missing: build first (ninja -C {args.build} vigil)")
    # As high as this host lets root set them (a container without
    # CAP_SYS_RESOURCE keeps its hard limits): the node and the clients
    # inherit them.
    for limit, want in ((resource.RLIMIT_NOFILE, 1 << 20), (resource.RLIMIT_NPROC, resource.RLIM_INFINITY)):
        try:
            resource.setrlimit(limit, (want, want))
        except (ValueError, OSError):
            hard = resource.getrlimit(limit)[1]
            resource.setrlimit(limit, (hard, hard))
    args.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        pwd.getpwnam(LOGIN)
    except KeyError:
        sh(f"useradd -m -s /bin/bash {LOGIN}")
    work = tempfile.mkdtemp(prefix="vigil-session-scale-")
    os.chmod(work, 0o755)
    sh("ssh-keygen -q -t ed25519 -N '' -C scale-ca -f ca && "
       "ssh-keygen -q -t ed25519 -N '' -C scale-user -f user && "
       f"ssh-keygen -q -s ca -I scale@example.com -n {LOGIN} -V -5m:+4h user.pub", cwd=work)
    runs = []
    try:
        for n in [int(x) for x in args.sessions.split(",")]:
            print(f"session_scale: {n} sessions ...", file=sys.stderr)
            runs.append(measure(args, n, work, args.port))
    finally:
        if not os.environ.get("VIGIL_KEEP"):
            shutil.rmtree(work, ignore_errors=True)

    if args.stop_live:
        table = ("| sessions live | set-up s | node RSS MiB | node PSS MiB | node CPU s/s at rest | stop s | exit status "
                 "| session.end written | session cgroups left | session processes left |\n"
                 "|---|---|---|---|---|---|---|---|---|---|\n")
        failed = False
        for r in runs:
            table += (f"| {r['n']:,} | {r['setup_s']:.1f} | {r['rss'] / 1024:.0f} | {r['pss'] / 1024:.0f} "
                      f"| {r['idle']:.3f} | {r['stop_s']:.1f} | {r['status']} | {r['ends']:,} | {r['cgroups_left']} "
                      f"| {r['running']} |\n")
            failed |= r["ends"] != r["n"] or r["cgroups_left"] or r["running"] or r["status"] != 0
        print(table, end="")
        if args.markdown:
            with open(args.markdown, "a") as f:
                f.write(table)
        sys.exit(3 if failed else 0)

    head = ("| sessions | set-up s | sessions/s | node RSS MiB at peak | node PSS MiB, all live | PSS KiB per session | node fds | node processes | node CPU s/s at rest, all live "
            "| workload s | node CPU s (set-up + workload) | CPU ms per session | CPU s/s in workload "
            "| events expected | found | lost (session.end) | sessions short | ssh failures |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    rows = ""
    for r in runs:
        cpu = r["setup_cpu"] + r["work_cpu"]
        rows += (f"| {r['n']:,} | {r['setup_s']:.1f} | {r['n'] / r['setup_s']:.1f} | {r['peak_rss'] / 1024:.0f} "
                 f"| {r['pss'] / 1024:.0f} | {r['pss'] / r['n']:.0f} | {r['fds']} | {r['processes']} | {r['idle']:.3f} | {r['work_s']:.1f} | {cpu:.1f} "
                 f"| {cpu * 1000 / r['n']:.1f} | {r['work_cpu'] / r['work_s']:.2f} | {r['expected']:,} | {r['found']:,} "
                 f"| {r['lost']} | {r['sessions_short']} | {r['ssh_failures']} |\n")
    b = runs[0]
    notes = ""
    for r in runs[1:]:
        cpu_b = (b["setup_cpu"] + b["work_cpu"]) / b["n"]
        cpu_r = (r["setup_cpu"] + r["work_cpu"]) / r["n"]
        notes += (f"- {r['n']:,} sessions against {b['n']:,}: set-up rate {r['n'] / r['setup_s'] / (b['n'] / b['setup_s']):.2f}x, "
                  f"node CPU per session {cpu_r / cpu_b if cpu_b else 0:.2f}x, "
                  f"PSS per session {(r['pss'] / r['n']) / (b['pss'] / b['n']):.2f}x\n")
    print(head + rows + notes, end="")
    if args.markdown:
        load = open("/proc/loadavg").read().split()[:2]
        with open(args.markdown, "a") as f:
            f.write(f"\nCommand: `bench/session_scale.py --sessions {args.sessions} --execs {args.execs} "
                    f"--opens {args.opens} --parallel {args.parallel}`, RLIMIT_NOFILE {args.nofile} (load average at the end: {load[0]}, {load[1]})\n\n"
                    + head + rows + "\n" + notes)
    bad = any(r["lost"] or r["found"] != r["expected"] or r["sessions_short"] or r["ssh_failures"] or r["ends"] < r["n"]
              for r in runs)
    sys.exit(3 if bad else 0)


if __name__ == "__main__":
    main()
