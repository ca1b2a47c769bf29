#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, then runs the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k manifest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
