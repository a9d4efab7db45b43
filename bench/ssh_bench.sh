#!/usr/bin/env bash
# bench/ssh_bench.sh BUILD: the SSH node (`vigil start`) side by side with
# Debian's OpenSSH sshd, same client (OpenSSH ssh), same user certificate:
#   (a) throughput: `head -c 1 GiB /dev/zero` through a session, MB/s;
#   (b) session set-up: connect, authenticate, run `true`, exit; median of N.
# Vigil records with its default kinds (command,network). Writes
# docs/benchmarks-ssh.md. Run on demand (root), not by the tests.
#
#   SSH_BENCH_RUNS=30 SSH_BENCH_BYTES=1073741824 bench/ssh_bench.sh build
#
# The private sshd listens on a free loopback port with its own config and
# host key, is started and stopped here, and never touches the host's sshd.
# Exits non-zero only when the benchmark itself broke, not on a missed target.
set -euo pipefail

build=${1:-build}
runs=${SSH_BENCH_RUNS:-30}
bytes=${SSH_BENCH_BYTES:-1073741824}
login=${SSH_BENCH_LOGIN:-vigiltest}
cd "$(dirname "$0")/.."
repo=$PWD
bench_name=ssh_bench
source bench/lib.sh
vigil=$repo/$build/bin/vigil
[[ -x $vigil ]] || vigil=$(find "$repo/$build" -name vigil -type f -perm -u+x | head -1)

bench_require "$login" "BPF, cgroups, a private sshd"
[[ -x $vigil ]] || die "no vigil binary under $build: build first"
bench_workdir vigil-ssh-bench 755
work=$bench_work
bench_logs=("$work/vigil.log" "$work/sshd.log")

ssh-keygen -q -t ed25519 -N '' -C bench-ca -f ca
ssh-keygen -q -t ed25519 -N '' -C bench-user -f user
ssh-keygen -q -s ca -I bench@example.com -n "$login" -V -5m:+4h user.pub

# Vigil's node.
bench_port vigil_port
cat > node.yaml <<EOF
vigil:
  nodename: ssh-bench
  data_dir: $work/data
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:$vigil_port
  trusted_user_ca_keys: [$work/ca.pub]
  enhanced_recording:
    enabled: true
    root_path: /vigil-ssh-bench-$$
EOF
bench_spawn vigil.log "$vigil" start -c node.yaml

# The private sshd: same CA.
bench_port sshd_port
start_sshd sshd "$sshd_port" "$work/ca.pub" "Subsystem sftp /usr/lib/openssh/sftp-server"
wait_port "$vigil_port"
wait_port "$sshd_port"

client=(ssh -i "$work/user" -o CertificateFile="$work/user-cert.pub" -o IdentitiesOnly=yes
        -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
via_vigil() { "${client[@]}" -p "$vigil_port" "$login@127.0.0.1" "$@"; }
via_sshd() { "${client[@]}" -p "$sshd_port" "$login@127.0.0.1" "$@"; }
read_vigil() { bench_read_mbs "$bytes" via_vigil; }
read_sshd() { bench_read_mbs "$bytes" via_sshd; }
setup_vigil() { bench_session_us via_vigil; }
setup_sshd() { bench_session_us via_sshd; }

# Throughput twice each, alternating, best kept; set-up runs alternating.
bench_best 2 read_vigil read_sshd
vt=${bench_result[0]} st=${bench_result[1]}
bench_median "$runs" setup_vigil setup_sshd
vs=${bench_result[0]} ss=${bench_result[1]}

t_ratio=$(ratio "$vt" "$st")
s_ratio=$(ratio "$vs" "$ss")
t_verdict=$(at_least "$t_ratio" 0.8)
s_verdict=$(at_most "$s_ratio" 1.5)
sessions=$(grep -c '"session.end"' "$work/data/log/events.log" || true)

out=$repo/docs/benchmarks-ssh.md
cat > "$out" <<EOF
# SSH node benchmark: Vigil vs OpenSSH sshd

Written by \`bench/ssh_bench.sh $build\`; do not edit by hand.

- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ); load average at the end: $(bench_load)
- Machine: $(bench_machine)
- Vigil: \`vigil start\` (libssh $(bench_libssh_version)), recording kinds command,network (the default); $sessions sessions recorded during the run
- sshd: $(bench_sshd_version) — private instance on 127.0.0.1, \`UsePAM no\`, \`TrustedUserCAKeys\` = the same CA
- Client: $(ssh -V 2>&1), ed25519 user certificate, both servers on loopback

Commands (\`PORT\` is each server's):

    ssh -p PORT ${login}@127.0.0.1 'head -c $bytes /dev/zero' | wc -c     # (a), best of 2, alternating
    ssh -p PORT ${login}@127.0.0.1 true                                    # (b), median of $runs, alternating

| measure | Vigil | sshd | ratio | target | result |
|---|---|---|---|---|---|
| (a) throughput, MB/s | $vt | $st | ${t_ratio}x | ≥ 0.8x | $t_verdict |
| (b) session set-up, ms | $vs | $ss | ${s_ratio}x | ≤ 1.5x | $s_verdict |
EOF
echo "throughput: vigil $vt MB/s, sshd $st MB/s, ratio $t_ratio ($t_verdict)"
echo "set-up:     vigil $vs ms, sshd $ss ms, ratio $s_ratio ($s_verdict)"
echo "wrote $out"
