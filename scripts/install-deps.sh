#!/usr/bin/env bash
# Installs every Debian package the build, tests and benchmarks need.
# Idempotent: packages already present are skipped quickly. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git clang-14 clang-format libclang-rt-14-dev
  clang-tidy-14                  # scripts/check-tidy.sh (the tsa stage)
  libucx-dev ucx-utils           # UCX (ucp) + ucx_perftest baseline
  librocksdb-dev                 # SSD tier
  libboost-dev libboost-system-dev  # Asio, Beast
  libgflags-dev libgtest-dev libgmock-dev googletest
  libxxhash-dev xxhash nlohmann-json3-dev
  redis-server                   # kvcake-bench baseline
  etcd-server etcd-client        # cluster membership tests
  prometheus                     # promtool check metrics
  yamllint python3 python3-yaml jq curl procps util-linux
  python3-pip python3-venv       # pip install of the Python client (README, tests/install)
  python3-torch                  # scripts/attention (trainer, attention capture and its test)
)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if (( ${#missing[@]} == 0 )); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The packaged services are started by our tests on their own ports; keep the
# system-wide instances from holding the default ports where systemd runs.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  $SUDO systemctl disable --now redis-server etcd prometheus >/dev/null 2>&1 || true
fi
echo "install-deps: done"
