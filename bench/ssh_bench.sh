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
vigil=$repo/$build/bin/vigil
[[ -x $vigil ]] || vigil=$(find "$repo/$build" -name vigil -type f -perm -u+x | head -1)

die() {
  echo "ssh_bench: $*" >&2
  for f in "${work:-/nonexistent}"/{vigil,sshd}.log; do [[ -f $f ]] && tail -5 "$f" >&2; done
  exit 1
}
[[ $(id -u) -eq 0 ]] || die "needs root (BPF, cgroups, a private sshd)"
[[ -x $vigil ]] || die "no vigil binary under $build: build first"
[[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd is missing: apt-get install openssh-server"
id "$login" >/dev/null 2>&1 || useradd -m -s /bin/bash "$login"
# sshd without PAM refuses a locked account ("!" in shadow, useradd's
# default); "*" has no password either but is not locked.
if [[ $(getent shadow "$login" | cut -d: -f2) == '!'* ]]; then usermod -p '*' "$login"; fi

work=$(mktemp -d /tmp/vigil-ssh-bench-XXXXXX)
chmod 755 "$work"
vigil_pid='' sshd_pid=''
cleanup() {
  [[ -n $vigil_pid ]] && kill "$vigil_pid" 2>/dev/null && wait "$vigil_pid" 2>/dev/null
  [[ -n $sshd_pid ]] && kill "$sshd_pid" 2>/dev/null && wait "$sshd_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  die "nothing listens on port $1"
}
now_ns() { date +%s%N; }

cd "$work"
ssh-keygen -q -t ed25519 -N '' -C bench-ca -f ca
ssh-keygen -q -t ed25519 -N '' -C bench-user -f user
ssh-keygen -q -s ca -I bench@example.com -n "$login" -V -5m:+4h user.pub
ssh-keygen -q -t ed25519 -N '' -f sshd_host_key

# Vigil's node.
vigil_port=$(free_port)
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
"$vigil" start -c node.yaml > vigil.log 2>&1 &
vigil_pid=$!

# The private sshd: same CA, no PAM, nothing from /etc/ssh.
sshd_port=$(free_port)
cat > sshd_config <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/sshd_host_key
PidFile none
TrustedUserCAKeys $work/ca.pub
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PrintLastLog no
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
mkdir -p /run/sshd  # sshd's privilege separation directory
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2> sshd.log &
sshd_pid=$!
wait_port "$vigil_port"
wait_port "$sshd_port"

client=(ssh -i "$work/user" -o CertificateFile="$work/user-cert.pub" -o IdentitiesOnly=yes
        -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)

# MB/s (10^6 bytes) of `head -c $bytes /dev/zero` read through a session.
throughput() {
  local port=$1 t0 t1 got
  t0=$(now_ns)
  got=$("${client[@]}" -p "$port" "$login@127.0.0.1" "head -c $bytes /dev/zero" | wc -c)
  t1=$(now_ns)
  [[ $got -eq $bytes ]] || die "port $port: received $got of $bytes bytes"
  echo "scale=1; $bytes * 1000 / ($t1 - $t0)" | bc
}
# Median milliseconds of $runs sessions that run `true`.
setup_ms() {
  local port=$1 t0 t1 i
  for ((i = 0; i < runs; i++)); do
    t0=$(now_ns)
    "${client[@]}" -p "$port" "$login@127.0.0.1" true || die "port $port: session failed"
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000))
  done | sort -n | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f\n", m / 1000}'
}

# Each twice, alternating, best throughput kept: a disturbance on the host
# then hurts neither side alone.
vt=0 st=0
for _ in 1 2; do
  t=$(throughput "$vigil_port"); (( $(echo "$t > $vt" | bc) )) && vt=$t
  t=$(throughput "$sshd_port"); (( $(echo "$t > $st" | bc) )) && st=$t
done
vs=$(setup_ms "$vigil_port")
ss=$(setup_ms "$sshd_port")

ratio() { printf "%.2f" "$(echo "scale=4; $1 / $2" | bc)"; }
t_ratio=$(ratio "$vt" "$st")
s_ratio=$(ratio "$vs" "$ss")
t_verdict=$( (( $(echo "$t_ratio >= 0.8" | bc) )) && echo PASS || echo MISS)
s_verdict=$( (( $(echo "$s_ratio <= 1.5" | bc) )) && echo PASS || echo MISS)
sessions=$(grep -c '"session.end"' "$work/data/log/events.log" || true)

out=$repo/docs/benchmarks-ssh.md
cat > "$out" <<EOF
# SSH node benchmark: Vigil vs OpenSSH sshd

Written by \`bench/ssh_bench.sh $build\`; do not edit by hand.

- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ)
- Machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)
- Vigil: \`vigil start\` (libssh $(pkg-config --modversion libssh 2>/dev/null || echo '?')), recording kinds command,network (the default); $sessions sessions recorded during the run
- sshd: $(/usr/sbin/sshd -V 2>&1 | head -1 || true) — private instance on 127.0.0.1, \`UsePAM no\`, \`TrustedUserCAKeys\` = the same CA
- Client: $(ssh -V 2>&1), ed25519 user certificate, both servers on loopback

Commands (\`PORT\` is each server's):

    ssh -p PORT ${login}@127.0.0.1 'head -c $bytes /dev/zero' | wc -c     # (a), best of 2, alternating
    ssh -p PORT ${login}@127.0.0.1 true                                    # (b), median of $runs

| measure | Vigil | sshd | ratio | target | result |
|---|---|---|---|---|---|
| (a) throughput, MB/s | $vt | $st | ${t_ratio}x | ≥ 0.8x | $t_verdict |
| (b) session set-up, ms | $vs | $ss | ${s_ratio}x | ≤ 1.5x | $s_verdict |
EOF
echo "throughput: vigil $vt MB/s, sshd $st MB/s, ratio $t_ratio ($t_verdict)"
echo "set-up:     vigil $vs ms, sshd $ss ms, ratio $s_ratio ($s_verdict)"
echo "wrote $out"
