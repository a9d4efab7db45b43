# bench/lib.sh: what the SSH benchmark scripts share (sourced, not run):
# a work directory cleaned on exit, processes stopped on exit, loopback
# ports, private OpenSSH sshd instances, the timing loops and the verdicts.
#
#   bench_name=ssh_bench; source "$(dirname "$0")/lib.sh"
#
# A script sets bench_name (its messages' prefix) before sourcing and
# bench_logs (files whose tails `die` shows) after bench_workdir.
#
# BENCH_PORTS=LO-HI takes every listening port from that range (a free one,
# never the same twice in a run); without it the kernel picks free ports.

bench_name=${bench_name:-bench}
bench_logs=()
bench_pids=()
bench_work=''
bench_ports_given=()

die() {
  echo "$bench_name: $*" >&2
  local f
  for f in "${bench_logs[@]}"; do [[ -f $f ]] && tail -5 "$f" >&2; done
  exit 1
}

# Root, OpenSSH's sshd, and the local account LOGIN that sessions run as.
bench_require() {  # LOGIN WHY-ROOT
  [[ $(id -u) -eq 0 ]] || die "needs root ($2)"
  [[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd is missing: apt-get install openssh-server"
  id "$1" >/dev/null 2>&1 || useradd -m -s /bin/bash "$1"
  # sshd without PAM refuses a locked account ("!" in shadow, useradd's
  # default); "*" has no password either but is not locked.
  if [[ $(getent shadow "$1" | cut -d: -f2) == '!'* ]]; then usermod -p '*' "$1"; fi
}

# A work directory (mode MODE), removed on exit after every process that
# bench_spawn started is stopped. Sets bench_work and cds into it.
bench_workdir() {  # PREFIX MODE
  bench_work=$(mktemp -d "/tmp/$1-XXXXXX")
  chmod "$2" "$bench_work"
  trap bench_cleanup EXIT
  cd "$bench_work"
}
bench_cleanup() {
  local p
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [[ -n $bench_work ]] && rm -rf "$bench_work"
  return 0
}
# Runs "$@" in the background, its output in LOG, stopped on exit; sets
# bench_last_pid.
bench_spawn() {  # LOG COMMAND...
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  bench_last_pid=$!
  bench_pids+=("$bench_last_pid")
}

free_port() {
  if [[ -z ${BENCH_PORTS:-} ]]; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  local lo=${BENCH_PORTS%-*} hi=${BENCH_PORTS#*-} p used
  for ((p = lo; p <= hi; p++)); do
    used=0
    for u in "${bench_ports_given[@]}"; do [[ $u -eq $p ]] && used=1 && break; done
    ((used)) && continue
    if python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1])))' "$p" 2>/dev/null; then
      bench_ports_given+=("$p")
      echo "$p"
      return
    fi
  done
  die "no free port left in BENCH_PORTS=$BENCH_PORTS"
}
# free_port in the caller's shell (a $(...) would forget what it handed out).
bench_port() {  # VAR
  local p
  p=$(free_port) || exit 1
  bench_ports_given+=("$p")
  printf -v "$1" '%s' "$p"
}
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  die "nothing listens on port $1"
}
now_ns() { date +%s%N; }

# A private OpenSSH sshd on 127.0.0.1:PORT: host key NAME_host (with
# NAME_host-cert.pub when it exists), users by certificates of the CA in
# USER_CA, no PAM, nothing from /etc/ssh; each further argument is one more
# config line. Never touches the host's sshd.
start_sshd() {  # NAME PORT USER_CA [LINE...]
  local name=$1 port=$2 ca=$3
  shift 3
  [[ -f $bench_work/${name}_host ]] || ssh-keygen -q -t ed25519 -N '' -f "$bench_work/${name}_host"
  {
    cat <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $bench_work/${name}_host
PidFile none
TrustedUserCAKeys $ca
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PrintLastLog no
StrictModes no
EOF
    [[ -f $bench_work/${name}_host-cert.pub ]] && echo "HostCertificate $bench_work/${name}_host-cert.pub"
    local line
    for line in "$@"; do echo "$line"; done
  } >"$bench_work/${name}_config"
  mkdir -p /run/sshd  # sshd's privilege separation directory
  bench_spawn "$bench_work/$name.log" /usr/sbin/sshd -D -e -f "$bench_work/${name}_config"
}

# MB/s (10^6 bytes) of BYTES read from `head -c BYTES /dev/zero` run by the
# command "$@ CMD" (the command ends in the remote command's place).
bench_read_mbs() {  # BYTES COMMAND...
  local bytes=$1 t0 t1 got
  shift
  t0=$(now_ns)
  got=$("$@" "head -c $bytes /dev/zero" | wc -c) || die "$*: the session failed"
  t1=$(now_ns)
  [[ $got -eq $bytes ]] || die "$*: received $got of $bytes bytes"
  echo "scale=1; $bytes * 1000 / ($t1 - $t0)" | bc
}
# MB/s of BYTES written to `cat > /dev/null` run by "$@ CMD".
bench_write_mbs() {  # BYTES COMMAND...
  local bytes=$1 t0 t1
  shift
  t0=$(now_ns)
  head -c "$bytes" /dev/zero | "$@" 'cat > /dev/null' || die "$*: transfer failed"
  t1=$(now_ns)
  echo "scale=1; $bytes * 1000 / ($t1 - $t0)" | bc
}
# Microseconds of one "$@ true".
bench_session_us() {
  local t0 t1
  t0=$(now_ns)
  "$@" true || die "$*: session failed"
  t1=$(now_ns)
  echo $(((t1 - t0) / 1000))
}
# The median, in ms with one decimal, of microseconds given one per line.
median_ms() {
  sort -n | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f\n", m / 1000}'
}

# Alternating measurements of several sides in one run, so that a
# disturbance of the (shared) host hurts no side alone. Each side is a
# shell function NAME taking no argument; results go to arrays.
#
# bench_best ROUNDS FN...: the highest of ROUNDS values printed by each FN,
#   called in turn FN1 FN2 ... per round; sets bench_result[i].
bench_best() {
  local rounds=$1 r i v
  shift
  local fns=("$@")
  bench_result=()
  for i in "${!fns[@]}"; do bench_result[i]=0; done
  for ((r = 0; r < rounds; r++)); do
    for i in "${!fns[@]}"; do
      v=$("${fns[i]}") || exit 1
      if (($(echo "$v > ${bench_result[i]}" | bc))); then bench_result[i]=$v; fi
    done
  done
  return 0
}
# bench_median RUNS FN...: the median (ms) of RUNS values (µs) printed by
#   each FN, called in turn per run; sets bench_result[i].
bench_median() {
  local runs=$1 r i
  shift
  local fns=("$@") lists=()
  for ((r = 0; r < runs; r++)); do
    for i in "${!fns[@]}"; do lists[i]+="$("${fns[i]}") " || exit 1; done
  done
  bench_result=()
  for i in "${!fns[@]}"; do bench_result[i]=$(tr ' ' '\n' <<<"${lists[i]}" | grep . | median_ms); done
  return 0
}

ratio() { printf "%.2f" "$(echo "scale=4; $1 / $2" | bc)"; }
at_least() { (($(echo "$1 >= $2" | bc))) && echo PASS || echo MISS; }  # RATIO TARGET
at_most() { (($(echo "$1 <= $2" | bc))) && echo PASS || echo MISS; }

bench_machine() {
  echo "$(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
}
bench_load() { cut -d' ' -f1-3 /proc/loadavg; }
bench_sshd_version() { /usr/sbin/sshd -V 2>&1 | head -1 || true; }
bench_libssh_version() { pkg-config --modversion libssh 2>/dev/null || echo '?'; }

# CPU time (ms) that process PID and its reaped children have used: a
# server's own cost, less disturbed by the host's other work than wall time.
bench_cpu_ms() {  # PID
  awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15 + $16 + $17) * 1000 / hz)}' "/proc/$1/stat"
}
