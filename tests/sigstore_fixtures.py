"""Session fixtures for Sigstore tests: the loopback trust domain(s) and the sigstore-js verifier."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import jsverify
from tests.sigstore_domain import VARIANTS, SigstoreDomain

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
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
    """``../shared/fixtures``: real signed material from other projects (read-only)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {FIXTURES} (CI lays shared/ beside the clone)", pytrace=False)
    return FIXTURES
