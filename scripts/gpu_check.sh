#!/usr/bin/env bash
# The one command for the GPU machine (bench/gpu_organism.py): installs the carried pure-Python wheels
# (.gpu-wheels: what `import attest.scan` needs beyond that machine's own torch / transformers stack),
# prints the machine, then trains and scans the ~150 M-parameter organisms under a hard timeout.
# With ZOO_OFFSET set, a held-out zoo of the CPU bench (bench/scanner.py, that seed offset) is built
# and scanned at the same time on the machine's CPU cores (GPU hidden, one core per organism), so one
# lease answers both.
# Results: $OUT/gpu_organisms.json (rewritten after every phase), $OUT/gpu_organisms.log, and with a
# zoo $OUT/zoo-<offset>.jsonl (one line per organism, as it finishes) and $OUT/zoo-<offset>.log.
#   OUT=/tmp/out bash scripts/gpu_check.sh [extra bench.gpu_organism arguments, e.g. --tiny]
# Environment: PYTHON (default python3), GPU_TIMEOUT (seconds, default 330), GPU_DEPS (default
# /tmp/pydeps, where the wheels are installed), ZOO_OFFSET, ZOO_JOBS (default 14), ZOO_TIMEOUT
# (seconds, default GPU_TIMEOUT + 60).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to an output folder}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
LIMIT="${GPU_TIMEOUT:-330}"

run() {
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) scripts/gpu_check.sh in $PWD"
  local deps="${GPU_DEPS:-/tmp/pydeps}"
  if compgen -G ".gpu-wheels/*.whl" >/dev/null; then
    if ! "$PY" -m pip install --quiet --no-index --no-deps --disable-pip-version-check \
      --target "$deps" .gpu-wheels/*.whl; then
      echo "pip install failed: importing the wheels as zip archives instead"
      for wheel in .gpu-wheels/*.whl; do deps="$deps:$PWD/$wheel"; done
    fi
  else
    echo "no .gpu-wheels/*.whl here (was .gpu-wheels carried?): import attest.scan needs rfc8785"
  fi
  export PYTHONPATH="$deps:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  nvidia-smi -L || echo "nvidia-smi -L failed"
  "$PY" -c 'import sys, torch, transformers, rfc8785, attest.scan.dynamic
print("python", sys.version.split()[0], "| torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available(), "| transformers", transformers.__version__,
      "| rfc8785 from", rfc8785.__file__)' || echo "import check failed"
  local zoo_pid=""
  if [ -n "${ZOO_OFFSET:-}" ]; then
    echo "== zoo +$ZOO_OFFSET on ${ZOO_JOBS:-14} CPU cores (GPU hidden), log $OUT/zoo-$ZOO_OFFSET.log"
    CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 timeout -k 10 "${ZOO_TIMEOUT:-$((LIMIT + 60))}" \
      "$PY" -u -m bench.scanner --seed-offset "$ZOO_OFFSET" --jobs "${ZOO_JOBS:-14}" --no-static \
      --cache /tmp/zoo-cache --out "$OUT/zoo-$ZOO_OFFSET.jsonl" >"$OUT/zoo-$ZOO_OFFSET.log" 2>&1 &
    zoo_pid=$!
  fi
  timeout -k 10 "$LIMIT" "$PY" -u -m bench.gpu_organism --out "$OUT" --deadline "$((LIMIT - 12))" "$@"
  local rc=$?
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) bench.gpu_organism exit $rc (124: killed by the timeout)"
  if [ -n "$zoo_pid" ]; then
    wait "$zoo_pid"
    echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) zoo exit $? (124: killed by the timeout)"
    tail -n 40 "$OUT/zoo-$ZOO_OFFSET.log"
  fi
  return "$rc"
}

run "$@" 2>&1 | tee -a "$OUT/gpu_organisms.log"
exit "${PIPESTATUS[0]}"
