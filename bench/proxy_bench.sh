#!/usr/bin/env bash
# bench/proxy_bench.sh BUILD: OpenSSH's ssh to the same destination sshd
# through two jump hosts, `ssh -J`, side by side:
#   Vigil    the proxy's jump port (vigil-proxy-harness proxy, as nobody)
#   OpenSSH  a private sshd used as the jump host (AllowTcpForwarding)
# measuring (a) 1 GiB written through `cat >/dev/null` on the destination,
# MB/s, best of 2, alternating; (b) set-up of `ssh -J ... true`, median of N.
# Same client, same user certificate, same destination; everything on
# loopback. Writes docs/benchmarks-proxy.md. Root (the proxy drops to nobody).
#
#   PROXY_BENCH_RUNS=30 PROXY_BENCH_BYTES=1073741824 bench/proxy_bench.sh build
#
# Exits non-zero only when the benchmark itself broke, not on a missed target.
set -euo pipefail

build=${1:-build}
runs=${PROXY_BENCH_RUNS:-30}
bytes=${PROXY_BENCH_BYTES:-1073741824}
login=${PROXY_BENCH_LOGIN:-vigiltest}
cd "$(dirname "$0")/.."
repo=$PWD
harness=$repo/$build/tests/vigil-proxy-harness

die() {
  echo "proxy_bench: $*" >&2
  for f in "${work:-/nonexistent}"/{proxy,jump,dest}.log; do [[ -f $f ]] && tail -5 "$f" >&2; done
  exit 1
}
[[ $(id -u) -eq 0 ]] || die "needs root (the proxy binds, then drops to nobody)"
[[ -x $harness ]] || die "no $harness: build first (ninja -C $build vigil-proxy-harness)"
[[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd is missing: apt-get install openssh-server"
id "$login" >/dev/null 2>&1 || useradd -m -s /bin/bash "$login"
if [[ $(getent shadow "$login" | cut -d: -f2) == '!'* ]]; then usermod -p '*' "$login"; fi

work=$(mktemp -d /tmp/vigil-proxy-bench-XXXXXX)
chmod 711 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  die "nothing listens on port $1"
}
now_ns() { date +%s%N; }

cd "$work"
ssh-keygen -q -t ed25519 -N '' -C user-ca -f user_ca
ssh-keygen -q -t ed25519 -N '' -C host-ca -f host_ca
ssh-keygen -q -t ed25519 -N '' -C bench-user -f user
ssh-keygen -q -s user_ca -I alice -n "$login" -V -5m:+4h user.pub
ssh-keygen -q -t ed25519 -N '' -f proxy_host
for h in dest jump; do
  ssh-keygen -q -t ed25519 -N '' -f ${h}_host
  ssh-keygen -q -s host_ca -h -I $h -n benchnode,127.0.0.1 -V -5m:+4h ${h}_host.pub
done

mkdir -p /run/sshd
sshd() {  # name port
  cat > $1_config <<EOF
Port $2
ListenAddress 127.0.0.1
HostKey $work/$1_host
HostCertificate $work/$1_host-cert.pub
PidFile none
TrustedUserCAKeys $work/user_ca.pub
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PrintLastLog no
StrictModes no
AllowTcpForwarding yes
EOF
  /usr/sbin/sshd -D -e -f "$work/$1_config" 2> $1.log &
  pids+=($!)
}
dest_port=$(free_port)
jump_port=$(free_port)
sshd dest "$dest_port"
sshd jump "$jump_port"

# The Vigil proxy, its node list holding the destination as "benchnode".
mkdir db && chown nobody: db
"$harness" proxy --host-key proxy_host --user-ca user_ca.pub --host-ca host_ca.pub \
  --db "$work/db/cluster.db" --cluster bench --jump 127.0.0.1:0 --tunnel "" \
  --ports-file "$work/db/ports" --run-as nobody \
  --add-node "0b6c3e7a-0000-4000-8000-000000000001,benchnode,127.0.0.1:$dest_port" 2> proxy.log &
pids+=($!)
for _ in $(seq 200); do [[ -f db/ports ]] && break; sleep 0.05; done
[[ -f db/ports ]] || die "the proxy did not start"
read -r proxy_port _ < db/ports
wait_port "$dest_port"
wait_port "$jump_port"
wait_port "$proxy_port"

{
  echo "[127.0.0.1]:$proxy_port $(cat proxy_host.pub)"
  echo "@cert-authority * $(cat host_ca.pub)"
} > known_hosts
cat > ssh_config <<EOF
Host *
  IdentityFile $work/user
  CertificateFile $work/user-cert.pub
  IdentitiesOnly yes
  IdentityAgent none
  BatchMode yes
  StrictHostKeyChecking yes
  UserKnownHostsFile $work/known_hosts
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
EOF
# The same destination sshd both ways: by its node name through Vigil, by
# its address through sshd (which has no node list).
via_vigil=(ssh -F "$work/ssh_config" -J "$login@127.0.0.1:$proxy_port" -p 3022 "$login@benchnode")
via_sshd=(ssh -F "$work/ssh_config" -J "$login@127.0.0.1:$jump_port" -p "$dest_port" "$login@127.0.0.1")
"${via_vigil[@]}" true || die "ssh -J through the Vigil proxy failed"
"${via_sshd[@]}" true || die "ssh -J through sshd failed"

# MB/s (10^6 bytes) written through `cat >/dev/null` on the destination.
throughput() {
  local t0 t1
  t0=$(now_ns)
  head -c "$bytes" /dev/zero | "$@" 'cat > /dev/null' || die "$*: transfer failed"
  t1=$(now_ns)
  echo "scale=1; $bytes * 1000 / ($t1 - $t0)" | bc
}
# Median milliseconds of $runs `ssh -J ... true`.
setup_ms() {
  local t0 t1 i
  for ((i = 0; i < runs; i++)); do
    t0=$(now_ns)
    "$@" true || die "$*: session failed"
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000))
  done | sort -n | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f\n", m / 1000}'
}

vt=0 st=0
for _ in 1 2; do
  t=$(throughput "${via_vigil[@]}"); (( $(echo "$t > $vt" | bc) )) && vt=$t
  t=$(throughput "${via_sshd[@]}"); (( $(echo "$t > $st" | bc) )) && st=$t
done
vs=$(setup_ms "${via_vigil[@]}")
ss=$(setup_ms "${via_sshd[@]}")

ratio() { printf "%.2f" "$(echo "scale=4; $1 / $2" | bc)"; }
t_ratio=$(ratio "$vt" "$st")
s_ratio=$(ratio "$vs" "$ss")
t_verdict=$( (( $(echo "$t_ratio >= 0.8" | bc) )) && echo PASS || echo MISS)
s_verdict=$( (( $(echo "$s_ratio <= 1.5" | bc) )) && echo PASS || echo MISS)
load=$(cut -d' ' -f1-3 /proc/loadavg)

out=$repo/docs/benchmarks-proxy.md
cat > "$out" <<EOF
# Proxy benchmark: ssh -J through the Vigil proxy vs through OpenSSH sshd

Written by \`bench/proxy_bench.sh $build\`; do not edit by hand.

- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ); load average at the end: $load
- Machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)
- Vigil: the proxy's jump port (\`vigil-proxy-harness proxy\`, libssh $(pkg-config --modversion libssh 2>/dev/null || echo '?'), as nobody), node list in SQLite
- OpenSSH: $(/usr/sbin/sshd -V 2>&1 | head -1 || true) as the jump host, \`AllowTcpForwarding yes\`, \`UsePAM no\`
- Destination: one private sshd for both; client: $(ssh -V 2>&1), ed25519 user certificate; all on loopback

Commands:

    head -c $bytes /dev/zero | ssh -J JUMP -p PORT DEST 'cat > /dev/null'   # (a), best of 2, alternating
    ssh -J JUMP -p PORT DEST true                                        # (b), median of $runs

| measure | via Vigil proxy | via sshd | ratio | target | result |
|---|---|---|---|---|---|
| (a) throughput, MB/s | $vt | $st | ${t_ratio}x | ≥ 0.8x | $t_verdict |
| (b) set-up, ms | $vs | $ss | ${s_ratio}x | ≤ 1.5x | $s_verdict |
EOF
echo "throughput: vigil $vt MB/s, sshd $st MB/s, ratio $t_ratio ($t_verdict)"
echo "set-up:     vigil $vs ms, sshd $ss ms, ratio $s_ratio ($s_verdict)"
echo "wrote $out"
