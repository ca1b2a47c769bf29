"""``attest sign``: sign the model manifest, or another predicate about the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from attest._internal.atomic import write_atomic
from attest._internal.capped import MAX_DOCUMENT_BYTES, read_capped_text
from attest._internal.walk import DEFAULT_IGNORES
from attest.errors import UsageError
from attest.manifest import check_ignores, compute_manifest
from attest.predicates import MODEL_MANIFEST_V1, OMS_SIGNATURE_V1, get
from attest.signing import sign_attestation, sign_oms
from cli._output import print_json
from cli._signer import make_signer, signer_options


def _load_predicate(path: Path) -> dict[str, Any]:
    """The ``--predicate`` JSON object; read capped, so ``/dev/zero`` or a FIFO is refused, not awaited."""
    text = read_capped_text(path, MAX_DOCUMENT_BYTES, "predicate")
    try:
        data = json.loads(text)
    except RecursionError:
        raise UsageError(f"{path}: predicate is nested too deeply") from None
    except ValueError as exc:
        raise UsageError(f"{path}: predicate is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: predicate must be a JSON object")
    return data


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@signer_options
@click.option("--name", help="Subject name, e.g. org/model (default: the folder name).")
@click.option("--version", "model_version", help="Model version recorded in the manifest.")
@click.option("--source-uri", help="Where the model is published (recorded in the manifest).")
@click.option("--predicate-type", default=MODEL_MANIFEST_V1, show_default=True, help="Predicate type URI.")
@click.option("--predicate", "predicate_path", type=click.Path(path_type=Path), help="Predicate JSON file.")
@click.option("--ignore", "ignores", multiple=True, metavar="PATTERN", help="Extra ignore pattern.")
@click.option(
    "--allow-ignore-loadable",
    is_flag=True,
    help="Allow --ignore patterns that leave out weights, configs, tokenizers or code "
    "(refused by default; recorded in the signed manifest).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Bundle file (default: PATH.<kind>.sigstore.json).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["in-toto", "oms"]),
    default="in-toto",
    show_default=True,
    help="in-toto: a model-attest attestation. oms: an OpenSSF model-signing v1.0 signature "
    "(what `model_signing verify` checks; key, certificate or keyless).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def sign(
    path: Path,
    key_path: Path | None,
    name: str | None,
    model_version: str | None,
    source_uri: str | None,
    predicate_type: str,
    predicate_path: Path | None,
    ignores: tuple[str, ...],
    allow_ignore_loadable: bool,
    output: Path | None,
    fmt: str,
    as_json: bool,
    **keyless: Any,
) -> None:
    """Sign an in-toto attestation about the model at PATH into a Sigstore bundle.

    With --format oms, sign the folder as an OpenSSF model-signing v1.0 signature instead.
    """
    check_ignores(path, DEFAULT_IGNORES + ignores, allow_ignore_loadable)  # before any signing work
    if fmt == "oms":
        _sign_oms(path, key_path, ignores, output, as_json, (name, model_version, source_uri, predicate_path),
                  predicate_type, keyless)  # fmt: skip
        return
    ptype = get(predicate_type)  # unknown types are refused before any work
    if predicate_type != MODEL_MANIFEST_V1 and predicate_path is None:
        raise UsageError(f"--predicate FILE is required for --predicate-type {predicate_type}")
    predicate = _load_predicate(predicate_path) if predicate_path else None
    signer = make_signer(key_path, **keyless)
    manifest = compute_manifest(
        path, ignores=DEFAULT_IGNORES + ignores, progress=True, allow_ignore_loadable=allow_ignore_loadable
    )
    subject = name or Path(path).resolve().name
    bundle = sign_attestation(signer, manifest, subject, predicate_type, predicate, model_version, source_uri)
    kind = ptype.schema.rsplit("-v", 1)[0]
    out = output or Path(f"{Path(path).resolve()}.{kind}.sigstore.json")
    write_atomic(out, json.dumps(bundle, indent=2).encode() + b"\n")
    summary = {
        "bundle": str(out),
        "subject": subject,
        "modelDigest": manifest.digest,
        "predicateType": predicate_type,
    }
    if as_json:
        print_json(summary)
    else:
        click.echo(f"signed {predicate_type} for {subject} ({manifest.digest})\nwrote {out}")


def _sign_oms(
    path: Path,
    key_path: Path | None,
    ignores: tuple[str, ...],
    output: Path | None,
    as_json: bool,
    extras: tuple[object, ...],
    predicate_type: str,
    keyless: dict[str, Any],
) -> None:
    """``--format oms``: what model_signing would sign (the folder, its git paths and --ignore left out)."""
    if any(v is not None for v in extras) or predicate_type != MODEL_MANIFEST_V1:
        raise UsageError(
            "--format oms signs the folder as it is: --name, --version, --source-uri, --predicate and "
            "--predicate-type are not part of an OpenSSF model signature"
        )
    if not Path(path).is_dir():
        raise UsageError(f"{path}: --format oms signs a model folder")
    out = output or Path(f"{Path(path).resolve()}.oms-signature.sigstore.json")
    signer = make_signer(key_path, pem_hint=True, **keyless)
    bundle, manifest = sign_oms(signer, path, ignores, out)
    write_atomic(out, json.dumps(bundle, indent=2).encode() + b"\n")
    subject = Path(path).resolve().name
    if as_json:
        print_json(
            {
                "bundle": str(out),
                "subject": subject,
                "modelDigest": manifest.digest,
                "predicateType": OMS_SIGNATURE_V1,
            }
        )
    else:
        click.echo(f"signed {OMS_SIGNATURE_V1} for {subject} ({manifest.digest})\nwrote {out}")
