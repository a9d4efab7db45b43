#!/usr/bin/env bash
# bench/proxy_bench.sh BUILD: OpenSSH's ssh to the same destination sshd
# through two jump hosts, `ssh -J`, side by side:
#   Vigil    the proxy's jump port (vigil-proxy-harness proxy, as nobody)
#   OpenSSH  a private sshd used as the jump host (AllowTcpForwarding)
# measuring (a) 1 GiB written through `cat >/dev/null` on the destination,
# MB/s, best of 2, alternating; (b) set-up of `ssh -J ... true`, median of N,
# alternating. Same client, same user certificate, same destination;
# everything on loopback. Writes docs/benchmarks-proxy.md. Root (the proxy
# drops to nobody). The whole path (vsh ssh through `vigil start`'s proxy
# to its node) is bench/path_bench.sh.
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
bench_name=proxy_bench
source bench/lib.sh
harness=$repo/$build/tests/vigil-proxy-harness

bench_require "$login" "the proxy binds, then drops to nobody"
[[ -x $harness ]] || die "no $harness: build first (ninja -C $build vigil-proxy-harness)"
bench_workdir vigil-proxy-bench 711
work=$bench_work
bench_logs=("$work/proxy.log" "$work/jump.log" "$work/dest.log")

ssh-keygen -q -t ed25519 -N '' -C user-ca -f user_ca
ssh-keygen -q -t ed25519 -N '' -C host-ca -f host_ca
ssh-keygen -q -t ed25519 -N '' -C bench-user -f user
ssh-keygen -q -s user_ca -I alice -n "$login" -V -5m:+4h user.pub
ssh-keygen -q -t ed25519 -N '' -f proxy_host
for h in dest jump; do
  ssh-keygen -q -t ed25519 -N '' -f ${h}_host
  ssh-keygen -q -s host_ca -h -I $h -n benchnode,127.0.0.1 -V -5m:+4h ${h}_host.pub
done

bench_port dest_port
bench_port jump_port
start_sshd dest "$dest_port" "$work/user_ca.pub" "AllowTcpForwarding yes"
start_sshd jump "$jump_port" "$work/user_ca.pub" "AllowTcpForwarding yes"

# The Vigil proxy, its node list holding the destination as "benchnode".
mkdir db && chown nobody: db
bench_spawn proxy.log "$harness" proxy --host-key proxy_host --user-ca user_ca.pub \
  --host-ca host_ca.pub --db "$work/db/cluster.db" --cluster bench --jump 127.0.0.1:0 \
  --tunnel "" --ports-file "$work/db/ports" --run-as nobody \
  --add-node "0b6c3e7a-0000-4000-8000-000000000001,benchnode,127.0.0.1:$dest_port"
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
via_vigil() { ssh -F "$work/ssh_config" -J "$login@127.0.0.1:$proxy_port" -p 3022 "$login@benchnode" "$@"; }
via_sshd() { ssh -F "$work/ssh_config" -J "$login@127.0.0.1:$jump_port" -p "$dest_port" "$login@127.0.0.1" "$@"; }
via_vigil true || die "ssh -J through the Vigil proxy failed"
via_sshd true || die "ssh -J through sshd failed"
write_vigil() { bench_write_mbs "$bytes" via_vigil; }
write_sshd() { bench_write_mbs "$bytes" via_sshd; }
setup_vigil() { bench_session_us via_vigil; }
setup_sshd() { bench_session_us via_sshd; }

bench_best 2 write_vigil write_sshd
vt=${bench_result[0]} st=${bench_result[1]}
bench_median "$runs" setup_vigil setup_sshd
vs=${bench_result[0]} ss=${bench_result[1]}

t_ratio=$(ratio "$vt" "$st")
s_ratio=$(ratio "$vs" "$ss")
t_verdict=$(at_least "$t_ratio" 0.8)
s_verdict=$(at_most "$s_ratio" 1.5)

out=$repo/docs/benchmarks-proxy.md
cat > "$out" <<EOF
# Proxy benchmark: ssh -J through the Vigil proxy vs through OpenSSH sshd

Written by \`bench/proxy_bench.sh $build\`; do not edit by hand.

- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ); load average at the end: $(bench_load)
- Machine: $(bench_machine)
- Vigil: the proxy's jump port (\`vigil-proxy-harness proxy\`, libssh $(bench_libssh_version), as nobody), node list in SQLite
- OpenSSH: $(bench_sshd_version) as the jump host, \`AllowTcpForwarding yes\`, \`UsePAM no\`
- Destination: one private sshd for both; client: $(ssh -V 2>&1), ed25519 user certificate; all on loopback

Commands:

    head -c $bytes /dev/zero | ssh -J JUMP -p PORT DEST 'cat > /dev/null'   # (a), best of 2, alternating
    ssh -J JUMP -p PORT DEST true                                        # (b), median of $runs, alternating

| measure | via Vigil proxy | via sshd | ratio | target | result |
|---|---|---|---|---|---|
| (a) throughput, MB/s | $vt | $st | ${t_ratio}x | ≥ 0.8x | $t_verdict |
| (b) set-up, ms | $vs | $ss | ${s_ratio}x | ≤ 1.5x | $s_verdict |
EOF
echo "throughput: vigil $vt MB/s, sshd $st MB/s, ratio $t_ratio ($t_verdict)"
echo "set-up:     vigil $vs ms, sshd $ss ms, ratio $s_ratio ($s_verdict)"
echo "wrote $out"
