#!/usr/bin/env bash
# bench/ab_bench.sh VIGIL_A VIGIL_B: two builds of the SSH node (`vigil
# start`) against each other and against one private OpenSSH sshd, in one
# run, alternating (the order of the three rotates each round), so that a
# disturbance of the shared host hurts no side alone:
#   (a) 1 GiB read from `head -c` through a session, MB/s, and the server's
#       CPU time per GiB (its process and reaped children: the session's
#       processes, front ends, sshd's per-connection processes);
#   (b) 1 GiB written to `cat > /dev/null`, likewise;
#   (c) AB_PTY_BYTES (64 MiB) read from `head -c` on a terminal (ssh -tt):
#       the path where privilege separation adds a hop (the pty master stays
#       with the monitor, which relays it to the front end and records it);
#   (d) session set-up of `true`, median of N.
# The server CPU time is of Vigil's two builds only: an sshd listener's
# counters do not include its connections' processes (they read ~0).
# Reports each round's ratio A/B and their median: the A/B comparison that a
# loaded machine disturbs least. Same client, user certificate and node
# config for all. Root (BPF, cgroups, a private sshd).
#
#   AB_ROUNDS=5 AB_RUNS=30 AB_LABEL_A=after AB_LABEL_B=before \
#     AB_OUT=docs/benchmarks-privsep.md bench/ab_bench.sh build/bin/vigil /tmp/old/bin/vigil
#
# Exits non-zero only when the benchmark itself broke.
set -euo pipefail

vigil_a=$(realpath "${1:?give two vigil binaries: bench/ab_bench.sh VIGIL_A VIGIL_B}")
vigil_b=$(realpath "${2:?give two vigil binaries: bench/ab_bench.sh VIGIL_A VIGIL_B}")
rounds=${AB_ROUNDS:-5}
runs=${AB_RUNS:-30}
bytes=${AB_BYTES:-1073741824}
pty_bytes=${AB_PTY_BYTES:-67108864}
login=${AB_LOGIN:-vigiltest}
label_a=${AB_LABEL_A:-A}
label_b=${AB_LABEL_B:-B}
out=${AB_OUT:-}
cd "$(dirname "$0")/.."
repo=$PWD
bench_name=ab_bench
source bench/lib.sh

bench_require "$login" "BPF, cgroups, a private sshd"
for b in "$vigil_a" "$vigil_b"; do [[ -x $b ]] || die "$b is not an executable"; done
bench_workdir vigil-ab-bench 755
work=$bench_work
bench_logs=("$work/a.log" "$work/b.log" "$work/sshd.log")

ssh-keygen -q -t ed25519 -N '' -C bench-ca -f ca
ssh-keygen -q -t ed25519 -N '' -C bench-user -f user
ssh-keygen -q -s ca -I bench@example.com -n "$login" -V -5m:+4h user.pub

node() {  # NAME BINARY: sets port_NAME and pid_NAME
  local port
  bench_port port
  cat > "$1.yaml" <<EOF
vigil:
  nodename: ab-bench-$1
  data_dir: $work/data-$1
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:$port
  trusted_user_ca_keys: [$work/ca.pub]
  enhanced_recording:
    enabled: true
    root_path: /vigil-ab-bench-$1-$$
EOF
  bench_spawn "$1.log" "$2" start -c "$1.yaml"
  printf -v "port_$1" '%s' "$port"
  printf -v "pid_$1" '%s' "$bench_last_pid"
}
node a "$vigil_a"
node b "$vigil_b"
bench_port port_s
start_sshd sshd "$port_s" "$work/ca.pub"
pid_s=$bench_last_pid
for p in "$port_a" "$port_b" "$port_s"; do wait_port "$p"; done

client=(ssh -i "$work/user" -o CertificateFile="$work/user-cert.pub" -o IdentitiesOnly=yes
        -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
to() { local port=$1; shift; "${client[@]}" -p "$port" "$login@127.0.0.1" "$@"; }
to_a() { to "$port_a" "$@"; }
to_b() { to "$port_b" "$@"; }
to_s() { to "$port_s" "$@"; }
for s in a b s; do [[ $("to_$s" 'id -un') == "$login" ]] || die "side $s: no session"; done

# One transfer: MB/s and the server's CPU ms for it (after its connection
# is reaped: a short settle).
declare -A mbs cpu
transfer() {  # SIDE KIND(read|write) ROUND
  local side=$1 kind=$2 pid c0 c1 v
  pid=pid_$side
  c0=$(bench_cpu_ms "${!pid}")
  if [[ $kind == pty ]]; then
    v=$(bench_read_mbs "$pty_bytes" "to_$side" -tt)
  else
    v=$("bench_${kind}_mbs" "$bytes" "to_$side")
  fi
  sleep 0.3
  c1=$(bench_cpu_ms "${!pid}")
  mbs[$side,$kind,$3]=$v
  local n=$bytes
  [[ $kind == pty ]] && n=$pty_bytes
  cpu[$side,$kind,$3]=$(((c1 - c0) * 1073741824 / n))
}
sides=(a b s)
load0=$(bench_load)
rounds_log=''
for ((r = 0; r < rounds; r++)); do
  for kind in read write pty; do
    for ((i = 0; i < 3; i++)); do transfer "${sides[(r + i) % 3]}" "$kind" "$r"; done
  done
  line="round $((r + 1))/$rounds (MB/s, CPU ms/GiB):"
  for kind in read write pty; do
    line+=" $kind a ${mbs[a,$kind,$r]} ${cpu[a,$kind,$r]}, b ${mbs[b,$kind,$r]} ${cpu[b,$kind,$r]}, sshd ${mbs[s,$kind,$r]};"
  done
  echo "$line" >&2
  rounds_log+="    $line"$'\n'
done
setup_a() { bench_session_us to_a; }
setup_b() { bench_session_us to_b; }
setup_s() { bench_session_us to_s; }
bench_median "$runs" setup_a setup_b setup_s
sa=${bench_result[0]} sb=${bench_result[1]} ss=${bench_result[2]}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# The median over rounds of X (a table key pattern with R for the round).
med_of() {  # ARRAY SIDE KIND
  local -n arr=$1
  local r list=''
  for ((r = 0; r < rounds; r++)); do list+="${arr[$2,$3,$r]} "; done
  median <<<"$list"
}
# The median over rounds of each round's ratio X/Y.
med_ratio() {  # ARRAY SIDE_X SIDE_Y KIND
  local -n arr=$1
  local r list=''
  for ((r = 0; r < rounds; r++)); do
    list+="$(echo "scale=4; ${arr[$2,$4,$r]} / ${arr[$3,$4,$r]}" | bc) "
  done
  printf "%.2f" "$(median <<<"$list")"
}
rows=''
for kind in read write pty; do
  size="$((bytes / 1048576)) MiB"
  case $kind in
    read) what="$size from the node (head -c)" ;;
    write) what="$size to the node (cat > /dev/null)" ;;
    pty) what="$((pty_bytes / 1048576)) MiB from the node on a terminal (ssh -tt, head -c)" ;;
  esac
  rows+="| $what, MB/s | $(med_of mbs a $kind) | $(med_of mbs b $kind) | $(med_of mbs s $kind) | $(med_ratio mbs a b $kind)x | $(med_ratio mbs a s $kind)x | $(med_ratio mbs b s $kind)x |
| $what, server CPU ms per GiB | $(med_of cpu a $kind) | $(med_of cpu b $kind) | — | $(med_ratio cpu a b $kind)x | — | — |
"
done
rows+="| set-up of \`true\`, ms (median of $runs) | $sa | $sb | $ss | $(ratio "$sa" "$sb")x | $(ratio "$sa" "$ss")x | $(ratio "$sb" "$ss")x |"

report=$(cat <<EOF
- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ); load average before: $load0, at the end: $(bench_load)
- Command: \`AB_ROUNDS=$rounds AB_RUNS=$runs AB_BYTES=$bytes AB_PTY_BYTES=$pty_bytes bench/ab_bench.sh $vigil_a $vigil_b\`
- Machine: $(bench_machine)
- A ($label_a): \`$vigil_a\`
- B ($label_b): \`$vigil_b\`
- sshd: $(bench_sshd_version), private, \`UsePAM no\`; client: $(ssh -V 2>&1); all on loopback
- $rounds rounds; each round runs A, B and sshd in a rotating order; the values are medians over
  rounds, the ratios medians of each round's ratio

| measure | A ($label_a) | B ($label_b) | sshd | A/B | A/sshd | B/sshd |
|---|---|---|---|---|---|---|
$rows

Each round (A, B, sshd: MB/s and for Vigil's builds the server's CPU ms per GiB):

$rounds_log
EOF
)
echo "$report"
if [[ -n $out ]]; then
  { echo "# A/B of two SSH node builds"; echo; echo "Written by \`bench/ab_bench.sh\`; do not edit by hand."; echo; echo "$report"; } > "$repo/$out"
  echo "wrote $out"
fi
