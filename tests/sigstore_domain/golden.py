"""Regenerate the committed golden keyless bundles: ``python -m tests.sigstore_domain.golden DIR``.

Writes a tiny model, its bundles from each variant of a fresh local domain, and that domain's trusted
root. Regenerating is only needed when the golden format itself must change; the point of the goldens
is that a sigstore-python upgrade must keep verifying the old ones (expired certificates included).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from attest._sigstore import SigstoreSigner
from attest.manifest import compute_manifest
from attest.signing import sign_attestation
from tests.sigstore_domain.domain import VARIANTS, SigstoreDomain

IDENTITY = "golden-publisher@example.test"


def write_model(model: Path) -> None:
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text('{"model_type": "golden", "hidden_size": 4}\n')
    (model / "weights.bin").write_bytes(bytes(range(256)))


def main(out: Path) -> None:
    domain = SigstoreDomain("golden").start()
    try:
        paths = domain.write(out / "trust")
        write_model(out / "model")
        manifest = compute_manifest(out / "model")
        for variant in VARIANTS:
            signer = SigstoreSigner(domain.mint_token(IDENTITY), paths[variant], interactive=False)
            sign_attestation(signer, manifest, "golden/warm-up")  # so the golden proofs are not empty
            bundle = sign_attestation(signer, manifest, "golden/tiny")
            (out / f"{variant}.sigstore.json").write_text(json.dumps(bundle, indent=2) + "\n")
        (out / "trusted_root.json").write_text(paths["trusted_root"].read_text() + "\n")
        (out / "identity.json").write_text(
            json.dumps(
                {"identity": IDENTITY, "issuer": domain.issuer, "modelDigest": manifest.digest}, indent=2
            )
            + "\n"
        )
    finally:
        domain.stop()
    for p in (out / "trust").iterdir():
        p.unlink()
    (out / "trust").rmdir()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
