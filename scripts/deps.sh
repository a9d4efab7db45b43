#!/usr/bin/env bash
# Installs the Debian packages Vigil builds and tests with (and, with
# --bench, benchmarks with).
# Only what is missing is installed; a machine that has everything is left alone.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang llvm
  libclang-rt-dev  # libFuzzer and the sanitizers for make fuzz (not pulled in by clang)
  libbpf-dev bpftool libelf-dev zlib1g-dev
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev libssh-dev
  liburing-dev     # the benchmark's io_uring open storm (bench/storm.c)
  libsodium-dev liboath-dev libsqlite3-dev  # cluster state: argon2id, tokens; TOTP; the store
  libboost-dev     # the cluster's HTTPS API: Boost.Beast and Boost.Asio (header-only)
  libpq-dev postgresql  # PostgreSQL back ends (libpq); the tests' own server (initdb, pg_ctl)
  # tests and the demo: real terminals, scripts, loopback networking
  util-linux bsdutils coreutils iproute2 procps tmux curl asciinema openssh-client openssh-sftp-server
  # the CA tests: OpenSSH's sshd run on a loopback port of their own, the openssl tool
  openssh-server openssl
  # the relay tests count a process's system calls over a quiet window (perf stat)
  linux-perf
  # the web UI's browser tests (e2e.WebSession): headless, driven by playwright-core from npm
  chromium
  # issue 13: metrics (prometheus-cpp's registry and text format); promtool
  # (in prometheus, 19 MB download, 96 MB installed) checks /metrics in the tests
  prometheus-cpp-dev prometheus
)
# the web UI's build (npm ci of web/package-lock.json: xterm.js). A node.js
# that brings its own npm (nodesource's) is kept: Debian's npm would replace it.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
# `deps.sh --bench`: also what the benchmarks compare against (an sshd of
# their own, never the system's).
if [[ ${1:-} == --bench ]]; then
  packages+=(openssh-server)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing packages: ${missing[*]}" >&2
  echo "deps: run as root (make deps) to install them with apt-get" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Only promtool of the prometheus package is used (the tests check /metrics
# with it): on a host run by systemd its postinst starts a Prometheus server
# on :9090, which is stopped and disabled again.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [[ -d /run/systemd/system ]]; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
