#!/usr/bin/env bash
# bench/path_bench.sh BUILD: the whole SSH path of issue 10 §5, a user's
# client through the proxy to a node, against OpenSSH over the same shape:
#   Vigil    `vigil start` (auth service, proxy, node with enhanced
#            recording) on loopback; a user made with vigilctl, signed up and
#            logged in with vsh; `vsh ssh root@NODE ...` (OpenSSH's ssh with
#            vsh's ssh_config: ProxyJump through the proxy's SSH port)
#   OpenSSH  two private sshd instances, a jump host (AllowTcpForwarding) and
#            the destination; `ssh -J root@JUMP -p PORT root@DEST ...`
# measuring (a) 1 GiB written to `cat > /dev/null` on the node, MB/s, best of
# 2, alternating; (b) 1 GiB read from `head -c` on the node, likewise; (c)
# set-up of `... true`, median of N, alternating. Targets (issue 10): set-up
# <= 1.5x, throughput >= 0.8x. Same client binary, certificates both ways,
# host keys checked both ways. Writes docs/benchmarks-path.md. Root.
#
#   BENCH_PORTS=29000-29999 PATH_BENCH_RUNS=30 bench/path_bench.sh build
#
# Exits non-zero only when the benchmark itself broke, not on a missed target.
set -euo pipefail

build=${1:-build}
runs=${PATH_BENCH_RUNS:-30}
bytes=${PATH_BENCH_BYTES:-1073741824}
login=root
cd "$(dirname "$0")/.."
repo=$PWD
bench_name=path_bench
source bench/lib.sh
vigil=$repo/$build/bin/vigil
vigilctl=$repo/$build/bin/vigilctl
vsh=$repo/$build/bin/vsh

bench_require "$login" "enhanced recording loads BPF programs; private sshd instances"
for b in "$vigil" "$vigilctl" "$vsh"; do
  [[ -x $b ]] || die "no $b: build first (ninja -C $build vigil vigilctl vsh)"
done
# The cluster's services run as the 'vigil' user and pass through it.
bench_workdir vigil-path-bench 755
work=$bench_work
bench_logs=("$work/vigil.log" "$work/jump.log" "$work/dest.log")

# --- Vigil: the cluster, as `make demo` starts it.
bench_port auth_port
bench_port web_port
bench_port proxy_port
bench_port tunnel_port
bench_port node_port
node=path-bench-node
config=$work/vigil.yaml
cat >"$config" <<EOF
version: v3
teleport:
  nodename: $node
  data_dir: $work/data
auth_service:
  enabled: true
  cluster_name: pathbench
  listen_addr: 127.0.0.1:$auth_port
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:$web_port
  listen_addr: 127.0.0.1:$proxy_port
  tunnel_listen_addr: 127.0.0.1:$tunnel_port
  public_addr: 127.0.0.1:$web_port
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:$node_port
  enhanced_recording:
    enabled: true
    root_path: /vigil-path-bench-$$
EOF
bench_spawn vigil.log "$vigil" start -c "$config"
vigil_pid=$bench_last_pid
up=0
for _ in $(seq 300); do
  if "$vigilctl" -c "$config" nodes ls 2>/dev/null | grep -q "$node" &&
     (exec 3<>"/dev/tcp/127.0.0.1/$node_port") 2>/dev/null; then
    up=1
    break
  fi
  kill -0 "$vigil_pid" 2>/dev/null || die "vigil start exited"
  sleep 0.2
done
((up)) || die "the node $node was not listed within 60 s"

added=$("$vigilctl" -c "$config" users add benchuser --roles=access --logins=$login) ||
  die "vigilctl users add failed"
token=$(awk '/vsh signup/ {print $NF}' <<<"$added")
[[ -n $token ]] || die "no sign-up token in: $added"
export VSH_HOME=$work/vsh
password='path bench password 0123'
echo "$password" | "$vsh" signup --proxy=127.0.0.1:$web_port --insecure --password-stdin "$token" \
  >vsh.log 2>&1 || die "vsh signup failed: $(cat vsh.log)"
echo "$password" | "$vsh" login --proxy=127.0.0.1:$web_port,$proxy_port --user=benchuser \
  --insecure --password-stdin >>vsh.log 2>&1 || die "vsh login failed: $(cat vsh.log)"

# --- OpenSSH: a jump sshd and a destination sshd, host certificates of one
# CA, the user's certificate for root.
ssh-keygen -q -t ed25519 -N '' -C user-ca -f user_ca
ssh-keygen -q -t ed25519 -N '' -C host-ca -f host_ca
ssh-keygen -q -t ed25519 -N '' -C bench-user -f user
ssh-keygen -q -s user_ca -I benchuser -n "$login" -V -5m:+4h user.pub
for h in dest jump; do
  ssh-keygen -q -t ed25519 -N '' -f ${h}_host
  ssh-keygen -q -s host_ca -h -I $h -n 127.0.0.1 -V -5m:+4h ${h}_host.pub
done
bench_port dest_port
bench_port jump_port
start_sshd dest "$dest_port" "$work/user_ca.pub" "PermitRootLogin prohibit-password"
start_sshd jump "$jump_port" "$work/user_ca.pub" "PermitRootLogin prohibit-password" \
  "AllowTcpForwarding yes"
wait_port "$dest_port"
wait_port "$jump_port"
echo "@cert-authority * $(cat host_ca.pub)" >known_hosts
cat >ssh_config <<EOF
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

via_vigil() { "$vsh" ssh "$login@$node" "$@"; }
via_sshd() { ssh -F "$work/ssh_config" -J "$login@127.0.0.1:$jump_port" -p "$dest_port" "$login@127.0.0.1" "$@"; }
[[ $(via_vigil 'id -un') == "$login" ]] || die "vsh ssh $login@$node did not run as $login"
[[ $(via_sshd 'id -un') == "$login" ]] || die "ssh -J through sshd did not run as $login"
write_vigil() { bench_write_mbs "$bytes" via_vigil; }
write_sshd() { bench_write_mbs "$bytes" via_sshd; }
read_vigil() { bench_read_mbs "$bytes" via_vigil; }
read_sshd() { bench_read_mbs "$bytes" via_sshd; }
setup_vigil() { bench_session_us via_vigil; }
setup_sshd() { bench_session_us via_sshd; }

# What each path negotiates (both connections of each: to the jump host and,
# through it, to the destination).
negotiated() { "$@" 2>&1 >/dev/null | sed -n 's/.*kex: algorithm: \(.*\)/\1/p; s/.*server->client cipher: \([^ ]*\).*/\1/p' | sort | uniq -c | awk '{printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1}' || true; }
vsh_config=$(find "$VSH_HOME" -name ssh_config | head -1)
[[ -n $vsh_config ]] || die "vsh wrote no ssh_config under $VSH_HOME"
algs_vigil=$(negotiated ssh -v -F "$vsh_config" -l "$login" "$node" true)
algs_sshd=$(negotiated ssh -v -F "$work/ssh_config" -J "$login@127.0.0.1:$jump_port" -p "$dest_port" "$login@127.0.0.1" true)

load0=$(bench_load)
bench_best 2 write_vigil write_sshd
vw=${bench_result[0]} sw=${bench_result[1]}
bench_best 2 read_vigil read_sshd
vr=${bench_result[0]} sr=${bench_result[1]}
bench_median "$runs" setup_vigil setup_sshd
vs=${bench_result[0]} ss=${bench_result[1]}

w_ratio=$(ratio "$vw" "$sw")
r_ratio=$(ratio "$vr" "$sr")
s_ratio=$(ratio "$vs" "$ss")
# What the node recorded: every session of the run reached the audit log.
for _ in $(seq 50); do
  ends=$(grep -c '"event":"session.end"' "$work/data/log/events.log" || true)
  ((ends >= runs + 6)) && break  # id -un, kex, 2 writes, 2 reads, the set-ups
  sleep 0.2
done
cats=$(grep '"event":"session.command"' "$work/data/log/events.log" | grep -c '"program":"cat"' || true)

out=$repo/docs/benchmarks-path.md
cat > "$out" <<EOF
# Full-path benchmark: vsh ssh through the Vigil proxy to a Vigil node vs ssh -J through OpenSSH

Written by \`bench/path_bench.sh $build\`; do not edit by hand. Issue 10 §5's
first benchmark: a session's set-up latency and 1 GiB through proxy and node.

- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ); load average before: $load0, at the end: $(bench_load)
- Machine: $(bench_machine)
- Vigil: one \`vigil start\` on loopback (auth service, proxy, node; libssh $(bench_libssh_version)), the node recording
  with its default kinds (command,network); a user made with \`vigilctl users add\`, signed up and
  logged in with \`vsh --password-stdin\`; $ends sessions ended in the cluster's audit log, $cats \`cat\` commands recorded
- OpenSSH: $(bench_sshd_version), two private instances on loopback (jump host with
  \`AllowTcpForwarding yes\`; destination), \`UsePAM no\`, user and host certificates
- Client, both ways: $(ssh -V 2>&1) (\`vsh ssh\` runs it with vsh's ssh_config, ProxyJump through the proxy)
- Negotiated (key exchange, cipher; each hop): Vigil $algs_vigil; OpenSSH $algs_sshd
- Alternating: each round runs Vigil then OpenSSH, so a disturbance of the shared host hurts neither alone

Commands:

    head -c $bytes /dev/zero | vsh ssh root@$node 'cat > /dev/null'                         # (a) Vigil
    head -c $bytes /dev/zero | ssh -J root@127.0.0.1:JUMP -p DEST root@127.0.0.1 'cat > /dev/null'  # (a) OpenSSH
    vsh ssh root@$node 'head -c $bytes /dev/zero' | wc -c                                    # (b), likewise
    vsh ssh root@$node true                                                                  # (c), likewise

| measure | Vigil (vsh, proxy, node) | OpenSSH (ssh -J, sshd, sshd) | ratio | target | result |
|---|---|---|---|---|---|
| (a) 1 GiB to the node, MB/s, best of 2 | $vw | $sw | ${w_ratio}x | ≥ 0.8x | $(at_least "$w_ratio" 0.8) |
| (b) 1 GiB from the node, MB/s, best of 2 | $vr | $sr | ${r_ratio}x | ≥ 0.8x | $(at_least "$r_ratio" 0.8) |
| (c) set-up of \`true\`, ms, median of $runs | $vs | $ss | ${s_ratio}x | ≤ 1.5x | $(at_most "$s_ratio" 1.5) |

The proxy alone (destination = sshd both ways) is in [benchmarks-proxy.md](benchmarks-proxy.md),
the node alone in [benchmarks-ssh.md](benchmarks-ssh.md).
EOF
echo "to the node:   vigil $vw MB/s, openssh $sw MB/s, ratio $w_ratio"
echo "from the node: vigil $vr MB/s, openssh $sr MB/s, ratio $r_ratio"
echo "set-up:        vigil $vs ms, openssh $ss ms, ratio $s_ratio"
echo "wrote $out"
