#!/usr/bin/env bash
# Create .venv and install model-attest into it. Idempotent; fast when already done.
#   scripts/bootstrap.sh            the project with the [scan] and [formats] extras (torch CPU, transformers)
#   scripts/bootstrap.sh dev        ... plus the test tools, PostgreSQL and the sigstore-js verifier
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"
PY="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# torch first and pinned: the CPU wheel lies on this machine's disk; an unpinned torch would pull a
# multi-GB CUDA build.
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  .venv/bin/pip install -q torch==2.13.0
fi
# formats: the scanner's optional parsers (h5py, py7zr, lz4, zstandard); without them such files are WARNED.
extras="scan,formats"
[ "$mode" = dev ] && extras="scan,formats,dev"
stamp=".venv/.model-attest-$extras-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q -e ".[$extras]"
  touch "$stamp"
fi

if [ "$mode" = dev ]; then
  # PostgreSQL server binaries, for the registry tests (the tests start their own server).
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q postgresql
  fi
  # SoftHSM2 (a software PKCS#11 token) and pkcs11-tool (opensc), for the HSM signing tests.
  if ! command -v softhsm2-util >/dev/null 2>&1 || ! command -v pkcs11-tool >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q softhsm2 opensc
  fi
  # Debian's Chromium, for the registry web page tests (Playwright drives it: no browser download).
  if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q chromium
  fi
  # Node 22 and @sigstore/verify from npm, pinned by tests/js/package-lock.json.
  if [ -f tests/js/package-lock.json ]; then
    lock_stamp="tests/js/node_modules/.lock-$(sha256sum tests/js/package-lock.json | cut -c1-16)"
    if [ ! -f "$lock_stamp" ]; then
      npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
      touch "$lock_stamp"
    fi
  fi
fi
