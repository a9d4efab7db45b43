#!/bin/sh
# What the network hooks cost the rest of the host: a TCP connect storm and a
# UDP sendto storm run OUTSIDE every session, alternately with no hook
# attached and while a session that records network is open (so the
# tracepoint, sockops and cgroup/* programs are attached at the cgroup root).
# Prints the median per-operation time of each and their ratio.
#   bench/net_cost.sh BUILD [ROUNDS]       (as root)
set -eu
build=${1:?usage: bench/net_cost.sh BUILD [ROUNDS]}
rounds=${2:-5}
storm=$build/bench/storm
vigil=$build/bin/vigil
n_tcp=${N_TCP:-20000}
n_udp=${N_UDP:-500000}
work=$(mktemp -d /tmp/vigil-net-cost.XXXXXX)
trap 'kill $listener $udp_sink $session 2>/dev/null || true; rm -rf "$work"' EXIT

# A loopback listener that accepts and closes, and a UDP socket that is bound.
python3 - "$work/tcp" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4096)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    c, _ = s.accept(); c.close()
PY
listener=$!
python3 - "$work/udp" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
time.sleep(100000)
PY
udp_sink=$!
while [ ! -s "$work/tcp" ] || [ ! -s "$work/udp" ]; do sleep 0.1; done
tcp_port=$(cat "$work/tcp"); udp_port=$(cat "$work/udp")

run() { # mode n port -> ns per operation
  ns=$("$storm" "$1" "$2" "$3")
  echo $((ns / $2))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$work/tcp_off"; : >"$work/tcp_on"; : >"$work/udp_off"; : >"$work/udp_on"
session=
for r in $(seq "$rounds"); do
  run connect $n_tcp "$tcp_port" >>"$work/tcp_off"
  run udp $n_udp "$udp_port" >>"$work/udp_off"
  "$vigil" record --data-dir "$work/data" --events network -o "$work/events.$r" -- sleep 1000 &
  session=$!
  # The hooks are attached before the session's journal is written (session.start).
  while ! ls "$work/data/sessions/"*.json >/dev/null 2>&1; do sleep 0.1; done
  run connect $n_tcp "$tcp_port" >>"$work/tcp_on"
  run udp $n_udp "$udp_port" >>"$work/udp_on"
  kill -TERM $session; wait $session 2>/dev/null || true
done
for k in tcp udp; do
  off=$(median <"$work/${k}_off"); on=$(median <"$work/${k}_on")
  echo "$k: ${off} ns per operation without the hooks, ${on} ns with them attached" \
       "(ratio $(awk "BEGIN {printf \"%.2f\", $on / $off}"))"
done
