"""Benchmark: keyless sign + verify of one attestation against the loopback Sigstore domain.

For each variant (Rekor v1 + SET, Rekor v1 + TSA, Rekor v2 + TSA) it times, in one run and against
the same local services:
  * model-attest: ``SigstoreSigner.sign_statement`` (statement built by ``sign_attestation``) and
    ``verify_bundle`` (signature, identity, subject digest, predicate schema);
  * baseline: sigstore-python's bare ``Signer.sign_dsse`` and ``Verifier.verify_dsse`` on the same
    statement bytes;
and prints medians and the ratio project / baseline. Usage: python bench/sigstore_sign_verify.py [-n 20]
The model is tiny on purpose: hashing is benchmarked in bench/hashing.py; this measures signing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from attest._sigstore import SigstoreSigner  # noqa: E402
from attest.manifest import compute_manifest  # noqa: E402
from attest.signing import sign_attestation  # noqa: E402
from attest.statement import build_statement  # noqa: E402
from attest.verifying import IdentityRule, Trust, verify_bundle  # noqa: E402
from tests.core_fixtures import make_model  # noqa: E402
from tests.sigstore_domain import VARIANTS, SigstoreDomain  # noqa: E402

IDENTITY = "bench@example.test"


def median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20, help="repetitions per measurement (median reported)")
    args = parser.parse_args()

    domain = SigstoreDomain("bench").start()
    tmp = Path(tempfile.mkdtemp())
    paths = domain.write(tmp / "trust")
    model = make_model(tmp / "model")
    print(f"{'variant':<12} {'step':<7} {'model-attest ms':>16} {'sigstore-python ms':>19} {'ratio':>6}")
    try:
        for variant in VARIANTS:
            for step, p, b in bench_variant(domain, paths[variant], model, args.n):
                print(f"{variant:<12} {step:<7} {p:>16.1f} {b:>19.1f} {p / b:>6.2f}")
    finally:
        domain.stop()


def bench_variant(
    domain: SigstoreDomain, trust_config: Path, model: Path, n: int
) -> list[tuple[str, float, float]]:
    """(step, project ms, baseline ms) for sign, verify and their total, medians of ``n`` runs."""
    from sigstore import dsse
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext
    from sigstore.verify import Verifier, policy

    manifest = compute_manifest(model)
    token = domain.mint_token(IDENTITY)
    # project: one signer per run (token + trust config parsed once, as `attest sign` does)
    signer = SigstoreSigner(token, trust_config, interactive=False)
    docs: list[dict[str, object]] = []
    sign_p = median_ms(lambda: docs.append(sign_attestation(signer, manifest, "bench/tiny")), n)
    trust = Trust(identities=[IdentityRule(domain.issuer, identity=IDENTITY)], trust_config=trust_config)
    raw = json.dumps(docs[-1])
    verify_p = median_ms(lambda: verify_bundle(raw, trust, expected_digest=manifest.digest), n)

    # baseline: sigstore-python alone, same statement bytes, same services
    statement = build_statement("bench/tiny", manifest.digest, *_manifest_predicate(docs[-1]))
    tc = ClientTrustConfig.from_json(trust_config.read_text())
    ctx = SigningContext.from_trust_config(tc)
    bundles: list[Bundle] = []

    def bare_sign() -> None:
        with ctx.signer(IdentityToken(token)) as s:
            bundles.append(s.sign_dsse(dsse.Statement(statement)))

    sign_b = median_ms(bare_sign, n)
    verifier = Verifier(trusted_root=tc.trusted_root)
    ident = policy.Identity(identity=IDENTITY, issuer=domain.issuer)
    bare_json = bundles[-1].to_json()
    verify_b = median_ms(lambda: verifier.verify_dsse(Bundle.from_json(bare_json), ident), n)
    return [
        ("sign", sign_p, sign_b),
        ("verify", verify_p, verify_b),
        ("total", sign_p + verify_p, sign_b + verify_b),
    ]


def _manifest_predicate(doc: dict[str, object]) -> tuple[str, dict[str, object]]:
    import base64

    envelope = doc["dsseEnvelope"]
    assert isinstance(envelope, dict)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return statement["predicateType"], statement["predicate"]


if __name__ == "__main__":
    main()
