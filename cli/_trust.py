"""What a consumer trusts, from the command line: public keys and Sigstore identities, shared by every
command that verifies (verify, pull)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from attest._internal.capped import MAX_KEY_BYTES
from attest.keys import load_public_key
from attest.policy import Decision
from attest.verifying import Trust
from cli._input import InputFile
from cli._output import console


def trust_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--key, --identity, --identity-regex, --issuer, --trust-config, --offline."""
    for decorator in reversed(
        (
            click.option(
                "--key",
                "keys",
                multiple=True,
                type=InputFile("key", MAX_KEY_BYTES),
                help="Trusted public key (PEM, repeatable).",
            ),
            click.option(
                "--identity", multiple=True, help="Trusted Sigstore identity (certificate SAN, repeatable)."
            ),
            click.option(
                "--identity-regex", multiple=True, help="Trusted Sigstore identity as a full-match regex."
            ),
            click.option("--issuer", help="OIDC issuer URL the Sigstore identities must come from."),
            click.option(
                "--trust-config",
                type=InputFile("trust config"),
                help="Sigstore ClientTrustConfig or TrustedRoot JSON (default: public-good).",
            ),
            click.option(
                "--offline", is_flag=True, help="Use the embedded public-good trust root (no TUF refresh)."
            ),
            click.option(
                "--certificate-chain",
                "certificate_chain",
                multiple=True,
                type=click.Path(path_type=Path, dir_okay=False),
                help="Trusted CA certificates (PEM, repeatable) for certificate-signed OpenSSF model "
                "signatures; pin the signer with --identity SUBJECT --issuer x509:CA-SUBJECT.",
            ),
        )
    ):
        f = decorator(f)
    return f


def trust_from_options(
    keys: tuple[Path, ...],
    identity: tuple[str, ...] = (),
    identity_regex: tuple[str, ...] = (),
    issuer: str | None = None,
    trust_config: Path | None = None,
    offline: bool = False,
    certificate_chain: tuple[Path, ...] = (),
) -> Trust:
    """Command-line trust: public keys, Sigstore identities (+ issuer), and the Sigstore trust root."""
    from attest._sigstore import identity_rules

    trust = Trust(identities=identity_rules(identity, identity_regex, issuer), trust_config=trust_config)
    trust.offline = offline
    if offline and trust_config is None:
        click.echo(
            "note: --offline uses the Sigstore trust root embedded in sigstore-python; it may be stale",
            err=True,
        )
    if certificate_chain:
        from attest.oms import load_certificates

        trust.certificate_anchors = load_certificates(certificate_chain)
    for k in keys:
        trust.add_key(load_public_key(k))
    return trust


def print_decision(decision: Decision) -> None:
    out = console()
    verdict = "[bold green]ALLOWED[/]" if decision.allowed else "[bold red]DENIED[/]"
    out.print(f"{verdict}  {decision.model_digest}")
    for reason in decision.reasons:
        out.print(f"  [red]{reason.code}[/]: {reason.message}", markup=True, soft_wrap=True)
    for ev in decision.evidence:
        signer = ev["signer"].get("keyFingerprint") or ev["signer"].get("identity")
        out.print(f"  [green]ok[/] {ev['predicateType']} signed by {signer}", soft_wrap=True)
