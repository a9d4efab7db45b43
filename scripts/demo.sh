#!/usr/bin/env bash
# make demo: start a whole cluster on this host's loopback (auth service,
# proxy, node; embedded config below), create a user, log in as it with
# vsh, run the guide's three blind spots on the node through the proxy,
# and show what the auth service's audit log holds of them.
set -euo pipefail
build=${1:-build}
vigil=$(realpath "$build/bin/vigil")
vigilctl=$(realpath "$build/bin/vigilctl")
vsh=$(realpath "$build/bin/vsh")
work=$(mktemp -d /tmp/vigil-demo.XXXXXX)
chmod 755 "$work"  # the cluster's services run as the 'vigil' user and pass through it
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: enhanced recording loads BPF programs: run 'make demo' as root" >&2
  exit 1
fi

config="$work/vigil.yaml"
cat >"$config" <<YAML
version: v3
teleport:
  nodename: demo-node
  data_dir: $work/data
auth_service:
  enabled: true
  cluster_name: demo
  listen_addr: 127.0.0.1:33025
proxy_service:
  enabled: true
  web_listen_addr: 127.0.0.1:33080
  listen_addr: 127.0.0.1:33023
  tunnel_listen_addr: 127.0.0.1:33024
  public_addr: 127.0.0.1:33080
ssh_service:
  enabled: true
  listen_addr: 127.0.0.1:33022
  enhanced_recording:
    enabled: true
    root_path: /vigil-demo
YAML

echo "=== vigil start: auth service, proxy and node (the services run as the 'vigil' user)"
"$vigil" start -c "$config" >"$work/vigil.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do
  if "$vigilctl" -c "$config" nodes ls 2>/dev/null | grep -q demo-node &&
     (exec 3<>/dev/tcp/127.0.0.1/33022) 2>/dev/null; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$work/vigil.log"; exit 1; fi
  sleep 0.2
done
cat "$work/vigil.log"
echo
echo "=== vigilctl status; vigilctl nodes ls"
"$vigilctl" -c "$config" status
"$vigilctl" -c "$config" nodes ls
echo
echo "=== vigilctl users add alice --roles=access --logins=root"
added=$("$vigilctl" -c "$config" users add alice --roles=access --logins=root)
echo "$added"
token=$(echo "$added" | awk '/vsh signup/ {print $NF}')
export VSH_HOME="$work/alice"
password='correct horse battery staple'
echo
echo "=== vsh signup, then vsh login (the password on standard input, as a script gives it)"
echo "$password" | "$vsh" signup --proxy=127.0.0.1:33080 --insecure --password-stdin "$token"
echo "$password" | "$vsh" login --proxy=127.0.0.1:33080,33023 --user=alice --insecure --password-stdin
echo
echo "=== vsh ls"
"$vsh" ls
echo
# The uploaded script of blind spot 2.
cat >"$work/upload.sh" <<'SCRIPT'
#!/bin/sh
id -un
cat /etc/hostname
uname -sr
SCRIPT
chmod +x "$work/upload.sh"
echo "=== the session on demo-node, through the proxy (vsh scp, then vsh ssh), as its terminal showed it"
"$vsh" scp -q "$work/upload.sh" root@demo-node:/tmp/vigil-demo-upload.sh
"$vsh" ssh root@demo-node '
echo "--- 1. obfuscated: a base64 blob piped to sh (no curl is ever typed)"
echo Y3VybCAtcyAtbSAyIGh0dHA6Ly8xMjcuMC4wLjE6OS8gfHwgZWNobyAiY3VybDogY29ubmVjdGlvbiByZWZ1c2VkIChhcyBleHBlY3RlZCkiCg== | base64 --decode | sh
echo "--- 2. a script file, uploaded and run: only its output shows"
sh /tmp/vigil-demo-upload.sh; rm -f /tmp/vigil-demo-upload.sh
echo "--- 3. typed on a terminal with echo off (stty -echo): nothing shows"
printf "stty -echo\nwhoami\nls /root >/dev/null\nexit\n" | script -qc /bin/sh /dev/null >/dev/null'
echo
echo "=== what the auth service's audit log holds of it (vigil events, readable form)"
# The node delivers its events through its spool: give it a moment.
for _ in $(seq 1 50); do
  grep -q '"event":"session.end"' "$work/data/log/events.log" 2>/dev/null && break
  sleep 0.2
done
"$vigil" events -c "$config" --type session.start,session.command,session.network,session.end --limit 60
echo
echo "=== the decoded curl as an audit event (JSON, the guide's format), from $work/data/log/events.log"
grep '"program":"curl"' "$work/data/log/events.log" | head -n 1
echo
echo "Try it yourself: vigil start -c FILE, vigilctl users add, vsh login, vsh ssh (README.md)."
