#!/usr/bin/env bash
# Rewrites the committed seed corpora (fuzz/corpus/<target>/):
#   fuzz/make_seeds.sh BUILD_DIR      (a normal build; builds make_fuzz_seeds)
# Recordings and audit log day files come from the project's own writers
# (make_seeds.cpp); keys and certificates from the real ssh-keygen, signed by
# a throwaway CA (sshcert_cert_fuzz re-signs them with its own CA when asked);
# config and time seeds are written here by hand.
set -euo pipefail
build=${1:?usage: fuzz/make_seeds.sh BUILD_DIR}
src=$(cd "$(dirname "$0")" && pwd)
corpus=$src/corpus
cmake --build "$build" --target make_fuzz_seeds
"$build/fuzz/make_fuzz_seeds" "$corpus"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
keygen() { ssh-keygen -q "$@" </dev/null >/dev/null; }
keygen -t ed25519 -N '' -C ca -f "$tmp/ca"
keygen -t ed25519 -N '' -C user -f "$tmp/ed"
keygen -t ecdsa -b 256 -N '' -C user -f "$tmp/ec"
keygen -t ecdsa -b 384 -N '' -C user -f "$tmp/ec384"
keygen -t rsa -b 2048 -N '' -C user -f "$tmp/rsa"
sign() {  # name key options...
  local name=$1 key=$2
  shift 2
  keygen -s "$tmp/ca" -I alice -z 7 "$@" "$tmp/$key.pub"
  mv "$tmp/$key-cert.pub" "$tmp/$name-cert.pub"
}
sign plain ed -n alice,root -V 20200101:20400101
sign options ed -n alice -O force-command=/bin/true -O source-address=192.0.2.0/24,2001:db8::/32 \
  -O extension:vigil-recording@vigil.dev=command,disk -O permit-pty
sign host ec -h -n node.example
sign rsa-user rsa -n root
sign ecdsa384 ec384 -n bob -O no-port-forwarding
mkdir -p "$corpus/sshcert_keys" "$corpus/sshcert_cert"
b64blob() { cut -d' ' -f2 "$1" | base64 -d; }
for k in ed ec ec384 rsa ca; do
  cp "$tmp/$k.pub" "$corpus/sshcert_keys/$k.pub"
  b64blob "$tmp/$k.pub" >"$corpus/sshcert_keys/$k.blob"
done
cat "$tmp/ca.pub" "$tmp/ec.pub" >"$corpus/sshcert_keys/two-cas.pub"
printf '# CAs\n\n%s\n' "$(cat "$tmp/rsa.pub")" >"$corpus/sshcert_keys/commented.pub"
for c in plain options host rsa-user ecdsa384; do
  cp "$tmp/$c-cert.pub" "$corpus/sshcert_keys/$c-cert.pub"
  b64blob "$tmp/$c-cert.pub" >"$corpus/sshcert_keys/$c-cert.blob"
  # sshcert_cert: choices byte, then the blob. \x01 re-signs (login alice,
  # from 192.0.2.7, now 2023); \x09 from 2001:db8::1; \x80 and \x81 claim the
  # fuzz ECDSA and RSA CAs with the signature kept.
  for choice in 01 09 80 81; do
    { printf "\\x$choice"; b64blob "$tmp/$c-cert.pub"; } >"$corpus/sshcert_cert/$c-$choice"
  done
done

mkdir -p "$corpus/config"
cat >"$corpus/config/guide.yaml" <<'YAML'
version: v3
teleport:
  nodename: graviton-node
  auth_token: /tmp/token
  auth_server: 127.0.0.1:3025
  proxy_server: 127.0.0.1:3080
  data_dir: /var/lib/teleport
proxy_service:
  enabled: false
auth_service:
  enabled: false
ssh_service:
  enabled: true
  enhanced_recording:
    enabled: true
    command_buffer_size: 8
    disk_buffer_size: 128
    network_buffer_size: 8
    cgroup_path: /cgroup2
    root_path: /teleport
YAML
cat >"$corpus/config/vigil.yaml" <<'YAML'
vigil:
  nodename: n1
  cluster_name: "lab"
  data_dir: /var/lib/vigil
ssh_service:
  enabled: yes
  listen_addr: "[::]:3022"
  trusted_user_ca_keys: [/etc/vigil/user_ca.pub, /etc/vigil/other.pub]
  default_recording_kinds:
    - command
    - disk
  enhanced_recording: {enabled: On, failed_execs: off, disk_buffer_size: 65536}
YAML
printf 'ssh_service:\n  enabeld: true\n  enhanced_recordng: {}\n' >"$corpus/config/typo.yaml"
printf 'a: &x [1, 2]\nb: *x\n---\nc: {d: [e, {f: g}]}\n' >"$corpus/config/anchors.yaml"
printf 'ssh_service:\n  default_recording_kinds: [comand]\n' >"$corpus/config/kind-typo.yaml"
printf 'enabled\0enabeld\0listen_addr\0enhanced_recording' >"$corpus/config/suggest"

mkdir -p "$corpus/auditlog_time"
i=0
for t in 2026-11-27T10:00:00Z 2026-11-27t10:00:00.123456789+02:00 '2026-11-27 23:59:60z' \
  1677-09-21T00:12:43.145224192Z 2262-04-11T23:47:16.854775807Z 2026-11-27 now -15m -2h -7d -1w \
  2026-11-27.00:00:00.log 1970-01-01T00:00:00.0000000001-23:59; do
  printf '%s' "$t" >"$corpus/auditlog_time/seed-$((i++))"
done
du -sh --apparent-size "$corpus"/*
