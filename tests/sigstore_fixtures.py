"""Session fixtures for Sigstore tests: the loopback trust domain(s) and the sigstore-js verifier."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attest._sigstore import SigstoreSigner
from attest.manifest import compute_manifest
from attest.predicates import MODEL_MANIFEST_V1
from attest.signing import sign_attestation
from attest.verifying import IdentityRule, Trust
from tests import jsverify
from tests.core_fixtures import make_model
from tests.sigstore_domain import VARIANTS, SigstoreDomain

FIXTURES = Path(__file__).resolve().parent / "data" / "real"
SIGNER_IDENTITY = "publisher@example.test"


@dataclass(frozen=True)
class RunningDomain:
    """A started domain plus the files a client needs: trusted root and one trust config per variant."""

    domain: SigstoreDomain
    trusted_root: Path
    trust_configs: dict[str, Path]

    @property
    def issuer(self) -> str:
        return self.domain.issuer

    def token(self, subject: str = SIGNER_IDENTITY) -> str:
        return self.domain.mint_token(subject)


def _run(name: str, tmp: Path) -> Iterator[RunningDomain]:
    domain = SigstoreDomain(name).start()
    try:
        paths = domain.write(tmp)
        yield RunningDomain(domain, paths["trusted_root"], {v: paths[v] for v in VARIANTS})
    finally:
        domain.stop()


@pytest.fixture(scope="session")
def sigstore_domain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDomain]:
    """The private Sigstore instance every keyless test signs against (Fulcio, Rekor v1/v2, TSA)."""
    yield from _run("local", tmp_path_factory.mktemp("sigstore-local"))


@pytest.fixture(scope="session")
def other_sigstore_domain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDomain]:
    """A second, unrelated trust domain: its bundles must never verify against the first."""
    yield from _run("other", tmp_path_factory.mktemp("sigstore-other"))


@pytest.fixture(scope="session")
def js_verifier() -> None:
    """sigstore-js must be installed: a missing verifier FAILS the test (no skip), with the fix."""
    try:
        jsverify.check_installed()
    except jsverify.JsVerifierMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``tests/data/real``: real signed material from other projects (read-only)."""
    return FIXTURES


def keyless_trust(
    trust_file: Path, identity: str = SIGNER_IDENTITY, issuer: str = "https://oidc.local.test", **kw: Any
) -> Trust:
    """Verification trust for one Sigstore identity under the trust root in ``trust_file``."""
    return Trust(identities=[IdentityRule(issuer, identity=identity)], trust_config=trust_file, **kw)


def sign_keyless(
    rd: RunningDomain,
    variant: str,
    model: Path,
    *,
    name: str = "org/tiny",
    subject: str = SIGNER_IDENTITY,
    predicate_type: str = MODEL_MANIFEST_V1,
    predicate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sign one attestation about ``model`` through the project's API against the local domain."""
    signer = SigstoreSigner(rd.token(subject), rd.trust_configs[variant], interactive=False)
    return sign_attestation(signer, compute_manifest(model), name, predicate_type, predicate)


@dataclass(frozen=True)
class SignedSet:
    """One model signed keylessly in every variant (each log already holds earlier entries)."""

    model: Path
    digest: str
    bundles: dict[str, Path]

    def doc(self, variant: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.bundles[variant].read_text())
        return loaded


@pytest.fixture(scope="session")
def keyless_signed(sigstore_domain: RunningDomain, tmp_path_factory: pytest.TempPathFactory) -> SignedSet:
    """Bundles for the tiny model from each variant; signed twice so inclusion proofs are not empty."""
    root = tmp_path_factory.mktemp("keyless-signed")
    model = make_model(root / "tiny-model")
    bundles = {}
    for variant in VARIANTS:
        sign_keyless(sigstore_domain, variant, model)  # earlier entry: the proof then has hashes
        path = root / f"tiny.{variant}.sigstore.json"
        path.write_text(json.dumps(sign_keyless(sigstore_domain, variant, model), indent=2))
        bundles[variant] = path
    return SignedSet(model, compute_manifest(model).digest, bundles)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use sigstore-js carry the ``node`` marker (``-m "not node"`` lists what needs npm)."""
    for item in items:
        if "js_verifier" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.node)
