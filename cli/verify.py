"""``attest verify``: verify local model files and their bundles against a policy, before loading."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from attest.keys import load_public_key
from attest.model_verification import verify_model
from attest.policy import Decision, Policy
from attest.verifying import Trust
from cli._output import console, print_json


def trust_from_options(keys: tuple[Path, ...], **keyless: Any) -> Trust:
    """Command-line trust: public keys now; Sigstore identities are added by keyless options."""
    trust = Trust()
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


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--bundle",
    "bundles",
    multiple=True,
    type=click.Path(path_type=Path),
    required=True,
    help="Sigstore bundle (repeatable).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Trusted public key (PEM, repeatable).",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path),
    help="Policy YAML (default: a manifest from a trusted signer).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def verify(
    path: Path,
    bundles: tuple[Path, ...],
    keys: tuple[Path, ...],
    policy_path: Path | None,
    as_json: bool,
    **keyless: Any,
) -> None:
    """Verify the model at PATH: signatures, subject, schema, files, then the policy.

    Exit 0 when allowed, 1 when denied or not verified, 2 on usage errors.
    """
    policy = Policy.load(policy_path) if policy_path else None
    trust = trust_from_options(keys, **keyless)
    decision = verify_model(path, bundles, trust, policy)
    if as_json:
        print_json(decision.to_json())
    else:
        print_decision(decision)
    sys.exit(0 if decision.allowed else 1)
