"""``attest verify``: verify local model files and their bundles against a policy, before loading."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from attest._internal.atomic import write_atomic
from attest._internal.capped import MAX_KEY_BYTES, MAX_POLICY_BYTES
from attest._internal.walk import resolve_path
from attest.errors import UsageError
from attest.model_verification import read_bundles, verify_model
from attest.policy import Policy
from attest.vsa import file_locators, sign_vsa
from cli._input import InputFile
from cli._output import print_json
from cli._signer import make_signer
from cli._trust import print_decision, trust_from_options, trust_options


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--bundle",
    "bundles",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Sigstore bundle (repeatable; default: the *.sigstore.json files in the model folder).",
)
@click.option(
    "--registry",
    envvar="ATTEST_REGISTRY",
    help="Also use the registry's attestations (each proven in its log).",
)
@click.option(
    "--model",
    "registry_model",
    metavar="ORG/NAME[@VERSION]",
    help="With --registry: look the model up by name (and version) instead of by the files' digest, "
    "so changed files are named and a manifest's extra ignore patterns are honoured.",
)
@trust_options
@click.option(
    "--policy",
    "policy_path",
    type=InputFile("policy", MAX_POLICY_BYTES),
    help="Policy YAML (default: a manifest from a trusted signer).",
)
@click.option(
    "--vsa", "vsa_out", type=click.Path(path_type=Path), help="Also write a signed SLSA verification summary."
)
@click.option(
    "--vsa-key", type=InputFile("key", MAX_KEY_BYTES), help="Key that signs the verification summary."
)
@click.option("--name", "model_name", help="Model name for the verification summary (default: folder name).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def verify(
    path: Path,
    bundles: tuple[Path, ...],
    keys: tuple[Path, ...],
    policy_path: Path | None,
    registry: str | None,
    registry_model: str | None,
    vsa_out: Path | None,
    vsa_key: Path | None,
    model_name: str | None,
    as_json: bool,
    **keyless: Any,
) -> None:
    """Verify the model at PATH: signatures, subject, schema, files, then the policy.

    Exit 0 when allowed, 1 when denied or not verified, 2 on usage errors, 3 when no decision could
    be made (registry unreachable, I/O error). Files on disk that the signed manifest's ignore
    patterns leave out are listed (``ignoredFiles`` in --json, a warning otherwise): they are not
    covered by the signature.
    """
    policy = Policy.load(policy_path) if policy_path else None
    trust = trust_from_options(keys, **keyless)
    if vsa_out is not None and vsa_key is None:
        raise UsageError("--vsa needs --vsa-key to sign the verification summary")
    if not bundles and path.is_dir():
        bundles = tuple(sorted(path.glob("*.sigstore.json")))  # what `attest pull` stores beside the files
    if registry_model is not None and not registry:
        raise UsageError("--model needs --registry")
    if not bundles and not registry:
        raise UsageError(
            f"no bundle: give --bundle FILE (repeatable), --registry URL, or put *.sigstore.json in {path}"
        )
    resolve_path(path, str(path))  # a symlink loop is a one-line error before any work
    inputs = read_bundles(bundles)  # capped: `--bundle /dev/zero` or a FIFO is refused, not read forever
    decision = verify_model(path, inputs, trust, policy, registry=registry, registry_model=registry_model)
    if vsa_out is not None and vsa_key is not None:
        bundle = sign_vsa(
            make_signer(vsa_key),
            decision,
            model_name or path.resolve().name,
            policy_uri=policy_path.resolve().as_uri() if policy_path else None,
            input_uris=file_locators(bundles),
        )
        write_atomic(vsa_out, json.dumps(bundle, indent=2).encode() + b"\n")
    ignored = decision.details.get("ignoredFiles") or []
    if ignored and not as_json:
        shown = ", ".join(ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
        click.echo(f"warning: not covered by the signature (ignored by its patterns): {shown}", err=True)
    if as_json:
        print_json(decision.to_json())
    else:
        print_decision(decision)
    sys.exit(0 if decision.allowed else 1)
