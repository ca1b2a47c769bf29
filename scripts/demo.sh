#!/usr/bin/env bash
# The main job, end to end, offline: a publisher signs a model with a local key, a consumer verifies
# it before loading, then a single changed byte is refused. Work files go to .attest-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
work=".attest-demo"
rm -rf "$work" && mkdir -p "$work"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "publisher: a small local model folder"
python - "$work/tiny-model" <<'PY'
import json, os, sys
root = sys.argv[1]
os.makedirs(root, exist_ok=True)
json.dump({"model_type": "llama", "hidden_size": 64}, open(f"{root}/config.json", "w"))
from safetensors.numpy import save_file
import numpy as np
rng = np.random.default_rng(0)
save_file({"embed.weight": rng.standard_normal((256, 64), dtype=np.float32)}, f"{root}/model.safetensors")
PY
attest digest "$work/tiny-model"

say "publisher: generate a key and sign the model manifest"
attest keygen --out "$work/publisher"
attest sign "$work/tiny-model" --key "$work/publisher.key" --name demo/tiny-model --version 1.0 \
  -o "$work/tiny-model.manifest.sigstore.json"

say "consumer: verify before load (expect ALLOWED, exit 0)"
attest verify "$work/tiny-model" --bundle "$work/tiny-model.manifest.sigstore.json" --key "$work/publisher.pub"

say "attacker: flip one byte of the weights"
python - "$work/tiny-model/model.safetensors" <<'PY'
import sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
data[-1] ^= 0x01
open(p, "wb").write(bytes(data))
PY

say "consumer: verify again (expect DENIED, exit 1)"
if attest verify "$work/tiny-model" --bundle "$work/tiny-model.manifest.sigstore.json" --key "$work/publisher.pub"; then
  echo "demo failed: a tampered model was allowed" >&2
  exit 1
fi
say "done: the tampered model was refused"
