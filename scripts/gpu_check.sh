#!/usr/bin/env bash
# The one command for the GPU machine (bench/gpu_organism.py): installs the carried pure-Python wheels
# (.gpu-wheels: what `import attest.scan` needs beyond that machine's own torch / transformers stack),
# prints the machine, then trains and scans the ~150 M-parameter organisms under a hard timeout.
# Results: $OUT/gpu_organisms.json (rewritten after every phase) and $OUT/gpu_organisms.log.
#   OUT=/tmp/out bash scripts/gpu_check.sh [extra bench.gpu_organism arguments, e.g. --tiny]
# Environment: PYTHON (default python3), GPU_TIMEOUT (seconds, default 330), GPU_DEPS (default
# /tmp/pydeps, where the wheels are installed).
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
  timeout -k 10 "$LIMIT" "$PY" -u -m bench.gpu_organism --out "$OUT" --deadline "$((LIMIT - 12))" "$@"
  local rc=$?
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) bench.gpu_organism exit $rc (124: killed by the timeout)"
  return "$rc"
}

run "$@" 2>&1 | tee -a "$OUT/gpu_organisms.log"
exit "${PIPESTATUS[0]}"
