"""``attest constitution``: canonical digests, section proofs and binding predicates for constitutions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from attest._internal.capped import MAX_DOCUMENT_BYTES, read_capped
from attest.errors import ModelPathError, UsageError


def _read(path: str) -> bytes:
    return read_capped(path, MAX_DOCUMENT_BYTES, "constitution")


def _emit(doc: dict[str, Any], output: str | None) -> None:
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@click.group()
def constitution() -> None:
    """Hash constitution texts canonically, prove sections, bind models to them."""


@constitution.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the digests and sections as JSON.")
def digest(file: str, as_json: bool) -> None:
    """Print the canonical digest, raw digest and section root of FILE."""
    from attest.constitution import digest_text

    result = digest_text(_read(file))
    if as_json:
        _emit(result.to_json(), None)
        return
    click.echo(f"canonical sha256  {result.canonical_sha256}")
    click.echo(f"raw sha256        {result.raw_sha256}")
    click.echo(f"section root      {result.section_root}")
    click.echo(f"sections          {result.section_count}")
    for section in result.sections:
        click.echo(f"  {section.index:>3}  {section.heading or '(preamble)'}")


@constitution.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the canonical text here.")
def canonicalize(file: str, output: str | None) -> None:
    """Print the canonical text of FILE (what the canonical digest is computed over)."""
    from attest.constitution import canonicalize as canon

    text = canon(_read(file))
    if output:
        Path(output).write_bytes(text.encode("utf-8"))
    else:
        click.echo(text, nl=False)


@constitution.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--section", "index", type=int, required=True, help="Section number (0-based).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the proof here.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the proof is always JSON.")
def prove(file: str, index: int, output: str | None, as_json: bool) -> None:
    """Print an inclusion proof of section N of FILE under its section root."""
    from attest.constitution import prove_section

    _emit(prove_section(_read(file), index), output)


@constitution.command("verify-proof")
@click.argument("proof_file", type=click.Path(dir_okay=False))
@click.option("--root", help="Section root (hex) from a verified binding; default: the proof's own.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_proof(proof_file: str, root: str | None, as_json: bool) -> None:
    """Check a section proof; exit 1 if the section is not included under the root."""
    from attest.constitution import verify_section_proof

    try:
        proof = json.loads(_read(proof_file))
    except ValueError as exc:
        raise UsageError(f"{proof_file} is not JSON: {exc}") from None
    if not isinstance(proof, dict):
        raise UsageError(f"{proof_file} is not a section proof object")
    verify_section_proof(proof, root)
    result = {
        "verified": True,
        "index": proof["index"],
        "sectionRoot": root or proof["sectionRoot"]["sha256"],
    }
    if as_json:
        _emit(result, None)
    else:
        suffix = "" if root else " (against the root named in the proof itself)"
        click.echo(f"section {proof['index']} is included under {result['sectionRoot']}{suffix}")


@constitution.command()
@click.argument("path", type=click.Path())
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--relationship",
    type=click.Choice(["trained-with", "system-prompt", "evaluated-against"]),
    required=True,
    help="How the model relates to the constitution.",
)
@click.option("--name", help="Constitution name (default: the file name without extension).")
@click.option("--version", "version", help="Constitution version (default: derived from the raw digest).")
@click.option("--uri", help="Where the official text is published.")
@click.option("--license", "license_", help="Licence of the text (SPDX id, e.g. CC0-1.0).")
@click.option("--evaluation", type=click.Path(dir_okay=False), help="JSON file with evaluation evidence.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the predicate here.")
def bind(
    path: str,
    file: str,
    relationship: str,
    name: str | None,
    version: str | None,
    uri: str | None,
    license_: str | None,
    evaluation: str | None,
    output: str | None,
) -> None:
    """Build the constitution-binding/v1 predicate binding the model at PATH to FILE.

    Sign it with: attest sign PATH --key K --predicate-type
    https://model-attest.dev/constitution-binding/v1 --predicate OUTPUT
    """

    from attest.constitution import binding_predicate, default_version

    if not Path(path).exists():
        raise ModelPathError(f"model path {path} does not exist")
    raw = _read(file)
    evidence = None
    if evaluation is not None:
        try:
            evidence = json.loads(_read(evaluation))
        except ValueError as exc:
            raise UsageError(f"{evaluation} is not JSON: {exc}") from None
    predicate = binding_predicate(
        raw,
        name=name or Path(file).stem,
        version=version or default_version(raw),
        relationship=relationship,
        uri=uri,
        license=license_,
        evaluation=evidence,
    )
    _emit(predicate, output)
