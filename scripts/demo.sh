#!/usr/bin/env bash
# make demo: record a session that does the three things plain session
# recording misses, then show what Vigil captured.
set -euo pipefail
build=${1:-build}
vigil=$(realpath "$build/bin/vigil")
work=$(mktemp -d /tmp/vigil-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: enhanced recording loads BPF programs: run 'make demo' as root" >&2
  exit 1
fi

# The uploaded script of blind spot 2.
cat >"$work/upload.sh" <<'SCRIPT'
#!/bin/sh
id -un
cat /etc/hostname
uname -sr
SCRIPT
chmod +x "$work/upload.sh"

# The session: each blind spot in turn.
cat >"$work/session.sh" <<SESSION
#!/bin/sh
echo "--- 1. obfuscated: a base64 blob piped to sh (no 'curl' is ever typed)"
echo 'Y3VybCAtcyAtbSAyIGh0dHA6Ly8xMjcuMC4wLjE6OS8gfHwgZWNobyAiY3VybDogY29ubmVjdGlvbiByZWZ1c2VkIChhcyBleHBlY3RlZCkiCg==' | base64 --decode | sh
echo "--- 2. a script file, run: only its output shows on the terminal"
$work/upload.sh
echo "--- 3. typed on a terminal with echo off (stty -echo): nothing shows"
printf 'stty -echo\nwhoami\nls /root >/dev/null\nexit\n' | script -qc /bin/sh /dev/null >/dev/null
SESSION
chmod +x "$work/session.sh"

config="$work/vigil.yaml"
cat >"$config" <<YAML
version: v3
teleport:
  nodename: demo-node
  data_dir: $work/data
ssh_service:
  enabled: true
  enhanced_recording:
    enabled: true
YAML

echo "=== vigil check"
"$vigil" check -c "$config"
echo
echo "=== the session, as its terminal showed it"
"$vigil" record -c "$config" --events command,network --format text -o "$work/events.txt" -- "$work/session.sh"
echo
echo "=== what Vigil recorded (command and network events, readable form)"
cat "$work/events.txt"
echo
echo "=== the same session as audit events (JSON lines, the guide's format); the decoded curl:"
"$vigil" record -c "$config" --events command,network -o "$work/events.jsonl" -- "$work/session.sh" >/dev/null
grep '"program":"curl"' "$work/events.jsonl" | head -n 2
tail -n 1 "$work/events.jsonl"
echo
echo "Run your own: $vigil record --events command,disk,network -- CMD ARGS..."
